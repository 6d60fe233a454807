/* test_ipc.c: the ipc codec (framing, limits, malformed input) and its blocking and buffered transports. */
#include "unit.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "alloc.h"
#include "buf.h"
#include "ipc.h"

TEST(ipc_round_trip)
{
        struct ipc_msg m = IPC_MSG_INIT, d = IPC_MSG_INIT;
        CHECK_INT(ipc_msg_add_str(&m, "request", "wakeup"), 0);
        CHECK_INT(ipc_msg_add_int(&m, "count", -42), 0);
        CHECK_INT(ipc_msg_add(&m, "blob", "a\0b", 3), 0);
        CHECK_INT(ipc_msg_add_str(&m, "rcpt", "one@example.com"), 0);
        CHECK_INT(ipc_msg_add_str(&m, "rcpt", "two@example.com"), 0);
        CHECK_INT(ipc_msg_add_str(&m, "empty", ""), 0);

        struct buf b = BUF_INIT;
        CHECK_INT(ipc_encode(&m, &b), 0);
        /* header: big-endian body length */
        size_t body = ((size_t)(unsigned char)b.data[0] << 24) | ((size_t)(unsigned char)b.data[1] << 16) |
                      ((size_t)(unsigned char)b.data[2] << 8) | (unsigned char)b.data[3];
        CHECK_INT(body + 4, b.len);
        /* first attribute: u8 name length, name, u32 value length, value */
        CHECK_INT(b.data[4], 7);
        CHECK(memcmp(b.data + 5, "request", 7) == 0);
        CHECK(memcmp(b.data + 12, "\0\0\0\6wakeup", 10) == 0);

        size_t used = 0;
        CHECK_INT(ipc_decode_frame(b.data, b.len, &d, &used), 1);
        CHECK_INT(used, b.len);
        CHECK_INT(d.n_attrs, 6);
        CHECK_STR(ipc_msg_get_str(&d, "request"), "wakeup");
        long long v = 0;
        CHECK_INT(ipc_msg_get_int(&d, "count", &v), 0);
        CHECK_INT(v, -42);
        CHECK_INT(ipc_msg_get_int(&d, "request", &v), -EINVAL);
        CHECK_INT(ipc_msg_get_int(&d, "nothere", &v), -ENOENT);
        CHECK(ipc_msg_get_str(&d, "blob") == NULL); /* contains a NUL: not a string */
        CHECK_INT(ipc_msg_find(&d, "blob")->value_len, 3);
        CHECK(memcmp(ipc_msg_find(&d, "blob")->value, "a\0b", 3) == 0);
        CHECK_STR(ipc_msg_get_str(&d, "rcpt"), "one@example.com"); /* first of repeated names */
        CHECK_STR(d.attrs[4].value, "two@example.com");
        CHECK_STR(ipc_msg_get_str(&d, "empty"), "");
        ipc_msg_done(&d);
        ipc_msg_done(&m);
        buf_done(&b);
}

TEST(ipc_partial_frames_need_more)
{
        struct ipc_msg m = IPC_MSG_INIT, d = IPC_MSG_INIT;
        CHECK_INT(ipc_msg_add_str(&m, "a", "hello"), 0);
        struct buf b = BUF_INIT;
        CHECK_INT(ipc_encode(&m, &b), 0);
        size_t used = 0;
        for (size_t n = 0; n < b.len; n++)
                CHECK_INT(ipc_decode_frame(b.data, n, &d, &used), 0);
        CHECK_INT(ipc_decode_frame(b.data, b.len, &d, &used), 1);
        ipc_msg_done(&d);
        /* an empty message is valid */
        ipc_msg_done(&m);
        buf_truncate(&b, 0);
        CHECK_INT(ipc_encode(&m, &b), 0);
        CHECK_INT(b.len, 4);
        CHECK_INT(ipc_decode_frame(b.data, b.len, &d, &used), 1);
        CHECK_INT(d.n_attrs, 0);
        ipc_msg_done(&d);
        buf_done(&b);
}

TEST(ipc_rejects_malformed)
{
        struct ipc_msg d = IPC_MSG_INIT;
        size_t used = 0;
        /* body length beyond the limit: refused from the header alone */
        CHECK_INT(ipc_decode_frame("\xff\xff\xff\xff", 4, &d, &used), -EMSGSIZE);
        /* zero-length name */
        CHECK_INT(ipc_decode_frame("\0\0\0\5\0\0\0\0\0", 9, &d, &used), -EBADMSG);
        /* name with a bad character */
        CHECK_INT(ipc_decode_frame("\0\0\0\6\1 \0\0\0\0", 10, &d, &used), -EBADMSG);
        /* value length beyond the body */
        CHECK_INT(ipc_decode_frame("\0\0\0\6\1a\0\0\0\1", 10, &d, &used), -EBADMSG);
        /* name length beyond the body */
        CHECK_INT(ipc_decode_frame("\0\0\0\2\5a", 6, &d, &used), -EBADMSG);
        /* truncated value length field */
        CHECK_INT(ipc_decode_frame("\0\0\0\4\1a\0\0", 8, &d, &used), -EBADMSG);
        /* name longer than IPC_NAME_MAX */
        char longname[IPC_NAME_MAX + 2];
        memset(longname, 'x', sizeof longname - 1);
        longname[sizeof longname - 1] = '\0';
        struct ipc_msg m = IPC_MSG_INIT;
        CHECK_INT(ipc_msg_add_str(&m, longname, "v"), -EINVAL);
        CHECK_INT(ipc_msg_add_str(&m, "bad name", "v"), -EINVAL);
        longname[IPC_NAME_MAX] = '\0';
        CHECK_INT(ipc_msg_add_str(&m, longname, "v"), 0);
        ipc_msg_done(&m);
}

TEST(ipc_limits_on_builder)
{
        struct ipc_msg m = IPC_MSG_INIT;
        for (unsigned i = 0; i < IPC_ATTRS_MAX; i++)
                CHECK_INT(ipc_msg_add_str(&m, "r", "x"), 0);
        CHECK_INT(ipc_msg_add_str(&m, "r", "x"), -E2BIG);
        ipc_msg_done(&m);

        char *big = xmalloc(IPC_BODY_MAX);
        memset(big, 'a', IPC_BODY_MAX);
        CHECK_INT(ipc_msg_add(&m, "big", big, IPC_BODY_MAX), -E2BIG);
        CHECK_INT(ipc_msg_add(&m, "big", big, IPC_BODY_MAX - 8), 0); /* 1 + 3 + 4 + value fits exactly */
        CHECK_INT(ipc_msg_add(&m, "x", "", 0), -E2BIG);
        struct buf b = BUF_INIT;
        CHECK_INT(ipc_encode(&m, &b), 0);
        struct ipc_msg d = IPC_MSG_INIT;
        size_t used = 0;
        CHECK_INT(ipc_decode_frame(b.data, b.len, &d, &used), 1);
        CHECK_INT(ipc_msg_find(&d, "big")->value_len, IPC_BODY_MAX - 8);
        ipc_msg_done(&d);
        ipc_msg_done(&m);
        buf_done(&b);
        free(big);

        /* a decoded message with more than IPC_ATTRS_MAX attributes is refused */
        size_t n = IPC_ATTRS_MAX + 1, each = 1 + 1 + 4;
        unsigned char *raw = xcalloc(4 + n * each, 1);
        size_t len = n * each;
        raw[0] = (unsigned char)(len >> 24), raw[1] = (unsigned char)(len >> 16),
        raw[2] = (unsigned char)(len >> 8), raw[3] = (unsigned char)len;
        for (size_t i = 0; i < n; i++) {
                raw[4 + i * each] = 1;
                raw[4 + i * each + 1] = 'a';
        }
        CHECK_INT(ipc_decode_frame(raw, 4 + len, &d, &used), -EBADMSG);
        CHECK_INT(ipc_decode_frame(raw, 4 + len - each, &d, &used), 0); /* the header promises more */
        free(raw);
}

TEST(ipc_blocking_send_recv_and_timeout)
{
        int sv[2];
        CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        struct ipc_msg m = IPC_MSG_INIT, d = IPC_MSG_INIT;
        CHECK_INT(ipc_msg_add_str(&m, "status", "ok"), 0);
        CHECK_INT(ipc_send(sv[0], &m, 1000), 0);
        CHECK_INT(ipc_recv(sv[1], &d, 1000), 0);
        CHECK_STR(ipc_msg_get_str(&d, "status"), "ok");
        ipc_msg_done(&d);
        /* nothing to read: times out */
        CHECK_INT(ipc_recv(sv[1], &d, 50), -ETIMEDOUT);
        /* half a message then EOF */
        CHECK_INT(write(sv[0], "\0\0\0\7\1a", 6), 6);
        close(sv[0]);
        CHECK_INT(ipc_recv(sv[1], &d, 1000), -ECONNRESET);
        close(sv[1]);
        ipc_msg_done(&m);
}

TEST(ipc_conn_buffered)
{
        int sv[2];
        CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
        struct ipc_conn a, b;
        ipc_conn_init(&a, sv[0]);
        ipc_conn_init(&b, sv[1]);
        struct ipc_msg m = IPC_MSG_INIT, d = IPC_MSG_INIT;
        CHECK_INT(ipc_msg_add_str(&m, "n", "1"), 0);
        CHECK_INT(ipc_conn_queue(&a, &m), 0);
        CHECK_INT(ipc_conn_queue(&a, &m), 0);
        CHECK(ipc_conn_want_write(&a));
        CHECK_INT(ipc_conn_flush(&a), 0);
        CHECK(!ipc_conn_want_write(&a));

        CHECK_INT(ipc_conn_next(&b, &d), 0);
        CHECK_INT(ipc_conn_read(&b), 0);
        CHECK_INT(ipc_conn_next(&b, &d), 1);
        ipc_msg_done(&d);
        CHECK_INT(ipc_conn_next(&b, &d), 1);
        ipc_msg_done(&d);
        CHECK_INT(ipc_conn_next(&b, &d), 0);
        CHECK(!b.eof);

        /* a big message does not fit the socket buffer at once: flush reports -EAGAIN until read */
        ipc_msg_done(&m);
        char *big = xmalloc(1024 * 1024);
        memset(big, 'z', 1024 * 1024);
        CHECK_INT(ipc_msg_add(&m, "big", big, 1024 * 1024), 0);
        CHECK_INT(ipc_conn_queue(&a, &m), 0);
        int r = ipc_conn_flush(&a), got = 0;
        CHECK_INT(r, -EAGAIN);
        for (int i = 0; i < 10000 && !got; i++) {
                CHECK_INT(ipc_conn_read(&b), 0);
                r = ipc_conn_flush(&a);
                CHECK(r == 0 || r == -EAGAIN);
                got = ipc_conn_next(&b, &d);
                CHECK(got >= 0);
        }
        CHECK_INT(got, 1);
        CHECK_INT(ipc_msg_find(&d, "big")->value_len, 1024 * 1024);
        ipc_msg_done(&d);

        /* garbage is a protocol error, EOF is seen */
        CHECK_INT(write(sv[0], "\xff\xff\xff\xff", 4), 4);
        close(sv[0]);
        CHECK_INT(ipc_conn_read(&b), 0);
        CHECK(b.eof);
        CHECK_INT(ipc_conn_next(&b, &d), -EMSGSIZE);
        ipc_conn_done(&a);
        ipc_conn_done(&b);
        close(sv[1]);
        ipc_msg_done(&m);
        free(big);
}

TEST(ipc_group_all_or_nothing)
{
        struct ipc_msg m = IPC_MSG_INIT;
        for (unsigned i = 0; i < IPC_ATTRS_MAX - 2; i++)
                CHECK_INT(ipc_msg_add_str(&m, "r", "x"), 0);
        size_t body = m.body_len;
        const struct ipc_kv three[] = {{"rcpt", "a@b", 3}, {"orcpt", "rfc822;a@b", 10}, {"notify", "2", 1}};
        /* Two would fit, three do not: nothing of the group stays. */
        CHECK_INT(ipc_msg_add_group(&m, three, 3), -E2BIG);
        CHECK_INT(m.n_attrs, IPC_ATTRS_MAX - 2);
        CHECK_INT(m.body_len, body);
        CHECK_INT(ipc_msg_add_group(&m, three, 2), 0);
        CHECK_INT(m.n_attrs, IPC_ATTRS_MAX);
        ipc_msg_truncate(&m, 1);
        CHECK_INT(m.n_attrs, 1);
        CHECK_INT(m.body_len, 1 + 4 + 1 + 1);
        const struct ipc_kv bad[] = {{"ok", "v", 1}, {"bad name", "v", 1}};
        CHECK_INT(ipc_msg_add_group(&m, bad, 2), -EINVAL);
        CHECK_INT(m.n_attrs, 1);
        struct buf b = BUF_INIT;
        CHECK_INT(ipc_encode(&m, &b), 0);
        CHECK_INT(b.len, IPC_HEADER_SIZE + 7);
        buf_done(&b);
        ipc_msg_done(&m);
}

struct sent {
        struct strv names, values; /* every attribute of every message sent, in order */
        size_t n_msgs;
        size_t fail_at; /* 1-based message number whose send fails; 0: none */
};

static int collect(const struct ipc_msg *m, void *userdata)
{
        struct sent *s = userdata;
        if (++s->n_msgs == s->fail_at)
                return -EPIPE;
        /* Each message must decode on its own: re-encode and decode it. */
        struct buf b = BUF_INIT;
        struct ipc_msg d = IPC_MSG_INIT;
        size_t used = 0;
        if (ipc_encode(m, &b) < 0 || ipc_decode_frame(b.data, b.len, &d, &used) != 1)
                return -EBADMSG;
        buf_done(&b);
        if (!streq(d.attrs[0].name, "req") || !streq(d.attrs[0].value, "rcpt") ||
            !streq(d.attrs[1].name, "rcpt")) {
                ipc_msg_done(&d);
                return -EBADMSG; /* a head, then a whole group: never a group cut in two */
        }
        for (size_t i = 1; i < d.n_attrs; i++) {
                strv_push(&s->names, d.attrs[i].name);
                strv_push(&s->values, d.attrs[i].value);
        }
        ipc_msg_done(&d);
        return 0;
}

/* Many more recipients than one message holds: every one arrives, in order, in whole groups. */
TEST(ipc_batch_splits_in_whole_groups)
{
        static const struct ipc_kv head[] = {{"req", "rcpt", 4}};
        struct sent s = {STRV_INIT, STRV_INIT, 0, 0};
        struct ipc_batch b;
        CHECK_INT(ipc_batch_init(&b, head, 1, collect, &s), 0);
        const size_t n = 1500; /* x3 attributes: beyond IPC_ATTRS_MAX */
        for (size_t i = 0; i < n; i++) {
                char addr[32], orcpt[40];
                snprintf(addr, sizeof addr, "u%zu@example.test", i);
                snprintf(orcpt, sizeof orcpt, "rfc822;%s", addr);
                const struct ipc_kv g[] = {
                        {"rcpt", addr, strlen(addr)}, {"orcpt", orcpt, strlen(orcpt)}, {"notify", "2", 1}};
                CHECK_INT(ipc_batch_add(&b, g, 3), 0);
        }
        CHECK_INT(ipc_batch_finish(&b), 0);
        CHECK(s.n_msgs >= 2);
        CHECK_INT(s.names.n, 3 * n);
        for (size_t i = 0; i < n; i++) {
                char addr[32];
                snprintf(addr, sizeof addr, "u%zu@example.test", i);
                CHECK_STR(s.names.v[3 * i], "rcpt");
                CHECK_STR(s.values.v[3 * i], addr);
                CHECK_STR(s.names.v[3 * i + 1], "orcpt");
                CHECK_STR(s.names.v[3 * i + 2], "notify");
        }
        strv_done(&s.names);
        strv_done(&s.values);
}

TEST(ipc_batch_failures)
{
        static const struct ipc_kv head[] = {{"req", "rcpt", 4}};
        /* The send failure is the batch's result; the caller then sends nothing more. */
        struct sent s = {STRV_INIT, STRV_INIT, 0, 1};
        struct ipc_batch b;
        CHECK_INT(ipc_batch_init(&b, head, 1, collect, &s), 0);
        int r = 0;
        for (size_t i = 0; i < 5000 && r == 0; i++)
                r = ipc_batch_add(&b, (const struct ipc_kv[]){{"rcpt", "a@b", 3}}, 1);
        CHECK_INT(r, -EPIPE);
        ipc_batch_done(&b);

        /* A group that does not fit even an empty message is refused, not cut. */
        struct sent s2 = {STRV_INIT, STRV_INIT, 0, 0};
        CHECK_INT(ipc_batch_init(&b, head, 1, collect, &s2), 0);
        char *big = xmalloc(IPC_BODY_MAX);
        memset(big, 'a', IPC_BODY_MAX);
        CHECK_INT(ipc_batch_add(&b, (const struct ipc_kv[]){{"rcpt", big, IPC_BODY_MAX}}, 1), -E2BIG);
        free(big);
        CHECK_INT(s2.n_msgs, 0);
        /* Nothing added: finish sends nothing. */
        CHECK_INT(ipc_batch_finish(&b), 0);
        CHECK_INT(s2.n_msgs, 0);
        /* A bad head is refused at init. */
        CHECK_INT(ipc_batch_init(&b, (const struct ipc_kv[]){{"bad name", "", 0}}, 1, collect, &s2),
                  -EINVAL);
}

/* The peer of ipc_call_definite: answers at once, or only the abort; exits 0 when it saw what it should. */
static int definite_peer(int fd, bool answer_at_once)
{
        struct ipc_msg m = IPC_MSG_INIT, reply = IPC_MSG_INIT;
        if (ipc_recv(fd, &m, 5000) < 0 || !streq(ipc_msg_get_str(&m, "req"), "end"))
                return 1;
        ipc_msg_done(&m);
        if (!answer_at_once && (ipc_recv(fd, &m, 5000) < 0 || !streq(ipc_msg_get_str(&m, "req"), "abort")))
                return 2;
        if (ipc_msg_add_str(&reply, "status", answer_at_once ? "0" : "4") < 0 ||
            ipc_send(fd, &reply, 5000) < 0)
                return 3;
        /* No abort may follow an answer in time. */
        if (answer_at_once && ipc_recv(fd, &m, 300) != -ECONNRESET)
                return 4;
        return 0;
}

TEST(ipc_call_definite_asks_to_abort_and_gets_the_answer)
{
        for (int at_once = 0; at_once <= 1; at_once++) {
                int sv[2];
                CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
                pid_t pid = fork();
                CHECK(pid >= 0);
                if (pid == 0) {
                        close(sv[0]);
                        _exit(definite_peer(sv[1], at_once));
                }
                close(sv[1]);
                struct ipc_msg req = IPC_MSG_INIT, abort = IPC_MSG_INIT, reply = IPC_MSG_INIT;
                CHECK_INT(ipc_msg_add_str(&req, "req", "end"), 0);
                CHECK_INT(ipc_msg_add_str(&abort, "req", "abort"), 0);
                CHECK_INT(ipc_call_definite(sv[0], &req, &abort, &reply, 200), 0);
                CHECK_STR(ipc_msg_get_str(&reply, "status"), at_once ? "0" : "4");
                close(sv[0]);
                int status = -1;
                CHECK_INT(waitpid(pid, &status, 0), pid);
                CHECK(WIFEXITED(status));
                CHECK_INT(WEXITSTATUS(status), 0);
                ipc_msg_done(&req);
                ipc_msg_done(&abort);
                ipc_msg_done(&reply);
        }
}
