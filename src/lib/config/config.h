/* config.h: one instance's main.cf as an object: defaults from the parameter table, $name expansion, typed
 * getters, checks. */
#pragma once

#include <stdbool.h>

#include "buf.h"
#include "macro.h"
#include "maincf.h"
#include "params.h"

/* Limits of $name expansion. */
#define CONFIG_EXPAND_DEPTH_MAX  100u                /* nested parameter references and ${name?...} levels */
#define CONFIG_EXPAND_OUTPUT_MAX (1024u * 1024)      /* bytes of one expanded value */
#define CONFIG_EXPAND_TOTAL_MAX  (16u * 1024 * 1024) /* bytes of all cached expanded values of one config */

struct config;

/* Load DIR/main.cf; DIR NULL means $MAIL_CONFIG, else POSTD_CONFIG_DIR. A missing main.cf
 * is -ENOENT. Syntax problems do not fail the load: they are kept as diagnostics. */
int config_load(const char *config_dir, struct config **ret);
struct config *config_new_defaults(void); /* no main.cf: built-in defaults only */
void config_free(struct config *c);
DEFINE_POINTER_CLEANUP(struct config, config_free)
#define _cleanup_config_ _cleanup_(config_freep)
const char *config_directory(const struct config *c);
/* Override as master.cf "-o name=value" does (value may contain $refs). */
void config_set(struct config *c, const char *name, const char *value);
/* Expanded value; never NULL for a known parameter (its default applies); for an unknown
 * parameter the value set in main.cf, or NULL. Owned by c, valid until the next config_set.
 * An expansion error (recursion, ...) is logged once as a warning; the value is then partial. */
const char *config_get(struct config *c, const char *name);
const char *config_get_raw(struct config *c, const char *name); /* as written, not expanded */
bool config_is_set(struct config *c, const char *name);         /* explicitly in main.cf or set */
/* Typed getters: a value that does not parse is logged as a warning and the default applies. */
long long config_get_int(struct config *c, const char *name);
bool config_get_bool(struct config *c, const char *name);
long long config_get_time(
        struct config *c,
        const char *name); /* seconds; "300s", "5d", "1h"; bare number uses the parameter's default unit */
void config_get_list(struct config *c, const char *name, struct strv *ret); /* split on ", \t\r\n" */

/* ---- beyond the agreed API ---- */

/* Like config_load, from main.cf text already in memory (no I/O; for tests and fuzzing). */
int config_load_text(const char *config_dir, const char *text, size_t len, struct config **ret);
/* Defaults only, as if the configuration directory were dir (postconf -d -c DIR). */
struct config *config_new_defaults_for(const char *dir);
/* The parsed main.cf (no entries when there is none). */
const struct maincf *config_maincf(const struct config *c);
/* Path of main.cf, "DIR/main.cf". */
const char *config_maincf_path(const struct config *c);

/*
 * Expand $name, ${name}, $(name), ${name?value}, ${name:value}, ${name?{value}}, ${name:{value}},
 * ${name?{value1}:{value2}} and $$ in text against c. Undefined names expand to "". *ret is always
 * set (malloc'd; best effort on error). Returns 0, or -ELOOP (recursion, with *err = "parameter X:
 * recursive expansion"), -E2BIG (too deep or too long) or -EINVAL (syntax), with *err malloc'd.
 */
int config_expand(struct config *c, const char *text, char **ret, char **ret_error);

/* The definition behind name (table entry, or the base of a per-service name), or NULL if unknown. */
const struct param_def *config_param_def(struct config *c, const char *name);
/* The default as postconf -d shows it (host-derived values filled in), or NULL for an unknown name. */
const char *config_get_default(struct config *c, const char *name);

/* Register master.cf service names, so that "<service>_<suffix>" parameters count as known. */
void config_add_service(struct config *c, const char *service);
/* Note $name references in text outside main.cf (master.cf -o values): they make a user-defined
 * parameter "used". */
void config_add_references(struct config *c, const char *text);
/* True for a table parameter or a per-service parameter of a registered service. */
bool config_is_known(struct config *c, const char *name);
/* Does a main.cf value or a text given to config_add_references mention $name? */
bool config_is_referenced(struct config *c, const char *name);
/* name = value sets a parameter postd does not act on yet (PARAM_F_INERT) to something that matters. */
bool config_setting_is_inert(struct config *c, const char *name, const char *value);

/* Sorted, unique names: the table (when with_defaults) plus every name set in main.cf. */
void config_list_names(struct config *c, bool with_defaults, struct strv *ret);
/* Names set in main.cf that are not known and not referenced as $name anywhere: "unused parameter". */
void config_list_unused(struct config *c, struct strv *ret);
/* Names set in main.cf that postd does not act on yet (PARAM_F_INERT), unless set to the default or
 * to a value that turns the feature off ("", "0", "no"). */
void config_list_inert(struct config *c, struct strv *ret);
/* The warning for one of those, naming the file, the parameter and what happens (malloc'd). */
char *config_inert_warning(struct config *c, const char *name);

/*
 * Every problem of main.cf as "main.cf line N: ..." (syntax, bad boolean/number/size/time value,
 * expansion errors), for postfix check. Returns the number of problems appended to out.
 */
size_t config_check(struct config *c, struct strv *ret);
/* NULL when value (expanded against c) suits name's type, else a malloc'd reason; for -o checks. */
char *config_check_value(struct config *c, const char *name, const char *value);

/* The host name used for host-derived defaults (myhostname, mydomain); default gethostname(). */
void config_set_hostname(struct config *c, const char *hostname);
/* Split a list value: separators ", \t\r\n" outside {...} groups. */
void config_split_list(const char *value, struct strv *ret);
