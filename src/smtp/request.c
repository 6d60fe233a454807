/* request.c: one delivery request from qmgr: read it, walk the next hops and their addresses, mark and
 * reply. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "alloc.h"
#include "delivery.h"
#include "dsnlog.h"
#include "log.h"
#include "macro.h"
#include "resolve.h"
#include "smtp.h"

static void request_free(struct request *rq)
{
        sd_event_source_unref(rq->io);
        sd_event_source_unref(rq->timer);
        ipc_conn_done(&rq->conn);
        if (rq->fd >= 0)
                close(rq->fd);
        if (rq->qfd >= 0)
                close(rq->qfd);
        for (size_t i = 0; i < rq->n_rcpts; i++)
                free(rq->rcpts[i].reason);
        free(rq->rcpts);
        qfile_msg_free(&rq->msg);
        free(rq->qdata);
        free(rq->queue_id);
        free(rq->nexthop);
        free(rq->hop_name);
        free(rq->addrs);
        free(rq->last_reason);
        struct service *svc = rq->agent->svc;
        free(rq);
        service_connection_done(svc);
}

static void update_events(struct request *rq)
{
        sd_event_source_set_io_events(rq->io, EPOLLIN | (ipc_conn_want_write(&rq->conn) ? EPOLLOUT : 0));
}

static const char *status_name(enum rcpt_status st)
{
        switch (st) {
        case RCPT_SENT: return "sent";
        case RCPT_BOUNCED: return "bounced";
        default: return "deferred";
        }
}

static void send_reply(struct request *rq)
{
        struct ipc_msg m = IPC_MSG_INIT;
        for (size_t i = 0; i < rq->n_rcpts; i++) {
                struct rcpt *r = &rq->rcpts[i];
                ipc_msg_add_int(&m, "rcpt_index", (long long)r->index);
                ipc_msg_add_str(&m, "status", status_name(r->status));
                ipc_msg_add_str(&m, "dsn", r->dsn);
                ipc_msg_add_str(&m, "reason", r->reason ? r->reason : "");
        }
        int r = ipc_conn_queue(&rq->conn, &m);
        ipc_msg_free(&m);
        rq->replying = true;
        if (r < 0) {
                msg_warn("%s: cannot encode the reply to qmgr: %s", rq->queue_id, strerror(-r));
                request_free(rq);
                return;
        }
        r = ipc_conn_flush(&rq->conn);
        if (r == 0) {
                request_free(rq);
                return;
        }
        if (r != -EAGAIN) {
                msg_warn("%s: cannot send the reply to qmgr: %s", rq->queue_id, strerror(-r));
                request_free(rq);
                return;
        }
        update_events(rq);
        sd_event_source_set_enabled(rq->io, SD_EVENT_ON);
}

/* Every recipient still open gets the last connection problem as its reason. */
static void request_finish(struct request *rq)
{
        for (size_t i = 0; i < rq->n_rcpts; i++) {
                struct rcpt *r = &rq->rcpts[i];
                if (r->status == RCPT_PENDING || r->status == RCPT_ACCEPTED)
                        request_rcpt_final(
                                rq, r, "none", rq->last_permanent ? RCPT_BOUNCED : RCPT_DEFERRED,
                                rq->last_dsn[0] ? rq->last_dsn : (rq->last_permanent ? "5.4.4" : "4.4.1"),
                                rq->last_reason ? rq->last_reason : "delivery temporarily suspended");
        }
        send_reply(rq);
}

void request_rcpt_final(struct request *rq, struct rcpt *r, const char *relay, enum rcpt_status st,
                        const char *dsn, const char *reason)
{
        uint64_t now = delivery_now_usec();
        /* The notification's record before the mark: a crash between them never loses it. */
        if (st != RCPT_SENT &&
            dsnlog_append_rcpt(rq->agent->queue, st == RCPT_BOUNCED ? QUEUE_BOUNCE : QUEUE_DEFER,
                               rq->queue_id, r->index, r->q, dsn, relay, reason) < 0 &&
            st == RCPT_BOUNCED) {
                st = RCPT_DEFERRED;
                dsn = "4.3.0";
                reason = "cannot write the bounce log";
        }
        r->status = st;
        snprintf(r->dsn, sizeof r->dsn, "%s", dsn);
        free(r->reason);
        r->reason = xstrdup(reason);
        if (st == RCPT_SENT || st == RCPT_BOUNCED) {
                /* Durable before qmgr hears of it: a crash from here on never sends this recipient twice. */
                int k = queue_mark_rcpt(rq->qfd, r->q,
                                        st == RCPT_SENT ? QFILE_RCPT_DELIVERED : QFILE_RCPT_BOUNCED, now,
                                        r->dsn);
                if (k < 0)
                        msg_warn("%s: cannot mark recipient %s done in the queue file: %s", rq->queue_id,
                                 r->q->address, strerror(-k));
        }
        struct delivery_times t = {
                .arrival_usec = rq->arrival_usec,
                .active_usec = rq->active_usec,
                .agent_usec = rq->agent_usec,
                .conn_usec = rq->conn_usec ? rq->conn_usec : now,
                .done_usec = now,
        };
        delivery_log(rq->queue_id, r->q->address, r->q->orig_rcpt, relay, &t, r->dsn, status_name(st),
                     reason);
}

static void set_last(struct request *rq, const char *dsn, const char *reason, bool permanent)
{
        snprintf(rq->last_dsn, sizeof rq->last_dsn, "%s", dsn ? dsn : "");
        free(rq->last_reason);
        rq->last_reason = xstrdup(reason);
        rq->last_permanent = permanent;
}

static void try_next_hop(struct request *rq);

static void try_next_address(struct request *rq)
{
        struct agent *a = rq->agent;
        size_t limit = rq->addrs ? rq->addrs->n : 0;
        if (a->set.mx_address_limit > 0 && limit > a->set.mx_address_limit)
                limit = a->set.mx_address_limit;
        if (rq->addrs && rq->addr_next < limit) {
                session_connect(a, rq, &rq->addrs->addrs[rq->addr_next++]);
                return;
        }
        try_next_hop(rq);
}

static void on_resolved(const struct dns_result *res, void *userdata)
{
        struct request *rq = userdata;
        free(rq->addrs);
        rq->addrs = xmalloc(sizeof *rq->addrs);
        *rq->addrs = *res;
        rq->addr_next = 0;
        if (res->n == 0) {
                set_last(rq, res->permanent ? "5.4.4" : "4.4.3", res->reason, res->permanent);
                try_next_hop(rq);
                return;
        }
        try_next_address(rq);
}

const char *request_cache_key(const struct request *rq)
{
        return rq->hop_name;
}

static void try_next_hop(struct request *rq)
{
        struct agent *a = rq->agent;
        struct dns_nexthop nh;

        for (;;) {
                size_t hop = rq->hop++;
                if (hop > a->set.fallback_relays.n) {
                        request_finish(rq);
                        return;
                }
                /* A fallback relay helps only after temporary failures (Postfix: not after a 5xx). */
                if (hop > 0 && rq->last_permanent)
                        continue;
                free(rq->hop_name);
                if (hop == 0)
                        rq->hop_name = xstrdup(rq->nexthop);
                else
                        rq->hop_name = xstrdup(a->set.fallback_relays.v[hop - 1]);
                free(rq->addrs);
                rq->addrs = NULL;
                if (dns_nexthop_parse(rq->hop_name, 25, &nh) < 0) {
                        char *why = xasprintf("bad next-hop destination: \"%s\"", rq->hop_name);
                        set_last(rq, "4.3.5", why, false);
                        free(why);
                        msg_warn("%s: %s", rq->queue_id, rq->last_reason);
                        continue;
                }
                if (a->set.cache_on_demand && !rq->no_reuse && session_reuse(a, rq, rq->hop_name))
                        return;
                struct dns_result lit;
                if (dns_resolve_literal(&nh, &lit)) {
                        on_resolved(&lit, rq);
                        return;
                }
                int r = dns_resolve_async(a->event, &nh, a->set.families, on_resolved, rq);
                if (r < 0) {
                        char *why = xasprintf("cannot look up %s: %s", nh.host, strerror(-r));
                        set_last(rq, "4.3.0", why, false);
                        free(why);
                        continue;
                }
                return;
        }
}

void request_session_failed(struct request *rq, const char *dsn, const char *reason, bool permanent)
{
        rq->session = NULL;
        set_last(rq, dsn, reason, permanent);
        try_next_address(rq);
}

void request_reuse_failed(struct request *rq)
{
        rq->session = NULL;
        rq->no_reuse = true;
        rq->hop--;
        try_next_hop(rq);
}

void request_session_done(struct request *rq)
{
        rq->session = NULL;
        request_finish(rq);
}

static void reject_all(struct request *rq, const char *reason)
{
        msg_warn("%s: %s", rq->queue_id ? rq->queue_id : "(no queue id)", reason);
        for (size_t i = 0; i < rq->n_rcpts; i++) {
                rq->rcpts[i].status = RCPT_DEFERRED;
                snprintf(rq->rcpts[i].dsn, sizeof rq->rcpts[i].dsn, "4.3.0");
                free(rq->rcpts[i].reason);
                rq->rcpts[i].reason = xstrdup(reason);
        }
        send_reply(rq);
}

static void handle_request(struct request *rq, const struct ipc_msg *m)
{
        struct agent *a = rq->agent;
        long long v;

        sd_event_source_set_enabled(rq->timer, SD_EVENT_OFF);
        rq->agent_usec = delivery_now_usec();
        const char *req = ipc_msg_get_str(m, "req"), *qid = ipc_msg_get_str(m, "queue_id");
        const char *nexthop = ipc_msg_get_str(m, "nexthop"), *queue = ipc_msg_get_str(m, "queue");
        rq->queue_id = xstrdup(qid ? qid : "");
        rq->nexthop = xstrdup(nexthop ? nexthop : "");
        rq->arrival_usec = ipc_msg_get_int(m, "arrival_usec", &v) == 0 && v > 0 ? (uint64_t)v : 0;
        rq->active_usec = ipc_msg_get_int(m, "active_usec", &v) == 0 && v > 0 ? (uint64_t)v : rq->agent_usec;

        size_t n = 0;
        for (size_t i = 0; i < m->n_attrs; i++)
                if (streq(m->attrs[i].name, "rcpt_index"))
                        n++;
        if (n > SMTP_REQUEST_RCPTS_MAX)
                n = SMTP_REQUEST_RCPTS_MAX;
        rq->rcpts = xcalloc(n ? n : 1, sizeof *rq->rcpts);
        for (size_t i = 0; i < m->n_attrs && rq->n_rcpts < n; i++)
                if (streq(m->attrs[i].name, "rcpt_index")) {
                        char *end;
                        unsigned long long idx = strtoull(m->attrs[i].value, &end, 10);
                        rq->rcpts[rq->n_rcpts++].index = *end == '\0' ? (size_t)idx : SIZE_MAX;
                }

        if (!req || !streq(req, "deliver") || !qid || !queue_id_valid(qid)) {
                reject_all(rq, "bad delivery request");
                return;
        }
        int qn = queue ? queue_name_from_string(queue) : QUEUE_ACTIVE;
        if (qn < 0) {
                reject_all(rq, "bad queue name in delivery request");
                return;
        }
        /* Read-write: the status slots of delivered recipients are rewritten in place. */
        size_t *idx = xcalloc(rq->n_rcpts ? rq->n_rcpts : 1, sizeof *idx);
        for (size_t i = 0; i < rq->n_rcpts; i++)
                idx[i] = rq->rcpts[i].index;
        int r = queue_open_for_delivery(a->queue, qid, (enum queue_name)qn, idx, rq->n_rcpts, &rq->qfd,
                                        &rq->qdata, &rq->qlen, &rq->msg);
        free(idx);
        if (r < 0) {
                char *why = xasprintf("cannot read queue file %s/%s: %s", queue ? queue : "active", qid,
                                      strerror(-r));
                reject_all(rq, why);
                free(why);
                return;
        }
        if (rq->arrival_usec == 0)
                rq->arrival_usec = rq->msg.arrival_usec;

        bool pending = false;
        for (size_t i = 0; i < rq->n_rcpts; i++) {
                struct rcpt *rc = &rq->rcpts[i];
                if (rc->index >= rq->msg.n_rcpts) {
                        rc->status = RCPT_DEFERRED;
                        snprintf(rc->dsn, sizeof rc->dsn, "4.3.0");
                        rc->reason = xstrdup("bad recipient index in delivery request");
                        continue;
                }
                rc->q = &rq->msg.rcpts[rc->index];
                /* Done before (a crash after marking, before qmgr heard): report it, never send again. */
                if (rc->q->state == QFILE_RCPT_DELIVERED || rc->q->state == QFILE_RCPT_BOUNCED) {
                        rc->status = rc->q->state == QFILE_RCPT_DELIVERED ? RCPT_SENT : RCPT_BOUNCED;
                        snprintf(rc->dsn, sizeof rc->dsn, "%s", rc->q->dsn_status);
                        rc->reason = xstrdup("recipient already done");
                        continue;
                }
                pending = true;
        }
        if (!pending) {
                send_reply(rq);
                return;
        }
        /* The recipient that names the domain for an empty next hop must be a real one. */
        for (size_t i = 0; i < rq->n_rcpts; i++)
                if (rq->rcpts[i].status == RCPT_PENDING) {
                        if (isempty(rq->nexthop)) {
                                char *d = resolve_domain_of(rq->rcpts[i].q->address);
                                free(rq->nexthop);
                                rq->nexthop = d ? d : xstrdup("");
                        }
                        break;
                }
        try_next_hop(rq);
}

static int on_io(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct request *rq = userdata;

        if (rq->replying) {
                int r = ipc_conn_flush(&rq->conn);
                if (r == -EAGAIN)
                        return 0;
                if (r < 0)
                        msg_warn("%s: cannot send the reply to qmgr: %s", rq->queue_id, strerror(-r));
                request_free(rq);
                return 0;
        }
        if (rq->queue_id) {
                /* Delivering: qmgr has nothing more to say; stop watching until the reply. */
                sd_event_source_set_enabled(rq->io, SD_EVENT_OFF);
                return 0;
        }
        int r = ipc_conn_read(&rq->conn);
        if (r < 0) {
                request_free(rq);
                return 0;
        }
        struct ipc_msg m = IPC_MSG_INIT;
        r = ipc_conn_next(&rq->conn, &m);
        if (r < 0) {
                msg_warn("bad delivery request: %s", strerror(-r));
                request_free(rq);
                return 0;
        }
        if (r == 0) {
                if (rq->conn.eof)
                        request_free(rq);
                return 0;
        }
        sd_event_source_set_enabled(rq->io, SD_EVENT_OFF);
        handle_request(rq, &m);
        ipc_msg_free(&m);
        return 0;
}

static int on_request_timeout(sd_event_source *src, uint64_t usec, void *userdata)
{
        struct request *rq = userdata;
        msg_warn("timeout waiting for a delivery request");
        request_free(rq);
        return 0;
}

void request_start(struct agent *a, int fd)
{
        struct request *rq = xcalloc(1, sizeof *rq);
        rq->agent = a;
        rq->fd = fd;
        rq->qfd = -1;
        ipc_conn_init(&rq->conn, fd);
        uint64_t now = 0;
        sd_event_now(a->event, CLOCK_MONOTONIC, &now);
        if (sd_event_add_io(a->event, &rq->io, fd, EPOLLIN, on_io, rq) < 0 ||
            sd_event_add_time(a->event, &rq->timer, CLOCK_MONOTONIC, now + SMTP_REQUEST_TIMEOUT_USEC, 0,
                              on_request_timeout, rq) < 0) {
                msg_warn("cannot watch a delivery request connection");
                request_free(rq);
        }
}
