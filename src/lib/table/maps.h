/* maps.h: a list of lookup tables searched in order, with Postfix's key orders for domains and addresses. */
#pragma once

#include <stdbool.h>

#include "buf.h"

/* Tables in one parameter value. */
#define MAPS_TABLES_MAX 64
/* Labels in a domain tried by maps_find_domain (DNS allows 127). */
#define MAPS_DOMAIN_LABELS_MAX 127

struct maps;

/*
 * Open every "type:name" in list (separated by commas or blanks; braces of inline:{...} keep
 * their contents together). On failure *err starts with the parameter name:
 * "transport_maps: sdbm:/etc/postfix/transport: unsupported dictionary type: sdbm (...)".
 * An empty list gives an empty set of tables in which nothing is found.
 */
int maps_open(const char *param_name, const char *list, struct maps **ret, char **ret_error);
void maps_free(struct maps *m);

/* First table that has key wins: 1 found (*ret_value malloc'd), 0 not found, <0 a table failed. */
int maps_find(struct maps *m, const char *key, char **ret_value);
/*
 * Postfix's transport_maps order: the domain itself, then ".parent" for each parent:
 * "a.b.example.net" tries "a.b.example.net", ".b.example.net", ".example.net", ".net".
 */
int maps_find_domain(struct maps *m, const char *domain, char **ret_value);
/*
 * Postfix's virtual/canonical order for "user@domain": "user@domain", then "user" only when
 * domain_is_local (the caller knows mydestination), then "@domain". An address without '@' is
 * looked up as it is.
 */
int maps_find_address(struct maps *m, const char *address, bool domain_is_local, char **ret_value);

const char *maps_param_name(const struct maps *m);
size_t maps_count(const struct maps *m);

/* Split a table list as maps_open does (commas/blanks outside braces). */
void maps_split_list(const char *list, struct strv *ret);
