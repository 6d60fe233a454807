/* dict_pcre.c: pcre: tables (libpcre2), Postfix's "/pattern/flags result" rules with if/endif and $n. */
#include <errno.h>
#include <stdio.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "alloc.h"
#include "dict.h"
#include "dict_pattern.h"
#include "log.h"
#include "macro.h"

/*
 * A pathological pattern must not stall cleanup on one header: bound the backtracking. A rule that hits
 * the bound is taken as not matching, with a warning (Postfix does the same with its match limit).
 */
#define PCRE_MATCH_LIMIT 1000000u

struct pcre_rule {
        pcre2_code *code;
        pcre2_match_data *md;
        pcre2_match_context *mc;
};

/* Postfix's pcre flags: i toggles caseless (on by default); m s x A E U as PCRE's; X is accepted. */
static uint32_t pcre_options(const char *flags)
{
        uint32_t o = PCRE2_CASELESS;
        for (const char *f = flags; *f; f++)
                switch (*f) {
                case 'i': o ^= PCRE2_CASELESS; break;
                case 'm': o ^= PCRE2_MULTILINE; break;
                case 's': o ^= PCRE2_DOTALL; break;
                case 'x': o ^= PCRE2_EXTENDED; break;
                case 'A': o ^= PCRE2_ANCHORED; break;
                case 'E': o ^= PCRE2_DOLLAR_ENDONLY; break;
                case 'U': o ^= PCRE2_UNGREEDY; break;
                default: break; /* 'X': PCRE1's "extra" strictness, always on in PCRE2 */
                }
        return o;
}

static int pcre_compile_rule(const struct dict_pattern_rule *r, void **ret, size_t *ret_groups,
                             char **ret_why)
{
        int code;
        PCRE2_SIZE off;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)r->pattern, PCRE2_ZERO_TERMINATED, pcre_options(r->flags),
                                       &code, &off, NULL);
        if (!re) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(code, msg, sizeof msg);
                *ret_why = xasprintf("pcre \"%s\": %s at offset %zu", r->pattern, (const char *)msg,
                                     (size_t)off);
                return -EINVAL;
        }
        uint32_t n = 0;
        pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &n);
        struct pcre_rule *p = xcalloc(1, sizeof *p);
        p->code = re;
        p->md = pcre2_match_data_create_from_pattern(re, NULL);
        p->mc = pcre2_match_context_create(NULL);
        if (!p->md || !p->mc)
                msg_fatal("pcre map: out of memory");
        pcre2_set_match_limit(p->mc, PCRE_MATCH_LIMIT);
        *ret = p;
        *ret_groups = n;
        return 0;
}

static int pcre_match_rule(void *compiled, const char *key, size_t *groups, size_t n_groups)
{
        struct pcre_rule *p = compiled;
        int rc = pcre2_match(p->code, (PCRE2_SPTR)key, PCRE2_ZERO_TERMINATED, 0, 0, p->md, p->mc);
        if (rc == PCRE2_ERROR_NOMATCH)
                return 0;
        if (rc < 0) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(rc, msg, sizeof msg);
                msg_warn("pcre map: matching \"%.60s\": %s; taken as no match", key, (const char *)msg);
                return 0;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(p->md);
        uint32_t have = pcre2_get_ovector_count(p->md);
        for (size_t i = 0; i < n_groups; i++) {
                bool set = i < have && ov[2 * i] != PCRE2_UNSET;
                groups[2 * i] = set ? (size_t)ov[2 * i] : (size_t)-1;
                groups[2 * i + 1] = set ? (size_t)ov[2 * i + 1] : (size_t)-1;
        }
        return 1;
}

static void pcre_free_rule(void *compiled)
{
        struct pcre_rule *p = compiled;
        pcre2_match_data_free(p->md);
        pcre2_match_context_free(p->mc);
        pcre2_code_free(p->code);
        free(p);
}

const struct dict_pattern_ops dict_pcre_ops = {
        .label = "pcre map",
        .flags = "imsxAEUX",
        .compile = pcre_compile_rule,
        .match = pcre_match_rule,
        .free = pcre_free_rule,
};

static int pcre_open(const char *name, struct dict **ret, char **ret_error)
{
        return dict_pattern_open(name, &dict_pcre_ops, ret, ret_error);
}

const struct dict_type dict_type_pcre = {
        .name = "pcre",
        .fold = false,
        .open = pcre_open,
        .get = dict_pattern_dict_get,
        .close = dict_pattern_dict_close,
};
