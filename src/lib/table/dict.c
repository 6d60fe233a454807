/* dict.c: the table type registry and the type-independent half of every lookup table. */
#include "dict.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "postd-build.h"

/* Sorted by name: dict_supported_types() lists them in this order. */
static const struct dict_type *const dict_types[] = {
        &dict_type_btree,  &dict_type_cidr,   &dict_type_hash,     &dict_type_inline,
#if HAVE_LMDB
        &dict_type_lmdb,
#endif
#if HAVE_PCRE2
        &dict_type_pcre,
#endif
        &dict_type_regexp, &dict_type_static, &dict_type_texthash, &dict_type_unix,
};

static const struct dict_type *find_type(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(dict_types); i++)
                if (streq(dict_types[i]->name, name))
                        return dict_types[i];
        return NULL;
}

bool dict_type_supported(const char *type)
{
        return find_type(type) != NULL;
}

size_t dict_type_count(void)
{
        return ELEMENTSOF(dict_types);
}

const char *dict_type_nth(size_t i)
{
        return i < ELEMENTSOF(dict_types) ? dict_types[i]->name : NULL;
}

const char *dict_supported_types(void)
{
        static char list[256];
        if (!list[0]) {
                size_t off = 0;
                for (size_t i = 0; i < ELEMENTSOF(dict_types); i++)
                        off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "",
                                                dict_types[i]->name);
        }
        return list;
}

bool dict_type_is_db(const char *type)
{
        return streq(type, "hash") || streq(type, "btree") || streq(type, "lmdb");
}

char *dict_db_file(const char *type, const char *name)
{
        return streq(type, "lmdb") ? xasprintf("%s.lmdb", name) : dict_db_path(name);
}

void dict_file_id_set(struct dict_file_id *id, const struct stat *st)
{
        *id = (struct dict_file_id){st->st_dev, st->st_ino, st->st_mtim, st->st_size};
}

bool dict_file_changed(const char *path, const struct dict_file_id *id)
{
        struct stat st;
        if (stat(path, &st) < 0)
                return false; /* rebuilds never leave the name missing */
        return st.st_dev != id->dev || st.st_ino != id->ino || st.st_size != id->size ||
               st.st_mtim.tv_sec != id->mtime.tv_sec || st.st_mtim.tv_nsec != id->mtime.tv_nsec;
}

static char *unsupported_message(const char *type);

int dict_table_write(const char *type, const char *db_path, char *const *keys, char *const *values, size_t n,
                     mode_t mode, uid_t uid, gid_t gid, char **ret_error)
{
        if (!streq(type, "lmdb"))
                return dict_db_write(db_path, keys, values, n, mode, uid, gid, ret_error);
#if HAVE_LMDB
        return dict_lmdb_write(db_path, keys, values, n, mode, uid, gid, ret_error);
#else
        *ret_error = unsupported_message(type);
        return -EPROTONOSUPPORT;
#endif
}

char *dict_db_path(const char *name)
{
        return xasprintf("%s.db", name);
}

void dict_fold_key(char *key)
{
        for (char *p = key; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                        *p = (char)(*p - 'A' + 'a');
}

static char *unsupported_message(const char *type)
{
        /* A type postd knows but this build lacks: say which library it needs. */
        const char *lib = streq(type, "pcre")   ? "libpcre2 (libpcre2-dev)"
                          : streq(type, "lmdb") ? "liblmdb (liblmdb-dev)"
                                                : NULL;
        if (lib)
                return xasprintf(
                        "unsupported dictionary type: %s (this postd was built without %s; supported "
                        "types: %s)",
                        type, lib, dict_supported_types());
        return xasprintf("unsupported dictionary type: %s (supported types: %s)", type,
                         dict_supported_types());
}

/*
 * Postfix's default local_recipient_maps is "proxy:unix:passwd.byname": postd has no proxymap
 * service, so "proxy:" only names the table behind it, which is opened directly.
 */
static const char *strip_proxy(const char *spec)
{
        while (strncmp(spec, "proxy:", 6) == 0)
                spec += 6;
        return spec;
}

int dict_split_spec(const char *spec, char **ret_type, char **ret_name, char **ret_error)
{
        spec = strip_proxy(spec);
        if (strlen(spec) > DICT_SPEC_MAX) {
                *ret_error = xasprintf("table specification longer than %d bytes: \"%.40s...\"",
                                       DICT_SPEC_MAX, spec);
                return -ENAMETOOLONG;
        }
        const char *colon = strchr(spec, ':');
        if (!colon || colon == spec) {
                *ret_error = xasprintf("expecting \"type:name\" form instead of \"%s\"", spec);
                return -EINVAL;
        }
        *ret_type = xstrndup(spec, (size_t)(colon - spec));
        *ret_name = xstrdup(colon + 1);
        return 0;
}

/* Set by every role at start (service.c); commands and the checks keep failing hard. */
static bool unavailable_fallback;

void dict_set_unavailable_fallback(bool on)
{
        unavailable_fallback = on;
}

int dict_open_strict(const char *spec, struct dict **ret, char **ret_error)
{
        _cleanup_free_ char *type = NULL, *name = NULL;
        int r = dict_split_spec(spec, &type, &name, ret_error);
        if (r < 0)
                return r;

        const struct dict_type *t = find_type(type);
        if (!t) {
                *ret_error = unsupported_message(type);
                return -EPROTONOSUPPORT;
        }
        if (*name == '\0') {
                *ret_error = xasprintf("missing table name in \"%s\"", strip_proxy(spec));
                return -EINVAL;
        }

        struct dict *d = NULL;
        r = t->open(name, &d, ret_error);
        if (r < 0)
                return r;
        d->type = t;
        d->spec = xstrdup(strip_proxy(spec));
        d->name = TAKE_PTR(name);
        *ret = d;
        return 0;
}

int dict_open(const char *spec, struct dict **ret, char **ret_error)
{
        int r = dict_open_strict(spec, ret, ret_error);
        if (r >= 0 || !unavailable_fallback)
                return r;
        struct dict *d = NULL;
        dict_unavailable_new(spec, *ret_error, &d);
        free(*ret_error);
        *ret_error = NULL;
        d->type = &dict_type_unavailable;
        d->spec = xstrdup(strip_proxy(spec));
        d->name = xstrdup(d->spec);
        *ret = d;
        return 0;
}

int dict_get(struct dict *d, const char *key, char **ret_value)
{
        if (strlen(key) > DICT_KEY_MAX)
                return 0;
        if (!d->type->fold)
                return d->type->get(d, key, ret_value);
        _cleanup_free_ char *folded = xstrdup(key);
        dict_fold_key(folded);
        return d->type->get(d, folded, ret_value);
}

int dict_walk(struct dict *d, dict_walk_fn fn, void *userdata)
{
        if (!d->type->walk)
                return -EOPNOTSUPP;
        return d->type->walk(d, fn, userdata);
}

void dict_close(struct dict *d)
{
        if (!d)
                return;
        char *spec = d->spec, *name = d->name;
        d->type->close(d);
        free(spec);
        free(name);
}

const char *dict_spec(const struct dict *d)
{
        return d->spec;
}

const char *dict_type_name(const struct dict *d)
{
        return d->type->name;
}

const char *dict_name(const struct dict *d)
{
        return d->name;
}

int dict_check_type(const char *spec, char **ret_error)
{
        _cleanup_free_ char *type = NULL, *name = NULL;
        int r = dict_split_spec(spec, &type, &name, ret_error);
        if (r < 0)
                return r;
        if (!find_type(type)) {
                *ret_error = unsupported_message(type);
                return -EPROTONOSUPPORT;
        }
        return 0;
}

int dict_check_spec(const char *spec, char **ret_error)
{
        int r = dict_check_type(spec, ret_error);
        if (r < 0)
                return r;
        _cleanup_free_ char *type = NULL, *name = NULL;
        r = dict_split_spec(spec, &type, &name, ret_error);
        if (r < 0)
                return r;
        if (!dict_type_is_db(type)) {
                /* Opening validates the syntax of inline:/static:/cidr:/regexp: as well. */
                struct dict *d = NULL;
                r = dict_open(spec, &d, ret_error);
                dict_close(d);
                return r;
        }

        _cleanup_free_ char *db = dict_db_file(type, name);
        struct stat db_st, src_st;
        if (stat(db, &db_st) < 0) {
                r = -errno;
                *ret_error =
                        xasprintf("open database %s: %s (build it with \"postmap %s\", or \"postalias %s\" "
                                  "for an aliases file)",
                                  db, strerror(errno), spec, spec);
                return r;
        }
        /* The classic trap: the source was edited but postmap was not run again. */
        if (stat(name, &src_st) == 0 && src_st.st_mtime > db_st.st_mtime)
                msg_warn("database %s is older than source file %s", db, name);
        return 0;
}

/* The in-memory table of texthash: and inline:. */

struct mem_item {
        char *key;
        char *value;
        unsigned line;
        size_t order;
};

static int mem_item_cmp(const void *a, const void *b)
{
        const struct mem_item *x = a, *y = b;
        int c = strcmp(x->key, y->key);
        if (c != 0)
                return c;
        return x->order < y->order ? -1 : x->order > y->order;
}

void dict_mem_init(struct dict_mem *m, struct tablefile *t, bool fold, const char *label)
{
        size_t n = t->n_entries;
        struct mem_item *items = xcalloc(n ? n : 1, sizeof(*items));
        for (size_t i = 0; i < n; i++) {
                items[i] = (struct mem_item){t->entries[i].key, t->entries[i].value, t->entries[i].line, i};
                if (fold)
                        dict_fold_key(items[i].key);
        }
        free(t->entries);
        t->entries = NULL;
        t->n_entries = t->cap_entries = 0;

        qsort(items, n, sizeof(*items), mem_item_cmp);
        *m = (struct dict_mem){.keys = xcalloc(n ? n : 1, sizeof(char *)),
                               .values = xcalloc(n ? n : 1, sizeof(char *))};
        for (size_t i = 0; i < n; i++) {
                if (m->n > 0 && streq(m->keys[m->n - 1], items[i].key)) {
                        if (label)
                                msg_warn("%s, line %u: duplicate entry: \"%s\"", label, items[i].line,
                                         items[i].key);
                        free(items[i].key);
                        free(items[i].value);
                        continue;
                }
                m->keys[m->n] = items[i].key;
                m->values[m->n] = items[i].value;
                m->n++;
        }
        free(items);
}

int dict_mem_get(const struct dict_mem *m, const char *key, char **ret_value)
{
        size_t lo = 0, hi = m->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(key, m->keys[mid]);
                if (c == 0) {
                        *ret_value = xstrdup(m->values[mid]);
                        return 1;
                }
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return 0;
}

int dict_mem_walk(const struct dict_mem *m, dict_walk_fn fn, void *userdata)
{
        for (size_t i = 0; i < m->n; i++) {
                int r = fn(m->keys[i], m->values[i], userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

void dict_mem_done(struct dict_mem *m)
{
        for (size_t i = 0; i < m->n; i++) {
                free(m->keys[i]);
                free(m->values[i]);
        }
        free(m->keys);
        free(m->values);
        *m = (struct dict_mem){0};
}

int dict_load_source(const char *name, const char *label, dict_source_parser parse, struct tablefile *t,
                     char **ret_error)
{
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = read_file(name, DICT_SOURCE_SIZE_MAX, &text, &len);
        if (r < 0) {
                *ret_error = xasprintf("open %s: %s", name, strerror(-r));
                return r;
        }
        r = parse(text, len, t);
        for (size_t i = 0; i < t->n_diags; i++)
                msg_warn("%s%s%s, line %u: %s", label, *label ? " " : "", name, t->diags[i].line,
                         t->diags[i].message);
        if (r < 0) {
                *ret_error = xasprintf("%s: %s", name, strerror(-r));
                tablefile_done(t);
                return r;
        }
        return 0;
}
