/* resolve.h: recipient address -> (transport, nexthop, local?), as Postfix's trivial-rewrite resolves it. */
#pragma once

#include <stdbool.h>

#include "config.h"

/* Entries in one domain list parameter (mydestination, relay_domains). */
#define RESOLVE_LIST_MAX 1024
/* Addresses taken from inet_interfaces, proxy_interfaces (and the host's interfaces for "all"). */
#define RESOLVE_LOCAL_ADDRS_MAX 256
/* Longest transport name (a master.cf service name) and nexthop accepted from a table. */
#define RESOLVE_TRANSPORT_MAX 64
#define RESOLVE_NEXTHOP_MAX   1024

struct resolve;

struct resolve_result {
        char *transport; /* master.cf service name: "local", "smtp", "relay" */
        char *nexthop;   /* "mx.example.com", "[192.0.2.1]:587", or the domain itself */
        bool local;      /* the domain is one of ours (mydestination, [our address], no domain) */
};

/*
 * Open the tables of mydestination, relay_domains and transport_maps and read the transport
 * parameters of c. On failure *err (malloc'd) names the parameter and the table.
 */
int resolve_new(struct config *c, struct resolve **ret, char **ret_error);
/* resolve_new() for a daemon: a failure is logged (an unsupported table type with its journal
 * catalog id, so `journalctl -x` explains it) and returned. */
int resolve_open_logged(struct config *c, struct resolve **ret);
void resolve_free(struct resolve *r);

/*
 * Resolve a recipient address ("user@domain", "user" without a domain is local). Pure except for
 * table lookups: 0, or a negative errno when a table failed (the caller defers the recipient).
 * An address of a virtual alias domain (not local) resolves to transport "error", nexthop
 * "5.1.1 <address>: User unknown in virtual alias table": cleanup rewrote those with an alias.
 * A local address that local would deliver to its mailbox (no alias_maps entry) resolves to
 * mailbox_transport when set; a virtual mailbox domain to virtual_transport.
 * Free *ret with resolve_result_done.
 */
int resolve_address(struct resolve *r, const char *address, struct resolve_result *ret);
void resolve_result_done(struct resolve_result *res);

/* Is domain (any case, trailing dot allowed, "[ip]" literals) delivered locally? 1, 0 or <0. */
int resolve_domain_is_local(struct resolve *r, const char *domain);

/*
 * Is domain one where the bare "user" key of canonical and virtual tables applies: $myorigin,
 * $mydestination, or [an address] of inet_interfaces/proxy_interfaces? 1, 0 or <0 (a table failed).
 */
int resolve_domain_is_ours(struct resolve *r, const char *domain);

/*
 * Is domain a virtual alias domain: listed in virtual_alias_domains, or, with its default
 * "$virtual_alias_maps", a domain for which virtual_alias_maps has the key "domain" or "@domain"?
 * Local domains are checked first by resolve_address(), so a domain also in mydestination is local.
 * 1, 0 or <0 (a table failed or cannot be opened: the caller answers with a temporary error).
 */
int resolve_domain_is_virtual_alias(struct resolve *r, const char *domain);

/*
 * The virtual_alias_maps entry of address, in Postfix's order: "user@domain", "user" (only when
 * resolve_domain_is_ours), "@domain". 1 found (*ret_value malloc'd: the value as written, one or more
 * addresses), 0 none, <0 a table failed. Not the expansion: cleanup does that (virtual.h).
 */
int resolve_virtual_alias_find(struct resolve *r, const char *address, char **ret_value);

/*
 * Is domain a virtual mailbox domain (virtual_mailbox_domains; its default "$virtual_mailbox_maps" means
 * the domains those tables have as keys)? Such addresses resolve to virtual_transport, the domain as
 * next hop. 1, 0 or <0 (a table failed or cannot be opened).
 */
int resolve_domain_is_virtual_mailbox(struct resolve *r, const char *domain);

/*
 * The virtual_mailbox_maps entry of address ("user@domain", then "@domain"): 1 (*ret_value malloc'd: the
 * mailbox path under virtual_mailbox_base, a trailing '/' for a Maildir), 0 none, <0 a table failed.
 */
int resolve_virtual_mailbox_find(struct resolve *r, const char *address, char **ret_value);

/*
 * Split a transport_maps value or a *_transport parameter "transport:nexthop" (either part may be
 * empty; a value without ':' is only a transport). Empty parts take def_transport / def_nexthop.
 * Pure. -EINVAL when a part is longer than its limit or the transport has characters no
 * master.cf service name has.
 */
int resolve_split_transport(const char *value, const char *def_transport, const char *def_nexthop,
                            struct resolve_result *ret);

/* The domain part of address folded to lower case, without a trailing dot; NULL when none. */
char *resolve_domain_of(const char *address);
