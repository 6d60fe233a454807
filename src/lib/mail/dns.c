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

/* One answer, whatever its rcode: the caller reads the records and the AD bit. */
struct answer {
        unsigned char buf[DNS_ANSWER_MAX];
        ns_msg msg;
        int rcode;
        bool ad; /* the resolver validated it (kept by glibc only with "options trust-ad") */
};

/* Append an EDNS0 OPT record with the DO bit (RFC 3225) to the query q of *len bytes: a validating
 * resolver then says whether it validated. -ENOSPC when it does not fit. */
static int add_do_bit(unsigned char *q, size_t size, int *len)
{
        static const unsigned char opt[] = {
                0,    0, ns_t_opt, /* root name, type OPT */
                0x04, 0,           /* UDP payload size 1024 */
                0,    0,           /* extended rcode, version */
                0x80, 0,           /* flags: DO */
                0,    0,           /* no options */
        };
        if ((size_t)*len + sizeof opt > size || *len < NS_HFIXEDSZ)
                return -ENOSPC;
        memcpy(q + *len, opt, sizeof opt);
        *len += (int)sizeof opt;
        q[11] = 1; /* ARCOUNT: the header's last field; res_nmkquery left it 0 */
        return 0;
}

/* One query through the resolv.conf servers; dnssec asks for validation. 0 with ret parsed (any rcode),
 * -EAGAIN when nothing usable came back (no server answered, or garbage). */
static int query(const char *name, int type, bool dnssec, struct answer *ret)
{
        struct __res_state st;
        memset(&st, 0, sizeof st);
        if (res_ninit(&st) < 0)
                return -EAGAIN;
        unsigned char q[NS_MAXDNAME + 64];
        int qlen = res_nmkquery(&st, ns_o_query, name, ns_c_in, type, NULL, 0, NULL, q, sizeof q);
        if (qlen >= 0 && dnssec && add_do_bit(q, sizeof q, &qlen) < 0)
                qlen = -1;
        int len = qlen < 0 ? -1 : res_nsend(&st, q, qlen, ret->buf, sizeof ret->buf);
        res_nclose(&st);
        if (len < NS_HFIXEDSZ || ns_initparse(ret->buf, len, &ret->msg) < 0)
                return -EAGAIN;
        ret->rcode = ns_msg_getflag(ret->msg, ns_f_rcode);
        ret->ad = ns_msg_getflag(ret->msg, ns_f_ad);
        return 0;
}

/* MX records of name: >= 0 count, -ENOENT domain does not exist, -ENODATA none, -EAGAIN try again.
 * *ret_secure: the answer (records or their absence) was DNSSEC-validated. */
static int lookup_mx(const char *name, bool dnssec, struct mx *mx, size_t max, bool *ret_secure)
{
        _cleanup_free_ struct answer *ans = xmalloc(sizeof *ans);
        *ret_secure = false;
        if (query(name, ns_t_mx, dnssec, ans) < 0)
                return -EAGAIN;
        if (ans->rcode == ns_r_nxdomain)
                return -ENOENT;
        if (ans->rcode != ns_r_noerror)
                return -EAGAIN;
        *ret_secure = dnssec && ans->ad;
        size_t n = 0;
        int count = ns_msg_count(ans->msg, ns_s_an);
        for (int i = 0; i < count && n < max; i++) {
                ns_rr rr;
                if (ns_parserr(&ans->msg, ns_s_an, i, &rr) < 0 || ns_rr_type(rr) != ns_t_mx ||
                    ns_rr_rdlen(rr) < 3)
                        continue;
                const unsigned char *rd = ns_rr_rdata(rr);
                mx[n].pref = ns_get16(rd);
                if (ns_name_uncompress(ns_msg_base(ans->msg), ns_msg_end(ans->msg), rd + 2, mx[n].host,
                                       sizeof mx[n].host) < 0)
                        continue;
                n++;
        }
        if (n == 0)
                return -ENODATA;
        qsort(mx, n, sizeof *mx, mx_compare);
        return (int)n;
}

/* With DNSSEC: did the address records of host validate? 1 when at least one family has records (an
 * address from /etc/hosts has no DNS answer at all) and every family asked about is secure; 0 when some
 * answer is insecure; -EAGAIN when one failed: SERVFAIL is also how a validating resolver answers bogus
 * data, and taking that for "insecure" would let whoever can break a signature turn DANE off. */
static int addrs_secure(const char *host, unsigned families)
{
        _cleanup_free_ struct answer *ans = xmalloc(sizeof *ans);
        bool any = false, insecure = false;
        const int types[] = {families & DNS_FAMILY_IPV4 ? ns_t_a : 0,
                             families & DNS_FAMILY_IPV6 ? ns_t_aaaa : 0};
        for (size_t i = 0; i < ELEMENTSOF(types); i++) {
                if (!types[i])
                        continue;
                if (query(host, types[i], true, ans) < 0 ||
                    (ans->rcode != ns_r_noerror && ans->rcode != ns_r_nxdomain))
                        return -EAGAIN;
                if (ans->rcode != ns_r_noerror || !ans->ad)
                        insecure = true;
                else if (ns_msg_count(ans->msg, ns_s_an) > 0)
                        any = true;
        }
        return any && !insecure;
}

/* Mark the addresses from index first on as the lookup of host found them. */
static void mark_secure(struct dns_result *res, size_t first, const char *host, unsigned families,
                        bool mx_secure, bool dnssec)
{
        if (first >= res->n)
                return;
        int r = dnssec ? addrs_secure(host, families) : 0;
        for (size_t i = first; i < res->n; i++) {
                res->addrs[i].mx_secure = dnssec && mx_secure;
                res->addrs[i].addr_secure = r > 0;
                res->addrs[i].addr_error = r < 0;
        }
}

int dns_resolve(const struct dns_nexthop *nh, unsigned families, struct dns_result *ret)
{
        memset(ret, 0, sizeof *ret);
        if (dns_resolve_literal(nh, ret))
                return 0;
        if (families == 0)
                families = DNS_FAMILY_IPV4 | DNS_FAMILY_IPV6;

        int r;
        bool mx_secure = !nh->mx; /* "[host]": the name is the configuration's, not an answer's */
        if (nh->mx && nh->mode != DNS_LOOKUP_NATIVE) {
                struct mx mx[DNS_MX_MAX];
                int n = lookup_mx(nh->host, nh->dnssec, mx, ELEMENTSOF(mx), &mx_secure);
                /* "dns, native": what DNS cannot tell, the native name service may (/etc/hosts). */
                if ((n == -EAGAIN || n == -ENOENT) && nh->mode == DNS_LOOKUP_DNS_NATIVE) {
                        n = -ENODATA;
                        mx_secure = false;
                }
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
                        for (int i = 0; i < n; i++) {
                                size_t first = ret->n;
                                if (lookup_host(mx[i].host, families, nh->port, ret) == -EAGAIN)
                                        temp = true;
                                mark_secure(ret, first, mx[i].host, families, mx_secure, nh->dnssec);
                        }
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
        mark_secure(ret, 0, nh->host, families, mx_secure, nh->dnssec);
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
                if (strcasecmp(support_level, "enabled") != 0 && !dns_support_dnssec(support_level))
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

bool dns_support_dnssec(const char *support_level)
{
        return support_level && strcasecmp(support_level, "dnssec") == 0;
}

int dns_trust_ad(void)
{
        struct __res_state st;
        memset(&st, 0, sizeof st);
        if (res_ninit(&st) < 0)
                return -EIO;
        bool trust = (st.options & RES_TRUSTAD) != 0;
        res_nclose(&st);
        return trust;
}

/* ---- TLSA ---- */

int dns_tlsa_lookup(const char *host, uint16_t port, struct dns_tlsa *ret)
{
        memset(ret, 0, sizeof *ret);
        ret->status = DNS_TLSA_ERROR;
        size_t hl = strlen(host);
        if (hl > 0 && host[hl - 1] == '.')
                hl--;
        int w = snprintf(ret->qname, sizeof ret->qname, "_%u._tcp.%.*s", port, (int)hl, host);
        if (w < 0 || (size_t)w >= sizeof ret->qname || hl == 0)
                return -EINVAL;
        _cleanup_free_ struct answer *ans = xmalloc(sizeof *ans);
        if (query(ret->qname, ns_t_tlsa, true, ans) < 0)
                return 0;
        /* SERVFAIL is what a validating resolver answers for data that fails validation (bogus). */
        if (ans->rcode != ns_r_noerror && ans->rcode != ns_r_nxdomain)
                return 0;
        if (!ans->ad) {
                ret->status = DNS_TLSA_INSECURE;
                return 0;
        }
        int count = ns_msg_count(ans->msg, ns_s_an);
        for (int i = 0; ans->rcode == ns_r_noerror && i < count; i++) {
                ns_rr rr;
                if (ns_parserr(&ans->msg, ns_s_an, i, &rr) < 0 || ns_rr_type(rr) != ns_t_tlsa)
                        continue;
                size_t len = ns_rr_rdlen(rr);
                if (len < 4 || len - 3 > DNS_TLSA_DATA_MAX || ret->n >= DNS_TLSA_MAX) {
                        ret->skipped++; /* no data, or more than we keep: unusable */
                        continue;
                }
                const unsigned char *rd = ns_rr_rdata(rr);
                struct dns_tlsa_rr *t = &ret->rr[ret->n++];
                t->usage = rd[0];
                t->selector = rd[1];
                t->mtype = rd[2];
                t->len = (uint16_t)(len - 3);
                memcpy(t->data, rd + 3, len - 3);
        }
        ret->status = ret->n + ret->skipped > 0 ? DNS_TLSA_FOUND : DNS_TLSA_NONE;
        return 0;
}

struct tlsa_query {
        char host[DNS_HOST_MAX + 1];
        uint16_t port;
        struct dns_tlsa res;
        dns_tlsa_callback cb;
        void *userdata;
};

static void tlsa_work(void *userdata)
{
        struct tlsa_query *q = userdata;
        (void)dns_tlsa_lookup(q->host, q->port, &q->res);
}

static void tlsa_done(void *userdata)
{
        struct tlsa_query *q = userdata;
        q->cb(&q->res, q->userdata);
        free(q);
}

int dns_tlsa_async(struct event_loop *e, const char *host, uint16_t port, dns_tlsa_callback cb,
                   void *userdata)
{
        if (strlen(host) > DNS_HOST_MAX)
                return -EINVAL;
        struct tlsa_query *q = xcalloc(1, sizeof *q);
        snprintf(q->host, sizeof q->host, "%s", host);
        q->port = port;
        q->cb = cb;
        q->userdata = userdata;
        int r = worker_run(e, tlsa_work, tlsa_done, q);
        if (r < 0)
                free(q);
        return r;
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

int dns_resolve_async(struct event_loop *e, const struct dns_nexthop *nh, unsigned families, dns_callback cb,
                      void *userdata)
{
        struct dns_query *q = xcalloc(1, sizeof *q);
        *q = (struct dns_query){.nh = *nh, .families = families, .cb = cb, .userdata = userdata};
        int r = worker_run(e, query_work, query_done, q);
        if (r < 0)
                free(q);
        return r;
}
