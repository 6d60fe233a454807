/* dns.c: next-hop parsing and MX/A/AAAA lookups (libresolv + getaddrinfo) run in bounded worker threads. */
#include "dns.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "alloc.h"
#include "macro.h"
#include "worker.h"

#define DNS_ANSWER_MAX 65535

static int parse_port(const char *s, size_t len, uint16_t *ret)
{
        static const struct {
                const char *name;
                uint16_t port;
        } names[] = {
                {"smtp", 25}, {"submission", 587}, {"smtps", 465}, {"submissions", 465}, {"lmtp", 24},
        };
        if (len == 0 || len > 16)
                return -EINVAL;
        if (isdigit((unsigned char)s[0])) {
                unsigned long v = 0;
                for (size_t i = 0; i < len; i++) {
                        if (!isdigit((unsigned char)s[i]))
                                return -EINVAL;
                        v = v * 10 + (unsigned long)(s[i] - '0');
                        if (v > 65535)
                                return -EINVAL;
                }
                if (v == 0)
                        return -EINVAL;
                *ret = (uint16_t)v;
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strlen(names[i].name) == len && strncasecmp(s, names[i].name, len) == 0) {
                        *ret = names[i].port;
                        return 0;
                }
        return -EINVAL;
}

static bool host_char_ok(char c, bool literal)
{
        if (isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_')
                return true;
        return literal && c == ':'; /* IPv6 literal */
}

int dns_nexthop_parse(const char *nexthop, uint16_t default_port, struct dns_nexthop *ret)
{
        struct dns_nexthop nh = {.port = default_port, .mx = true};
        const char *host, *rest;
        size_t host_len;

        if (!nexthop || strlen(nexthop) > DNS_NEXTHOP_MAX)
                return -EINVAL;
        if (nexthop[0] == '[') {
                const char *close = strchr(nexthop, ']');
                if (!close)
                        return -EINVAL;
                host = nexthop + 1;
                host_len = (size_t)(close - host);
                rest = close + 1;
                nh.mx = false;
        } else {
                /* host:port; a bare IPv6 address would be ambiguous, Postfix wants it in brackets. */
                const char *colon = strchr(nexthop, ':');
                host = nexthop;
                host_len = colon ? (size_t)(colon - nexthop) : strlen(nexthop);
                rest = nexthop + host_len;
        }
        if (host_len == 0 || host_len > DNS_HOST_MAX)
                return -EINVAL;
        if (host_len > 5 && strncasecmp(host, "ipv6:", 5) == 0 && !nh.mx) {
                host += 5; /* [ipv6:2001:db8::1] */
                host_len -= 5;
        }
        for (size_t i = 0; i < host_len; i++)
                if (!host_char_ok(host[i], !nh.mx))
                        return -EINVAL;
        if (*rest == ':') {
                int r = parse_port(rest + 1, strlen(rest + 1), &nh.port);
                if (r < 0)
                        return r;
        } else if (*rest != '\0')
                return -EINVAL;
        memcpy(nh.host, host, host_len);
        nh.host[host_len] = '\0';
        /* A trailing dot names the same host; keep names comparable. */
        if (nh.mx && host_len > 1 && nh.host[host_len - 1] == '.')
                nh.host[host_len - 1] = '\0';
        *ret = nh;
        return 0;
}

static void set_port(struct sockaddr_storage *sa, uint16_t port)
{
        if (sa->ss_family == AF_INET)
                ((struct sockaddr_in *)sa)->sin_port = htons(port);
        else if (sa->ss_family == AF_INET6)
                ((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
}

static void add_addr(struct dns_result *res, const char *host, const struct sockaddr *sa, socklen_t len,
                     uint16_t port)
{
        if (res->n >= DNS_ADDRS_MAX || len > sizeof(struct sockaddr_storage))
                return;
        for (size_t i = 0; i < res->n; i++) /* the same address under two MX names: try it once */
                if (res->addrs[i].salen == len && memcmp(&res->addrs[i].sa, sa, len) == 0)
                        return;
        struct dns_addr *a = &res->addrs[res->n++];
        memset(a, 0, sizeof *a);
        snprintf(a->host, sizeof a->host, "%s", host);
        memcpy(&a->sa, sa, len);
        a->salen = len;
        set_port(&a->sa, port);
}

int dns_resolve_literal(const struct dns_nexthop *nh, struct dns_result *ret)
{
        struct sockaddr_in sin = {.sin_family = AF_INET};
        struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};

        if (inet_pton(AF_INET, nh->host, &sin.sin_addr) == 1) {
                memset(ret, 0, sizeof *ret);
                add_addr(ret, nh->host, (struct sockaddr *)&sin, sizeof sin, nh->port);
                return 1;
        }
        if (inet_pton(AF_INET6, nh->host, &sin6.sin6_addr) == 1) {
                memset(ret, 0, sizeof *ret);
                add_addr(ret, nh->host, (struct sockaddr *)&sin6, sizeof sin6, nh->port);
                return 1;
        }
        return 0;
}

/* A/AAAA of one host. 0 (maybe nothing added), -EAGAIN temporary failure, -ENOENT no such host. */
static int lookup_host(const char *host, unsigned families, uint16_t port, struct dns_result *res)
{
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
        struct addrinfo *ai = NULL;

        hints.ai_family = families == DNS_FAMILY_IPV4   ? AF_INET
                          : families == DNS_FAMILY_IPV6 ? AF_INET6
                                                        : AF_UNSPEC;
        int r = getaddrinfo(host, NULL, &hints, &ai);
        if (r == EAI_NONAME || r == EAI_NODATA)
                return -ENOENT;
        if (r != 0)
                return -EAGAIN;
        for (struct addrinfo *p = ai; p; p = p->ai_next)
                add_addr(res, host, p->ai_addr, p->ai_addrlen, port);
        freeaddrinfo(ai);
        return 0;
}

struct mx {
        char host[DNS_HOST_MAX + 1];
        unsigned pref;
};

static int mx_compare(const void *a, const void *b)
{
        const struct mx *x = a, *y = b;
        return (int)x->pref - (int)y->pref;
}

/* MX records of name: >= 0 count, -ENOENT domain does not exist, -ENODATA none, -EAGAIN try again. */
static int lookup_mx(const char *name, struct mx *mx, size_t max)
{
        struct __res_state st;
        memset(&st, 0, sizeof st);
        if (res_ninit(&st) < 0)
                return -EAGAIN;
        _cleanup_free_ unsigned char *answer = xmalloc(DNS_ANSWER_MAX);
        int len = res_nquery(&st, name, ns_c_in, ns_t_mx, answer, DNS_ANSWER_MAX);
        int herr = st.res_h_errno;
        res_nclose(&st);
        if (len < 0)
                return herr == HOST_NOT_FOUND ? -ENOENT : herr == NO_DATA ? -ENODATA : -EAGAIN;
        ns_msg msg;
        if (ns_initparse(answer, len, &msg) < 0)
                return -EAGAIN;
        size_t n = 0;
        int count = ns_msg_count(msg, ns_s_an);
        for (int i = 0; i < count && n < max; i++) {
                ns_rr rr;
                if (ns_parserr(&msg, ns_s_an, i, &rr) < 0 || ns_rr_type(rr) != ns_t_mx ||
                    ns_rr_rdlen(rr) < 3)
                        continue;
                const unsigned char *rd = ns_rr_rdata(rr);
                mx[n].pref = ns_get16(rd);
                if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), rd + 2, mx[n].host,
                                       sizeof mx[n].host) < 0)
                        continue;
                n++;
        }
        if (n == 0)
                return -ENODATA;
        qsort(mx, n, sizeof *mx, mx_compare);
        return (int)n;
}

int dns_resolve(const struct dns_nexthop *nh, unsigned families, struct dns_result *ret)
{
        memset(ret, 0, sizeof *ret);
        if (dns_resolve_literal(nh, ret))
                return 0;
        if (families == 0)
                families = DNS_FAMILY_IPV4 | DNS_FAMILY_IPV6;

        int r;
        if (nh->mx && nh->mode != DNS_LOOKUP_NATIVE) {
                struct mx mx[DNS_MX_MAX];
                int n = lookup_mx(nh->host, mx, ELEMENTSOF(mx));
                /* "dns, native": what DNS cannot tell, the native name service may (/etc/hosts). */
                if ((n == -EAGAIN || n == -ENOENT) && nh->mode == DNS_LOOKUP_DNS_NATIVE)
                        n = -ENODATA;
                if (n == -ENOENT) {
                        ret->error = -ENOENT;
                        ret->permanent = true;
                        snprintf(ret->reason, sizeof ret->reason,
                                 "Host or domain name not found. Name service error for name=%s type=MX: "
                                 "Host "
                                 "not found",
                                 nh->host);
                        return ret->error;
                }
                if (n == -EAGAIN) {
                        ret->error = -EAGAIN;
                        snprintf(ret->reason, sizeof ret->reason,
                                 "Host or domain name not found. Name service error for name=%s type=MX: "
                                 "Host "
                                 "not found, try again",
                                 nh->host);
                        return ret->error;
                }
                if (n > 0) {
                        bool temp = false;
                        for (int i = 0; i < n; i++)
                                if (lookup_host(mx[i].host, families, nh->port, ret) == -EAGAIN)
                                        temp = true;
                        if (ret->n > 0)
                                return 0;
                        ret->error = temp ? -EAGAIN : -ENOENT;
                        snprintf(ret->reason, sizeof ret->reason,
                                 "Host or domain name not found. "
                                 "Name service error for name=%s type=A: Host not found%s",
                                 mx[0].host, temp ? ", try again" : "");
                        return ret->error;
                }
                /* No MX records: the domain's own address records (RFC 5321 5.1). */
        }
        r = lookup_host(nh->host, families, nh->port, ret);
        if (ret->n > 0)
                return 0;
        ret->error = r == -EAGAIN ? -EAGAIN : -ENOENT;
        ret->permanent = ret->error == -ENOENT && nh->mx;
        snprintf(ret->reason, sizeof ret->reason,
                 "Host or domain name not found. Name service error for name=%s type=A: Host not found%s",
                 nh->host, r == -EAGAIN ? ", try again" : "");
        return ret->error;
}

static bool list_has(const char *list, const char *word)
{
        size_t n = strlen(word);
        for (const char *p = list; *p;) {
                p += strspn(p, ", \t");
                size_t len = strcspn(p, ", \t");
                if (len == n && strncasecmp(p, word, n) == 0)
                        return true;
                p += len;
        }
        return false;
}

enum dns_lookup_mode dns_lookup_mode_parse(const char *support_level, bool disable_dns,
                                           const char *host_lookup, char **ret_warning)
{
        *ret_warning = NULL;
        if (support_level && *support_level) {
                if (strcasecmp(support_level, "disabled") == 0)
                        return DNS_LOOKUP_NATIVE;
                if (strcasecmp(support_level, "dnssec") == 0)
                        *ret_warning = xstrdup("smtp_dns_support_level = dnssec: DNSSEC validation is not "
                                               "implemented; DNS is used as with \"enabled\"");
                else if (strcasecmp(support_level, "enabled") != 0)
                        *ret_warning = xasprintf("invalid smtp_dns_support_level value \"%s\": using "
                                                 "\"enabled\" (valid: disabled, enabled, dnssec)",
                                                 support_level);
        } else if (disable_dns)
                return DNS_LOOKUP_NATIVE;

        const char *hl = host_lookup ? host_lookup : "";
        bool dns = list_has(hl, "dns"), native = list_has(hl, "native");
        if (!dns && !native) {
                if (!*ret_warning)
                        *ret_warning = xasprintf("invalid smtp_host_lookup value \"%s\": using \"dns\" "
                                                 "(valid: dns, native)",
                                                 hl);
                return DNS_LOOKUP_DNS;
        }
        return dns && native ? DNS_LOOKUP_DNS_NATIVE : native ? DNS_LOOKUP_NATIVE : DNS_LOOKUP_DNS;
}

/* ---- asynchronous lookups ---- */

struct dns_query {
        struct dns_nexthop nh;
        unsigned families;
        struct dns_result res;
        dns_callback cb;
        void *userdata;
};

static void query_work(void *userdata)
{
        struct dns_query *q = userdata;
        dns_resolve(&q->nh, q->families, &q->res);
}

static void query_done(void *userdata)
{
        struct dns_query *q = userdata;
        q->cb(&q->res, q->userdata);
        free(q);
}

int dns_resolve_async(sd_event *e, const struct dns_nexthop *nh, unsigned families, dns_callback cb,
                      void *userdata)
{
        struct dns_query *q = xcalloc(1, sizeof *q);
        *q = (struct dns_query){.nh = *nh, .families = families, .cb = cb, .userdata = userdata};
        int r = worker_run(e, query_work, query_done, q);
        if (r < 0)
                free(q);
        return r;
}
