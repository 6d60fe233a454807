/* params.h: the one table of main.cf parameters (name, type, default, description) behind parsing, defaults
 * and postconf -d. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum param_type {
        PARAM_STRING,
        PARAM_LIST, /* elements separated by ", \t\r\n"; {...} groups one element */
        PARAM_BOOL, /* yes / no */
        PARAM_INT,
        PARAM_TIME, /* number with optional unit s, m, h, d, w; a bare number uses the default unit */
        PARAM_SIZE, /* bytes, non-negative */
};

enum {
        PARAM_F_TABLES =
                1u << 0, /* list elements may be lookup tables (type:name), checked by postfix check */
        PARAM_F_DYNAMIC = 1u << 1,  /* default computed at run time (host name, config directory) */
        PARAM_F_READONLY = 1u << 2, /* informational, e.g. mail_version: not meant to be set in main.cf */
        /* With PARAM_F_TABLES: tables written at run time (caches) or by a command (alias_database
         * by newaliases), so postfix check tests their type but not that the file exists yet. */
        PARAM_F_CREATED = 1u << 3,
        /* Known to Postfix users but not acted on by postd yet: setting it earns a warning, never
         * silence (postfix check and the master at start name it). */
        PARAM_F_INERT = 1u << 4,
};

struct param_def {
        const char *name;
        enum param_type type;
        const char *def; /* as postconf -d shows it; may contain $references */
        char unit;       /* PARAM_TIME: unit of a bare number ('s', 'm', 'h', 'd', 'w'); else 0 */
        unsigned flags;
        const char *description;
};

/* The table, sorted by name. */
const struct param_def *param_table(size_t *ret_n);
/* Exact lookup in the table; NULL when the name is not a built-in parameter. */
const struct param_def *param_find(const char *name);

/*
 * Per-service parameters: "<service>_<suffix>", such as relay_destination_concurrency_limit
 * (from default_destination_concurrency_limit) or relay_bind_address (from smtp_bind_address).
 * Returns the base parameter that supplies type and default (the default of the per-service
 * parameter is "$<base>") and the length of the service prefix, or NULL. Whether the prefix
 * really names a master.cf service is for the caller to decide.
 */
const struct param_def *param_find_service(const char *name, size_t *ret_prefix_len);

const char *param_type_to_string(enum param_type t);

/* Value syntax of each type: 0, or -EINVAL / -ERANGE. */
int param_parse_bool(const char *value, bool *ret);
int param_parse_int(const char *value, long long *ret);
int param_parse_size(const char *value, long long *ret);
/* Seconds; unit is the default unit for a bare number. */
int param_parse_time(const char *value, char unit, long long *ret);
/* NULL when value is valid for def's type, else a malloc'd reason such as "bad boolean value". */
char *param_check_value(const struct param_def *def, const char *value);

/* A parameter name is [A-Za-z0-9_]+ (also used for $name references), at most PARAM_NAME_MAX bytes. */
#define PARAM_NAME_MAX 128
bool param_name_char(char c);
bool param_valid_name(const char *name, size_t len);
