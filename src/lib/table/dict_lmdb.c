/* dict_lmdb.c: lmdb: tables, LMDB files FILE.lmdb built by postmap (Postfix's Berkeley DB successor). */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <sys/stat.h>

#include "alloc.h"
#include "dict.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"

/*
 * A table is never written in place: postmap fills a new file and renames it over the old one. So
 * readers open it read-only without LMDB's lock file (MDB_NOLOCK: no writer ever shares the file), and
 * reopen it when the name points to a new file, as the GDBM tables do.
 */

struct dict_lmdb {
        struct dict d;
        char *db_path;
        MDB_env *env;
        MDB_dbi dbi;
        struct dict_file_id id; /* of the open file */
};

static int lmdb_open_file(struct dict_lmdb *l, char **ret_error)
{
        struct stat st;
        if (stat(l->db_path, &st) < 0) {
                int r = -errno;
                *ret_error = xasprintf("open database %s: %s", l->db_path, strerror(errno));
                return r;
        }
        MDB_env *env = NULL;
        MDB_txn *txn = NULL;
        MDB_dbi dbi;
        int rc = mdb_env_create(&env);
        if (rc == 0)
                rc = mdb_env_open(env, l->db_path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0);
        if (rc == 0)
                rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
        if (rc == 0)
                rc = mdb_dbi_open(txn, NULL, 0, &dbi);
        if (txn)
                mdb_txn_abort(txn);
        if (rc != 0) {
                *ret_error = xasprintf("open database %s: %s", l->db_path, mdb_strerror(rc));
                if (env)
                        mdb_env_close(env);
                return rc > 0 ? -rc : -EBADMSG;
        }
        if (l->env)
                mdb_env_close(l->env);
        l->env = env;
        l->dbi = dbi;
        dict_file_id_set(&l->id, &st);
        return 0;
}

static int lmdb_dict_open(const char *name, struct dict **ret, char **ret_error)
{
        struct dict_lmdb *l = xcalloc(1, sizeof(*l));
        l->db_path = dict_db_file("lmdb", name);
        int r = lmdb_open_file(l, ret_error);
        if (r < 0) {
                free(l->db_path);
                free(l);
                return r;
        }
        *ret = &l->d;
        return 0;
}

/* A running daemon sees a table rebuilt by postmap without a restart. */
static void lmdb_refresh(struct dict_lmdb *l)
{
        if (!dict_file_changed(l->db_path, &l->id))
                return;
        _cleanup_free_ char *err = NULL;
        if (lmdb_open_file(l, &err) < 0)
                msg_warn("%s; still using the previous version of the table", err);
}

static int lmdb_dict_get(struct dict *d, const char *key, char **ret_value)
{
        struct dict_lmdb *l = (struct dict_lmdb *)d;
        lmdb_refresh(l);
        MDB_txn *txn;
        int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn);
        if (rc != 0) {
                msg_warn("%s: lookup of \"%s\": %s", l->db_path, key, mdb_strerror(rc));
                return -EIO;
        }
        MDB_val k = {.mv_size = strlen(key), .mv_data = (void *)key}, v;
        rc = mdb_get(txn, l->dbi, &k, &v);
        if (rc == 0)
                *ret_value = xstrndup(v.mv_data, v.mv_size);
        mdb_txn_abort(txn);
        if (rc == MDB_NOTFOUND)
                return 0;
        if (rc != 0) {
                msg_warn("%s: lookup of \"%s\": %s", l->db_path, key, mdb_strerror(rc));
                return -EIO;
        }
        return 1;
}

static int lmdb_dict_walk(struct dict *d, dict_walk_fn fn, void *userdata)
{
        struct dict_lmdb *l = (struct dict_lmdb *)d;
        lmdb_refresh(l);
        MDB_txn *txn;
        MDB_cursor *cur;
        int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn);
        if (rc != 0)
                return -EIO;
        rc = mdb_cursor_open(txn, l->dbi, &cur);
        if (rc != 0) {
                mdb_txn_abort(txn);
                return -EIO;
        }
        MDB_val k, v;
        int r = 0;
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && r >= 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
                _cleanup_free_ char *key = xstrndup(k.mv_data, k.mv_size);
                _cleanup_free_ char *value = xstrndup(v.mv_data, v.mv_size);
                r = fn(key, value, userdata);
        }
        mdb_cursor_close(cur);
        mdb_txn_abort(txn);
        if (r < 0)
                return r;
        return rc == MDB_NOTFOUND ? 0 : -EIO;
}

static void lmdb_dict_close(struct dict *d)
{
        struct dict_lmdb *l = (struct dict_lmdb *)d;
        if (l->env)
                mdb_env_close(l->env);
        free(l->db_path);
        free(l);
}

const struct dict_type dict_type_lmdb = {
        .name = "lmdb",
        .fold = true,
        .open = lmdb_dict_open,
        .get = lmdb_dict_get,
        .walk = lmdb_dict_walk,
        .close = lmdb_dict_close,
};

/* ---- postmap's writer ---- */

/* LMDB needs its map size up front: the data twice over (B-tree pages are half full at worst) and slack. */
static size_t lmdb_map_size(char *const *keys, char *const *values, size_t n)
{
        size_t total = 1u << 20;
        for (size_t i = 0; i < n; i++)
                total += 2 * (strlen(keys[i]) + strlen(values[i]) + 64);
        return (total + 4095) & ~(size_t)4095;
}

static int lmdb_fill(MDB_env *env, const char *tmp, char *const *keys, char *const *values, size_t n,
                     char **ret_error)
{
        MDB_txn *txn;
        MDB_dbi dbi;
        int rc = mdb_txn_begin(env, NULL, 0, &txn);
        if (rc != 0) {
                *ret_error = xasprintf("write %s: %s", tmp, mdb_strerror(rc));
                return -EIO;
        }
        rc = mdb_dbi_open(txn, NULL, 0, &dbi);
        for (size_t i = 0; rc == 0 && i < n; i++) {
                MDB_val k = {.mv_size = strlen(keys[i]), .mv_data = keys[i]};
                MDB_val v = {.mv_size = strlen(values[i]), .mv_data = values[i]};
                if (k.mv_size == 0 || k.mv_size > (size_t)mdb_env_get_maxkeysize(env)) {
                        mdb_txn_abort(txn);
                        *ret_error = xasprintf("%s: key \"%.40s\" is empty or longer than LMDB's %d bytes",
                                               tmp, keys[i], mdb_env_get_maxkeysize(env));
                        return -E2BIG;
                }
                rc = mdb_put(txn, dbi, &k, &v, 0);
        }
        if (rc == 0) {
                rc = mdb_txn_commit(txn); /* frees txn, whatever the outcome */
                if (rc == 0)
                        return 0;
        } else
                mdb_txn_abort(txn);
        *ret_error = xasprintf("write %s: %s", tmp, mdb_strerror(rc));
        return -EIO;
}

int dict_lmdb_write(const char *db_path, char *const *keys, char *const *values, size_t n, mode_t mode,
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
        MDB_env *env = NULL;
        int rc = mdb_env_create(&env);
        if (rc == 0)
                rc = mdb_env_set_mapsize(env, lmdb_map_size(keys, values, n));
        if (rc == 0)
                rc = mdb_env_open(env, tmp, MDB_NOSUBDIR | MDB_NOLOCK, 0600);
        if (rc != 0) {
                *ret_error = xasprintf("create database %s: %s", tmp, mdb_strerror(rc));
                r = -EIO;
                goto fail;
        }
        r = lmdb_fill(env, tmp, keys, values, n, ret_error);
        if (r < 0)
                goto fail;
        /* The commit synced the data; the rename below must not overtake it. */
        mdb_env_close(env);
        env = NULL;
        if (fchmod(fd, mode) < 0 || ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0) ||
            fsync(fd) < 0) {
                r = -errno;
                *ret_error = xasprintf("set mode/owner of %s: %s", tmp, strerror(errno));
                goto fail;
        }
        close(fd);
        fd = -1;
        if (rename(tmp, db_path) < 0) {
                r = -errno;
                *ret_error = xasprintf("rename %s to %s: %s", tmp, db_path, strerror(errno));
                goto fail;
        }
        r = fsync_parent_dir(db_path);
        if (r < 0)
                *ret_error = xasprintf("sync directory of %s: %s", db_path, strerror(-r));
        return r;
fail:
        if (env)
                mdb_env_close(env);
        if (fd >= 0)
                close(fd);
        unlink(tmp);
        return r;
}
