/* maincf.h: main.cf syntax: a pure parser (bytes in, entries and diagnostics out) and a pure editor for
 * postconf -e/-X/-#. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Limits on operator-written input. */
#define MAINCF_FILE_MAX    (4u * 1024 * 1024) /* bytes of one main.cf */
#define MAINCF_LINE_MAX    (64u * 1024)       /* bytes of one logical line, continuations joined */
#define MAINCF_ENTRIES_MAX 20000u             /* name = value entries */
#define MAINCF_DIAGS_MAX   100u /* diagnostics kept; the rest are counted in one last message */

struct maincf_entry {
        char *name;
        char *value;        /* continuation lines joined with one space, outer whitespace stripped */
        unsigned line;      /* first physical line, 1-based */
        unsigned last_line; /* last physical line of the entry */
        size_t start,
                end; /* byte span in the text: start of the first line to after the last line's newline */
};

struct maincf_diag {
        unsigned line;
        char *message; /* e.g. "missing '=' after parameter name: \"foo bar\"" */
};

struct maincf {
        struct maincf_entry
                *entries; /* in file order; a name may occur more than once (the last one wins) */
        size_t n_entries;
        struct maincf_diag *diags;
        size_t n_diags;
};

/*
 * Parse main.cf text. Syntax: "#" starts a comment line (after optional whitespace), blank lines
 * are ignored, "name = value" starts an entry, a line that starts with whitespace continues the
 * previous entry. Bad lines become diagnostics, never failures. Returns 0, or -EFBIG when len
 * exceeds MAINCF_FILE_MAX. *ret is always initialised; free with maincf_done().
 */
int maincf_parse(const char *text, size_t len, struct maincf *ret);
void maincf_done(struct maincf *m);
/* The last (effective) entry for name, or NULL. */
const struct maincf_entry *maincf_find(const struct maincf *m, const char *name);

enum maincf_edit_op {
        MAINCF_EDIT_SET,     /* replace the first entry in place (later duplicates go), or append */
        MAINCF_EDIT_REMOVE,  /* delete every entry of the name */
        MAINCF_EDIT_COMMENT, /* prefix every line of every entry of the name with "#" */
};

struct maincf_edit {
        const char *name;
        const char *value; /* MAINCF_EDIT_SET only; written as "name = value" ("name =" when empty) */
        enum maincf_edit_op op;
};

/*
 * Apply edits to main.cf text and return the new text (malloc'd, NUL-terminated). Comments, blank
 * lines, order and every line not belonging to an edited entry are kept byte for byte. When several
 * edits name the same parameter the last one applies. -EINVAL for a bad name or a value with a
 * newline, -EFBIG when the input or the result exceeds MAINCF_FILE_MAX.
 */
int maincf_edit(const char *text, size_t len, const struct maincf_edit *edits, size_t n_edits, char **ret,
                size_t *ret_len);

/* Split "name = value" or "name=value" (as postconf -e takes it); 0 or -EINVAL. Outputs are malloc'd. */
int maincf_split_assignment(const char *arg, char **ret_name, char **ret_value);
