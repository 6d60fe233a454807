/* postfix_control.c: postfix start/start-fg/stop/abort/reload/status, via the master's pid file. */
#include "postfix_control.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>

#include "alloc.h"
#include "buf.h"
#include "fileio.h"
#include "instance.h"
#include "instance_dirs.h"
#include "instance_check.h"
#include "postfix_systemd.h"
#include "log.h"
#include "metrics_instance.h"
#include "mastercf.h"
#include "queue.h"

/* How long stop waits for the master to let go of its pid file (it gives its children 35 s). */
#define POSTFIX_STOP_WAIT_USEC (60 * USEC_PER_SEC)
/* How long start waits for the master to report that it is ready. */
#define POSTFIX_START_WAIT_USEC (120 * USEC_PER_SEC)

/*
 * Messages of these commands read "postfix-NAME/postfix-script: text", as Postfix's script prints them.
 * log_setup_command() keeps only the last path component of a program name, so they are printed here.
 */
static char *script_tag;

_printf_(2, 3) static void say(const char *level, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        struct buf b = BUF_INIT;
        buf_printf(&b, "%s: %s", script_tag ? script_tag : "postfix/postfix-script", level);
        buf_vprintf(&b, fmt, ap);
        buf_putc(&b, '\n');
        va_end(ap);
        fputs(buf_str(&b), stderr);
        buf_done(&b);
}

#define script_info(...)  say("", __VA_ARGS__)
#define script_error(...) say("error: ", __VA_ARGS__)
#define script_fatal(...)                    \
        do {                                 \
                say("fatal: ", __VA_ARGS__); \
                exit(1);                     \
        } while (0)

static void setup(struct config *c, struct instance_paths *p)
{
        instance_paths_from_config(c, p);
        free(script_tag);
        script_tag = xasprintf("%s/postfix-script", p->syslog_name);
}

static int running_pid(struct instance_paths *p, pid_t *ret)
{
        int r = instance_master_pid(p, ret);
        if (r < 0 && r != -ESRCH)
                script_fatal("cannot read %s: %s", p->pid_file, strerror(-r));
        return r == 0;
}

static void create_queue(struct config *c)
{
        _cleanup_free_ char *err = NULL;
        if (instance_create_dirs(c, INSTANCE_DIRS_QUEUE, &err) < 0)
                script_fatal("%s", err);
}

/*
 * A configuration start must not retry: start-fg (under the unit) exits EX_CONFIG, which the unit's
 * RestartPreventExitStatus= keeps from a restart loop; postfix start exits 1, as Postfix's script.
 */
_noreturn_ static void refuse_start(bool foreground, const char *why)
{
        say("fatal: ", "not starting: %s", why);
        exit(foreground ? EX_CONFIG : 1);
}

/* The master refuses these too (its log says so); saying it here puts the cause on the terminal. */
static void refuse_bad_tables(struct config *c, bool foreground)
{
        struct strv errors = STRV_INIT;
        if (instance_check_table_types(c, NULL, &errors) == 0)
                return;
        for (size_t i = 0; i < errors.n; i++)
                script_error("%s", errors.v[i]);
        refuse_start(foreground, "fix the tables above (\"postfix check\" lists every problem)");
}

/* The listener addresses no interface of this host has and the chroot jails postd does not set up,
 * each said as an error; their number. */
static size_t foreign_addresses(struct config *c)
{
        struct mastercf m = {0};
        if (mastercf_load(config_directory(c), &m) < 0)
                return 0; /* the master says what is wrong with it */
        struct strv errors = STRV_INIT;
        size_t n = instance_check_chroot(c, &m, &errors);
        n += instance_check_listen_addresses(c, &m, &errors);
        mastercf_done(&m);
        for (size_t i = 0; i < errors.n; i++)
                script_error("%s", errors.v[i]);
        strv_done(&errors);
        return n;
}

/*
 * A listener address no interface has: Postfix's master dies on its bind; here the cause reaches the
 * terminal (postfix start) or the unit's status (start-fg) before anything runs. Sockets passed by
 * systemd are already bound, as the operator configured them (a FreeBind= drop-in included): then
 * there is nothing to probe.
 */
static void refuse_foreign_addresses(struct config *c, bool foreground)
{
        if (foreground && getenv("LISTEN_FDS"))
                return;
        if (foreign_addresses(c) > 0)
                refuse_start(foreground, "fix the services above (\"postfix check\" lists every problem)");
}

/* Under systemd the instance starts in its unit (its own cgroup, sockets and journal stream). */
static int systemd_start(struct config *c, const char *unit)
{
        postfix_systemd_refresh(c, unit);
        script_info("starting the Postfix mail system (%s)", unit);
        if (postfix_systemctl("start", unit) != 0) {
                script_error("the Postfix mail system did not start: see journalctl -u %s", unit);
                return 1;
        }
        return 0;
}

static int start(struct config *c, bool foreground)
{
        struct instance_paths p;
        pid_t pid = 0;
        setup(c, &p);
        if (running_pid(&p, &pid))
                script_fatal("the Postfix mail system is already running");
        refuse_bad_tables(c, foreground);
        refuse_foreign_addresses(c, foreground);
        if (!foreground) {
                _cleanup_free_ char *unit = postfix_systemd_unit(c);
                if (unit)
                        return systemd_start(c, unit);
        }
        create_queue(c);
        _cleanup_free_ char *master = xasprintf("%s/master", p.daemon_dir);
        char *args[] = {master, (char *)"-c", p.config_dir, foreground ? (char *)"-d" : NULL, NULL};
        if (foreground) {
                execv(master, args);
                script_fatal("execute %s: %s", master, strerror(errno));
        }
        script_info("starting the Postfix mail system");
        pid_t child = fork();
        if (child < 0)
                script_fatal("fork: %s", strerror(errno));
        if (child == 0) {
                execv(master, args);
                say("fatal: ", "execute %s: %s", master, strerror(errno));
                _exit(127);
        }
        /* The master's foreground half exits once the daemon is ready (0) or has died (1). */
        int status = 0;
        for (int i = 0; i < USEC_TO_SEC(POSTFIX_START_WAIT_USEC) * 10; i++) {
                pid_t w = waitpid(child, &status, WNOHANG);
                if (w == child)
                        break;
                if (w < 0 && errno != EINTR)
                        script_fatal("waitpid: %s", strerror(errno));
                nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
                if (i == USEC_TO_SEC(POSTFIX_START_WAIT_USEC) * 10 - 1)
                        script_fatal("the master did not report ready within %d s",
                                     USEC_TO_SEC(POSTFIX_START_WAIT_USEC));
        }
        instance_paths_done(&p);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                script_error("the Postfix mail system did not start");
                return 1;
        }
        return 0;
}

int postfix_start(struct config *c, int argc, char **argv)
{
        return start(c, false);
}

int postfix_start_fg(struct config *c, int argc, char **argv)
{
        return start(c, true);
}

/*
 * The service and its sockets: a stopped mail system accepts no connection. (systemctl stop of the
 * service alone leaves the sockets listening, to start it again at the next connection.)
 */
static int systemd_stop(const char *unit, const char *what)
{
        struct strv units = STRV_INIT;
        bool running = postfix_systemd_instance_units(unit, &units);
        int rc = 1;
        if (!running)
                script_error("the Postfix mail system is not running");
        else {
                script_info("%s (%s and its sockets)", what, unit);
                rc = postfix_systemctl_units("stop", &units) == 0 ? 0 : 1;
        }
        strv_done(&units);
        return rc;
}

/*
 * A reload cannot give a running master new sockets: systemd starts a socket unit only while its
 * service is stopped. When the listeners changed (a new inet service, another address or port), the
 * instance is restarted instead: its sockets first, then the master, which takes them over.
 */
static int systemd_reload(struct config *c, const char *unit, const char *what)
{
        bool active_before = false, active_after = false;
        _cleanup_free_ char *before = postfix_systemd_listen_state(unit, &active_before);
        postfix_systemd_refresh(c, unit);
        if (!postfix_systemd_main_pid(unit)) {
                script_error("the Postfix mail system is not running");
                return 1;
        }
        _cleanup_free_ char *after = postfix_systemd_listen_state(unit, &active_after);
        if (streq(before, after) && active_after) {
                script_info("%s (%s)", what, unit);
                return postfix_systemctl("reload", unit) == 0 ? 0 : 1;
        }
        script_info("the listeners of %s changed: restarting it with its sockets", unit);
        struct strv units = STRV_INIT;
        postfix_systemd_instance_units(unit, &units);
        int r = postfix_systemctl_units("stop", &units);
        if (r == 0)
                r = postfix_systemctl("start", unit);
        strv_done(&units);
        if (r != 0)
                script_error("the Postfix mail system did not start again: see systemctl status %s", unit);
        return r == 0 ? 0 : 1;
}

static int signal_master(struct config *c, int sig, const char *what, bool wait)
{
        /* A reload onto an address the host lacks would take the running instance down with it. */
        if (sig == SIGHUP && foreign_addresses(c) > 0) {
                script_error("not reloading: the running instance keeps its configuration until the "
                             "address above is fixed");
                return 1;
        }
        _cleanup_free_ char *unit = postfix_systemd_unit(c);
        if (unit) {
                struct instance_paths sp;
                setup(c, &sp);
                instance_paths_done(&sp);
                if (sig == SIGTERM)
                        return systemd_stop(unit, what);
                if (sig == SIGHUP)
                        return systemd_reload(c, unit, what);
                if (!postfix_systemd_main_pid(unit)) {
                        script_error("the Postfix mail system is not running");
                        return 1;
                }
                script_info("%s (%s)", what, unit);
                return postfix_systemctl("kill", unit) == 0 ? 0 : 1;
        }

        struct instance_paths p;
        pid_t pid = 0;
        setup(c, &p);
        if (!running_pid(&p, &pid))
                script_fatal("the Postfix mail system is not running");
        script_info("%s", what);
        if (kill(pid, sig) < 0)
                script_fatal("signal master pid %d: %s", (int)pid, strerror(errno));
        int rc = 0;
        if (wait) {
                rc = 1;
                for (int i = 0; i < USEC_TO_SEC(POSTFIX_STOP_WAIT_USEC) * 10; i++) {
                        if (!running_pid(&p, &pid)) {
                                rc = 0;
                                break;
                        }
                        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
                }
                if (rc)
                        script_error("the master (pid %d) is still running after %d s", (int)pid,
                                     USEC_TO_SEC(POSTFIX_STOP_WAIT_USEC));
        }
        instance_paths_done(&p);
        return rc;
}

int postfix_stop(struct config *c, int argc, char **argv)
{
        return signal_master(c, SIGTERM, "stopping the Postfix mail system", true);
}

int postfix_abort(struct config *c, int argc, char **argv)
{
        return signal_master(c, SIGQUIT, "aborting the Postfix mail system", false);
}

int postfix_reload(struct config *c, int argc, char **argv)
{
        return signal_master(c, SIGHUP, "refreshing the Postfix mail system", false);
}

int postfix_status(struct config *c, int argc, char **argv)
{
        struct instance_paths p;
        pid_t pid = 0;
        setup(c, &p);
        _cleanup_free_ char *unit = postfix_systemd_unit(c);
        bool running = unit ? (pid = postfix_systemd_main_pid(unit)) > 0 : running_pid(&p, &pid);
        if (running)
                script_info("the Postfix mail system is running: PID: %d", (int)pid);
        else
                script_info("the Postfix mail system is not running");
        instance_paths_done(&p);
        return running ? 0 : 1;
}

int postfix_flush(struct config *c, int argc, char **argv)
{
        /* As Postfix's script: postqueue -f does it (and enforces authorized_flush_users). */
        struct instance_paths p;
        setup(c, &p);
        _cleanup_free_ char *postqueue = xasprintf("%s/postqueue", config_get(c, "command_directory"));
        char *args[] = {postqueue, (char *)"-c", p.config_dir, (char *)"-f", NULL};
        execv(postqueue, args);
        script_fatal("execute %s: %s", postqueue, strerror(errno));
}

int postfix_metrics(struct config *c, int argc, char **argv)
{
        struct buf b = BUF_INIT;
        int r = metrics_instance_text(c, NULL, &b);
        if (r < 0)
                msg_warn(
                        "no counters (%s): has this instance's master run since it was installed? The queue "
                        "sizes are shown alone",
                        strerror(-r));
        fwrite(b.data, 1, b.len, stdout);
        buf_done(&b);
        return fflush(stdout) == 0 ? 0 : 1;
}
