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
#include "delivery_request.h"
#include "catalog.h"
#include "log.h"
#include "macro.h"
#include "resolve.h"
#include "smtp.h"
#include "smtp_util.h"

static const struct session_ops request_session_ops;
static void request_rcpt_final(struct request *rq, struct rcpt *r, const char *relay, enum rcpt_status st,
                               const char *dsn, const char *reason);

static void request_free(struct request *rq)
{
        event_source_unref(rq->io);
        event_source_unref(rq->timer);
        ipc_conn_done(&rq->conn);
        if (rq->fd >= 0)
                close(rq->fd);
        if (rq->qfd >= 0)
                close(rq->qfd);
        for (size_t i = 0; i < rq->n_rcpts; i++)
                free(rq->rcpts[i].reason);
        free(rq->rcpts);
        delivery_request_done(&rq->dr);
        qfile_msg_done(&rq->msg);
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
        event_source_set_io_events(rq->io, EPOLLIN | (ipc_conn_want_write(&rq->conn) ? EPOLLOUT : 0));
}

/* Anything not final yet is reported as deferred. */
static enum delivery_status delivery_status_of(enum rcpt_status st)
{
        return st == RCPT_SENT ? DELIVERY_SENT : st == RCPT_BOUNCED ? DELIVERY_BOUNCED : DELIVERY_DEFERRED;
}

static enum rcpt_status rcpt_status_of(enum delivery_status st)
{
        return st == DELIVERY_SENT ? RCPT_SENT : st == DELIVERY_BOUNCED ? RCPT_BOUNCED : RCPT_DEFERRED;
}

static void send_reply(struct request *rq)
{
        struct ipc_msg m = IPC_MSG_INIT;
        for (size_t i = 0; i < rq->n_rcpts; i++) {
                const struct rcpt *r = &rq->rcpts[i];
                const struct delivery_outcome o = {delivery_status_of(r->status), r->dsn, r->reason};
                delivery_reply_add(&m, rq->dr.rcpts[i].text, &o);
        }
        int r = ipc_conn_queue(&rq->conn, &m);
        ipc_msg_done(&m);
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
        event_source_set_enabled(rq->io, EVENT_ON);
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

/* The recipient's outcome as recorded (o), logged. */
static void rcpt_settle(struct request *rq, struct rcpt *r, const char *relay,
                        const struct delivery_outcome *o)
{
        uint64_t now = delivery_now_usec();
        r->status = rcpt_status_of(o->status);
        snprintf(r->dsn, sizeof r->dsn, "%s", o->dsn);
        free(r->reason);
        r->reason = xstrdup(o->reason);
        struct delivery_times t = {
                .arrival_usec = rq->arrival_usec,
                .active_usec = rq->active_usec,
                .agent_usec = rq->agent_usec,
                .conn_usec = rq->conn_usec ? rq->conn_usec : now,
                .done_usec = now,
        };
        delivery_log(rq->queue_id, r->q->address, r->q->orig_rcpt, relay, &t, r->dsn,
                     delivery_status_name(o->status), o->reason);
}

static void request_rcpt_final(struct request *rq, struct rcpt *r, const char *relay, enum rcpt_status st,
                               const char *dsn, const char *reason)
{
        const struct delivery_outcome happened = {delivery_status_of(st), dsn, reason};
        struct delivery_outcome o = happened;
        if (delivery_record_outcome(rq->agent->queue, rq->qfd, rq->queue_id, r->index, r->q, relay, &o) < 0)
                /* Unlike local, not deferred: the peer has the message, and a retry would send it twice. */
                o = happened;
        rcpt_settle(rq, r, relay, &o);
}

static void request_accepted_final(struct request *rq, const char *relay, enum rcpt_status st,
                                   const char *dsn, const char *reason)
{
        const struct delivery_outcome happened = {delivery_status_of(st), dsn, reason};
        /* (A soft_bounce DSN points into delivery_request.c's one buffer; every recipient here shares the
         * same answer, so each call writes the same text there.) */
        _cleanup_free_ struct delivery_outcome *o = xcalloc(rq->n_rcpts ? rq->n_rcpts : 1, sizeof *o);
        bool any_marked = false;
        for (size_t i = 0; i < rq->n_rcpts; i++) {
                struct rcpt *r = &rq->rcpts[i];
                if (r->status != RCPT_ACCEPTED)
                        continue;
                bool marked = false;
                o[i] = happened;
                if (delivery_record_outcome_unsynced(rq->agent->queue, rq->qfd, rq->queue_id, r->index, r->q,
                                                     relay, &o[i], &marked) < 0)
                        o[i] = happened; /* as in request_rcpt_final */
                any_marked |= marked;
        }
        /* One fdatasync for all the marks, before any of them is logged or reported: a crash before it
         * sends the message again to every one of these recipients, never to some only. */
        if (any_marked)
                (void)delivery_sync_marks(rq->qfd, rq->queue_id); /* failure: as request_rcpt_final */
        for (size_t i = 0; i < rq->n_rcpts; i++)
                if (rq->rcpts[i].status == RCPT_ACCEPTED)
                        rcpt_settle(rq, &rq->rcpts[i], relay, &o[i]);
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
                session_connect(a, rq, &request_session_ops, &rq->addrs->addrs[rq->addr_next++]);
                return;
        }
        try_next_hop(rq);
}

static const char *request_rcpt_domain(const struct request *rq)
{
        for (size_t i = 0; i < rq->n_rcpts; i++) {
                const char *at = strrchr(rq->rcpts[i].q->address, '@');
                if (at && at[1])
                        return at + 1;
        }
        return rq->nexthop;
}

/*
 * Postfix's rule for a next hop looked up as a domain (no brackets): its best address being one this
 * instance receives mail on is a loop, deferred with 4.3.5 before any connection (the seed 001 trap:
 * relayhost = localhost); less preferred addresses from the first of ours on are dropped.
 */
static bool resolves_to_myself(struct request *rq, struct dns_result *res)
{
        struct dns_nexthop nh;
        if (rq->agent->set.lmtp) /* LMTP names a store, often on this very host: never a loop */
                return false;
        if (dns_nexthop_parse(rq->hop_name, 25, &nh) < 0 || !nh.mx)
                return false;
        size_t i = 0;
        while (i < res->n &&
               !own_addrs_contains_sockaddr(&rq->agent->set.own, (const struct sockaddr *)&res->addrs[i].sa))
                i++;
        if (i > 0 || res->n == 0) {
                res->n = i;
                return false;
        }
        _cleanup_free_ char *reason = smtp_loop_reason(nh.host, request_rcpt_domain(rq));
        msg_fields(LOG_LEVEL_WARNING,
                   &(struct log_fields){.queue_id = rq->queue_id, .catalog_id = CATALOG_LOOPS_BACK},
                   "%s: next hop %s resolves to %s, an address of this instance (inet_interfaces): "
                   "relayhost or transport_maps configuration problem: %s",
                   rq->queue_id, nh.host, res->addrs[0].host, reason);
        set_last(rq, "4.3.5", reason, false);
        return true;
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
        if (resolves_to_myself(rq, rq->addrs)) {
                try_next_hop(rq);
                return;
        }
        try_next_address(rq);
}

static const char *request_cache_key(const struct request *rq)
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
                struct dns_result unix_hop = {0};
                int kind = a->set.lmtp
                                   ? lmtp_nexthop_parse(rq->hop_name, a->queue_dir, &nh, &unix_hop.addrs[0])
                                   : dns_nexthop_parse(rq->hop_name, 25, &nh);
                if (kind < 0) {
                        char *why = xasprintf(kind == -ENAMETOOLONG ? "next-hop socket path too long: \"%s\""
                                                                    : "bad next-hop destination: \"%s\"",
                                              rq->hop_name);
                        set_last(rq, "4.3.5", why, false);
                        free(why);
                        msg_warn("%s: %s", rq->queue_id, rq->last_reason);
                        continue;
                }
                if (a->set.cache_on_demand && !rq->no_reuse &&
                    session_reuse(a, rq, &request_session_ops, rq->hop_name))
                        return;
                if (kind == 1) { /* an LMTP unix socket: its one "address" */
                        unix_hop.n = 1;
                        on_resolved(&unix_hop, rq);
                        return;
                }
                nh.mode = a->set.lookup_mode;
                nh.dnssec = a->set.dnssec;
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

static void request_session_failed(struct request *rq, const char *dsn, const char *reason, bool permanent)
{
        rq->session = NULL;
        set_last(rq, dsn, reason, permanent);
        try_next_address(rq);
}

static void request_reuse_failed(struct request *rq)
{
        rq->session = NULL;
        rq->no_reuse = true;
        rq->hop--;
        try_next_hop(rq);
}

static void request_session_done(struct request *rq)
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

        event_source_set_enabled(rq->timer, EVENT_OFF);
        rq->agent_usec = delivery_now_usec();
        const char *why = NULL;
        int bad = delivery_request_parse(m, &rq->dr, &why);
        rq->queue_id = xstrdup(rq->dr.queue_id);
        rq->nexthop = xstrdup(rq->dr.nexthop);
        rq->arrival_usec = rq->dr.arrival_usec;
        rq->active_usec = rq->dr.active_usec ? rq->dr.active_usec : rq->agent_usec;
        /* One per requested recipient, so every one is answered; an invalid index matches no recipient. */
        rq->n_rcpts = rq->dr.n_rcpts;
        rq->rcpts = xcalloc(rq->n_rcpts ? rq->n_rcpts : 1, sizeof *rq->rcpts);
        for (size_t i = 0; i < rq->n_rcpts; i++)
                rq->rcpts[i].index = rq->dr.rcpts[i].valid ? rq->dr.rcpts[i].index : SIZE_MAX;
        if (bad < 0) {
                reject_all(rq, why);
                return;
        }
        /* Read-write: the status slots of delivered recipients are rewritten in place. Unlike local, any
         * queue qmgr names is taken. */
        int r = delivery_request_open_file(a->queue, &rq->dr, &rq->qfd, &rq->qdata, &rq->qlen, &rq->msg);
        if (r < 0) {
                char *why_open = xasprintf("cannot read queue file %s/%s: %s",
                                           queue_name_to_string(rq->dr.queue), rq->queue_id, strerror(-r));
                reject_all(rq, why_open);
                free(why_open);
                return;
        }
        if (rq->arrival_usec == 0)
                rq->arrival_usec = rq->msg.arrival_usec;

        bool pending = false;
        for (size_t i = 0; i < rq->n_rcpts; i++) {
                struct rcpt *rc = &rq->rcpts[i];
                rc->q = delivery_request_rcpt(&rq->dr.rcpts[i], &rq->msg);
                if (!rc->q) {
                        rc->status = RCPT_DEFERRED;
                        snprintf(rc->dsn, sizeof rc->dsn, "4.3.0");
                        rc->reason = xstrdup("bad recipient index in delivery request");
                        continue;
                }
                struct delivery_outcome done;
                if (delivery_rcpt_already_done(rc->q, &done)) {
                        rc->status = rcpt_status_of(done.status);
                        snprintf(rc->dsn, sizeof rc->dsn, "%s", done.dsn);
                        rc->reason = xstrdup(done.reason);
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

static int on_io(struct event_source *src, int fd, uint32_t revents, void *userdata)
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
                event_source_set_enabled(rq->io, EVENT_OFF);
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
        event_source_set_enabled(rq->io, EVENT_OFF);
        handle_request(rq, &m);
        ipc_msg_done(&m);
        return 0;
}

static int on_request_timeout(struct event_source *src, uint64_t usec, void *userdata)
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
        uint64_t now = event_loop_now(a->event);
        if (event_add_io(a->event, &rq->io, fd, EPOLLIN, on_io, rq) < 0 ||
            event_add_time(a->event, &rq->timer, now + SMTP_REQUEST_TIMEOUT_USEC, on_request_timeout, rq) <
                    0) {
                msg_warn("cannot watch a delivery request connection");
                request_free(rq);
        }
}

static const struct session_ops request_session_ops = {
        .rcpt_final = request_rcpt_final,
        .accepted_final = request_accepted_final,
        .failed = request_session_failed,
        .done = request_session_done,
        .reuse_failed = request_reuse_failed,
        .cache_key = request_cache_key,
        .rcpt_domain = request_rcpt_domain,
};
