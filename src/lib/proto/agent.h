/* agent.h: the request/reply cycle of delivery agents that need no peer: error, retry, discard, virtual. */
#pragma once

#include <stddef.h>

#include "delivery.h"
#include "delivery_request.h"
#include "ipc.h"
#include "macro.h"
#include "qfile.h"
#include "queue.h"

/* How long an agent waits for qmgr's request and for its reply to be taken. */
#define AGENT_REQUEST_TIMEOUT_USEC (60 * USEC_PER_SEC)
/* Longest reason kept from a nexthop text ("error:5.1.1 TEXT"): resolve.h bounds nexthops already. */
#define AGENT_REASON_MAX 1024
/* Digits of the subject and detail parts of an enhanced status code (RFC 3463: 1 to 3 each). */
#define AGENT_DSN_PART_MAX 3

/* The same values as enum delivery_status: a verdict is recorded and reported as it is. */
enum agent_result {
        AGENT_SENT = DELIVERY_SENT,
        AGENT_BOUNCED = DELIVERY_BOUNCED,
        AGENT_DEFERRED = DELIVERY_DEFERRED
};

/* One verdict for every recipient of a request. */
struct agent_verdict {
        enum agent_result result;
        char dsn[QFILE_MAX_DSN_STATUS_LEN + 1];
        char reason[AGENT_REASON_MAX];
};

/* Set a verdict: result, DSN status and a printf-style reason (cut at AGENT_REASON_MAX - 1 bytes). */
void agent_verdict_set(struct agent_verdict *ret, enum agent_result result, const char *dsn, const char *fmt,
                       ...) _printf_(4, 5);

/*
 * Postfix's "[X.Y.Z ]text" nexthop forms (transport_maps "error:5.1.1 no such user"): split text into
 * a DSN status and a reason. A leading code is taken when it is a well-formed enhanced status code
 * followed by a blank or the end; its class digit is replaced by cls ('2', '4' or '5': an error
 * transport never reports success, discard never a failure). Without one, the status is cls.0.0.
 * An empty reason becomes fallback. Pure; the reason is cut at AGENT_REASON_MAX - 1 bytes.
 */
void agent_verdict_from_text(const char *text, enum agent_result result, char cls, const char *fallback,
                             struct agent_verdict *ret);

/*
 * The verdict for one request, from its nexthop text (never NULL, maybe "") and the transport
 * (master.cf service name) qmgr named.
 */
typedef void (*agent_decide_fn)(void *userdata, const char *nexthop, const char *transport,
                                struct agent_verdict *ret);

/*
 * Serve one delivery request (mail_proto.h part 3) on fd, blocking with AGENT_REQUEST_TIMEOUT_USEC: read
 * it, lock the recipients' slots, apply decide's verdict to each pending recipient (bounce/QID or
 * defer/QID record first, then the fsync'd mark), log each "to=..., relay=none, ..." line with the
 * final outcome, reply. A bounce record that cannot be written turns the recipient into "deferred".
 */
void agent_serve(struct queue *q, int fd, agent_decide_fn decide, void *userdata);

/*
 * The outcome for one pending recipient of request dr, whose message is msg (the queue file, read):
 * a delivery agent that works per recipient (virtual) does the delivery here, durably, before it
 * returns a "sent" verdict.
 */
typedef void (*agent_rcpt_fn)(void *userdata, const struct delivery_request *dr, const struct qfile_msg *msg,
                              const struct qfile_rcpt *rcpt, struct agent_verdict *ret);

/*
 * What an agent does with one request whose queue file is open (qfd, the requested recipients' slots
 * locked) and read (msg): deliver, record and mark each recipient, and add each outcome to reply.
 */
typedef void (*agent_request_fn)(void *userdata, const struct delivery_request *dr, int qfd,
                                 struct qfile_msg *msg, struct delivery_times *t, struct ipc_msg *reply);

/*
 * The one receiving end of qmgr's delivery request (mail_proto.h part 3) for the blocking agents (local,
 * virtual, error, discard): read the request on fd (AGENT_REQUEST_TIMEOUT_USEC), refuse a bad one, open
 * the queue file for its recipients, call handle, send the reply. A request that cannot be served
 * (bad, file missing, recipients locked by another agent) is answered "deferred" for every recipient.
 */
void agent_serve_request(struct queue *q, int fd, agent_request_fn handle, void *userdata);

/* agent_serve with a verdict per recipient from deliver, logged and recorded with relay (e.g. "virtual"). */
void agent_serve_each(struct queue *q, int fd, const char *relay, agent_rcpt_fn deliver, void *userdata);
