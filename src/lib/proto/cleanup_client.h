/* cleanup_client.h: the blocking client side of cleanup's submission protocol (mail_proto.h, section 1), a
 * wrapper of the non-blocking cleanup_submit.h on a private event loop. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include "event.h"

#include "cleanup_submit.h"
#include "ipc.h"

/*
 * One message being handed to cleanup. Used by every local source that queues a message of its own
 * (pickup, bounce, local's forwarding): connect and open, then recipients, envelope and content in the
 * protocol's order (cleanup_client_send), then cleanup_client_finish for the durable commit.
 */
struct cleanup_client {
        struct event_loop *loop;
        struct cleanup_submit *sub;
        int step_timeout_ms; /* each request but the last */
        char *queue_id;      /* cleanup's ID of the new queue file, once opened */
        bool answered;       /* the step's answer came: */
        int status;          /* 0, 4 or 5 */
        char *reason;        /* cleanup's text when status is not 0 */
};

#define CLEANUP_CLIENT_INIT \
        {                   \
        }

/*
 * Connect to queue_dir's cleanup socket (public/cleanup, else private/cleanup) and send {req=open,
 * origin}. 0 with c->queue_id set; else a negative errno and *ret_why (malloc'd) saying what failed.
 * c always needs cleanup_client_close.
 */
int cleanup_client_open(struct cleanup_client *c, const char *queue_dir, const char *origin,
                        int step_timeout_ms, char **ret_why);

/* Send one request ({req=rcpt}, {req=envelope}, ...) within the step timeout. 0 or a negative errno. */
int cleanup_client_send(struct cleanup_client *c, const struct ipc_msg *m);

/* One request made of the attributes kv[0..n) ({req=envelope, sender=...}, ...). 0 or a negative errno. */
int cleanup_client_send_kv(struct cleanup_client *c, const struct ipc_kv *kv, size_t n);

/* The message bytes as {req=content} chunks of at most MAIL_PROTO_CHUNK_MAX. 0 or a negative errno. */
int cleanup_client_send_content(struct cleanup_client *c, const char *data, size_t len);

/*
 * {req=end}, and wait for a definite answer ({req=abort} after final_timeout_ms, then wait again): a
 * message queued after the source gave up would otherwise be submitted twice. 0 with *ret_status
 * cleanup's status (0 durably queued, 4 or 5 refused) and *ret_reason (malloc'd, NULL when cleanup gave
 * none); a negative errno when no answer came (the outcome is unknown) or it was malformed (-EBADMSG).
 */
int cleanup_client_finish(struct cleanup_client *c, int final_timeout_ms, long long *ret_status,
                          char **ret_reason);

/* Close the connection (before {req=end}, cleanup then removes its file) and free c's strings. */
void cleanup_client_close(struct cleanup_client *c);
