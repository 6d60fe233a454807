/* cleanup_submit.h: the client end of cleanup's submission protocol (mail_proto.h, protocol 1), non-blocking
 * on an event loop (event.h). smtpd uses it directly; cleanup_client.h wraps it for the blocking sources. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include "event.h"

#include "ipc.h"

/* Content not yet taken by cleanup beyond which the sender should stop producing ("drained" follows). */
#define CLEANUP_SUBMIT_BACKLOG_MAX (256u * 1024)
/* cleanup's listen backlog full (EAGAIN): connect again after a pause that doubles up to the maximum,
 * for at most the patience. */
#define CLEANUP_SUBMIT_CONNECT_PAUSE_USEC     (10ULL * 1000)
#define CLEANUP_SUBMIT_CONNECT_PAUSE_MAX_USEC (200ULL * 1000)
#define CLEANUP_SUBMIT_CONNECT_PATIENCE_USEC  (10ULL * 1000000)

struct cleanup_submit;
/* The owner's callbacks, each with the owner pointer given to cleanup_submit_open; each may free sub. */
struct cleanup_submit_ops {
        /* cleanup answered {req=open}: status 0 with the queue ID, or failure (4 or 5, with a reason). */
        void (*opened)(void *owner, int status, const char *queue_id, const char *reason);
        /* cleanup answered {req=end} (or {req=abort}): status 0 queued; else dsn and reason from cleanup. */
        void (*finished)(void *owner, int status, const char *dsn, const char *reason);
        /* Content backlog drained below CLEANUP_SUBMIT_BACKLOG_MAX: the owner may produce again. */
        void (*drained)(void *owner);
        /* cleanup answered {req=rcpt_check} (the milters' RCPT verdict): 0, or 4/5 with dsn and reason. */
        void (*rcpt_checked)(void *owner, int status, const char *dsn, const char *reason);
};

/*
 * Connect (non-blocking) to path and send {req=open, origin}; fallback (or NULL) is tried when path does
 * not exist (master.cf's "private" column decides where cleanup listens). <0 with a warning logged that
 * names the socket; else *ret, whose answer comes through ops->opened.
 */
int cleanup_submit_open(struct event_loop *e, const char *path, const char *fallback, const char *origin,
                        const struct cleanup_submit_ops *ops, void *owner, struct cleanup_submit **ret);
/* Drop the connection and free sub: before {req=end} cleanup removes the file. NULL is fine. */
void cleanup_submit_free(struct cleanup_submit *sub);
/* Queue one request (recipients, envelope...) for cleanup. */
int cleanup_submit_send(struct cleanup_submit *sub, const struct ipc_msg *m);
/* Ask cleanup's milters about one recipient ({req=rcpt_check}); the answer comes through
 * ops->rcpt_checked. Only between the open answer and the envelope, one question at a time. */
int cleanup_submit_rcpt_check(struct cleanup_submit *sub, const struct ipc_msg *m);
/* The SMTP code cleanup gave with its last refusal of class status (a milter's own 554, 421...), or 0. */
int cleanup_submit_reply_code(const struct cleanup_submit *sub, int status);
/* Content bytes (LF line ends); queued in chunks of MAIL_PROTO_CHUNK_MAX. */
int cleanup_submit_content(struct cleanup_submit *sub, const char *p, size_t n);
/* Flush the content and send {req=end}; the answer comes through ops->finished. */
int cleanup_submit_end(struct cleanup_submit *sub);
/* After cleanup_submit_end, no answer in time: ask cleanup to cancel ({req=abort}); its answer to that
 * is final. -EALREADY when asked before. */
int cleanup_submit_abort(struct cleanup_submit *sub);
/* More than CLEANUP_SUBMIT_BACKLOG_MAX bytes wait to be sent (false for NULL). */
bool cleanup_submit_backlogged(const struct cleanup_submit *sub);
/* Bytes queued and not yet sent. */
size_t cleanup_submit_unsent(const struct cleanup_submit *sub);
/* The connection broke (sending more fails with -EPIPE). */
bool cleanup_submit_failed(const struct cleanup_submit *sub);
