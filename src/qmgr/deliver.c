/* deliver.c: transports, their concurrency limits, and requests to delivery agents (mail_proto.h part 3). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "alloc.h"
#include "delivery.h"
#include "delivery_request.h"
#include "dsnlog.h"
#include "log.h"
#include "mail_proto.h"
#include "metrics.h"
#include "netaddr.h"
#include "qmgr.h"

static unsigned transport_param(struct qmgr *q, const char *name, const char *suffix, const char *fallback)
{
        _cleanup_free_ char *p = xasprintf("%s_%s", name, suffix);
        long long v = config_get(q->cfg, p) ? config_get_int(q->cfg, p) : config_get_int(q->cfg, fallback);
        return v <= 0 ? 1 : v > 100000 ? 100000 : (unsigned)v;
}

/* Recipients per request: more than an agent takes in one are simply more requests. */
static unsigned request_rcpt_limit(struct transport *t)
{
        unsigned v = transport_param(t->q, t->name, "destination_recipient_limit",
                                     "default_destination_recipient_limit");
        return v > DELIVERY_REQUEST_RCPTS_MAX ? DELIVERY_REQUEST_RCPTS_MAX : v;
}

struct transport *qmgr_transport(struct qmgr *q, const char *name)
{
        for (struct transport *t = q->transports; t; t = t->next)
                if (streq(t->name, name))
                        return t;
        if (q->n_transports >= QMGR_TRANSPORTS_MAX)
                return NULL;
        struct transport *t = xcalloc(1, sizeof *t);
        t->q = q;
        t->name = xstrdup(name);
        t->limit = transport_param(q, name, "destination_concurrency_limit",
                                   "default_destination_concurrency_limit");
        t->recipient_limit = request_rcpt_limit(t);
        t->cohort_limit = transport_param(q, name, "destination_concurrency_failed_cohort_limit",
                                          "default_destination_concurrency_failed_cohort_limit");
        t->n_buckets = 64;
        t->buckets = xcalloc(t->n_buckets, sizeof *t->buckets);
        t->next = q->transports;
        q->transports = t;
        q->n_transports++;
        return t;
}

bool qmgr_dsn_is_connection_failure(const char *dsn)
{
        /* RFC 3463 4.4.1 no answer from host, 4.4.2 bad connection, 4.4.3 directory (DNS) failure,
         * 4.4.4 unable to route: the site was not reached, as opposed to a site that answered 4xx. */
        return dsn &&
               (streq(dsn, "4.4.1") || streq(dsn, "4.4.2") || streq(dsn, "4.4.3") || streq(dsn, "4.4.4"));
}

/* ---- destinations: a hash table per transport, a ring of those that can start a delivery ---- */

static size_t hash_key(const char *s)
{
        size_t h = 5381;
        for (; *s; s++)
                h = h * 33 + (unsigned char)*s;
        return h;
}

static void dest_grow(struct transport *t)
{
        size_t n = t->n_buckets * 2;
        struct dest **b = xcalloc(n, sizeof *b);
        for (size_t i = 0; i < t->n_buckets; i++)
                while (t->buckets[i]) {
                        struct dest *d = t->buckets[i];
                        t->buckets[i] = d->hnext;
                        size_t k = hash_key(d->key) & (n - 1);
                        d->hnext = b[k];
                        b[k] = d;
                }
        free(t->buckets);
        t->buckets = b;
        t->n_buckets = n;
}

static struct dest *dest_get(struct transport *t, const char *key)
{
        size_t k = hash_key(key) & (t->n_buckets - 1);
        for (struct dest *d = t->buckets[k]; d; d = d->hnext)
                if (streq(d->key, key))
                        return d;
        if (t->n_dests >= QMGR_DESTS_MAX)
                return NULL;
        if (t->n_dests >= 2 * t->n_buckets) {
                dest_grow(t);
                k = hash_key(key) & (t->n_buckets - 1);
        }
        struct dest *d = xcalloc(1, sizeof *d);
        d->t = t;
        d->key = xstrdup(key);
        d->hnext = t->buckets[k];
        t->buckets[k] = d;
        t->n_dests++;
        return d;
}

static void dest_free(struct dest *d)
{
        event_source_disable_unref(d->revive);
        free(d->dead_dsn);
        free(d->dead_reason);
        free(d->key);
        free(d);
}

/* A destination nobody waits for and with nothing to remember is dropped: the table stays small. */
static void dest_maybe_forget(struct dest *d)
{
        struct transport *t = d->t;
        if (d->head || d->busy || d->dead || d->probing || d->fail_streak || d->in_ring)
                return;
        struct dest **pp = &t->buckets[hash_key(d->key) & (t->n_buckets - 1)];
        while (*pp && *pp != d)
                pp = &(*pp)->hnext;
        if (*pp)
                *pp = d->hnext;
        t->n_dests--;
        dest_free(d);
}

static unsigned dest_limit(const struct dest *d)
{
        return d->probing ? 1 : d->t->limit;
}

/* The ring holds the destinations with waiting mail and room for another delivery. */
static void dest_update_ring(struct dest *d)
{
        struct transport *t = d->t;
        bool want = d->head && !d->dead && d->busy < dest_limit(d);
        if (want == d->in_ring)
                return;
        if (want) {
                if (t->ring) {
                        /* Behind the one served next: a newcomer waits one round, like everybody. */
                        d->rr_next = t->ring;
                        d->rr_prev = t->ring->rr_prev;
                        d->rr_prev->rr_next = d;
                        t->ring->rr_prev = d;
                } else {
                        d->rr_next = d->rr_prev = d;
                        t->ring = d;
                }
        } else {
                if (d->rr_next == d)
                        t->ring = NULL;
                else {
                        d->rr_prev->rr_next = d->rr_next;
                        d->rr_next->rr_prev = d->rr_prev;
                        if (t->ring == d)
                                t->ring = d->rr_next;
                }
                d->rr_next = d->rr_prev = NULL;
        }
        d->in_ring = want;
}

static void job_defer(struct job *j, const char *dsn, const char *reason);

/* Dead: what waits for it is deferred now with the last error, as Postfix's "delivery temporarily
 * suspended". Jobs in flight finish on their own. */
static void dest_defer_waiting(struct dest *d)
{
        while (d->head) {
                struct job *j = d->head;
                d->head = j->next;
                if (!d->head)
                        d->tail = NULL;
                d->n_waiting--;
                job_defer(j, d->dead_dsn, d->dead_reason);
        }
        dest_update_ring(d);
}

static int on_revive(struct event_source *src, uint64_t usec, void *userdata)
{
        struct dest *d = userdata;
        d->revive = event_source_disable_unref(d->revive);
        d->dead = false;
        d->probing = true;
        d->fail_streak = 0;
        msg_info("destination %s of transport %s: delivery resumed", d->key, d->t->name);
        struct transport *t = d->t;
        dest_update_ring(d);
        dest_maybe_forget(d);
        qmgr_run_soon(t->q); /* its deferred mail may be due; new mail waits in the ring */
        qmgr_transport_kick(t);
        return 0;
}

static void dest_mark_dead(struct dest *d, const char *dsn, const char *reason)
{
        struct qmgr *q = d->t->q;
        static const char prefix[] = "delivery temporarily suspended: ";
        d->dead = true;
        d->probing = false;
        free(d->dead_dsn);
        free(d->dead_reason);
        d->dead_dsn = xstrdup(dsn);
        const char *why = isempty(reason) ? "destination not reachable" : reason;
        if (strncmp(why, prefix, sizeof prefix - 1) == 0)
                why += sizeof prefix - 1;
        d->dead_reason = xasprintf("%s%.*s", prefix, QMGR_DEAD_REASON_MAX, why);
        uint64_t wait = q->min_backoff_usec ? q->min_backoff_usec : 1000000;
        int r = event_add_time_relative(q->event, &d->revive, wait, on_revive, d);
        if (r < 0) {
                /* No timer, no suspension: better to try it again than to keep its mail forever. */
                msg_warn("destination %s: revival timer: %s", d->key, strerror(-r));
                d->dead = false;
                return;
        }
        msg_info("destination %s of transport %s: %s", d->key, d->t->name, d->dead_reason);
        dest_defer_waiting(d);
}

/* What one delivery said about its destination. */
static void dest_verdict(struct dest *d, bool site_answered, unsigned conn_failed, const char *dsn,
                         const char *reason)
{
        if (site_answered) {
                d->fail_streak = 0;
                d->probing = false;
        } else if (conn_failed > 0 && !d->dead) {
                d->fail_streak++;
                if (d->fail_streak >= d->t->cohort_limit || d->probing)
                        dest_mark_dead(d, dsn, reason);
        }
}

void qmgr_transport_enqueue(struct transport *t, struct job *j)
{
        /* Recipient limit 1: each recipient is a destination of its own (Postfix's per-user concurrency). */
        _cleanup_free_ char *key =
                t->recipient_limit == 1 && j->n == 1
                        ? xasprintf("%s %s", j->nexthop, j->msg->env.rcpts[j->idx[0]].address)
                        : xstrdup(j->nexthop);
        struct dest *d = dest_get(t, key);
        if (!d) {
                job_defer(j, "4.3.0", "too many destinations in use");
                return;
        }
        j->d = d;
        if (d->dead) {
                job_defer(j, d->dead_dsn, d->dead_reason);
                return;
        }
        j->next = NULL;
        if (d->tail)
                d->tail->next = j;
        else
                d->head = j;
        d->tail = j;
        d->n_waiting++;
        dest_update_ring(d);
}

void qmgr_job_free(struct job *j)
{
        event_source_disable_unref(j->io);
        event_source_disable_unref(j->timeout);
        if (j->conn_init)
                ipc_conn_done(&j->conn);
        if (j->fd >= 0)
                close(j->fd);
        free(j->fail_dsn);
        free(j->fail_reason);
        free(j->nexthop);
        free(j->idx);
        free(j);
}

static void defer_rcpts(struct job *j, const char *dsn, const char *reason)
{
        struct qmsg *m = j->msg;
        /* Counted under the job's transport, not qmgr's own name. */
        metrics_set_transport(j->t->name);
        for (size_t k = 0; k < j->n; k++) {
                size_t i = j->idx[k];
                if (m->rstate[i] != QR_BUSY && m->rstate[i] != QR_WAITING)
                        continue;
                struct delivery_times tm = {.arrival_usec = m->env.arrival_usec,
                                            .active_usec = m->active_usec,
                                            .done_usec = qmgr_now_usec()};
                delivery_log(m->id, m->env.rcpts[i].address, m->env.rcpts[i].orig_rcpt, "none", &tm, dsn,
                             "deferred", reason);
                /* The reason postqueue shows, and what an expiry bounce reports. */
                dsnlog_append_rcpt(m->q->queue, QUEUE_DEFER, m->id, i, &m->env.rcpts[i], dsn, "none",
                                   reason);
                m->rstate[i] = QR_DEFERRED;
        }
        metrics_set_transport("qmgr");
}

/*
 * The agent ended without answering for some recipients: it may have recorded their outcome in the queue
 * file and died before it logged and reported it. Log those as the file says, so a delivered recipient is
 * never logged as deferred and never left without its "status=sent" line.
 */
static void settle_recorded(struct job *j)
{
        struct qmsg *m = j->msg;
        _cleanup_close_ int fd = -1;
        if (queue_open_file(m->q->queue, m->id, QUEUE_ACTIVE, O_RDONLY, &fd) < 0)
                return;
        metrics_set_transport(j->t->name);
        for (size_t k = 0; k < j->n; k++) {
                size_t i = j->idx[k];
                struct qfile_rcpt *rc = &m->env.rcpts[i];
                if (m->rstate[i] != QR_BUSY || queue_read_rcpt_state(fd, rc) < 0 ||
                    qfile_rcpt_state_pending(rc->state))
                        continue;
                bool sent = rc->state == QFILE_RCPT_DELIVERED;
                struct delivery_times tm = {.arrival_usec = m->env.arrival_usec,
                                            .active_usec = m->active_usec,
                                            .done_usec = qmgr_now_usec()};
                delivery_log(m->id, rc->address, rc->orig_rcpt, "none", &tm,
                             rc->dsn_status[0] ? rc->dsn_status
                             : sent            ? "2.0.0"
                                               : "5.0.0",
                             sent ? "sent" : "bounced",
                             "recorded by the delivery agent, which ended before it reported");
                m->rstate[i] = sent ? QR_SENT : QR_BOUNCED;
        }
        metrics_set_transport("qmgr");
}

/* A job that never started: its recipients are deferred with reason, no kick (the caller kicks). */
static void job_defer(struct job *j, const char *dsn, const char *reason)
{
        struct qmsg *m = j->msg;
        defer_rcpts(j, dsn, reason);
        qmgr_job_free(j);
        qmgr_message_job_done(m);
}

/* The job is over: recipients without an answer are deferred with reason (NULL: all answered). */
static void job_finish(struct job *j, const char *reason)
{
        struct qmsg *m = j->msg;
        struct transport *t = j->t;
        struct dest *d = j->d;
        if (reason) {
                settle_recorded(j);
                defer_rcpts(j, "4.3.0", reason);
        }
        if (j->counted) {
                t->busy--;
                d->busy--;
        }
        /* An agent that failed says nothing about the destination; an answer does. */
        bool answered = j->site_answered;
        unsigned conn_failed = reason ? 0 : j->conn_failed;
        _cleanup_free_ char *dsn = TAKE_PTR(j->fail_dsn), *why = TAKE_PTR(j->fail_reason);
        qmgr_job_free(j);
        qmgr_message_job_done(m);
        dest_verdict(d, answered, conn_failed, dsn ? dsn : "4.4.1", why);
        dest_update_ring(d);
        dest_maybe_forget(d);
        qmgr_transport_kick(t);
}

static void apply_reply(struct job *j, const struct ipc_msg *reply)
{
        struct qmsg *m = j->msg;
        for (size_t a = 0; a < reply->n_attrs; a++) {
                if (!streq(reply->attrs[a].name, "rcpt_index"))
                        continue;
                char *end = NULL;
                unsigned long long idx = strtoull(reply->attrs[a].value, &end, 10);
                if (!end || *end || idx >= m->env.n_rcpts || m->rstate[idx] != QR_BUSY)
                        continue;
                /* The group's other members follow until the next rcpt_index. */
                const char *status = NULL, *dsn = NULL, *reason = NULL;
                for (size_t b = a + 1; b < reply->n_attrs && !streq(reply->attrs[b].name, "rcpt_index");
                     b++) {
                        if (streq(reply->attrs[b].name, "status"))
                                status = reply->attrs[b].value;
                        else if (streq(reply->attrs[b].name, "dsn"))
                                dsn = reply->attrs[b].value;
                        else if (streq(reply->attrs[b].name, "reason"))
                                reason = reply->attrs[b].value;
                }
                bool mine = false;
                for (size_t k = 0; k < j->n && !mine; k++)
                        mine = j->idx[k] == idx;
                if (!mine)
                        continue;
                /* The agent logged the recipient and marked sent/bounced ones in the file. */
                if (status && streq(status, "sent"))
                        m->rstate[idx] = QR_SENT;
                else if (status && streq(status, "bounced"))
                        m->rstate[idx] = QR_BOUNCED;
                else
                        m->rstate[idx] = QR_DEFERRED;
                if (m->rstate[idx] == QR_DEFERRED && qmgr_dsn_is_connection_failure(dsn)) {
                        if (j->conn_failed++ == 0) {
                                j->fail_dsn = xstrdup(dsn);
                                j->fail_reason = xstrdup(reason ? reason : "");
                        }
                } else
                        j->site_answered = true;
        }
}

static bool job_all_answered(const struct job *j)
{
        for (size_t k = 0; k < j->n; k++)
                if (j->msg->rstate[j->idx[k]] == QR_BUSY)
                        return false;
        return true;
}

static int on_job_io(struct event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct job *j = userdata;
        if (ipc_conn_want_write(&j->conn)) {
                int r = ipc_conn_flush(&j->conn);
                if (r < 0 && r != -EAGAIN) {
                        job_finish(j, "delivery agent closed the connection");
                        return 0;
                }
                if (!ipc_conn_want_write(&j->conn))
                        event_source_set_io_events(j->io, EPOLLIN);
        }
        if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                return 0;
        int r = ipc_conn_read(&j->conn);
        for (int i = 0; r >= 0 && i < 64; i++) {
                struct ipc_msg reply = IPC_MSG_INIT;
                int got = ipc_conn_next(&j->conn, &reply);
                if (got < 0) {
                        r = got;
                        break;
                }
                if (got == 0)
                        break;
                apply_reply(j, &reply);
                ipc_msg_done(&reply);
                if (job_all_answered(j)) {
                        job_finish(j, NULL);
                        return 0;
                }
        }
        if (r < 0)
                job_finish(j, "unknown mail transport error");
        else if (j->conn.eof)
                job_finish(j, "unknown mail transport error");
        return 0;
}

static int on_job_timeout(struct event_source *src, uint64_t usec, void *userdata)
{
        struct job *j = userdata;
        msg_warn("%s: delivery agent %s did not answer in time", j->msg->id, j->t->name);
        job_finish(j, "delivery agent timed out");
        return 0;
}

/* 0 started, -EAGAIN the agent's backlog is full (try later), other <0: the job was finished. */
static int job_start(struct job *j)
{
        struct qmgr *q = j->t->q;
        struct qmsg *m = j->msg;
        struct sockaddr_un sa;
        socklen_t sa_len;
        _cleanup_free_ char *rel = xasprintf("private/%s", j->t->name);
        _cleanup_free_ char *path = xasprintf("%s/%s", q->queue_dir, rel);
        if (unix_address(path, &sa, &sa_len) < 0) {
                msg_warn("socket path too long: %s", path);
                job_finish(j, "mail transport unavailable");
                return -ENAMETOOLONG;
        }
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                msg_warn("socket: %s", strerror(errno));
                job_finish(j, "mail transport unavailable");
                return -errno;
        }
        if (connect(fd, (struct sockaddr *)&sa, sa_len) < 0 && errno != EINPROGRESS) {
                int e = errno;
                close(fd);
                if (e == EAGAIN)
                        return -EAGAIN;
                msg_warn("connect to transport %s: %s (is there a \"%s\" service in master.cf?)", rel,
                         strerror(e), j->t->name);
                job_finish(j, "mail transport unavailable");
                return -e;
        }
        j->fd = fd;
        ipc_conn_init(&j->conn, fd);
        j->conn_init = true;

        struct ipc_msg req = IPC_MSG_INIT;
        const struct ipc_kv kv[] = {{"req", "deliver", 7},
                                    {"queue_id", m->id, strlen(m->id)},
                                    {"queue", "active", 6},
                                    {"nexthop", j->nexthop, strlen(j->nexthop)},
                                    {"transport", j->t->name, strlen(j->t->name)}};
        _Static_assert(ELEMENTSOF(kv) + 2 <= DELIVERY_REQUEST_FIXED_ATTRS_MAX, "fixed request attributes");
        /* Whole or not at all: a request missing recipients would leave them busy until the agent ends. */
        int r = ipc_msg_add_group(&req, kv, ELEMENTSOF(kv));
        if (r >= 0)
                r = ipc_msg_add_int(&req, "arrival_usec", (long long)m->env.arrival_usec);
        if (r >= 0)
                r = ipc_msg_add_int(&req, "active_usec", (long long)m->active_usec);
        for (size_t k = 0; r >= 0 && k < j->n; k++)
                r = ipc_msg_add_int(&req, "rcpt_index", (long long)j->idx[k]);
        if (r >= 0)
                r = ipc_conn_queue(&j->conn, &req);
        ipc_msg_done(&req);
        if (r < 0) {
                msg_warn("%s: delivery request too large for %s: %s", m->id, j->t->name, strerror(-r));
                job_finish(j, "delivery request too large");
                return r;
        }
        for (size_t k = 0; k < j->n; k++)
                m->rstate[j->idx[k]] = QR_BUSY;
        r = event_add_io(q->event, &j->io, fd, EPOLLIN | EPOLLOUT, on_job_io, j);
        if (r >= 0)
                r = event_add_time_relative(q->event, &j->timeout, q->agent_timeout_usec, on_job_timeout, j);
        if (r < 0) {
                msg_warn("watch delivery connection: %s", strerror(-r));
                job_finish(j, "unknown mail transport error");
                return r;
        }
        return 0;
}

static int on_retry(struct event_source *src, uint64_t usec, void *userdata)
{
        struct transport *t = userdata;
        t->retry = event_source_disable_unref(t->retry);
        qmgr_transport_kick(t);
        return 0;
}

void qmgr_transport_kick(struct transport *t)
{
        if (t->kicking)
                return;
        t->kicking = true;
        /* Bounded: each pass takes one waiting job, which either starts or is finished, or the loop stops.
         */
        while (t->ring && t->busy < QMGR_TRANSPORT_BUSY_MAX && !t->retry && !t->q->stopping) {
                struct dest *d = t->ring;
                struct job *j = d->head;
                d->head = j->next;
                if (!d->head)
                        d->tail = NULL;
                d->n_waiting--;
                j->next = NULL;
                t->ring = d->rr_next; /* round-robin: the next destination goes next */
                j->counted = true;
                t->busy++;
                d->busy++;
                dest_update_ring(d);
                if (job_start(j) == -EAGAIN) {
                        j->counted = false;
                        t->busy--;
                        d->busy--;
                        j->next = d->head;
                        d->head = j;
                        if (!d->tail)
                                d->tail = j;
                        d->n_waiting++;
                        dest_update_ring(d);
                        t->ring = d;
                        event_add_time_relative(t->q->event, &t->retry, QMGR_BUSY_RETRY_USEC, on_retry, t);
                        break;
                }
        }
        t->kicking = false;
}

void qmgr_transports_free(struct qmgr *q)
{
        while (q->transports) {
                struct transport *t = q->transports;
                q->transports = t->next;
                event_source_disable_unref(t->retry);
                for (size_t i = 0; i < t->n_buckets; i++)
                        while (t->buckets[i]) {
                                struct dest *d = t->buckets[i];
                                t->buckets[i] = d->hnext;
                                dest_free(d);
                        }
                free(t->buckets);
                free(t->name);
                free(t);
        }
}
