/* dict_regexp.c: regexp: tables, "/pattern/flags result" rules (POSIX regex) tried in order, with $n. */
#include <errno.h>
#include <regex.h>
#include <stdio.h>

#include "alloc.h"
#include "buf.h"
#include "dict.h"
#include "log.h"
#include "macro.h"

/* Capture groups that can be referenced ($1 .. $99); more in a pattern is allowed, unreferenced. */
#define REGEXP_GROUPS_MAX 100
/* if/endif nesting. */
#define REGEXP_IF_DEPTH_MAX 100

enum rule_kind { RULE_MATCH, RULE_IF, RULE_ENDIF };

struct regexp_rule {
        enum rule_kind kind;
        bool negate;
        bool compiled;
        regex_t re;
        char *result; /* RULE_MATCH */
        size_t endif; /* RULE_IF: index of the matching RULE_ENDIF (or n_rules when missing) */
};

struct dict_regexp {
        struct dict d;
        struct regexp_rule *rules;
        size_t n_rules;
};

static bool blank(char c)
{
        return c == ' ' || c == '\t';
}

/* Check $n, ${n}, $(n), $$ in a result; returns the highest n referenced or -1 on bad syntax. */
static int result_max_ref(const char *s)
{
        int max = 0;
        for (const char *p = s; *p; p++) {
                if (*p != '$')
                        continue;
                p++;
                if (*p == '$')
                        continue;
                char close = 0;
                if (*p == '{')
                        close = '}';
                else if (*p == '(')
                        close = ')';
                if (close)
                        p++;
                int v = 0, digits = 0;
                while (*p >= '0' && *p <= '9' && digits < 3) {
                        v = v * 10 + (*p - '0');
                        p++;
                        digits++;
                }
                if (digits == 0 || (close && *p != close) || v >= REGEXP_GROUPS_MAX)
                        return -1;
                if (!close)
                        p--;
                if (v > max)
                        max = v;
        }
        return max;
}

static void expand_result(const char *s, const char *subject, const regmatch_t *m, size_t nm,
                          struct buf *out)
{
        for (const char *p = s; *p; p++) {
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
                /* validated at load time: v < nm; an unmatched optional group expands to nothing */
                if (v < nm && m[v].rm_so >= 0)
                        buf_append(out, subject + m[v].rm_so, (size_t)(m[v].rm_eo - m[v].rm_so));
        }
}

/* Parse and compile one rule; a message in *why means it is skipped. */
static int parse_rule(const char *line, struct regexp_rule *rule, char **why)
{
        const char *p = line;
        *rule = (struct regexp_rule){.kind = RULE_MATCH};

        if (streq(p, "endif")) {
                rule->kind = RULE_ENDIF;
                return 0;
        }
        if (strncmp(p, "if", 2) == 0 && blank(p[2])) {
                rule->kind = RULE_IF;
                p += 2;
                while (blank(*p))
                        p++;
        }
        if (*p == '!') {
                rule->negate = true;
                p++;
        }
        char delim = *p;
        if (delim == '\0' || blank(delim) || delim == '\\' || (delim >= 'a' && delim <= 'z') ||
            (delim >= 'A' && delim <= 'Z') || (delim >= '0' && delim <= '9')) {
                *why = xstrdup("no regexp delimiter: expected \"/pattern/flags result\"");
                return -EINVAL;
        }
        struct buf pat = BUF_INIT;
        buf_append(&pat, "", 0); /* terminated even when empty */
        const char *q = p + 1;
        for (; *q && *q != delim; q++) {
                /* "\/" inside /.../ stands for the delimiter itself; other escapes go to regcomp. */
                if (*q == '\\' && q[1] == delim) {
                        buf_putc(&pat, delim);
                        q++;
                } else if (*q == '\\' && q[1]) {
                        buf_putc(&pat, *q);
                        buf_putc(&pat, *++q);
                } else
                        buf_putc(&pat, *q);
        }
        if (*q != delim) {
                buf_free(&pat);
                *why = xasprintf("missing closing '%c' of the regexp", delim);
                return -EINVAL;
        }
        /* Postfix's defaults: extended syntax, case-insensitive; each flag letter toggles one. */
        int cflags = REG_EXTENDED | REG_ICASE;
        for (q++; *q && !blank(*q); q++) {
                switch (*q) {
                case 'i': cflags ^= REG_ICASE; break;
                case 'x': cflags ^= REG_EXTENDED; break;
                case 'm': cflags ^= REG_NEWLINE; break;
                default:
                        buf_free(&pat);
                        *why = xasprintf("unknown regexp option \"%c\"", *q);
                        return -EINVAL;
                }
        }
        while (blank(*q))
                q++;
        if (rule->kind == RULE_IF && *q) {
                buf_free(&pat);
                *why = xstrdup("text after \"if /pattern/\"");
                return -EINVAL;
        }
        if (rule->kind == RULE_MATCH && !*q) {
                buf_free(&pat);
                *why = xstrdup("missing right-hand side after the pattern");
                return -EINVAL;
        }
        int max_ref = 0;
        if (rule->kind == RULE_MATCH) {
                max_ref = result_max_ref(q);
                if (max_ref < 0) {
                        buf_free(&pat);
                        *why = xasprintf("bad $ substitution in \"%s\"", q);
                        return -EINVAL;
                }
                if (max_ref > 0 && rule->negate) {
                        buf_free(&pat);
                        *why = xstrdup("$number substitution in a negated rule");
                        return -EINVAL;
                }
        }
        int r = regcomp(&rule->re, buf_str(&pat), cflags | (max_ref == 0 ? REG_NOSUB : 0));
        if (r != 0) {
                char msg[256];
                regerror(r, &rule->re, msg, sizeof msg);
                *why = xasprintf("regexp \"%s\": %s", buf_str(&pat), msg);
                buf_free(&pat);
                return -EINVAL;
        }
        buf_free(&pat);
        rule->compiled = true;
        if ((size_t)max_ref > rule->re.re_nsub) {
                *why = xasprintf("out-of-range replacement index \"$%d\" (the pattern has %zu groups)",
                                 max_ref, rule->re.re_nsub);
                regfree(&rule->re);
                rule->compiled = false;
                return -EINVAL;
        }
        if (rule->kind == RULE_MATCH)
                rule->result = xstrdup(q);
        return 0;
}

static void free_rules(struct regexp_rule *rules, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                if (rules[i].compiled)
                        regfree(&rules[i].re);
                free(rules[i].result);
        }
        free(rules);
}

static int regexp_open(const char *name, struct dict **ret, char **err)
{
        struct tablefile t = TABLEFILE_INIT;
        int r = dict_load_source(name, "regexp map", tablefile_parse_lines, &t, err);
        if (r < 0)
                return r;

        struct regexp_rule *rules = xcalloc(t.n_entries + 1, sizeof(*rules));
        size_t n = 0;
        size_t open_ifs[REGEXP_IF_DEPTH_MAX];
        size_t depth = 0;
        for (size_t i = 0; i < t.n_entries; i++) {
                _cleanup_free_ char *why = NULL;
                struct regexp_rule rule;
                if (parse_rule(t.entries[i].key, &rule, &why) < 0) {
                        /* A broken "if" must not let the rules it guards apply unconditionally. */
                        if (strncmp(t.entries[i].key, "if", 2) == 0 && blank(t.entries[i].key[2])) {
                                *err = xasprintf("regexp map %s, line %u: %s", name, t.entries[i].line, why);
                                free_rules(rules, n);
                                tablefile_free(&t);
                                return -EINVAL;
                        }
                        msg_warn("regexp map %s, line %u: %s: skipping this rule", name, t.entries[i].line,
                                 why);
                        continue;
                }
                if (rule.kind == RULE_IF) {
                        if (depth >= REGEXP_IF_DEPTH_MAX) {
                                *err = xasprintf("regexp map %s, line %u: if/endif nested deeper than %d",
                                                 name, t.entries[i].line, REGEXP_IF_DEPTH_MAX);
                                regfree(&rule.re);
                                free_rules(rules, n);
                                tablefile_free(&t);
                                return -EINVAL;
                        }
                        open_ifs[depth++] = n;
                } else if (rule.kind == RULE_ENDIF) {
                        if (depth == 0) {
                                msg_warn("regexp map %s, line %u: ignoring \"endif\" without \"if\"", name,
                                         t.entries[i].line);
                                continue;
                        }
                        rules[open_ifs[--depth]].endif = n;
                }
                rules[n++] = rule;
        }
        while (depth > 0) {
                msg_warn("regexp map %s: missing \"endif\" at end of file", name);
                rules[open_ifs[--depth]].endif = n;
        }
        tablefile_free(&t);

        struct dict_regexp *d = xcalloc(1, sizeof(*d));
        d->rules = rules;
        d->n_rules = n;
        *ret = &d->d;
        return 0;
}

static int regexp_get(struct dict *d, const char *key, char **ret_value)
{
        struct dict_regexp *x = (struct dict_regexp *)d;
        regmatch_t m[REGEXP_GROUPS_MAX];

        for (size_t i = 0; i < x->n_rules; i++) {
                struct regexp_rule *rule = &x->rules[i];
                if (rule->kind == RULE_ENDIF)
                        continue;
                size_t nm =
                        rule->re.re_nsub + 1 < REGEXP_GROUPS_MAX ? rule->re.re_nsub + 1 : REGEXP_GROUPS_MAX;
                bool matched = regexec(&rule->re, key, nm, m, 0) == 0;
                if (rule->kind == RULE_IF) {
                        if (matched == rule->negate)
                                i = rule->endif; /* the loop's i++ steps past the endif */
                        continue;
                }
                if (matched == rule->negate)
                        continue;
                struct buf out = BUF_INIT;
                buf_append(&out, "", 0);
                if (rule->negate)
                        buf_puts(&out, rule->result);
                else
                        expand_result(rule->result, key, m, nm, &out);
                *ret_value = buf_steal(&out);
                return 1;
        }
        return 0;
}

static void regexp_close(struct dict *d)
{
        struct dict_regexp *x = (struct dict_regexp *)d;
        free_rules(x->rules, x->n_rules);
        free(x);
}

const struct dict_type dict_type_regexp = {
        .name = "regexp",
        .fold = false,
        .open = regexp_open,
        .get = regexp_get,
        .close = regexp_close,
};
