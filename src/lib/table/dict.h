/* dict.h: Postfix-style lookup tables ("type:name") behind one interface. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "tablefile.h"

/* A source file (postmap input, texthash:, cidr:, regexp:) larger than this is refused. */
#define DICT_SOURCE_SIZE_MAX (512u * 1024 * 1024)
/* Lookup keys longer than this are never found (no table holds them: see TABLEFILE_LINE_MAX). */
#define DICT_KEY_MAX TABLEFILE_LINE_MAX
/* Length of one "type:name" specification. */
#define DICT_SPEC_MAX 4096

struct dict;

/*
 * Open "type:name" (e.g. "hash:/etc/postfix/transport", "inline:{a=b, c=d}", "static:anyone").
 * Unknown or unsupported type: -EPROTONOSUPPORT and *err = "unsupported dictionary type: sdbm
 * (supported types: btree, cidr, hash, inline, regexp, static, texthash, unix)".
 * Other failures: negative errno and *err names the file and the cause. "proxy:type:name" opens
 * type:name directly (there is no proxymap service). Problems in single lines
 * of a cidr:/regexp: file are logged as warnings and those lines skipped, as Postfix does.
 */
int dict_open(const char *spec, struct dict **ret, char **ret_error);
/*
 * Roles call this with true at start: from then on a table that cannot be opened (missing FILE.db,
 * unreadable or broken file, unknown type) is logged once as a warning naming the fix, and dict_open()
 * returns a stand-in whose lookups fail with -EAGAIN (callers answer 4xx or defer) while opening is
 * retried every DICT_UNAVAILABLE_RETRY_USEC; the real table serves as soon as it opens.
 */
void dict_set_unavailable_fallback(bool on);
#define DICT_UNAVAILABLE_RETRY_USEC (5 * USEC_PER_SEC)
/* dict_open() without the stand-in, whatever dict_set_unavailable_fallback() said. */
int dict_open_strict(const char *spec, struct dict **ret, char **ret_error);
/* 1 found (*ret_value malloc'd, caller frees), 0 not found, <0 error. */
int dict_get(struct dict *d, const char *key, char **ret_value);
void dict_close(struct dict *d);
bool dict_type_supported(const char *type);
const char *dict_supported_types(void); /* "btree, cidr, hash, inline, regexp, static, texthash, unix" */
/* The supported types one by one, sorted by name (postconf -m); NULL past the end. */
size_t dict_type_count(void);
const char *dict_type_nth(size_t i);
/* For postfix check: type supported and, for file-based types, the source/db file exists. */
int dict_check_spec(const char *spec, char **ret_error);
/* Only the "type:name" form and a supported type (for tables that are created later). */
int dict_check_type(const char *spec, char **ret_error);

/* The spec as opened ("hash:/etc/postfix/transport") and its parts. */
const char *dict_spec(const struct dict *d);
const char *dict_type_name(const struct dict *d);
const char *dict_name(const struct dict *d);

/*
 * Split "type:name" into its parts (malloc'd). A spec without a type is -EINVAL with
 * *err = "expecting \"type:name\" form instead of \"foo\"".
 */
int dict_split_spec(const char *spec, char **ret_type, char **ret_name, char **ret_error);

/* Call fn for each entry of a hash:, btree:, texthash: or inline: table; others: -EOPNOTSUPP.
 * A negative return of fn stops the walk and is returned. */
typedef int (*dict_walk_fn)(const char *key, const char *value, void *userdata);
int dict_walk(struct dict *d, dict_walk_fn fn, void *userdata);

/* Does this type keep its data in a FILE.db built by postmap/postalias (hash, btree)? */
bool dict_type_is_db(const char *type);
/* "FILE.db" for hash:FILE and btree:FILE. */
char *dict_db_path(const char *name);
/* The file postmap builds for type:name: "FILE.db" (hash, btree), "FILE.lmdb" (lmdb). */
char *dict_db_file(const char *type, const char *name);

/*
 * Which file an open database table read: postmap replaces a table by renaming a new file over the
 * name, so a reader that sees another identity under the name reopens it (no restart needed).
 */
struct dict_file_id {
        dev_t dev;
        ino_t ino;
        struct timespec mtime;
        off_t size;
};
void dict_file_id_set(struct dict_file_id *id, const struct stat *st);
/* path names a file other than id (false when it cannot be looked at: keep the open copy). */
bool dict_file_changed(const char *path, const struct dict_file_id *id);

/*
 * Write FILE.db for hash:/btree: from n key/value pairs, replacing any old one atomically and
 * durably: a temporary file in the same directory is filled, synced, renamed over FILE.db and
 * the directory synced, so a reader sees either the old or the new table, never a partial one.
 * Keys must be unique (the caller resolves duplicates). mode (and owner uid/gid unless -1) apply
 * to the new file. *err names the file and the cause.
 */
int dict_db_write(const char *db_path, char *const *keys, char *const *values, size_t n, mode_t mode,
                  uid_t uid, gid_t gid, char **ret_error);

/* dict_db_write() for hash:/btree:, dict_lmdb_write() for lmdb: (the same contract). */
int dict_lmdb_write(const char *db_path, char *const *keys, char *const *values, size_t n, mode_t mode,
                    uid_t uid, gid_t gid, char **ret_error);
int dict_table_write(const char *type, const char *db_path, char *const *keys, char *const *values, size_t n,
                     mode_t mode, uid_t uid, gid_t gid, char **ret_error);

/* Postfix's default key folding: ASCII lower case, in place. */
void dict_fold_key(char *key);

/*
 * Below: the interface between dict.c and the table types (dict_*.c); callers use the functions
 * above. A type's open() allocates its own struct whose first member is struct dict; dict.c
 * fills in the common fields afterwards.
 */
struct dict_type {
        const char *name;
        bool fold; /* keys are folded to lower case before get() */
        int (*open)(const char *name, struct dict **ret, char **ret_error);
        int (*get)(struct dict *d, const char *key, char **ret_value);
        int (*walk)(struct dict *d, dict_walk_fn fn, void *userdata); /* NULL: not supported */
        void (*close)(struct dict *d);
};

struct dict {
        const struct dict_type *type;
        char *spec;
        char *name;
};

extern const struct dict_type dict_type_btree, dict_type_cidr, dict_type_hash, dict_type_inline,
        dict_type_lmdb, dict_type_pcre, dict_type_regexp, dict_type_static, dict_type_texthash,
        dict_type_unix;
/* dict_unavailable.c: the stand-in for a table that could not be opened (see dict_open). */
extern const struct dict_type dict_type_unavailable;
int dict_unavailable_new(const char *spec, const char *why, struct dict **ret);

/*
 * Read and parse the source file of a file-backed type (cidr:, regexp:, texthash:) with parse
 * (tablefile_parse_map or _lines). Per-line problems are warned about as "LABEL NAME, line N:
 * ..." (label may be "" for none); a file that cannot be read or parsed is a negative errno
 * with *err naming it.
 */
typedef int (*dict_source_parser)(const char *text, size_t len, struct tablefile *ret);
int dict_load_source(const char *name, const char *label, dict_source_parser parse, struct tablefile *t,
                     char **ret_error);

/* A sorted in-memory table (texthash:, inline:). */
struct dict_mem {
        char **keys;
        char **values;
        size_t n;
};

/*
 * Take the entries of t (t is left empty): keys folded when fold, sorted; of duplicate keys the
 * first one stays and, when label is not NULL, the others are warned about as "LABEL, line N:
 * duplicate entry".
 */
void dict_mem_init(struct dict_mem *m, struct tablefile *t, bool fold, const char *label);
int dict_mem_get(const struct dict_mem *m, const char *key, char **ret_value);
int dict_mem_walk(const struct dict_mem *m, dict_walk_fn fn, void *userdata);
void dict_mem_done(struct dict_mem *m);
