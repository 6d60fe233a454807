/* access_lists.h: smtpd's address and domain lists (mynetworks, mydestination, relay_domains). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "dict.h"
#include "buf.h"

/* Entries of one list parameter (mynetworks, mydestination, relay_domains, a restriction list). */
#define ACCESS_LIST_MAX 1024
/* Labels of a domain walked for parent-domain lookups. */
#define ACCESS_DOMAIN_LABELS_MAX 127

/* A network list: CIDR blocks and lookup tables keyed by the client address. */
struct netlist {
        struct netaddr_cidr *cidrs;
        size_t n_cidrs;
        struct dict **tables;
        size_t n_tables;
};

/* A domain list: names (with Postfix's parent-domain matching where it applies) and tables. */
struct domlist {
        struct strv names; /* lower case; "!" prefix kept for negation */
        struct dict **tables;
        size_t n_tables;
        bool subdomains; /* "example.com" also matches "sub.example.com" */
};

/* "type:name" (a lookup table) rather than an address, network or name. */
bool is_table_spec(const char *s);

/* Parse a list parameter; *err (malloc'd) names the parameter and the problem. */
int netlist_init(struct netlist *l, const char *param, const char *value, char **ret_error);
/* Printable address in the list: 1, 0, or <0 when a table failed. */
int netlist_match(struct netlist *l, const char *addr_text);
void netlist_done(struct netlist *l);

/* subdomains: "example.com" also matches "sub.example.com" (parent_domain_matches_subdomains). */
int domlist_init(struct domlist *l, const char *param, const char *value, bool subdomains, char **ret_error);
/* domain: lower case, no trailing dot. 1 listed, 0 not, <0 table failure. */
int domlist_match(struct domlist *l, const char *domain);
void domlist_done(struct domlist *l);
