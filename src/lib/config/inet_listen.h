/* inet_listen.h: the addresses an instance's inet services listen on, from master.cf and main.cf. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "config.h"
#include "mastercf.h"

#define INET_LISTEN_MAX 256 /* listening addresses of one instance */

/* "127.0.0.1:2525", "[::1]:25": numeric, deduplicated, in master.cf and inet_interfaces order. */
struct inet_listen_set {
        char *v[INET_LISTEN_MAX];
        size_t n;
};

void inet_listen_set_done(struct inet_listen_set *ls);

/*
 * Add the listeners of one inet service: its own host, else every inet_interfaces address ("all"
 * is 0.0.0.0 / [::], "loopback-only" 127.0.0.1 / [::1]), for the enabled protocols. Names are not
 * resolved (this runs at boot, before name service): a non-numeric address is -EINVAL with *err.
 */
int inet_listen_service(struct config *c, const struct mastercf_service *svc, bool v4, bool v6,
                        struct inet_listen_set *ls, char **ret_error);

/* inet_protocols -> v4/v6 (v6 only when the host has IPv6). -EINVAL with *err for a bad value. */
int inet_listen_protocols(struct config *c, bool have_ipv6, bool *v4, bool *v6, char **ret_error);

/* The master_service_disable entry that disables svc ("inet", "smtp/inet"), or NULL. */
const char *inet_listen_disabled_by(struct strv *disable, const struct mastercf_service *svc);

/*
 * Refuse, as Postfix's fatal bind error does, a listener address that no network interface of this
 * host has (inet_interfaces = 192.0.2.48 copied from another host): probes each address of ls with
 * a bind to port 0, no packet sent. The kernel's ip_nonlocal_bind setting is the operator's explicit
 * "bind it anyway" and is honoured. -EADDRNOTAVAIL with *err naming the address and where it is set
 * (inet_interfaces in maincf, or svc's master.cf line); 0 when every address is local.
 */
int inet_listen_check_local(const struct mastercf_service *svc, const struct inet_listen_set *ls,
                            const char *maincf, char **ret_error);
