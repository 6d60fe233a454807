/* shadow.c: the power-cut model: a record, per inode, of what fsync() has made durable (test-only).
 *
 * The model of POSIX durability it implements (test_faults.py restores a spool from it after a "cut"):
 *  - a regular file's content survives as it was at its last successful fsync()/fdatasync(); a file
 *    never synced survives empty (what ext4 leaves of delayed-allocation data after a crash);
 *  - a directory's entries survive as they were at the directory's last successful fsync(): a
 *    rename, link, unlink or creation not followed by an fsync of the directory is undone;
 *  - one exception, because every journaling file system (ext4, xfs, btrfs) makes a rename one
 *    atomic metadata change: an entry moved to another directory of the same parent does not vanish
 *    from its source until its new name is durable too (so a file is never in neither directory;
 *    it may be in both, which postd's recovery resolves).
 * Everything else (writes, truncations, renames) is lost at the cut unless covered as above.
 * The record is made after the real fsync returned, under a lock the test takes before it kills the
 * processes, so the state captured is one that existed at the moment of the cut. Reading a file's
 * content after the fsync may capture a little more than the fsync covered (a write that followed it
 * at once): that makes the model kinder, never harsher, so it cannot invent a loss.
 *
 * Layout under the shadow directory: data/KEY (a file's content), list/KEY (a directory's entries,
 * lines "T KEY UID GID MODE NAME", T being f or d), lock (flock), unsupported (what the model missed).
 * KEY names an inode for its whole life: device, inode number and birth time, so that a reused inode
 * number never inherits an old file's content.
 */
#include "shadow.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"

#define KEY_MAX 96

static int key_at(int dirfd, const char *name, int flags, char key[KEY_MAX], struct statx *ret)
{
        struct statx sx;
        if (statx(dirfd, name, flags | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, &sx) < 0)
                return -errno;
        if (!(sx.stx_mask & STATX_BTIME))
                return -EOPNOTSUPP; /* without birth times a reused inode could inherit old content */
        snprintf(key, KEY_MAX, "%x.%x-%" PRIx64 "-%" PRId64 ".%u", sx.stx_dev_major, sx.stx_dev_minor,
                 (uint64_t)sx.stx_ino, (int64_t)sx.stx_btime.tv_sec, sx.stx_btime.tv_nsec);
        if (ret)
                *ret = sx;
        return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
        while (n > 0) {
                ssize_t w = write(fd, p, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0)
                        return -errno;
                p += w;
                n -= (size_t)w;
        }
        return 0;
}

/* A new file under shadow/tmp. names; readable by all (the daemons run as several users). */
static int tmp_create(const char *shadow, char path[PATH_MAX])
{
        static unsigned counter;
        snprintf(path, PATH_MAX, "%s/tmp.%d.%d.%u", shadow, (int)getpid(), (int)gettid(),
                 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        (void)fchmod(fd, 0644);
        return fd;
}

static int tmp_commit(const char *tmp, const char *shadow, const char *sub, const char *key)
{
        char dst[PATH_MAX];
        snprintf(dst, sizeof dst, "%s/%s/%s", shadow, sub, key);
        if (rename(tmp, dst) < 0) {
                int r = -errno;
                unlink(tmp);
                return r;
        }
        return 0;
}

/* Copy fd's whole content (through a new read-only open: fd may be write-only). */
static int copy_content(int fd, int out)
{
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        _cleanup_close_ int in = open(proc, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return -errno;
        char buf[65536];
        for (;;) {
                ssize_t n = read(in, buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return 0;
                int r = write_all(out, buf, (size_t)n);
                if (r < 0)
                        return r;
        }
}

static int record_content(const char *shadow, int fd, const char *key)
{
        char tmp[PATH_MAX];
        _cleanup_close_ int out = tmp_create(shadow, tmp);
        if (out < 0)
                return out;
        int r = copy_content(fd, out);
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        return tmp_commit(tmp, shadow, "data", key);
}

struct entry {
        char type;
        char key[KEY_MAX];
        char name[NAME_MAX + 1];
        char line[KEY_MAX + NAME_MAX + 64];
};

/* The entries of list/KEY; *ret NULL and 0 entries when there is none yet. */
static int read_listing(const char *shadow, const char *key, struct entry **ret, size_t *ret_n)
{
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/list/%s", shadow, key);
        *ret = NULL;
        *ret_n = 0;
        FILE *f = fopen(path, "re");
        if (!f)
                return errno == ENOENT ? 0 : -errno;
        struct entry *v = NULL;
        size_t n = 0, cap = 0;
        char line[sizeof v->line];
        while (fgets(line, sizeof line, f)) {
                if (n == cap) {
                        cap = cap ? 2 * cap : 64;
                        struct entry *nv = realloc(v, cap * sizeof *v);
                        if (!nv) {
                                free(v);
                                fclose(f);
                                return -ENOMEM;
                        }
                        v = nv;
                }
                struct entry *e = &v[n];
                unsigned uid, gid, mode;
                int off = 0;
                if (sscanf(line, "%c %95s %u %u %o %n", &e->type, e->key, &uid, &gid, &mode, &off) < 5 ||
                    !off)
                        continue;
                snprintf(e->name, sizeof e->name, "%.*s", (int)strcspn(line + off, "\n"), line + off);
                snprintf(e->line, sizeof e->line, "%s", line);
                n++;
        }
        fclose(f);
        *ret = v;
        *ret_n = n;
        return 0;
}

static bool listing_has(const struct entry *v, size_t n, const char *key, const char *name)
{
        for (size_t i = 0; i < n; i++)
                if (streq(v[i].key, key) && streq(v[i].name, name))
                        return true;
        return false;
}

/* Whether an entry that left dir (key, name) now sits under the same name in a sibling directory
 * whose durable listing does not have it yet: a rename whose target is not durable. */
static bool moved_not_durable(const char *shadow, int dirfd, const char *dirkey, const struct entry *e)
{
        _cleanup_close_ int parent = openat(dirfd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (parent < 0)
                return false;
        DIR *d = fdopendir(dup(parent));
        if (!d)
                return false;
        bool found = false;
        for (struct dirent *de; !found && (de = readdir(d));) {
                if (de->d_type != DT_DIR || streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                _cleanup_close_ int sib = openat(parent, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                char sibkey[KEY_MAX], k[KEY_MAX];
                if (sib < 0 || key_at(sib, "", AT_EMPTY_PATH, sibkey, NULL) < 0 || streq(sibkey, dirkey))
                        continue;
                if (key_at(sib, e->name, 0, k, NULL) < 0 || !streq(k, e->key))
                        continue;
                _cleanup_free_ struct entry *v = NULL;
                size_t n;
                found = read_listing(shadow, sibkey, &v, &n) == 0 && !listing_has(v, n, e->key, e->name);
        }
        closedir(d);
        return found;
}

static bool has_name(const struct entry *v, size_t n, const char *name)
{
        for (size_t i = 0; i < n; i++)
                if (streq(v[i].name, name))
                        return true;
        return false;
}

static int entry_cmp(const void *a, const void *b)
{
        return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

static int push(struct entry **v, size_t *n, size_t *cap, const struct entry *e)
{
        if (*n == *cap) {
                *cap = *cap ? 2 * *cap : 64;
                struct entry *nv = realloc(*v, *cap * sizeof **v);
                if (!nv)
                        return -ENOMEM;
                *v = nv;
        }
        (*v)[(*n)++] = *e;
        return 0;
}

/* The directory's entries now, files and directories only (sockets and the like are made again at start). */
static int current_entries(int dfd, struct entry **v, size_t *n, size_t *cap)
{
        DIR *d = fdopendir(dup(dfd));
        if (!d)
                return -errno;
        int r = 0;
        for (struct dirent *de; r >= 0 && (de = readdir(d));) {
                struct statx sx;
                struct entry e;
                if (streq(de->d_name, ".") || streq(de->d_name, "..") ||
                    key_at(dfd, de->d_name, 0, e.key, &sx) < 0)
                        continue; /* gone since readdir: not there at the moment of the record */
                if (!S_ISREG(sx.stx_mode) && !S_ISDIR(sx.stx_mode))
                        continue;
                e.type = S_ISDIR(sx.stx_mode) ? 'd' : 'f';
                snprintf(e.name, sizeof e.name, "%s", de->d_name);
                snprintf(e.line, sizeof e.line, "%c %s %u %u %o %s\n", e.type, e.key, sx.stx_uid, sx.stx_gid,
                         sx.stx_mode & 07777, de->d_name);
                r = push(v, n, cap, &e);
        }
        closedir(d);
        return r;
}

static int record_listing(const char *shadow, int fd, const char *dirkey)
{
        _cleanup_free_ struct entry *old = NULL, *v = NULL;
        size_t n_old, n = 0, cap = 0;
        int r = read_listing(shadow, dirkey, &old, &n_old);
        if (r < 0)
                return r;
        _cleanup_close_ int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        r = current_entries(dfd, &v, &n, &cap);
        size_t n_now = n;
        for (size_t i = 0; r >= 0 && i < n_old; i++)
                if (!has_name(v, n_now, old[i].name) && moved_not_durable(shadow, dfd, dirkey, &old[i]))
                        r = push(&v, &n, &cap, &old[i]);
        if (r < 0)
                return r;
        /* One line per name: readdir may repeat a name that was replaced while it ran. */
        qsort(v, n, sizeof *v, entry_cmp);
        char tmp[PATH_MAX];
        _cleanup_close_ int out = tmp_create(shadow, tmp);
        if (out < 0)
                return out;
        for (size_t i = 0; r >= 0 && i < n; i++)
                if (i == 0 || !streq(v[i].name, v[i - 1].name))
                        r = write_all(out, v[i].line, strlen(v[i].line));
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        return tmp_commit(tmp, shadow, "list", dirkey);
}

static int lock_shadow(const char *shadow)
{
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/lock", shadow);
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        while (flock(fd, LOCK_EX) < 0)
                if (errno != EINTR) {
                        int r = -errno;
                        close(fd);
                        return r;
                }
        return fd;
}

int shadow_record_fd(const char *shadow, const char *root, int fd)
{
        char proc[64], path[PATH_MAX];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(proc, path, sizeof path - 1);
        if (n < 0)
                return -errno; /* unknown: reported, never silently left out */
        path[n] = 0;
        size_t rl = strlen(root);
        if (strncmp(path, root, rl) != 0 || (path[rl] != '/' && path[rl] != 0))
                return 0;
        struct statx sx;
        char key[KEY_MAX];
        int r = key_at(fd, "", AT_EMPTY_PATH, key, &sx);
        if (r < 0)
                return r;
        if (!S_ISREG(sx.stx_mode) && !S_ISDIR(sx.stx_mode))
                return 0;
        _cleanup_close_ int lock = lock_shadow(shadow);
        if (lock < 0)
                return lock;
        return S_ISDIR(sx.stx_mode) ? record_listing(shadow, fd, key) : record_content(shadow, fd, key);
}

int shadow_baseline(const char *shadow, const char *dir)
{
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        char key[KEY_MAX];
        int r = key_at(dfd, "", AT_EMPTY_PATH, key, NULL);
        if (r < 0)
                return r;
        _cleanup_close_ int lock = lock_shadow(shadow);
        if (lock < 0)
                return lock;
        DIR *d = fdopendir(dup(dfd));
        if (!d)
                return -errno;
        for (struct dirent *de; r >= 0 && (de = readdir(d));) {
                char k[KEY_MAX];
                struct statx sx;
                if (streq(de->d_name, ".") || streq(de->d_name, "..") ||
                    key_at(dfd, de->d_name, 0, k, &sx) < 0 || !S_ISREG(sx.stx_mode))
                        continue;
                _cleanup_close_ int f = openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                r = f < 0 ? -errno : record_content(shadow, f, k);
        }
        closedir(d);
        if (r >= 0)
                r = record_listing(shadow, dfd, key);
        if (r >= 0)
                printf("%s %s\n", key, dir);
        return r;
}

void shadow_unsupported(const char *shadow, const char *what)
{
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/unsupported", shadow);
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
        if (fd >= 0) {
                char line[512];
                int len = snprintf(line, sizeof line, "pid %d: %s\n", (int)getpid(), what);
                (void)write_all(fd, line, (size_t)len);
        }
}
