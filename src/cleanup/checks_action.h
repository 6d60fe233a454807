/* checks_action.h: the right-hand side of a header_checks/body_checks rule ("REJECT text"), parsed purely.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Longest text an action carries (REJECT reason, PREPEND header, REDIRECT address). */
#define CHECKS_ACTION_TEXT_MAX 2048u

enum checks_action_kind {
        CHECKS_DUNNO,
        CHECKS_OK,
        CHECKS_REJECT,
        CHECKS_DISCARD,
        CHECKS_HOLD,
        CHECKS_WARN,
        CHECKS_INFO,
        CHECKS_IGNORE,
        CHECKS_REDIRECT,
        CHECKS_FILTER,
        CHECKS_PREPEND,
        CHECKS_REPLACE,
        CHECKS_BCC,
};

struct checks_action {
        enum checks_action_kind kind;
        const char *text; /* points into the parsed value, blanks trimmed; "" when none */
        size_t text_len;
};

/*
 * Parse a table's result: an action word (any case) and its text. header says whether the rule is a
 * header rule (PREPEND/REPLACE text must then be a header, "Name: value"). 0, or -EINVAL with *why a
 * static text naming the problem (unknown action, missing or bad text).
 */
int checks_action_parse(const char *value, bool header, struct checks_action *ret, const char **ret_why);
/* The lower-case name used in log lines: "reject", "warning", "prepend"... */
const char *checks_action_log_name(enum checks_action_kind k);
