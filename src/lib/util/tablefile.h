/* tablefile.h: pure parsers of Postfix's table source formats (postmap, aliases, inline:{...}). */
#pragma once

#include <stddef.h>

#include "buf.h"

/* One logical line, continuation lines included; a longer line is reported and skipped. */
#define TABLEFILE_LINE_MAX (64 * 1024)
/* Logical lines in one source; beyond this the parse fails with -E2BIG. */
#define TABLEFILE_LINES_MAX (8 * 1024 * 1024)
/* Diagnostics kept per parse; the rest are only counted in n_diags_dropped. */
#define TABLEFILE_DIAGS_MAX 1000
/* Targets on the right-hand side of one alias. */
#define TABLEFILE_ALIAS_TARGETS_MAX 10000
/* Nesting depth of braces in inline:{...}. */
#define TABLEFILE_INLINE_DEPTH_MAX 16

struct tablefile_entry {
        char *key;
        char *value;   /* NULL for tablefile_parse_lines() */
        unsigned line; /* line number where the logical line starts; 0 for inline */
};

struct tablefile_diag {
        unsigned line;
        char *message; /* "expected format: key whitespace value" */
};

struct tablefile {
        struct tablefile_entry *entries;
        size_t n_entries, cap_entries;
        struct tablefile_diag *diags;
        size_t n_diags, cap_diags;
        size_t n_diags_dropped;
};

#define TABLEFILE_INIT \
        {              \
                0      \
        }

/*
 * Logical lines: a line starting with whitespace continues the previous one, lines whose first
 * non-blank character is '#' and blank lines are skipped. Each entry's key is the whole logical
 * line with trailing whitespace removed (for regexp: tables, whose keys contain blanks).
 * Returns 0, or -E2BIG beyond TABLEFILE_LINES_MAX (what was parsed so far is kept).
 */
int tablefile_parse_lines(const char *text, size_t len, struct tablefile *ret);
/* postmap format: "key whitespace value"; lines without a value are reported and skipped. */
int tablefile_parse_map(const char *text, size_t len, struct tablefile *ret);
/*
 * aliases format: "name: value", the name optionally double-quoted ("a b": x). The key is the
 * name as written (unquoted), the value the whole right-hand side; split it with
 * tablefile_split_alias_targets().
 */
int tablefile_parse_aliases(const char *text, size_t len, struct tablefile *ret);
/*
 * The text after "inline:" or "static:" style braces: "{ k1=v1, k2=v2, { k3 = v with spaces } }".
 * Returns -EINVAL with a diagnostic explaining the first problem.
 */
int tablefile_parse_inline(const char *text, size_t len, struct tablefile *ret);
void tablefile_done(struct tablefile *t);

/* Split an alias value on commas outside double quotes; targets are trimmed, empty ones dropped. */
int tablefile_split_alias_targets(const char *value, struct strv *ret);

enum alias_target_kind {
        ALIAS_TARGET_ADDRESS, /* user, user@domain: delivered or aliased again */
        ALIAS_TARGET_INCLUDE, /* :include:/path: more targets read from a file */
        ALIAS_TARGET_COMMAND, /* |command, "|command with args" */
        ALIAS_TARGET_FILE,    /* /path/to/mbox */
};

/* Classify one target; *ret_arg (malloc'd) is the path, command or address without quotes. */
enum alias_target_kind tablefile_alias_target_kind(const char *target, char **ret_arg);
