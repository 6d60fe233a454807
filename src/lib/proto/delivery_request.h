/* delivery_request.h: qmgr's delivery request (mail_proto.h part 3) as every delivery agent reads it, and
 * the per-recipient bookkeeping they share before replying. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipc.h"
#include "qfile.h"
#include "queue.h"

/*
 * Recipients in one delivery request: qmgr never puts more in one (it makes more requests), and an agent
 * reads at most this many. Chosen so that both the request (one attribute per recipient) and the reply
 * (four attributes per recipient, its reason at most DELIVERY_REPLY_REASON_MAX bytes) fit in one IPC
 * message with room to spare: nothing of either is ever cut off.
 */
#define DELIVERY_REQUEST_RCPTS_MAX 1000
/* Bytes of a recipient's reason in the reply; qmgr only logs it (the agent wrote the full one). */
#define DELIVERY_REPLY_REASON_MAX 1024
/* Attributes of a request besides its rcpt_index entries (req, queue_id, queue, nexthop, ...). */
#define DELIVERY_REQUEST_FIXED_ATTRS_MAX 16

struct delivery_request_rcpt {
        char *text;   /* as qmgr wrote it: the reply names the recipient the same way */
        size_t index; /* position in the queue file; only meaningful when valid */
        bool valid;   /* a plain decimal number: an invalid one is answered "deferred", never dropped */
};

struct delivery_request {
        char *queue_id;        /* after a failure: the text as sent, "" when absent */
        enum queue_name queue; /* QUEUE_ACTIVE when the request names none */
        bool queue_named;      /* the request had a queue attribute (local and error/discard require it) */
        char *nexthop;         /* "" when absent */
        char *transport;       /* "" when absent */
        uint64_t arrival_usec; /* 0 when absent or not positive: the queue file's time applies */
        uint64_t active_usec;  /* 0 when absent or not positive: the agent's own time applies */
        struct delivery_request_rcpt *rcpts;
        size_t n_rcpts;
};

/*
 * Pure parser of a {req=deliver, ...} request. 0; or -EINVAL (req not "deliver", queue_id missing or
 * not a queue ID, an unknown queue name) or -E2BIG (more than DELIVERY_REQUEST_RCPTS_MAX recipients),
 * with *why set to the reason to log and reply. The recipients are read first and kept on failure too
 * (at most DELIVERY_REQUEST_RCPTS_MAX), so that each of them can be answered; *ret always needs
 * delivery_request_done.
 */
int delivery_request_parse(const struct ipc_msg *m, struct delivery_request *ret, const char **ret_why);
void delivery_request_done(struct delivery_request *r);

/* The valid recipient positions (malloc'd, never NULL), in request order: what to lock in the file. */
size_t *delivery_request_indexes(const struct delivery_request *r, size_t *ret_n);
/*
 * The request's queue file (in the queue r names) opened for delivery: read and decoded, only its
 * requested recipients' status slots locked (queue_open_for_delivery; -EBUSY when another agent holds
 * one). The caller owns *ret_fd, *ret_data and *ret_msg.
 */
int delivery_request_open_file(struct queue *q, const struct delivery_request *r, int *ret_fd,
                               char **ret_data, size_t *ret_len, struct qfile_msg *ret_msg);
/* The queue file's recipient that rcpt names, or NULL when its index is invalid or past the end. */
struct qfile_rcpt *delivery_request_rcpt(const struct delivery_request_rcpt *rcpt, struct qfile_msg *msg);

enum delivery_status { DELIVERY_SENT, DELIVERY_BOUNCED, DELIVERY_DEFERRED };

/* "sent", "bounced", "deferred": the words of the reply and of the log line. */
const char *delivery_status_name(enum delivery_status s);

/* What becomes of one recipient: reported to qmgr, logged, recorded. */
struct delivery_outcome {
        enum delivery_status status;
        const char *dsn;
        const char *reason;
};

/* soft_bounce: from now on delivery_record_outcome() turns every bounce into a deferral (5.x.y: 4.x.y).
 * Each delivery agent sets it from its configuration at start. */
void delivery_set_soft_bounce(bool on);
/* With soft_bounce set: rewrite dsn (size bytes) as the deferral's code and return true. */
bool delivery_soft_bounce_dsn(char *dsn, size_t size);

/*
 * A recipient that an earlier attempt finished but was interrupted before its reply: true, and *ret is
 * "sent" or "bounced" with its stored status code and "already done" (never deliver it again). False
 * while it is pending.
 */
bool delivery_rcpt_already_done(const struct qfile_rcpt *rcpt, struct delivery_outcome *ret);

/*
 * Record the outcome of recipient idx (rcpt, of the file open read-write as qfd): with soft_bounce a
 * bounce becomes a deferral first (see delivery_set_soft_bounce); for a bounce or a
 * deferral its record in bounce/QID or defer/QID first (relay as the record's relay), then for sent or
 * bounced the fsync'd status mark. *o becomes what to report: a bounce whose record cannot be written
 * (the notification would be lost), or a recipient whose mark fails (logged here), is deferred with
 * 4.3.0. 0, or the mark's negative errno.
 */
int delivery_record_outcome(struct queue *q, int qfd, const char *queue_id, size_t idx,
                            struct qfile_rcpt *rcpt, const char *relay, struct delivery_outcome *o);
/*
 * The same without the fdatasync(): *ret_marked says whether a mark was written. A caller recording several
 * recipients of one delivery at once (the smtp client after the answer to DATA) makes all of them durable
 * with one delivery_sync_marks() before it reports or logs any of them.
 */
int delivery_record_outcome_unsynced(struct queue *q, int qfd, const char *queue_id, size_t idx,
                                     struct qfile_rcpt *rcpt, const char *relay, struct delivery_outcome *o,
                                     bool *ret_marked);
/* fdatasync() of the marks written on qfd; a warning naming queue_id and -errno on failure. */
int delivery_sync_marks(int qfd, const char *queue_id);

/*
 * Append one {rcpt_index, status, dsn, reason} group to a reply (the reason cut to
 * DELIVERY_REPLY_REASON_MAX bytes). 0, or -E2BIG/-EINVAL with the reply unchanged (logged here): qmgr
 * then defers the recipients it got no answer for, and those the agent marked done are "already done"
 * next time, so nothing is lost; within DELIVERY_REQUEST_RCPTS_MAX recipients it never happens.
 */
int delivery_reply_add(struct ipc_msg *reply, const char *index_text, const struct delivery_outcome *o);
/* Every recipient of r deferred with 4.3.0 and reason (a bad request, an unavailable queue file). */
int delivery_reply_defer_all(struct ipc_msg *reply, const struct delivery_request *r, const char *reason);
