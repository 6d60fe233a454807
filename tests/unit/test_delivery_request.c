/* test_delivery_request.c: qmgr's delivery request as the agents parse it, and the shared recipient rules.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "delivery_request.h"
#include "ipc.h"
#include "unit.h"

#define QID "3F1A2B4C5D"

static void base_request(struct ipc_msg *m, const char *id)
{
        CHECK_INT(ipc_msg_add_str(m, "req", "deliver"), 0);
        if (id)
                CHECK_INT(ipc_msg_add_str(m, "queue_id", id), 0);
        CHECK_INT(ipc_msg_add_str(m, "queue", "active"), 0);
        CHECK_INT(ipc_msg_add_str(m, "nexthop", "[mx.example.net]:2525"), 0);
        CHECK_INT(ipc_msg_add_str(m, "transport", "relay"), 0);
        CHECK_INT(ipc_msg_add_int(m, "arrival_usec", 1000), 0);
        CHECK_INT(ipc_msg_add_int(m, "active_usec", 2000), 0);
}

TEST(good_request)
{
        struct ipc_msg m = IPC_MSG_INIT;
        base_request(&m, QID);
        CHECK_INT(ipc_msg_add_int(&m, "rcpt_index", 0), 0);
        CHECK_INT(ipc_msg_add_int(&m, "rcpt_index", 7), 0);
        struct delivery_request r;
        const char *why = NULL;
        CHECK_INT(delivery_request_parse(&m, &r, &why), 0);
        CHECK_STR(r.queue_id, QID);
        CHECK_INT(r.queue, QUEUE_ACTIVE);
        CHECK(r.queue_named);
        CHECK_STR(r.nexthop, "[mx.example.net]:2525");
        CHECK_STR(r.transport, "relay");
        CHECK_INT(r.arrival_usec, 1000);
        CHECK_INT(r.active_usec, 2000);
        CHECK_INT(r.n_rcpts, 2);
        CHECK(r.rcpts[0].valid && r.rcpts[1].valid);
        CHECK_INT(r.rcpts[1].index, 7);
        CHECK_STR(r.rcpts[1].text, "7");
        size_t n = 0;
        size_t *idx = delivery_request_indexes(&r, &n);
        CHECK_INT(n, 2);
        CHECK_INT(idx[0], 0);
        free(idx);
        delivery_request_done(&r);
        ipc_msg_done(&m);
}

TEST(other_queue_is_parsed)
{
        /* The smtp agent takes any queue qmgr names; local and error/discard check for active themselves. */
        struct ipc_msg m = IPC_MSG_INIT;
        CHECK_INT(ipc_msg_add_str(&m, "req", "deliver"), 0);
        CHECK_INT(ipc_msg_add_str(&m, "queue_id", QID), 0);
        CHECK_INT(ipc_msg_add_str(&m, "queue", "deferred"), 0);
        struct delivery_request r;
        const char *why = NULL;
        CHECK_INT(delivery_request_parse(&m, &r, &why), 0);
        CHECK_INT(r.queue, QUEUE_DEFERRED);
        delivery_request_done(&r);
        ipc_msg_done(&m);

        struct ipc_msg bad = IPC_MSG_INIT;
        CHECK_INT(ipc_msg_add_str(&bad, "req", "deliver"), 0);
        CHECK_INT(ipc_msg_add_str(&bad, "queue_id", QID), 0);
        CHECK_INT(ipc_msg_add_str(&bad, "queue", "nowhere"), 0);
        CHECK_INT(delivery_request_parse(&bad, &r, &why), -EINVAL);
        CHECK_STR(why, "bad queue name in delivery request");
        delivery_request_done(&r);
        ipc_msg_done(&bad);
}

TEST(missing_queue_id)
{
        struct ipc_msg m = IPC_MSG_INIT;
        base_request(&m, NULL);
        CHECK_INT(ipc_msg_add_int(&m, "rcpt_index", 3), 0);
        struct delivery_request r;
        const char *why = NULL;
        CHECK_INT(delivery_request_parse(&m, &r, &why), -EINVAL);
        CHECK_STR(why, "bad delivery request");
        CHECK_STR(r.queue_id, "");
        /* Still there to be answered "deferred". */
        CHECK_INT(r.n_rcpts, 1);
        CHECK_STR(r.rcpts[0].text, "3");
        delivery_request_done(&r);
        ipc_msg_done(&m);
}

TEST(bad_queue_id_and_req)
{
        const char *ids[] = {"../etc", "", "3F1A2B4C5D/x", "not-hex!"};
        for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
                struct ipc_msg m = IPC_MSG_INIT;
                base_request(&m, ids[i]);
                struct delivery_request r;
                const char *why = NULL;
                CHECK_INT(delivery_request_parse(&m, &r, &why), -EINVAL);
                CHECK_STR(why, "bad delivery request");
                CHECK_STR(r.queue_id, ids[i]);
                delivery_request_done(&r);
                ipc_msg_done(&m);
        }
        struct ipc_msg m = IPC_MSG_INIT;
        CHECK_INT(ipc_msg_add_str(&m, "req", "flush"), 0);
        CHECK_INT(ipc_msg_add_str(&m, "queue_id", QID), 0);
        struct delivery_request r;
        const char *why = NULL;
        CHECK_INT(delivery_request_parse(&m, &r, &why), -EINVAL);
        delivery_request_done(&r);
        ipc_msg_done(&m);
}

TEST(bad_index_text)
{
        const char *texts[] = {"-1", "1x", "", "+1", " 1", "0x10", "99999999999999999999999"};
        struct ipc_msg m = IPC_MSG_INIT;
        base_request(&m, QID);
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
                CHECK_INT(ipc_msg_add_str(&m, "rcpt_index", texts[i]), 0);
        CHECK_INT(ipc_msg_add(&m, "rcpt_index", "1\0", 2), 0); /* a NUL byte inside */
        CHECK_INT(ipc_msg_add_str(&m, "rcpt_index", "12"), 0);
        struct delivery_request r;
        const char *why = NULL;
        CHECK_INT(delivery_request_parse(&m, &r, &why), 0);
        CHECK_INT(r.n_rcpts, sizeof texts / sizeof texts[0] + 2);
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
                CHECK(!r.rcpts[i].valid);
                /* Kept as sent: the reply names it the same way. */
                CHECK_STR(r.rcpts[i].text, texts[i]);
        }
        CHECK(!r.rcpts[r.n_rcpts - 2].valid);
        CHECK(r.rcpts[r.n_rcpts - 1].valid);
        CHECK_INT(r.rcpts[r.n_rcpts - 1].index, 12);
        size_t n = 0;
        size_t *idx = delivery_request_indexes(&r, &n);
        CHECK_INT(n, 1);
        CHECK_INT(idx[0], 12);
        free(idx);

        /* An invalid or out-of-range index names no recipient of the file. */
        struct qfile_rcpt rcpts[2] = {{.address = "a@example.net"}, {.address = "b@example.net"}};
        struct qfile_msg msg = {.rcpts = rcpts, .n_rcpts = 2};
        CHECK(delivery_request_rcpt(&r.rcpts[0], &msg) == NULL);
        CHECK(delivery_request_rcpt(&r.rcpts[r.n_rcpts - 1], &msg) == NULL);
        struct delivery_request_rcpt one = {.text = "1", .index = 1, .valid = true};
        CHECK(delivery_request_rcpt(&one, &msg) == &rcpts[1]);
        delivery_request_done(&r);
        ipc_msg_done(&m);
}

/* A message of n rcpt_index attributes after the base ones, built by hand: the builders stop at
 * IPC_ATTRS_MAX, below the parser's own limit. */
static void many_indexes(struct ipc_msg *m, size_t n)
{
        base_request(m, QID);
        size_t base = m->n_attrs;
        m->attrs = xrealloc(m->attrs, (base + n) * sizeof *m->attrs);
        m->cap_attrs = base + n;
        for (size_t i = 0; i < n; i++) {
                char *v = xasprintf("%zu", i);
                m->attrs[base + i] = (struct ipc_attr){xstrdup("rcpt_index"), v, strlen(v)};
        }
        m->n_attrs = base + n;
}

TEST(too_many_indexes)
{
        struct ipc_msg m = IPC_MSG_INIT;
        many_indexes(&m, DELIVERY_REQUEST_RCPTS_MAX + 1);
        struct delivery_request r;
        const char *why = NULL;
        CHECK_INT(delivery_request_parse(&m, &r, &why), -E2BIG);
        CHECK_STR(why, "too many recipients in delivery request");
        /* Bounded, and still answerable. */
        CHECK_INT(r.n_rcpts, DELIVERY_REQUEST_RCPTS_MAX);
        delivery_request_done(&r);
        ipc_msg_done(&m);

        struct ipc_msg ok = IPC_MSG_INIT;
        many_indexes(&ok, DELIVERY_REQUEST_RCPTS_MAX);
        CHECK_INT(delivery_request_parse(&ok, &r, &why), 0);
        CHECK_INT(r.n_rcpts, DELIVERY_REQUEST_RCPTS_MAX);
        CHECK_INT(r.rcpts[DELIVERY_REQUEST_RCPTS_MAX - 1].index, DELIVERY_REQUEST_RCPTS_MAX - 1);
        delivery_request_done(&r);
        ipc_msg_done(&ok);
}

TEST(optional_fields_default)
{
        struct ipc_msg m = IPC_MSG_INIT;
        CHECK_INT(ipc_msg_add_str(&m, "req", "deliver"), 0);
        CHECK_INT(ipc_msg_add_str(&m, "queue_id", QID), 0);
        struct delivery_request r;
        const char *why = NULL;
        CHECK_INT(delivery_request_parse(&m, &r, &why), 0);
        CHECK_INT(r.queue, QUEUE_ACTIVE);
        CHECK(!r.queue_named);
        CHECK_STR(r.nexthop, "");
        CHECK_STR(r.transport, "");
        CHECK_INT(r.arrival_usec, 0);
        CHECK_INT(r.active_usec, 0);
        CHECK_INT(r.n_rcpts, 0);
        delivery_request_done(&r);
        ipc_msg_done(&m);

        /* Times that are not positive numbers count as absent. */
        struct ipc_msg t = IPC_MSG_INIT;
        CHECK_INT(ipc_msg_add_str(&t, "req", "deliver"), 0);
        CHECK_INT(ipc_msg_add_str(&t, "queue_id", QID), 0);
        CHECK_INT(ipc_msg_add_int(&t, "arrival_usec", -5), 0);
        CHECK_INT(ipc_msg_add_str(&t, "active_usec", "soon"), 0);
        CHECK_INT(delivery_request_parse(&t, &r, &why), 0);
        CHECK_INT(r.arrival_usec, 0);
        CHECK_INT(r.active_usec, 0);
        delivery_request_done(&r);
        ipc_msg_done(&t);
}

TEST(already_done)
{
        struct qfile_rcpt pending = {.address = "a@example.net"};
        struct delivery_outcome o;
        CHECK(!delivery_rcpt_already_done(&pending, &o));

        struct qfile_rcpt sent = {.address = "a@example.net", .state = QFILE_RCPT_DELIVERED};
        snprintf(sent.dsn_status, sizeof sent.dsn_status, "2.1.5");
        CHECK(delivery_rcpt_already_done(&sent, &o));
        CHECK_INT(o.status, DELIVERY_SENT);
        CHECK_STR(o.dsn, "2.1.5");
        CHECK_STR(o.reason, "already done");

        struct qfile_rcpt bounced = {.address = "a@example.net", .state = QFILE_RCPT_BOUNCED};
        CHECK(delivery_rcpt_already_done(&bounced, &o));
        CHECK_INT(o.status, DELIVERY_BOUNCED);
        CHECK_STR(o.dsn, "5.0.0");
}

TEST(reply_groups)
{
        struct ipc_msg m = IPC_MSG_INIT;
        base_request(&m, QID);
        CHECK_INT(ipc_msg_add_str(&m, "rcpt_index", "4"), 0);
        CHECK_INT(ipc_msg_add_str(&m, "rcpt_index", "x"), 0);
        struct delivery_request r;
        const char *why = NULL;
        CHECK_INT(delivery_request_parse(&m, &r, &why), 0);
        struct ipc_msg reply = IPC_MSG_INIT;
        delivery_reply_defer_all(&reply, &r, "queue file unavailable");
        CHECK_INT(reply.n_attrs, 8);
        CHECK_STR(reply.attrs[0].value, "4");
        CHECK_STR(reply.attrs[1].value, "deferred");
        CHECK_STR(reply.attrs[2].value, "4.3.0");
        CHECK_STR(reply.attrs[3].value, "queue file unavailable");
        CHECK_STR(reply.attrs[4].value, "x");
        ipc_msg_done(&reply);
        delivery_request_done(&r);
        ipc_msg_done(&m);
}

/* The largest request qmgr makes gets a whole reply in one message, even with the longest reasons. */
TEST(largest_reply_fits)
{
        struct ipc_msg m = IPC_MSG_INIT;
        many_indexes(&m, DELIVERY_REQUEST_RCPTS_MAX);
        struct delivery_request r;
        const char *why = NULL;
        CHECK_INT(delivery_request_parse(&m, &r, &why), 0);
        char *reason = xmalloc(3 * DELIVERY_REPLY_REASON_MAX);
        memset(reason, 'r', 3 * DELIVERY_REPLY_REASON_MAX - 1);
        reason[3 * DELIVERY_REPLY_REASON_MAX - 1] = '\0';
        struct ipc_msg reply = IPC_MSG_INIT;
        CHECK_INT(delivery_reply_defer_all(&reply, &r, reason), 0);
        CHECK_INT(reply.n_attrs, 4 * DELIVERY_REQUEST_RCPTS_MAX);
        CHECK_INT(ipc_msg_find(&reply, "reason")->value_len, DELIVERY_REPLY_REASON_MAX);
        struct buf b = BUF_INIT;
        CHECK_INT(ipc_encode(&reply, &b), 0);
        buf_done(&b);

        /* Past the limits, a group is left out whole (qmgr defers it), never cut. */
        struct ipc_msg full = IPC_MSG_INIT;
        for (unsigned i = 0; i < IPC_ATTRS_MAX - 2; i++)
                CHECK_INT(ipc_msg_add_str(&full, "x", "y"), 0);
        const struct delivery_outcome o = {DELIVERY_SENT, "2.0.0", "ok"};
        CHECK_INT(delivery_reply_add(&full, "5", &o), -E2BIG);
        CHECK_INT(full.n_attrs, IPC_ATTRS_MAX - 2);
        ipc_msg_done(&full);
        ipc_msg_done(&reply);
        free(reason);
        delivery_request_done(&r);
        ipc_msg_done(&m);
}
