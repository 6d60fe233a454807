/* dict_pattern.h: the "/pattern/flags result" rule syntax shared by regexp: and pcre: tables (pure). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Capture groups a result may reference ($1 .. $99). */
#define DICT_PATTERN_GROUPS_MAX 100
/* if/endif nesting. */
#define DICT_PATTERN_IF_DEPTH_MAX 100

enum dict_pattern_kind { DICT_PATTERN_MATCH, DICT_PATTERN_IF, DICT_PATTERN_ENDIF };

struct dict_pattern_rule {
        enum dict_pattern_kind kind;
        bool negate;
        char *pattern; /* the text between the delimiters, "\<delim>" unescaped; malloc'd */
        char *flags;   /* the flag letters after the closing delimiter, each in the allowed set */
        char *result;  /* DICT_PATTERN_MATCH: the right-hand side */
        int max_ref;   /* highest $n in result (0: none) */
};

/*
 * Parse one logical line of a regexp:/pcre: table: "[if ][!]/pattern/flags [result]" or "endif".
 * allowed_flags lists the flag letters the type knows. 0, or -EINVAL with *why (malloc'd) naming the
 * problem; free ret with dict_pattern_rule_done().
 */
int dict_pattern_parse(const char *line, const char *allowed_flags, struct dict_pattern_rule *ret,
                       char **ret_why);
void dict_pattern_rule_done(struct dict_pattern_rule *r);
/* True when the line starts an "if" (a broken "if" must fail the table, not just skip a rule). */
bool dict_pattern_is_if(const char *line);

/*
 * Append result to out with $n, ${n}, $(n) replaced by capture group n of subject: groups[2n] and
 * groups[2n+1] are its start and end offsets, (size_t)-1 for a group that did not take part.
 */
void dict_pattern_expand(const char *result, const char *subject, const size_t *groups, size_t n_groups,
                         struct buf *out);

/* ---- a loaded table of rules, tried in order (regexp: and pcre: supply compile and match) ---- */

struct dict_pattern_ops {
        const char *label; /* "regexp map" */
        const char *flags; /* allowed flag letters */
        /* Compile a parsed rule; 0 or -EINVAL with *why. *ret_groups: capture groups in the pattern. */
        int (*compile)(const struct dict_pattern_rule *r, void **ret, size_t *ret_groups, char **ret_why);
        /* 1 match (groups filled for up to n_groups groups, group 0 the whole match), 0 none, <0 error. */
        int (*match)(void *compiled, const char *key, size_t *groups, size_t n_groups);
        void (*free)(void *compiled);
};

struct dict_pattern_entry {
        enum dict_pattern_kind kind;
        bool negate;
        void *compiled;
        size_t n_groups; /* capture groups + 1, at most DICT_PATTERN_GROUPS_MAX */
        char *result;
        size_t endif; /* DICT_PATTERN_IF: index of its endif (or the end of the table) */
};

struct dict_pattern_table {
        const struct dict_pattern_ops *ops;
        struct dict_pattern_entry *rules;
        size_t n_rules;
};

/* Load the rules of file name; bad rules are warned about and skipped, a bad "if" fails the table. */
int dict_pattern_load(const char *name, const struct dict_pattern_ops *ops, struct dict_pattern_table *ret,
                      char **ret_error);
/* Build a table from text already read (pure apart from the warnings; the fuzz target's entry). */
int dict_pattern_load_text(const char *label_name, const char *text, size_t len,
                           const struct dict_pattern_ops *ops, struct dict_pattern_table *ret,
                           char **ret_error);
/* The first matching rule's result, $n expanded: 1 found (*ret_value malloc'd), 0 none, <0 error. */
int dict_pattern_get(const struct dict_pattern_table *t, const char *key, char **ret_value);
void dict_pattern_table_done(struct dict_pattern_table *t);

/* The dict_type hooks of a pattern table type: open with its ops, then the shared get and close. */
struct dict;
int dict_pattern_open(const char *name, const struct dict_pattern_ops *ops, struct dict **ret,
                      char **ret_error);
int dict_pattern_dict_get(struct dict *d, const char *key, char **ret_value);
void dict_pattern_dict_close(struct dict *d);

/* The rules of pcre: tables (dict_pcre.c; only in a build with libpcre2). */
extern const struct dict_pattern_ops dict_pcre_ops;
