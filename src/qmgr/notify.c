/* notify.c: asks the bounce service to return failed mail (mail_proto.h part 4) without blocking the loop.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "alloc.h"
#include "log.h"
#include "mail_proto.h"
#include "qmgr.h"

struct notice {
        struct qmsg *m;
        int fd;
        struct ipc_conn conn;
        struct event_source *io, *timeout;
        qmgr_notice_fn done;
};

static void notice_end(struct notice *n, bool ok, const char *why)
{
        struct qmsg *m = n->m;
        qmgr_notice_fn done = n->done;
        if (!ok)
                msg_fields(LOG_LEVEL_WARNING, &(struct log_fields){.queue_id = m->id},
                           "%s: sender notification not sent: %s; the message stays queued and is retried "
                           "later",
                           m->id, why);
        event_source_disable_unref(n->io);
        event_source_disable_unref(n->timeout);
        ipc_conn_done(&n->conn);
        close(n->fd);
        free(n);
        done(m, ok);
}

static int on_io(struct event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct notice *n = userdata;
        if (ipc_conn_want_write(&n->conn)) {
                int r = ipc_conn_flush(&n->conn);
                if (r < 0 && r != -EAGAIN) {
                        notice_end(n, false, "bounce service closed the connection");
                        return 0;
                }
                if (!ipc_conn_want_write(&n->conn))
                        event_source_set_io_events(n->io, EPOLLIN);
        }
        if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                return 0;
        int r = ipc_conn_read(&n->conn);
        struct ipc_msg reply = IPC_MSG_INIT;
        int got = r < 0 ? r : ipc_conn_next(&n->conn, &reply);
        if (got < 0) {
                notice_end(n, false, "bad reply from the bounce service");
                return 0;
        }
        if (got == 0) {
                if (n->conn.eof)
                        notice_end(n, false, "bounce service closed the connection");
                return 0;
        }
        long long status = -1;
        ipc_msg_get_int(&reply, "status", &status);
        const char *reason = ipc_msg_get_str(&reply, "reason");
        _cleanup_free_ char *why =
                status == 0 ? NULL
                            : xasprintf("bounce service failed: %s", reason ? reason : "no reason given");
        ipc_msg_done(&reply);
        notice_end(n, status == 0, why);
        return 0;
}

static int on_timeout(struct event_source *src, uint64_t usec, void *userdata)
{
        notice_end(userdata, false, "bounce service did not answer in time");
        return 0;
}

void qmgr_notify(struct qmsg *m, const char *what, uint64_t retry_until_usec, qmgr_notice_fn done)
{
        struct qmgr *q = m->q;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_free_ char *path = xasprintf("%s/%s", q->queue_dir, MAIL_PROTO_BOUNCE_SOCKET);
        if (strlen(path) >= sizeof sa.sun_path) {
                msg_warn("%s: socket path too long: %s", m->id, path);
                done(m, false);
                return;
        }
        strcpy(sa.sun_path, path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                msg_warn("%s: socket: %s", m->id, strerror(errno));
                done(m, false);
                return;
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
                int e = errno;
                close(fd);
                msg_fields(LOG_LEVEL_WARNING, &(struct log_fields){.queue_id = m->id},
                           "%s: sender notification not sent: connect to %s: %s (is there a \"bounce\" "
                           "service in "
                           "master.cf?); the message stays queued and is retried later",
                           m->id, MAIL_PROTO_BOUNCE_SOCKET, strerror(e));
                done(m, false);
                return;
        }
        struct notice *n = xcalloc(1, sizeof *n);
        n->m = m;
        n->fd = fd;
        n->done = done;
        ipc_conn_init(&n->conn, fd);
        struct ipc_msg req = IPC_MSG_INIT;
        const struct ipc_kv kv[] = {
                {"req", what, strlen(what)}, {"queue_id", m->id, strlen(m->id)}, {"queue", "active", 6}};
        int r = ipc_msg_add_group(&req, kv, ELEMENTSOF(kv));
        if (r >= 0 && retry_until_usec)
                r = ipc_msg_add_int(&req, "retry_until_usec", (long long)retry_until_usec);
        if (r >= 0)
                r = ipc_conn_queue(&n->conn, &req);
        ipc_msg_done(&req);
        if (r >= 0)
                r = event_add_io(q->event, &n->io, fd, EPOLLIN | EPOLLOUT, on_io, n);
        if (r >= 0)
                r = event_add_time_relative(q->event, &n->timeout, QMGR_NOTIFY_TIMEOUT_USEC, on_timeout, n);
        if (r < 0)
                notice_end(n, false, "cannot watch the bounce service connection");
}
