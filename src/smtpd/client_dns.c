/* client_dns.c: what DNS says about an SMTP client (verified name, reverse name, DNS blocklist
 * listings); blocking, so smtpd runs it in a worker thread before the greeting. */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "macro.h"
#include "netaddr.h"
#include "smtpd.h"

/* A DNS answer buffer: blocklist answers are a few records. */
#define CLIENT_DNS_ANSWER_MAX 4096

static int to_sockaddr(const struct netaddr *n, struct sockaddr_storage *ss, socklen_t *len)
{
        memset(ss, 0, sizeof *ss);
        if (n->family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *)ss;
                in->sin_family = AF_INET;
                memcpy(&in->sin_addr, n->bytes, 4);
                *len = sizeof *in;
        } else {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
                in6->sin6_family = AF_INET6;
                memcpy(&in6->sin6_addr, n->bytes, 16);
                *len = sizeof *in6;
        }
        return 0;
}

/* Does name have an address record equal to n? 0 yes, -ENOENT no, -EAGAIN could not tell. */
static int forward_confirms(const char *name, const struct netaddr *n)
{
        struct addrinfo hints = {.ai_family = n->family, .ai_socktype = SOCK_STREAM};
        struct addrinfo *ai = NULL;
        int r = getaddrinfo(name, NULL, &hints, &ai);
        if (r == EAI_AGAIN)
                return -EAGAIN;
        if (r != 0)
                return -ENOENT;
        int found = -ENOENT;
        for (struct addrinfo *p = ai; p && found < 0; p = p->ai_next) {
                const void *bytes = n->family == AF_INET
                                            ? (const void *)&((struct sockaddr_in *)p->ai_addr)->sin_addr
                                            : (const void *)&((struct sockaddr_in6 *)p->ai_addr)->sin6_addr;
                if (memcmp(bytes, n->bytes, n->family == AF_INET ? 4 : 16) == 0)
                        found = 0;
        }
        freeaddrinfo(ai);
        return found;
}

static void lookup_names(const struct netaddr *n, struct smtpd_client_dns *ret)
{
        struct sockaddr_storage ss;
        socklen_t len;
        to_sockaddr(n, &ss, &len);
        char host[sizeof ret->name]; /* a DNS name is at most 255 bytes */
        int r = getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, NULL, 0, NI_NAMEREQD);
        if (r != 0) {
                ret->reverse_status = r == EAI_AGAIN ? -EAGAIN : -ENOENT;
                ret->name_status = ret->reverse_status;
                return;
        }
        memcpy(ret->reverse_name, host, sizeof host);
        ret->reverse_status = 0;
        ret->name_status = forward_confirms(host, n);
        if (ret->name_status == 0)
                memcpy(ret->name, host, sizeof host);
}

/* "d.c.b.a" for IPv4, the reversed nibbles for IPv6: the blocklist query's first labels. */
static void reversed_labels(const struct netaddr *n, char *buf, size_t size)
{
        size_t off = 0;
        if (n->family == AF_INET) {
                snprintf(buf, size, "%u.%u.%u.%u", n->bytes[3], n->bytes[2], n->bytes[1], n->bytes[0]);
                return;
        }
        for (int i = 15; i >= 0 && off + 4 < size; i--)
                off += (size_t)snprintf(buf + off, size - off, "%x.%x%s", n->bytes[i] & 0xf,
                                        n->bytes[i] >> 4, i ? "." : "");
}

/* One query: >0 answer length, -ENOENT no such name or no such record, -EAGAIN could not tell. */
static int query(const char *name, int type, unsigned char *answer)
{
        struct __res_state st;
        memset(&st, 0, sizeof st);
        if (res_ninit(&st) < 0)
                return -EAGAIN;
        int len = res_nquery(&st, name, ns_c_in, type, answer, CLIENT_DNS_ANSWER_MAX);
        int herr = st.res_h_errno;
        res_nclose(&st);
        if (len < 0)
                return herr == HOST_NOT_FOUND || herr == NO_DATA ? -ENOENT : -EAGAIN;
        return len;
}

/* The first A record's address, and the first TXT string (the list's reason) when there is one. */
static void rbl_lookup(const char *qname, struct smtpd_rbl_answer *ret)
{
        _cleanup_free_ unsigned char *answer = xmalloc(CLIENT_DNS_ANSWER_MAX);
        int len = query(qname, ns_t_a, answer);
        ret->status = len == -ENOENT ? 0 : len < 0 ? -EAGAIN : 0;
        ns_msg msg;
        if (len <= 0 || ns_initparse(answer, len, &msg) < 0)
                return;
        for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
                ns_rr rr;
                if (ns_parserr(&msg, ns_s_an, i, &rr) == 0 && ns_rr_type(rr) == ns_t_a &&
                    ns_rr_rdlen(rr) == 4) {
                        inet_ntop(AF_INET, ns_rr_rdata(rr), ret->addr, sizeof ret->addr);
                        ret->status = 1;
                        break;
                }
        }
        if (ret->status != 1 || (len = query(qname, ns_t_txt, answer)) <= 0 ||
            ns_initparse(answer, len, &msg) < 0)
                return;
        for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
                ns_rr rr;
                if (ns_parserr(&msg, ns_s_an, i, &rr) == 0 && ns_rr_type(rr) == ns_t_txt &&
                    ns_rr_rdlen(rr) > 0) {
                        const unsigned char *rd = ns_rr_rdata(rr);
                        size_t n = rd[0] < ns_rr_rdlen(rr) ? rd[0] : (size_t)ns_rr_rdlen(rr) - 1;
                        snprintf(ret->txt, sizeof ret->txt, "%.*s", (int)n, (const char *)rd + 1);
                        break;
                }
        }
}

void smtpd_client_dns_lookup(const char *addr, bool names, const struct strv *zones,
                             struct smtpd_client_dns *ret)
{
        *ret = (struct smtpd_client_dns){.name_status = -ENOENT, .reverse_status = -ENOENT};
        snprintf(ret->name, sizeof ret->name, "unknown");
        snprintf(ret->reverse_name, sizeof ret->reverse_name, "unknown");
        struct netaddr n;
        if (netaddr_parse(addr, &n) < 0)
                return;
        if (names)
                lookup_names(&n, ret);
        char rev[80];
        reversed_labels(&n, rev, sizeof rev);
        for (size_t i = 0; i < zones->n && ret->n_rbl < SMTPD_RBL_ZONES_MAX; i++) {
                struct smtpd_rbl_answer *a = &ret->rbl[ret->n_rbl++];
                snprintf(a->zone, sizeof a->zone, "%s", zones->v[i]);
                _cleanup_free_ char *qname = xasprintf("%s.%s", rev, zones->v[i]);
                rbl_lookup(qname, a);
        }
}

/* ---- the DNS facts of restrictions evaluated at a command (reject_unknown_*, reject_rhsbl_*) ---- */

/* Has domain any MX, A or AAAA record? 0 yes, -ENOENT no (or no such domain), -EAGAIN no answer. */
static int domain_exists(const char *domain)
{
        _cleanup_free_ unsigned char *answer = xmalloc(CLIENT_DNS_ANSWER_MAX);
        static const int types[] = {ns_t_mx, ns_t_a, ns_t_aaaa};
        int status = -ENOENT;
        for (size_t i = 0; i < ELEMENTSOF(types); i++) {
                int len = query(domain, types[i], answer);
                if (len > 0)
                        return 0;
                if (len == -EAGAIN)
                        status = -EAGAIN;
        }
        return status;
}

void smtpd_dns_fact_lookup(const char *key, struct smtpd_dns_fact *ret)
{
        *ret = (struct smtpd_dns_fact){.status = -EAGAIN};
        snprintf(ret->key, sizeof ret->key, "%s", key);
        if (strncmp(key, "exists:", 7) == 0) {
                ret->status = domain_exists(key + 7);
        } else if (strncmp(key, "listed:", 7) == 0) {
                struct smtpd_rbl_answer a = {0};
                rbl_lookup(key + 7, &a);
                ret->status = a.status;
                memcpy(ret->addr, a.addr, sizeof ret->addr);
                memcpy(ret->txt, a.txt, sizeof ret->txt);
        }
}
