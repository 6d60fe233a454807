/* test_agent.c: error/discard verdicts from nexthop texts, and one delivery request served end to end. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "alloc.h"
#include "dsnlog.h"
#include "ipc.h"
#include "queue.h"
#include "unit.h"

TEST(verdict_plain_text)
{
        struct agent_verdict v;
        agent_verdict_from_text("mail for example.net is not deliverable", AGENT_BOUNCED, '5', "x", &v);
        CHECK_INT(v.result, AGENT_BOUNCED);
        CHECK_STR(v.dsn, "5.0.0");
        CHECK_STR(v.reason, "mail for example.net is not deliverable");
}

TEST(verdict_leading_dsn)
{
        struct agent_verdict v;
        agent_verdict_from_text("  5.1.1 no such user here  ", AGENT_BOUNCED, '5', "x", &v);
        CHECK_STR(v.dsn, "5.1.1");
        CHECK_STR(v.reason, "no such user here");
        /* The class follows the transport: error never reports a temporary failure, retry never a hard one.
         */
        agent_verdict_from_text("4.7.1 go away", AGENT_BOUNCED, '5', "x", &v);
        CHECK_STR(v.dsn, "5.7.1");
        CHECK_STR(v.reason, "go away");
        agent_verdict_from_text("5.4.4 later", AGENT_DEFERRED, '4', "x", &v);
        CHECK_STR(v.dsn, "4.4.4");
        CHECK_INT(v.result, AGENT_DEFERRED);
        agent_verdict_from_text("2.123.999 silenced", AGENT_SENT, '2', "x", &v);
        CHECK_STR(v.dsn, "2.123.999");
        CHECK_STR(v.reason, "silenced");
}

TEST(verdict_not_a_code)
{
        struct agent_verdict v;
        /* Each of these is text, not a status code: wrong class, missing part, too many digits, no blank. */
        const char *texts[] = {"3.1.1 text", "5.1 text",  "5.1234.1 text", "5.1.1234 text",
                               "5.1.1text",  "5..1 text", "x5.1.1 text"};
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
                agent_verdict_from_text(texts[i], AGENT_BOUNCED, '5', "x", &v);
                CHECK_STR(v.dsn, "5.0.0");
                CHECK_STR(v.reason, texts[i]);
        }
}

TEST(verdict_empty_and_long)
{
        struct agent_verdict v;
        agent_verdict_from_text("", AGENT_SENT, '2', "discarded", &v);
        CHECK_STR(v.dsn, "2.0.0");
        CHECK_STR(v.reason, "discarded");
        agent_verdict_from_text("5.1.1", AGENT_BOUNCED, '5', "mail delivery disabled", &v);
        CHECK_STR(v.dsn, "5.1.1");
        CHECK_STR(v.reason, "mail delivery disabled");
        agent_verdict_from_text(NULL, AGENT_BOUNCED, '5', NULL, &v);
        CHECK_STR(v.reason, "");
        char *big = xmalloc(3 * AGENT_REASON_MAX);
        memset(big, 'a', 3 * AGENT_REASON_MAX - 1);
        big[3 * AGENT_REASON_MAX - 1] = '\0';
        agent_verdict_from_text(big, AGENT_BOUNCED, '5', "x", &v);
        CHECK_INT(strlen(v.reason), AGENT_REASON_MAX - 1);
        free(big);
}

/* ---- agent_serve against a real queue directory ---- */

static char *make_queue(const char *name)
{
        char *dir = xasprintf("%s/%s", unit_tmpdir(), name);
        struct queue_owners o = {getuid(), getgid(), getgid(), getuid(), getgid()};
        if (queue_layout_create(dir, &o) < 0)
                abort();
        return dir;
}

/* A message with n recipients in active/; the ID in id. */
static int queue_active(struct queue *q, size_t n, char id[static QUEUE_ID_BUF_SIZE])
{
        static const char body[] = "Subject: t\n\nbody\n";
        struct qfile_rcpt r[3] = {
                {.address = "a@example.net"}, {.address = "b@example.net"}, {.address = "c@example.net"}};
        struct qfile_msg m = {.arrival_usec = 1,
                              .sender = "s@example.org",
                              .rcpts = r,
                              .n_rcpts = n,
                              .ready = true,
                              .content = body,
                              .content_len = sizeof body - 1};
        struct queue_file *f;
        int e = queue_file_create(q, &f);
        if (e < 0)
                return e;
        snprintf(id, QUEUE_ID_BUF_SIZE, "%s", queue_file_id(f));
        e = queue_file_write(f, &m, 0);
        if (e >= 0)
                e = queue_file_commit(q, f);
        queue_file_free(f);
        return e < 0 ? e : queue_move(q, id, QUEUE_INCOMING, QUEUE_ACTIVE, 0);
}

struct decided {
        char nexthop[256], transport[64];
        enum agent_result result;
        char cls;
};

static void decide(void *userdata, const char *nexthop, const char *transport, struct agent_verdict *ret)
{
        struct decided *d = userdata;
        snprintf(d->nexthop, sizeof d->nexthop, "%s", nexthop);
        snprintf(d->transport, sizeof d->transport, "%s", transport);
        agent_verdict_from_text(nexthop, d->result, d->cls, "fallback", ret);
}

/* Send req, let the agent serve it, return its reply. */
static int serve(struct queue *q, const struct ipc_msg *req, struct decided *d, struct ipc_msg *reply)
{
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        int r = ipc_send(sv[0], req, 1000);
        if (r >= 0) {
                agent_serve(q, sv[1], decide, d);
                r = ipc_recv(sv[0], reply, 1000);
        }
        close(sv[0]);
        close(sv[1]);
        return r;
}

static void deliver_req(struct ipc_msg *req, const char *id, const char *nexthop, const char *transport)
{
        CHECK_INT(ipc_msg_add_str(req, "req", "deliver"), 0);
        CHECK_INT(ipc_msg_add_str(req, "queue_id", id), 0);
        CHECK_INT(ipc_msg_add_str(req, "queue", "active"), 0);
        CHECK_INT(ipc_msg_add_str(req, "nexthop", nexthop), 0);
        CHECK_INT(ipc_msg_add_str(req, "transport", transport), 0);
        CHECK_INT(ipc_msg_add_int(req, "arrival_usec", 1), 0);
}

static int read_states(struct queue *q, const char *id, enum qfile_rcpt_state *st, size_t n)
{
        int fd;
        int r = queue_open_file(q, id, QUEUE_ACTIVE, O_RDONLY, &fd);
        if (r < 0)
                return r;
        char *data = NULL;
        size_t len = 0;
        struct qfile_msg m = {0};
        r = queue_read_fd(fd, &data, &len);
        close(fd);
        if (r >= 0)
                r = qfile_decode(data, len, &m, NULL);
        for (size_t i = 0; r >= 0 && i < n && i < m.n_rcpts; i++)
                st[i] = m.rcpts[i].state;
        qfile_msg_done(&m);
        free(data);
        return r;
}

/* The values of attribute name in reply order. */
static const char *nth(const struct ipc_msg *m, const char *name, size_t k)
{
        for (size_t i = 0; i < m->n_attrs; i++)
                if (strcmp(m->attrs[i].name, name) == 0 && k-- == 0)
                        return m->attrs[i].value;
        return NULL;
}

TEST(serve_error_bounces_with_records)
{
        char *dir = make_queue("error");
        struct queue *q;
        CHECK_INT(queue_open(dir, &q), 0);
        char id[QUEUE_ID_BUF_SIZE];
        CHECK_INT(queue_active(q, 3, id), 0);

        struct ipc_msg req = IPC_MSG_INIT, reply = IPC_MSG_INIT;
        deliver_req(&req, id, "5.1.1 nobody here", "error");
        CHECK_INT(ipc_msg_add_int(&req, "rcpt_index", 2), 0);
        CHECK_INT(ipc_msg_add_int(&req, "rcpt_index", 0), 0);
        CHECK_INT(ipc_msg_add_int(&req, "rcpt_index", 7), 0); /* past the end */
        struct decided d = {.result = AGENT_BOUNCED, .cls = '5'};
        CHECK_INT(serve(q, &req, &d, &reply), 0);
        CHECK_STR(d.nexthop, "5.1.1 nobody here");
        CHECK_STR(d.transport, "error");

        /* One group per requested recipient, in request order. */
        CHECK_STR(nth(&reply, "rcpt_index", 0), "2");
        CHECK_STR(nth(&reply, "status", 0), "bounced");
        CHECK_STR(nth(&reply, "dsn", 0), "5.1.1");
        CHECK_STR(nth(&reply, "reason", 0), "nobody here");
        CHECK_STR(nth(&reply, "rcpt_index", 1), "0");
        CHECK_STR(nth(&reply, "status", 1), "bounced");
        CHECK_STR(nth(&reply, "rcpt_index", 2), "7");
        CHECK_STR(nth(&reply, "status", 2), "deferred");
        CHECK(nth(&reply, "rcpt_index", 3) == NULL);

        enum qfile_rcpt_state st[3];
        CHECK_INT(read_states(q, id, st, 3), 0);
        CHECK_INT(st[0], QFILE_RCPT_BOUNCED);
        CHECK_INT(st[1], QFILE_RCPT_PENDING);
        CHECK_INT(st[2], QFILE_RCPT_BOUNCED);

        /* The notification's records exist for both returned recipients. */
        struct dsnlog l = {0};
        CHECK_INT(dsnlog_read(q, QUEUE_BOUNCE, id, &l), 0);
        CHECK_INT(l.n, 2);
        CHECK_STR(l.recs[0].rcpt, "c@example.net");
        CHECK_INT(l.recs[0].index, 2);
        CHECK_STR(l.recs[0].status, "5.1.1");
        CHECK_STR(l.recs[0].reason, "nobody here");
        CHECK_STR(l.recs[0].relay, "none");
        CHECK_STR(l.recs[1].rcpt, "a@example.net");
        dsnlog_done(&l);

        /* A second request for a recipient already done reports it done, without a second record. */
        ipc_msg_done(&reply);
        struct ipc_msg req2 = IPC_MSG_INIT;
        deliver_req(&req2, id, "other text", "error");
        CHECK_INT(ipc_msg_add_int(&req2, "rcpt_index", 0), 0);
        CHECK_INT(serve(q, &req2, &d, &reply), 0);
        CHECK_STR(nth(&reply, "status", 0), "bounced");
        CHECK_STR(nth(&reply, "reason", 0), "already done");
        CHECK_INT(dsnlog_read(q, QUEUE_BOUNCE, id, &l), 0);
        CHECK_INT(l.n, 2);
        dsnlog_done(&l);

        ipc_msg_done(&req);
        ipc_msg_done(&req2);
        ipc_msg_done(&reply);
        queue_close(q);
        free(dir);
}

TEST(serve_discard_and_retry)
{
        char *dir = make_queue("discard");
        struct queue *q;
        CHECK_INT(queue_open(dir, &q), 0);
        char id[QUEUE_ID_BUF_SIZE];
        CHECK_INT(queue_active(q, 2, id), 0);

        /* retry: deferred, a defer/ record for postqueue, the slot left pending. */
        struct ipc_msg req = IPC_MSG_INIT, reply = IPC_MSG_INIT;
        deliver_req(&req, id, "4.4.1 peer is being repaired", "retry");
        CHECK_INT(ipc_msg_add_int(&req, "rcpt_index", 1), 0);
        struct decided d = {.result = AGENT_DEFERRED, .cls = '4'};
        CHECK_INT(serve(q, &req, &d, &reply), 0);
        CHECK_STR(nth(&reply, "status", 0), "deferred");
        CHECK_STR(nth(&reply, "dsn", 0), "4.4.1");
        CHECK_STR(nth(&reply, "reason", 0), "peer is being repaired");
        enum qfile_rcpt_state st[2];
        CHECK_INT(read_states(q, id, st, 2), 0);
        CHECK_INT(st[1], QFILE_RCPT_PENDING);
        CHECK_INT(dsnlog_exists(q, QUEUE_DEFER, id), 1);
        CHECK_INT(dsnlog_exists(q, QUEUE_BOUNCE, id), 0);
        ipc_msg_done(&req);
        ipc_msg_done(&reply);

        /* discard: both delivered, no per-message log. */
        struct ipc_msg req2 = IPC_MSG_INIT;
        deliver_req(&req2, id, "", "discard");
        CHECK_INT(ipc_msg_add_int(&req2, "rcpt_index", 0), 0);
        CHECK_INT(ipc_msg_add_int(&req2, "rcpt_index", 1), 0);
        d = (struct decided){.result = AGENT_SENT, .cls = '2'};
        CHECK_INT(serve(q, &req2, &d, &reply), 0);
        CHECK_STR(nth(&reply, "status", 0), "sent");
        CHECK_STR(nth(&reply, "status", 1), "sent");
        CHECK_STR(nth(&reply, "dsn", 1), "2.0.0");
        CHECK_STR(nth(&reply, "reason", 1), "fallback");
        CHECK_INT(read_states(q, id, st, 2), 0);
        CHECK_INT(st[0], QFILE_RCPT_DELIVERED);
        CHECK_INT(st[1], QFILE_RCPT_DELIVERED);
        CHECK_INT(dsnlog_exists(q, QUEUE_BOUNCE, id), 0);
        ipc_msg_done(&req2);
        ipc_msg_done(&reply);
        queue_close(q);
        free(dir);
}

TEST(serve_bad_requests)
{
        char *dir = make_queue("bad");
        struct queue *q;
        CHECK_INT(queue_open(dir, &q), 0);
        struct decided d = {.result = AGENT_BOUNCED, .cls = '5'};

        /* Not in active/: every recipient deferred, nothing decided. */
        struct ipc_msg req = IPC_MSG_INIT, reply = IPC_MSG_INIT;
        deliver_req(&req, "3F1A2B4C5D", "text", "error");
        CHECK_INT(ipc_msg_add_int(&req, "rcpt_index", 0), 0);
        CHECK_INT(serve(q, &req, &d, &reply), 0);
        CHECK_STR(nth(&reply, "status", 0), "deferred");
        CHECK_STR(nth(&reply, "reason", 0), "queue file unavailable");
        CHECK_STR(d.transport, "");
        ipc_msg_done(&req);
        ipc_msg_done(&reply);

        /* A queue ID that could name a path outside the queue. */
        struct ipc_msg req2 = IPC_MSG_INIT;
        deliver_req(&req2, "../etc", "text", "error");
        CHECK_INT(ipc_msg_add_int(&req2, "rcpt_index", 0), 0);
        CHECK_INT(serve(q, &req2, &d, &reply), 0);
        CHECK_STR(nth(&reply, "status", 0), "deferred");
        CHECK_STR(nth(&reply, "reason", 0), "bad delivery request");
        ipc_msg_done(&req2);
        ipc_msg_done(&reply);
        queue_close(q);
        free(dir);
}
