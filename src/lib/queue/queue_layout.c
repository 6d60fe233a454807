/* queue_layout.c: creating the queue's directories with Postfix's owners and modes (SELinux labels
 * restored), and checking them for `postfix check`. */
#include "queue_layout.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "macro.h"
#include "selabel.h"

static uid_t want_uid(const struct queue_owners *o, enum owner_kind k)
{
        return k == OWN_ROOT ? o->root_uid : o->mail_owner;
}

static gid_t want_gid(const struct queue_owners *o, enum group_kind k)
{
        switch (k) {
        case GRP_SETGID: return o->setgid_group;
        case GRP_ROOT: return o->root_gid;
        default: return o->mail_group;
        }
}

static int open_dir_at(int dirfd, const char *name)
{
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

/* Changes only what differs: SELinux checks setattr on every chown/chmod, even one that changes nothing,
 * and the stock policies do not let the master set attributes of every queue directory type. */
static int fix_dir(int fd, uid_t uid, gid_t gid, mode_t mode)
{
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        bool chown_needed = st.st_uid != uid || st.st_gid != gid;
        if (chown_needed && fchown(fd, uid, gid) < 0)
                return -errno;
        /* A chown may clear set-id bits: set the mode again after one. */
        if ((chown_needed || (st.st_mode & 07777) != mode) && fchmod(fd, mode) < 0)
                return -errno;
        return 0;
}

/*
 * Under SELinux the policy module names a type for each queue directory; directories made before
 * it was loaded, or by a process without its transitions, keep their parent's. Not fatal: the
 * mail system may still work (permissive, or a custom policy), and the warning says the fix.
 */
static void restore_labels(const char *queue_dir)
{
        int r = selabel_restore(queue_dir, false);
        for (size_t i = 0; r >= 0 && i < queue_layout_n; i++) {
                _cleanup_free_ char *path =
                        xasprintf("%s/%s", queue_dir, queue_name_to_string(queue_layout[i].name));
                r = selabel_restore(path, false);
        }
        if (r < 0)
                msg_warn("%s: cannot restore the SELinux labels of the queue directories: %s (run "
                         "restorecon -R %s)",
                         queue_dir, strerror(-r), queue_dir);
}

int queue_layout_create(const char *queue_dir, const struct queue_owners *o)
{
        if (mkdir(queue_dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        _cleanup_close_ int qfd = open_dir_at(AT_FDCWD, queue_dir);
        if (qfd < 0)
                return qfd;
        int r = fix_dir(qfd, o->root_uid, o->root_gid, 0755);
        if (r < 0)
                return r;
        for (size_t i = 0; i < queue_layout_n; i++) {
                const struct layout_entry *e = &queue_layout[i];
                const char *name = queue_name_to_string(e->name);
                /* 0700 first: the directory is never more open than intended, whatever the umask. */
                if (mkdirat(qfd, name, 0700) < 0 && errno != EEXIST)
                        return -errno;
                _cleanup_close_ int fd = open_dir_at(qfd, name);
                if (fd < 0)
                        return fd;
                r = fix_dir(fd, want_uid(o, e->owner), want_gid(o, e->group), e->mode);
                if (r < 0)
                        return r;
        }
        if (fsync(qfd) < 0)
                return -errno;
        restore_labels(queue_dir);
        return 0;
}

static void check_stat(const char *path, const struct stat *st, uid_t uid, gid_t gid, mode_t mode,
                       struct strv *problems, int *n)
{
        if ((st->st_mode & 07777) != mode) {
                strv_push_take(problems, xasprintf("%s: mode %04o, expected %04o", path,
                                                   (unsigned)(st->st_mode & 07777), (unsigned)mode));
                (*n)++;
        }
        if (st->st_uid != uid) {
                strv_push_take(problems, xasprintf("%s: owner uid %u, expected %u", path,
                                                   (unsigned)st->st_uid, (unsigned)uid));
                (*n)++;
        }
        if (st->st_gid != gid) {
                strv_push_take(problems, xasprintf("%s: group gid %u, expected %u", path,
                                                   (unsigned)st->st_gid, (unsigned)gid));
                (*n)++;
        }
}

int queue_layout_check(const char *queue_dir, const struct queue_owners *o, struct strv *problems)
{
        _cleanup_close_ int qfd = open_dir_at(AT_FDCWD, queue_dir);
        if (qfd < 0)
                return qfd;
        struct stat qst;
        if (fstat(qfd, &qst) < 0)
                return -errno;
        int n = 0;
        if (qst.st_uid != o->root_uid) {
                strv_push_take(problems, xasprintf("%s: owner uid %u, expected %u", queue_dir,
                                                   (unsigned)qst.st_uid, (unsigned)o->root_uid));
                n++;
        }
        if (qst.st_mode & 022) {
                strv_push_take(problems, xasprintf("%s: mode %04o, writable by group or others", queue_dir,
                                                   (unsigned)(qst.st_mode & 07777)));
                n++;
        }
        for (size_t i = 0; i < queue_layout_n; i++) {
                const struct layout_entry *e = &queue_layout[i];
                _cleanup_free_ char *path = xasprintf("%s/%s", queue_dir, queue_name_to_string(e->name));
                struct stat st;
                if (fstatat(qfd, queue_name_to_string(e->name), &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        strv_push_take(problems, errno == ENOENT
                                                         ? xasprintf("%s: missing", path)
                                                         : xasprintf("%s: %s", path, strerror(errno)));
                        n++;
                        continue;
                }
                if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode)) {
                        strv_push_take(problems,
                                       xasprintf("%s: %s, expected a directory", path,
                                                 S_ISLNK(st.st_mode) ? "symbolic link" : "not a directory"));
                        n++;
                        continue;
                }
                check_stat(path, &st, want_uid(o, e->owner), want_gid(o, e->group), e->mode, problems, &n);
                if (st.st_dev != qst.st_dev) {
                        /* Queue IDs are inode numbers and state changes are renames: one file system only.
                         */
                        strv_push_take(problems,
                                       xasprintf("%s: on another file system than %s", path, queue_dir));
                        n++;
                }
        }
        return n;
}
