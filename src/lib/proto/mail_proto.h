/* mail_proto.h: the internal protocols that move a message: source -> cleanup -> qmgr -> delivery agent. */
#pragma once

/*
 * All of them are ipc.h frames (named attributes) over unix stream sockets under queue_directory.
 * Attribute names below are the contract between roles; a role ignores attributes it does not know.
 *
 * Socket paths follow master.cf's "private" column, as in Postfix's default master.cf: cleanup and
 * qmgr are "n" (public/cleanup, public/qmgr), delivery agents are "-" (private/local, private/smtp).
 *
 * 1. Submission: smtpd, pickup (any message source) -> cleanup, socket public/cleanup.
 *    One connection per message, strictly in this order:
 *      source:  {req=open, origin=smtpd|pickup|bounce|local}   bounce: notifications, local: forwarded
 *               mail; all but smtpd are local submissions (content checks skip bounce and local:
 *               internal_mail_filter_classes); the origin also labels the received counter
 *      cleanup: {status=0, queue_id=QID}              the queue file exists (not yet queued)
 *               {status=4, dsn=4.3.0, reason=TEXT}    e.g. queue directory not writable
 *      source:  {req=rcpt, rcpt=ADDR [orcpt=..] [notify=N] rcpt=...}   zero or more times: recipients
 *               ahead of the envelope, as many messages as they take (ipc_batch: a recipient's group never
 *               straddles two messages), so that the count of recipients is not bounded by one message
 *      smtpd:   {req=rcpt_check, rcpt=ADDR, sender=ADDR, client_name, client_address, client_port,
 *                [helo_name] protocol [tls] [server_address] milters [receive_override] [sasl_method
 *                sasl_username]}   only when its smtpd_milters apply, once per RCPT before it answers it:
 *      cleanup: {status=0} or {status=4|5, dsn=X.Y.Z, reason=TEXT}   the milters' verdict on that
 *               recipient (the first check also runs their connect, HELO and MAIL stages). smtpd adds
 *               only an accepted recipient, and sends it again with {req=rcpt}/{req=envelope} as usual.
 *      source:  {req=envelope, sender=ADDR ("" for <>), [rcpt=ADDR [orcpt=..] [notify=N] rcpt=... ,]
 *                client_name, client_address, client_port, helo_name, protocol (SMTP|ESMTP|ESMTPS|...),
 *                [sasl_username] [envid] [size] [uid (pickup: the submitting user's uid)]
 *                [full_name (pickup: sendmail -F, for a From: header cleanup adds)]
 *                [smtputf8=1] [tls=TEXT e.g. "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384"]
 *                [server_address (smtpd: the local address the client connected to, for the milters)]
 *                [milters (smtpd: its smtpd_milters, -o included, for cleanup to run; "" none)]
 *                [sasl_method] [receive_override (the listener's receive_override_options)]}
 *               orcpt/notify apply to the rcpt just before them, in the same message: orcpt "TYPE;ADDR"
 *               (e.g. "rfc822;a@b", decoded), notify "NEVER" or a comma list of SUCCESS, FAILURE, DELAY.
 *               smtpd also sends [ret=FULL|HDRS] and [body=8BITMIME] from MAIL FROM when given (cleanup
 *               may ignore them).
 *      source:  {req=content, data=BYTES} repeated; each data <= MAIL_PROTO_CHUNK_MAX. The bytes are the
 *               message as received: headers and body, LF line ends, dot-unstuffed, no final dot.
 *      source:  {req=end}
 *      cleanup: {status=0, queue_id=QID}              durably queued (file + directory entry fsync'd):
 *                                                     only now may smtpd answer 250
 *               {status=4|5, dsn=X.Y.Z, reason=TEXT [code=NNN]}  not queued; nothing was acknowledged
 *               (code: a milter's own SMTP reply code, which smtpd then uses; also in rcpt_check's answer)
 *    A source that disconnects before {req=end} leaves nothing behind: cleanup removes the file. A source
 *    that cannot hand over every recipient and attribute (an encoding error) never sends {req=end}: the
 *    message is not queued and its client is told 4xx.
 *    A source that has waited too long for the final answer sends {req=abort} and waits again: the answer
 *    is then {status=4, dsn=4.3.0} when cleanup cancelled the message before renaming its file to the queue
 *    ID (it is never queued), else the commit's own answer (the message is queued whatever the source does
 *    now). Closing the connection after {req=end} cancels the same way, without an answer. So a source
 *    that waits for the answer always knows the outcome (docs/QUEUE_FORMAT.md, "Timeouts").
 *
 * 2. Notification: cleanup -> qmgr, socket public/qmgr: {req=new, queue_id=QID} (no reply;
 *    best effort: qmgr also scans incoming/ on its wakeup timer and at start).
 *    postqueue -f / sendmail -q -> qmgr, socket public/qmgr: {req=flush} -> {status=0}.
 *    postqueue -i QID: {req=flush, queue_id=QID};
 *    postqueue -s SITE / sendmail -qRSITE: {req=flush, site=SITE}
 *    -> {status=0, count=N}: N deferred messages (those with a pending recipient in domain SITE) are due
 *    now (-i: 1 also when QID is already in incoming/ or active/; held mail is not released). A qmgr that
 *    does not know these attributes flushes everything, which is a compatible superset.
 *
 * 3. Delivery: qmgr -> delivery agent (local, smtp, ...), socket private/TRANSPORT (the master.cf
 *    service name). One request per connection:
 *      qmgr:  {req=deliver, queue_id=QID, queue=active, nexthop=TEXT, transport=NAME,
 *              arrival_usec=N, active_usec=N (when qmgr took it), rcpt_index=I ...}
 *              rcpt_index: positions of the recipients (in the queue file's order) to deliver; at most
 *              DELIVERY_REQUEST_RCPTS_MAX (delivery_request.h) per request, more make more requests.
 *      agent: {rcpt_index=I, status=sent|deferred|bounced, dsn=X.Y.Z, reason=TEXT} repeated, one
 *              group of four per requested recipient, in request order.
 *    The agent opens the queue file itself (read-only), logs each recipient's
 *    "QID: to=<..>, relay=.., delay=.., delays=a/b/c/d, dsn=.., status=.. (reason)" line, and before
 *    replying marks each sent recipient done in the file (queue_mark_rcpt, fsync'd): a crash after
 *    delivery never delivers that recipient twice from the queue.
 *    Before it marks a recipient bounced, the agent appends its record to bounce/QID; for a deferred
 *    recipient it appends to defer/QID (dsnlog.h, docs/QUEUE_FORMAT.md). A bounce record that cannot be
 *    written turns the recipient into "deferred": the notification is never lost.
 *
 * 4. Notification of failure: qmgr -> bounce, socket private/bounce (master.cf
 *    "bounce unix - - n - 0 bounce"). One request per connection, when a message's deliveries are over
 *    and some recipient was returned (bounce/QID exists):
 *      qmgr:   {req=bounce, queue_id=QID, queue=active}
 *              (req=warn asks for a delay warning from defer/QID; optional retry_until_usec=N)
 *      bounce: {status=0, queue_id=NEW}  the notification is durably queued (cleanup's final status 0)
 *              {status=0}                nothing to send (no records, NOTIFY=NEVER, null sender)
 *              {status=4, reason=TEXT}   not sent: qmgr keeps the message (deferred) and asks again later
 *    bounce reads the queue file and bounce/QID itself and submits the report to cleanup (section 1,
 *    origin=bounce: locally generated mail) from <> to the sender. Only after status 0 does qmgr remove
 *    bounce/QID (and, when no recipient is left, the queue file and defer/QID).
 */

#define MAIL_PROTO_CLEANUP_SOCKET "public/cleanup"
#define MAIL_PROTO_QMGR_SOCKET    "public/qmgr"
#define MAIL_PROTO_SHOWQ_SOCKET   "public/showq"
#define MAIL_PROTO_BOUNCE_SOCKET  "private/bounce"
#define MAIL_PROTO_CHUNK_MAX      (64u * 1024)
/*
 * How long a source waits for cleanup's final answer before it sends {req=abort}, and then again for the
 * answer to that: covers the group commit's fsyncs. A shorter ipc_timeout (seconds) shortens it.
 */
#define MAIL_PROTO_CLEANUP_TIMEOUT_USEC (120 * USEC_PER_SEC)

static inline int mail_proto_cleanup_timeout_ms(long long ipc_timeout_sec)
{
        return ipc_timeout_sec > 0 && ipc_timeout_sec * 1000 < USEC_TO_MS(MAIL_PROTO_CLEANUP_TIMEOUT_USEC)
                       ? (int)(ipc_timeout_sec * 1000)
                       : USEC_TO_MS(MAIL_PROTO_CLEANUP_TIMEOUT_USEC);
}
