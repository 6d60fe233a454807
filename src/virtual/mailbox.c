/* mailbox.c: the virtual agent's Maildir and mbox writers; each outcome is on disk before it says "sent". */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "fileio.h"
#include "log.h"
#include "mailbox_format.h"
#include "virtual_agent.h"

/* [From_ line] Return-Path:, Delivered-To:, the message (LF line ends); mbox quotes body "From " lines. */
static int write_message(int fd, const struct virtual_message *m, bool mbox)
{
        const struct mailbox_copy c = {.sender = m->sender,
                                       .rcpt = m->rcpt,
                                       .content = m->content,
                                       .len = m->content_len,
                                       .when = time(NULL),
                                       .mbox = mbox};
        return mailbox_write_copy(fd, &c);
}

/*
 * mkdir -p of path (mode 0700, as the recipient). Each directory made is fsync'd into its parent: a
 * mailbox whose directory entry could vanish in a crash is not delivered.
 */
static int make_dirs(const char *path)
{
        _cleanup_free_ char *p = xstrdup(path);
        for (char *s = p + 1;; s++) {
                if (*s != '/' && *s != '\0')
                        continue;
                char c = *s;
                *s = '\0';
                if (mkdir(p, 0700) == 0) {
                        int r = fsync_parent_dir(p);
                        if (r < 0)
                                return r;
                } else if (errno != EEXIST)
                        return -errno;
                *s = c;
                if (c == '\0')
                        return 0;
        }
}

void virtual_maildir(const char *dir, const char *hostname, const struct virtual_message *m,
                     struct agent_verdict *ret)
{
        static const char *const subdirs[] = {"tmp", "new", "cur"};
        for (size_t i = 0; i < ELEMENTSOF(subdirs); i++) {
                _cleanup_free_ char *d = xasprintf("%s/%s", dir, subdirs[i]);
                int r = make_dirs(d);
                if (r < 0) {
                        agent_verdict_set(ret, AGENT_DEFERRED, "4.2.0", "cannot create maildir %s: %s", d,
                                          strerror(-r));
                        return;
                }
        }
        /* Unique per host: time, process, microseconds and queue ID; '/' and ':' never in the host part. */
        _cleanup_free_ char *host = xstrdup(hostname);
        for (char *p = host; *p; p++)
                if (*p == '/' || *p == ':')
                        *p = '_';
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        _cleanup_free_ char *name = xasprintf("%lld.V%dM%06ldQ%s.%s", (long long)ts.tv_sec, (int)getpid(),
                                              ts.tv_nsec / 1000, m->queue_id, host);
        _cleanup_free_ char *tmp = xasprintf("%s/tmp/%s", dir, name);
        _cleanup_free_ char *dst = xasprintf("%s/new/%s", dir, name);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
                agent_verdict_set(ret, AGENT_DEFERRED, "4.2.0", "cannot create maildir file %s: %s", tmp,
                                  strerror(errno));
                return;
        }
        const struct mailbox_copy c = {
                .sender = m->sender, .rcpt = m->rcpt, .content = m->content, .len = m->content_len};
        int r = maildir_deliver_file(fd, tmp, dst, &c);
        if (r == -EFBIG) {
                agent_verdict_set(ret, AGENT_BOUNCED, "5.2.2",
                                  "cannot deliver to maildir %s: %s (virtual_mailbox_limit)", dir,
                                  strerror(-r));
                return;
        }
        if (r < 0) {
                agent_verdict_set(ret, AGENT_DEFERRED, "4.2.0", "cannot deliver to maildir %s: %s", dir,
                                  strerror(-r));
                return;
        }
        agent_verdict_set(ret, AGENT_SENT, "2.0.0", "delivered to maildir");
}

static int lock_file(int fd)
{
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        for (int i = 0; i < VIRTUAL_LOCK_ATTEMPTS; i++) {
                if (fcntl(fd, F_SETLK, &fl) == 0)
                        return 0;
                if (errno != EAGAIN && errno != EACCES)
                        return -errno;
                usleep(VIRTUAL_LOCK_DELAY_USEC);
        }
        return -EAGAIN;
}

void virtual_mbox(const char *path, const struct virtual_message *m, struct agent_verdict *ret)
{
        _cleanup_free_ char *parent = xstrdup(path);
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) {
                *slash = '\0';
                int r = make_dirs(parent);
                if (r < 0) {
                        agent_verdict_set(ret, AGENT_DEFERRED, "4.2.0", "cannot create directory %s: %s",
                                          parent, strerror(-r));
                        return;
                }
        }
        bool created = true;
        int fd =
                open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST) {
                created = false;
                fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
        }
        if (fd < 0) {
                agent_verdict_set(ret, AGENT_DEFERRED, "4.2.0", "cannot open mailbox %s: %s", path,
                                  strerror(errno));
                return;
        }
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_uid != geteuid()) {
                agent_verdict_set(
                        ret, AGENT_DEFERRED, "4.2.0",
                        "cannot update mailbox %s: not a regular file with one link owned by uid %u", path,
                        (unsigned)geteuid());
                close(fd);
                return;
        }
        int r = lock_file(fd);
        if (r < 0) {
                agent_verdict_set(ret, AGENT_DEFERRED, "4.2.0", "cannot lock mailbox %s: %s", path,
                                  r == -EAGAIN ? "held by another process" : strerror(-r));
                close(fd);
                return;
        }
        off_t old = lseek(fd, 0, SEEK_END);
        r = old < 0 ? -errno : write_message(fd, m, true);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && created)
                r = fsync_parent_dir(path);
        if (r < 0) {
                /* Cut back to where it was: half a message would spoil the next one. */
                if (old >= 0 && ftruncate(fd, old) == 0)
                        (void)fsync(fd);
                if (r == -EFBIG)
                        agent_verdict_set(ret, AGENT_BOUNCED, "5.2.2",
                                          "cannot update mailbox %s: %s (virtual_mailbox_limit)", path,
                                          strerror(-r));
                else
                        agent_verdict_set(ret, AGENT_DEFERRED, "4.2.0", "cannot update mailbox %s: %s", path,
                                          strerror(-r));
        } else
                agent_verdict_set(ret, AGENT_SENT, "2.0.0", "delivered to mailbox");
        close(fd);
}
