/* dict_pattern.c: the "/pattern/flags result" rule syntax shared by regexp: and pcre: tables (pure). */
#include "dict_pattern.h"

#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "macro.h"

static bool blank(char c)
{
        return c == ' ' || c == '\t';
}

bool dict_pattern_is_if(const char *line)
{
        return strncmp(line, "if", 2) == 0 && blank(line[2]);
}

/* The highest n of $n, ${n}, $(n) in s ($$ is a dollar), or -1 on bad syntax. */
static int max_ref(const char *s)
{
        int max = 0;
        for (const char *p = s; *p; p++) {
                if (*p != '$')
                        continue;
                p++;
                if (*p == '$')
                        continue;
                char close = *p == '{' ? '}' : *p == '(' ? ')' : 0;
                if (close)
                        p++;
                int v = 0, digits = 0;
                while (*p >= '0' && *p <= '9' && digits < 3) {
                        v = v * 10 + (*p - '0');
                        p++;
                        digits++;
                }
                if (digits == 0 || (close && *p != close) || v >= DICT_PATTERN_GROUPS_MAX)
                        return -1;
                if (!close)
                        p--;
                if (v > max)
                        max = v;
        }
        return max;
}

static bool bad_delimiter(char d)
{
        return d == '\0' || blank(d) || d == '\\' || (d >= 'a' && d <= 'z') || (d >= 'A' && d <= 'Z') ||
               (d >= '0' && d <= '9');
}

/* The pattern after the opening delimiter at p; *end is past the closing one. NULL when unclosed. */
static char *take_pattern(const char *p, char delim, const char **end)
{
        struct buf pat = BUF_INIT;
        buf_append(&pat, "", 0);
        for (; *p && *p != delim; p++) {
                /* "\/" stands for the delimiter itself; other escapes go to the regex compiler. */
                if (*p == '\\' && p[1] == delim) {
                        buf_putc(&pat, delim);
                        p++;
                } else if (*p == '\\' && p[1]) {
                        buf_putc(&pat, *p);
                        buf_putc(&pat, *++p);
                } else
                        buf_putc(&pat, *p);
        }
        if (*p != delim) {
                buf_done(&pat);
                return NULL;
        }
        *end = p + 1;
        return buf_steal(&pat);
}

static int fail(struct dict_pattern_rule *r, char **ret_why, char *msg)
{
        dict_pattern_rule_done(r);
        *ret_why = msg;
        return -EINVAL;
}

int dict_pattern_parse(const char *line, const char *allowed_flags, struct dict_pattern_rule *ret,
                       char **ret_why)
{
        const char *p = line;
        *ret = (struct dict_pattern_rule){.kind = DICT_PATTERN_MATCH};
        if (streq(p, "endif")) {
                ret->kind = DICT_PATTERN_ENDIF;
                return 0;
        }
        if (dict_pattern_is_if(p)) {
                ret->kind = DICT_PATTERN_IF;
                for (p += 2; blank(*p); p++)
                        ;
        }
        if (*p == '!') {
                ret->negate = true;
                p++;
        }
        char delim = *p;
        if (bad_delimiter(delim))
                return fail(ret, ret_why,
                            xstrdup("no regexp delimiter: expected \"/pattern/flags result\""));
        const char *q;
        ret->pattern = take_pattern(p + 1, delim, &q);
        if (!ret->pattern)
                return fail(ret, ret_why, xasprintf("missing closing '%c' of the regexp", delim));
        struct buf flags = BUF_INIT;
        buf_append(&flags, "", 0);
        for (; *q && !blank(*q); q++) {
                if (!strchr(allowed_flags, *q)) {
                        buf_done(&flags);
                        return fail(ret, ret_why, xasprintf("unknown regexp option \"%c\"", *q));
                }
                buf_putc(&flags, *q);
        }
        ret->flags = buf_steal(&flags);
        while (blank(*q))
                q++;
        if (ret->kind == DICT_PATTERN_IF && *q)
                return fail(ret, ret_why, xstrdup("text after \"if /pattern/\""));
        if (ret->kind == DICT_PATTERN_MATCH && !*q)
                return fail(ret, ret_why, xstrdup("missing right-hand side after the pattern"));
        if (ret->kind == DICT_PATTERN_MATCH) {
                ret->max_ref = max_ref(q);
                if (ret->max_ref < 0)
                        return fail(ret, ret_why, xasprintf("bad $ substitution in \"%s\"", q));
                if (ret->max_ref > 0 && ret->negate)
                        return fail(ret, ret_why, xstrdup("$number substitution in a negated rule"));
                ret->result = xstrdup(q);
        }
        return 0;
}

void dict_pattern_rule_done(struct dict_pattern_rule *r)
{
        free(r->pattern);
        free(r->flags);
        free(r->result);
        r->pattern = r->flags = r->result = NULL;
}

void dict_pattern_expand(const char *result, const char *subject, const size_t *groups, size_t n_groups,
                         struct buf *out)
{
        for (const char *p = result; *p; p++) {
                if (*p != '$') {
                        buf_putc(out, *p);
                        continue;
                }
                p++;
                if (*p == '$') {
                        buf_putc(out, '$');
                        continue;
                }
                bool braced = *p == '{' || *p == '(';
                if (braced)
                        p++;
                size_t v = 0;
                while (*p >= '0' && *p <= '9') {
                        v = v * 10 + (size_t)(*p - '0');
                        p++;
                }
                if (!braced)
                        p--;
                /* Checked at load time; an optional group that did not match expands to nothing. */
                if (v < n_groups && groups[2 * v] != (size_t)-1)
                        buf_append(out, subject + groups[2 * v], groups[2 * v + 1] - groups[2 * v]);
        }
}

/* ---- tables ---- */

#include "dict.h"
#include "log.h"

struct dict_pattern_dict {
        struct dict d;
        struct dict_pattern_table t;
};

int dict_pattern_open(const char *name, const struct dict_pattern_ops *ops, struct dict **ret,
                      char **ret_error)
{
        struct dict_pattern_dict *d = xcalloc(1, sizeof(*d));
        int r = dict_pattern_load(name, ops, &d->t, ret_error);
        if (r < 0) {
                free(d);
                return r;
        }
        *ret = &d->d;
        return 0;
}

int dict_pattern_dict_get(struct dict *d, const char *key, char **ret_value)
{
        return dict_pattern_get(&((struct dict_pattern_dict *)d)->t, key, ret_value);
}

void dict_pattern_dict_close(struct dict *d)
{
        struct dict_pattern_dict *x = (struct dict_pattern_dict *)d;
        dict_pattern_table_done(&x->t);
        free(x);
}

void dict_pattern_table_done(struct dict_pattern_table *t)
{
        for (size_t i = 0; i < t->n_rules; i++) {
                if (t->rules[i].compiled)
                        t->ops->free(t->rules[i].compiled);
                free(t->rules[i].result);
        }
        free(t->rules);
        t->rules = NULL;
        t->n_rules = 0;
}

/* Parse and compile one line into e. 0, or <0 with *why. */
static int build_entry(const struct dict_pattern_ops *ops, const char *line, struct dict_pattern_entry *e,
                       char **ret_why)
{
        struct dict_pattern_rule r;
        int k = dict_pattern_parse(line, ops->flags, &r, ret_why);
        if (k < 0)
                return k;
        *e = (struct dict_pattern_entry){.kind = r.kind, .negate = r.negate};
        if (r.kind == DICT_PATTERN_ENDIF)
                return 0;
        size_t groups = 0;
        k = ops->compile(&r, &e->compiled, &groups, ret_why);
        if (k < 0) {
                dict_pattern_rule_done(&r);
                return k;
        }
        if ((size_t)r.max_ref > groups) {
                *ret_why = xasprintf("out-of-range replacement index \"$%d\" (the pattern has %zu groups)",
                                     r.max_ref, groups);
                ops->free(e->compiled);
                e->compiled = NULL;
                dict_pattern_rule_done(&r);
                return -EINVAL;
        }
        e->n_groups = groups + 1 < DICT_PATTERN_GROUPS_MAX ? groups + 1 : DICT_PATTERN_GROUPS_MAX;
        e->result = TAKE_PTR(r.result);
        dict_pattern_rule_done(&r);
        return 0;
}

static int load_entries(const char *name, struct tablefile *tf, const struct dict_pattern_ops *ops,
                        struct dict_pattern_table *t, char **ret_error)
{
        size_t open_ifs[DICT_PATTERN_IF_DEPTH_MAX], depth = 0;
        t->rules = xcalloc(tf->n_entries + 1, sizeof *t->rules);
        for (size_t i = 0; i < tf->n_entries; i++) {
                _cleanup_free_ char *why = NULL;
                const char *line = tf->entries[i].key;
                struct dict_pattern_entry e;
                if (build_entry(ops, line, &e, &why) < 0) {
                        if (dict_pattern_is_if(line)) {
                                *ret_error = xasprintf("%s %s, line %u: %s", ops->label, name,
                                                       tf->entries[i].line, why);
                                return -EINVAL;
                        }
                        msg_warn("%s %s, line %u: %s: skipping this rule", ops->label, name,
                                 tf->entries[i].line, why);
                        continue;
                }
                if (e.kind == DICT_PATTERN_IF) {
                        if (depth >= DICT_PATTERN_IF_DEPTH_MAX) {
                                ops->free(e.compiled);
                                *ret_error = xasprintf("%s %s, line %u: if/endif nested deeper than %d",
                                                       ops->label, name, tf->entries[i].line,
                                                       DICT_PATTERN_IF_DEPTH_MAX);
                                return -EINVAL;
                        }
                        open_ifs[depth++] = t->n_rules;
                } else if (e.kind == DICT_PATTERN_ENDIF) {
                        if (depth == 0) {
                                msg_warn("%s %s, line %u: ignoring \"endif\" without \"if\"", ops->label,
                                         name, tf->entries[i].line);
                                continue;
                        }
                        t->rules[open_ifs[--depth]].endif = t->n_rules;
                }
                t->rules[t->n_rules++] = e;
        }
        while (depth > 0) {
                msg_warn("%s %s: missing \"endif\" at end of file", ops->label, name);
                t->rules[open_ifs[--depth]].endif = t->n_rules;
        }
        return 0;
}

static int load_parsed(const char *name, struct tablefile *tf, const struct dict_pattern_ops *ops,
                       struct dict_pattern_table *ret, char **ret_error)
{
        *ret = (struct dict_pattern_table){.ops = ops};
        int r = load_entries(name, tf, ops, ret, ret_error);
        tablefile_done(tf);
        if (r < 0)
                dict_pattern_table_done(ret);
        return r;
}

int dict_pattern_load(const char *name, const struct dict_pattern_ops *ops, struct dict_pattern_table *ret,
                      char **ret_error)
{
        struct tablefile tf = TABLEFILE_INIT;
        int r = dict_load_source(name, ops->label, tablefile_parse_lines, &tf, ret_error);
        if (r < 0)
                return r;
        return load_parsed(name, &tf, ops, ret, ret_error);
}

int dict_pattern_load_text(const char *label_name, const char *text, size_t len,
                           const struct dict_pattern_ops *ops, struct dict_pattern_table *ret,
                           char **ret_error)
{
        struct tablefile tf = TABLEFILE_INIT;
        int r = tablefile_parse_lines(text, len, &tf);
        if (r < 0) {
                tablefile_done(&tf);
                *ret_error = xasprintf("%s: %s", label_name, strerror(-r));
                return r;
        }
        return load_parsed(label_name, &tf, ops, ret, ret_error);
}

int dict_pattern_get(const struct dict_pattern_table *t, const char *key, char **ret_value)
{
        size_t groups[2 * DICT_PATTERN_GROUPS_MAX];
        for (size_t i = 0; i < t->n_rules; i++) {
                const struct dict_pattern_entry *e = &t->rules[i];
                if (e->kind == DICT_PATTERN_ENDIF)
                        continue;
                int m = t->ops->match(e->compiled, key, groups, e->n_groups);
                if (m < 0)
                        return m;
                if (e->kind == DICT_PATTERN_IF) {
                        if ((m > 0) == e->negate)
                                i = e->endif; /* the loop's i++ steps past the endif */
                        continue;
                }
                if ((m > 0) == e->negate)
                        continue;
                struct buf out = BUF_INIT;
                buf_append(&out, "", 0);
                if (e->negate)
                        buf_puts(&out, e->result);
                else
                        dict_pattern_expand(e->result, key, groups, e->n_groups, &out);
                *ret_value = buf_steal(&out);
                return 1;
        }
        return 0;
}
