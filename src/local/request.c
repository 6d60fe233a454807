/* request.c: one delivery request from qmgr: loop checks, aliases, per-recipient delivery, marks, reply. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "delivery_request.h"
#include "ipc.h"
#include "local.h"
#include "log.h"

void local_status_set(struct local_status *st, enum local_result result, const char *dsn, const char *fmt,
                      ...)
{
        st->result = result;
        snprintf(st->dsn, sizeof st->dsn, "%s", dsn);
        /* soft_bounce before anything logs it: the line says deferred, as the queue will. */
        if (result == LOCAL_BOUNCED && delivery_soft_bounce_dsn(st->dsn, sizeof st->dsn))
                st->result = LOCAL_DEFERRED;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->reason, sizeof st->reason, fmt, ap);
        va_end(ap);
}

/* What the headers say about loops: the Received: count and the Delivered-To: values. */
struct loop_info {
        long long received;
        struct strv delivered_to;
};

/* Pure scan of the header section (up to the first empty line); continuation lines belong to the header. */
static void scan_headers(const char *content, size_t len, struct loop_info *ret)
{
        const char *p = content, *end = content + len;
        for (size_t n = 0; p < end && n < LOCAL_HEADERS_SCAN_MAX; n++) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                const char *eol = nl ? nl : end;
                if (eol == p)
                        break; /* the empty line before the body */
                size_t l = (size_t)(eol - p);
                if (l >= 9 && strncasecmp(p, "Received:", 9) == 0)
                        ret->received++;
                else if (l >= 13 && strncasecmp(p, "Delivered-To:", 13) == 0) {
                        const char *v = p + 13, *ve = eol;
                        while (v < ve && isspace((unsigned char)*v))
                                v++;
                        while (ve > v && isspace((unsigned char)ve[-1]))
                                ve--;
                        strv_push_take(&ret->delivered_to, xstrndup(v, (size_t)(ve - v)));
                }
                p = nl ? nl + 1 : end;
        }
}

struct request {
        struct local *l;
        const char *queue_id;
        struct qfile_msg *msg;
        struct loop_info loops;
        struct delivery_times times;
};

static int alias_lookup(void *userdata, const char *key, char **ret)
{
        struct local *l = userdata;
        return maps_find(l->aliases, key, ret);
}

static int alias_is_local(void *userdata, const char *domain)
{
        struct local *l = userdata;
        return resolve_domain_is_local(l->resolve, domain);
}

static void log_result(struct request *rq, const char *to, const char *orig_to,
                       const struct local_status *st, const char *sent_text)
{
        struct delivery_times t = rq->times;
        t.done_usec = delivery_now_usec();
        const char *status = st->result == LOCAL_SENT      ? "sent"
                             : st->result == LOCAL_BOUNCED ? "bounced"
                                                           : "deferred";
        delivery_log(rq->queue_id, to, orig_to, "local", &t, st->dsn, status,
                     st->result == LOCAL_SENT ? sent_text : st->reason);
}

/* Worse result wins: deferred (try again) over bounced over sent. */
static void merge(struct local_status *total, const struct local_status *one, bool *first)
{
        int rank_one = one->result == LOCAL_DEFERRED ? 2 : one->result == LOCAL_BOUNCED ? 1 : 0;
        int rank_total = total->result == LOCAL_DEFERRED ? 2 : total->result == LOCAL_BOUNCED ? 1 : 0;
        if (*first || rank_one > rank_total)
                *total = *one;
        *first = false;
}

/* A final local user: getpwnam, then the mailbox. */
static void deliver_to_user(struct request *rq, const struct local_message *lm, const char *user,
                            const char *to, const char *orig_to, struct local_status *st)
{
        errno = 0;
        struct passwd *pw = getpwnam(user);
        if (!pw) {
                if (errno != 0 && errno != ENOENT && errno != ESRCH)
                        local_status_set(st, LOCAL_DEFERRED, "4.3.0", "user lookup failed: %s",
                                         strerror(errno));
                else
                        local_status_set(st, LOCAL_BOUNCED, "5.1.1", "unknown user: \"%s\"", user);
                log_result(rq, to, orig_to, st, NULL);
                return;
        }
        struct passwd copy = *pw; /* getpwnam's storage is reused by the next lookup */
        _cleanup_free_ char *name = xstrdup(pw->pw_name), *dir = xstrdup(pw->pw_dir);
        copy.pw_name = name;
        copy.pw_dir = dir;
        const char *how = "delivered to mailbox";
        mailbox_deliver_user(rq->l, lm, &copy, st, &how);
        log_result(rq, to, orig_to, st, how);
}

static void deliver_rcpt(struct request *rq, const struct qfile_rcpt *rcpt, struct local_status *total)
{
        struct local *l = rq->l;
        const char *addr = rcpt->address;
        const char *orig = !isempty(rcpt->orig_rcpt) ? rcpt->orig_rcpt : addr;
        struct local_message lm = {.queue_id = rq->queue_id,
                                   .sender = rq->msg->sender,
                                   .rcpt = addr,
                                   .content = rq->msg->content,
                                   .content_len = rq->msg->content_len,
                                   .arrival_usec = rq->msg->arrival_usec};

        if (l->hopcount_limit > 0 && rq->loops.received > l->hopcount_limit) {
                local_status_set(total, LOCAL_BOUNCED, "5.4.6", "mail forwarding loop");
                log_result(rq, addr, orig, total, NULL);
                return;
        }
        for (size_t i = 0; i < rq->loops.delivered_to.n; i++)
                if (strcasecmp(rq->loops.delivered_to.v[i], addr) == 0) {
                        local_status_set(total, LOCAL_BOUNCED, "5.4.6", "mail forwarding loop for %s", addr);
                        log_result(rq, addr, orig, total, NULL);
                        return;
                }
        if (!l->aliases) {
                local_status_set(total, LOCAL_DEFERRED, "4.3.0", "alias database unavailable");
                log_result(rq, addr, orig, total, NULL);
                return;
        }

        const char *at = strrchr(addr, '@');
        _cleanup_free_ char *localpart = at ? xstrndup(addr, (size_t)(at - addr)) : xstrdup(addr);
        struct alias_list targets;
        int r = alias_expand(localpart, l->recipient_delimiter, alias_lookup, alias_is_local, l, &targets);
        if (r < 0) {
                if (r == -ELOOP || r == -E2BIG)
                        local_status_set(
                                total, LOCAL_BOUNCED, "5.4.6", "mail forwarding loop for %s (%s)", addr,
                                r == -ELOOP ? "alias nesting too deep" : "too many alias destinations");
                else
                        local_status_set(total, LOCAL_DEFERRED, "4.3.0", "alias database lookup failure");
                log_result(rq, addr, orig, total, NULL);
                return;
        }
        _cleanup_free_ char *base = local_strip_extension(localpart, l->recipient_delimiter);
        for (char *p = base; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        if (targets.n == 0) {
                local_status_set(total, LOCAL_BOUNCED, "5.4.6", "mail forwarding loop for %s", addr);
                log_result(rq, addr, orig, total, NULL);
                return;
        }
        /* Not an alias at all: the recipient itself, logged with its own address. */
        bool plain = targets.n == 1 && targets.v[0].kind == ALIAS_USER && streq(targets.v[0].value, base);

        bool first = true;
        for (size_t i = 0; i < targets.n; i++) {
                const struct alias_target *t = &targets.v[i];
                struct local_status st = {0};
                _cleanup_free_ char *to = NULL;
                switch (t->kind) {
                case ALIAS_USER:
                        to = plain ? xstrdup(addr) : xasprintf("%s@%s", t->value, l->myorigin);
                        deliver_to_user(rq, &lm, t->value, to, plain ? rcpt->orig_rcpt : orig, &st);
                        break;
                case ALIAS_FILE:
                        /* As Postfix logs it: the alias's address, the path in the reason. */
                        to = xstrdup(addr);
                        if (!l->alias_files_allowed)
                                local_status_set(&st, LOCAL_BOUNCED, "5.7.1",
                                                 "mail to files is restricted (allow_mail_to_files)");
                        else {
                                mailbox_deliver_file(l, &lm, t->value, l->alias_uid, l->alias_gid, &st);
                                if (st.result == LOCAL_SENT)
                                        snprintf(st.reason, sizeof st.reason, "delivered to %s: %s",
                                                 t->value[strlen(t->value) - 1] == '/' ? "maildir" : "file",
                                                 t->value);
                        }
                        log_result(rq, to, orig, &st, st.reason);
                        break;
                case ALIAS_COMMAND:
                        to = xasprintf("|%s", t->value);
                        local_status_set(&st, LOCAL_DEFERRED, "4.3.0",
                                         "delivery to a command is not supported yet");
                        log_result(rq, to, orig, &st, NULL);
                        break;
                case ALIAS_INCLUDE:
                        to = xasprintf(":include:%s", t->value);
                        local_status_set(&st, LOCAL_DEFERRED, "4.3.0",
                                         ":include: files are not supported yet");
                        log_result(rq, to, orig, &st, NULL);
                        break;
                case ALIAS_REMOTE:
                        to = xstrdup(t->value);
                        local_status_set(&st, LOCAL_DEFERRED, "4.3.0",
                                         "forwarding to a non-local address is not supported yet");
                        log_result(rq, to, orig, &st, NULL);
                        break;
                }
                merge(total, &st, &first);
        }
        alias_list_free(&targets);
}

/* Each requested recipient: a bad index, already done, or delivered, recorded and marked. */
static void deliver_all(struct request *rq, const struct delivery_request *dr, int qfd,
                        struct ipc_msg *reply)
{
        struct local *l = rq->l;
        for (size_t i = 0; i < dr->n_rcpts; i++) {
                struct qfile_rcpt *rcpt = delivery_request_rcpt(&dr->rcpts[i], rq->msg);
                struct local_status st = {0};
                struct delivery_outcome o;
                if (!rcpt)
                        o = (struct delivery_outcome){DELIVERY_DEFERRED, "4.3.0", "bad recipient index"};
                else if (!delivery_rcpt_already_done(rcpt, &o)) {
                        /* deliver_rcpt logs; a deferral forced by the record or mark is only replied. */
                        deliver_rcpt(rq, rcpt, &st);
                        o = (struct delivery_outcome){(enum delivery_status)st.result, st.dsn, st.reason};
                        delivery_record_outcome(l->queue, qfd, rq->queue_id, dr->rcpts[i].index, rcpt,
                                                "local", &o);
                }
                delivery_reply_add(reply, dr->rcpts[i].text, &o);
        }
}

void local_serve(struct local *l, int fd)
{
        struct ipc_msg req = IPC_MSG_INIT;
        int r = ipc_recv(fd, &req, LOCAL_REQUEST_TIMEOUT_MS);
        if (r < 0) {
                msg_warn("read delivery request: %s", strerror(-r));
                return;
        }
        uint64_t agent_usec = delivery_now_usec();
        struct delivery_request dr;
        const char *why = NULL;
        r = delivery_request_parse(&req, &dr, &why);
        ipc_msg_free(&req);
        struct ipc_msg reply = IPC_MSG_INIT;
        if (r < 0 || !dr.queue_named || dr.queue != QUEUE_ACTIVE) {
                msg_warn("bad delivery request (req, queue_id or queue missing or invalid)");
                delivery_reply_defer_all(&reply, &dr, "bad delivery request");
                ipc_send(fd, &reply, LOCAL_REQUEST_TIMEOUT_MS);
                ipc_msg_free(&reply);
                delivery_request_free(&dr);
                return;
        }

        /* Only these recipients' slots are locked, until the reply is sent: other batches of the message
         * go on in parallel. */
        size_t n_idx = 0, len = 0;
        _cleanup_free_ size_t *wanted = delivery_request_indexes(&dr, &n_idx);
        _cleanup_close_ int qfd = -1;
        _cleanup_free_ char *data = NULL;
        struct qfile_msg msg = {0};
        r = queue_open_for_delivery(l->queue, dr.queue_id, QUEUE_ACTIVE, wanted, n_idx, &qfd, &data, &len,
                                    &msg);
        if (r < 0) {
                msg_warn("%s: open queue file: %s", dr.queue_id, strerror(-r));
                delivery_reply_defer_all(&reply, &dr, "queue file unavailable");
                ipc_send(fd, &reply, LOCAL_REQUEST_TIMEOUT_MS);
        } else {
                struct request rq = {.l = l, .queue_id = dr.queue_id, .msg = &msg};
                rq.times.arrival_usec = dr.arrival_usec ? dr.arrival_usec : msg.arrival_usec;
                rq.times.active_usec = dr.active_usec ? dr.active_usec : agent_usec;
                rq.times.agent_usec = agent_usec;
                rq.times.conn_usec = agent_usec;
                scan_headers(msg.content, msg.content_len, &rq.loops);
                deliver_all(&rq, &dr, qfd, &reply);
                strv_free(&rq.loops.delivered_to);
                r = ipc_send(fd, &reply, LOCAL_REQUEST_TIMEOUT_MS);
                if (r < 0)
                        msg_warn("%s: send reply to qmgr: %s", dr.queue_id, strerror(-r));
        }
        ipc_msg_free(&reply);
        delivery_request_free(&dr);
        qfile_msg_free(&msg);
}
