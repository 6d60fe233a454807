/* dns.h: next-hop syntax and MX/A/AAAA resolution for the SMTP client, off the event loop in worker threads.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "event.h"

#define DNS_HOST_MAX    255 /* a DNS name (RFC 1035) or an address literal */
#define DNS_NEXTHOP_MAX 300 /* "[" host "]:" port */
#define DNS_MX_MAX      32  /* MX records used from one answer */
#define DNS_ADDRS_MAX   32  /* addresses kept per lookup, over all MX hosts */
#define DNS_REASON_MAX  512

/* How names are looked up: smtp_dns_support_level, disable_dns_lookups and smtp_host_lookup. */
enum dns_lookup_mode {
        DNS_LOOKUP_DNS,        /* MX records from DNS, then the hosts' addresses */
        DNS_LOOKUP_NATIVE,     /* no DNS query: the next hop's own name through getaddrinfo (nsswitch) */
        DNS_LOOKUP_DNS_NATIVE, /* "dns, native": DNS, and the native lookup when DNS fails temporarily */
};

/* A parsed next hop: "[host]:port", "[ip]", "host:port", "host" (Postfix's relayhost syntax). */
struct dns_nexthop {
        char host[DNS_HOST_MAX + 1]; /* without brackets */
        uint16_t port;
        bool mx;                   /* look up MX records (no brackets) */
        enum dns_lookup_mode mode; /* DNS_LOOKUP_DNS from dns_nexthop_parse; the caller sets it */
        bool dnssec;               /* smtp_dns_support_level = dnssec: record which answers were secure */
};

/*
 * Pure: the lookup mode Postfix's settings ask for. support_level ("", "disabled", "enabled",
 * "dnssec") wins over disable_dns; host_lookup is the smtp_host_lookup list ("dns", "native").
 * *ret_warning (malloc'd, or NULL) names a value that was not understood and what is used instead.
 */
enum dns_lookup_mode dns_lookup_mode_parse(const char *support_level, bool disable_dns,
                                           const char *host_lookup, char **ret_warning);

/* Pure: smtp_dns_support_level asks for DNSSEC ("dnssec", any case). */
bool dns_support_dnssec(const char *support_level);

/*
 * Does the resolver configuration (/etc/resolv.conf) pass the AD bit on? glibc clears it unless
 * "options trust-ad" is set: without it every answer counts as insecure. -errno when it cannot be read.
 */
int dns_trust_ad(void);

/*
 * Pure. default_port applies when no ":port" is given; the port may be a number or one of the
 * names smtp, submission, smtps, submissions, lmtp. -EINVAL for an empty host, a bad port, an
 * unbalanced bracket or a host with characters no host name or address literal has.
 */
int dns_nexthop_parse(const char *nexthop, uint16_t default_port, struct dns_nexthop *ret);

struct dns_addr {
        char host[DNS_HOST_MAX + 1]; /* the name the address belongs to (MX host, or the next hop) */
        struct sockaddr_storage sa;  /* port filled in */
        socklen_t salen;
        /* With nh->dnssec: the name came from a DNSSEC-validated MX answer (or is the next hop itself),
         * and its address records validated too. RFC 7672 2.2: TLSA records only for a secure host. */
        bool mx_secure, addr_secure;
        bool addr_error; /* asking for that status failed (SERVFAIL: bogus, or no answer): DANE defers */
};

struct dns_result {
        struct dns_addr addrs[DNS_ADDRS_MAX];
        size_t n;
        int error;                   /* 0 when n > 0; else a negative errno */
        bool permanent;              /* the name does not exist: bounce rather than defer */
        char reason[DNS_REASON_MAX]; /* "Host or domain name not found. ..." when n == 0 */
};

/* Address families wanted: from inet_protocols ("all", "ipv4", "ipv6", "ipv4, ipv6"). */
enum { DNS_FAMILY_IPV4 = 1 << 0, DNS_FAMILY_IPV6 = 1 << 1 };

/* ---- TLSA (RFC 6698) for DANE (RFC 7672) ---- */

#define DNS_TLSA_MAX      16   /* records used from one answer */
#define DNS_TLSA_DATA_MAX 1024 /* longer association data (a whole certificate) is skipped */

enum dns_tlsa_status {
        DNS_TLSA_FOUND, /* a validated (AD) answer with records */
        DNS_TLSA_NONE,  /* a validated answer that there are none (NODATA or NXDOMAIN) */
        DNS_TLSA_INSECURE, /* an answer without the AD bit: unsigned zone, or a resolver that does not validate */
        DNS_TLSA_ERROR, /* SERVFAIL (a validating resolver's answer to bogus data), timeout, garbage */
};

struct dns_tlsa_rr {
        uint8_t usage, selector, mtype;
        uint16_t len;
        unsigned char data[DNS_TLSA_DATA_MAX];
};

struct dns_tlsa {
        enum dns_tlsa_status status;
        char qname[DNS_HOST_MAX + 16]; /* _port._tcp.host */
        struct dns_tlsa_rr rr[DNS_TLSA_MAX];
        size_t n;
        size_t skipped; /* records too long to keep: the caller counts them as unusable */
};

/* Blocking: TLSA records of _port._tcp.host with their DNSSEC status. Fills *ret; 0 or -EINVAL (bad name). */
int dns_tlsa_lookup(const char *host, uint16_t port, struct dns_tlsa *ret);

/* dns_tlsa_lookup in a worker thread; cb runs from e's loop (the result is the callee's until it returns).
 * 0, or a negative errno: nothing was started and cb is never called. */
typedef void (*dns_tlsa_callback)(const struct dns_tlsa *res, void *userdata);
int dns_tlsa_async(struct event_loop *e, const char *host, uint16_t port, dns_tlsa_callback cb,
                   void *userdata);

/* Blocking lookup (MX, then A/AAAA for each exchanger in preference order). Fills *ret; returns ret->error.
 */
int dns_resolve(const struct dns_nexthop *nh, unsigned families, struct dns_result *ret);

/* An address literal needs no lookup: 1 and *ret filled, 0 when nh->host is a name. Pure. */
int dns_resolve_literal(const struct dns_nexthop *nh, struct dns_result *ret);

/*
 * Run dns_resolve in a worker thread and call cb from the event loop of e with the result (owned by
 * the callee until it returns). Never blocks the loop (worker.h: a bounded number of threads).
 * 0 or a negative errno (nothing was started, cb is never called).
 */
typedef void (*dns_callback)(const struct dns_result *res, void *userdata);
int dns_resolve_async(struct event_loop *e, const struct dns_nexthop *nh, unsigned families, dns_callback cb,
                      void *userdata);
