/* cleanup_submit.c: the client end of cleanup's submission protocol (mail_proto.h, protocol 1), non-blocking,
 * on an event loop (event.h): smtpd's, or the private loop of the blocking wrapper in cleanup_client.c. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "alloc.h"
#include "cleanup_submit.h"
#include "log.h"
#include "mail_proto.h"
#include "netaddr.h"
#include "queue.h"

enum submit_state { SUBMIT_OPENING, SUBMIT_OPEN, SUBMIT_CHECKING, SUBMIT_ENDING, SUBMIT_DONE };

struct cleanup_submit {
        void *owner;
        const struct cleanup_submit_ops *ops;
        char *origin;
        char *path;
        char *qid; /* from the open reply */
        int fd;
        struct event_source *src;
        struct event_source *retry; /* connecting again after a full listen backlog (EAGAIN) */
        uint64_t retry_usec;        /* the next pause; doubles up to CLEANUP_SUBMIT_CONNECT_PAUSE_MAX_USEC */
        uint64_t give_up_usec;      /* CLOCK_MONOTONIC */
        struct ipc_conn conn;
        enum submit_state state;
        struct buf chunk; /* content not yet framed */
        bool backlogged;  /* told the owner to stop reading; "drained" follows */
        bool failed;      /* the connection broke while content was streaming */
        bool aborted;     /* {req=abort} sent */
        int code;         /* the last answer's SMTP code (a milter's own), 0 if none */
};

static size_t backlog(const struct cleanup_submit *sub)
{
        return sub->conn.out.len - sub->conn.out_off;
}

bool cleanup_submit_backlogged(const struct cleanup_submit *sub)
{
        return sub && backlog(sub) > CLEANUP_SUBMIT_BACKLOG_MAX;
}

size_t cleanup_submit_unsent(const struct cleanup_submit *sub)
{
        return backlog(sub);
}

bool cleanup_submit_failed(const struct cleanup_submit *sub)
{
        return sub->failed;
}

static void update_events(struct cleanup_submit *sub)
{
        uint32_t ev = EPOLLIN | (ipc_conn_want_write(&sub->conn) ? EPOLLOUT : 0);
        event_source_set_io_events(sub->src, ev);
}

/*
 * Whether message qid sits in queue n; if so its name is fsync'd. 1 yes, 0 no, negative errno unknown.
 * A failed fsync is "unknown" (451): smtpd may not remove queue files (its seccomp allow-list has no
 * unlink), so such a file may still be delivered: a possible duplicate after a disk error, never a loss.
 */
static int queued_in(struct queue *q, enum queue_name n, const char *qid)
{
        _cleanup_free_ char *rel = queue_path(q, n, qid);
        _cleanup_free_ char *path = xasprintf("%s/%s", queue_directory(q), rel);
        struct stat st;
        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        return fsync(queue_dirfd(q, n)) == 0 ? 1 : -errno;
}

/*
 * cleanup died after {req=end}: did the commit pass its point of no return, the rename from the
 * temporary name to the queue ID? A file under that ID in any queue was complete and fsync'd before
 * it got the name (docs/QUEUE_FORMAT.md); its name is made durable here in case cleanup died before its
 * directory fsync. Then the message is queued and the answer must be 250: a 451 would make the client
 * send it again, a duplicate.
 */
static bool queued_anyway(const struct cleanup_submit *sub)
{
        if (!sub->qid)
                return false;
        /* The cleanup socket is QUEUE_DIR/public/cleanup (or private/). */
        _cleanup_free_ char *copy = xstrdup(sub->path);
        struct queue *q;
        if (queue_open(dirname(dirname(copy)), &q) < 0)
                return false;
        /* qmgr may move it on while we look: incoming first, then where it goes next. */
        static const enum queue_name where[] = {QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED, QUEUE_HOLD};
        int r = 0;
        for (size_t i = 0; i < ELEMENTSOF(where) && r == 0; i++)
                r = queued_in(q, where[i], sub->qid);
        queue_close(q);
        if (r < 0)
                msg_warn("%s: cannot tell whether the message was queued: %s", sub->qid, strerror(-r));
        return r > 0;
}

/* Tell the owner about a broken connection at the step that waits for an answer; may free sub. */
static void broken(struct cleanup_submit *sub, const char *why)
{
        enum submit_state st = sub->state;
        msg_warn("%s: %s", sub->path, why);
        sub->failed = true;
        sub->state = SUBMIT_DONE;
        event_source_set_enabled(sub->src, EVENT_OFF);
        if (st == SUBMIT_OPENING)
                sub->ops->opened(sub->owner, 4, NULL, "queue file write error");
        else if (st == SUBMIT_CHECKING)
                sub->ops->rcpt_checked(sub->owner, 4, "4.3.0", "queue file write error");
        else if (st == SUBMIT_ENDING && queued_anyway(sub)) {
                msg_warn("%s: cleanup died after committing the message: it is queued", sub->qid);
                sub->ops->finished(sub->owner, 0, "2.0.0", NULL);
        } else if (st == SUBMIT_ENDING)
                sub->ops->finished(sub->owner, 4, "4.3.0", "queue file write error");
}

static void on_reply(struct cleanup_submit *sub, const struct ipc_msg *m)
{
        long long status = 4;
        if (ipc_msg_get_int(m, "status", &status) < 0)
                status = 4;
        const char *qid = ipc_msg_get_str(m, "queue_id");
        const char *reason = ipc_msg_get_str(m, "reason");
        const char *dsn = ipc_msg_get_str(m, "dsn");
        long long code = 0;
        sub->code = ipc_msg_get_int(m, "code", &code) == 0 && code >= 400 && code < 600 ? (int)code : 0;

        if (sub->state == SUBMIT_OPENING) {
                if (status == 0 && isempty(qid)) {
                        broken(sub, "open reply without a queue_id");
                        return;
                }
                sub->state = status == 0 ? SUBMIT_OPEN : SUBMIT_DONE;
                if (status == 0)
                        sub->qid = xstrdup(qid);
                sub->ops->opened(sub->owner, (int)status, qid, reason ? reason : "queue file write error");
                return;
        }
        if (sub->state == SUBMIT_CHECKING) {
                sub->state = SUBMIT_OPEN;
                sub->ops->rcpt_checked(sub->owner, (int)status, dsn, reason ? reason : "Command rejected");
                return;
        }
        if (sub->state == SUBMIT_ENDING) {
                sub->state = SUBMIT_DONE;
                sub->ops->finished(sub->owner, (int)status, dsn, reason ? reason : "queue file write error");
                return;
        }
        /* cleanup speaks only when asked; anything else is a broken peer. */
        broken(sub, "unexpected message from cleanup");
}

static int on_io(struct event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct cleanup_submit *sub = userdata;
        if (revents & EPOLLOUT) {
                int r = ipc_conn_flush(&sub->conn);
                if (r < 0 && r != -EAGAIN) {
                        broken(sub, strerror(-r));
                        return 0;
                }
                if (sub->backlogged && !cleanup_submit_backlogged(sub)) {
                        sub->backlogged = false;
                        update_events(sub);
                        sub->ops->drained(sub->owner); /* may free sub */
                        return 0;
                }
        }
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                int r = ipc_conn_read(&sub->conn);
                if (r < 0) {
                        broken(sub, strerror(-r));
                        return 0;
                }
                struct ipc_msg m = IPC_MSG_INIT;
                r = ipc_conn_next(&sub->conn, &m);
                if (r < 0) {
                        broken(sub, "malformed message from cleanup");
                        return 0;
                }
                if (r > 0) {
                        on_reply(sub, &m); /* may free sub */
                        ipc_msg_done(&m);
                        return 0;
                }
                if (sub->conn.eof) {
                        broken(sub, "lost connection to cleanup");
                        return 0;
                }
        }
        update_events(sub);
        return 0;
}

/* Connect without blocking: a unix socket connects at once or not at all (EAGAIN: backlog full). */
static int connect_unix(const char *path, int *ret_fd)
{
        struct sockaddr_un sa;
        socklen_t sa_len;
        int r = unix_address(path, &sa, &sa_len);
        if (r < 0)
                return r;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sa_len) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        *ret_fd = fd;
        return 0;
}

/* Connected: watch the socket and send {req=open}; <0 (logged) when that fails. */
static int start_open(struct cleanup_submit *sub, int fd)
{
        sub->fd = fd;
        ipc_conn_init(&sub->conn, fd);
        int r = event_add_io(event_source_loop(sub->retry), &sub->src, fd, EPOLLIN, on_io, sub);
        if (r < 0) {
                msg_warn("watch %s: %s", sub->path, strerror(-r));
                return r;
        }
        _cleanup_ipc_msg_ struct ipc_msg m = IPC_MSG_INIT;
        const struct ipc_kv kv[] = {{"req", "open", 4}, {"origin", sub->origin, strlen(sub->origin)}};
        r = ipc_msg_add_group(&m, kv, ELEMENTSOF(kv));
        if (r >= 0)
                r = cleanup_submit_send(sub, &m);
        if (r < 0)
                msg_warn("send to %s: %s", sub->path, strerror(-r));
        return r;
}

/*
 * cleanup's listen backlog was full (a burst of sessions reaching RCPT at once): try again after a short,
 * growing pause instead of answering 451, for at most CLEANUP_SUBMIT_CONNECT_PATIENCE_USEC.
 */
static int on_retry(struct event_source *src, uint64_t usec, void *userdata)
{
        struct cleanup_submit *sub = userdata;
        int fd = -1;
        int r = connect_unix(sub->path, &fd);
        if (r == -EAGAIN && usec < sub->give_up_usec) {
                sub->retry_usec = sub->retry_usec * 2 < CLEANUP_SUBMIT_CONNECT_PAUSE_MAX_USEC
                                          ? sub->retry_usec * 2
                                          : CLEANUP_SUBMIT_CONNECT_PAUSE_MAX_USEC;
                event_source_set_time(src, usec + sub->retry_usec);
                event_source_set_enabled(src, EVENT_ONESHOT);
                return 0;
        }
        event_source_set_enabled(src, EVENT_OFF);
        if (r == 0 && start_open(sub, fd) == 0)
                return 0;
        if (r < 0)
                msg_warn("connect to %s: %s%s", sub->path, strerror(-r),
                         r == -EAGAIN
                                 ? " (its listen backlog stayed full: more cleanup processes are needed, "
                                   "or the machine is overloaded)"
                                 : "");
        sub->state = SUBMIT_DONE;
        sub->failed = true;
        sub->ops->opened(sub->owner, 4, NULL, "queue file write error"); /* may free sub */
        return 0;
}

int cleanup_submit_open(struct event_loop *e, const char *path, const char *fallback, const char *origin,
                        const struct cleanup_submit_ops *ops, void *owner, struct cleanup_submit **ret)
{
        int fd = -1;
        int r = connect_unix(path, &fd);
        if (r == -ENOENT && fallback && connect_unix(fallback, &fd) == 0) {
                path = fallback;
                r = 0;
        }
        if (r < 0 && r != -EAGAIN) {
                msg_warn("connect to %s: %s", path, strerror(-r));
                return r;
        }
        struct cleanup_submit *sub = xcalloc(1, sizeof(*sub));
        sub->owner = owner;
        sub->ops = ops;
        sub->path = xstrdup(path);
        sub->origin = xstrdup(origin);
        sub->fd = -1;
        uint64_t now = event_loop_now(e);
        sub->retry_usec = CLEANUP_SUBMIT_CONNECT_PAUSE_USEC;
        sub->give_up_usec = now + CLEANUP_SUBMIT_CONNECT_PATIENCE_USEC;
        /* The retry timer also carries the event loop for start_open(). */
        int k = event_add_time(e, &sub->retry, now + sub->retry_usec, on_retry, sub);
        if (k < 0) {
                msg_warn("retry timer: %s", strerror(-k));
                if (fd >= 0)
                        close(fd);
                cleanup_submit_free(sub);
                return k;
        }
        if (r == -EAGAIN) {
                *ret = sub; /* the answer to {req=open} comes as usual, or the failure after the retries */
                return 0;
        }
        event_source_set_enabled(sub->retry, EVENT_OFF);
        r = start_open(sub, fd);
        if (r < 0) {
                if (sub->fd < 0)
                        close(fd);
                cleanup_submit_free(sub);
                return r;
        }
        *ret = sub;
        return 0;
}

void cleanup_submit_free(struct cleanup_submit *sub)
{
        if (!sub)
                return;
        event_source_disable_unref(sub->src);
        event_source_disable_unref(sub->retry);
        ipc_conn_done(&sub->conn);
        if (sub->fd >= 0)
                close(sub->fd);
        buf_done(&sub->chunk);
        free(sub->qid);
        free(sub->path);
        free(sub->origin);
        free(sub);
}

/*
 * ipc_conn_flush() empties the output buffer only once all of it is sent. While cleanup takes the content a
 * little slower than the client sends it, that never happens, and the part already sent would stay in
 * front of each new frame: the buffer would grow with the message although the backlog stays under
 * CLEANUP_SUBMIT_BACKLOG_MAX. Drop the sent part once it is that large (amortised: at most one move of the
 * backlog per CLEANUP_SUBMIT_BACKLOG_MAX bytes sent).
 */
static void drop_sent_output(struct ipc_conn *c)
{
        if (c->out_off < CLEANUP_SUBMIT_BACKLOG_MAX)
                return;
        memmove(c->out.data, c->out.data + c->out_off, c->out.len - c->out_off);
        buf_truncate(&c->out, c->out.len - c->out_off);
        c->out_off = 0;
}

int cleanup_submit_send(struct cleanup_submit *sub, const struct ipc_msg *m)
{
        if (sub->failed)
                return -EPIPE;
        drop_sent_output(&sub->conn);
        int r = ipc_conn_queue(&sub->conn, m);
        if (r < 0)
                return r;
        r = ipc_conn_flush(&sub->conn);
        if (r < 0 && r != -EAGAIN) {
                sub->failed = true;
                return r;
        }
        if (cleanup_submit_backlogged(sub))
                sub->backlogged = true;
        update_events(sub);
        return 0;
}

int cleanup_submit_reply_code(const struct cleanup_submit *sub, int status)
{
        return sub && sub->code / 100 == status ? sub->code : 0;
}

int cleanup_submit_rcpt_check(struct cleanup_submit *sub, const struct ipc_msg *m)
{
        if (sub->state != SUBMIT_OPEN)
                return -EINVAL;
        int r = cleanup_submit_send(sub, m);
        if (r >= 0)
                sub->state = SUBMIT_CHECKING;
        return r;
}

static int send_chunk(struct cleanup_submit *sub)
{
        if (sub->chunk.len == 0)
                return 0;
        _cleanup_ipc_msg_ struct ipc_msg m = IPC_MSG_INIT;
        int r = ipc_msg_add_str(&m, "req", "content");
        if (r >= 0)
                r = ipc_msg_add(&m, "data", sub->chunk.data, sub->chunk.len);
        if (r >= 0)
                r = cleanup_submit_send(sub, &m);
        buf_truncate(&sub->chunk, 0);
        return r;
}

int cleanup_submit_content(struct cleanup_submit *sub, const char *p, size_t n)
{
        while (n > 0) {
                size_t room = MAIL_PROTO_CHUNK_MAX - sub->chunk.len;
                size_t take = n < room ? n : room;
                buf_append(&sub->chunk, p, take);
                p += take;
                n -= take;
                if (sub->chunk.len == MAIL_PROTO_CHUNK_MAX) {
                        int r = send_chunk(sub);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

int cleanup_submit_end(struct cleanup_submit *sub)
{
        int r = send_chunk(sub);
        if (r < 0)
                return r;
        _cleanup_ipc_msg_ struct ipc_msg m = IPC_MSG_INIT;
        r = ipc_msg_add_str(&m, "req", "end");
        if (r >= 0)
                r = cleanup_submit_send(sub, &m);
        if (r < 0)
                return r;
        sub->state = SUBMIT_ENDING;
        return 0;
}

int cleanup_submit_abort(struct cleanup_submit *sub)
{
        if (sub->state != SUBMIT_ENDING || sub->aborted)
                return -EALREADY;
        _cleanup_ipc_msg_ struct ipc_msg m = IPC_MSG_INIT;
        int r = ipc_msg_add_str(&m, "req", "abort");
        if (r >= 0)
                r = cleanup_submit_send(sub, &m);
        if (r >= 0)
                sub->aborted = true;
        return r;
}
