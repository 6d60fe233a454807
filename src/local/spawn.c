/* spawn.c: local's command spawner: a process forked before local's seccomp allow-list, which has no
 * execve, that starts |command and mailbox_command deliveries for it and reports how they ended. */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "local.h"
#include "log.h"

/*
 * The conversation, one datagram each (SOCK_SEQPACKET): local sends SPAWN_RUN with the command's stdin
 * and output descriptors attached, the spawner answers SPAWN_STARTED (pid, or -errno) and later
 * SPAWN_EXITED (the wait status). SPAWN_KILL kills the command's process group (its time limit).
 */
enum spawn_type { SPAWN_RUN = 1, SPAWN_STARTED, SPAWN_EXITED, SPAWN_KILL };

struct spawn_head {
        uint32_t type;
        uint64_t file_size_limit; /* SPAWN_RUN: RLIMIT_FSIZE of the command; 0: none */
        int32_t value;            /* SPAWN_STARTED: pid or -errno; SPAWN_EXITED: wait status */
        uint32_t uid, gid;
        uint32_t n_strings; /* after the head, NUL-terminated: shell, command, user, home, env... */
};

#define SPAWN_STRINGS_FIXED 4

/* ---- the spawner's side ---- */

static int recv_request(int sock, struct buf *b, int fds[2])
{
        buf_reserve(b, SPAWN_MSG_MAX);
        union {
                struct cmsghdr h;
                char space[CMSG_SPACE(2 * sizeof(int))];
        } ctl;
        struct iovec iov = {b->data, SPAWN_MSG_MAX};
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof ctl};
        ssize_t k = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        if (k <= 0)
                return k < 0 ? -errno : -ECONNRESET;
        b->len = (size_t)k;
        fds[0] = fds[1] = -1;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len == CMSG_LEN(2 * sizeof(int)))
                memcpy(fds, CMSG_DATA(c), 2 * sizeof(int));
        return 0;
}

/* The strings of a SPAWN_RUN: NULL unless all n are there, each NUL-terminated inside the datagram. */
static char **request_strings(const struct buf *b, uint32_t n)
{
        if (n < SPAWN_STRINGS_FIXED || n > SPAWN_STRINGS_MAX)
                return NULL;
        char **v = xcalloc(n + 1, sizeof *v);
        size_t off = sizeof(struct spawn_head);
        for (uint32_t i = 0; i < n; i++) {
                const char *end = off < b->len ? memchr(b->data + off, 0, b->len - off) : NULL;
                if (!end) {
                        free(v);
                        return NULL;
                }
                v[i] = b->data + off;
                off = (size_t)(end - b->data) + 1;
        }
        return v;
}

_noreturn_ static void command_child(char **s, uid_t uid, gid_t gid, uint64_t fsize, int in, int out)
{
        const char *shell = s[0], *command = s[1], *user = s[2], *home = s[3];
        /* Its own process group: the time limit kills whatever it started too. */
        setsid();
        if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
                _exit(71);
        syscall(SYS_close_range, 3u, ~0u, 0u);
        int gr = *user ? initgroups(user, gid) : setgroups(1, &gid);
        if (gr < 0 || setgid(gid) < 0 || setuid(uid) < 0 || setuid(0) == 0) {
                fprintf(stderr, "cannot switch to uid %u: %s\n", (unsigned)uid, strerror(errno));
                _exit(71);
        }
        if (!*home || chdir(home) < 0)
                (void)!chdir("/");
        umask(077);
        signal(SIGPIPE, SIG_DFL);
        local_limit_file_size(fsize);
        char *argv[] = {(char *)shell, (char *)"-c", (char *)command, NULL};
        execve(shell, argv, s + SPAWN_STRINGS_FIXED);
        fprintf(stderr, "cannot execute %s: %s\n", shell, strerror(errno));
        _exit(71); /* EX_OSERR: deferred, the next attempt may find it */
}

static void send_head(int sock, enum spawn_type type, int32_t value)
{
        struct spawn_head h = {.type = type, .value = value};
        (void)!send(sock, &h, sizeof h, MSG_NOSIGNAL);
}

/* Start one command; its pid, or -errno. Commands never run as root (Postfix's rule too). */
static pid_t start(const struct buf *b, int fds[2])
{
        struct spawn_head h;
        memcpy(&h, b->data, sizeof h);
        if (h.uid == 0 || h.gid == 0)
                return -EPERM;
        _cleanup_free_ char **s = request_strings(b, h.n_strings);
        if (!s || fds[0] < 0 || fds[1] < 0)
                return -EBADMSG;
        pid_t pid = fork();
        if (pid == 0)
                command_child(s, h.uid, h.gid, h.file_size_limit, fds[0], fds[1]);
        return pid < 0 ? -errno : pid;
}

static void close_pair(int fds[2])
{
        for (int i = 0; i < 2; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
}

_noreturn_ static void spawner_main(int sock)
{
        pid_t running = 0, last = 0;
        int pidfd = -1;
        struct buf b = BUF_INIT;
        for (;;) {
                struct pollfd p[2] = {{.fd = sock, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
                /* Without a pidfd (an old kernel) the command's end is looked for every 10 ms. */
                int wait_ms = running && pidfd < 0 ? 10 : -1;
                if (poll(p, pidfd >= 0 ? 2 : 1, wait_ms) < 0 && errno != EINTR)
                        _exit(1);
                int wst;
                if (running && waitpid(running, &wst, WNOHANG) == running) {
                        send_head(sock, SPAWN_EXITED, wst);
                        running = 0;
                        close(pidfd);
                        pidfd = -1;
                }
                if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
                        continue;
                int fds[2] = {-1, -1};
                if (recv_request(sock, &b, fds) < 0) {
                        /* local is gone: so is what it started. */
                        if (last > 0)
                                kill(-last, SIGKILL);
                        _exit(0);
                }
                struct spawn_head h = {0};
                if (b.len >= sizeof h)
                        memcpy(&h, b.data, sizeof h);
                if (h.type == SPAWN_KILL && last > 0) {
                        kill(-last, SIGKILL);
                        if (running)
                                kill(running, SIGKILL);
                } else if (h.type == SPAWN_RUN) {
                        pid_t pid = running ? -EBUSY : start(&b, fds);
                        if (pid > 0) {
                                running = last = pid;
                                pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
                        }
                        send_head(sock, SPAWN_STARTED, pid);
                }
                close_pair(fds);
        }
}

int spawn_start(struct local *l)
{
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid < 0) {
                int e = errno;
                close(sv[0]);
                close(sv[1]);
                return -e;
        }
        if (pid == 0) {
                close(sv[0]);
                /* Gone with local, whatever killed it. */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                /* What ps and /proc/PID/comm show: not to be taken for local itself. */
                prctl(PR_SET_NAME, "local-spawner");
                int keep = sv[1];
                if (keep != 3 && dup2(keep, 3) < 0)
                        _exit(1);
                syscall(SYS_close_range, 4u, ~0u, 0u);
                spawner_main(3);
        }
        close(sv[1]);
        l->spawner_fd = sv[0];
        l->spawner_pid = pid;
        return 0;
}

/* ---- local's side ---- */

int spawn_command(struct local *l, const char *shell, const char *command, const struct local_privs *p,
                  char *const *env, int in, int out, pid_t *ret_pid)
{
        struct buf b = BUF_INIT;
        struct spawn_head h = {.type = SPAWN_RUN,
                               .file_size_limit = l->mailbox_size_limit,
                               .uid = p->uid,
                               .gid = p->gid,
                               .n_strings = SPAWN_STRINGS_FIXED};
        buf_append(&b, &h, sizeof h);
        const char *fixed[SPAWN_STRINGS_FIXED] = {shell, command, p->user ? p->user : "",
                                                  p->home ? p->home : ""};
        for (size_t i = 0; i < SPAWN_STRINGS_FIXED; i++)
                buf_append(&b, fixed[i], strlen(fixed[i]) + 1);
        for (size_t i = 0; env[i] && h.n_strings < SPAWN_STRINGS_MAX; i++, h.n_strings++)
                buf_append(&b, env[i], strlen(env[i]) + 1);
        memcpy(b.data, &h, sizeof h);
        if (b.len > SPAWN_MSG_MAX) {
                buf_done(&b);
                return -E2BIG;
        }
        union {
                struct cmsghdr h;
                char space[CMSG_SPACE(2 * sizeof(int))];
        } ctl = {0};
        struct iovec iov = {b.data, b.len};
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof ctl};
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(2 * sizeof(int));
        memcpy(CMSG_DATA(c), (int[2]){in, out}, 2 * sizeof(int));
        ssize_t k = sendmsg(l->spawner_fd, &mh, MSG_NOSIGNAL);
        buf_done(&b);
        if (k < 0)
                return -errno;
        struct spawn_head a;
        /* The spawner answers at once: a fork, nothing that waits on the command. */
        k = recv(l->spawner_fd, &a, sizeof a, 0);
        if (k != (ssize_t)sizeof a || a.type != SPAWN_STARTED)
                return k < 0 ? -errno : -EPROTO;
        if (a.value < 0)
                return a.value;
        *ret_pid = a.value;
        return 0;
}

int spawn_fd(const struct local *l)
{
        return l->spawner_fd;
}

int spawn_read_exit(struct local *l, int *ret_status)
{
        struct spawn_head a;
        ssize_t k = recv(l->spawner_fd, &a, sizeof a, MSG_DONTWAIT);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return 0;
        if (k != (ssize_t)sizeof a || a.type != SPAWN_EXITED)
                return k < 0 ? -errno : -EPROTO;
        *ret_status = a.value;
        return 1;
}

int spawn_wait_exit(struct local *l)
{
        struct pollfd p = {.fd = l->spawner_fd, .events = POLLIN};
        int status = SIGKILL; /* what an answer that never comes stands for */
        for (int i = 0; i < USEC_TO_MS(SPAWN_EXIT_WAIT_USEC) / 100; i++) {
                if (poll(&p, 1, 100) < 0 && errno != EINTR)
                        break;
                int r = spawn_read_exit(l, &status);
                if (r != 0)
                        return r > 0 ? status : SIGKILL;
        }
        msg_warn("command spawner did not report the end of a killed command");
        return status;
}

void spawn_kill(struct local *l)
{
        struct spawn_head h = {.type = SPAWN_KILL};
        (void)!send(l->spawner_fd, &h, sizeof h, MSG_NOSIGNAL);
}
