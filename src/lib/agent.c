/* agent.c: delivery agents that decide from the request alone (error, retry, discard): verdicts and serving.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "alloc.h"
#include "delivery.h"
#include "dsnlog.h"
#include "ipc.h"
#include "log.h"
#include "macro.h"
#include "queue_id.h"

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

static const char *result_name(enum agent_result r)
{
        return r == AGENT_SENT ? "sent" : r == AGENT_BOUNCED ? "bounced" : "deferred";
}

static void add_reply(struct ipc_msg *reply, const char *index, enum agent_result r, const char *dsn,
                      const char *reason)
{
        ipc_msg_add_str(reply, "rcpt_index", index);
        ipc_msg_add_str(reply, "status", result_name(r));
        ipc_msg_add_str(reply, "dsn", dsn);
        ipc_msg_add_str(reply, "reason", reason);
}

/* Every requested recipient deferred with one reason (bad request, queue file unavailable). */
static void reply_all_deferred(int fd, const struct ipc_msg *req, const char *reason)
{
        struct ipc_msg reply = IPC_MSG_INIT;
        for (size_t i = 0; i < req->n_attrs; i++)
                if (streq(req->attrs[i].name, "rcpt_index"))
                        add_reply(&reply, req->attrs[i].value, AGENT_DEFERRED, "4.3.0", reason);
        ipc_send(fd, &reply, AGENT_REQUEST_TIMEOUT_MS);
        ipc_msg_free(&reply);
}

static bool parse_index(const char *s, size_t *ret)
{
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno != 0 || !end || *end || end == s || s[0] == '-')
                return false;
        *ret = (size_t)v;
        return true;
}

/* Apply v to recipient idx: the notification's record, then the mark; returns the outcome to report. */
static enum agent_result apply(struct queue *q, const char *id, int qfd, size_t idx, struct qfile_rcpt *rcpt,
                               const struct agent_verdict *v, const char **ret_dsn, const char **ret_reason)
{
        *ret_dsn = v->dsn;
        *ret_reason = v->reason;
        if (v->result != AGENT_SENT) {
                enum queue_name log = v->result == AGENT_BOUNCED ? QUEUE_BOUNCE : QUEUE_DEFER;
                /* Logged inside on failure; a lost defer record only costs postqueue its reason. */
                if (dsnlog_append_rcpt(q, log, id, idx, rcpt, v->dsn, "none", v->reason) < 0 &&
                    v->result == AGENT_BOUNCED) {
                        *ret_dsn = "4.3.0";
                        *ret_reason = "cannot write the bounce log";
                        return AGENT_DEFERRED;
                }
        }
        if (v->result == AGENT_DEFERRED)
                return AGENT_DEFERRED;
        int r = queue_mark_rcpt(qfd, rcpt,
                                v->result == AGENT_SENT ? QFILE_RCPT_DELIVERED : QFILE_RCPT_BOUNCED,
                                delivery_now_usec(), v->dsn);
        if (r < 0) {
                msg_warn("%s: cannot mark recipient %s done: %s", id, rcpt->address, strerror(-r));
                *ret_dsn = "4.3.0";
                *ret_reason = "cannot update queue file";
                return AGENT_DEFERRED;
        }
        return v->result;
}

void agent_serve(struct queue *q, int fd, agent_decide_fn decide, void *userdata)
{
        struct ipc_msg req = IPC_MSG_INIT;
        int r = ipc_recv(fd, &req, AGENT_REQUEST_TIMEOUT_MS);
        if (r < 0) {
                msg_warn("read delivery request: %s", strerror(-r));
                return;
        }
        uint64_t agent_usec = delivery_now_usec();
        const char *id = ipc_msg_get_str(&req, "queue_id");
        const char *queue = ipc_msg_get_str(&req, "queue");
        const char *type = ipc_msg_get_str(&req, "req");
        const char *nexthop = ipc_msg_get_str(&req, "nexthop");
        const char *transport = ipc_msg_get_str(&req, "transport");
        if (!type || !streq(type, "deliver") || !id || !queue_id_valid(id) || !queue ||
            queue_name_from_string(queue) != QUEUE_ACTIVE) {
                msg_warn("bad delivery request (req, queue_id or queue missing or invalid)");
                reply_all_deferred(fd, &req, "bad delivery request");
                ipc_msg_free(&req);
                return;
        }

        _cleanup_free_ size_t *wanted = xcalloc(req.n_attrs ? req.n_attrs : 1, sizeof *wanted);
        size_t n_idx = 0;
        for (size_t a = 0; a < req.n_attrs; a++)
                if (streq(req.attrs[a].name, "rcpt_index") &&
                    parse_index(req.attrs[a].value, &wanted[n_idx]))
                        n_idx++;
        _cleanup_close_ int qfd = -1;
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        struct qfile_msg msg = {0};
        r = queue_open_for_delivery(q, id, QUEUE_ACTIVE, wanted, n_idx, &qfd, &data, &len, &msg);
        if (r < 0) {
                msg_warn("%s: open queue file: %s", id, strerror(-r));
                reply_all_deferred(fd, &req,
                                   r == -EBUSY ? "recipient is being delivered by another process"
                                               : "queue file unavailable");
                ipc_msg_free(&req);
                return;
        }

        struct agent_verdict verdict;
        decide(userdata, nexthop ? nexthop : "", transport ? transport : "", &verdict);

        long long v = 0;
        struct delivery_times t = {
                .arrival_usec = ipc_msg_get_int(&req, "arrival_usec", &v) == 0 && v > 0 ? (uint64_t)v
                                                                                        : msg.arrival_usec,
                .active_usec =
                        ipc_msg_get_int(&req, "active_usec", &v) == 0 && v > 0 ? (uint64_t)v : agent_usec,
                .agent_usec = agent_usec,
                .conn_usec = agent_usec,
        };
        struct ipc_msg reply = IPC_MSG_INIT;
        for (size_t a = 0; a < req.n_attrs; a++) {
                if (!streq(req.attrs[a].name, "rcpt_index"))
                        continue;
                const char *is = req.attrs[a].value;
                size_t idx = 0;
                if (!parse_index(is, &idx) || idx >= msg.n_rcpts) {
                        add_reply(&reply, is, AGENT_DEFERRED, "4.3.0", "bad recipient index");
                        continue;
                }
                struct qfile_rcpt *rcpt = &msg.rcpts[idx];
                if (rcpt->state != QFILE_RCPT_PENDING) {
                        /* Done by an earlier attempt that was interrupted before its reply. */
                        bool bounced = rcpt->state == QFILE_RCPT_BOUNCED;
                        add_reply(&reply, is, bounced ? AGENT_BOUNCED : AGENT_SENT,
                                  !isempty(rcpt->dsn_status) ? rcpt->dsn_status
                                  : bounced                  ? "5.0.0"
                                                             : "2.0.0",
                                  "already done");
                        continue;
                }
                const char *dsn = NULL, *reason = NULL;
                enum agent_result res = apply(q, id, qfd, idx, rcpt, &verdict, &dsn, &reason);
                t.done_usec = delivery_now_usec();
                delivery_log(id, rcpt->address, rcpt->orig_rcpt, "none", &t, dsn, result_name(res), reason);
                add_reply(&reply, is, res, dsn, reason);
        }
        r = ipc_send(fd, &reply, AGENT_REQUEST_TIMEOUT_MS);
        if (r < 0)
                msg_warn("%s: send reply to qmgr: %s", id, strerror(-r));
        ipc_msg_free(&reply);
        ipc_msg_free(&req);
        qfile_msg_free(&msg);
}
