/* recover.c: queue recovery before READY=1, in a child with the mail_owner's ids, while the master keeps
 * extending systemd's start timeout (EXTEND_TIMEOUT_USEC=) for as long as it runs. */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "master.h"
#include "queue.h"
#include "sd_notify.h"

/*
 * Recovery reads untrusted bytes (every queue file) and only needs the queue directories, which belong
 * to mail_owner: a root master does it with mail_owner's ids, so a decoder bug cannot act as root.
 */
static int drop_to_mail_owner(struct master *m)
{
        if (geteuid() != 0)
                return 0;
        const char *owner = config_get(m->config, "mail_owner");
        struct passwd *pw = owner ? getpwnam(owner) : NULL;
        if (!pw) {
                msg_error("queue recovery: unknown mail_owner account %s", owner ? owner : "(unset)");
                return -ENOENT;
        }
        if (pw->pw_uid == 0) {
                msg_error("queue recovery: mail_owner %s must not be a privileged account", owner);
                return -EPERM;
        }
        if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
                msg_error("queue recovery: cannot switch to mail_owner %s: %m", owner);
                return -errno;
        }
        if (setuid(0) == 0) {
                msg_error("queue recovery: could regain root after switching to %s", owner);
                return -EPERM;
        }
        return 0;
}

static _Noreturn void recover_child(struct master *m)
{
        /* Recovery is idempotent and crash-safe: if the master dies, stop rather than race a new one. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* Opened first: every step after works on these descriptors (*at() calls), so the path to the
         * queue directory need not be searchable by mail_owner, only the queues themselves writable. */
        struct queue *q = NULL;
        int r = queue_open(m->paths.queue_dir, &q);
        if (r < 0) {
                msg_error("open queue directory %s: %s (postfix start creates it)", m->paths.queue_dir,
                          strerror(-r));
                _exit(1);
        }
        if (drop_to_mail_owner(m) < 0)
                _exit(1);
        uint64_t t0 = clock_usec(CLOCK_MONOTONIC);
        struct queue_recover_stats st = {0};
        r = queue_recover(q, QUEUE_INCOMING, &st);
        queue_close(q);
        if (r < 0) {
                msg_error("queue recovery in %s: %s%s", m->paths.queue_dir, strerror(-r),
                          r == -EACCES || r == -EPERM
                                  ? " (recovery runs as mail_owner: postfix set-permissions gives the queue "
                                    "directories to it)"
                                  : "");
                _exit(1);
        }
        msg_info("queue recovery: %u complete, %u back from active, %u half-written removed, %u corrupt, "
                 "%u left alone, in %.1f s",
                 st.complete, st.requeued, st.removed, st.corrupt, st.skipped,
                 (clock_usec(CLOCK_MONOTONIC) - t0) / 1e6);
        _exit(0);
}

static void extend_start_timeout(void)
{
        notify_sendf("EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)MASTER_RECOVERY_EXTEND_USEC);
}

/* Wait for the child, extending the start timeout every MASTER_RECOVERY_NOTIFY_USEC. */
static int wait_recovery(pid_t pid)
{
        _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        uint64_t next = clock_usec(CLOCK_MONOTONIC) + MASTER_RECOVERY_NOTIFY_USEC;
        for (;;) {
                int status;
                pid_t w = waitpid(pid, &status, WNOHANG);
                if (w < 0 && errno != EINTR)
                        return -errno;
                if (w == pid)
                        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
                uint64_t now = clock_usec(CLOCK_MONOTONIC);
                if (now >= next) {
                        extend_start_timeout();
                        next = now + MASTER_RECOVERY_NOTIFY_USEC;
                }
                int ms = (int)((next - now + 999) / 1000);
                if (pidfd >= 0) {
                        struct pollfd p = {.fd = pidfd, .events = POLLIN};
                        (void)poll(&p, 1, ms); /* readable when the child exits */
                } else {
                        /* No pidfd (old kernel): look again soon. */
                        struct timespec ts = {0, 50 * 1000 * 1000};
                        nanosleep(&ts, NULL);
                }
        }
}

void master_recover_queue(struct master *m)
{
        /* Before the child exists, so that systemd hears of the work even when it is quick. */
        extend_start_timeout();
        pid_t pid = fork();
        if (pid < 0)
                msg_fatal("fork for queue recovery: %m");
        if (pid == 0)
                recover_child(m);
        int r = wait_recovery(pid);
        if (r < 0)
                msg_fatal("queue recovery in %s failed (see above)", m->paths.queue_dir);
}
