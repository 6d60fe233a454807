/* main.c: qmgr, the queue manager: takes new mail from incoming/, schedules deliveries and retries. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "alloc.h"
#include "catalog.h"
#include "log.h"
#include "mail_proto.h"
#include "netaddr.h"
#include "qmgr.h"

static struct qmgr qmgr = {.own_fd = -1};

/* ---- clients: cleanup's {req=new}, postqueue's {req=flush}, the master's wakeup byte ---- */

struct client {
        struct qmgr *q;
        int fd;
        bool from_service; /* accepted by the skeleton: report it done */
        bool got_request;
        struct ipc_conn conn;
        struct event_source *io, *timer;
};

static void client_free(struct client *c)
{
        struct qmgr *q = c->q;
        event_source_disable_unref(c->io);
        event_source_disable_unref(c->timer);
        ipc_conn_done(&c->conn);
        close(c->fd);
        q->n_clients--;
        if (c->from_service)
                service_connection_done(q->svc);
        free(c);
}

static void handle_request(struct client *c, const struct ipc_msg *m)
{
        struct qmgr *q = c->q;
        const char *req = ipc_msg_get_str(m, "req");
        c->got_request = true;
        if (req && streq(req, "new")) {
                const char *id = ipc_msg_get_str(m, "queue_id");
                /* Straight from cleanup: no directory scan needed for this message. */
                if (id && queue_id_valid(id)) {
                        if (qmgr_activate(q, id, QUEUE_INCOMING) < 0)
                                qmgr_rearm(q);
                } else
                        qmgr_run_soon(q);
        } else if (req && streq(req, "flush")) {
                const char *id = ipc_msg_get_str(m, "queue_id"), *site = ipc_msg_get_str(m, "site");
                struct ipc_msg reply = IPC_MSG_INIT;
                int r;
                if (id && !queue_id_valid(id)) {
                        r = ipc_msg_add_int(&reply, "status", 5);
                        if (r >= 0)
                                r = ipc_msg_add_str(&reply, "reason", "invalid queue id");
                } else if (id || !isempty(site)) {
                        r = ipc_msg_add_int(&reply, "status", 0);
                        if (r >= 0)
                                r = ipc_msg_add_int(&reply, "count",
                                                    (long long)qmgr_flush_some(q, id, id ? NULL : site));
                } else {
                        /* Every deferred message is due now: the rescan sets their times to 0. */
                        qmgr_scan_deferred(q, true);
                        qmgr_run_soon(q);
                        r = ipc_msg_add_int(&reply, "status", 0);
                }
                if (r >= 0)
                        r = ipc_conn_queue(&c->conn, &reply);
                ipc_msg_done(&reply);
                if (r < 0) /* the client sees the connection close without an answer: a failure */
                        msg_warn("flush request: cannot encode the answer: %s", strerror(-r));
                ipc_conn_flush(&c->conn);
                if (ipc_conn_want_write(&c->conn))
                        event_source_set_io_events(c->io, EPOLLIN | EPOLLOUT);
        } else
                qmgr_run_soon(q);
}

static int on_client_io(struct event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct client *c = userdata;
        if (ipc_conn_want_write(&c->conn)) {
                int r = ipc_conn_flush(&c->conn);
                if (r < 0 && r != -EAGAIN) {
                        client_free(c);
                        return 0;
                }
                if (!ipc_conn_want_write(&c->conn))
                        event_source_set_io_events(c->io, EPOLLIN);
        }
        int r = ipc_conn_read(&c->conn);
        for (int i = 0; r >= 0 && i < 64; i++) {
                struct ipc_msg m = IPC_MSG_INIT;
                int got = ipc_conn_next(&c->conn, &m);
                if (got <= 0) {
                        if (got < 0)
                                r = got;
                        break;
                }
                handle_request(c, &m);
                ipc_msg_done(&m);
        }
        if (r < 0 || c->conn.eof) {
                /* The master's wakeup is one byte and a close: not a frame, but a reason to run the queue.
                 */
                if (!c->got_request)
                        qmgr_run_soon(c->q);
                client_free(c);
        }
        return 0;
}

static int on_client_timeout(struct event_source *src, uint64_t usec, void *userdata)
{
        client_free(userdata);
        return 0;
}

static void client_new(struct qmgr *q, int fd, bool from_service)
{
        if (q->n_clients >= QMGR_CLIENTS_MAX) {
                close(fd);
                if (from_service)
                        service_connection_done(q->svc);
                qmgr_run_soon(q);
                return;
        }
        struct client *c = xcalloc(1, sizeof *c);
        c->q = q;
        c->fd = fd;
        c->from_service = from_service;
        ipc_conn_init(&c->conn, fd);
        q->n_clients++;
        if (event_add_io(q->event, &c->io, fd, EPOLLIN, on_client_io, c) < 0 ||
            event_add_time_relative(q->event, &c->timer, QMGR_CLIENT_TIMEOUT_USEC, on_client_timeout, c) < 0)
                client_free(c);
}

static void on_connection(struct service *s, int fd)
{
        client_new(service_userdata(s), fd, true);
}

static int on_own_listener(struct event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct qmgr *q = userdata;
        for (int i = 0; i < 64; i++) {
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0)
                        break;
                client_new(q, cfd, false);
        }
        return 0;
}

/* ---- public/qmgr: from master.cf's "qmgr unix n ..." line, else qmgr's own (a master.cf with a
 * private qmgr service still leaves cleanup and postqueue a socket where they look) ---- */

static bool have_listener_at(const char *path)
{
        for (int fd = SERVICE_LISTEN_FDS_START; fd < SERVICE_LISTEN_FDS_START + SERVICE_LISTEN_FDS_MAX;
             fd++) {
                struct sockaddr_un sa;
                socklen_t len = sizeof sa;
                int acc = 0;
                socklen_t alen = sizeof acc;
                if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
                        if (errno == EBADF)
                                break;
                        continue;
                }
                if (sa.sun_family != AF_UNIX || getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &alen) < 0 ||
                    !acc)
                        continue;
                if (len > offsetof(struct sockaddr_un, sun_path) &&
                    strncmp(sa.sun_path, path, sizeof sa.sun_path) == 0)
                        return true;
        }
        return false;
}

static int create_own_socket(struct qmgr *q, const char *rel)
{
        _cleanup_free_ char *path = xasprintf("%s/%s", q->queue_dir, rel);
        if (have_listener_at(path))
                return 0;
        if (q->own_fd >= 0)
                return 0;
        struct sockaddr_un sa;
        socklen_t sa_len;
        if (unix_address(path, &sa, &sa_len) < 0) {
                msg_error("socket path too long: %s", path);
                return -ENAMETOOLONG;
        }
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if ((unlink(path) < 0 && errno != ENOENT) || bind(fd, (struct sockaddr *)&sa, sa_len) < 0 ||
            chmod(path, 0666) < 0 || listen(fd, 128) < 0) {
                int e = errno;
                msg_error("create %s: %s", path, strerror(e));
                close(fd);
                return -e;
        }
        q->own_fd = fd;
        q->own_path = TAKE_PTR(path);
        return event_add_io(q->event, &q->own_src, fd, EPOLLIN, on_own_listener, q);
}

/* ---- the service ---- */

static uint64_t seconds_param(struct qmgr *q, const char *name)
{
        long long v = config_get_time(q->cfg, name);
        return v > 0 ? (uint64_t)v * 1000000ULL : 0;
}

static int qmgr_init(struct service *s)
{
        struct qmgr *q = service_userdata(s);
        q->svc = s;
        q->cfg = service_config(s);
        q->event = service_event(s);
        q->queue_dir = xstrdup(config_get(q->cfg, "queue_directory"));
        int r = queue_open(q->queue_dir, &q->queue);
        if (r < 0) {
                msg_error("open queue directory %s: %s", q->queue_dir, strerror(-r));
                return r;
        }
        r = resolve_open_logged(q->cfg, &q->resolve);
        if (r < 0)
                return r;
        q->active_limit = config_get_int(q->cfg, "qmgr_message_active_limit");
        if (q->active_limit <= 0)
                q->active_limit = 1;
        q->run_delay_usec = seconds_param(q, "queue_run_delay");
        if (q->run_delay_usec == 0)
                q->run_delay_usec = 1000000;
        q->min_backoff_usec = seconds_param(q, "minimal_backoff_time");
        q->max_backoff_usec = seconds_param(q, "maximal_backoff_time");
        q->max_lifetime_usec = seconds_param(q, "maximal_queue_lifetime");
        q->bounce_lifetime_usec = seconds_param(q, "bounce_queue_lifetime");
        q->delay_warning_usec = seconds_param(q, "delay_warning_time");
        q->agent_timeout_usec = seconds_param(q, "daemon_timeout");
        if (q->agent_timeout_usec == 0)
                q->agent_timeout_usec = 18000ULL * 1000000ULL;

        r = create_own_socket(q, MAIL_PROTO_QMGR_SOCKET);
        if (r < 0)
                return r;
        qmgr_requeue_active(q);
        qmgr_scan_deferred(q, false);
        qmgr_run_soon(q);
        return 0;
}

static void qmgr_on_wakeup(struct service *s)
{
        qmgr_run_soon(service_userdata(s));
}

static void qmgr_on_stop(struct service *s)
{
        struct qmgr *q = service_userdata(s);
        /* Deliveries in flight finish in their agents; what stays in active/ is requeued at the next start.
         */
        q->stopping = true;
        if (q->own_src) {
                q->own_src = event_source_disable_unref(q->own_src);
                unlink(q->own_path);
                close(q->own_fd);
                q->own_fd = -1;
        }
}

int main(int argc, char **argv)
{
        static const struct service_ops ops = {
                .init = qmgr_init,
                .on_connection = on_connection,
                .on_wakeup = qmgr_on_wakeup,
                .on_stop = qmgr_on_stop,
                .max_connections = QMGR_CLIENTS_MAX,
                .long_lived = true,
                .userdata = &qmgr,
        };
        return service_main(argc, argv, &ops);
}
