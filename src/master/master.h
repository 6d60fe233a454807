/* master.h: the master process's state: one instance's services, their listeners and their processes. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include "event.h"

#include "buf.h"
#include "config.h"
#include "instance.h"
#include "mastercf.h"
#include "service.h"

/* After SIGTERM the children get this long (more than their own stop bound) before SIGKILL. */
#define MASTER_STOP_TIMEOUT_USEC (SERVICE_STOP_TIMEOUT_USEC + 5 * USEC_PER_SEC)
#define MASTER_LISTEN_BACKLOG    4096   /* the kernel caps it at net.core.somaxconn */
#define MASTER_PROCS_MAX         100000 /* all services together */
/*
 * Queue recovery before READY=1 may take long with a big backlog: every so often the master tells systemd
 * to wait EXTEND_TIMEOUT_USEC longer, so TimeoutStartSec= never kills a start that is making progress.
 * A test build may shorten the interval (-DMASTER_RECOVERY_NOTIFY_USEC=...).
 */
#ifndef MASTER_RECOVERY_NOTIFY_USEC
#define MASTER_RECOVERY_NOTIFY_USEC (1000000ULL)
#endif
#define MASTER_RECOVERY_EXTEND_USEC (10 * MASTER_RECOVERY_NOTIFY_USEC)
/* A child that dies abnormally before it ever served counts as a failed start. */
#define MASTER_ENDPOINTS_MAX SERVICE_LISTEN_FDS_MAX

/* One listening descriptor of a service. key identifies what it listens on, to keep it across reloads. */
struct master_listener {
        int fd;
        bool owned; /* false for a descriptor from systemd: the master's pool owns it */
        char *key;  /* "inet 127.0.0.1 2525", "inet :: 25", "unix /path", "fifo /path" */
        struct event_source *src;
        struct master_service *svc;
};

struct master_service {
        struct master *m;
        char *label; /* "smtp/inet", as master_service_disable and log lines name it */
        char *name;
        enum mastercf_type type;
        char *path; /* daemon_directory/command */
        struct strv argv;
        unsigned line;
        int maxproc; /* 0 = no limit */
        int wakeup;
        bool wakeup_conditional;
        char *socket_path; /* unix/fifo */
        struct master_listener *listeners;
        size_t n_listeners;
        unsigned total, avail;
        bool throttled;
        struct event_source *throttle_timer, *wakeup_timer;
};

struct master_proc {
        pid_t pid;
        struct master_service *svc; /* NULL once the service was reloaded away: only waited for */
        bool avail;
        unsigned use_count; /* times it reported BUSY, i.e. started serving */
        int refused_call;   /* 1 + the system call its allow-list refused; 0: none reported */
        struct master_proc *next;
};

/* What the master tells its supervisor (systemd, or the postfix start that forked it). */
enum master_state { MASTER_STARTING, MASTER_READY, MASTER_RELOADING, MASTER_STOPPING };

struct master {
        struct event_loop *event;
        struct config *config;
        struct instance_paths paths;
        struct master_service *services;
        size_t n_services;
        struct master_proc *procs;
        unsigned n_procs;
        int status_pipe[2];
        int metrics_fd; /* data_directory/metrics, shared with every child; -1: none */
        int *sd_fds;    /* from systemd (LISTEN_FDS), owned here, matched to services */
        char **sd_names;
        size_t n_sd_fds;
        /* The unit it runs in (POSTD_SYSTEMD_UNIT, set by postfix@.service), else NULL: then its inet
         * listeners are the socket units', and it never binds one itself (see master_setup_services). */
        char *unit;
        bool stopping;
        struct event_source *stop_timer;
        int ready_fd; /* write end towards the foreground parent, -1 when none */
        enum master_state state;
        struct event_source *status_timer, *watchdog_timer;
        char *status; /* the last STATUS= sent, to send only changes */
};

/* STATUS= is refreshed this often; counting the queue is one readdir per queue directory. */
#define MASTER_STATUS_INTERVAL_USEC (3 * USEC_PER_SEC)
/* Queue files counted per directory at most; beyond it STATUS= says "N+". */
#define MASTER_STATUS_SCAN_MAX 100000
/* Listener addresses named in STATUS= at most; the rest are summed up as "+N more". */
#define MASTER_STATUS_ADDRS_MAX 4

/* listen.c */
/* Load main.cf and master.cf into m->config and *ret; on failure (logged) m is unchanged. */
int master_load_config(struct master *m, const char *config_dir, struct mastercf *ret);
/* Name the main.cf settings postd does not act on yet (once logging goes where the operator looks). */
void master_warn_inert(struct master *m, const struct mastercf *cf);
/* Build m->services from master.cf, reusing listeners of old (a previous generation) where they match. */
void master_setup_services(struct master *m, const struct mastercf *cf, struct master_service *old,
                           size_t n_old);
void master_service_done(struct master_service *s);
/* Take systemd's sockets (util/listen_fds.c), if any. */
void master_take_systemd_fds(struct master *m);
/* Listener watch on only while the service needs another process: none available and below maxproc. */
void master_update_listeners(struct master_service *s);

/* spawn.c */
void master_spawn_init(struct master *m);
int master_spawn(struct master_service *s);
void master_start_wakeups(struct master_service *s);
/* Signal every child; detach them from their services (reload) when detach is set. */
void master_signal_children(struct master *m, int sig, bool detach);
void master_reap(struct master *m);

/* notify.c: what systemd (Type=notify) and a foreground parent learn about the master. */
void master_notify(struct master *m, enum master_state state);
/* recover.c: queue recovery (queue_recover) in a child with mail_owner's ids; fatal when it fails. */
void master_recover_queue(struct master *m);
/* Periodic STATUS= refresh and, when WatchdogSec= is set, WATCHDOG=1 from the event loop. */
void master_notify_start_timers(struct master *m);
void master_notify_free(struct master *m);
/* "accepting on 127.0.0.1:2525; queue: 0 active, 3 deferred" (pure over m's listeners and counts). */
char *master_status_text(const struct master *m, long active, long deferred);
/* Entries in a queue directory (one level of hashed subdirectories counted too); at most max, -errno. */
long master_count_queue(const char *dir, long max);
