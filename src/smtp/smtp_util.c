/* smtp_util.c: the SMTP client's pure helpers (no I/O), kept apart so they can be unit-tested and fuzzed. */
#include "smtp_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "alloc.h"
#include "macro.h"

int smtp_data_encode(const char *content, size_t len, size_t *off, bool *bol, struct buf *out,
                     size_t max_out)
{
        size_t start = out->len;
        size_t i = *off;

        buf_reserve(out, max_out + 8);
        while (i < len && out->len - start < max_out) {
                /* Copy the rest of the line up to LF in one go. */
                if (*bol && content[i] == '.')
                        buf_putc(out, '.');
                const char *nl = memchr(content + i, '\n', len - i);
                size_t end = nl ? (size_t)(nl - content) : len;
                size_t take = end - i;
                if (take > max_out)
                        take = max_out;
                size_t copy = take;
                /* A CR already before the LF must not become CR CR LF. */
                if (nl && i + take == end && copy > 0 && content[end - 1] == '\r')
                        copy--;
                buf_append(out, content + i, copy);
                i += take;
                if (nl && i == end) {
                        buf_append(out, "\r\n", 2);
                        i++;
                        *bol = true;
                } else
                        *bol = false;
        }
        *off = i;
        if (i < len)
                return 0;
        if (!*bol)
                buf_append(out, "\r\n", 2);
        buf_append(out, ".\r\n", 3);
        return 1;
}

bool smtp_content_is_8bit(const char *content, size_t len)
{
        /* Words at a time, 64 bytes per test: a byte loop was a full slow pass over every message. */
        const uint64_t high = 0x8080808080808080u;
        while (len >= 64) {
                uint64_t acc = 0;
                for (int j = 0; j < 8; j++) {
                        uint64_t v;
                        memcpy(&v, content + 8 * j, sizeof v);
                        acc |= v;
                }
                if (acc & high)
                        return true;
                content += 64;
                len -= 64;
        }
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)content[i] & 0x80)
                        return true;
        return false;
}

static bool is_loopback(int family, const char *addr)
{
        if (family == AF_INET) {
                struct in_addr a;
                return inet_pton(AF_INET, addr, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
        }
        struct in6_addr a6;
        return inet_pton(AF_INET6, addr, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

void smtp_source_address(int family, const char *bind_address, const char *bind_param,
                         const char *inet_interfaces, char *out, size_t size, const char **ret_param)
{
        out[0] = '\0';
        *ret_param = NULL;
        if (!isempty(bind_address)) {
                snprintf(out, size, "%s", bind_address);
                *ret_param = bind_param;
                return;
        }
        /* Only a list of exactly one literal address of this family counts. */
        const char *sep = ", \t\r\n";
        const char *p = inet_interfaces ? inet_interfaces : "";
        p += strspn(p, sep);
        size_t n = strcspn(p, sep);
        if (n == 0 || n >= 64 || p[n + strspn(p + n, sep)] != '\0')
                return;
        char one[64];
        memcpy(one, p, n);
        one[n] = '\0';
        char *addr = one;
        if (addr[0] == '[' && n > 2 && addr[n - 1] == ']') {
                addr[n - 1] = '\0';
                addr++;
        }
        unsigned char tmp[sizeof(struct in6_addr)];
        if (inet_pton(family, addr, tmp) != 1 || is_loopback(family, addr))
                return;
        snprintf(out, size, "%s", addr);
        *ret_param = "inet_interfaces";
}

static void push_unique(struct strv *keys, char *key)
{
        for (size_t i = 0; i < keys->n; i++)
                if (strcasecmp(keys->v[i], key) == 0) {
                        free(key);
                        return;
                }
        strv_push_take(keys, key);
}

void smtp_sasl_keys(const char *nexthop, const char *host, uint16_t port, struct strv *keys)
{
        if (!isempty(nexthop))
                push_unique(keys, xstrdup(nexthop));
        if (isempty(host))
                return;
        push_unique(keys, xasprintf("[%s]:%u", host, port));
        push_unique(keys, xasprintf("[%s]", host));
        push_unique(keys, xasprintf("%s:%u", host, port));
        push_unique(keys, xstrdup(host));
}

int smtp_sasl_split(const char *value, char **ret_user, char **ret_pass)
{
        if (!value || strlen(value) > SMTP_SASL_VALUE_MAX)
                return -EINVAL;
        const char *colon = strchr(value, ':');
        if (!colon || colon == value)
                return -EINVAL;
        *ret_user = xstrndup(value, (size_t)(colon - value));
        *ret_pass = xstrdup(colon + 1);
        return 0;
}

int smtp_sasl_options_parse(const char *list, unsigned *ret)
{
        static const struct {
                const char *word;
                unsigned flag;
        } words[] = {
                {"noplaintext", SMTP_SASL_NOPLAINTEXT}, {"noanonymous", SMTP_SASL_NOANONYMOUS},
                {"noactive", SMTP_SASL_NOACTIVE},       {"nodictionary", SMTP_SASL_NODICTIONARY},
                {"mutual_auth", SMTP_SASL_MUTUAL_AUTH},
        };
        struct strv v = STRV_INIT;
        unsigned flags = 0;
        int r = 0;

        strv_split(&v, list ? list : "", ", \t\r\n");
        for (size_t i = 0; i < v.n && r == 0; i++) {
                size_t j;
                for (j = 0; j < ELEMENTSOF(words); j++)
                        if (strcasecmp(v.v[i], words[j].word) == 0) {
                                flags |= words[j].flag;
                                break;
                        }
                if (j == ELEMENTSOF(words))
                        r = -EINVAL;
        }
        strv_done(&v);
        if (r == 0)
                *ret = flags;
        return r;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *smtp_base64(const void *data, size_t len)
{
        const unsigned char *p = data;
        char *out = xmalloc((len + 2) / 3 * 4 + 1);
        size_t o = 0;
        for (size_t i = 0; i < len; i += 3) {
                unsigned v = (unsigned)p[i] << 16;
                if (i + 1 < len)
                        v |= (unsigned)p[i + 1] << 8;
                if (i + 2 < len)
                        v |= p[i + 2];
                out[o++] = b64[(v >> 18) & 63];
                out[o++] = b64[(v >> 12) & 63];
                out[o++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
                out[o++] = i + 2 < len ? b64[v & 63] : '=';
        }
        out[o] = '\0';
        return out;
}

int smtp_base64_decode(const char *text, void *out, size_t size)
{
        unsigned char *o = out;
        size_t n = 0;
        unsigned v = 0;
        int bits = 0;
        for (const char *p = text; *p && *p != '='; p++) {
                const char *c = strchr(b64, *p);
                if (!c || *p == '\0')
                        return -EINVAL;
                v = (v << 6) | (unsigned)(c - b64);
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        if (n >= size)
                                return -EINVAL;
                        o[n++] = (unsigned char)(v >> bits);
                        v &= (1u << bits) - 1;
                }
        }
        return (int)n;
}

bool smtp_reply_names_myself(const char *text, const char *myhostname)
{
        if (!text || isempty(myhostname))
                return false;
        size_t n = strcspn(text, " \t\r\n");
        size_t m = strlen(myhostname);
        if (m > 0 && myhostname[m - 1] == '.')
                m--;
        if (n > 0 && text[n - 1] == '.')
                n--;
        return n == m && n > 0 && strncasecmp(text, myhostname, n) == 0;
}

char *smtp_loop_reason(const char *nexthop, const char *domain)
{
        return xasprintf(
                "mail for %s loops back to myself (if this host is the final destination for %s, "
                "add it to mydestination; otherwise fix relayhost, transport_maps or the MX records "
                "of %s)",
                nexthop, domain, nexthop);
}

int lmtp_nexthop_parse(const char *nexthop, const char *queue_dir, struct dns_nexthop *ret_inet,
                       struct dns_addr *ret_unix)
{
        if (strncasecmp(nexthop, "unix:", 5) == 0) {
                const char *path = nexthop + 5;
                if (!path[0] || strlen(path) > DNS_HOST_MAX)
                        return -EINVAL;
                struct sockaddr_un sun = {.sun_family = AF_UNIX};
                int n = path[0] == '/'
                                ? snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path)
                                : snprintf(sun.sun_path, sizeof sun.sun_path, "%s/%s", queue_dir, path);
                if (n < 0 || (size_t)n >= sizeof sun.sun_path)
                        return -ENAMETOOLONG;
                *ret_unix = (struct dns_addr){0};
                snprintf(ret_unix->host, sizeof ret_unix->host, "%s", path);
                memcpy(&ret_unix->sa, &sun, sizeof sun);
                ret_unix->salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
                return 1;
        }
        if (strncasecmp(nexthop, "inet:", 5) == 0)
                nexthop += 5;
        int r = dns_nexthop_parse(nexthop, LMTP_DEFAULT_PORT, ret_inet);
        if (r < 0)
                return r;
        ret_inet->mx = false; /* LMTP names a host, never a mail domain */
        return 0;
}
