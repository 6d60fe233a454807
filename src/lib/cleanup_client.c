/* cleanup_client.c: blocking submission of one message to cleanup, shared by pickup, bounce and local. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "cleanup_client.h"
#include "mail_proto.h"

int cleanup_client_open(struct cleanup_client *c, const char *queue_dir, const char *origin,
                        int step_timeout_ms, char **ret_why)
{
        c->step_timeout_ms = step_timeout_ms;
        _cleanup_free_ char *pub = xasprintf("%s/%s", queue_dir, MAIL_PROTO_CLEANUP_SOCKET);
        int r = ipc_connect_unix(pub, step_timeout_ms, &c->fd);
        if (r == -ENOENT || r == -ECONNREFUSED) {
                /* A master.cf that makes cleanup private (the "private" column y). */
                _cleanup_free_ char *priv = xasprintf("%s/private/cleanup", queue_dir);
                r = ipc_connect_unix(priv, step_timeout_ms, &c->fd);
        }
        if (r < 0) {
                c->fd = -1;
                *ret_why = xasprintf("connect to cleanup (%s): %s", pub, strerror(-r));
                return r;
        }
        struct ipc_msg req = IPC_MSG_INIT, rep = IPC_MSG_INIT;
        const struct ipc_kv kv[] = {{"req", "open", 4}, {"origin", origin, strlen(origin)}};
        r = ipc_msg_add_group(&req, kv, ELEMENTSOF(kv));
        if (r == 0)
                r = ipc_call(c->fd, &req, &rep, step_timeout_ms);
        ipc_msg_free(&req);
        long long status = -1;
        const char *id = ipc_msg_get_str(&rep, "queue_id");
        if (r < 0 || ipc_msg_get_int(&rep, "status", &status) < 0 || status != 0 || !id) {
                *ret_why =
                        xasprintf("cleanup did not open a queue file: %s",
                                  r < 0 ? strerror(-r) : (ipc_msg_get_str(&rep, "reason") ?: "bad reply"));
                ipc_msg_free(&rep);
                return r < 0 ? r : -EIO;
        }
        c->queue_id = xstrdup(id);
        ipc_msg_free(&rep);
        return 0;
}

int cleanup_client_send(struct cleanup_client *c, const struct ipc_msg *m)
{
        return ipc_send(c->fd, m, c->step_timeout_ms);
}

int cleanup_client_send_content(struct cleanup_client *c, const char *data, size_t len)
{
        int r = 0;
        for (size_t off = 0; r == 0 && off < len; off += MAIL_PROTO_CHUNK_MAX) {
                size_t n = len - off < MAIL_PROTO_CHUNK_MAX ? len - off : MAIL_PROTO_CHUNK_MAX;
                const struct ipc_kv kv[] = {{"req", "content", 7}, {"data", data + off, n}};
                struct ipc_msg req = IPC_MSG_INIT;
                r = ipc_msg_add_group(&req, kv, ELEMENTSOF(kv));
                if (r == 0)
                        r = cleanup_client_send(c, &req);
                ipc_msg_free(&req);
        }
        return r;
}

int cleanup_client_finish(struct cleanup_client *c, int final_timeout_ms, long long *ret_status,
                          char **ret_reason)
{
        *ret_reason = NULL;
        struct ipc_msg req = IPC_MSG_INIT, abort = IPC_MSG_INIT, rep = IPC_MSG_INIT;
        int r = ipc_msg_add_str(&req, "req", "end");
        if (r == 0)
                r = ipc_msg_add_str(&abort, "req", "abort");
        if (r == 0)
                r = ipc_call_definite(c->fd, &req, &abort, &rep, final_timeout_ms);
        ipc_msg_free(&req);
        ipc_msg_free(&abort);
        if (r == 0 && ipc_msg_get_int(&rep, "status", ret_status) < 0)
                r = -EBADMSG;
        if (r == 0) {
                const char *reason = ipc_msg_get_str(&rep, "reason");
                *ret_reason = reason ? xstrdup(reason) : NULL;
        }
        ipc_msg_free(&rep);
        return r;
}

void cleanup_client_close(struct cleanup_client *c)
{
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
        free(c->queue_id);
        c->queue_id = NULL;
}
