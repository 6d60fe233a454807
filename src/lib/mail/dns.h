/* dns.h: next-hop syntax and MX/A/AAAA resolution for the SMTP client, off the event loop in worker threads.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

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
};

/*
 * Pure: the lookup mode Postfix's settings ask for. support_level ("", "disabled", "enabled",
 * "dnssec") wins over disable_dns; host_lookup is the smtp_host_lookup list ("dns", "native").
 * *ret_warning (malloc'd, or NULL) names a value that was not understood and what is used instead.
 */
enum dns_lookup_mode dns_lookup_mode_parse(const char *support_level, bool disable_dns,
                                           const char *host_lookup, char **ret_warning);

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
int dns_resolve_async(sd_event *e, const struct dns_nexthop *nh, unsigned families, dns_callback cb,
                      void *userdata);
