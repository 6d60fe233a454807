/* tls_policy.c: Postfix's TLS protocol and cipher settings -> OpenSSL's protocol range and cipher list.
 * Pure: the roles hand the result to OpenSSL themselves. */
#include "tls_policy.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "buf.h"
#include "macro.h"

static const struct {
        const char *name;
        int version;
} protocols[] = {
        {"SSLv2", TLS_POLICY_SSLV2},     {"SSLv3", TLS_POLICY_SSLV3},     {"TLSv1", TLS_POLICY_TLSV1},
        {"TLSv1.1", TLS_POLICY_TLSV1_1}, {"TLSv1.2", TLS_POLICY_TLSV1_2}, {"TLSv1.3", TLS_POLICY_TLSV1_3},
};
#define N_PROTOCOLS ((int)ELEMENTSOF(protocols))
/* Index of TLSv1 in protocols[]: everything below it is broken beyond repair and never enabled. */
#define FIRST_USABLE    2
#define KNOWN_PROTOCOLS "SSLv2, SSLv3, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3"
#define LIST_SEPARATORS ", \t\r\n:"

static int protocol_index(const char *name)
{
        for (int i = 0; i < N_PROTOCOLS; i++)
                if (strcasecmp(name, protocols[i].name) == 0)
                        return i;
        return -1;
}

enum protocol_op { OP_INCLUDE, OP_EXCLUDE, OP_AT_LEAST, OP_AT_MOST };

int tls_protocols_parse(const char *param, const char *value, int *ret_min, int *ret_max, char **ret_warning,
                        char **ret_error)
{
        *ret_warning = NULL;
        *ret_error = NULL;
        if (strlen(value) > TLS_POLICY_VALUE_MAX) {
                *ret_error = xasprintf("%s: value longer than %d bytes", param, TLS_POLICY_VALUE_MAX);
                return -EINVAL;
        }
        unsigned included = 0, excluded = 0;
        int lowest = 0, highest = N_PROTOCOLS - 1;
        bool upper_bound_given = false;
        struct strv tokens = STRV_INIT;
        strv_split(&tokens, value, LIST_SEPARATORS);
        for (size_t i = 0; i < tokens.n; i++) {
                const char *token = tokens.v[i], *name = token;
                enum protocol_op op = OP_INCLUDE;
                if (name[0] == '!') {
                        op = OP_EXCLUDE;
                        name++;
                } else if (strncmp(name, ">=", 2) == 0) {
                        op = OP_AT_LEAST;
                        name += 2;
                } else if (strncmp(name, "<=", 2) == 0) {
                        op = OP_AT_MOST;
                        name += 2;
                }
                /* "! TLSv1" or ">= TLSv1.2": the operator stands alone, its name is the next token. */
                if (!*name && op != OP_INCLUDE && i + 1 < tokens.n)
                        name = tokens.v[++i];
                int idx = protocol_index(name);
                if (idx < 0) {
                        *ret_error = xasprintf("%s: unknown TLS protocol \"%.*s\" (known: %s)", param,
                                               TLS_POLICY_NAME_MAX, *name ? name : token, KNOWN_PROTOCOLS);
                        strv_done(&tokens);
                        return -EINVAL;
                }
                switch (op) {
                case OP_INCLUDE: included |= 1u << idx; break;
                case OP_EXCLUDE: excluded |= 1u << idx; break;
                case OP_AT_LEAST:
                        if (idx > lowest)
                                lowest = idx;
                        break;
                case OP_AT_MOST:
                        if (idx < highest)
                                highest = idx;
                        upper_bound_given = true;
                        break;
                }
        }
        strv_done(&tokens);

        unsigned enabled = included ? included : (1u << N_PROTOCOLS) - 1;
        enabled &= ~excluded;
        for (int i = 0; i < N_PROTOCOLS; i++)
                if (i < lowest || i > highest || i < FIRST_USABLE)
                        enabled &= ~(1u << i);
        if (!enabled) {
                *ret_error =
                        xasprintf("%s = %s leaves no TLS protocol enabled (SSLv2 and SSLv3 are never used)",
                                  param, value);
                return -EINVAL;
        }
        int top = N_PROTOCOLS - 1;
        while (!(enabled & (1u << top)))
                top--;
        int bottom = top;
        while (bottom > 0 && (enabled & (1u << (bottom - 1))))
                bottom--;
        /* OpenSSL takes one min..max range: an older protocol below a gap cannot be kept as well. */
        if (enabled & ((1u << bottom) - 1))
                *ret_warning =
                        xasprintf("%s = %s: the enabled TLS protocols are not one contiguous range; using "
                                  "%s%s%s only",
                                  param, value, protocols[bottom].name, bottom == top ? "" : " to ",
                                  bottom == top ? "" : protocols[top].name);
        *ret_min = protocols[bottom].version;
        /* No explicit ceiling: leave it open so protocols newer than this table still negotiate. */
        bool open_ended = top == N_PROTOCOLS - 1 && !included && !upper_bound_given;
        *ret_max = open_ended ? 0 : protocols[top].version;
        return 0;
}

static bool valid_cipher_name(const char *name)
{
        if (!*name || strlen(name) > TLS_POLICY_NAME_MAX)
                return false;
        for (const char *p = name; *p; p++)
                if (!isalnum((unsigned char)*p) && !strchr("-_.+=", *p))
                        return false;
        return true;
}

int tls_ciphers_build(const char *grade_param, const char *grade, const char *high_list,
                      const char *medium_list, const char *exclude_param, const char *exclude,
                      char **ret_list, char **ret_error)
{
        *ret_list = NULL;
        *ret_error = NULL;
        const char *g = grade + strspn(grade, " \t\r\n");
        size_t len = strlen(g);
        while (len && strchr(" \t\r\n", g[len - 1]))
                len--;
        const char *base = NULL, *base_param = NULL;
        if (len == 4 && strncasecmp(g, "high", 4) == 0) {
                base = high_list;
                base_param = "tls_high_cipherlist";
        } else if (len == 6 && strncasecmp(g, "medium", 6) == 0) {
                base = medium_list;
                base_param = "tls_medium_cipherlist";
        } else if ((len == 3 && strncasecmp(g, "low", 3) == 0) ||
                   (len == 6 && strncasecmp(g, "export", 6) == 0) ||
                   (len == 4 && strncasecmp(g, "null", 4) == 0)) {
                *ret_error =
                        xasprintf("%s = %.*s: refused, that cipher grade is insecure (use medium or high)",
                                  grade_param, (int)len, g);
                return -EINVAL;
        } else {
                *ret_error = xasprintf("%s: unknown cipher grade \"%.*s\" (use medium or high)", grade_param,
                                       (int)(len > TLS_POLICY_NAME_MAX ? TLS_POLICY_NAME_MAX : len), g);
                return -EINVAL;
        }
        if (isempty(base)) {
                *ret_error = xasprintf("%s = %.*s: %s is empty", grade_param, (int)len, g, base_param);
                return -EINVAL;
        }
        if (strlen(exclude) > TLS_POLICY_VALUE_MAX) {
                *ret_error =
                        xasprintf("%s: value longer than %d bytes", exclude_param, TLS_POLICY_VALUE_MAX);
                return -EINVAL;
        }
        struct buf out = BUF_INIT;
        buf_puts(&out, base);
        struct strv names = STRV_INIT;
        strv_split(&names, exclude, LIST_SEPARATORS);
        for (size_t i = 0; i < names.n; i++) {
                /* "!RC4" is accepted as well: exclusion is what the parameter means anyway. */
                const char *name = names.v[i][0] == '!' ? names.v[i] + 1 : names.v[i];
                if (!valid_cipher_name(name)) {
                        *ret_error = xasprintf("%s: invalid cipher name \"%.*s\"", exclude_param,
                                               TLS_POLICY_NAME_MAX, names.v[i]);
                        strv_done(&names);
                        buf_done(&out);
                        return -EINVAL;
                }
                buf_printf(&out, ":!%s", name);
        }
        strv_done(&names);
        *ret_list = buf_steal(&out);
        return 0;
}

int tls_policy_build(const struct tls_policy_settings *s, struct tls_policy *ret, char **ret_warning,
                     char **ret_error)
{
        *ret = (struct tls_policy){0};
        int r = tls_protocols_parse(s->protocols_param, s->protocols, &ret->min_version, &ret->max_version,
                                    ret_warning, ret_error);
        if (r < 0)
                return r;
        r = tls_ciphers_build(s->ciphers_param, s->ciphers, s->high_cipherlist, s->medium_cipherlist,
                              s->exclude_param, s->exclude, &ret->cipher_list, ret_error);
        if (r < 0) {
                free(*ret_warning);
                *ret_warning = NULL;
                return r;
        }
        ret->cipher_origin = xasprintf("%s = %s, %s", s->ciphers_param, s->ciphers, s->exclude_param);
        return 0;
}

void tls_policy_done(struct tls_policy *p)
{
        free(p->cipher_list);
        free(p->cipher_origin);
        *p = (struct tls_policy){0};
}

static const char *const level_names[] = {
        [TLS_NONE] = "none",           [TLS_MAY] = "may",
        [TLS_DANE] = "dane",           [TLS_ENCRYPT] = "encrypt",
        [TLS_DANE_ONLY] = "dane-only", [TLS_FINGERPRINT] = "fingerprint",
        [TLS_VERIFY] = "verify",       [TLS_SECURE] = "secure",
};

int tls_level_parse(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (strcasecmp(name, level_names[i]) == 0)
                        return (int)i;
        return -EINVAL;
}

const char *tls_level_name(enum tls_level level)
{
        return (size_t)level < ELEMENTSOF(level_names) ? level_names[level] : "unknown";
}

#define POLICY_SEPARATORS " \t\r\n"

/* Which of the policy's fields an attribute name fills; NULL for a name this client does not know. */
static char **policy_attribute(struct tls_dest_policy *p, const char *name, size_t len)
{
        static const char *const names[] = {"match", "ciphers", "protocols", "exclude"};
        char **fields[] = {&p->match, &p->ciphers, &p->protocols, &p->exclude};
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strlen(names[i]) == len && strncasecmp(name, names[i], len) == 0)
                        return fields[i];
        return NULL;
}

static int policy_token(struct tls_dest_policy *p, const char *token, char **ret_error)
{
        const char *eq = strchr(token, '=');
        if (!eq || eq == token) {
                *ret_error = xasprintf("\"%.*s\" is not an attribute (expected name=value, e.g. "
                                       "match=nexthop:.example.com)",
                                       TLS_POLICY_NAME_MAX, token);
                return -EINVAL;
        }
        char **field = policy_attribute(p, token, (size_t)(eq - token));
        if (!field) {
                *ret_error = xasprintf(
                        "unknown attribute \"%.*s\" (known: match, ciphers, protocols, exclude)",
                        (int)((size_t)(eq - token) > TLS_POLICY_NAME_MAX ? TLS_POLICY_NAME_MAX : eq - token),
                        token);
                return -EINVAL;
        }
        if (*field) {
                *ret_error = xasprintf("attribute \"%.*s\" given twice", (int)(eq - token), token);
                return -EINVAL;
        }
        if (!eq[1]) {
                *ret_error = xasprintf("attribute \"%.*s\" has no value", (int)(eq - token), token);
                return -EINVAL;
        }
        *field = xstrdup(eq + 1);
        return 0;
}

int tls_dest_policy_parse(const char *value, struct tls_dest_policy *ret, char **ret_error)
{
        *ret = (struct tls_dest_policy){0};
        *ret_error = NULL;
        if (strlen(value) > TLS_POLICY_VALUE_MAX) {
                *ret_error = xasprintf("policy longer than %d bytes", TLS_POLICY_VALUE_MAX);
                return -EINVAL;
        }
        struct strv tokens = STRV_INIT;
        strv_split(&tokens, value, POLICY_SEPARATORS);
        int r = 0;
        if (tokens.n == 0) {
                *ret_error = xstrdup("empty policy (expected a level: none, may, encrypt, dane, dane-only, "
                                     "fingerprint, verify or secure)");
                r = -EINVAL;
        } else if ((r = tls_level_parse(tokens.v[0])) < 0)
                *ret_error = xasprintf("unknown security level \"%.*s\" (known: none, may, encrypt, dane, "
                                       "dane-only, fingerprint, verify, secure)",
                                       TLS_POLICY_NAME_MAX, tokens.v[0]);
        else {
                ret->level = (enum tls_level)r;
                r = 0;
        }
        for (size_t i = 1; r == 0 && i < tokens.n; i++)
                r = policy_token(ret, tokens.v[i], ret_error);
        /* match= names what verify and secure check; elsewhere it would be silently meaningless. */
        if (r == 0 && ret->match && ret->level != TLS_VERIFY && ret->level != TLS_SECURE &&
            ret->level != TLS_FINGERPRINT) {
                *ret_error = xasprintf("match= applies to the verify, secure and fingerprint levels, not to "
                                       "\"%s\"",
                                       tls_level_name(ret->level));
                r = -EINVAL;
        }
        strv_done(&tokens);
        if (r < 0)
                tls_dest_policy_done(ret);
        return r;
}

void tls_dest_policy_done(struct tls_dest_policy *p)
{
        free(p->match);
        free(p->ciphers);
        free(p->protocols);
        free(p->exclude);
        *p = (struct tls_dest_policy){0};
}

/* A DNS name, an address literal, or ".domain": what X509_check_host / X509_check_ip_asc take. */
static bool valid_match_name(const char *name)
{
        size_t len = strlen(name);
        if (len == 0 || len > TLS_MATCH_NAME_MAX || streq(name, "."))
                return false;
        for (const char *p = name; *p; p++)
                if (!isalnum((unsigned char)*p) && !strchr(".-_:", *p))
                        return false;
        return true;
}

/* An IP address has no subdomains: dot-nexthop of [192.0.2.1] names nothing. */
static bool looks_like_address(const char *name)
{
        return strchr(name, ':') || strspn(name, "0123456789.") == strlen(name);
}

static void push_lower(struct strv *ret, const char *prefix, const char *name)
{
        char *v = xasprintf("%s%s", prefix, name);
        for (char *p = v; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        strv_push_take(ret, v);
}

int tls_match_expand(const char *param, const char *list, const char *separators, const char *hostname,
                     const char *nexthop, struct strv *ret, char **ret_error)
{
        *ret_error = NULL;
        struct strv tokens = STRV_INIT;
        strv_split(&tokens, list, separators);
        size_t before = ret->n;
        int r = 0;
        for (size_t i = 0; i < tokens.n && r == 0; i++) {
                const char *t = tokens.v[i];
                if (strcasecmp(t, "hostname") == 0 && !isempty(hostname))
                        push_lower(ret, "", hostname);
                else if (strcasecmp(t, "nexthop") == 0 && !isempty(nexthop))
                        push_lower(ret, "", nexthop);
                else if (strcasecmp(t, "dot-nexthop") == 0) {
                        if (!isempty(nexthop) && !looks_like_address(nexthop))
                                push_lower(ret, ".", nexthop);
                } else if (strcasecmp(t, "hostname") == 0 || strcasecmp(t, "nexthop") == 0)
                        continue; /* nothing to name (no host yet): the other strategies still apply */
                else if (valid_match_name(t))
                        push_lower(ret, "", t);
                else {
                        *ret_error = xasprintf("%s: \"%.*s\" is neither a match strategy (hostname, "
                                               "nexthop, dot-nexthop) nor a host name",
                                               param, TLS_POLICY_NAME_MAX, t);
                        r = -EINVAL;
                }
        }
        strv_done(&tokens);
        if (r == 0 && ret->n == before) {
                *ret_error = xasprintf("%s = %s names no certificate name to match", param, list);
                r = -EINVAL;
        }
        return r;
}

/* "ab:cd:EF" or "abcdef" -> "AB:CD:EF"; NULL when not whole hex bytes or longer than any digest. */
static char *normalize_fingerprint(const char *text)
{
        char digits[2 * TLS_FINGERPRINT_MAX + 1];
        size_t n = 0;
        for (const char *p = text; *p; p++) {
                if (*p == ':')
                        continue;
                if (!isxdigit((unsigned char)*p) || n >= 2 * TLS_FINGERPRINT_MAX)
                        return NULL;
                digits[n++] = (char)toupper((unsigned char)*p);
        }
        if (n == 0 || n % 2)
                return NULL;
        struct buf out = BUF_INIT;
        for (size_t i = 0; i < n; i += 2)
                buf_printf(&out, "%s%c%c", i ? ":" : "", digits[i], digits[i + 1]);
        return buf_steal(&out);
}

int tls_fingerprints_parse(const char *param, const char *list, const char *separators, struct strv *ret,
                           char **ret_error)
{
        *ret_error = NULL;
        struct strv tokens = STRV_INIT;
        strv_split(&tokens, list, separators);
        size_t before = ret->n;
        int r = 0;
        for (size_t i = 0; i < tokens.n && r == 0; i++) {
                char *fp = normalize_fingerprint(tokens.v[i]);
                if (!fp) {
                        *ret_error = xasprintf("%s: \"%.*s\" is not a fingerprint (hex bytes such as "
                                               "\"3D:95:34:...\", as openssl x509 -fingerprint prints)",
                                               param, TLS_POLICY_NAME_MAX, tokens.v[i]);
                        r = -EINVAL;
                } else
                        strv_push_take(ret, fp);
        }
        strv_done(&tokens);
        if (r == 0 && ret->n == before) {
                *ret_error =
                        xasprintf("%s is empty: the fingerprint level needs the server certificate's or "
                                  "public key's fingerprint",
                                  param);
                r = -EINVAL;
        }
        return r;
}
