/* netaddr.h: pure IPv4/IPv6 address and CIDR parsing and matching (cidr: tables, mynetworks), unix socket
 * addresses. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

/* Longest accepted text: "[" + IPv6 with embedded IPv4 + "]/128". */
#define NETADDR_TEXT_MAX 64
/* Enough for netaddr_format / netaddr_cidr_format output, NUL included. */
#define NETADDR_FORMAT_MAX 56

struct netaddr {
        int family; /* AF_INET or AF_INET6 */
        uint8_t bytes[16];
};

struct netaddr_cidr {
        struct netaddr addr;
        unsigned prefix; /* 0..32 or 0..128 */
};

/*
 * "192.0.2.1", "2001:db8::1" or "[2001:db8::1]". Returns 0 or -EINVAL. An IPv4-mapped IPv6
 * address ("::ffff:192.0.2.1") stays IPv6; netaddr_match treats it as its IPv4 address.
 */
int netaddr_parse(const char *text, struct netaddr *ret);
/*
 * "192.0.2.0/24", "2001:db8::/32", "[2001:db8::]/32", "[::1]/128", or a bare address (the
 * full-length prefix). Returns 0, -EINVAL for bad syntax, or -EDOM when bits beyond the prefix
 * are set ("192.0.2.1/24"): *ret is still filled, with those bits cleared, so the caller can
 * suggest the right form.
 */
int netaddr_parse_cidr(const char *text, struct netaddr_cidr *ret);
bool netaddr_cidr_match(const struct netaddr_cidr *c, const struct netaddr *a);
bool netaddr_equal(const struct netaddr *a, const struct netaddr *b);
/* "192.0.2.1", "2001:db8::1" (no brackets); buf needs NETADDR_FORMAT_MAX bytes. */
const char *netaddr_format(const struct netaddr *a, char *buf, size_t size);
/* "192.0.2.0/24", "2001:db8::/32" */
const char *netaddr_cidr_format(const struct netaddr_cidr *c, char *buf, size_t size);

/*
 * A unix socket's address: a path, or "@name" in the abstract namespace (a leading NUL, counted by the
 * length). *ret_len is what bind/connect/sendto take. 0, -EINVAL for "" or "@", -ENAMETOOLONG when it
 * does not fit sun_path.
 */
int unix_address(const char *name, struct sockaddr_un *sa, socklen_t *ret_len);
