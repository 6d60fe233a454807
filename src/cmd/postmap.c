/* postmap.c: postmap (and, through postmap.h, postalias/newaliases): build, query, dump and update tables.
 */
#include "postmap.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <sys/stat.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "dict.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "tablefile.h"

/* Keys read by "-q -": one per line, longer lines are never found. */
#define POSTMAP_QUERY_LINE_MAX DICT_KEY_MAX
/* Entries in one table (source, stdin and existing database together). */
#define POSTMAP_ENTRIES_MAX (16u * 1024 * 1024)

enum mode { MODE_BUILD, MODE_QUERY, MODE_DUMP, MODE_DELETE };

struct opts {
        bool aliases;      /* aliases(5) source format (postalias, newaliases) */
        bool no_fold;      /* -f */
        bool incremental;  /* -i */
        bool replace_dups; /* -r */
        bool no_dup_warn;  /* -w */
        enum mode mode;
        const char *key; /* -q KEY, -d KEY */
        const char *default_type;
};

struct item {
        char *key;
        char *value;
        unsigned line; /* 0 for entries already in the database */
        size_t order;
};

struct items {
        struct item *v;
        size_t n, cap;
};

static void items_add(struct items *s, char *key, char *value, unsigned line)
{
        if (s->n >= POSTMAP_ENTRIES_MAX)
                msg_fatal("more than %u table entries", POSTMAP_ENTRIES_MAX);
        if (s->n == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 64;
                s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
        }
        s->v[s->n] = (struct item){.key = key, .value = value, .line = line, .order = s->n};
        s->n++;
}

static void items_done(struct items *s)
{
        for (size_t i = 0; i < s->n; i++) {
                free(s->v[i].key);
                free(s->v[i].value);
        }
        free(s->v);
        *s = (struct items){0};
}

static int item_cmp(const void *a, const void *b)
{
        const struct item *x = a, *y = b;
        int c = strcmp(x->key, y->key);
        if (c != 0)
                return c;
        return x->order < y->order ? -1 : x->order > y->order;
}

static int item_line_cmp(const void *a, const void *b)
{
        const struct item *x = a, *y = b;
        return x->line < y->line ? -1 : x->line > y->line;
}

/* "FILE" alone means default_database_type:FILE; an unsupported type is fatal, Postfix's words. */
static void resolve_spec(const struct opts *o, const char *arg, char **ret_spec, char **ret_type,
                         char **ret_name)
{
        char *spec = strchr(arg, ':') ? xstrdup(arg) : xasprintf("%s:%s", o->default_type, arg);
        _cleanup_free_ char *err = NULL;
        if (dict_split_spec(spec, ret_type, ret_name, &err) < 0)
                msg_fatal("%s", err);
        if (!dict_type_supported(*ret_type))
                msg_fatal("unsupported dictionary type: %s (supported types: %s)", *ret_type,
                          dict_supported_types());
        *ret_spec = spec;
}

static struct dict *open_or_die(const char *spec)
{
        struct dict *d = NULL;
        _cleanup_free_ char *err = NULL;
        if (dict_open(spec, &d, &err) < 0)
                msg_fatal("%s", err);
        return d;
}

static int collect_entry(const char *key, const char *value, void *userdata)
{
        items_add(userdata, xstrdup(key), xstrdup(value), 0);
        return 0;
}

static void parse_source(const struct opts *o, const char *label, const char *text, size_t len,
                         struct items *out)
{
        struct tablefile t = TABLEFILE_INIT;
        int r = o->aliases ? tablefile_parse_aliases(text, len, &t) : tablefile_parse_map(text, len, &t);
        for (size_t i = 0; i < t.n_diags; i++)
                msg_warn("%s, line %u: %s", label, t.diags[i].line, t.diags[i].message);
        if (t.n_diags_dropped)
                msg_warn("%s: %zu more problems not shown", label, t.n_diags_dropped);
        if (r < 0)
                msg_fatal("%s: %s", label, strerror(-r));
        for (size_t i = 0; i < t.n_entries; i++) {
                struct tablefile_entry *e = &t.entries[i];
                if (!o->no_fold)
                        dict_fold_key(e->key);
                items_add(out, TAKE_PTR(e->key), TAKE_PTR(e->value), e->line);
        }
        tablefile_done(&t);
}

/*
 * Keep one entry per key: the first (warning about the others, as "LABEL, line N: duplicate
 * entry") or, with -r, the last. Returns the survivors in key order.
 */
static void resolve_duplicates(const struct opts *o, const char *label, struct items *s)
{
        if (s->n > 1)
                qsort(s->v, s->n, sizeof(*s->v), item_cmp);
        struct items dups = {0};
        size_t out = 0;
        for (size_t i = 0; i < s->n; i++) {
                if (out > 0 && streq(s->v[out - 1].key, s->v[i].key)) {
                        struct item *keep = &s->v[out - 1], *drop = &s->v[i];
                        if (o->replace_dups) {
                                struct item tmp = *keep;
                                *keep = *drop;
                                *drop = tmp;
                        } else if (!o->no_dup_warn)
                                items_add(&dups, xstrdup(drop->key), NULL, drop->line);
                        free(drop->key);
                        free(drop->value);
                        continue;
                }
                s->v[out++] = s->v[i];
        }
        s->n = out;
        if (dups.n > 1)
                qsort(dups.v, dups.n, sizeof(*dups.v), item_line_cmp);
        for (size_t i = 0; i < dups.n; i++)
                msg_warn("%s, line %u: duplicate entry: \"%s\"", label, dups.v[i].line, dups.v[i].key);
        items_done(&dups);
}

static void write_items(const char *type, const char *db, const struct items *s, mode_t mode, uid_t uid,
                        gid_t gid)
{
        char **keys = xcalloc(s->n ? s->n : 1, sizeof(char *));
        char **values = xcalloc(s->n ? s->n : 1, sizeof(char *));
        for (size_t i = 0; i < s->n; i++) {
                keys[i] = s->v[i].key;
                values[i] = s->v[i].value;
        }
        _cleanup_free_ char *err = NULL;
        int r = dict_table_write(type, db, keys, values, s->n, mode, uid, gid, &err);
        free(keys);
        free(values);
        if (r < 0)
                msg_fatal("%s", err);
}

/* The database takes the source's permissions, and its owner when we may give it away. */
static void owner_of(const struct stat *st, mode_t *mode, uid_t *uid, gid_t *gid)
{
        *mode = st->st_mode & 0666;
        *uid = (uid_t)-1;
        *gid = (gid_t)-1;
        if (geteuid() == 0 && (st->st_uid != 0 || st->st_gid != 0)) {
                *uid = st->st_uid;
                *gid = st->st_gid;
        }
}

static void build_table(const struct opts *o, const char *arg)
{
        _cleanup_free_ char *spec = NULL, *type = NULL, *name = NULL;
        resolve_spec(o, arg, &spec, &type, &name);
        if (!dict_type_is_db(type))
                msg_fatal("%s: %s: tables are read directly from their source; there is nothing to build",
                          spec, type);

        _cleanup_free_ char *db = dict_db_file(type, name);
        struct items s = {0};
        mode_t mode = 0644;
        uid_t uid = (uid_t)-1;
        gid_t gid = (gid_t)-1;
        struct stat st;
        const char *label = name;
        _cleanup_free_ char *text = NULL;
        size_t len = 0;

        if (o->incremental) {
                if (stat(db, &st) == 0) {
                        owner_of(&st, &mode, &uid, &gid);
                        struct dict *d = open_or_die(spec);
                        if (dict_walk(d, collect_entry, &s) < 0)
                                msg_fatal("%s: cannot read the existing entries", db);
                        dict_close(d);
                } else if (errno != ENOENT)
                        msg_fatal("open database %s: %s", db, strerror(errno));
                label = "stdin";
                int r = read_file("/dev/stdin", DICT_SOURCE_SIZE_MAX, &text, &len);
                if (r < 0)
                        msg_fatal("read standard input: %s", strerror(-r));
        } else {
                int r = read_file(name, DICT_SOURCE_SIZE_MAX, &text, &len);
                if (r < 0)
                        msg_fatal("open %s: %s", name, strerror(-r));
                if (stat(name, &st) == 0)
                        owner_of(&st, &mode, &uid, &gid);
        }
        parse_source(o, label, text, len, &s);
        resolve_duplicates(o, label, &s);
        write_items(type, db, &s, mode, uid, gid);
        items_done(&s);
}

/* -d KEY: rewrite each database without KEY; 0 when some table had it. */
static int delete_key(const struct opts *o, char **args, int n)
{
        _cleanup_free_ char *key = xstrdup(o->key);
        if (!o->no_fold)
                dict_fold_key(key);
        bool found = false;
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *spec = NULL, *type = NULL, *name = NULL;
                resolve_spec(o, args[i], &spec, &type, &name);
                if (!dict_type_is_db(type))
                        msg_fatal("%s: %s: tables are read-only", spec, type);
                _cleanup_free_ char *db = dict_db_file(type, name);
                struct stat st;
                if (stat(db, &st) < 0)
                        msg_fatal("open database %s: %s", db, strerror(errno));
                mode_t mode;
                uid_t uid;
                gid_t gid;
                owner_of(&st, &mode, &uid, &gid);

                struct items s = {0};
                struct dict *d = open_or_die(spec);
                if (dict_walk(d, collect_entry, &s) < 0)
                        msg_fatal("%s: cannot read the existing entries", db);
                dict_close(d);
                size_t out = 0;
                bool here = false;
                for (size_t j = 0; j < s.n; j++) {
                        if (streq(s.v[j].key, key)) {
                                free(s.v[j].key);
                                free(s.v[j].value);
                                here = true;
                                continue;
                        }
                        s.v[out++] = s.v[j];
                }
                s.n = out;
                if (here)
                        write_items(type, db, &s, mode, uid, gid);
                items_done(&s);
                found |= here;
        }
        return found ? 0 : 1;
}

static int lookup_all(struct dict **dicts, int n, const char *key, char **ret_value)
{
        for (int i = 0; i < n; i++) {
                int r = dict_get(dicts[i], key, ret_value);
                if (r < 0)
                        msg_fatal("table %s: lookup of \"%s\" failed", dict_spec(dicts[i]), key);
                if (r > 0)
                        return 1;
        }
        return 0;
}

/* -q KEY: print the first table's value. -q -: "key<TAB>value" for each key on stdin that is found. */
static int query(const struct opts *o, char **args, int n)
{
        struct dict **dicts = xcalloc((size_t)n, sizeof(*dicts));
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *spec = NULL, *type = NULL, *name = NULL;
                resolve_spec(o, args[i], &spec, &type, &name);
                dicts[i] = open_or_die(spec);
        }

        bool found = false;
        if (!streq(o->key, "-")) {
                _cleanup_free_ char *value = NULL;
                if (lookup_all(dicts, n, o->key, &value) > 0) {
                        printf("%s\n", value);
                        found = true;
                }
        } else {
                char *line = NULL;
                size_t cap = 0;
                ssize_t len;
                while ((len = getline(&line, &cap, stdin)) >= 0) {
                        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                                line[--len] = '\0';
                        if (len == 0 || len > POSTMAP_QUERY_LINE_MAX || memchr(line, '\0', (size_t)len))
                                continue;
                        _cleanup_free_ char *value = NULL;
                        if (lookup_all(dicts, n, line, &value) > 0) {
                                printf("%s\t%s\n", line, value);
                                found = true;
                        }
                }
                free(line);
        }
        for (int i = 0; i < n; i++)
                dict_close(dicts[i]);
        free(dicts);
        if (fflush(stdout) != 0)
                msg_fatal("write standard output: %s", strerror(errno));
        return found ? 0 : 1;
}

static int print_entry(const char *key, const char *value, void *userdata)
{
        printf("%s\t%s\n", key, value);
        return 0;
}

static int dump(const struct opts *o, char **args, int n)
{
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *spec = NULL, *type = NULL, *name = NULL;
                resolve_spec(o, args[i], &spec, &type, &name);
                struct dict *d = open_or_die(spec);
                int r = dict_walk(d, print_entry, NULL);
                if (r == -EOPNOTSUPP)
                        msg_fatal("table %s: %s tables cannot be listed", spec, type);
                if (r < 0)
                        msg_fatal("table %s: cannot read the entries", spec);
                dict_close(d);
        }
        if (fflush(stdout) != 0)
                msg_fatal("write standard output: %s", strerror(errno));
        return 0;
}

static struct config *load_config(const char *dir)
{
        struct config *c = NULL;
        int r = config_load(dir, &c);
        if (r == -ENOENT && !dir)
                return config_new_defaults(); /* no main.cf anywhere: Postfix's defaults */
        if (r < 0)
                msg_fatal("open %s/main.cf: %s", dir ? dir : "(default configuration directory)",
                          strerror(-r));
        return c;
}

/* newaliases: rebuild every database named in alias_database. */
static int newaliases(struct opts *o, const char *config_dir)
{
        struct config *c = load_config(config_dir);
        const char *t = config_get(c, "default_database_type");
        _cleanup_free_ char *default_type = xstrdup(isempty(t) ? "hash" : t);
        o->default_type = default_type;
        struct strv specs = STRV_INIT;
        config_get_list(c, "alias_database", &specs);
        for (size_t i = 0; i < specs.n; i++) {
                _cleanup_free_ char *spec = NULL, *type = NULL, *name = NULL;
                resolve_spec(o, specs.v[i], &spec, &type, &name);
                if (!dict_type_is_db(type)) {
                        msg_warn("alias_database: %s: %s tables are read directly; nothing to rebuild", spec,
                                 type);
                        continue;
                }
                build_table(o, spec);
        }
        strv_done(&specs);
        config_free(c);
        return 0;
}

_noreturn_ static void usage(const char *prog)
{
        msg_fatal("usage: %s [-Nfinorsvw] [-c config_dir] [-d key] [-q key] [type:]file...", prog);
}

int postmap_tool_main(int argc, char **argv, bool aliases)
{
        log_setup_command(argv[0]);
        const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
        struct opts o = {.aliases = aliases, .mode = MODE_BUILD};
        const char *config_dir = NULL;
        int c;

        /* Also "newaliases.postd", the name a package gives it for alternatives(8). */
        if (strncmp(base, "newaliases", 10) == 0 && (base[10] == '\0' || base[10] == '.')) {
                /* sendmail-style: -C DIR (also -c), -oA and -v are accepted */
                while ((c = getopt(argc, argv, "C:c:o:v")) != -1) {
                        if (c == 'C' || c == 'c')
                                config_dir = optarg;
                        else if (c == '?')
                                msg_fatal("usage: newaliases [-C config_dir]");
                }
                o.aliases = true;
                return newaliases(&o, config_dir);
        }

        while ((c = getopt(argc, argv, "bc:d:fhimNnopq:rsuvw")) != -1) {
                switch (c) {
                case 'c': config_dir = optarg; break;
                case 'd':
                        o.mode = MODE_DELETE;
                        o.key = optarg;
                        break;
                case 'f': o.no_fold = true; break;
                case 'i': o.incremental = true; break;
                case 'q':
                        o.mode = MODE_QUERY;
                        o.key = optarg;
                        break;
                case 'r': o.replace_dups = true; break;
                case 's': o.mode = MODE_DUMP; break;
                case 'w': o.no_dup_warn = true; break;
                case 'b':
                case 'h':
                case 'm':
                case 'N':
                case 'n':
                case 'o':
                case 'p':
                case 'u':
                case 'v': break; /* Postfix options with no effect on GDBM tables or on postd */
                default: usage(base);
                }
        }
        if (optind >= argc)
                usage(base);

        struct config *cfg = load_config(config_dir);
        const char *t = config_get(cfg, "default_database_type");
        _cleanup_free_ char *default_type = xstrdup(isempty(t) ? "hash" : t);
        config_free(cfg);
        o.default_type = default_type;

        char **args = argv + optind;
        int n = argc - optind;
        switch (o.mode) {
        case MODE_QUERY: return query(&o, args, n);
        case MODE_DUMP: return dump(&o, args, n);
        case MODE_DELETE: return delete_key(&o, args, n);
        case MODE_BUILD: break;
        }
        for (int i = 0; i < n; i++)
                build_table(&o, args[i]);
        return 0;
}

#ifndef POSTMAP_NO_MAIN
int main(int argc, char **argv)
{
        return postmap_tool_main(argc, argv, false);
}
#endif
