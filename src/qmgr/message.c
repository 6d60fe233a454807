/* message.c: one active message: activation, recipients grouped into delivery jobs, defer or removal. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "delivery.h"
#include "dsnlog.h"
#include "log.h"
#include "qmgr.h"

static void log_deferred(struct qmsg *m, size_t i, const char *dsn, const char *reason)
{
        struct delivery_times t = {.arrival_usec = m->env.arrival_usec,
                                   .active_usec = m->active_usec,
                                   .done_usec = qmgr_now_usec()};
        struct qfile_rcpt *r = &m->env.rcpts[i];
        delivery_log(m->id, r->address, r->orig_rcpt, "none", &t, dsn, "deferred", reason);
        dsnlog_append_rcpt(m->q->queue, QUEUE_DEFER, m->id, i, r, dsn, "none",
                           reason); /* postqueue's reason */
        m->rstate[i] = QR_DEFERRED;
}

/* Postfix's backoff: the retry interval doubles with each attempt, derived from the message's age. */
static uint64_t backoff_usec(struct qmgr *q, uint64_t age_usec)
{
        uint64_t b = q->min_backoff_usec ? q->min_backoff_usec : 1000000;
        while (b * 2 <= age_usec && b * 2 <= q->max_backoff_usec)
                b *= 2;
        return b > q->max_backoff_usec && q->max_backoff_usec > 0 ? q->max_backoff_usec : b;
}

static void message_free(struct qmsg *m)
{
        struct qmgr *q = m->q;
        qfile_msg_done(&m->env);
        free(m->rstate);
        if (m->from_deferred)
                q->n_active_deferred--;
        free(m);
        q->n_active--;
        /* Room again after the active queue was full: take more, but not one scan per message. */
        if (q->blocked && q->n_active <= q->active_limit - q->active_limit / 4) {
                q->blocked = false;
                qmgr_run_soon(q);
        } else
                qmgr_rearm(q);
}

static void defer_message(struct qmsg *m)
{
        struct qmgr *q = m->q;
        uint64_t now = qmgr_now_usec();
        uint64_t age = now > m->env.arrival_usec ? now - m->env.arrival_usec : 0;
        uint64_t next = now + backoff_usec(q, age);

        /* The retry time is the file's mtime, as in Postfix: it survives a restart of qmgr. */
        _cleanup_close_ int fd = -1;
        int r = queue_open_file(q->queue, m->id, QUEUE_ACTIVE, O_RDONLY, &fd);
        if (r >= 0) {
                struct timespec ts[2] = {
                        {.tv_sec = (time_t)(now / 1000000), .tv_nsec = 0},
                        {.tv_sec = (time_t)(next / 1000000), .tv_nsec = (long)(next % 1000000) * 1000}};
                if (futimens(fd, ts) < 0)
                        msg_warn("%s: set retry time: %s", m->id, strerror(errno));
        }
        r = queue_move(q->queue, m->id, QUEUE_ACTIVE, QUEUE_DEFERRED, 0);
        if (r < 0) {
                /* It stays in active/; the next start of qmgr requeues it. */
                msg_warn("%s: move from active to deferred: %s", m->id, strerror(-r));
                return;
        }
        qmgr_schedule(q, next, m->id);
}

static size_t count_deferred(const struct qmsg *m)
{
        size_t deferred = 0;
        for (size_t i = 0; i < m->env.n_rcpts; i++)
                if (m->rstate[i] == QR_DEFERRED || m->rstate[i] == QR_WAITING || m->rstate[i] == QR_BUSY)
                        deferred++;
        return deferred;
}

/* Returned now, or in an earlier activation whose notification is still owed (bounce/QID is kept until
 * the bounce service confirmed it). */
static bool has_returned(const struct qmsg *m)
{
        for (size_t i = 0; i < m->env.n_rcpts; i++)
                if (m->rstate[i] == QR_BOUNCED ||
                    (m->rstate[i] == QR_DONE_BEFORE && m->env.rcpts[i].state == QFILE_RCPT_BOUNCED))
                        return true;
        return false;
}

static void finish_done(struct qmsg *m, bool keep)
{
        if (keep || count_deferred(m) > 0)
                defer_message(m);
        else {
                int r = queue_remove(m->q->queue, m->id, QUEUE_ACTIVE, 0);
                if (r < 0 && r != -ENOENT)
                        msg_warn("%s: remove from active: %s", m->id, strerror(-r));
                else {
                        /* Only a message that was deferred or returned can have per-message logs. */
                        if (m->from_deferred || m->notified)
                                dsnlog_remove(m->q->queue, m->id);
                        msg_fields(LOG_LEVEL_INFO, &(struct log_fields){.queue_id = m->id}, "%s: removed",
                                   m->id);
                }
        }
        message_free(m);
}

static void after_notice(struct qmsg *m, bool ok)
{
        if (ok) {
                int r = dsnlog_remove_one(m->q->queue, QUEUE_BOUNCE, m->id, QUEUE_SYNC);
                if (r < 0)
                        msg_warn("%s: remove bounce/%s: %s", m->id, m->id, strerror(-r));
        }
        /* Not confirmed: keep the message (and bounce/QID) so that the notification is asked for again. */
        finish_done(m, !ok);
}

/* The durable "delay warning sent" marker: one record in trace/QID (docs/QUEUE_FORMAT.md). */
#define WARNED_ACTION "delayed"
#define WARNED_REASON "delay warning sent"

static bool warning_sent(const struct qmsg *m)
{
        struct dsnlog l = {0};
        if (dsnlog_read(m->q->queue, QUEUE_TRACE, m->id, &l) < 0)
                return false;
        bool found = false;
        for (size_t i = 0; i < l.n && !found; i++)
                found = l.recs[i].index == DSNLOG_NO_INDEX && streq_ptr(l.recs[i].action, WARNED_ACTION) &&
                        streq_ptr(l.recs[i].reason, WARNED_REASON);
        dsnlog_done(&l);
        return found;
}

/* Once per message, when it is still deferred delay_warning_time after arrival (never for <>). */
static bool wants_delay_warning(const struct qmsg *m)
{
        const struct qmgr *q = m->q;
        uint64_t now = qmgr_now_usec();
        return q->delay_warning_usec > 0 && !isempty(m->env.sender) && count_deferred(m) > 0 &&
               now > m->env.arrival_usec && now - m->env.arrival_usec >= q->delay_warning_usec &&
               !warning_sent(m);
}

static void after_warning(struct qmsg *m, bool ok)
{
        if (ok) {
                struct dsnlog_rec rec = {.time_usec = qmgr_now_usec(),
                                         .index = DSNLOG_NO_INDEX,
                                         .rcpt = isempty(m->env.sender) ? "<>" : m->env.sender,
                                         .action = WARNED_ACTION,
                                         .relay = "none",
                                         .reason = WARNED_REASON};
                int r = dsnlog_append(m->q->queue, QUEUE_TRACE, m->id, &rec);
                if (r < 0)
                        msg_warn("%s: cannot record that the delay warning was sent (it may be sent again): "
                                 "%s",
                                 m->id, strerror(-r));
        }
        /* Not sent: the next deferral of the message asks again. */
        finish_done(m, false);
}

static void finish(struct qmsg *m)
{
        if (has_returned(m)) {
                m->notified = true;
                qmgr_notify(m, "bounce", 0, after_notice);
                return;
        }
        if (wants_delay_warning(m)) {
                uint64_t until = m->q->max_lifetime_usec ? m->env.arrival_usec + m->q->max_lifetime_usec : 0;
                qmgr_notify(m, "warn", until, after_warning);
                return;
        }
        finish_done(m, false);
}

void qmgr_message_job_done(struct qmsg *m)
{
        if (--m->jobs_left == 0)
                finish(m);
}

/* The last deferral reason of recipient i, from defer/QID as the last attempt left it; NULL if none. */
static const struct dsnlog_rec *last_deferral(const struct dsnlog *l, size_t i)
{
        const struct dsnlog_rec *found = NULL;
        for (size_t k = 0; k < l->n; k++)
                if (l->recs[k].index == i)
                        found = &l->recs[k];
        return found;
}

/*
 * Too old: every recipient still pending is returned. Its record goes to bounce/QID before it is marked
 * (the notification itself is the bounce service's job, asked for when the message is finished).
 */
static void expire(struct qmsg *m)
{
        _cleanup_close_ int fd = -1;
        int r = queue_open_file(m->q->queue, m->id, QUEUE_ACTIVE, O_RDWR, &fd);
        uint64_t now = qmgr_now_usec();
        bool any = false;
        for (size_t i = 0; i < m->env.n_rcpts && !any; i++)
                any = m->rstate[i] == QR_WAITING;
        if (!any)
                return;
        msg_fields(LOG_LEVEL_INFO, &(struct log_fields){.queue_id = m->id, .status = "expired"},
                   "%s: from=<%s>, status=expired, returned to sender", m->id, m->env.sender);
        struct dsnlog defers = {0};
        dsnlog_read(m->q->queue, QUEUE_DEFER, m->id, &defers);
        for (size_t i = 0; i < m->env.n_rcpts; i++) {
                if (m->rstate[i] != QR_WAITING)
                        continue;
                const struct dsnlog_rec *last = last_deferral(&defers, i);
                _cleanup_free_ char *why = last && !isempty(last->reason)
                                                   ? xasprintf("message expired: %s", last->reason)
                                                   : xstrdup("message expired");
                if (r >= 0 &&
                    dsnlog_append_rcpt(m->q->queue, QUEUE_BOUNCE, m->id, i, &m->env.rcpts[i], "4.4.7",
                                       last && last->relay ? last->relay : "none", why) < 0) {
                        m->rstate[i] = QR_DEFERRED;
                        continue;
                }
                if (r >= 0 &&
                    queue_mark_rcpt(fd, &m->env.rcpts[i], QFILE_RCPT_BOUNCED, now, "4.4.7", 0) < 0) {
                        msg_warn("%s: cannot mark recipient %s as returned: keeping the message", m->id,
                                 m->env.rcpts[i].address);
                        m->rstate[i] = QR_DEFERRED;
                        continue;
                }
                m->rstate[i] = r >= 0 ? QR_BOUNCED : QR_DEFERRED;
        }
        dsnlog_done(&defers);
        if (r < 0)
                msg_warn("%s: open for update: %s: keeping the message", m->id, strerror(-r));
}

struct pending {
        struct resolve_result res;
        size_t idx;
};

static int cmp_pending(const void *a, const void *b)
{
        const struct pending *x = a, *y = b;
        int c = strcmp(x->res.transport, y->res.transport);
        if (c == 0)
                c = strcmp(x->res.nexthop, y->res.nexthop);
        if (c == 0)
                c = x->idx < y->idx ? -1 : x->idx > y->idx;
        return c;
}

/*
 * content_filter (or a FILTER action): "transport:destination" takes every recipient of the message, as in
 * Postfix; an empty destination keeps each recipient's own next hop. 1 when it applied, 0 without one.
 */
static int apply_filter(const struct qmsg *m, struct resolve_result *res)
{
        const char *filter = qfile_extra(&m->env, "filter");
        if (isempty(filter))
                return 0;
        const char *colon = strchr(filter, ':');
        free(res->transport);
        res->transport = colon ? xstrndup(filter, (size_t)(colon - filter)) : xstrdup(filter);
        if (colon && colon[1]) {
                free(res->nexthop);
                res->nexthop = xstrdup(colon + 1);
        }
        res->local = false;
        return 1;
}

/* Group the pending recipients by (transport, nexthop): sorting keeps this O(n log n) per message. */
static void make_jobs(struct qmsg *m)
{
        struct qmgr *q = m->q;
        struct pending *p = xcalloc(m->env.n_rcpts ? m->env.n_rcpts : 1, sizeof *p);
        size_t n = 0;
        for (size_t i = 0; i < m->env.n_rcpts; i++) {
                if (m->rstate[i] != QR_WAITING)
                        continue;
                if (resolve_address(q->resolve, m->env.rcpts[i].address, &p[n].res) < 0) {
                        log_deferred(m, i, "4.3.0", "address resolver failure: lookup table failure");
                        continue;
                }
                apply_filter(m, &p[n].res);
                p[n].idx = i;
                n++;
        }
        qsort(p, n, sizeof *p, cmp_pending);

        struct transport *touched[QMGR_TRANSPORTS_MAX];
        size_t n_touched = 0;
        for (size_t i = 0; i < n;) {
                struct transport *t = qmgr_transport(q, p[i].res.transport);
                if (!t) {
                        log_deferred(m, p[i].idx, "4.3.0", "too many mail transports in use");
                        i++;
                        continue;
                }
                struct job *j = xcalloc(1, sizeof *j);
                j->msg = m;
                j->t = t;
                j->fd = -1;
                j->nexthop = xstrdup(p[i].res.nexthop);
                j->idx = xcalloc(t->recipient_limit, sizeof *j->idx);
                size_t k = i;
                while (k < n && j->n < t->recipient_limit && streq(p[k].res.transport, p[i].res.transport) &&
                       streq(p[k].res.nexthop, p[i].res.nexthop)) {
                        j->idx[j->n++] = p[k].idx;
                        k++;
                }
                i = k;
                m->jobs_left++;
                qmgr_transport_enqueue(t, j);
                bool seen = false;
                for (size_t s = 0; s < n_touched && !seen; s++)
                        seen = touched[s] == t;
                if (!seen && n_touched < ELEMENTSOF(touched))
                        touched[n_touched++] = t;
        }
        for (size_t i = 0; i < n; i++)
                resolve_result_done(&p[i].res);
        free(p);
        for (size_t s = 0; s < n_touched; s++)
                qmgr_transport_kick(touched[s]);
}

int qmgr_activate(struct qmgr *q, const char *id, enum queue_name from)
{
        if (q->stopping || !queue_id_valid(id))
                return 0;
        if (q->n_active >= q->active_limit) {
                q->blocked = true;
                return -EBUSY;
        }
        int r = queue_move(q->queue, id, from, QUEUE_ACTIVE, 0);
        if (r == -ENOENT || r == -EEXIST)
                return 0; /* taken already (a notification and a scan both saw it) */
        if (r < 0) {
                msg_warn("%s: move from %s to active: %s", id, queue_name_to_string(from), strerror(-r));
                return 0;
        }

        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        struct qfile_msg env = {0};
        struct qfile_error err = {0};
        r = queue_open_file(q->queue, id, QUEUE_ACTIVE, O_RDONLY, &fd);
        if (r >= 0)
                r = queue_read_fd(fd, &data, &len);
        if (r >= 0)
                r = qfile_decode(data, len, &env, &err);
        if (r == -EBADMSG) {
                msg_warn("%s: corrupt queue file (%s at offset %llu): moved to corrupt", id,
                         err.reason ? err.reason : "?", (unsigned long long)err.offset);
                queue_move(q->queue, id, QUEUE_ACTIVE, QUEUE_CORRUPT, QUEUE_SYNC);
                return 0;
        }
        if (r < 0 || !env.ready) {
                /* A newer format, or an I/O problem: leave the file where it was for a later attempt. */
                if (r < 0)
                        msg_warn("%s: read queue file: %s", id, strerror(-r));
                else
                        msg_warn("%s: queue file not marked ready: left in %s", id,
                                 queue_name_to_string(from));
                qfile_msg_done(&env);
                queue_move(q->queue, id, QUEUE_ACTIVE, from, 0);
                return 0;
        }
        env.content = NULL; /* points into data: qmgr needs the envelope only */
        size_t size = env.has_message_size ? env.message_size : env.content_len;
        env.content_len = 0;

        struct qmsg *m = xcalloc(1, sizeof *m);
        m->q = q;
        snprintf(m->id, sizeof m->id, "%s", id);
        m->env = env;
        m->active_usec = qmgr_now_usec();
        m->from_deferred = from == QUEUE_DEFERRED;
        m->rstate = xcalloc(env.n_rcpts ? env.n_rcpts : 1, 1);
        size_t pending = 0;
        for (size_t i = 0; i < env.n_rcpts; i++) {
                bool todo = qfile_rcpt_state_pending(env.rcpts[i].state);
                m->rstate[i] = todo ? QR_WAITING : QR_DONE_BEFORE;
                pending += todo;
        }
        q->n_active++;
        if (m->from_deferred)
                q->n_active_deferred++;
        msg_fields(LOG_LEVEL_INFO, &(struct log_fields){.queue_id = m->id},
                   "%s: from=<%s>, size=%zu, nrcpt=%zu (queue active)", m->id, env.sender, size, pending);

        /* A guard reference: jobs may finish (and fail) while they are being made. */
        m->jobs_left = 1;
        uint64_t lifetime = isempty(m->env.sender) ? q->bounce_lifetime_usec : q->max_lifetime_usec;
        bool expired = m->from_deferred && lifetime > 0 && m->active_usec > m->env.arrival_usec &&
                       m->active_usec - m->env.arrival_usec > lifetime;
        if (expired)
                expire(m);
        /* This attempt writes its own deferral reasons: the last attempt's are history (as in Postfix). */
        if (m->from_deferred)
                dsnlog_remove_one(q->queue, QUEUE_DEFER, m->id, 0);
        if (!expired)
                make_jobs(m);
        qmgr_message_job_done(m);
        return 1;
}
