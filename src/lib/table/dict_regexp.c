/* dict_regexp.c: regexp: tables, "/pattern/flags result" rules (POSIX regex) tried in order, with $n. */
#include <errno.h>
#include <regex.h>
#include <stdio.h>

#include "alloc.h"
#include "dict.h"
#include "dict_pattern.h"
#include "macro.h"

static int regexp_compile(const struct dict_pattern_rule *r, void **ret, size_t *ret_groups, char **ret_why)
{
        /* Postfix's defaults: extended syntax, case-insensitive; each flag letter toggles one. */
        int cflags = REG_EXTENDED | REG_ICASE;
        for (const char *f = r->flags; *f; f++)
                cflags ^= *f == 'i' ? REG_ICASE : *f == 'x' ? REG_EXTENDED : REG_NEWLINE;
        if (r->max_ref == 0)
                cflags |= REG_NOSUB;
        regex_t *re = xcalloc(1, sizeof *re);
        int k = regcomp(re, r->pattern, cflags);
        if (k != 0) {
                char msg[256];
                regerror(k, re, msg, sizeof msg);
                *ret_why = xasprintf("regexp \"%s\": %s", r->pattern, msg);
                free(re);
                return -EINVAL;
        }
        *ret = re;
        *ret_groups = re->re_nsub;
        return 0;
}

static int regexp_match(void *compiled, const char *key, size_t *groups, size_t n_groups)
{
        regmatch_t m[DICT_PATTERN_GROUPS_MAX];
        if (regexec(compiled, key, n_groups, m, 0) != 0)
                return 0;
        for (size_t i = 0; i < n_groups; i++) {
                groups[2 * i] = m[i].rm_so < 0 ? (size_t)-1 : (size_t)m[i].rm_so;
                groups[2 * i + 1] = m[i].rm_eo < 0 ? (size_t)-1 : (size_t)m[i].rm_eo;
        }
        return 1;
}

static void regexp_free(void *compiled)
{
        regfree(compiled);
        free(compiled);
}

static const struct dict_pattern_ops regexp_ops = {
        .label = "regexp map",
        .flags = "ixm",
        .compile = regexp_compile,
        .match = regexp_match,
        .free = regexp_free,
};

static int regexp_open(const char *name, struct dict **ret, char **ret_error)
{
        return dict_pattern_open(name, &regexp_ops, ret, ret_error);
}

const struct dict_type dict_type_regexp = {
        .name = "regexp",
        .fold = false,
        .open = regexp_open,
        .get = dict_pattern_dict_get,
        .close = dict_pattern_dict_close,
};
