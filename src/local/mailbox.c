/* mailbox.c: mbox, Maildir and file delivery, each in a child process that runs as the recipient. */
#include <errno.h>
#include <sys/resource.h>
#include <signal.h>
#include <fcntl.h>
#include <dirent.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "alloc.h"
#include "local.h"
#include "log.h"
#include "mailbox_format.h"

/* The copy as this attempt renders it: a retry renders the same bytes, so it can recognize them. */
static struct mailbox_copy copy_of(const struct local_message *m, bool mbox)
{
        time_t when = m->attempt ? (time_t)(m->attempt->rcpt->attempt_usec / 1000000) : time(NULL);
        return (struct mailbox_copy){.sender = m->sender,
                                     .rcpt = m->rcpt,
                                     .content = m->content,
                                     .len = m->content_len,
                                     .when = when,
                                     .mbox = mbox};
}

/* ---- the child process ---- */

/* What a child says to its parent: "record this append" (answered with one byte, 0 when recorded), then
 * its final status. */
enum { CHILD_APPEND = 1, CHILD_DONE = 2 };
struct child_msg {
        int type;
        uint64_t dev, ino, size;
        struct local_status st;
};

typedef void (*child_fn)(void *ctx, int chan, struct local_status *st);

/* In the parent, for the child: the mailbox's identity and size before the append, made durable in the
 * recipient's slot before the child writes a byte. */
static int record_append(struct local_attempt *a, const struct child_msg *cm)
{
        struct qfile_rcpt *rc = a->rcpt;
        rc->mbox_dev = cm->dev;
        rc->mbox_ino = cm->ino;
        rc->mbox_size = cm->size;
        int r = queue_write_rcpt_slot(a->qfd, rc, true);
        if (r < 0)
                msg_warn("cannot record the delivery attempt of %s: %s", rc->address, strerror(-r));
        else
                *a->unsynced = false; /* the fdatasync covers every slot written before it */
        return r;
}

/* Before a copy whose name or bytes depend on the attempt's time: the request's records made durable. */
static int attempt_sync(struct local_attempt *a)
{
        if (!a || !*a->unsynced)
                return 0;
        if (fdatasync(a->qfd) < 0) {
                int r = -errno;
                msg_warn("cannot record the delivery attempt of %s: %s", a->rcpt->address, strerror(-r));
                return r;
        }
        *a->unsynced = false;
        return 0;
}

/* In the child: ask the parent to record the append. 0 once it is durable; else do not append. */
static int child_record_append(int chan, const struct stat *s)
{
        struct child_msg cm = {.type = CHILD_APPEND,
                               .dev = (uint64_t)s->st_dev,
                               .ino = (uint64_t)s->st_ino,
                               .size = (uint64_t)s->st_size};
        if (write_full(chan, &cm, sizeof cm) < 0)
                return -EIO;
        uint8_t ok = 1;
        ssize_t n;
        while ((n = read(chan, &ok, 1)) < 0 && errno == EINTR)
                ;
        return n == 1 && ok == 0 ? 0 : -EIO;
}

/* The parent's side: answer append requests (only with an attempt to record them in) until the status. */
static int parent_serve(int fd, struct local_attempt *a, struct local_status *ret)
{
        struct child_msg cm;
        for (;;) {
                if (read_full(fd, &cm, sizeof cm) < 0)
                        return -EIO;
                if (cm.type == CHILD_DONE)
                        break;
                uint8_t ok = cm.type == CHILD_APPEND && a && record_append(a, &cm) >= 0 ? 0 : 1;
                if (write_full(fd, &ok, 1) < 0)
                        return -EIO;
        }
        *ret = cm.st;
        return 0;
}

static uint64_t file_size_limit; /* mailbox_size_limit; 0: none */

void mailbox_set_size_limit(uint64_t bytes)
{
        file_size_limit = bytes;
}

void local_limit_file_size(uint64_t bytes)
{
        if (bytes == 0)
                return;
        /* As Postfix: a write past the limit fails with EFBIG (SIGXFSZ would kill the writer instead). */
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {.rlim_cur = bytes, .rlim_max = bytes};
        (void)setrlimit(RLIMIT_FSIZE, &rl);
}

/* A failed write's status: past mailbox_size_limit it is final (5.2.2 mailbox full), else try again. */
static void write_failed(struct local_status *st, int r, const char *what)
{
        if (r == -EFBIG)
                local_status_set(st, LOCAL_BOUNCED, "5.2.2", "%s: %s (mailbox_size_limit)", what,
                                 strerror(-r));
        else
                local_status_set(st, LOCAL_DEFERRED, "4.2.0", "%s: %s", what, strerror(-r));
}

static void run_as(const char *user, uid_t uid, gid_t gid, struct local_attempt *a, child_fn fn, void *ctx,
                   struct local_status *st)
{
        int p[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0) {
                local_status_set(st, LOCAL_DEFERRED, "4.3.0", "cannot create socket pair: %s",
                                 strerror(errno));
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
                struct child_msg cm = {.type = CHILD_DONE};
                close(p[0]);
                int gr = user ? initgroups(user, gid) : setgroups(1, &gid);
                if (setgid(gid) < 0 || gr < 0 || setuid(uid) < 0 || (uid != 0 && setuid(0) == 0))
                        local_status_set(&cm.st, LOCAL_DEFERRED, "4.3.0", "cannot switch to uid %u: %s",
                                         (unsigned)uid, strerror(errno));
                else {
                        umask(077);
                        local_limit_file_size(file_size_limit);
                        fn(ctx, p[1], &cm.st);
                }
                (void)!write_full(p[1], &cm, sizeof cm);
                _exit(0);
        }
        close(p[1]);
        struct local_status cst;
        int r = parent_serve(p[0], a, &cst);
        close(p[0]);
        int wst = 0;
        while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
                ;
        if (r < 0) {
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

/*
 * Under the lock, before appending: did the attempt the queue file records already append this copy here?
 * 1 yes; 0 no (a copy that a crash cut short at the end of the file is removed first). Only the mailbox
 * the record names, at the recorded offset, with every byte the same, counts.
 */
static int mbox_already_appended(int fd, const char *path, const struct stat *s,
                                 const struct local_message *m)
{
        const struct local_attempt *a = m->attempt;
        if (!a || !a->retry || a->rcpt->mbox_ino == 0 || a->rcpt->mbox_ino != (uint64_t)s->st_ino ||
            a->rcpt->mbox_dev != (uint64_t)s->st_dev || a->rcpt->mbox_size > (uint64_t)s->st_size)
                return 0;
        /* Read through a descriptor of its own: the one we append with may be write-only (a file the
         * recipient may write but not read gets no check, and at least once). */
        _cleanup_close_ int rfd = open(path, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
        struct stat rs;
        if (rfd < 0 || fstat(rfd, &rs) < 0 || rs.st_ino != s->st_ino || rs.st_dev != s->st_dev)
                return 0;
        const struct mailbox_copy c = copy_of(m, true);
        off_t at = (off_t)a->rcpt->mbox_size;
        int r = mailbox_copy_present(rfd, at, &c);
        if (r == MAILBOX_COPY_TORN && ftruncate(fd, at) < 0)
                return -errno;
        return r == MAILBOX_COPY_PRESENT;
}

static void mbox_child(void *userdata, int chan, struct local_status *st)
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
                        usleep(LOCAL_DOTLOCK_DELAY_USEC);
        }
        if (locked < 0) {
                local_status_set(st, LOCAL_DEFERRED, "4.2.0", "cannot lock %s %s: %s", c->what, c->path,
                                 strerror(errno));
                close(fd);
                return;
        }
        /* The size under the lock: another writer may have appended since the open. */
        int r = fstat(fd, &s) < 0 ? -errno : mbox_already_appended(fd, c->path, &s, c->m);
        if (r > 0) {
                local_status_set(st, LOCAL_SENT, "2.0.0", "delivered");
                close(fd);
                return;
        }
        if (r >= 0 && fstat(fd, &s) < 0) /* after a torn copy was cut off */
                r = -errno;
        off_t old = r >= 0 ? s.st_size : -1;
        if (r >= 0 && c->m->attempt && child_record_append(chan, &s) < 0) {
                local_status_set(st, LOCAL_DEFERRED, "4.3.0", "cannot record the delivery attempt");
                close(fd);
                return;
        }
        const struct mailbox_copy copy = copy_of(c->m, true);
        if (r >= 0)
                r = mailbox_write_copy(fd, &copy);
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
                _cleanup_free_ char *what =
                        xasprintf("cannot update %s %s: error writing message", c->what, c->path);
                write_failed(st, r, what);
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
                if (lstat(lock_path, &s) == 0 &&
                    time(NULL) - s.st_mtime > USEC_TO_SEC(LOCAL_DOTLOCK_STALE_USEC)) {
                        msg_warn("removing stale lock file %s", lock_path);
                        unlink(lock_path);
                        continue;
                }
                usleep(LOCAL_DOTLOCK_DELAY_USEC);
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
        run_as(pw->pw_name, pw->pw_uid, pw->pw_gid, m->attempt, mbox_child, &c, st);
        if (l->dotlock)
                unlink(lock);
}

/* ---- Maildir ---- */

struct maildir_ctx {
        const struct local_message *m;
        const char *dir;
        const char *hostname;
};

/*
 * The file's name: time.unique.host, unique per host; the host part must not contain '/' or ':'. With an
 * attempt recorded, the unique part is the queue ID, the recipient's position and the attempt's
 * microseconds, so that a retry of the attempt gives the same name; without one, this process's.
 */
static char *maildir_name(const struct maildir_ctx *c)
{
        _cleanup_free_ char *host = xstrdup(c->hostname);
        for (char *p = host; *p; p++)
                if (*p == '/' || *p == ':')
                        *p = '_';
        const struct local_attempt *a = c->m->attempt;
        if (a) {
                uint64_t t = a->rcpt->attempt_usec;
                return xasprintf("%llu.M%06lluQ%sR%zu.%s", (unsigned long long)(t / 1000000),
                                 (unsigned long long)(t % 1000000), c->m->queue_id, a->index, host);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return xasprintf("%lld.P%dM%06ldQ%s.%s", (long long)ts.tv_sec, (int)getpid(), ts.tv_nsec / 1000,
                         c->m->queue_id, host);
}

/* The earlier attempt's file is in new/, or in cur/ where a reader moved it, adding ":2,FLAGS". */
static bool maildir_has(const char *dir, const char *name)
{
        _cleanup_free_ char *in_new = xasprintf("%s/new/%s", dir, name);
        struct stat s;
        if (lstat(in_new, &s) == 0)
                return true;
        _cleanup_free_ char *cur = xasprintf("%s/cur", dir);
        DIR *d = opendir(cur);
        if (!d)
                return false;
        size_t n = strlen(name);
        bool found = false;
        for (struct dirent *e; !found && (e = readdir(d));)
                found = strncmp(e->d_name, name, n) == 0 && (e->d_name[n] == '\0' || e->d_name[n] == ':');
        closedir(d);
        return found;
}

static void maildir_child(void *userdata, int chan, struct local_status *st)
{
        struct maildir_ctx *c = userdata;
        (void)chan; /* the attempt's time, all a Maildir name needs, is recorded before the child runs */
        static const char *const subdirs[] = {"", "/tmp", "/new", "/cur"};
        for (size_t i = 0; i < ELEMENTSOF(subdirs); i++) {
                _cleanup_free_ char *d = xasprintf("%s%s", c->dir, subdirs[i]);
                if (mkdir(d, 0700) < 0 && errno != EEXIST) {
                        local_status_set(st, LOCAL_DEFERRED, "4.2.0", "cannot create maildir %s: %s", d,
                                         strerror(errno));
                        return;
                }
        }
        _cleanup_free_ char *name = maildir_name(c);
        _cleanup_free_ char *tmp = xasprintf("%s/tmp/%s", c->dir, name);
        _cleanup_free_ char *dst = xasprintf("%s/new/%s", c->dir, name);
        if (c->m->attempt && c->m->attempt->retry) {
                if (maildir_has(c->dir, name)) {
                        local_status_set(st, LOCAL_SENT, "2.0.0", "delivered");
                        return;
                }
                (void)unlink(tmp); /* the earlier attempt's, never renamed: not delivered */
        }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
                local_status_set(st, LOCAL_DEFERRED, "4.2.0", "cannot create maildir file %s: %s", tmp,
                                 strerror(errno));
                return;
        }
        const struct mailbox_copy copy = copy_of(c->m, false);
        int r = maildir_deliver_file(fd, tmp, dst, &copy);
        if (r < 0) {
                _cleanup_free_ char *what = xasprintf("cannot deliver to maildir %s", c->dir);
                write_failed(st, r, what);
                return;
        }
        local_status_set(st, LOCAL_SENT, "2.0.0", "delivered");
}

static void run_maildir(const char *user, uid_t uid, gid_t gid, const struct local_message *m,
                        struct maildir_ctx *c, struct local_status *st)
{
        if (attempt_sync(m->attempt) < 0) {
                local_status_set(st, LOCAL_DEFERRED, "4.3.0", "cannot record the delivery attempt");
                return;
        }
        run_as(user, uid, gid, m->attempt, maildir_child, c, st);
}

void mailbox_deliver_user(struct local *l, const struct local_message *m, const struct passwd *pw,
                          struct local_status *st, const char **how)
{
        size_t hl = strlen(l->home_mailbox);
        if (hl > 0 && l->home_mailbox[hl - 1] == '/') {
                _cleanup_free_ char *dir = xasprintf("%s/%.*s", pw->pw_dir, (int)(hl - 1), l->home_mailbox);
                struct maildir_ctx c = {.m = m, .dir = dir, .hostname = l->hostname};
                *how = "delivered to maildir";
                run_maildir(pw->pw_name, pw->pw_uid, pw->pw_gid, m, &c, st);
                return;
        }
        *how = "delivered to mailbox";
        if (hl > 0) {
                _cleanup_free_ char *path = xasprintf("%s/%s", pw->pw_dir, l->home_mailbox);
                struct mbox_ctx c = {
                        .m = m, .path = path, .what = "mailbox", .create = true, .check_owner = true};
                run_as(pw->pw_name, pw->pw_uid, pw->pw_gid, m->attempt, mbox_child, &c, st);
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
                run_maildir(NULL, uid, gid, m, &mc, st);
                return;
        }
        struct mbox_ctx c = {.m = m, .path = path, .what = "file", .create = true, .check_owner = false};
        run_as(NULL, uid, gid, m->attempt, mbox_child, &c, st);
}
