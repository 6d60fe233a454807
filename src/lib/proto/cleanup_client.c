/* cleanup_client.c: blocking submission of one message to cleanup (pickup, bounce, local's forwarding): the
 * non-blocking client of cleanup_submit.c driven by a private event loop until each step is answered. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "cleanup_client.h"
#include "log.h"
#include "mail_proto.h"

static void on_opened(void *owner, int status, const char *queue_id, const char *reason)
{
        struct cleanup_client *c = owner;
        c->answered = true;
        c->status = status;
        if (status == 0)
                c->queue_id = xstrdup(queue_id);
        else
                c->reason = xstrdup(reason ? reason : "queue file write error");
}

static void on_finished(void *owner, int status, const char *dsn, const char *reason)
{
        struct cleanup_client *c = owner;
        c->answered = true;
        c->status = status;
        c->reason = reason && status != 0 ? xstrdup(reason) : NULL;
}

static void on_drained(void *owner)
{
}

static const struct cleanup_submit_ops blocking_ops = {
        .opened = on_opened,
        .finished = on_finished,
        .drained = on_drained,
};

/* Run the loop until done(c) or timeout_ms; 0, -ETIMEDOUT, -EPIPE (connection broken) or the loop's error. */
static int run_until(struct cleanup_client *c, bool (*done)(const struct cleanup_client *c), int timeout_ms)
{
        uint64_t deadline = clock_usec(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000;
        while (!done(c)) {
                if (cleanup_submit_failed(c->sub) && !c->answered)
                        return -EPIPE;
                uint64_t now = clock_usec(CLOCK_MONOTONIC);
                if (now >= deadline)
                        return -ETIMEDOUT;
                int r = event_loop_step(c->loop, deadline - now);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool is_answered(const struct cleanup_client *c)
{
        return c->answered;
}

static bool is_flushed(const struct cleanup_client *c)
{
        return cleanup_submit_unsent(c->sub) == 0 || cleanup_submit_failed(c->sub);
}

int cleanup_client_open(struct cleanup_client *c, const char *queue_dir, const char *origin,
                        int step_timeout_ms, char **ret_why)
{
        c->step_timeout_ms = step_timeout_ms;
        _cleanup_free_ char *pub = xasprintf("%s/%s", queue_dir, MAIL_PROTO_CLEANUP_SOCKET);
        /* A master.cf that makes cleanup private (the "private" column y). */
        _cleanup_free_ char *priv = xasprintf("%s/private/cleanup", queue_dir);
        int r = event_loop_new(&c->loop);
        if (r >= 0)
                r = cleanup_submit_open(c->loop, pub, priv, origin, &blocking_ops, c, &c->sub);
        if (r < 0) {
                *ret_why = xasprintf("connect to cleanup (%s): %s", pub, strerror(-r));
                return r;
        }
        r = run_until(c, is_answered, step_timeout_ms);
        if (r < 0 || c->status != 0) {
                *ret_why = xasprintf("cleanup did not open a queue file: %s", r < 0       ? strerror(-r)
                                                                              : c->reason ? c->reason
                                                                                          : "bad reply");
                return r < 0 ? r : -EIO;
        }
        c->answered = false;
        return 0;
}

/* Wait until cleanup took everything queued (the blocking sources produce no faster than it reads). */
static int flush(struct cleanup_client *c, int r)
{
        if (r < 0)
                return r;
        r = run_until(c, is_flushed, c->step_timeout_ms);
        return r == 0 && cleanup_submit_failed(c->sub) ? -EPIPE : r;
}

int cleanup_client_send(struct cleanup_client *c, const struct ipc_msg *m)
{
        return flush(c, cleanup_submit_send(c->sub, m));
}

int cleanup_client_send_kv(struct cleanup_client *c, const struct ipc_kv *kv, size_t n)
{
        _cleanup_ipc_msg_ struct ipc_msg m = IPC_MSG_INIT;
        int r = ipc_msg_add_group(&m, kv, n);
        if (r == 0)
                r = cleanup_client_send(c, &m);
        return r;
}

int cleanup_client_send_content(struct cleanup_client *c, const char *data, size_t len)
{
        /* In slices, so that no more than one slice waits in memory at a time. */
        int r = 0;
        for (size_t off = 0; r == 0 && off < len; off += MAIL_PROTO_CHUNK_MAX) {
                size_t n = len - off < MAIL_PROTO_CHUNK_MAX ? len - off : MAIL_PROTO_CHUNK_MAX;
                r = flush(c, cleanup_submit_content(c->sub, data + off, n));
        }
        return r;
}

int cleanup_client_finish(struct cleanup_client *c, int final_timeout_ms, long long *ret_status,
                          char **ret_reason)
{
        *ret_reason = NULL;
        c->answered = false;
        int r = cleanup_submit_end(c->sub);
        if (r == 0)
                r = run_until(c, is_answered, final_timeout_ms);
        if (r == -ETIMEDOUT) {
                /* No answer yet: the commit may still complete. cleanup's answer to the abort is final. */
                r = cleanup_submit_abort(c->sub);
                if (r == 0)
                        r = run_until(c, is_answered, final_timeout_ms);
        }
        if (r < 0)
                return r;
        *ret_status = c->status;
        *ret_reason = c->reason;
        c->reason = NULL;
        return 0;
}

void cleanup_client_close(struct cleanup_client *c)
{
        cleanup_submit_free(c->sub);
        c->sub = NULL;
        c->loop = event_loop_unref(c->loop);
        free(c->queue_id);
        c->queue_id = NULL;
        free(c->reason);
        c->reason = NULL;
}
