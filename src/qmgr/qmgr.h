/* qmgr.h: the queue manager's state: in-memory active messages, transports, the deferred schedule. */
#pragma once

#include "schedule.h"

#include <stdbool.h>
#include <stdint.h>
#include "event.h"

#include "config.h"
#include "ipc.h"
#include "qfile.h"
#include "queue.h"
#include "queue_id.h"
#include "resolve.h"
#include "service.h"

/* Queue files looked at in one scan of incoming/ (the rest waits for the next pass). */
#define QMGR_SCAN_MAX 10000
/* Client connections (cleanup notifications, flush requests, master wakeups) at once. */
#define QMGR_CLIENTS_MAX 256
/* A client that sends nothing for this long is dropped. */
#define QMGR_CLIENT_TIMEOUT_USEC (30 * USEC_PER_SEC)
/* Transports (master.cf services) the scheduler keeps track of. */
#define QMGR_TRANSPORTS_MAX 256
/* Deliveries in flight per transport, whatever the destinations (each is a connection of qmgr's). */
#define QMGR_TRANSPORT_BUSY_MAX 256
/* Destinations (transport + next hop) a transport keeps track of; mail for more is deferred. */
#define QMGR_DESTS_MAX 100000
/* Due deferred mail takes at most 1/QMGR_DEFERRED_SHARE of the active queue: the rest is new mail's. */
#define QMGR_DEFERRED_SHARE 2
/* Due deferred messages activated in one turn of the event loop. */
#define QMGR_DUE_BATCH 64
/* ...and for at most this long (mail for a dead destination costs its defer-log fsyncs). */
#define QMGR_DUE_SLICE_USEC 3000
/* A destination's error text kept for "delivery temporarily suspended: ...". */
#define QMGR_DEAD_REASON_MAX 1024
/* After a delivery agent's backlog was full (EAGAIN), try it again after this long. */
#define QMGR_BUSY_RETRY_USEC (200 * 1000)
/* How long qmgr waits for the bounce service's answer (it covers cleanup's durable commit). */
#define QMGR_NOTIFY_TIMEOUT_USEC (300ULL * 1000000)
/* Full rescan of deferred/ (files put there by other tools) every this many queue runs. */
#define QMGR_DEFERRED_RESCAN_RUNS 150

/* What qmgr knows about one recipient while its message is active. */
enum qmgr_rcpt_state {
        QR_DONE_BEFORE, /* already done in the file when activated */
        QR_WAITING,     /* in a job that has not been sent */
        QR_BUSY,        /* sent to a delivery agent, no answer yet */
        QR_SENT,
        QR_BOUNCED,
        QR_DEFERRED,
};

struct qmgr;
struct transport;

struct qmsg {
        struct qmgr *q;
        char id[QUEUE_ID_BUF_SIZE];
        struct qfile_msg env; /* envelope only: content is dropped after decoding */
        uint8_t *rstate;      /* enum qmgr_rcpt_state per recipient */
        uint64_t active_usec;
        unsigned jobs_left;
        bool from_deferred;
        bool notified; /* the bounce service was asked during this activation */
};

struct dest;

struct job {
        struct job *next; /* in the destination's waiting list */
        struct qmsg *msg;
        struct transport *t;
        struct dest *d; /* set when enqueued */
        char *nexthop;
        size_t *idx; /* recipient positions */
        size_t n;
        int fd;
        struct ipc_conn conn;
        bool conn_init;
        bool counted; /* in the busy counts of t and d */
        /* The agent's verdict on the destination: did the site answer, or could it not be reached? */
        bool site_answered;
        unsigned conn_failed;
        char *fail_dsn, *fail_reason;
        struct event_source *io, *timeout;
};

/*
 * One destination: a transport's mail for one next hop (for one recipient when the transport's recipient
 * limit is 1, as in Postfix). Its own FIFO and concurrency limit; the transport serves its destinations
 * round-robin. After connection-level failures it is "dead" for minimal_backoff_time: its mail is
 * deferred at once, without a delivery attempt; then one delivery probes it.
 */
struct dest {
        struct dest *hnext;             /* in the transport's hash chain */
        struct dest *rr_next, *rr_prev; /* in the transport's ring of destinations that can start a job */
        struct transport *t;
        char *key;
        struct job *head, *tail;
        size_t n_waiting;
        unsigned busy;
        unsigned fail_streak; /* deliveries in a row that failed at the connection level */
        bool in_ring;
        bool dead;
        bool probing; /* revived: one delivery at a time until one gets an answer from the site */
        char *dead_dsn, *dead_reason;
        struct event_source *revive;
};

struct transport {
        struct transport *next;
        struct qmgr *q;
        char *name;
        unsigned limit;           /* deliveries in flight at once per destination */
        unsigned recipient_limit; /* recipients per delivery request */
        unsigned cohort_limit;    /* failed deliveries in a row that make a destination dead */
        unsigned busy;            /* deliveries in flight, all destinations */
        bool kicking;             /* jobs that fail at once finish inside the kick loop: no recursion */
        struct dest **buckets;
        size_t n_buckets, n_dests;
        struct dest *ring; /* next destination to serve */
        struct event_source *retry;
};

struct qmgr {
        struct service *svc;
        struct config *cfg;
        struct event_loop *event;
        struct queue *queue;
        struct resolve *resolve;
        char *queue_dir;

        long long active_limit;
        uint64_t run_delay_usec, min_backoff_usec, max_backoff_usec, max_lifetime_usec, agent_timeout_usec;
        uint64_t bounce_lifetime_usec; /* bounce_queue_lifetime: for mail from the null sender */
        uint64_t delay_warning_usec;   /* delay_warning_time; 0: never warn */
        unsigned n_active;
        unsigned n_active_deferred; /* of n_active: activated from deferred/ */

        struct schedule deferred; /* deferred mail by next attempt (schedule.c) */

        struct transport *transports;
        unsigned n_transports;

        struct event_source *timer;
        uint64_t next_scan_usec; /* CLOCK_MONOTONIC */
        unsigned runs;
        bool blocked; /* the active queue was full: scan again once it drained a quarter */
        bool stopping;

        int own_fd; /* the socket qmgr creates itself (the one master.cf did not give it) */
        char *own_path;
        struct event_source *own_src;
        unsigned n_clients;
};

/* scan.c: the queues on disk and the schedule of deferred mail. */
void qmgr_scan_incoming(struct qmgr *q);
void qmgr_scan_deferred(struct qmgr *q, bool all_due);
void qmgr_requeue_active(struct qmgr *q);
/* Deferred message id is due at when_usec (wall clock). */
void qmgr_schedule(struct qmgr *q, uint64_t when_usec, const char *id);
void qmgr_run_due(struct qmgr *q);
/* postqueue -i / -s: make deferred mail due now: message id, or every message with a pending recipient
 * in domain site (case-insensitive). Returns how many messages that was. */
size_t qmgr_flush_some(struct qmgr *q, const char *id, const char *site);
void qmgr_rearm(struct qmgr *q);
/* Run the queue as soon as the loop is idle (a wakeup, a freed active slot). */
void qmgr_run_soon(struct qmgr *q);

/* message.c: activation, grouping into jobs, completion. */
/* 1 activated, 0 nothing to do (already taken, not there), -EBUSY when the active queue is full. */
int qmgr_activate(struct qmgr *q, const char *id, enum queue_name from);
void qmgr_message_job_done(struct qmsg *m);

/* notify.c: the bounce service (mail_proto.h part 4). done(m, ok) runs once, ok only after its status 0. */
typedef void (*qmgr_notice_fn)(struct qmsg *m, bool ok);
void qmgr_notify(struct qmsg *m, const char *what, uint64_t retry_until_usec, qmgr_notice_fn done);

/* deliver.c: transports and the delivery agent protocol. */
struct transport *qmgr_transport(struct qmgr *q, const char *name);
void qmgr_transport_enqueue(struct transport *t, struct job *j);
void qmgr_transport_kick(struct transport *t);
void qmgr_transports_free(struct qmgr *q);
void qmgr_job_free(struct job *j);
/* A deferral whose dsn says the destination could not be reached (connect, lost connection, DNS). */
bool qmgr_dsn_is_connection_failure(const char *dsn);
/* How many due deferred messages may be active at once (at least one). */
unsigned qmgr_deferred_active_max(const struct qmgr *q);
