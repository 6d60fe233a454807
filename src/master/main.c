/* main.c: the master of one instance: lock, recover the queue, listen, supervise, reload, stop. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "alloc.h"
#include "log.h"
#include "metrics.h"
#include "master.h"
#include "postd-build.h"
#include "queue.h"
#include "selabel.h"
#include "service.h"

_noreturn_ static void usage(void)
{
        fprintf(stderr, "usage: master [-c config_dir] [-d]\n");
        exit(2);
}

/*
 * Without -d the master detaches: the parent stays until the child is ready (or dead), so that start
 * errors still reach the caller's terminal and its exit status says whether the instance runs.
 */
static int detach(void)
{
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                msg_fatal("pipe: %s", strerror(errno));
        pid_t pid = fork();
        if (pid < 0)
                msg_fatal("fork: %s", strerror(errno));
        if (pid > 0) {
                close(p[1]);
                char c;
                ssize_t n;
                do
                        n = read(p[0], &c, 1);
                while (n < 0 && errno == EINTR);
                if (n == 1)
                        _exit(0);
                int status = 0;
                waitpid(pid, &status, 0);
                _exit(1);
        }
        close(p[0]);
        setsid();
        return p[1];
}

/* After start-up the daemon keeps nothing of the terminal; logging moves to the journal if it used stderr.
 */
static void drop_terminal(struct master *m)
{
        if (log_get_backend() == LOG_BACKEND_STREAM) {
                setenv("POSTD_LOG", "journal", 1);
                log_setup_daemon(m->paths.syslog_name, "master", config_get(m->config, "maillog_file"));
        }
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
                dup2(null, STDIN_FILENO);
                dup2(null, STDOUT_FILENO);
                dup2(null, STDERR_FILENO);
                close(null);
        }
}

static void ensure_dir(const char *path, mode_t mode)
{
        if (mkdir(path, mode) < 0 && errno != EEXIST)
                msg_fatal("create %s: %s", path, strerror(errno));
        /* The sockets made in it inherit its SELinux type: it must be the policy's, not the queue's. */
        int r = selabel_restore(path, false);
        if (r < 0)
                msg_warn("%s: cannot restore its SELinux label: %s (run restorecon -R %s)", path,
                         strerror(-r), path);
}

static void start_services(struct master *m)
{
        for (size_t i = 0; i < m->n_services; i++) {
                master_update_listeners(&m->services[i]);
                master_start_wakeups(&m->services[i]);
        }
}

static void free_services(struct master_service *services, size_t n)
{
        for (size_t i = 0; i < n; i++)
                master_service_done(&services[i]);
        free(services);
}

static int on_reload(struct event_source *src, const struct signalfd_siginfo *si, void *userdata)
{
        struct master *m = userdata;
        if (m->stopping)
                return 0;
        master_notify(m, MASTER_RELOADING);
        _cleanup_free_ char *dir = xstrdup(m->paths.config_dir);
        struct mastercf cf = {0};
        if (master_load_config(m, dir, &cf) < 0) {
                /* Keep serving with what runs; the operator fixes the file and reloads again. */
                msg_warn("reload failed: the previous configuration stays in effect");
                master_notify(m, MASTER_READY);
                return 0;
        }
        msg_info("reload -- version %s, configuration %s", POSTD_VERSION, m->paths.config_dir);
        master_warn_inert(m, &cf);

        /* Old processes finish what they do and exit; new ones start with the new configuration. */
        master_signal_children(m, SIGTERM, true);
        struct master_service *old = m->services;
        size_t n_old = m->n_services;
        master_setup_services(m, &cf, old, n_old);
        mastercf_done(&cf);
        free_services(old, n_old);
        start_services(m);
        master_notify(m, MASTER_READY);
        return 0;
}

static int on_stop_timeout(struct event_source *src, uint64_t usec, void *userdata)
{
        struct master *m = userdata;
        msg_warn("%u process(es) still running after %d s: killing them", m->n_procs,
                 USEC_TO_SEC(MASTER_STOP_TIMEOUT_USEC));
        master_signal_children(m, SIGKILL, false);
        /* SIGKILL cannot be ignored: waiting for each is bounded. */
        for (struct master_proc *p = m->procs; p; p = p->next)
                waitpid(p->pid, NULL, 0);
        event_loop_exit(m->event, 0);
        return 0;
}

static int on_stop(struct event_source *src, const struct signalfd_siginfo *si, void *userdata)
{
        struct master *m = userdata;
        if (m->stopping)
                return 0;
        msg_info("terminating on signal %d", (int)si->ssi_signo);
        m->stopping = true;
        master_notify(m, MASTER_STOPPING);
        for (size_t i = 0; i < m->n_services; i++)
                master_update_listeners(&m->services[i]);
        master_signal_children(m, SIGTERM, false);
        if (si->ssi_signo == SIGQUIT || m->n_procs == 0) {
                /* abort: the children end on their own (SIGTERM sent), the master does not wait */
                event_loop_exit(m->event, 0);
                return 0;
        }
        uint64_t now = event_loop_now(m->event);
        event_add_time(m->event, &m->stop_timer, now + MASTER_STOP_TIMEOUT_USEC, on_stop_timeout, m);
        return 0;
}

static int on_child(struct event_source *src, const struct signalfd_siginfo *si, void *userdata)
{
        master_reap(userdata);
        return 0;
}

int main(int argc, char **argv)
{
        struct master m = {.ready_fd = -1, .status_pipe = {-1, -1}, .metrics_fd = -1};
        const char *config_dir = NULL;
        bool foreground = false;
        int opt;

        log_setup_command("master");
        while ((opt = getopt(argc, argv, "c:dvD")) != -1) {
                switch (opt) {
                case 'c': config_dir = optarg; break;
                case 'd': foreground = true; break;
                case 'v':
                case 'D': break;
                default: usage();
                }
        }
        if (optind != argc)
                usage();

        struct mastercf cf = {0};
        if (master_load_config(&m, config_dir, &cf) < 0)
                return 1;
        log_setup_daemon(m.paths.syslog_name, "master", config_get(m.config, "maillog_file"));
        master_warn_inert(&m, &cf);
        /* Taken before anything forks, so LISTEN_PID still names us. */
        master_take_systemd_fds(&m);
        const char *unit = getenv("POSTD_SYSTEMD_UNIT");
        m.unit = isempty(unit) ? NULL : xstrdup(unit);
        unsetenv("POSTD_SYSTEMD_UNIT"); /* not the children's business */
        if (!foreground)
                m.ready_fd = detach();

        int lock_fd = -1;
        pid_t holder = 0;
        int r = instance_lock_pid_file(&m.paths, &lock_fd, &holder);
        if (r == -EBUSY)
                msg_fatal("the Postfix mail system is already running (master pid %d)", (int)holder);
        if (r < 0)
                msg_fatal("lock %s: %s", m.paths.pid_file, strerror(-r));
        master_notify(&m, MASTER_STARTING);

        master_recover_queue(&m);
        ensure_dir(m.paths.private_dir, 0700);
        ensure_dir(m.paths.public_dir, 0710);
        /* Counters start with the master; a reload keeps them. */
        const char *data_dir = config_get(m.config, "data_directory");
        r = metrics_create(data_dir, &m.metrics_fd);
        /* A data_directory that does not exist (postfix set-permissions makes it) only costs the counters. */
        if (r == -ENOENT)
                msg_info("no %s: no counters for postfix metrics (postfix set-permissions creates it)",
                         data_dir);
        else if (r < 0)
                msg_warn("cannot create %s/%s: %s; no counters for postfix metrics (check data_directory)",
                         data_dir, METRICS_FILE, strerror(-r));

        signal(SIGPIPE, SIG_IGN);
        sigset_t mask;
        sigemptyset(&mask);
        int sigs[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGCHLD};
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                sigaddset(&mask, sigs[i]);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        r = event_loop_new(&m.event);
        if (r < 0)
                msg_fatal("event loop: %s", strerror(-r));
        event_add_signal(m.event, NULL, SIGTERM, on_stop, &m);
        event_add_signal(m.event, NULL, SIGINT, on_stop, &m);
        event_add_signal(m.event, NULL, SIGQUIT, on_stop, &m);
        event_add_signal(m.event, NULL, SIGHUP, on_reload, &m);
        event_add_signal(m.event, NULL, SIGCHLD, on_child, &m);
        master_spawn_init(&m);

        master_setup_services(&m, &cf, NULL, 0);
        mastercf_done(&cf);
        start_services(&m);
        msg_info("daemon started -- version %s, configuration %s", POSTD_VERSION, m.paths.config_dir);
        if (!foreground)
                drop_terminal(&m);
        /* Queue recovered, every listener and service set up: only now may systemd send clients. */
        master_notify(&m, MASTER_READY);
        master_notify_start_timers(&m);

        r = event_loop_run(m.event);
        if (r < 0)
                msg_error("event loop: %s", strerror(-r));
        free_services(m.services, m.n_services);
        for (struct master_proc *p = m.procs, *next; p; p = next) {
                next = p->next;
                free(p);
        }
        event_source_unref(m.stop_timer);
        master_notify_free(&m);
        event_loop_unref(m.event);
        config_free(m.config);
        instance_paths_done(&m.paths);
        for (size_t i = 0; i < m.n_sd_fds; i++)
                if (m.sd_fds[i] >= 0)
                        close(m.sd_fds[i]);
        free(m.sd_fds);
        if (m.sd_names)
                for (size_t i = 0; m.sd_names[i]; i++)
                        free(m.sd_names[i]);
        free(m.sd_names);
        free(m.unit);
        close(lock_fd);
        return r < 0 ? 1 : 0;
}
