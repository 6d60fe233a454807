/* own_addrs.h: the addresses this instance receives mail on (inet_interfaces, proxy_interfaces). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "config.h"
#include "netaddr.h"

/* Addresses kept: "all" lists every interface's. */
#define OWN_ADDRS_MAX 256

struct own_addrs {
        struct netaddr a[OWN_ADDRS_MAX];
        size_t n;
};

/*
 * inet_interfaces and proxy_interfaces as addresses: "all" is every interface's address,
 * "loopback-only" and "localhost" are 127.0.0.1 and ::1. Names other than these are skipped.
 */
void own_addrs_init(struct own_addrs *o, struct config *c);
bool own_addrs_contains(const struct own_addrs *o, const struct netaddr *n);
/* The same for a socket address (AF_INET or AF_INET6); other families are never ours. */
bool own_addrs_contains_sockaddr(const struct own_addrs *o, const struct sockaddr *sa);
