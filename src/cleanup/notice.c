/* notice.c: telling qmgr about newly queued messages: the IDs committed in one turn of the event loop go
 * over one connection, {req=new} each, rather than one connection per message.
 *
 * Best effort by contract, as before: qmgr absent, its backlog full or a short send only means that qmgr
 * finds those files by its own scan of incoming/, so no failure here is worth a log line per message. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "ipc.h"
#include "macro.h"
#include "notice.h"
#include "queue_id.h"

/* IDs per connection: their frames (about 40 bytes each) stay far below a unix socket's buffer, so the
 * non-blocking send never comes up short in practice. */
#define NOTICE_PER_CONNECTION 64u

struct notice {
        char *socket_path;
        struct event_source *defer_src;
        struct event_source *exit_src; /* a process that exits in the same turn still tells qmgr */
        char (*ids)[QUEUE_ID_BUF_SIZE];
        size_t n, cap;
};

static void send_some(const char *path, char (*ids)[QUEUE_ID_BUF_SIZE], size_t n)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(path) >= sizeof sa.sun_path)
                return;
        strcpy(sa.sun_path, path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return;
        struct buf out = BUF_INIT;
        for (size_t i = 0; i < n; i++) {
                struct ipc_msg m = IPC_MSG_INIT;
                const struct ipc_kv kv[] = {{"req", "new", 3}, {"queue_id", ids[i], strlen(ids[i])}};
                if (ipc_msg_add_group(&m, kv, ELEMENTSOF(kv)) == 0)
                        (void)!ipc_encode(&m, &out); /* appends this frame; an oversized one is skipped */
                ipc_msg_done(&m);
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
                (void)send(fd, out.data, out.len, MSG_DONTWAIT | MSG_NOSIGNAL); /* see the top of the file */
        buf_done(&out);
        close(fd);
}

static int on_defer(struct event_source *src, void *userdata)
{
        struct notice *n = userdata;
        for (size_t i = 0; i < n->n; i += NOTICE_PER_CONNECTION) {
                size_t k = n->n - i < NOTICE_PER_CONNECTION ? n->n - i : NOTICE_PER_CONNECTION;
                send_some(n->socket_path, n->ids + i, k);
        }
        n->n = 0;
        return 0;
}

int notice_new(struct event_loop *e, const char *qmgr_socket, struct notice **ret)
{
        struct notice *n = xcalloc(1, sizeof *n);
        n->socket_path = xstrdup(qmgr_socket);
        int r = event_add_defer(e, &n->defer_src, on_defer, n);
        if (r >= 0)
                r = event_source_set_enabled(n->defer_src, EVENT_OFF);
        if (r >= 0)
                r = event_add_exit(e, &n->exit_src, on_defer, n);
        if (r < 0) {
                notice_free(n);
                return r;
        }
        *ret = n;
        return 0;
}

void notice_add(struct notice *n, const char *queue_id)
{
        if (n->n == n->cap) {
                n->cap = n->cap ? 2 * n->cap : 16;
                n->ids = xrealloc(n->ids, n->cap * sizeof *n->ids);
        }
        snprintf(n->ids[n->n++], QUEUE_ID_BUF_SIZE, "%s", queue_id);
        event_source_set_enabled(n->defer_src, EVENT_ONESHOT);
}

void notice_free(struct notice *n)
{
        if (!n)
                return;
        event_source_disable_unref(n->defer_src);
        event_source_disable_unref(n->exit_src);
        free(n->ids);
        free(n->socket_path);
        free(n);
}
