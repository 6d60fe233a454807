/* rewrite.c: cleanup's address canonicalisation: append_at_myorigin, append_dot_mydomain, header addresses.
 */
#include <stdint.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "rewrite.h"

/* The last '@' outside a quoted local part, or NULL. */
static const char *find_at(const char *s)
{
        const char *at = NULL;
        bool quoted = false;
        for (const char *p = s; *p; p++) {
                if (*p == '\\' && p[1]) {
                        p++;
                        continue;
                }
                if (*p == '"')
                        quoted = !quoted;
                else if (*p == '@' && !quoted)
                        at = p;
        }
        return at;
}

/* The first c outside quotes, or NULL. */
static const char *find_unquoted(const char *s, char c)
{
        bool quoted = false;
        for (const char *p = s; *p; p++) {
                if (*p == '\\' && p[1]) {
                        p++;
                        continue;
                }
                if (*p == '"')
                        quoted = !quoted;
                else if (*p == c && !quoted)
                        return p;
        }
        return NULL;
}

char *rewrite_address(const struct rewrite_opts *o, const char *addr)
{
        if (!*addr)
                return xstrdup("");

        /* RFC 5321 source routes are obsolete: only the final address counts. */
        if (addr[0] == '@') {
                const char *colon = find_unquoted(addr, ':');
                if (colon && colon[1])
                        addr = colon + 1;
        }

        _cleanup_free_ char *local = NULL, *domain = NULL;
        const char *at = find_at(addr);
        const char *bang = at ? NULL : find_unquoted(addr, '!');
        if (at) {
                local = xstrndup(addr, (size_t)(at - addr));
                domain = xstrdup(at + 1);
        } else if (bang && bang != addr && bang[1]) {
                /* swap_bangpath: "host!user" is "user@host" */
                local = xstrdup(bang + 1);
                domain = xstrndup(addr, (size_t)(bang - addr));
        } else
                local = xstrdup(addr);

        if (domain) {
                size_t n = strlen(domain);
                while (n > 0 && domain[n - 1] == '.')
                        domain[--n] = '\0';
                if (n == 0) {
                        free(domain);
                        domain = NULL;
                }
        }
        if (!domain) {
                if (!o->append_at_myorigin || !o->myorigin || !*o->myorigin)
                        return TAKE_PTR(local);
                domain = xstrdup(o->myorigin);
        }
        if (o->append_dot_mydomain && o->mydomain && *o->mydomain && domain[0] != '[' &&
            !strchr(domain, '.'))
                return xasprintf("%s@%s.%s", local, domain, o->mydomain);
        return xasprintf("%s@%s", local, domain);
}

static bool is_fws(char c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

char *rewrite_header_value(const struct rewrite_opts *o, const char *value, size_t len)
{
        if (len > REWRITE_HEADER_VALUE_MAX || memchr(value, '\0', len))
                return NULL;

        struct buf out = BUF_INIT;
        size_t copied = 0, i = 0;
        unsigned n_addrs = 0;
        bool changed = false;

        while (i <= len) {
                size_t lt = SIZE_MAX, gt = SIZE_MAX, tok_s = 0, tok_e = 0;
                bool quoted = false, angle = false, in_tok = false;
                unsigned depth = 0, n_toks = 0;

                for (; i < len; i++) {
                        char ch = value[i];
                        if (quoted || depth > 0) {
                                if (quoted)
                                        tok_e = i + 1;
                                if (ch == '\\' && i + 1 < len) {
                                        if (quoted)
                                                tok_e = i + 2;
                                        i++;
                                } else if (quoted && ch == '"')
                                        quoted = false;
                                else if (!quoted && ch == '(') {
                                        if (++depth > REWRITE_COMMENT_DEPTH_MAX)
                                                goto give_up;
                                } else if (!quoted && ch == ')')
                                        depth--;
                                continue;
                        }
                        bool word = false;
                        if (ch == '"') {
                                quoted = true;
                                word = !angle;
                        } else if (ch == '(') {
                                depth = 1;
                                in_tok = false;
                        } else if (ch == '<' && !angle) {
                                if (lt != SIZE_MAX)
                                        goto give_up; /* two route-addrs in one element: not an address list
                                                       */
                                lt = i;
                                angle = true;
                        } else if (ch == '>' && angle) {
                                gt = i;
                                angle = false;
                        } else if (ch == ':' && !angle && lt == SIZE_MAX) {
                                n_toks = 0; /* "group-name:" precedes the group's first address */
                                in_tok = false;
                        } else if ((ch == ',' || ch == ';') && !angle)
                                break;
                        else if (is_fws(ch))
                                in_tok = false;
                        else
                                word = !angle;
                        /* The words outside comments: a bare address is exactly one of them. */
                        if (word) {
                                if (!in_tok && n_toks++ == 0)
                                        tok_s = i;
                                in_tok = true;
                                tok_e = i + 1;
                        }
                }
                if (quoted || depth > 0 || angle)
                        goto give_up;

                size_t s = 0, e = 0;
                if (lt != SIZE_MAX) {
                        s = lt + 1;
                        e = gt;
                        while (s < e && is_fws(value[s]))
                                s++;
                        while (e > s && is_fws(value[e - 1]))
                                e--;
                } else if (n_toks == 1) {
                        s = tok_s;
                        e = tok_e;
                }
                if (e > s && n_addrs++ < REWRITE_HEADER_ADDRS_MAX) {
                        _cleanup_free_ char *addr = xstrndup(value + s, e - s);
                        _cleanup_free_ char *new = rewrite_address(o, addr);
                        if (!streq(addr, new)) {
                                buf_append(&out, value + copied, s - copied);
                                buf_puts(&out, new);
                                copied = e;
                                changed = true;
                        }
                }
                if (i >= len)
                        break;
                i++;
        }
        if (!changed)
                goto give_up;
        buf_append(&out, value + copied, len - copied);
        return buf_steal(&out);

give_up:
        buf_done(&out);
        return NULL;
}
