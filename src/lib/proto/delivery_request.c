/* delivery_request.c: qmgr's delivery request parsed once for every agent, and the per-recipient record,
 * mark and "already done" rules they share. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "delivery.h"
#include "delivery_request.h"
#include "dsnlog.h"
#include "log.h"
#include "macro.h"
#include "queue_id.h"

/* A recipient position: digits only, no sign, blank or trailing byte (strtoull would take all three). */
static bool parse_index(const struct ipc_attr *a, size_t *ret)
{
        const char *s = a->value;
        if (a->value_len == 0 || s[0] < '0' || s[0] > '9' || memchr(s, '\0', a->value_len))
                return false;
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno != 0 || end != s + a->value_len || v > SIZE_MAX)
                return false;
        *ret = (size_t)v;
        return true;
}

/* A positive time attribute, else 0 (the caller's default applies). */
static uint64_t get_usec(const struct ipc_msg *m, const char *name)
{
        long long v = 0;
        return ipc_msg_get_int(m, name, &v) == 0 && v > 0 ? (uint64_t)v : 0;
}

static void read_rcpts(const struct ipc_msg *m, struct delivery_request *ret, bool *ret_too_many)
{
        size_t n = 0;
        for (size_t i = 0; i < m->n_attrs; i++)
                if (streq(m->attrs[i].name, "rcpt_index"))
                        n++;
        *ret_too_many = n > DELIVERY_REQUEST_RCPTS_MAX;
        if (*ret_too_many)
                n = DELIVERY_REQUEST_RCPTS_MAX;
        ret->rcpts = xcalloc(n ? n : 1, sizeof *ret->rcpts);
        for (size_t i = 0; i < m->n_attrs && ret->n_rcpts < n; i++) {
                if (!streq(m->attrs[i].name, "rcpt_index"))
                        continue;
                struct delivery_request_rcpt *r = &ret->rcpts[ret->n_rcpts++];
                r->text = xstrdup(m->attrs[i].value);
                r->valid = parse_index(&m->attrs[i], &r->index);
        }
}

int delivery_request_parse(const struct ipc_msg *m, struct delivery_request *ret, const char **ret_why)
{
        *ret = (struct delivery_request){.queue = QUEUE_ACTIVE};
        bool too_many = false;
        read_rcpts(m, ret, &too_many);
        const char *type = ipc_msg_get_str(m, "req"), *id = ipc_msg_get_str(m, "queue_id");
        const char *queue = ipc_msg_get_str(m, "queue"), *nexthop = ipc_msg_get_str(m, "nexthop");
        const char *transport = ipc_msg_get_str(m, "transport");
        ret->queue_id = xstrdup(id ? id : "");
        ret->nexthop = xstrdup(nexthop ? nexthop : "");
        ret->transport = xstrdup(transport ? transport : "");
        ret->arrival_usec = get_usec(m, "arrival_usec");
        ret->active_usec = get_usec(m, "active_usec");

        if (!type || !streq(type, "deliver") || !id || !queue_id_valid(id)) {
                *ret_why = "bad delivery request";
                return -EINVAL;
        }
        ret->queue_named = queue != NULL;
        if (queue) {
                int qn = queue_name_from_string(queue);
                if (qn < 0) {
                        *ret_why = "bad queue name in delivery request";
                        return -EINVAL;
                }
                ret->queue = (enum queue_name)qn;
        }
        if (too_many) {
                *ret_why = "too many recipients in delivery request";
                return -E2BIG;
        }
        return 0;
}

void delivery_request_done(struct delivery_request *r)
{
        for (size_t i = 0; i < r->n_rcpts; i++)
                free(r->rcpts[i].text);
        free(r->rcpts);
        free(r->queue_id);
        free(r->nexthop);
        free(r->transport);
        *r = (struct delivery_request){0};
}

size_t *delivery_request_indexes(const struct delivery_request *r, size_t *ret_n)
{
        size_t *v = xcalloc(r->n_rcpts ? r->n_rcpts : 1, sizeof *v);
        size_t n = 0;
        for (size_t i = 0; i < r->n_rcpts; i++)
                if (r->rcpts[i].valid)
                        v[n++] = r->rcpts[i].index;
        *ret_n = n;
        return v;
}

int delivery_request_open_file(struct queue *q, const struct delivery_request *r, int *ret_fd,
                               char **ret_data, size_t *ret_len, struct qfile_msg *ret_msg)
{
        size_t n_idx = 0;
        _cleanup_free_ size_t *idx = delivery_request_indexes(r, &n_idx);
        return queue_open_for_delivery(q, r->queue_id, r->queue, idx, n_idx, ret_fd, ret_data, ret_len,
                                       ret_msg);
}

struct qfile_rcpt *delivery_request_rcpt(const struct delivery_request_rcpt *rcpt, struct qfile_msg *msg)
{
        return rcpt->valid && rcpt->index < msg->n_rcpts ? &msg->rcpts[rcpt->index] : NULL;
}

const char *delivery_status_name(enum delivery_status s)
{
        return s == DELIVERY_SENT ? "sent" : s == DELIVERY_BOUNCED ? "bounced" : "deferred";
}

bool delivery_rcpt_already_done(const struct qfile_rcpt *rcpt, struct delivery_outcome *ret)
{
        if (qfile_rcpt_state_pending(rcpt->state))
                return false;
        bool bounced = rcpt->state == QFILE_RCPT_BOUNCED;
        *ret = (struct delivery_outcome){
                .status = bounced ? DELIVERY_BOUNCED : DELIVERY_SENT,
                .dsn = !isempty(rcpt->dsn_status) ? rcpt->dsn_status
                       : bounced                  ? "5.0.0"
                                                  : "2.0.0",
                .reason = "already done",
        };
        return true;
}

static bool soft_bounce;

void delivery_set_soft_bounce(bool on)
{
        soft_bounce = on;
}

bool delivery_soft_bounce_dsn(char *dsn, size_t size)
{
        if (!soft_bounce || size < sizeof "4.0.0")
                return false;
        if (dsn[0] != '5' && dsn[0] != '4')
                snprintf(dsn, size, "5.0.0");
        dsn[0] = '4';
        return true;
}

int delivery_record_outcome_unsynced(struct queue *q, int qfd, const char *queue_id, size_t idx,
                                     struct qfile_rcpt *rcpt, const char *relay, struct delivery_outcome *o,
                                     bool *ret_marked)
{
        /* Postfix's safety net while testing: the mail stays queued, the code says "try again". Valid
         * until the next call: every agent reports o before recording the next recipient. */
        static char soft_dsn[16];
        *ret_marked = false;
        if (o->status == DELIVERY_BOUNCED) {
                snprintf(soft_dsn, sizeof soft_dsn, "%s", o->dsn ? o->dsn : "");
                if (delivery_soft_bounce_dsn(soft_dsn, sizeof soft_dsn)) {
                        o->status = DELIVERY_DEFERRED;
                        o->dsn = soft_dsn;
                }
        }
        /* The notification's record before the mark: a crash between them never loses it. */
        if (o->status != DELIVERY_SENT) {
                enum queue_name log = o->status == DELIVERY_BOUNCED ? QUEUE_BOUNCE : QUEUE_DEFER;
                /* Logged inside on failure; a lost defer record only costs postqueue its reason. */
                if (dsnlog_append_rcpt(q, log, queue_id, idx, rcpt, o->dsn, relay, o->reason) < 0 &&
                    o->status == DELIVERY_BOUNCED) {
                        *o = (struct delivery_outcome){DELIVERY_DEFERRED, "4.3.0",
                                                       "cannot write the bounce log"};
                        return 0;
                }
        }
        if (o->status == DELIVERY_DEFERRED)
                return 0;
        int r = queue_mark_rcpt(qfd, rcpt,
                                o->status == DELIVERY_SENT ? QFILE_RCPT_DELIVERED : QFILE_RCPT_BOUNCED,
                                delivery_now_usec(), o->dsn, QUEUE_NOSYNC);
        if (r < 0) {
                msg_warn("%s: cannot mark recipient %s done: %s", queue_id, rcpt->address, strerror(-r));
                *o = (struct delivery_outcome){DELIVERY_DEFERRED, "4.3.0", "cannot update queue file"};
                return r;
        }
        *ret_marked = true;
        return 0;
}

int delivery_sync_marks(int qfd, const char *queue_id)
{
        if (fdatasync(qfd) == 0)
                return 0;
        int r = -errno;
        msg_warn("%s: cannot make the recipients' marks durable: %s", queue_id, strerror(-r));
        return r;
}

int delivery_record_outcome(struct queue *q, int qfd, const char *queue_id, size_t idx,
                            struct qfile_rcpt *rcpt, const char *relay, struct delivery_outcome *o)
{
        bool marked;
        int r = delivery_record_outcome_unsynced(q, qfd, queue_id, idx, rcpt, relay, o, &marked);
        /* Durable before qmgr hears of it: a crash from here on never delivers this recipient twice. */
        if (r >= 0 && marked && (r = delivery_sync_marks(qfd, queue_id)) < 0)
                *o = (struct delivery_outcome){DELIVERY_DEFERRED, "4.3.0", "cannot update queue file"};
        return r;
}

/* The largest reply: every recipient with the longest reason, index and status code, fits in one message. */
_Static_assert(4 * DELIVERY_REQUEST_RCPTS_MAX <= IPC_ATTRS_MAX, "reply attributes");
_Static_assert(DELIVERY_REQUEST_RCPTS_MAX + DELIVERY_REQUEST_FIXED_ATTRS_MAX <= IPC_ATTRS_MAX,
               "request attributes");
_Static_assert((uint64_t)DELIVERY_REQUEST_RCPTS_MAX *(4 * (1 + 4 + 10) + 20 + 8 + QFILE_MAX_DSN_STATUS_LEN +
                                                      DELIVERY_REPLY_REASON_MAX) < IPC_BODY_MAX,
               "reply size");

int delivery_reply_add(struct ipc_msg *reply, const char *index_text, const struct delivery_outcome *o)
{
        const char *reason = o->reason ? o->reason : "";
        size_t mark = reply->n_attrs;
        int r = ipc_msg_add_str(reply, "rcpt_index", index_text);
        if (r >= 0)
                r = ipc_msg_add_str(reply, "status", delivery_status_name(o->status));
        if (r >= 0)
                r = ipc_msg_add_str(reply, "dsn", o->dsn);
        if (r >= 0)
                r = ipc_msg_add(reply, "reason", reason, strnlen(reason, DELIVERY_REPLY_REASON_MAX));
        if (r < 0) {
                ipc_msg_truncate(reply, mark);
                msg_warn("reply to qmgr: recipient %.20s left out (%s); qmgr defers it", index_text,
                         strerror(-r));
        }
        return r;
}

int delivery_reply_defer_all(struct ipc_msg *reply, const struct delivery_request *r, const char *reason)
{
        const struct delivery_outcome o = {DELIVERY_DEFERRED, "4.3.0", reason};
        int ret = 0;
        for (size_t i = 0; i < r->n_rcpts; i++) {
                int k = delivery_reply_add(reply, r->rcpts[i].text, &o);
                if (k < 0 && ret == 0)
                        ret = k;
        }
        return ret;
}
