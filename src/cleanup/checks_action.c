/* checks_action.c: the right-hand side of a header_checks/body_checks rule ("REJECT text"), parsed purely.
 */
#include "checks_action.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "headers.h"
#include "macro.h"

struct action_def {
        const char *word;
        enum checks_action_kind kind;
        const char *log_name;
};

static const struct action_def actions[] = {
        {"DUNNO", CHECKS_DUNNO, "dunno"},
        {"OK", CHECKS_OK, "ok"},
        {"REJECT", CHECKS_REJECT, "reject"},
        {"DISCARD", CHECKS_DISCARD, "discard"},
        {"HOLD", CHECKS_HOLD, "hold"},
        {"WARN", CHECKS_WARN, "warning"},
        {"INFO", CHECKS_INFO, "info"},
        {"IGNORE", CHECKS_IGNORE, "ignore"},
        {"REDIRECT", CHECKS_REDIRECT, "redirect"},
        {"FILTER", CHECKS_FILTER, "filter"},
        {"PREPEND", CHECKS_PREPEND, "prepend"},
        {"REPLACE", CHECKS_REPLACE, "replace"},
        {"BCC", CHECKS_BCC, "bcc"},
};

const char *checks_action_log_name(enum checks_action_kind k)
{
        for (size_t i = 0; i < ELEMENTSOF(actions); i++)
                if (actions[i].kind == k)
                        return actions[i].log_name;
        return "?";
}

static bool blank(char c)
{
        return c == ' ' || c == '\t';
}

/* A text that goes into the message or a log line: no control characters but TAB. */
static bool clean_text(const char *t, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)t[i];
                if ((c < 0x20 && c != '\t') || c == 0x7f)
                        return false;
        }
        return true;
}

static bool one_word(const char *t, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (blank(t[i]))
                        return false;
        return true;
}

/* What each action needs of its text; NULL when it is fine. */
static const char *check_text(enum checks_action_kind k, const char *t, size_t n, bool header)
{
        switch (k) {
        case CHECKS_REDIRECT:
        case CHECKS_BCC:
                if (n == 0)
                        return "REDIRECT and BCC need an address";
                if (!one_word(t, n))
                        return "REDIRECT and BCC take one address, without blanks";
                return NULL;
        case CHECKS_FILTER: {
                const char *colon = memchr(t, ':', n);
                if (n == 0 || !colon || colon == t || !one_word(t, n))
                        return "FILTER needs transport:destination";
                return NULL;
        }
        case CHECKS_PREPEND:
        case CHECKS_REPLACE:
                if (n == 0)
                        return "PREPEND and REPLACE need text";
                if (header && !headers_is_field(t, n, NULL))
                        return "PREPEND and REPLACE in a header rule need a header: \"Name: value\"";
                return NULL;
        default: return NULL;
        }
}

int checks_action_parse(const char *value, bool header, struct checks_action *ret, const char **ret_why)
{
        const char *p = value;
        while (blank(*p))
                p++;
        size_t wl = 0;
        while (p[wl] && !blank(p[wl]))
                wl++;
        const struct action_def *def = NULL;
        for (size_t i = 0; i < ELEMENTSOF(actions) && !def; i++)
                if (strlen(actions[i].word) == wl && strncasecmp(p, actions[i].word, wl) == 0)
                        def = &actions[i];
        if (!def) {
                *ret_why = "unknown action (expected REJECT, DISCARD, HOLD, WARN, INFO, IGNORE, REDIRECT, "
                           "FILTER, "
                           "PREPEND, REPLACE, BCC, DUNNO or OK)";
                return -EINVAL;
        }
        const char *t = p + wl;
        while (blank(*t))
                t++;
        size_t n = strlen(t);
        while (n > 0 && blank(t[n - 1]))
                n--;
        if (n > CHECKS_ACTION_TEXT_MAX) {
                *ret_why = "action text too long";
                return -EINVAL;
        }
        if (!clean_text(t, n)) {
                *ret_why = "control character in the action text";
                return -EINVAL;
        }
        const char *bad = check_text(def->kind, t, n, header);
        if (bad) {
                *ret_why = bad;
                return -EINVAL;
        }
        *ret = (struct checks_action){def->kind, t, n};
        return 0;
}
