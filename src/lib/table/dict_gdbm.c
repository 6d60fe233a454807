/* dict_gdbm.c: hash: and btree: tables, GDBM files FILE.db built by postmap/postalias. */
#include <errno.h>
#include <fcntl.h>
#include <gdbm.h>
#include <stdio.h>
#include <sys/stat.h>

#include "alloc.h"
#include "dict.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"

/*
 * btree: is accepted as another name of the same GDBM hash format: GDBM has no B-tree, and
 * Postfix's users of btree: tables only rely on exact-key lookups, which both give.
 */

struct dict_gdbm {
        struct dict d;
        char *db_path;
        GDBM_FILE db;
        struct dict_file_id id; /* of the open file */
};

static const char *gdbm_error_text(void)
{
        int saved = errno;
        if (gdbm_check_syserr(gdbm_errno) && saved != 0)
                return strerror(saved);
        return gdbm_strerror(gdbm_errno);
}

static int gdbm_open_file(struct dict_gdbm *g, char **ret_error)
{
        int fd = open(g->db_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                int r = -errno;
                *ret_error = xasprintf("open database %s: %s", g->db_path, strerror(errno));
                return r;
        }
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int r = -errno;
                *ret_error = xasprintf("open database %s: %s", g->db_path, strerror(errno));
                close(fd);
                return r;
        }
        /* Readers take no lock: a table is never written in place, only replaced by rename. */
        errno = 0;
        GDBM_FILE db = gdbm_fd_open(fd, g->db_path, 0, GDBM_READER | GDBM_NOLOCK | GDBM_CLOERROR, NULL);
        if (!db) {
                *ret_error = xasprintf("open database %s: %s", g->db_path, gdbm_error_text());
                return -EBADMSG;
        }
        if (g->db)
                gdbm_close(g->db);
        g->db = db;
        dict_file_id_set(&g->id, &st);
        return 0;
}

static int gdbm_dict_open(const char *name, struct dict **ret, char **ret_error)
{
        struct dict_gdbm *g = xcalloc(1, sizeof(*g));
        g->db_path = dict_db_path(name);
        int r = gdbm_open_file(g, ret_error);
        if (r < 0) {
                free(g->db_path);
                free(g);
                return r;
        }
        *ret = &g->d;
        return 0;
}

/* A running daemon sees a table rebuilt by postmap without a restart. */
static void gdbm_refresh(struct dict_gdbm *g)
{
        if (!dict_file_changed(g->db_path, &g->id))
                return;
        _cleanup_free_ char *err = NULL;
        if (gdbm_open_file(g, &err) < 0)
                msg_warn("%s; still using the previous version of the table", err);
}

static int gdbm_dict_get(struct dict *d, const char *key, char **ret_value)
{
        struct dict_gdbm *g = (struct dict_gdbm *)d;
        gdbm_refresh(g);

        datum k = {.dptr = (char *)key, .dsize = (int)strlen(key)};
        datum v = gdbm_fetch(g->db, k);
        if (!v.dptr) {
                if (gdbm_errno == GDBM_ITEM_NOT_FOUND)
                        return 0;
                msg_warn("%s: lookup of \"%s\": %s", g->db_path, key, gdbm_strerror(gdbm_errno));
                return -EIO;
        }
        *ret_value = xstrndup(v.dptr, (size_t)v.dsize);
        free(v.dptr);
        return 1;
}

static int gdbm_dict_walk(struct dict *d, dict_walk_fn fn, void *userdata)
{
        struct dict_gdbm *g = (struct dict_gdbm *)d;
        gdbm_refresh(g);

        datum k = gdbm_firstkey(g->db);
        while (k.dptr) {
                datum v = gdbm_fetch(g->db, k);
                int r = 0;
                if (v.dptr) {
                        _cleanup_free_ char *key = xstrndup(k.dptr, (size_t)k.dsize);
                        _cleanup_free_ char *value = xstrndup(v.dptr, (size_t)v.dsize);
                        free(v.dptr);
                        r = fn(key, value, userdata);
                }
                datum next = gdbm_nextkey(g->db, k);
                free(k.dptr);
                if (r < 0) {
                        free(next.dptr);
                        return r;
                }
                k = next;
        }
        if (gdbm_errno != GDBM_ITEM_NOT_FOUND && gdbm_errno != GDBM_NO_ERROR) {
                msg_warn("%s: reading: %s", g->db_path, gdbm_strerror(gdbm_errno));
                return -EIO;
        }
        return 0;
}

static void gdbm_dict_close(struct dict *d)
{
        struct dict_gdbm *g = (struct dict_gdbm *)d;
        if (g->db)
                gdbm_close(g->db);
        free(g->db_path);
        free(g);
}

const struct dict_type dict_type_hash = {
        .name = "hash",
        .fold = true,
        .open = gdbm_dict_open,
        .get = gdbm_dict_get,
        .walk = gdbm_dict_walk,
        .close = gdbm_dict_close,
};

const struct dict_type dict_type_btree = {
        .name = "btree",
        .fold = true,
        .open = gdbm_dict_open,
        .get = gdbm_dict_get,
        .walk = gdbm_dict_walk,
        .close = gdbm_dict_close,
};

int dict_db_write(const char *db_path, char *const *keys, char *const *values, size_t n, mode_t mode,
                  uid_t uid, gid_t gid, char **ret_error)
{
        _cleanup_free_ char *tmp = xasprintf("%s.tmpXXXXXX", db_path);
        int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                int r = -errno;
                *ret_error = xasprintf("create %s: %s", tmp, strerror(errno));
                return r;
        }

        int r = 0;
        errno = 0;
        GDBM_FILE db = gdbm_fd_open(fd, tmp, 0, GDBM_NEWDB | GDBM_NOLOCK | GDBM_CLOERROR, NULL);
        if (!db) {
                *ret_error = xasprintf("create database %s: %s", tmp, gdbm_error_text());
                unlink(tmp);
                return -EIO;
        }
        for (size_t i = 0; i < n; i++) {
                size_t kl = strlen(keys[i]), vl = strlen(values[i]);
                if (kl > DICT_KEY_MAX || vl > DICT_SOURCE_SIZE_MAX) {
                        *ret_error = xasprintf("%s: entry \"%.40s...\" too long", db_path, keys[i]);
                        r = -E2BIG;
                        goto fail;
                }
                datum k = {.dptr = keys[i], .dsize = (int)kl};
                datum v = {.dptr = values[i], .dsize = (int)vl};
                errno = 0;
                if (gdbm_store(db, k, v, GDBM_REPLACE) != 0) {
                        *ret_error = xasprintf("write %s: %s", tmp, gdbm_error_text());
                        r = -EIO;
                        goto fail;
                }
        }
        fd = gdbm_fdesc(db);
        if (fchmod(fd, mode) < 0 || ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0)) {
                r = -errno;
                *ret_error = xasprintf("set mode/owner of %s: %s", tmp, strerror(errno));
                goto fail;
        }
        errno = 0;
        if (gdbm_sync(db) != 0 || fsync(fd) < 0) {
                r = errno ? -errno : -EIO;
                *ret_error =
                        xasprintf("sync %s: %s", tmp, errno ? strerror(errno) : gdbm_strerror(gdbm_errno));
                goto fail;
        }
        if (gdbm_close(db) != 0) {
                db = NULL;
                r = -EIO;
                *ret_error = xasprintf("close %s: %s", tmp, gdbm_error_text());
                goto fail;
        }
        db = NULL;
        if (rename(tmp, db_path) < 0) {
                r = -errno;
                *ret_error = xasprintf("rename %s to %s: %s", tmp, db_path, strerror(errno));
                goto fail;
        }
        r = fsync_parent_dir(db_path);
        if (r < 0) {
                *ret_error = xasprintf("sync directory of %s: %s", db_path, strerror(-r));
                return r;
        }
        return 0;
fail:
        if (db)
                gdbm_close(db);
        unlink(tmp);
        return r;
}
