/* agent.c: the request/reply cycle of delivery agents that need no peer: error, retry, discard (one verdict
 * per request) and virtual (one delivery per recipient). */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "alloc.h"
#include "delivery.h"
#include "ipc.h"
#include "log.h"
#include "macro.h"

static bool is_blank(char c)
{
        return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

/* Length of a "C.S.D" code at p (class 2, 4 or 5) ending at a blank or the end; 0 when there is none. */
static size_t dsn_code_len(const char *p)
{
        if (*p != '2' && *p != '4' && *p != '5')
                return 0;
        size_t i = 1;
        for (int part = 0; part < 2; part++) {
                if (p[i] != '.')
                        return 0;
                i++;
                size_t digits = 0;
                while (is_digit(p[i]) && digits < AGENT_DSN_PART_MAX) {
                        i++;
                        digits++;
                }
                if (digits == 0)
                        return 0;
        }
        return p[i] == '\0' || is_blank(p[i]) ? i : 0;
}

void agent_verdict_set(struct agent_verdict *ret, enum agent_result result, const char *dsn, const char *fmt,
                       ...)
{
        *ret = (struct agent_verdict){.result = result};
        snprintf(ret->dsn, sizeof ret->dsn, "%s", dsn);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ret->reason, sizeof ret->reason, fmt, ap);
        va_end(ap);
}
void agent_verdict_from_text(const char *text, enum agent_result result, char cls, const char *fallback,
                             struct agent_verdict *ret)
{
        *ret = (struct agent_verdict){.result = result};
        const char *p = text ? text : "";
        while (is_blank(*p))
                p++;
        size_t code = dsn_code_len(p);
        if (code > 0 && code < sizeof ret->dsn) {
                memcpy(ret->dsn, p, code);
                ret->dsn[code] = '\0';
                ret->dsn[0] = cls;
                p += code;
                while (is_blank(*p))
                        p++;
        } else
                snprintf(ret->dsn, sizeof ret->dsn, "%c.0.0", cls);
        size_t len = strlen(p);
        while (len > 0 && is_blank(p[len - 1]))
                len--;
        if (len == 0) {
                p = fallback ? fallback : "";
                len = strlen(p);
        }
        if (len >= sizeof ret->reason)
                len = sizeof ret->reason - 1;
        memcpy(ret->reason, p, len);
        ret->reason[len] = '\0';
}

/* Each requested recipient: a bad index, already done, or its verdict recorded and logged. */
static void apply_verdicts(struct queue *q, const struct delivery_request *dr, int qfd,
                           struct qfile_msg *msg, const char *relay, agent_rcpt_fn deliver, void *userdata,
                           struct delivery_times *t, struct ipc_msg *reply)
{
        for (size_t i = 0; i < dr->n_rcpts; i++) {
                struct qfile_rcpt *rcpt = delivery_request_rcpt(&dr->rcpts[i], msg);
                struct agent_verdict verdict;
                struct delivery_outcome o;
                if (!rcpt)
                        o = (struct delivery_outcome){DELIVERY_DEFERRED, "4.3.0", "bad recipient index"};
                else if (!delivery_rcpt_already_done(rcpt, &o)) {
                        deliver(userdata, dr, msg, rcpt, &verdict);
                        o = (struct delivery_outcome){(enum delivery_status)verdict.result, verdict.dsn,
                                                      verdict.reason};
                        delivery_record_outcome(q, qfd, dr->queue_id, dr->rcpts[i].index, rcpt, relay, &o);
                        t->done_usec = delivery_now_usec();
                        delivery_log(dr->queue_id, rcpt->address, rcpt->orig_rcpt, relay, t, o.dsn,
                                     delivery_status_name(o.status), o.reason);
                }
                delivery_reply_add(reply, dr->rcpts[i].text, &o);
        }
}

struct decide_once {
        agent_decide_fn decide;
        void *userdata;
};

/* The request's one verdict for each recipient: decide depends on the request alone. */
static void decide_rcpt(void *userdata, const struct delivery_request *dr, const struct qfile_msg *msg,
                        const struct qfile_rcpt *rcpt, struct agent_verdict *ret)
{
        struct decide_once *d = userdata;
        d->decide(d->userdata, dr->nexthop, dr->transport, ret);
}

void agent_serve(struct queue *q, int fd, agent_decide_fn decide, void *userdata)
{
        struct decide_once d = {decide, userdata};
        agent_serve_each(q, fd, "none", decide_rcpt, &d);
}

void agent_serve_request(struct queue *q, int fd, agent_request_fn handle, void *userdata)
{
        struct ipc_msg req = IPC_MSG_INIT;
        int r = ipc_recv(fd, &req, USEC_TO_MS(AGENT_REQUEST_TIMEOUT_USEC));
        if (r < 0) {
                msg_warn("read delivery request: %s", strerror(-r));
                return;
        }
        uint64_t agent_usec = delivery_now_usec();
        struct delivery_request dr;
        const char *why = NULL;
        r = delivery_request_parse(&req, &dr, &why);
        ipc_msg_done(&req);
        struct ipc_msg reply = IPC_MSG_INIT;
        if (r < 0 || !dr.queue_named || dr.queue != QUEUE_ACTIVE) {
                msg_warn("bad delivery request (req, queue_id or queue missing or invalid)");
                delivery_reply_defer_all(&reply, &dr, "bad delivery request");
                ipc_send(fd, &reply, USEC_TO_MS(AGENT_REQUEST_TIMEOUT_USEC));
                ipc_msg_done(&reply);
                delivery_request_done(&dr);
                return;
        }

        /* Only these recipients' slots are locked, as long as qfd lives: until the reply is sent. Other
         * batches of the message go on in parallel. */
        size_t len = 0;
        _cleanup_close_ int qfd = -1;
        _cleanup_free_ char *data = NULL;
        struct qfile_msg msg = {0};
        r = delivery_request_open_file(q, &dr, &qfd, &data, &len, &msg);
        if (r < 0) {
                msg_warn("%s: open queue file: %s", dr.queue_id, strerror(-r));
                delivery_reply_defer_all(&reply, &dr,
                                         r == -EBUSY ? "recipient is being delivered by another process"
                                                     : "queue file unavailable");
                ipc_send(fd, &reply, USEC_TO_MS(AGENT_REQUEST_TIMEOUT_USEC));
        } else {
                struct delivery_times t = {
                        .arrival_usec = dr.arrival_usec ? dr.arrival_usec : msg.arrival_usec,
                        .active_usec = dr.active_usec ? dr.active_usec : agent_usec,
                        .agent_usec = agent_usec,
                        .conn_usec = agent_usec,
                };
                handle(userdata, &dr, qfd, &msg, &t, &reply);
                r = ipc_send(fd, &reply, USEC_TO_MS(AGENT_REQUEST_TIMEOUT_USEC));
                if (r < 0)
                        msg_warn("%s: send reply to qmgr: %s", dr.queue_id, strerror(-r));
        }
        ipc_msg_done(&reply);
        delivery_request_done(&dr);
        qfile_msg_done(&msg);
}

struct serve_each {
        struct queue *q;
        const char *relay;
        agent_rcpt_fn deliver;
        void *userdata;
};

static void serve_each_request(void *userdata, const struct delivery_request *dr, int qfd,
                               struct qfile_msg *msg, struct delivery_times *t, struct ipc_msg *reply)
{
        struct serve_each *e = userdata;
        apply_verdicts(e->q, dr, qfd, msg, e->relay, e->deliver, e->userdata, t, reply);
}

void agent_serve_each(struct queue *q, int fd, const char *relay, agent_rcpt_fn deliver, void *userdata)
{
        struct serve_each e = {q, relay, deliver, userdata};
        agent_serve_request(q, fd, serve_each_request, &e);
}
