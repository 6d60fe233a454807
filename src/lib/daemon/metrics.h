/* metrics.h: an instance's counters in one shared memory file: roles add to them, `postfix metrics` and
 * the metrics service read them (OpenMetrics text), no log scraping. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define METRICS_FILE           "metrics"             /* in data_directory */
#define METRICS_MAGIC          0x31746d6474736f70ULL /* "postdmt1": layout version 1 */
#define METRICS_TRANSPORTS_MAX 64
#define METRICS_NAME_MAX       32
/* Delivery delay histogram bounds, seconds (the last bucket is +Inf). */
#define METRICS_DELAY_BOUNDS                                    \
        {                                                       \
                0.01, 0.1, 0.5, 1, 5, 30, 120, 600, 3600, 86400 \
        }
#define METRICS_DELAY_BUCKETS 10

/* Scalar counters (and the two halves of the sessions gauge). */
enum metrics_counter {
        METRIC_SMTPD_CONNECTIONS, /* connections accepted by smtpd */
        METRIC_SMTPD_DISCONNECTS, /* ... and ended: open sessions = connections - disconnects */
        METRIC_SMTPD_TLS,         /* TLS handshakes completed (STARTTLS or wrapper mode) */
        METRIC_SMTPD_AUTH_OK,     /* AUTH succeeded */
        METRIC_SMTPD_AUTH_FAILED, /* AUTH failed (wrong credentials) */
        METRIC_SMTPD_REJECTS,     /* 4xx/5xx answers to MAIL, RCPT or DATA */
        METRIC_RECEIVED_SMTPD,    /* messages queued by cleanup, by origin */
        METRIC_RECEIVED_PICKUP,
        METRIC_RECEIVED_BOUNCE,
        METRIC_RECEIVED_FORWARD, /* local's forwarding of aliases and .forward */
        METRIC_RECEIVED_OTHER,
        _METRIC_COUNTER_MAX,
};

enum metrics_status { METRICS_SENT, METRICS_DEFERRED, METRICS_BOUNCED, _METRICS_STATUS_MAX };

struct metrics_transport {
        _Atomic uint32_t state; /* 0 free, 1 being named, 2 ready */
        char name[METRICS_NAME_MAX];
        _Atomic uint64_t status[_METRICS_STATUS_MAX];
        /* Delay from arrival to "sent": cumulative buckets are computed when rendered. */
        _Atomic uint64_t delay_bucket[METRICS_DELAY_BUCKETS + 1];
        _Atomic uint64_t delay_sum_usec;
};

struct metrics_shm {
        uint64_t magic;
        uint64_t created_usec; /* when the master (re)created the file: counters start there */
        _Atomic uint64_t counter[_METRIC_COUNTER_MAX];
        struct metrics_transport transport[METRICS_TRANSPORTS_MAX];
};

/* The master: create (or reset) data_directory/metrics, mode 0600; the descriptor its children inherit. */
int metrics_create(const char *data_dir, int *ret_fd);
/* A role: map the master's file (POSTD_METRICS_FD); without it every update below does nothing. */
int metrics_attach(int fd);
/* Map a file read-only (postfix metrics): 0 with *ret (unmap with metrics_unmap), -errno, -EBADMSG. */
int metrics_map(const char *path, const struct metrics_shm **ret);
void metrics_unmap(const struct metrics_shm *m);

/* This process's mapping after metrics_attach(), or NULL. */
const struct metrics_shm *metrics_attached(void);

void metrics_count(enum metrics_counter c);
/* One recipient's outcome through a transport (master.cf service name); delay_usec for sent ones. */
void metrics_delivery(const char *transport, enum metrics_status status, uint64_t delay_usec);
/* The transport delivery_log() counts under in this process (a delivery agent's service name). */
void metrics_set_transport(const char *name);
const char *metrics_transport(void);
/* The counter for cleanup's origin attribute ("smtpd", "pickup", "bounce", "local"...). */
enum metrics_counter metrics_origin_counter(const char *origin);

/* Messages in each queue directory, counted when rendered. */
struct metrics_queues {
        long long incoming, active, deferred, hold, maildrop; /* -1: not counted */
};

/* OpenMetrics text of m (may be NULL: queues only) with label instance="NAME"; ends with "# EOF". Pure. */
void metrics_render(const struct metrics_shm *m, const char *instance, const struct metrics_queues *q,
                    struct buf *out);
