/* main.c: bounce, the notification service: qmgr asks, it returns failed (or delayed) mail to the sender. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "bounce.h"
#include "cleanup_client.h"
#include "ipc.h"
#include "log.h"
#include "mail_proto.h"
#include "queue.h"
#include "service.h"

/* How long bounce waits for qmgr's request, and for each step of cleanup's conversation but the last. */
#define BOUNCE_REQUEST_TIMEOUT_USEC (60 * USEC_PER_SEC)
#define BOUNCE_STEP_TIMEOUT_USEC    (30 * USEC_PER_SEC)

struct bounce {
        struct config *cfg;
        struct queue *queue;
        char *queue_dir;
        char *myhostname, *mail_name, *myorigin;
        char *double_bounce, *postmaster_2bounce;
        bool notify_2bounce;
        size_t size_limit;
};

static struct bounce bounce_state;

/* Submit one message to cleanup (mail_proto.h section 1); 0 and *ret_id once it is durably queued. */
static int submit(struct bounce *b, const char *sender, const char *rcpt, const struct buf *msg,
                  char **ret_id, char **ret_why)
{
        struct cleanup_client c = CLEANUP_CLIENT_INIT;
        long long status = -1;
        _cleanup_free_ char *reason = NULL; /* before every goto: clang refuses to jump past it */
        /* cleanup treats it as locally generated mail: "Received: by HOST (Postfix) id ...". */
        int r = cleanup_client_open(&c, b->queue_dir, "bounce", USEC_TO_MS(BOUNCE_STEP_TIMEOUT_USEC),
                                    ret_why);
        if (r < 0)
                goto done;
        /* A notification never asks for notifications about itself. */
        char never[8];
        snprintf(never, sizeof never, "%u", (unsigned)QFILE_NOTIFY_NEVER);
        const struct ipc_kv env_kv[] = {{"req", "envelope", 8},
                                        {"sender", sender, strlen(sender)},
                                        {"rcpt", rcpt, strlen(rcpt)},
                                        {"notify", never, strlen(never)}};
        r = cleanup_client_send_kv(&c, env_kv, ELEMENTSOF(env_kv));
        if (r == 0)
                r = cleanup_client_send_content(&c, msg->data, msg->len);
        /* A definite answer: a notification queued after we gave up would be sent twice. */
        if (r == 0)
                r = cleanup_client_finish(
                        &c, mail_proto_cleanup_timeout_ms(config_get_time(b->cfg, "ipc_timeout")), &status,
                        &reason);
        if (r < 0 || status != 0) {
                *ret_why = xasprintf("cleanup did not queue the notification: %s",
                                     r < 0 ? strerror(-r) : (reason ?: "bad reply"));
                r = r < 0 ? r : -EIO;
                goto done;
        }
        *ret_id = TAKE_PTR(c.queue_id);
done:
        cleanup_client_close(&c);
        return r;
}

static bool is_double_bounce_address(struct bounce *b, const char *sender)
{
        if (strcasecmp(sender, b->double_bounce) == 0)
                return true;
        size_t n = strlen(b->double_bounce);
        return strncasecmp(sender, b->double_bounce, n) == 0 && sender[n] == '@';
}

/* Which records to report: the latest per recipient, not for delivered ones, honouring NOTIFY=. */
static size_t select_records(const struct dsnlog *l, const struct qfile_msg *m, enum bounce_kind kind,
                             const struct dsnlog_rec ***ret)
{
        const struct dsnlog_rec **latest;
        size_t n = dsnlog_latest(l, &latest), k = 0;
        unsigned want = kind == BOUNCE_FAILED ? QFILE_NOTIFY_FAILURE : QFILE_NOTIFY_DELAY;
        for (size_t i = 0; i < n; i++) {
                const struct dsnlog_rec *r = latest[i];
                unsigned notify = r->notify;
                if (r->index != DSNLOG_NO_INDEX && m && r->index < m->n_rcpts) {
                        const struct qfile_rcpt *q = &m->rcpts[r->index];
                        /* A record written before a crash for a recipient delivered on a later attempt. */
                        if (q->state == QFILE_RCPT_DELIVERED)
                                continue;
                        notify = q->notify;
                }
                if (notify != 0 && !(notify & want))
                        continue;
                latest[k++] = r;
        }
        *ret = latest;
        return k;
}

/*
 * Fill the answer to qmgr: status and one more attribute (name NULL: none). One that cannot be built is
 * left empty: without a status qmgr keeps the message and asks again, as after status 4.
 */
static void answer(struct ipc_msg *reply, int status, const char *name, const char *value)
{
        int r = ipc_msg_add_int(reply, "status", status);
        if (r == 0 && name)
                r = ipc_msg_add_str(reply, name, value);
        if (r < 0) {
                msg_warn("cannot encode the answer to qmgr: %s", strerror(-r));
                ipc_msg_truncate(reply, 0);
        }
}

/* One request; the reply goes into *reply. */
static void handle(struct bounce *b, const struct ipc_msg *req, struct ipc_msg *reply)
{
        const char *what = ipc_msg_get_str(req, "req");
        const char *qid = ipc_msg_get_str(req, "queue_id");
        const char *queue = ipc_msg_get_str(req, "queue");
        int qn = queue ? queue_name_from_string(queue) : QUEUE_ACTIVE;
        if (!what || (!streq(what, "bounce") && !streq(what, "warn")) || !qid || !queue_id_valid(qid) ||
            qn < 0) {
                msg_warn("bad notification request (req, queue_id or queue missing or invalid)");
                answer(reply, 4, "reason", "bad request");
                return;
        }
        enum bounce_kind kind = streq(what, "bounce") ? BOUNCE_FAILED : BOUNCE_DELAYED;
        struct log_fields lf = {.queue_id = qid};
        _cleanup_free_ char *dbl = NULL, *from = NULL, *new_id = NULL, *why = NULL;

        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        struct qfile_msg m = {0};
        struct qfile_error err = {0};
        int r = queue_open_file(b->queue, qid, (enum queue_name)qn, O_RDONLY, &fd);
        if (r >= 0)
                r = queue_read_fd(fd, &data, &len);
        if (r >= 0)
                r = qfile_decode(data, len, &m, &err);
        if (r < 0) {
                /* Without the envelope there is nobody to notify: qmgr keeps the message and asks again. */
                msg_fields(LOG_LEVEL_WARNING, &lf, "%s: cannot read queue file %s/%s: %s", qid,
                           queue_name_to_string((enum queue_name)qn), qid,
                           r == -EBADMSG && err.reason ? err.reason : strerror(-r));
                answer(reply, 4, "reason", "queue file unavailable");
                return;
        }

        struct dsnlog l;
        r = dsnlog_read(b->queue, kind == BOUNCE_FAILED ? QUEUE_BOUNCE : QUEUE_DEFER, qid, &l);
        if (r == -ENOENT) {
                answer(reply, 0, NULL, NULL);
                qfile_msg_done(&m);
                return;
        }
        if (r < 0) {
                msg_fields(LOG_LEVEL_WARNING, &lf, "%s: cannot read %s/%s: %s", qid,
                           kind == BOUNCE_FAILED ? "bounce" : "defer", qid, strerror(-r));
                answer(reply, 4, "reason", "log file unavailable");
                qfile_msg_done(&m);
                return;
        }
        if (l.n_bad > 0)
                msg_fields(LOG_LEVEL_WARNING, &lf,
                           "%s: %zu damaged or incomplete record(s) in %s/%s skipped", qid, l.n_bad,
                           kind == BOUNCE_FAILED ? "bounce" : "defer", qid);
        const struct dsnlog_rec **recs;
        size_t n = select_records(&l, &m, kind, &recs);

        const char *notice = kind == BOUNCE_FAILED ? "non-delivery" : "delay";
        const char *to = m.sender, *env_sender = "", *whom = "sender";
        bool send = n > 0;
        if (send && isempty(m.sender)) {
                /* A bounce that failed: Postfix never returns it; optionally the postmaster hears of it. */
                if (kind == BOUNCE_FAILED && b->notify_2bounce) {
                        to = b->postmaster_2bounce;
                        env_sender = dbl = xasprintf("%s@%s", b->double_bounce, b->myorigin);
                        whom = "postmaster";
                } else {
                        msg_fields(LOG_LEVEL_INFO, &lf, "%s: sender %s notification: not sent (null sender)",
                                   qid, notice);
                        send = false;
                }
        } else if (send && is_double_bounce_address(b, m.sender)) {
                msg_fields(LOG_LEVEL_WARNING, &lf, "%s: undeliverable postmaster notification discarded",
                           qid);
                send = false;
        }
        if (!send) {
                answer(reply, 0, NULL, NULL);
                goto out;
        }

        from = xasprintf("MAILER-DAEMON@%s", b->myhostname);
        struct bounce_input in = {
                .kind = kind,
                .queue_id = qid,
                .myhostname = b->myhostname,
                .mail_name = b->mail_name,
                .from = from,
                .to = to,
                .orig_sender = m.sender,
                .envelope_id = m.envelope_id,
                .arrival_usec = m.arrival_usec,
                .now = time(NULL),
                .recs = recs,
                .n_recs = n,
                .content = m.content,
                .content_len = m.content_len,
                .size_limit = b->size_limit,
        };
        long long until = 0;
        if (ipc_msg_get_int(req, "retry_until_usec", &until) == 0 && until > 0)
                in.warn_until_usec = (uint64_t)until;
        struct buf text = BUF_INIT;
        bounce_compose(&in, &text);
        r = submit(b, env_sender, to, &text, &new_id, &why);
        buf_done(&text);
        if (r < 0) {
                msg_fields(LOG_LEVEL_WARNING, &lf, "%s: %s %s notification not queued: %s", qid, whom,
                           notice, why ? why : strerror(-r));
                answer(reply, 4, "reason", why ? why : "cleanup failed");
                goto out;
        }
        msg_fields(LOG_LEVEL_INFO, &lf, "%s: %s %s notification: %s", qid, whom, notice, new_id);
        answer(reply, 0, "queue_id", new_id);
out:
        free(recs);
        dsnlog_done(&l);
        qfile_msg_done(&m);
}

static void on_connection(struct service *s, int fd)
{
        /* One request per process at a time: blocking I/O keeps it straight (qmgr does not wait on us). */
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
                fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        struct bounce *b = service_userdata(s);
        struct ipc_msg req = IPC_MSG_INIT, reply = IPC_MSG_INIT;
        int r = ipc_recv(fd, &req, USEC_TO_MS(BOUNCE_REQUEST_TIMEOUT_USEC));
        if (r < 0)
                msg_warn("read notification request: %s", strerror(-r));
        else {
                handle(b, &req, &reply);
                r = ipc_send(fd, &reply, USEC_TO_MS(BOUNCE_REQUEST_TIMEOUT_USEC));
                if (r < 0)
                        msg_warn("send reply to qmgr: %s", strerror(-r));
        }
        ipc_msg_done(&req);
        ipc_msg_done(&reply);
        close(fd);
        service_connection_done(s);
}

static int bounce_init(struct service *s)
{
        struct bounce *b = service_userdata(s);
        b->cfg = service_config(s);
        const char *queue_dir = config_get(b->cfg, "queue_directory");
        int r = queue_open(queue_dir, &b->queue);
        if (r < 0) {
                msg_error("open queue directory %s: %s", queue_dir, strerror(-r));
                return r;
        }
        b->queue_dir = xstrdup(queue_dir);
        b->myhostname = xstrdup(config_get(b->cfg, "myhostname"));
        b->myorigin = xstrdup(config_get(b->cfg, "myorigin"));
        b->mail_name = xstrdup(config_get(b->cfg, "mail_name"));
        b->double_bounce = xstrdup(config_get(b->cfg, "double_bounce_sender"));
        b->postmaster_2bounce = xstrdup(config_get(b->cfg, "2bounce_notice_recipient"));
        long long limit = config_get_int(b->cfg, "bounce_size_limit");
        b->size_limit = limit > 0 ? (size_t)limit : 0;
        struct strv classes = STRV_INIT;
        config_get_list(b->cfg, "notify_classes", &classes);
        for (size_t i = 0; i < classes.n; i++)
                b->notify_2bounce |= strcasecmp(classes.v[i], "2bounce") == 0;
        strv_done(&classes);
        return 0;
}

int main(int argc, char **argv)
{
        static const struct service_ops ops = {
                .init = bounce_init,
                .on_connection = on_connection,
                .max_connections = 1,
                .userdata = &bounce_state,
        };
        return service_main(argc, argv, &ops);
}
