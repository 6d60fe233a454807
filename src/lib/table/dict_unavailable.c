/* dict_unavailable.c: a table that could not be opened in a running role: lookups fail temporarily, and
 * opening is retried, so mail waits (4xx, deferred) instead of the role dying in a crash loop. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "alloc.h"
#include "dict.h"
#include "log.h"
#include "macro.h"

struct dict_unavailable {
        struct dict d;
        struct dict *real;        /* the table once it could be opened; lookups go there */
        struct timespec next_try; /* CLOCK_MONOTONIC */
        char *watch;              /* the file whose change (postmap, an edit) makes a retry due at once */
        struct stat watch_st;     /* as last seen; all zero: absent */
};

static void schedule_retry(struct dict_unavailable *u)
{
        clock_gettime(CLOCK_MONOTONIC, &u->next_try);
        u->next_try.tv_sec += USEC_TO_SEC(DICT_UNAVAILABLE_RETRY_USEC);
}

static bool retry_due(const struct dict_unavailable *u)
{
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        return now.tv_sec > u->next_try.tv_sec ||
               (now.tv_sec == u->next_try.tv_sec && now.tv_nsec >= u->next_try.tv_nsec);
}

/* The file an operator fixes: FILE.db for hash:/btree:, the source file of cidr:/regexp:/texthash:. */
static char *watch_path(const char *spec)
{
        _cleanup_free_ char *type = NULL, *name = NULL, *err = NULL;
        if (dict_split_spec(spec, &type, &name, &err) < 0 || name[0] != '/')
                return NULL;
        return dict_type_is_db(type) ? dict_db_file(type, name) : TAKE_PTR(name);
}

/* True when the watched file differs from what the last look saw; remembers the new state. */
static bool watch_changed(struct dict_unavailable *u)
{
        if (!u->watch)
                return false;
        struct stat st;
        if (stat(u->watch, &st) < 0)
                st = (struct stat){0};
        bool changed = st.st_ino != u->watch_st.st_ino || st.st_dev != u->watch_st.st_dev ||
                       st.st_size != u->watch_st.st_size ||
                       st.st_mtim.tv_sec != u->watch_st.st_mtim.tv_sec ||
                       st.st_mtim.tv_nsec != u->watch_st.st_mtim.tv_nsec;
        u->watch_st = st;
        return changed;
}

/* The fix an operator needs for the usual cause, a FILE.db that was never built. */
static char *fix_hint(const char *spec)
{
        _cleanup_free_ char *type = NULL, *name = NULL, *err = NULL;
        if (dict_split_spec(spec, &type, &name, &err) < 0 || !dict_type_supported(type))
                return xasprintf("use a supported type (postconf -m lists them)");
        if (dict_type_is_db(type))
                return xasprintf("run \"postmap %s\", or \"postalias %s\" (newaliases) for an aliases file",
                                 spec, spec);
        return xasprintf("fix or create the file, then check with \"postfix check\"");
}

int dict_unavailable_new(const char *spec, const char *why, struct dict **ret)
{
        struct dict_unavailable *u = xcalloc(1, sizeof(*u));
        _cleanup_free_ char *hint = fix_hint(spec);
        msg_warn("%s is unavailable: %s; lookups in it fail temporarily (mail is deferred, not lost) "
                 "until it is fixed: %s",
                 spec, why, hint);
        u->watch = watch_path(spec);
        (void)watch_changed(u);
        schedule_retry(u);
        *ret = &u->d;
        return 0;
}

static void try_open(struct dict_unavailable *u)
{
        _cleanup_free_ char *why = NULL;
        if (dict_open_strict(u->d.spec, &u->real, &why) == 0)
                msg_info("%s is available again", u->d.spec);
        else
                schedule_retry(u);
}

static int unavailable_get(struct dict *d, const char *key, char **ret_value)
{
        struct dict_unavailable *u = (struct dict_unavailable *)d;
        if (!u->real) {
                /* Both checks run, so the file's state is remembered even when the timer is due too. */
                bool changed = watch_changed(u);
                if (changed || retry_due(u))
                        try_open(u);
        }
        if (!u->real)
                return -EAGAIN;
        return dict_get(u->real, key, ret_value);
}

static int unavailable_walk(struct dict *d, dict_walk_fn fn, void *userdata)
{
        struct dict_unavailable *u = (struct dict_unavailable *)d;
        return u->real ? dict_walk(u->real, fn, userdata) : -EAGAIN;
}

static void unavailable_close(struct dict *d)
{
        struct dict_unavailable *u = (struct dict_unavailable *)d;
        dict_close(u->real);
        free(u->watch);
        free(u);
}

const struct dict_type dict_type_unavailable = {
        .name = "unavailable",
        .fold = false, /* the real table folds its own keys */
        .get = unavailable_get,
        .walk = unavailable_walk,
        .close = unavailable_close,
};
