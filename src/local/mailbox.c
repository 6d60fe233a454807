/* mailbox.c: mbox, Maildir and file delivery, each in a child process that runs as the recipient. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "alloc.h"
#include "local.h"
#include "log.h"
#include "mailbox_format.h"

/* The delivered copy: [From_ line] Return-Path:, Delivered-To:, the message; mbox quotes "From " lines. */
static int write_message(int fd, const struct local_message *m, bool mbox)
{
        return mailbox_write_copy(fd, m->sender, m->rcpt, m->content, m->content_len, mbox);
}

/* ---- the child process ---- */

typedef void (*child_fn)(void *ctx, struct local_status *st);

static void run_as(const char *user, uid_t uid, gid_t gid, child_fn fn, void *ctx, struct local_status *st)
{
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) {
                local_status_set(st, LOCAL_DEFERRED, "4.3.0", "cannot create pipe: %s", strerror(errno));
                return;
        }
        pid_t pid = fork();
        if (pid < 0) {
                close(p[0]);
                close(p[1]);
                local_status_set(st, LOCAL_DEFERRED, "4.3.0", "cannot fork: %s", strerror(errno));
                return;
        }
        if (pid == 0) {
                struct local_status cst = {0};
                close(p[0]);
                int gr = user ? initgroups(user, gid) : setgroups(1, &gid);
                if (setgid(gid) < 0 || gr < 0 || setuid(uid) < 0 || (uid != 0 && setuid(0) == 0))
                        local_status_set(&cst, LOCAL_DEFERRED, "4.3.0", "cannot switch to uid %u: %s",
                                         (unsigned)uid, strerror(errno));
                else {
                        umask(077);
                        fn(ctx, &cst);
                }
                (void)!write(p[1], &cst, sizeof cst);
                _exit(0);
        }
        close(p[1]);
        struct local_status cst;
        size_t got = 0;
        while (got < sizeof cst) {
                ssize_t n = read(p[0], (char *)&cst + got, sizeof cst - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t)n;
        }
        close(p[0]);
        int wst = 0;
        while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
                ;
        if (got != sizeof cst) {
                local_status_set(st, LOCAL_DEFERRED, "4.3.0", "delivery process died unexpectedly");
                return;
        }
        cst.dsn[sizeof cst.dsn - 1] = '\0';
        cst.reason[sizeof cst.reason - 1] = '\0';
        *st = cst;
}

/* ---- mbox ---- */

struct mbox_ctx {
        const struct local_message *m;
        const char *path;
        const char *what; /* "mailbox" or "file" */
        bool create;
        bool check_owner;
};

static void mbox_child(void *userdata, struct local_status *st)
{
        struct mbox_ctx *c = userdata;
        int fd = open(c->path,
                      O_WRONLY | O_APPEND | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC | (c->create ? O_CREAT : 0),
                      0600);
        if (fd < 0) {
                local_status_set(st, LOCAL_DEFERRED, "4.2.0", "cannot open %s %s: %s", c->what, c->path,
                                 strerror(errno));
                return;
        }
        struct stat s;
        if (fstat(fd, &s) < 0 || !S_ISREG(s.st_mode) || s.st_nlink != 1 ||
            (c->check_owner && s.st_uid != getuid())) {
                local_status_set(
                        st, LOCAL_DEFERRED, "4.2.0",
                        "cannot update %s %s: not a regular file with one link owned by the recipient",
                        c->what, c->path);
                close(fd);
                return;
        }
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        int locked = -1;
        for (int i = 0; i < LOCAL_FCNTL_LOCK_ATTEMPTS && locked < 0; i++) {
                locked = fcntl(fd, F_SETLK, &fl);
                if (locked < 0 && errno != EAGAIN && errno != EACCES)
                        break;
                if (locked < 0)
                        usleep(LOCAL_DOTLOCK_DELAY_MS * 1000);
        }
        if (locked < 0) {
                local_status_set(st, LOCAL_DEFERRED, "4.2.0", "cannot lock %s %s: %s", c->what, c->path,
                                 strerror(errno));
                close(fd);
                return;
        }
        off_t old = lseek(fd, 0, SEEK_END);
        int r = old < 0 ? -errno : write_message(fd, c->m, true);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        /* The first message in a new (empty) mailbox: its name must be as durable as its content, or a
         * power cut after "sent" could take the file, and the message with it. A directory the recipient
         * may write but not read (so not open) gets the whole file system synced instead. */
        if (r >= 0 && old == 0) {
                r = fsync_parent_dir(c->path);
                if (r == -EACCES)
                        r = syncfs(fd) < 0 ? -errno : 0;
        }
        if (r < 0) {
                /* Leave the mailbox as it was: a partial message would corrupt the next one. */
                if (old >= 0 && ftruncate(fd, old) < 0)
                        r = -errno;
                local_status_set(st, LOCAL_DEFERRED, "4.2.0",
                                 "cannot update %s %s: error writing message: %s", c->what, c->path,
                                 strerror(-r));
        } else
                local_status_set(st, LOCAL_SENT, "2.0.0", "delivered");
        close(fd);
}

/* USER.lock next to the spool mailbox, made as root (the spool directory need not be writable by users). */
static int dotlock_acquire(const char *lock_path)
{
        for (int i = 0; i < LOCAL_DOTLOCK_ATTEMPTS; i++) {
                int fd = open(lock_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd >= 0) {
                        close(fd);
                        return 0;
                }
                if (errno != EEXIST)
                        return -errno;
                struct stat s;
                if (lstat(lock_path, &s) == 0 && time(NULL) - s.st_mtime > LOCAL_DOTLOCK_STALE_SEC) {
                        msg_warn("removing stale lock file %s", lock_path);
                        unlink(lock_path);
                        continue;
                }
                usleep(LOCAL_DOTLOCK_DELAY_MS * 1000);
        }
        return -EAGAIN;
}

static void deliver_spool(struct local *l, const struct local_message *m, const struct passwd *pw,
                          struct local_status *st)
{
        _cleanup_free_ char *path = xasprintf("%s/%s", l->spool_dir, pw->pw_name);
        /* Created by root and given to the user: /var/mail is often not writable by users. */
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0) {
                if (fchown(fd, pw->pw_uid, pw->pw_gid) < 0) {
                        local_status_set(st, LOCAL_DEFERRED, "4.2.0", "cannot set owner of mailbox %s: %s",
                                         path, strerror(errno));
                        close(fd);
                        unlink(path);
                        return;
                }
                close(fd);
        } else if (errno != EEXIST) {
                local_status_set(st, LOCAL_DEFERRED, "4.2.0", "cannot create mailbox %s: %s", path,
                                 strerror(errno));
                return;
        }
        _cleanup_free_ char *lock = xasprintf("%s.lock", path);
        if (l->dotlock) {
                int r = dotlock_acquire(lock);
                if (r < 0) {
                        local_status_set(st, LOCAL_DEFERRED, "4.2.0",
                                         "cannot lock mailbox %s for exclusive access: %s", path,
                                         r == -EAGAIN ? "lock file is held by another process"
                                                      : strerror(-r));
                        return;
                }
        }
        struct mbox_ctx c = {.m = m, .path = path, .what = "mailbox", .create = false, .check_owner = true};
        run_as(pw->pw_name, pw->pw_uid, pw->pw_gid, mbox_child, &c, st);
        if (l->dotlock)
                unlink(lock);
}

/* ---- Maildir ---- */

struct maildir_ctx {
        const struct local_message *m;
        const char *dir;
        const char *hostname;
};

static void maildir_child(void *userdata, struct local_status *st)
{
        struct maildir_ctx *c = userdata;
        static const char *const subdirs[] = {"", "/tmp", "/new", "/cur"};
        for (size_t i = 0; i < ELEMENTSOF(subdirs); i++) {
                _cleanup_free_ char *d = xasprintf("%s%s", c->dir, subdirs[i]);
                if (mkdir(d, 0700) < 0 && errno != EEXIST) {
                        local_status_set(st, LOCAL_DEFERRED, "4.2.0", "cannot create maildir %s: %s", d,
                                         strerror(errno));
                        return;
                }
        }
        /* time.PpidMusec.host: unique per host; the host part must not contain '/' or ':'. */
        _cleanup_free_ char *host = xstrdup(c->hostname);
        for (char *p = host; *p; p++)
                if (*p == '/' || *p == ':')
                        *p = '_';
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        _cleanup_free_ char *name = xasprintf("%lld.P%dM%06ldQ%s.%s", (long long)ts.tv_sec, (int)getpid(),
                                              ts.tv_nsec / 1000, c->m->queue_id, host);
        _cleanup_free_ char *tmp = xasprintf("%s/tmp/%s", c->dir, name);
        _cleanup_free_ char *dst = xasprintf("%s/new/%s", c->dir, name);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
                local_status_set(st, LOCAL_DEFERRED, "4.2.0", "cannot create maildir file %s: %s", tmp,
                                 strerror(errno));
                return;
        }
        int r = maildir_deliver_file(fd, tmp, dst, c->m->sender, c->m->rcpt, c->m->content,
                                     c->m->content_len);
        if (r < 0) {
                local_status_set(st, LOCAL_DEFERRED, "4.2.0", "cannot deliver to maildir %s: %s", c->dir,
                                 strerror(-r));
                return;
        }
        local_status_set(st, LOCAL_SENT, "2.0.0", "delivered");
}

void mailbox_deliver_user(struct local *l, const struct local_message *m, const struct passwd *pw,
                          struct local_status *st, const char **how)
{
        size_t hl = strlen(l->home_mailbox);
        if (hl > 0 && l->home_mailbox[hl - 1] == '/') {
                _cleanup_free_ char *dir = xasprintf("%s/%.*s", pw->pw_dir, (int)(hl - 1), l->home_mailbox);
                struct maildir_ctx c = {.m = m, .dir = dir, .hostname = l->hostname};
                *how = "delivered to maildir";
                run_as(pw->pw_name, pw->pw_uid, pw->pw_gid, maildir_child, &c, st);
                return;
        }
        *how = "delivered to mailbox";
        if (hl > 0) {
                _cleanup_free_ char *path = xasprintf("%s/%s", pw->pw_dir, l->home_mailbox);
                struct mbox_ctx c = {
                        .m = m, .path = path, .what = "mailbox", .create = true, .check_owner = true};
                run_as(pw->pw_name, pw->pw_uid, pw->pw_gid, mbox_child, &c, st);
                return;
        }
        deliver_spool(l, m, pw, st);
}

void mailbox_deliver_file(struct local *l, const struct local_message *m, const char *path, uid_t uid,
                          gid_t gid, struct local_status *st)
{
        /* "/path/" in an alias is a Maildir, as in Postfix. */
        size_t pl = strlen(path);
        if (pl > 1 && path[pl - 1] == '/') {
                _cleanup_free_ char *dir = xstrndup(path, pl - 1);
                struct maildir_ctx mc = {.m = m, .dir = dir, .hostname = l->hostname};
                run_as(NULL, uid, gid, maildir_child, &mc, st);
                return;
        }
        struct mbox_ctx c = {.m = m, .path = path, .what = "file", .create = true, .check_owner = false};
        run_as(NULL, uid, gid, mbox_child, &c, st);
}
