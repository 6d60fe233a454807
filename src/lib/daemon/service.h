/* service.h: the skeleton every postd daemon's main() runs: config, logging, event loop, accepting. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include "event.h"

#include "config.h"

/*
 * How the master starts a daemon (master.cf line "NAME TYPE ... COMMAND ARGS"):
 *
 *   DAEMON_DIR/COMMAND -c CONFIG_DIR -n NAME -t TYPE [-u] [-o name=value]... [ARGS...]
 *
 * -u asks the daemon to run as mail_owner (master.cf "unpriv" column); -v/-D/-S are accepted and
 * ignored. The listening descriptors start at fd 3 (SERVICE_LISTEN_FDS_START), their number is in
 * $POSTD_LISTEN_FDS; the write end of the master's status pipe is the fd in $POSTD_STATUS_FD.
 * Started by hand (no $POSTD_LISTEN_FDS) a daemon runs with no listener, which suits a test of
 * on_wakeup only.
 *
 * Status pipe: the daemon writes struct service_status records (smaller than PIPE_BUF, so each write
 * is atomic even with many daemons on one pipe). A new process counts as AVAILABLE; it reports BUSY
 * when it takes no more connections (at max_connections, at max_use, or stopping) and AVAILABLE again
 * when it does. The master spawns another process only while none is available.
 */
#define SERVICE_LISTEN_FDS_START 3
#define SERVICE_LISTEN_FDS_MAX   64 /* one per inet_interfaces address and protocol is plenty */
/* after SIGTERM, in-flight work gets this long; the master waits longer */
#define SERVICE_STOP_TIMEOUT_USEC (30 * USEC_PER_SEC)

/* SECCOMP: value is the system call the role's allow-list refused; the process dies of SIGSYS next. */
enum { SERVICE_STATUS_BUSY = 0, SERVICE_STATUS_AVAILABLE = 1, SERVICE_STATUS_SECCOMP = 2 };

struct service_status {
        int32_t pid;
        int32_t status; /* SERVICE_STATUS_* */
        int32_t value;
};

struct service;

struct service_ops {
        /*
         * Called once before the event loop, after -o overrides and logging are set up and privileges
         * dropped. Return <0 to exit with status 1 (log why first).
         */
        int (*init)(struct service *s);
        /*
         * Called before init, still with the privileges the master started the daemon with (root for
         * most roles): for what must be read as root and kept, such as a TLS private key. NULL: none.
         * Return <0 to exit with status 1 (log why first).
         */
        int (*init_privileged)(struct service *s);
        /*
         * An accepted connection on one of the listeners; the callee owns fd (non-blocking, CLOEXEC)
         * and must call service_connection_done(s) once it is finished with it, from the event loop
         * or immediately. NULL for wakeup-only services.
         */
        void (*on_connection)(struct service *s, int fd);
        /*
         * The master (or a client) woke the service: a fifo became readable (its bytes are drained), or
         * a connection on a unix listener of a service without on_connection (read and closed).
         */
        void (*on_wakeup)(struct service *s);
        /* SIGTERM: stop starting new work; the skeleton exits once no connection is left. May be NULL. */
        void (*on_stop)(struct service *s);
        /* Connections one process handles at once: 1 for process-per-session daemons; 0 means 1. */
        unsigned max_connections;
        /* Ignore max_idle and max_use (qmgr and other long-lived singletons). */
        bool long_lived;
        void *userdata;
};

/* Parse the master's arguments, load the config, run the loop; returns the process exit code. */
int service_main(int argc, char **argv, const struct service_ops *ops);

struct event_loop *service_event(struct service *s);
struct config *service_config(struct service *s);
/* From init: the allow-list (src/lib/util/sandbox.c) to install instead of the daemon's own, for a setting
 * that needs more (smtpd talking to Dovecot's auth service over TCP). */
void service_set_sandbox_role(struct service *s, const char *role);
const char *service_name(const struct service *s);   /* master.cf column 1, "smtp", "pickup" */
const char *service_type(const struct service *s);   /* "inet", "unix", "fifo", ... */
const char *service_daemon(const struct service *s); /* basename of argv[0], "smtpd" */
/* The master.cf arguments after the options, NULL-terminated. */
char **service_args(const struct service *s, int *ret_n);
void *service_userdata(const struct service *s);
bool service_stopping(const struct service *s);
unsigned service_connections(const struct service *s);

/* A connection handed to on_connection is finished (fd already closed by the daemon). */
void service_connection_done(struct service *s);
/*
 * Connections (or wakeups) a process takes before it exits and the master starts a fresh one: main.cf's
 * max_use times max_connections, capped at SERVICE_USE_LIMIT_MAX; 0 = no limit (long-lived services,
 * max_use <= 0). Pure, for the tests.
 */
#define SERVICE_USE_LIMIT_MAX (1LL << 40)
long long service_use_limit(long long max_use, unsigned max_connections, bool long_lived);

/* Ask the skeleton to exit once the current connections are done (e.g. after a fatal condition). */
void service_request_exit(struct service *s);
