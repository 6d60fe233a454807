/* spawn.c: the master's processes: on-demand spawning, busy/idle reports, reaping, throttling, wakeups. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "alloc.h"
#include "log.h"
#include "master.h"
#include "netaddr.h"
#include "sandbox.h"
#include "service.h"

static struct master_proc *find_proc(struct master *m, pid_t pid, struct master_proc ***ret_link)
{
        for (struct master_proc **p = &m->procs; *p; p = &(*p)->next) {
                if ((*p)->pid == pid) {
                        if (ret_link)
                                *ret_link = p;
                        return *p;
                }
        }
        return NULL;
}

static int on_listener(struct event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct master_listener *l = userdata;
        struct master_service *s = l->svc;
        /* Readable and nobody available to take it: one more process (the watch is off otherwise). */
        if (master_spawn(s) < 0)
                master_update_listeners(s);
        return 0;
}

static bool needs_process(const struct master_service *s)
{
        return !s->m->stopping && !s->throttled && s->avail == 0 &&
               (s->maxproc == 0 || (int)s->total < s->maxproc) && s->m->n_procs < MASTER_PROCS_MAX;
}

void master_update_listeners(struct master_service *s)
{
        bool on = needs_process(s);
        for (size_t i = 0; i < s->n_listeners; i++) {
                struct master_listener *l = &s->listeners[i];
                if (l->fd < 0)
                        continue;
                if (!l->src) {
                        l->svc = s;
                        int r = event_add_io(s->m->event, &l->src, l->fd, EPOLLIN, on_listener, l);
                        if (r < 0)
                                msg_fatal("watch service %s: %s", s->label, strerror(-r));
                }
                event_source_set_enabled(l->src, on ? EVENT_ON : EVENT_OFF);
        }
}

static int on_throttle_end(struct event_source *src, uint64_t usec, void *userdata)
{
        struct master_service *s = userdata;
        s->throttled = false;
        master_update_listeners(s);
        return 0;
}

static void throttle(struct master_service *s)
{
        long long delay = config_get_time(s->m->config, "service_throttle_time");
        if (delay <= 0)
                delay = 1;
        msg_warn("%s: bad command startup -- throttling", s->path);
        s->throttled = true;
        uint64_t now = event_loop_now(s->m->event);
        uint64_t when = now + (uint64_t)delay * 1000000ULL;
        if (!s->throttle_timer)
                event_add_time(s->m->event, &s->throttle_timer, when, on_throttle_end, s);
        else {
                event_source_set_time(s->throttle_timer, when);
                event_source_set_enabled(s->throttle_timer, EVENT_ONESHOT);
        }
        master_update_listeners(s);
}

/* In the child between fork and exec: listeners to fds 3.., the status pipe after them, a clean signal
 * state. */
_noreturn_ static void exec_child(struct master_service *s, int status_fd)
{
        int n = (int)s->n_listeners;
        int tmp[SERVICE_LISTEN_FDS_MAX + 1];
        /* First move everything out of the target range, so no dup2 overwrites a descriptor still needed. */
        int base = SERVICE_LISTEN_FDS_START + SERVICE_LISTEN_FDS_MAX + 8;
        for (int i = 0; i < n; i++)
                tmp[i] = fcntl(s->listeners[i].fd, F_DUPFD, base);
        tmp[n] = fcntl(status_fd, F_DUPFD, base);
        int last = n;
        if (s->m->metrics_fd >= 0)
                tmp[++last] = fcntl(s->m->metrics_fd, F_DUPFD, base);
        for (int i = 0; i <= last; i++) {
                if (tmp[i] < 0 || dup2(tmp[i], SERVICE_LISTEN_FDS_START + i) < 0)
                        _exit(127);
                close(tmp[i]);
        }
        char num[16];
        snprintf(num, sizeof num, "%d", n);
        setenv("POSTD_LISTEN_FDS", num, 1);
        snprintf(num, sizeof num, "%d", SERVICE_LISTEN_FDS_START + n);
        setenv("POSTD_STATUS_FD", num, 1);
        snprintf(num, sizeof num, "%d", SERVICE_LISTEN_FDS_START + n + 1);
        if (last > n)
                setenv("POSTD_METRICS_FD", num, 1);
        else
                unsetenv("POSTD_METRICS_FD");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDNAMES");
        unsetenv("NOTIFY_SOCKET");
        unsetenv("WATCHDOG_USEC");
        unsetenv("WATCHDOG_PID");

        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int sig = 1; sig < NSIG; sig++)
                signal(sig, SIG_DFL);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        execv(s->path, s->argv.v);
        /* Nothing to log through here safely beyond stderr; the master sees exit status 127. */
        fprintf(stderr, "%s: fatal: execute %s: %s\n", log_tag(), s->path, strerror(errno));
        _exit(127);
}

int master_spawn(struct master_service *s)
{
        if (!needs_process(s))
                return 0;
        pid_t pid = fork();
        if (pid < 0) {
                msg_warn("fork: %s", strerror(errno));
                throttle(s);
                return -errno;
        }
        if (pid == 0)
                exec_child(s, s->m->status_pipe[1]);

        struct master_proc *p = xcalloc(1, sizeof *p);
        p->pid = pid;
        p->svc = s;
        p->avail = true; /* until it reports BUSY */
        p->next = s->m->procs;
        s->m->procs = p;
        s->m->n_procs++;
        s->total++;
        s->avail++;
        master_update_listeners(s);
        return 0;
}

static void read_status(struct master *m)
{
        struct service_status st;
        for (int i = 0; i < 256; i++) {
                ssize_t n = read(m->status_pipe[0], &st, sizeof st);
                if (n != (ssize_t)sizeof st)
                        break; /* EAGAIN, or a torn record that cannot happen with atomic pipe writes */
                struct master_proc *p = find_proc(m, st.pid, NULL);
                if (!p || !p->svc)
                        continue;
                if (st.status == SERVICE_STATUS_SECCOMP) {
                        p->refused_call = st.value + 1;
                        continue;
                }
                bool avail = st.status == SERVICE_STATUS_AVAILABLE;
                if (avail == p->avail)
                        continue;
                p->avail = avail;
                if (avail)
                        p->svc->avail++;
                else {
                        p->svc->avail--;
                        p->use_count++;
                }
                master_update_listeners(p->svc);
        }
}

static int on_status(struct event_source *src, int fd, uint32_t revents, void *userdata)
{
        read_status(userdata);
        return 0;
}

/* A role killed by its allow-list: which call, when its SIGSYS handler could say. */
static void log_seccomp_kill(const struct master_service *s, const struct master_proc *p)
{
        _cleanup_free_ char *name = p->refused_call ? sandbox_syscall_name(p->refused_call - 1) : NULL;
        if (p->refused_call)
                msg_warn(
                        "process %s pid %d killed by its seccomp filter (signal %d): system call %s (%d) is "
                        "not allowed for this role; see docs/PRIVILEGES.md",
                        s->path, (int)p->pid, SIGSYS, name ? name : "?", p->refused_call - 1);
        else
                msg_warn("process %s pid %d killed by its seccomp filter (signal %d): a system call it is "
                         "not "
                         "allowed; see docs/PRIVILEGES.md",
                         s->path, (int)p->pid, SIGSYS);
}

void master_spawn_init(struct master *m)
{
        if (pipe2(m->status_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
                msg_fatal("pipe: %s", strerror(errno));
        /* Children write to a blocking pipe: a record is 8 bytes, the pipe never fills in practice. */
        fcntl(m->status_pipe[1], F_SETFL, 0);
        int r = event_add_io(m->event, NULL, m->status_pipe[0], EPOLLIN, on_status, m);
        if (r < 0)
                msg_fatal("watch status pipe: %s", strerror(-r));
}

void master_reap(struct master *m)
{
        /* What the dying processes reported last (a refused call) before their deaths are handled. */
        read_status(m);
        for (unsigned i = 0; i < MASTER_PROCS_MAX; i++) {
                int status = 0;
                pid_t pid = waitpid(-1, &status, WNOHANG);
                if (pid <= 0)
                        break;
                struct master_proc **link = NULL;
                struct master_proc *p = find_proc(m, pid, &link);
                if (!p)
                        continue;
                *link = p->next;
                m->n_procs--;
                struct master_service *s = p->svc;
                if (s) {
                        s->total--;
                        if (p->avail)
                                s->avail--;
                        bool bad = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
                        if (bad && !m->stopping) {
                                if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
                                        log_seccomp_kill(s, p);
                                else if (WIFSIGNALED(status))
                                        msg_warn("process %s pid %d killed by signal %d", s->path, (int)pid,
                                                 WTERMSIG(status));
                                else
                                        msg_warn("process %s pid %d exit status %d", s->path, (int)pid,
                                                 WEXITSTATUS(status));
                                /* Died before it ever served: respawning at once would only spin. */
                                if (p->use_count == 0 && !s->throttled)
                                        throttle(s);
                        }
                        master_update_listeners(s);
                }
                free(p);
        }
        if (m->stopping && m->n_procs == 0)
                event_loop_exit(m->event, 0);
}

void master_signal_children(struct master *m, int sig, bool detach)
{
        for (struct master_proc *p = m->procs; p; p = p->next) {
                kill(p->pid, sig);
                if (detach && p->svc) {
                        p->svc->total--;
                        if (p->avail)
                                p->svc->avail--;
                        p->svc = NULL;
                }
        }
}

static void wake(struct master_service *s)
{
        if (s->wakeup_conditional && s->total == 0)
                return;
        if (s->type == MASTERCF_FIFO) {
                if (s->n_listeners > 0 && s->listeners[0].fd >= 0 && write(s->listeners[0].fd, "W", 1) < 0 &&
                    errno != EAGAIN)
                        msg_warn("wake up %s: %s", s->label, strerror(errno));
                return;
        }
        if (s->type != MASTERCF_UNIX || !s->socket_path)
                return;
        struct sockaddr_un sa;
        socklen_t sa_len;
        if (unix_address(s->socket_path, &sa, &sa_len) < 0)
                return;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return;
        if (connect(fd, (struct sockaddr *)&sa, sa_len) < 0 ||
            send(fd, "W", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
                msg_warn("wake up %s: %s", s->label, strerror(errno));
}

static int on_wakeup_timer(struct event_source *src, uint64_t usec, void *userdata)
{
        struct master_service *s = userdata;
        wake(s);
        event_source_set_time(src, usec + (uint64_t)s->wakeup * 1000000ULL);
        event_source_set_enabled(src, EVENT_ONESHOT);
        return 0;
}

void master_start_wakeups(struct master_service *s)
{
        if (s->wakeup <= 0 || s->type == MASTERCF_INET)
                return;
        /* The first wakeup is at once: qmgr and pickup must run from the start, not after their
         * wakeup period, or mail queued in the meantime waits that long. */
        uint64_t now = event_loop_now(s->m->event);
        int r = event_add_time(s->m->event, &s->wakeup_timer, now, on_wakeup_timer, s);
        if (r < 0)
                msg_warn("wakeup timer for %s: %s", s->label, strerror(-r));
}
