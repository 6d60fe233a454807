/* virtual.h: virtual alias expansion (one-to-many, recursive) and canonical mapping (one-to-one), pure
 * functions over a lookup callback, plus table parameters opened on first use. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Postfix's defaults of virtual_alias_recursion_limit, _expansion_limit, _address_length_limit. */
#define VIRTUAL_RECURSION_LIMIT_DEFAULT      1000u
#define VIRTUAL_EXPANSION_LIMIT_DEFAULT      1000u
#define VIRTUAL_ADDRESS_LENGTH_LIMIT_DEFAULT 1000u
/*
 * Table lookups one expansion makes at most, whatever the limits say: without it, entries that fan
 * out to shared intermediate addresses could make one recipient cost exponentially many lookups.
 */
#define VIRTUAL_LOOKUPS_MAX 20000u
/* Rewrites of one address by canonical maps (Postfix stops there too and keeps the last result). */
#define VIRTUAL_CANONICAL_NESTING_MAX 100u

/* 1 found (*ret_value malloc'd), 0 not found, <0 the table failed (a temporary error). */
typedef int (*virtual_lookup_fn)(void *userdata, const char *address, char **ret_value);
/* The canonical form of an address taken from a table value ("user" -> "user@$myorigin"), malloc'd. */
typedef char *(*virtual_canon_fn)(void *userdata, const char *address);

struct virtual_ops {
        virtual_lookup_fn lookup;
        virtual_canon_fn canon; /* NULL: results are used as written */
        void *userdata;
        size_t recursion_limit;      /* virtual_alias_recursion_limit */
        size_t expansion_limit;      /* virtual_alias_expansion_limit */
        size_t address_length_limit; /* virtual_alias_address_length_limit; 0: none */
};

enum virtual_status {
        VIRTUAL_OK,
        VIRTUAL_LOOKUP_FAILED,   /* a table failed: try again later */
        VIRTUAL_RECURSION_LIMIT, /* virtual_alias_recursion_limit exceeded (an alias loop) */
        VIRTUAL_EXPANSION_LIMIT, /* virtual_alias_expansion_limit exceeded */
        VIRTUAL_ADDRESS_LENGTH,  /* a result longer than virtual_alias_address_length_limit */
        VIRTUAL_LOOKUPS_LIMIT,   /* VIRTUAL_LOOKUPS_MAX exceeded */
};

struct virtual_result {
        struct strv addresses;      /* the final recipients, each once (case-insensitive), in table order */
        enum virtual_status status; /* addresses is empty unless VIRTUAL_OK */
        char *where;                /* the address being expanded when it failed, or NULL */
        int lookup_error;           /* VIRTUAL_LOOKUP_FAILED: the callback's negative errno */
};

/*
 * Expand address through virtual alias tables as Postfix's cleanup does: an address the table has
 * is replaced by the addresses of its value (commas or blanks between them), recursively; one found
 * in its own value is kept and not looked up again ("user@x  user@x, archive@y"); an address the
 * table lacks is final. A value item "@domain" keeps the user part of the address looked up. Returns
 * 0 with ret->status VIRTUAL_OK, or -EIO / -ELOOP / -E2BIG / -ENAMETOOLONG with the status set.
 * Free ret with virtual_result_done() in every case.
 */
int virtual_expand(const struct virtual_ops *ops, const char *address, struct virtual_result *ret);
void virtual_result_done(struct virtual_result *r);

/* Name of the limit behind a status ("virtual_alias_recursion_limit"), for log lines. */
const char *virtual_status_limit_name(enum virtual_status s);

/*
 * One-to-one mapping (canonical_maps): the first address of the value replaces address, again and
 * again until the table has no entry, maps it to itself, or VIRTUAL_CANONICAL_NESTING_MAX rewrites
 * were made (*ret_nesting_exceeded then set; the last result is kept). *ret (malloc'd) is the result,
 * address itself when the table has nothing. 0, or the lookup's negative errno.
 */
int virtual_map_one(const struct virtual_ops *ops, const char *address, char **ret,
                    bool *ret_nesting_exceeded);

/* Split a table value into its addresses (commas and blanks, not inside "quoted" local parts). */
void virtual_split_value(const char *value, struct strv *ret);
/* A value item applied to the address looked up: "@domain" keeps the user part, else the item. */
char *virtual_apply_item(const char *address, const char *item);

/*
 * A table parameter (virtual_alias_maps, canonical_maps...) opened on first use and again after a
 * failure, so that a missing table defers mail until `postmap` creates it instead of stopping a
 * daemon. Each new failure text is logged once as a warning naming the parameter and the table.
 */
struct maps;
struct table_param {
        char *param;
        char *value;
        struct maps *maps;
        char *last_error;
};
void table_param_init(struct table_param *t, const char *param, const char *value);
/* True when the parameter names no table: nothing to open, nothing ever found. */
bool table_param_empty(const struct table_param *t);
/* The open tables, or a negative errno (the failure is logged; *ret_error, if given, is its text). */
int table_param_get(struct table_param *t, struct maps **ret, const char **ret_error);
void table_param_done(struct table_param *t);
