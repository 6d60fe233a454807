/* service.c: the daemon skeleton: arguments, config with -o, listeners on the event loop, busy/idle reports. */
#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "alloc.h"
#include "dict.h"
#include "log.h"
#include "postd-build.h"
#include "metrics.h"
#include "sandbox.h"

#define SERVICE_MALLOC_MMAP_THRESHOLD (1024 * 1024)
#define SERVICE_MALLOC_TRIM_THRESHOLD (4 * 1024 * 1024)

struct listener {
        struct service *s;
        int fd;
        bool fifo;
        struct event_source *src;
};

struct service {
        const struct service_ops *ops;
        struct config *config;
        struct event_loop *event;
        char *name, *type, *daemon;
        char *sandbox_role; /* the allow-list's name when the role's init chose another (NULL: daemon) */
        char **args;
        int n_args;
        struct listener listeners[SERVICE_LISTEN_FDS_MAX];
        unsigned n_listeners;
        int status_fd;
        bool accepting; /* listeners enabled, reported AVAILABLE */
        bool stopping, exit_requested;
        unsigned conns, max_conns;
        long long uses, max_use;
        long long max_idle;
        struct event_source *idle_timer, *stop_timer;
};

struct event_loop *service_event(struct service *s)
{
        return s->event;
}

void service_set_sandbox_role(struct service *s, const char *role)
{
        free(s->sandbox_role);
        s->sandbox_role = xstrdup(role);
}

struct config *service_config(struct service *s)
{
        return s->config;
}

const char *service_name(const struct service *s)
{
        return s->name;
}

const char *service_type(const struct service *s)
{
        return s->type;
}

const char *service_daemon(const struct service *s)
{
        return s->daemon;
}

char **service_args(const struct service *s, int *ret_n)
{
        if (ret_n)
                *ret_n = s->n_args;
        return s->args;
}

void *service_userdata(const struct service *s)
{
        return s->ops->userdata;
}

bool service_stopping(const struct service *s)
{
        return s->stopping;
}

unsigned service_connections(const struct service *s)
{
        return s->conns;
}

#if POSTD_TEST_HOOKS
/*
 * Fault injection, compiled into test builds only (meson -Dtest_hooks=true):
 * POSTD_TEST_FAULT=DAEMON:CALL:MARKER makes the first process of DAEMON that finds no MARKER file
 * create it and then, at its first connection or wakeup (after the allow-list is in place), make the
 * forbidden CALL: "execve", "socket-inet" (a TCP socket), "open-write" or "fork". Its successors find
 * the marker and serve normally, so a test sees one kill and mail flowing on.
 */
static const char *fault_call;

static void fault_arm(const char *daemon)
{
        const char *spec = getenv("POSTD_TEST_FAULT");
        size_t n = strlen(daemon);
        if (!spec || strncmp(spec, daemon, n) != 0 || spec[n] != ':')
                return;
        const char *call = spec + n + 1, *marker = strchr(call, ':');
        if (!marker)
                return;
        int fd = open(marker + 1, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return; /* an earlier process took the fault */
        close(fd);
        fault_call = xstrndup(call, (size_t)(marker - call));
        msg_info("test hook: will make the forbidden call %s at the first connection", fault_call);
}

static void fault_fire(void)
{
        if (!fault_call)
                return;
        int r = 0;
        if (streq(fault_call, "execve")) {
                char *argv[] = {(char *)"/bin/true", NULL};
                r = execve(argv[0], argv, argv + 1);
        } else if (streq(fault_call, "socket-inet"))
                r = socket(AF_INET, SOCK_STREAM, 0);
        else if (streq(fault_call, "open-write"))
                r = open("/tmp/postd-test-fault", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        else if (streq(fault_call, "fork")) {
                r = fork();
                if (r == 0)
                        _exit(0);
        }
        /* Still alive: the filter let it through, which the test reports. */
        msg_warn("test hook: forbidden call %s returned %d (%s)", fault_call, r,
                 r < 0 ? strerror(errno) : "ok");
        fault_call = NULL;
}
#else
static void fault_arm(const char *daemon)
{
}
static void fault_fire(void)
{
}
#endif

static void report(struct service *s, int status)
{
        if (s->status_fd < 0)
                return;
        struct service_status st = {.pid = (int32_t)getpid(), .status = status};
        /* One small write on a pipe is atomic; if the master is gone there is nobody to tell. */
        if (write(s->status_fd, &st, sizeof st) < 0 && errno == EPIPE) {
                close(s->status_fd);
                s->status_fd = -1;
        }
}

/* From the SIGSYS handler: write() alone, on the descriptor the master gave us. */
static int violation_fd = -1;

static void report_violation(int syscall_nr)
{
        struct service_status st = {
                .pid = (int32_t)getpid(), .status = SERVICE_STATUS_SECCOMP, .value = syscall_nr};
        if (violation_fd >= 0)
                (void)!write(violation_fd, &st, sizeof st);
}

long long service_use_limit(long long max_use, unsigned max_connections, bool long_lived)
{
        if (long_lived || max_use <= 0)
                return 0;
        /*
         * max_use bounds how much work one process does before a fresh one replaces it. Postfix counts
         * connections of a one-client process; a postd daemon that serves max_connections clients at
         * once stands for that many such processes, so it gets as many uses before it restarts.
         * Counting bare connections would restart an event-driven smtpd every 100 sessions (the
         * dynamic loader and config parse then showed in profiles), far more often per unit of work
         * than a Postfix process pool ever does.
         */
        unsigned slots = max_connections ? max_connections : 1;
        if (max_use > SERVICE_USE_LIMIT_MAX / slots)
                return SERVICE_USE_LIMIT_MAX;
        return max_use * slots;
}

static bool can_accept(const struct service *s)
{
        if (s->stopping || s->exit_requested || s->conns >= s->max_conns)
                return false;
        return s->max_use <= 0 || s->uses < s->max_use;
}

static int on_idle_timer(struct event_source *src, uint64_t usec, void *userdata)
{
        struct service *s = userdata;
        if (s->conns == 0)
                event_loop_exit(s->event, 0);
        return 0;
}

/* Re-evaluate after every change of the connection count or of the stop state. */
static void update_state(struct service *s)
{
        bool want = can_accept(s);
        if (want != s->accepting) {
                for (unsigned i = 0; i < s->n_listeners; i++)
                        event_source_set_enabled(s->listeners[i].src, want ? EVENT_ON : EVENT_OFF);
                s->accepting = want;
                report(s, want ? SERVICE_STATUS_AVAILABLE : SERVICE_STATUS_BUSY);
        }
        if (s->conns == 0 &&
            (s->stopping || s->exit_requested || (s->max_use > 0 && s->uses >= s->max_use))) {
                event_loop_exit(s->event, 0);
                return;
        }
        /* max_idle: a process with nothing to do gives its resources back; the master respawns on demand. */
        if (!s->ops->long_lived && s->max_idle > 0 && s->n_listeners > 0) {
                if (s->conns == 0) {
                        uint64_t now = event_loop_now(s->event);
                        uint64_t when = now + (uint64_t)s->max_idle * 1000000ULL;
                        if (!s->idle_timer)
                                event_add_time(s->event, &s->idle_timer, when, on_idle_timer, s);
                        else {
                                event_source_set_time(s->idle_timer, when);
                                event_source_set_enabled(s->idle_timer, EVENT_ONESHOT);
                        }
                } else if (s->idle_timer)
                        event_source_set_enabled(s->idle_timer, EVENT_OFF);
        }
}

void service_connection_done(struct service *s)
{
        if (s->conns > 0)
                s->conns--;
        update_state(s);
}

void service_request_exit(struct service *s)
{
        s->exit_requested = true;
        update_state(s);
}

static void drain(int fd)
{
        char junk[512];
        for (int i = 0; i < 64; i++) {
                ssize_t n = read(fd, junk, sizeof junk);
                if (n <= 0)
                        break;
        }
}

static int on_listener(struct event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct listener *l = userdata;
        struct service *s = l->s;

        fault_fire();
        if (l->fifo) {
                drain(fd);
                s->uses++;
                if (s->ops->on_wakeup)
                        s->ops->on_wakeup(s);
                update_state(s);
                return 0;
        }
        /* Accept a bounded batch: other listeners and connections must get their turn. */
        for (int i = 0; i < 64 && can_accept(s); i++) {
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN && errno != ECONNABORTED)
                                msg_warn("accept connection: %s", strerror(errno));
                        break;
                }
                s->uses++;
                if (s->ops->on_connection) {
                        s->conns++;
                        update_state(s);
                        s->ops->on_connection(s, cfd);
                } else {
                        drain(cfd);
                        close(cfd);
                        if (s->ops->on_wakeup)
                                s->ops->on_wakeup(s);
                        update_state(s);
                }
        }
        return 0;
}

static int on_stop_timer(struct event_source *src, uint64_t usec, void *userdata)
{
        struct service *s = userdata;
        msg_warn("stop timeout: %u connection(s) still open after %d s", s->conns,
                 USEC_TO_SEC(SERVICE_STOP_TIMEOUT_USEC));
        event_loop_exit(s->event, 0);
        return 0;
}

static int on_sigterm(struct event_source *src, const struct signalfd_siginfo *si, void *userdata)
{
        struct service *s = userdata;
        if (s->stopping)
                return 0;
        s->stopping = true;
        if (s->ops->on_stop)
                s->ops->on_stop(s);
        uint64_t now = event_loop_now(s->event);
        event_add_time(s->event, &s->stop_timer, now + SERVICE_STOP_TIMEOUT_USEC, on_stop_timer, s);
        update_state(s);
        return 0;
}

static void drop_privileges(struct config *c)
{
        if (geteuid() != 0)
                return;
        const char *owner = config_get(c, "mail_owner");
        struct passwd *pw = getpwnam(owner);
        if (!pw)
                msg_fatal("unknown mail_owner account: %s", owner);
        if (pw->pw_uid == 0)
                msg_fatal("mail_owner %s must not be a privileged account", owner);
        if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
                msg_fatal("cannot switch to mail_owner %s: %s", owner, strerror(errno));
}

static void service_free(struct service *s)
{
        for (unsigned i = 0; i < s->n_listeners; i++)
                event_source_unref(s->listeners[i].src);
        event_source_unref(s->idle_timer);
        event_source_unref(s->stop_timer);
        event_loop_unref(s->event);
        config_free(s->config);
        free(s->name);
        free(s->type);
        free(s->daemon);
        free(s->sandbox_role);
}

int service_main(int argc, char **argv, const struct service_ops *ops)
{
        struct service s = {.ops = ops, .status_fd = -1};
        const char *config_dir = NULL, *name = NULL, *type = "unix";
        struct strv overrides = STRV_INIT;
        bool unpriv = false;
        int opt;

        const char *slash = strrchr(argv[0], '/');
        s.daemon = xstrdup(slash ? slash + 1 : argv[0]);
        log_setup_command(s.daemon);
        /* A missing or broken table must not stop a role: its lookups fail temporarily instead. */
        dict_set_unavailable_fallback(true);
        while ((opt = getopt(argc, argv, "+c:n:t:o:uvDS")) != -1) {
                switch (opt) {
                case 'c': config_dir = optarg; break;
                case 'n': name = optarg; break;
                case 't': type = optarg; break;
                case 'o': strv_push(&overrides, optarg); break;
                case 'u': unpriv = true; break;
                case 'v':
                case 'D':
                case 'S': break;
                default:
                        msg_fatal("usage: %s -c config_dir -n service -t type [-u] [-o name=value]...",
                                  s.daemon);
                }
        }
        s.name = xstrdup(name ? name : s.daemon);
        s.type = xstrdup(type);
        s.args = argv + optind;
        s.n_args = argc - optind;

        int r = config_load(config_dir, &s.config);
        if (r < 0)
                msg_fatal("open %s/main.cf: %s", config_dir ? config_dir : "(default)", strerror(-r));
        for (size_t i = 0; i < overrides.n; i++) {
                char *eq = strchr(overrides.v[i], '=');
                if (!eq)
                        msg_fatal("bad -o argument: %s (expected name=value)", overrides.v[i]);
                *eq = '\0';
                config_set(s.config, overrides.v[i], eq + 1);
        }
        strv_done(&overrides);
        log_setup_daemon(config_get(s.config, "syslog_name"), s.daemon,
                         config_get(s.config, "maillog_file"));

        const char *env = getenv("POSTD_LISTEN_FDS");
        if (env) {
                long n = strtol(env, NULL, 10);
                if (n < 0 || n > SERVICE_LISTEN_FDS_MAX)
                        msg_fatal("bad POSTD_LISTEN_FDS=%s (at most %d)", env, SERVICE_LISTEN_FDS_MAX);
                s.n_listeners = (unsigned)n;
                /* The master is our parent: follow it when it dies instead of serving alone. */
                prctl(PR_SET_PDEATHSIG, SIGTERM);
        }
        env = getenv("POSTD_STATUS_FD");
        if (env)
                s.status_fd = (int)strtol(env, NULL, 10);
        env = getenv("POSTD_METRICS_FD");
        if (env) {
                int fd = (int)strtol(env, NULL, 10);
                int mr = metrics_attach(fd);
                if (mr < 0)
                        msg_warn("cannot map the instance's counters: %s", strerror(-mr));
                close(fd); /* the mapping stays */
        }
        /* Delivery agents count their outcomes under their master.cf service name. */
        metrics_set_transport(s.name);
        unsetenv("POSTD_LISTEN_FDS");
        unsetenv("POSTD_STATUS_FD");
        unsetenv("POSTD_METRICS_FD");

        fault_arm(s.daemon);
        if (ops->init_privileged && ops->init_privileged(&s) < 0)
                return 1;
        /* Before dropping privileges: as root the filter can be loaded without no_new_privs. */
        r = sandbox_apply_baseline();
        if (r < 0)
                msg_fatal("cannot install the seccomp filter: %s", strerror(-r));
        if (unpriv) {
                drop_privileges(s.config);
                if (s.n_listeners > 0)
                        prctl(PR_SET_PDEATHSIG, SIGTERM); /* a credential change cleared it */
        }
        if (s.n_listeners > 0 && getppid() == 1)
                msg_fatal("master process is gone");

        s.max_conns = ops->max_connections ? ops->max_connections : 1;
        s.max_use = service_use_limit(config_get_int(s.config, "max_use"), s.max_conns, ops->long_lived);
        s.max_idle = config_get_time(s.config, "max_idle");

        /*
         * Fixed malloc thresholds: glibc's sliding mmap threshold and the default 128 KiB trim made
         * daemons map, fault in and unmap the 64-128 KiB buffers of every message (content chunks,
         * IPC buffers), which showed as page faults in smtpd's profile. Memory of a burst now stays
         * in the heap for the next message; only IPC-frame-sized blocks are mapped separately.
         */
        mallopt(M_MMAP_THRESHOLD, SERVICE_MALLOC_MMAP_THRESHOLD);
        mallopt(M_TRIM_THRESHOLD, SERVICE_MALLOC_TRIM_THRESHOLD);

        signal(SIGPIPE, SIG_IGN);
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        r = event_loop_new(&s.event);
        if (r < 0)
                msg_fatal("event loop: %s", strerror(-r));
        event_add_signal(s.event, NULL, SIGTERM, on_sigterm, &s);
        event_add_signal(s.event, NULL, SIGINT, on_sigterm, &s);

        for (unsigned i = 0; i < s.n_listeners; i++) {
                struct listener *l = &s.listeners[i];
                struct stat st;
                l->s = &s;
                l->fd = SERVICE_LISTEN_FDS_START + (int)i;
                if (fstat(l->fd, &st) < 0)
                        msg_fatal("listener fd %d: %s", l->fd, strerror(errno));
                l->fifo = S_ISFIFO(st.st_mode);
                r = event_add_io(s.event, &l->src, l->fd, EPOLLIN, on_listener, l);
                if (r < 0)
                        msg_fatal("watch listener fd %d: %s", l->fd, strerror(-r));
        }
        s.accepting = true; /* the master counts a new process as available */

        if (ops->init && ops->init(&s) < 0) {
                service_free(&s);
                return 1;
        }
        /* Initialised, nothing untrusted read yet: from here on only the role's own calls. */
        bool log_only = POSTD_TEST_HOOKS && getenv("POSTD_SANDBOX_LOG");
        const char *role = s.sandbox_role ? s.sandbox_role : s.daemon;
        violation_fd = s.status_fd;
        sandbox_set_violation_report(report_violation);
        r = sandbox_apply_role(role, log_only);
        if (r < 0)
                msg_fatal("cannot install the seccomp allow-list of %s: %s", role, strerror(-r));
        update_state(&s);
        /*
         * Start-up garbage (the parsed main.cf and master.cf, libseccomp's filter build) was freed
         * below M_TRIM_THRESHOLD, so the heap would keep it resident for the process's life: an idle
         * qmgr kept 200 KiB of heap, 76 KiB after this. Later bursts still reuse their heap.
         */
        malloc_trim(0);
        r = event_loop_run(s.event);
        if (r < 0)
                msg_error("event loop: %s", strerror(-r));
        service_free(&s);
        return r < 0 ? 1 : 0;
}
