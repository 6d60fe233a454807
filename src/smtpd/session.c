/* session.c: one SMTP session on the event loop: I/O, TLS, the command state machine and DATA streaming. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>

#include "alloc.h"
#include "log.h"
#include "metrics.h"
#include "mail_proto.h"
#include "proxy.h"
#include "queue_space.h"
#include "smtp_cmd.h"
#include "smtp_data.h"
#include "smtp_reply.h"
#include "smtpd.h"
#include "worker.h"

/* Read size of one recv/SSL_read. */
#define SESSION_READ_CHUNK 16384u
/* Rounds of read/process/write per event, so one busy client cannot starve the others. */
#define SESSION_PUMP_ROUNDS 8
/* DNS lookups one command's restrictions may start before it is answered 451 4.3.0. */
#define SESSION_DNS_ROUNDS_MAX 4

/* The disconnect line's counters, in Postfix's order. */
enum counter {
        CNT_HELO,
        CNT_EHLO,
        CNT_STARTTLS,
        CNT_AUTH,
        CNT_MAIL,
        CNT_RCPT,
        CNT_DATA,
        CNT_BDAT,
        CNT_RSET,
        CNT_NOOP,
        CNT_VRFY,
        CNT_ETRN,
        CNT_QUIT,
        CNT_UNKNOWN,
        CNT_N,
};
static const char *const counter_names[CNT_N] = {
        "helo", "ehlo", "starttls", "auth", "mail", "rcpt", "data",
        "bdat", "rset", "noop",     "vrfy", "etrn", "quit", "unknown",
};

struct rcpt {
        char *addr;
        char *orcpt; /* "rfc822;addr" or NULL */
        unsigned notify;
};

/* The client's DNS facts, looked up in a worker thread before the greeting. */
struct client_lookup {
        struct session *session; /* NULL once the session is gone */
        /* Before the greeting: the client's names and blocklist listings. */
        char addr[NETADDR_FORMAT_MAX];
        bool names;
        struct strv zones;
        struct smtpd_client_dns dns;
        /* At a command: the DNS facts its restrictions asked for, then the command again. */
        struct strv keys;
        struct smtpd_dns_fact *facts; /* keys.n answers */
        char *retry_line;             /* NULL: the greeting's restrictions asked */
        size_t retry_len;
};

struct session {
        struct session *next, *prev;
        struct smtpd *srv;
        int fd;
        struct event_source *io, *timer, *pause_timer, *wait_timer, *deadline_timer;
        /* The last recv found the socket empty (EAGAIN, or fewer bytes than asked: a stream socket gives
         * all it has): the next waits for EPOLLIN, which is level-triggered, instead of failing with
         * EAGAIN once per command (issue 19). */
        bool drained;
        char addr[NETADDR_FORMAT_MAX];
        int port;
        char *client; /* "name[addr]" for logs */

        struct buf in;
        size_t in_off;
        struct buf out;
        size_t out_off;
        bool eof, closing, dead, paused, discard_line;
        enum smtpd_bare_newline bare_newline; /* the server's, or normalize for an excluded client */
        struct client_lookup *lookup;         /* the DNS lookup before the greeting, while it runs */
        struct smtpd_client_dns dns;
        bool dns_done; /* dns holds the answers (else the client is "unknown" to every check) */
        struct smtpd_dns_facts facts; /* DNS answers restrictions asked for (reject_unknown_*, rhsbl) */
        const char *cur_line;         /* the command being handled, for its run with the answers */
        size_t cur_len;
        bool retrying;       /* handling a command again, its DNS answers in facts */
        unsigned dns_rounds; /* lookups for the current command: bounded by SESSION_DNS_ROUNDS_MAX */

        struct tls_conn *tls;
        bool tls_handshaking, tls_active, tls_start_after_flush;
        bool tls_read_wants_write, tls_write_wants_read;
        char *tls_info;

        char *helo;
        bool esmtp;
        bool access_denied;   /* smtpd_client_restrictions said no at connect (smtpd_delay_reject = no) */
        const char *last_cmd; /* for "lost connection after X" */
        long long errors;
        long long junk_cmds; /* NOOP, VRFY, ETRN, RSET, HELO, EHLO since the last delivered message */
        unsigned cnt_ok[CNT_N], cnt_total[CNT_N];
        int cur_cnt;   /* counter the next reply settles, or -1 */
        int last_code; /* of the last reply */

        /* Mail transaction. */
        bool in_mail;
        char *sender;
        struct smtp_cmd_params mail_params;
        struct rcpt *rcpts;
        size_t n_rcpts;
        size_t rcpt_attempts;
        struct cleanup_submit *sub; /* the message being handed to cleanup */
        char *queue_id;
        /* Opened at MAIL, before any recipient is known, so that cleanup names the file while the client
         * sends its RCPT: claimed by the first accepted recipient, dropped (cleanup removes the file) when
         * none is. Its queue ID stays private until then: a rejected transaction logs NOQUEUE. */
        struct cleanup_submit *early_sub;
        char *early_queue_id;
        enum { EARLY_NONE, EARLY_WANTED, EARLY_OPENING, EARLY_OPEN, EARLY_FAILED } early;
        struct smtp_cmd pending_rcpt; /* accepted, waiting for cleanup's open reply */
        bool opening, ending;
        bool in_data, data_failed;
        struct smtp_data data;
        /* smtpd_proxy_filter: the filter's connection for this transaction, and the step it answers. */
        struct proxy *proxy;
        struct proxy_replay *replay; /* speed_adjust: the transaction kept until its final dot */
        bool proxy_busy;
        enum { PROXY_STEP_MAIL, PROXY_STEP_RCPT, PROXY_STEP_DATA, PROXY_STEP_END } proxy_step;

        /* AUTH (sasl.c): the conversation with Dovecot, and its result. */
        struct sasl_conv *sasl;
        bool sasl_busy;    /* a step runs in a worker: no input is handled meanwhile */
        bool ehlo_pending; /* the EHLO reply waits for Dovecot's mechanism list */
        bool auth_cont;    /* a 334 was sent: the next line is the client's response */
        char *auth_mech;   /* mechanism of the AUTH in progress */
        char *sasl_method, *sasl_username;

        /* anvil: this session's connect was counted (and by which anvil connection); the 421 a
         * connection limit answers in place of the greeting. */
        bool anvil_counted;
        unsigned anvil_gen;
        char *limit_reply;
};

static void pump(struct session *s);
static void finish(struct session *s);
static int start_fact_lookup(struct session *s, const struct strv *keys, bool greeting);
static void client_lookup_done(void *userdata);
static void sasl_event(struct session *s, const struct sasl_event *ev);
static void start_data(struct session *s);
/* smtpd_proxy_filter: the transaction's steps go to the filter instead of cleanup. */
static void proxy_mail(struct session *s);
static void proxy_rcpt(struct session *s, struct smtp_cmd *c);
static void proxy_data(struct session *s);
static void proxy_finish(struct session *s);

static const char *client_name(const struct session *s)
{
        return s->dns_done ? s->dns.name : "unknown";
}

/* RFC 3848's names, as Postfix writes them: "A" once the client authenticated. */
static const char *proto_name(const struct session *s)
{
        bool a = s->sasl_username != NULL;
        if (s->mail_params.smtputf8)
                return s->tls_active ? (a ? "UTF8SMTPSA" : "UTF8SMTPS") : (a ? "UTF8SMTPA" : "UTF8SMTP");
        if (!s->esmtp)
                return "SMTP";
        return s->tls_active ? (a ? "ESMTPSA" : "ESMTPS") : (a ? "ESMTPA" : "ESMTP");
}

/* ---- output ---- */

/* Append one reply; line is "NNN text" (text may hold "\n" for a multi-line reply). */
static void reply(struct session *s, const char *line)
{
        bool valid = line[0] >= '2' && line[0] <= '5' && line[1] >= '0' && line[1] <= '9' &&
                     line[2] >= '0' && line[2] <= '9' && (line[3] == ' ' || line[3] == '\0');
        if (!valid) {
                /* Only a misconfigured reply code (reject_code = 5) gets here. */
                msg_warn("invalid SMTP reply \"%s\": replying 451 instead", line);
                line = "451 4.3.5 Server configuration error";
        }
        int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        const char *text = line[3] ? line + 4 : "";
        smtp_reply_format(&s->out, code, NULL, text);
        s->last_code = code;
        if (s->cur_cnt >= 0) {
                if (code < 400)
                        s->cnt_ok[s->cur_cnt]++;
                s->cur_cnt = -1;
        }
        if (code >= 400)
                s->errors++;
}

static void replyf(struct session *s, const char *fmt, ...) _printf_(2, 3);
static void replyf(struct session *s, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        struct buf b = BUF_INIT;
        buf_vprintf(&b, fmt, ap);
        va_end(ap);
        reply(s, buf_str(&b));
        buf_done(&b);
}

/* End the session once the output is written. */
static void close_after_reply(struct session *s)
{
        s->closing = true;
}

/* End the session now (the top-level caller frees it). */
static void kill_session(struct session *s)
{
        s->dead = true;
}

/* ---- the mail transaction ---- */

static void rcpts_done(struct session *s)
{
        for (size_t i = 0; i < s->n_rcpts; i++) {
                free(s->rcpts[i].addr);
                free(s->rcpts[i].orcpt);
        }
        free(s->rcpts);
        s->rcpts = NULL;
        s->n_rcpts = 0;
}

static void params_done(struct smtp_cmd_params *p)
{
        free(p->envid);
        free(p->orcpt_type);
        free(p->orcpt);
        free(p->auth);
        *p = (struct smtp_cmd_params){0};
}

/* Forget the transaction; an open cleanup connection is dropped, so cleanup removes its file. */
static void early_drop(struct session *s)
{
        cleanup_submit_free(s->early_sub);
        s->early_sub = NULL;
        free(s->early_queue_id);
        s->early_queue_id = NULL;
        s->early = EARLY_NONE;
}

static void reset_transaction(struct session *s)
{
        cleanup_submit_free(s->sub);
        s->sub = NULL;
        early_drop(s);
        proxy_close(s->proxy);
        s->proxy = NULL;
        proxy_replay_free(s->replay);
        s->replay = NULL;
        s->proxy_busy = false;
        free(s->queue_id);
        s->queue_id = NULL;
        free(s->sender);
        s->sender = NULL;
        params_done(&s->mail_params);
        rcpts_done(s);
        s->rcpt_attempts = 0;
        smtp_cmd_done(&s->pending_rcpt);
        s->in_mail = s->opening = s->ending = false;
        if (s->in_data)
                smtp_data_done(&s->data);
        s->in_data = s->data_failed = false;
        if (s->wait_timer)
                event_source_set_enabled(s->wait_timer, EVENT_OFF);
}

/* Postfix's "QID: reject: STAGE from CLIENT: REPLY; from=<> to=<> proto= helo=<>" and its kin. */
static void log_whatsup(struct session *s, const char *whatsup, const char *stage, const char *reply_text,
                        const char *sender, const char *rcpt)
{
        struct buf b = BUF_INIT;
        buf_printf(&b, "%s: %s: %s from %s: %s;", s->queue_id ? s->queue_id : "NOQUEUE", whatsup, stage,
                   s->client, reply_text);
        if (sender)
                buf_printf(&b, " from=<%s>", sender);
        if (rcpt)
                buf_printf(&b, " to=<%s>", rcpt);
        buf_printf(&b, " proto=%s", proto_name(s));
        if (s->helo)
                buf_printf(&b, " helo=<%s>", s->helo);
        msg_fields(LOG_LEVEL_INFO, &(struct log_fields){.queue_id = s->queue_id}, "%s", buf_str(&b));
        buf_done(&b);
}

static void log_reject(struct session *s, const char *stage, const char *reply_text, const char *sender,
                       const char *rcpt)
{
        metrics_count(METRIC_SMTPD_REJECTS);
        log_whatsup(s, "reject", stage, reply_text, sender, rcpt);
}

static void add_rcpt(struct session *s, struct smtp_cmd *c)
{
        s->rcpts = xrealloc(s->rcpts, (s->n_rcpts + 1) * sizeof(*s->rcpts));
        struct rcpt *r = &s->rcpts[s->n_rcpts++];
        r->addr = xstrdup(c->addr.addr);
        r->orcpt = c->params.orcpt
                           ? xasprintf("%s;%s", c->params.orcpt_type ? c->params.orcpt_type : "rfc822",
                                       c->params.orcpt)
                           : NULL;
        r->notify = c->params.notify;
}

static void arm_wait_timer(struct session *s);
static void open_early(struct session *s);

static void cleanup_failed_reply(struct session *s)
{
        reply(s, "451 4.3.0 Error: queue file write error");
}

static int send_rcpt_check(struct session *s, const struct smtp_cmd *c);

/* Ask cleanup's milters about the pending recipient; the answer comes to on_rcpt_checked(). */
static void check_pending_rcpt(struct session *s)
{
        if (send_rcpt_check(s, &s->pending_rcpt) < 0) {
                s->opening = false;
                smtp_cmd_done(&s->pending_rcpt);
                cleanup_failed_reply(s);
                return;
        }
        s->opening = true;
        arm_wait_timer(s);
}

/*
 * cleanup refused (status 4 or 5): the reply code is a milter's own when it gave one, else code; the
 * enhanced status is cleanup's when its class matches, else X.detail (detail "7.1" or "3.0").
 */
static void refusal_reply(struct session *s, int status, const char *dsn, const char *reason, int code,
                          const char *detail)
{
        int milter_code = cleanup_submit_reply_code(s->sub, status);
        char fallback[8];
        snprintf(fallback, sizeof fallback, "%c.%s", status == 5 ? '5' : '4', detail);
        const char *enh = !isempty(dsn) && dsn[0] == fallback[0] ? dsn : fallback;
        replyf(s, "%d %s %s", milter_code ? milter_code : code, enh, reason);
}

/* cleanup answered the RCPT being held (open or milter check): go on with the session. */
static void end_wait_for_cleanup(struct session *s)
{
        smtp_cmd_done(&s->pending_rcpt);
        if (s->wait_timer)
                event_source_set_enabled(s->wait_timer, EVENT_OFF);
        pump(s);
        finish(s);
}

static void on_rcpt_checked(void *userdata, int status, const char *dsn, const char *reason)
{
        struct session *s = userdata;
        s->opening = false;
        if (status == 0) {
                add_rcpt(s, &s->pending_rcpt);
                reply(s, "250 2.1.5 Ok");
        } else
                refusal_reply(s, status, dsn, reason, status == 5 ? 550 : 451, "7.1");
        end_wait_for_cleanup(s);
}

/* The file is open under queue_id for the recipient being held (s->pending_rcpt): log the client and judge
 * that recipient. Returns true when cleanup's milters are asked (the answer comes to on_rcpt_checked). */
static bool opened_for_rcpt(struct session *s, const char *queue_id)
{
        s->queue_id = xstrdup(queue_id);
        if (s->sasl_username)
                msg_fields(LOG_LEVEL_INFO, &(struct log_fields){.queue_id = queue_id},
                           "%s: client=%s, sasl_method=%s, sasl_username=%s", queue_id, s->client,
                           s->sasl_method, s->sasl_username);
        else
                msg_fields(LOG_LEVEL_INFO, &(struct log_fields){.queue_id = queue_id}, "%s: client=%s",
                           queue_id, s->client);
        if (smtpd_milters_judge_rcpt(s->srv->config, s->srv->receive_override)) {
                check_pending_rcpt(s); /* the milters say whether this recipient is welcome */
                return true;
        }
        add_rcpt(s, &s->pending_rcpt);
        reply(s, "250 2.1.5 Ok");
        return false;
}

static void on_opened(void *userdata, int status, const char *queue_id, const char *reason)
{
        struct session *s = userdata;
        if (s->early == EARLY_OPENING) {
                /* The open made at MAIL, no recipient claimed it yet: keep the answer for the first one. */
                if (status == 0) {
                        s->early = EARLY_OPEN;
                        s->early_queue_id = xstrdup(queue_id);
                } else {
                        /* The first recipient asks again and gets today's answer if cleanup still refuses. */
                        cleanup_submit_free(s->early_sub);
                        s->early_sub = NULL;
                        s->early = EARLY_FAILED;
                }
                return;
        }
        s->opening = false;
        if (status == 0) {
                if (!opened_for_rcpt(s, queue_id))
                        end_wait_for_cleanup(s);
                return;
        }
        msg_warn("cleanup refused a new message from %s: %s", s->client, reason);
        cleanup_submit_free(s->sub);
        s->sub = NULL;
        cleanup_failed_reply(s);
        end_wait_for_cleanup(s);
}

static void on_finished(void *userdata, int status, const char *dsn, const char *reason)
{
        struct session *s = userdata;
        s->ending = false;
        s->last_cmd = "END-OF-MESSAGE";
        if (status == 0) {
                replyf(s, "250 2.0.0 Ok: queued as %s", s->queue_id);
                /* Error and junk counts are "without delivering mail", as in Postfix. */
                s->errors = 0;
                s->junk_cmds = 0;
        } else {
                /* Content rejected by cleanup's header/body checks (5.7.x) is Postfix's 550; else 554. */
                bool content = status == 5 && !isempty(dsn) && strncmp(dsn, "5.7.", 4) == 0;
                refusal_reply(s, status, dsn, reason, status == 5 ? (content ? 550 : 554) : 451, "3.0");
        }
        reset_transaction(s);
        pump(s);
        finish(s);
}

static void on_drained(void *userdata)
{
        struct session *s = userdata;
        pump(s);
        finish(s);
}

static const struct cleanup_submit_ops submit_ops = {
        .opened = on_opened,
        .finished = on_finished,
        .drained = on_drained,
        .rcpt_checked = on_rcpt_checked,
};

static int on_wait_timeout(struct event_source *src, uint64_t usec, void *userdata)
{
        struct session *s = userdata;
        msg_warn("timeout waiting for cleanup (%s) for %s", s->srv->cleanup_path, s->client);
        if (s->opening) {
                s->opening = false;
                cleanup_submit_free(s->sub);
                s->sub = NULL;
                smtp_cmd_done(&s->pending_rcpt);
                cleanup_failed_reply(s);
        } else if (s->ending && cleanup_submit_abort(s->sub) == 0) {
                /* No 451 yet: the commit may still succeed, and a 451 then makes the client send it again.
                 * cleanup's answer to the abort says for sure whether it is queued. */
                msg_warn("%s: no answer from cleanup in %d s after the end of the message; "
                         "asked it to cancel, waiting for the outcome",
                         s->queue_id, s->srv->cleanup_timeout_ms / 1000);
                arm_wait_timer(s);
                return 0;
        } else if (s->ending) {
                msg_warn("%s: no answer from cleanup to the cancel either: outcome unknown; "
                         "the client is told 451 and may send the message again",
                         s->queue_id);
                cleanup_failed_reply(s);
                reset_transaction(s);
        }
        pump(s);
        finish(s);
        return 0;
}

static void arm_wait_timer(struct session *s)
{
        uint64_t now = event_loop_now(service_event(s->srv->service));
        uint64_t when = now + (uint64_t)s->srv->cleanup_timeout_ms * 1000ULL;
        if (!s->wait_timer)
                event_add_time(service_event(s->srv->service), &s->wait_timer, when, on_wait_timeout, s);
        else {
                event_source_set_time(s->wait_timer, when);
                event_source_set_enabled(s->wait_timer, EVENT_ONESHOT);
        }
}

/* ---- commands ---- */

/* Run a stage's restriction lists; on rejection reply and log it, and return true. */
static bool access_rejects(struct session *s, enum access_stage stage, const char *helo, const char *rcpt,
                           const char *log_stage)
{
        struct access_client cl = {client_name(s), s->addr, s->sasl_username != NULL,
                                   s->dns_done ? &s->dns : NULL, s->sasl_username};
        struct access_request rq = {&cl, helo, s->in_mail ? s->sender : NULL, rcpt, &s->facts};
        struct access_decision d;
        smtpd_access_check(s->srv->access, stage, &rq, &d);
        if (d.result == ACCESS_LOOKUP) {
                bool started = s->dns_rounds++ < SESSION_DNS_ROUNDS_MAX &&
                               start_fact_lookup(s, &d.lookups, stage == ACCESS_STAGE_CONNECT) == 0;
                access_decision_done(&d);
                if (started)
                        return true; /* the caller stops; the command runs again with the answers */
                d = (struct access_decision){.result = ACCESS_REJECT};
                d.reply = xasprintf("451 4.3.0 <%s>: Temporary lookup failure", s->client);
        }
        bool rejected = d.result == ACCESS_REJECT;
        if (rejected) {
                reply(s, d.reply);
                log_reject(s, log_stage, d.reply, rq.sender, rcpt);
        }
        access_decision_done(&d);
        return rejected;
}

static bool tls_required(struct session *s)
{
        if (s->srv->tls_level == SMTPD_TLS_ENCRYPT && !s->tls_active) {
                reply(s, "530 5.7.0 Must issue a STARTTLS command first");
                return true;
        }
        return false;
}

/* ---- per-client limits (anvil) ---- */

/* Count one event of this client; its rate, or -1 when it is exempt or anvil did not count it. */
static long long anvil_rate(struct session *s, enum smtpd_anvil_event e, long long limit)
{
        struct smtpd_anvil_answer ans;
        if (limit <= 0 || smtpd_anvil_exempt(s->srv->anvil, s->addr))
                return -1;
        return smtpd_anvil_event(s->srv->anvil, e, s->addr, NULL, &ans) < 0 ? -1 : ans.rate;
}

/*
 * At connect, as Postfix: the connection is counted over every smtpd process of the instance; beyond
 * smtpd_client_connection_count_limit or _rate_limit the greeting becomes 421 and the session ends.
 */
static void anvil_connect(struct session *s)
{
        const struct smtpd_anvil_limits *l = smtpd_anvil_limits(s->srv->anvil);
        struct smtpd_anvil_answer ans;
        if ((l->count <= 0 && l->conn_rate <= 0) || smtpd_anvil_exempt(s->srv->anvil, s->addr))
                return;
        if (smtpd_anvil_event(s->srv->anvil, SMTPD_ANVIL_CONNECT, s->addr, &s->anvil_gen, &ans) < 0)
                return;
        s->anvil_counted = true;
        const char *what = NULL;
        long long value = 0;
        if (l->count > 0 && ans.count > l->count) {
                what = "Connection concurrency limit exceeded";
                value = ans.count;
        } else if (l->conn_rate > 0 && ans.rate > l->conn_rate) {
                what = "Connection rate limit exceeded";
                value = ans.rate;
        }
        if (!what)
                return;
        msg_warn("%s: %lld from %s for service %s", what, value, s->client, service_name(s->srv->service));
        s->limit_reply =
                xasprintf("421 4.7.0 %s Error: too many connections from %s", s->srv->myhostname, s->addr);
}

static void anvil_disconnect(struct session *s)
{
        struct smtpd_anvil_answer ans;
        if (s->anvil_counted)
                (void)smtpd_anvil_event(s->srv->anvil, SMTPD_ANVIL_DISCONNECT, s->addr, &s->anvil_gen, &ans);
        s->anvil_counted = false;
}

/* MAIL, RCPT, AUTH over their rate limit: warn as Postfix does and answer 450 4.7.1. true: refused. */
static bool anvil_refuses(struct session *s, enum smtpd_anvil_event e, long long limit, const char *warning,
                          const char *what)
{
        long long rate = anvil_rate(s, e, limit);
        if (rate < 0 || rate <= limit)
                return false;
        msg_warn("%s rate limit exceeded: %lld from %s for service %s", warning, rate, s->client,
                 service_name(s->srv->service));
        replyf(s, "450 4.7.1 Error: too %s from %s", what, s->addr);
        return true;
}

/*
 * The greeting, or (smtpd_delay_reject = no) the client restrictions' rejection in its place; the
 * session then stays open to say 503 to everything but QUIT, as Postfix does.
 */
static void greet(struct session *s)
{
        if (s->limit_reply) {
                reply(s, s->limit_reply);
                close_after_reply(s);
                return;
        }
        if (access_rejects(s, ACCESS_STAGE_CONNECT, NULL, NULL, "CONNECT")) {
                if (!s->lookup)
                        s->access_denied = true;
        } else
                replyf(s, "220 %s", s->srv->banner);
}

/*
 * AUTH may be offered: enabled, and inside TLS when smtpd_tls_auth_only or a mandatory TLS level
 * (encrypt) asks for it, as Postfix does.
 */
static bool auth_allowed(const struct session *s)
{
        if (!s->srv->sasl || !s->sasl)
                return false;
        bool tls_only = smtpd_sasl_tls_auth_only(s->srv->sasl) || s->srv->tls_level == SMTPD_TLS_ENCRYPT;
        return s->tls_active || !tls_only;
}

static void ehlo_reply(struct session *s);

static void do_ehlo(struct session *s, struct smtp_cmd *c, bool esmtp)
{
        reset_transaction(s);
        if (access_rejects(s, ACCESS_STAGE_HELO, c->arg, NULL, esmtp ? "EHLO" : "HELO"))
                return;
        free(s->helo);
        s->helo = xstrndup(c->arg, SMTPD_HELO_MAX);
        s->esmtp = esmtp;
        if (!esmtp) {
                replyf(s, "250 %s", s->srv->myhostname);
                return;
        }
        if (auth_allowed(s) && !sasl_conv_have_mechs(s->sasl)) {
                /* The AUTH keyword lists Dovecot's mechanisms: ask it first (the reply follows). */
                if (sasl_conv_fetch_mechs(s->sasl, service_event(s->srv->service)) == 0) {
                        s->sasl_busy = s->ehlo_pending = true;
                        return;
                }
        }
        ehlo_reply(s);
}

static void ehlo_reply(struct session *s)
{
        struct buf b = BUF_INIT;
        buf_printf(&b, "250 %s\nPIPELINING\n", s->srv->myhostname);
        if (s->srv->message_size_limit)
                buf_printf(&b, "SIZE %llu\n", (unsigned long long)s->srv->message_size_limit);
        else
                buf_puts(&b, "SIZE\n");
        if (!s->srv->disable_vrfy)
                buf_puts(&b, "VRFY\n");
        if (s->srv->tls && !s->tls_active)
                buf_puts(&b, "STARTTLS\n");
        _cleanup_free_ char *mechs = auth_allowed(s) ? sasl_conv_mech_list(s->sasl, s->tls_active) : NULL;
        if (mechs)
                buf_printf(&b, "AUTH %s\n", mechs);
        /* The pre-RFC 2554 form old clients look for, as well. */
        if (mechs && s->srv->broken_sasl_clients)
                buf_printf(&b, "AUTH=%s\n", mechs);
        buf_puts(&b, "ENHANCEDSTATUSCODES\n8BITMIME\nDSN");
        if (s->srv->smtputf8_enable)
                buf_puts(&b, "\nSMTPUTF8");
        reply(s, buf_str(&b));
        buf_done(&b);
}

/* MAIL FROM:<user> becomes user@$myorigin here, so restrictions, logs and cleanup see one address. */
static char *qualified_sender(const struct smtpd *srv, const struct smtp_addr *a)
{
        if (a->null_path || a->domain || !srv->append_at_myorigin || isempty(srv->myorigin))
                return xstrdup(a->addr);
        return xasprintf("%s@%s", a->addr, srv->myorigin);
}

/*
 * queue_minfree, as Postfix: no new transaction while the queue file system has less free space than
 * queue_minfree (at least 1.5 x message_size_limit), or too little above it for 1.5 x the SIZE announced.
 * Checked at every MAIL FROM, so the service comes back by itself as soon as space returns.
 */
static bool storage_rejects(struct session *s, const struct smtp_cmd *c)
{
        static const char text[] = "452 4.3.1 Insufficient system storage";
        uint64_t avail = 0, size = c->params.size_given ? c->params.size : 0;
        int r = queue_space_avail(s->srv->queue_dir, &avail);
        if (r < 0) {
                /* Unknown is not full: cleanup's own write errors still protect the transaction. */
                msg_warn("free space of %s: %s", s->srv->queue_dir, strerror(-r));
                return false;
        }
        if (queue_space_enough(avail, s->srv->queue_minfree, size))
                return false;
        msg_warn(
                "not enough free space in the mail queue %s: %llu bytes free, %llu required (queue_minfree, "
                "at least 1.5 x message_size_limit)%s",
                s->srv->queue_dir, (unsigned long long)avail, (unsigned long long)s->srv->queue_minfree,
                size ? " plus 1.5 x the announced SIZE" : "");
        reply(s, text);
        log_reject(s, "MAIL", text, c->addr.addr, NULL);
        return true;
}

static void do_mail(struct session *s, struct smtp_cmd *c)
{
        if (tls_required(s))
                return;
        if (s->srv->helo_required && !s->helo) {
                reply(s, "503 5.5.1 Error: send HELO/EHLO first");
                return;
        }
        if (s->in_mail) {
                reply(s, "503 5.5.1 Error: nested MAIL command");
                return;
        }
        if (c->params.size_given && s->srv->message_size_limit &&
            c->params.size > s->srv->message_size_limit) {
                reply(s, "552 5.3.4 Message size exceeds fixed limit");
                log_reject(s, "MAIL", "552 5.3.4 Message size exceeds fixed limit", c->addr.addr, NULL);
                return;
        }
        if (!s->retrying && anvil_refuses(s, SMTPD_ANVIL_MESSAGE, smtpd_anvil_limits(s->srv->anvil)->message,
                                          "Message delivery request", "much mail"))
                return;
        if (storage_rejects(s, c))
                return;
        s->in_mail = true;
        s->sender = qualified_sender(s->srv, &c->addr);
        if (access_rejects(s, ACCESS_STAGE_MAIL, s->helo, NULL, "MAIL")) {
                reset_transaction(s);
                return;
        }
        s->mail_params = c->params;
        c->params = (struct smtp_cmd_params){0};
        if (s->srv->proxy) {
                proxy_mail(s);
                return;
        }
        reply(s, "250 2.1.0 Ok");
        if (!s->sub && s->early == EARLY_NONE)
                s->early = EARLY_WANTED; /* once that reply is sent: see pump() */
}

static void do_rcpt(struct session *s, struct smtp_cmd *c)
{
        if (tls_required(s))
                return;
        if (!s->in_mail) {
                reply(s, "503 5.5.1 Error: need MAIL command");
                return;
        }
        s->rcpt_attempts++;
        if ((long long)s->n_rcpts >= s->srv->recipient_limit) {
                reply(s, "452 4.5.3 Error: too many recipients");
                return;
        }
        if (!s->retrying && anvil_refuses(s, SMTPD_ANVIL_RCPT, smtpd_anvil_limits(s->srv->anvil)->rcpt,
                                          "Recipient address", "many recipients"))
                return;
        if (access_rejects(s, ACCESS_STAGE_RCPT, s->helo, c->addr.addr, "RCPT")) {
                if (s->lookup)
                        s->rcpt_attempts--; /* counted when it runs again */
                return;
        }
        if (s->proxy || s->replay) {
                proxy_rcpt(s, c);
                return;
        }
        if (s->sub && smtpd_milters_judge_rcpt(s->srv->config, s->srv->receive_override)) {
                s->pending_rcpt = *c;
                *c = (struct smtp_cmd){0};
                check_pending_rcpt(s);
                return;
        }
        if (s->sub) {
                add_rcpt(s, c);
                reply(s, "250 2.1.5 Ok");
                return;
        }
        /* The first accepted recipient claims the queue file opened at MAIL, or opens one now. */
        s->pending_rcpt = *c;
        *c = (struct smtp_cmd){0};
        if (s->early == EARLY_OPEN && cleanup_submit_failed(s->early_sub))
                early_drop(s); /* cleanup went away since: open afresh below */
        if (s->early == EARLY_OPEN) {
                s->sub = s->early_sub;
                s->early_sub = NULL;
                _cleanup_free_ char *id = s->early_queue_id;
                s->early_queue_id = NULL;
                s->early = EARLY_NONE;
                if (!opened_for_rcpt(s, id))
                        smtp_cmd_done(&s->pending_rcpt);
                return;
        }
        if (s->early == EARLY_OPENING) {
                s->sub = s->early_sub; /* its answer comes to on_opened() as for an open made now */
                s->early_sub = NULL;
        } else if (cleanup_submit_open(service_event(s->srv->service), s->srv->cleanup_path,
                                       s->srv->cleanup_private_path, "smtpd", &submit_ops, s, &s->sub) < 0) {
                s->sub = NULL;
                s->early = EARLY_NONE;
                smtp_cmd_done(&s->pending_rcpt);
                cleanup_failed_reply(s);
                return;
        }
        s->early = EARLY_NONE;
        s->opening = true;
        arm_wait_timer(s);
}

/* After MAIL: ask cleanup for the queue file now, so that it is ready when the first recipient is accepted
 * (one round trip to cleanup less before that RCPT's answer). A failure here changes nothing: the first
 * recipient then opens the file itself, as without this. */
static void open_early(struct session *s)
{
        if (s->sub || s->early != EARLY_WANTED)
                return;
        if (cleanup_submit_open(service_event(s->srv->service), s->srv->cleanup_path,
                                s->srv->cleanup_private_path, "smtpd", &submit_ops, s, &s->early_sub) < 0) {
                s->early_sub = NULL;
                s->early = EARLY_FAILED;
                return;
        }
        s->early = EARLY_OPENING;
}

static const char *notify_text(unsigned n, char *buf, size_t size)
{
        if (n & SMTP_NOTIFY_NEVER)
                return "NEVER";
        snprintf(buf, size, "%s%s%s", n & SMTP_NOTIFY_SUCCESS ? "SUCCESS," : "",
                 n & SMTP_NOTIFY_FAILURE ? "FAILURE," : "", n & SMTP_NOTIFY_DELAY ? "DELAY," : "");
        size_t len = strlen(buf);
        if (len > 0)
                buf[len - 1] = '\0';
        return buf;
}

static int send_to_cleanup(const struct ipc_msg *m, void *userdata)
{
        return cleanup_submit_send(userdata, m);
}

/* The recipients ahead of the envelope, in as many {req=rcpt} messages as they take: no count limit. */
static int send_rcpts(struct session *s)
{
        static const struct ipc_kv head[] = {{"req", "rcpt", 4}};
        struct ipc_batch b;
        int r = ipc_batch_init(&b, head, ELEMENTSOF(head), send_to_cleanup, s->sub);
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->n_rcpts; i++) {
                const struct rcpt *rc = &s->rcpts[i];
                char tmp[64];
                struct ipc_kv group[3] = {{"rcpt", rc->addr, strlen(rc->addr)}};
                size_t n = 1;
                if (rc->orcpt)
                        group[n++] = (struct ipc_kv){"orcpt", rc->orcpt, strlen(rc->orcpt)};
                if (rc->notify) {
                        const char *t = notify_text(rc->notify, tmp, sizeof tmp);
                        group[n++] = (struct ipc_kv){"notify", t, strlen(t)};
                }
                r = ipc_batch_add(&b, group, n);
                if (r < 0) {
                        msg_warn("%s: recipient %zu of %zu: %s", s->queue_id, i + 1, s->n_rcpts,
                                 strerror(-r));
                        ipc_batch_done(&b);
                        return r;
                }
        }
        return ipc_batch_finish(&b);
}

#define KV_STR(name, v) ((struct ipc_kv){(name), (v), strlen(v)})

/* Every recipient and the envelope reach cleanup whole, or the transaction fails (451 at DATA). */
static int send_envelope(struct session *s)
{
        int r = send_rcpts(s);
        if (r < 0)
                return r;
        char port[24], size[24];
        snprintf(port, sizeof port, "%d", s->port);
        struct ipc_kv kv[22]; /* every attribute below at most once */
        size_t n = 0;
        kv[n++] = KV_STR("req", "envelope");
        kv[n++] = KV_STR("sender", s->sender);
        kv[n++] = KV_STR("client_name", client_name(s));
        kv[n++] = KV_STR("client_address", s->addr);
        kv[n++] = KV_STR("client_port", port);
        if (s->helo)
                kv[n++] = KV_STR("helo_name", s->helo);
        kv[n++] = KV_STR("protocol", proto_name(s));
        if (s->mail_params.envid)
                kv[n++] = KV_STR("envid", s->mail_params.envid);
        if (s->mail_params.size_given) {
                snprintf(size, sizeof size, "%llu", (unsigned long long)s->mail_params.size);
                kv[n++] = KV_STR("size", size);
        }
        if (s->mail_params.ret != SMTP_RET_NONE)
                kv[n++] = KV_STR("ret", s->mail_params.ret == SMTP_RET_FULL ? "FULL" : "HDRS");
        if (s->mail_params.body == SMTP_BODY_8BITMIME)
                kv[n++] = KV_STR("body", "8BITMIME");
        if (s->mail_params.smtputf8)
                kv[n++] = KV_STR("smtputf8", "1");
        if (s->tls_info)
                kv[n++] = KV_STR("tls", s->tls_info);
        char server[INET6_ADDRSTRLEN];
        if (smtpd_server_address(s->fd, server, sizeof server) == 0)
                kv[n++] = KV_STR("server_address", server);               /* the milters' {daemon_addr} */
        kv[n++] = KV_STR("milters", smtpd_milters_value(s->srv->config)); /* cleanup runs them */
        if (!isempty(s->srv->content_filter))
                kv[n++] = KV_STR("filter", s->srv->content_filter);
        if (!isempty(s->srv->receive_override))
                kv[n++] = KV_STR("receive_override", s->srv->receive_override);
        if (s->sasl_username) {
                kv[n++] = KV_STR("sasl_method", s->sasl_method);
                kv[n++] = KV_STR("sasl_username", s->sasl_username);
                if (s->srv->sasl_auth_header)
                        kv[n++] = KV_STR("sasl_header", "1");
        }
        struct ipc_msg m = IPC_MSG_INIT;
        r = ipc_msg_add_group(&m, kv, n);
        if (r >= 0)
                r = cleanup_submit_send(s->sub, &m);
        ipc_msg_done(&m);
        return r;
}

/* {req=rcpt_check}: the recipient and what cleanup's milters see of the session (milter_hooks.c). */
static int send_rcpt_check(struct session *s, const struct smtp_cmd *c)
{
        char port[24], server[INET6_ADDRSTRLEN];
        snprintf(port, sizeof port, "%d", s->port);
        struct ipc_kv kv[16];
        size_t n = 0;
        kv[n++] = KV_STR("req", "rcpt_check");
        kv[n++] = KV_STR("rcpt", c->addr.addr);
        kv[n++] = KV_STR("sender", s->sender);
        kv[n++] = KV_STR("client_name", client_name(s));
        kv[n++] = KV_STR("client_address", s->addr);
        kv[n++] = KV_STR("client_port", port);
        if (s->helo)
                kv[n++] = KV_STR("helo_name", s->helo);
        kv[n++] = KV_STR("protocol", proto_name(s));
        if (s->tls_info)
                kv[n++] = KV_STR("tls", s->tls_info);
        if (smtpd_server_address(s->fd, server, sizeof server) == 0)
                kv[n++] = KV_STR("server_address", server);
        kv[n++] = KV_STR("milters", smtpd_milters_value(s->srv->config));
        if (!isempty(s->srv->receive_override))
                kv[n++] = KV_STR("receive_override", s->srv->receive_override);
        if (s->sasl_username) {
                kv[n++] = KV_STR("sasl_method", s->sasl_method);
                kv[n++] = KV_STR("sasl_username", s->sasl_username);
        }
        struct ipc_msg m = IPC_MSG_INIT;
        int r = ipc_msg_add_group(&m, kv, n);
        if (r >= 0)
                r = cleanup_submit_rcpt_check(s->sub, &m);
        ipc_msg_done(&m);
        return r;
}

static int data_line(const char *p, size_t len, unsigned flags, void *userdata)
{
        struct session *s = userdata;
        if (s->proxy) {
                proxy_content(s->proxy, p, len, flags & SMTP_DATA_LINE_PARTIAL);
                return 0;
        }
        if (s->replay) {
                proxy_replay_content(s->replay, p, len, flags & SMTP_DATA_LINE_PARTIAL);
                return 0;
        }
        if (s->data_failed || !s->sub)
                return 0;
        if (cleanup_submit_content(s->sub, p, len) < 0 ||
            (!(flags & SMTP_DATA_LINE_PARTIAL) && cleanup_submit_content(s->sub, "\n", 1) < 0))
                s->data_failed = true;
        return 0;
}

static void do_data(struct session *s)
{
        if (tls_required(s))
                return;
        if (!s->in_mail) {
                reply(s, "503 5.5.1 Error: need MAIL command");
                return;
        }
        if (s->n_rcpts == 0) {
                reply(s, s->rcpt_attempts ? "554 5.5.1 Error: no valid recipients"
                                          : "503 5.5.1 Error: need RCPT command");
                return;
        }
        if (access_rejects(s, ACCESS_STAGE_DATA, s->helo, NULL, "DATA"))
                return;
        if (s->proxy || s->replay) {
                proxy_data(s);
                return;
        }
        if (send_envelope(s) < 0) {
                msg_warn("%s: cannot send the envelope to %s", s->queue_id, s->srv->cleanup_path);
                cleanup_failed_reply(s);
                reset_transaction(s);
                return;
        }
        start_data(s);
        reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* The client's content goes to data_line from now on. */
static void start_data(struct session *s)
{
        struct smtp_data_options o = {
                .max_size = s->srv->message_size_limit,
                .bare_newline = s->bare_newline == SMTPD_BARE_NEWLINE_REJECT ? SMTP_BARE_NEWLINE_REJECT
                                                                             : SMTP_BARE_NEWLINE_NORMALIZE,
                .allow_bare_cr = true,
        };
        smtp_data_init(&s->data, &o, data_line, s);
        s->in_data = true;
        s->data_failed = false;
}

/* The client sent the final dot. */
static void data_end(struct session *s)
{
        enum smtp_data_error e = s->data.error;
        s->last_cmd = "END-OF-MESSAGE";
        if (e == SMTP_DATA_ERR_TOO_BIG) {
                reply(s, "552 5.3.4 Message size exceeds fixed limit");
                log_reject(s, "END-OF-MESSAGE", "552 5.3.4 Message size exceeds fixed limit", s->sender,
                           NULL);
                reset_transaction(s);
                return;
        }
        if (e != SMTP_DATA_OK) {
                reply(s, smtp_data_error_reply(e));
                reset_transaction(s);
                return;
        }
        smtp_data_done(&s->data);
        s->in_data = false;
        if (s->proxy || s->replay) {
                proxy_finish(s);
                return;
        }
        if (s->data_failed || cleanup_submit_end(s->sub) < 0) {
                msg_warn("%s: cannot send the message to %s", s->queue_id, s->srv->cleanup_path);
                cleanup_failed_reply(s);
                reset_transaction(s);
                return;
        }
        s->ending = true;
        arm_wait_timer(s);
}

/* ---- smtpd_proxy_filter: the filter answers MAIL, RCPT, DATA and the end of the message ---- */

static struct proxy_client proxy_client_of(struct session *s)
{
        return (struct proxy_client){
                .name = client_name(s),
                .addr = s->addr,
                .port = s->port,
                .helo = s->helo,
                .proto = proto_name(s),
                .tls = s->tls_info,
                .auth_sender = s->srv->sasl_auth_header ? s->sasl_username : NULL,
                .myhostname = s->srv->myhostname,
        };
}

static void proxy_replied(struct session *s, const char *text);

static void proxy_drained(struct session *s)
{
        pump(s);
        finish(s);
}

static const struct proxy_ops proxy_ops = {
        .replied = proxy_replied,
        .drained = proxy_drained,
};

/* The filter could not take the step: the client gets the generic 451, the transaction ends. */
static void proxy_failed(struct session *s)
{
        reply(s, PROXY_FAILED_REPLY);
        reset_transaction(s);
}

/* MAIL FROM passed smtpd's own checks: connect to the filter, which answers it. */
static void proxy_mail(struct session *s)
{
        const struct smtp_cmd_params *mp = &s->mail_params;
        struct buf cmd = BUF_INIT, dsn = BUF_INIT;
        buf_printf(&cmd, "MAIL FROM:<%s>", s->sender);
        if (mp->size_given)
                buf_printf(&cmd, " SIZE=%llu", (unsigned long long)mp->size);
        if (mp->body != SMTP_BODY_NONE)
                buf_puts(&cmd, mp->body == SMTP_BODY_8BITMIME ? " BODY=8BITMIME" : " BODY=7BIT");
        if (mp->smtputf8)
                buf_puts(&cmd, " SMTPUTF8");
        if (mp->ret != SMTP_RET_NONE)
                buf_puts(&dsn, mp->ret == SMTP_RET_FULL ? " RET=FULL" : " RET=HDRS");
        if (mp->envid) {
                _cleanup_free_ char *x = smtp_xtext_encode(mp->envid, strlen(mp->envid));
                buf_printf(&dsn, " ENVID=%s", x);
        }
        struct proxy_client cl = proxy_client_of(s);
        int r;
        if (s->srv->proxy->speed_adjust)
                r = proxy_replay_new(buf_str(&cmd), buf_str(&dsn), &s->replay);
        else
                r = proxy_open(service_event(s->srv->service), s->srv->proxy, &cl, buf_str(&cmd),
                               buf_str(&dsn), &proxy_ops, s, &s->proxy);
        buf_done(&cmd);
        buf_done(&dsn);
        if (r < 0) {
                s->proxy = NULL;
                s->replay = NULL;
                proxy_failed(s);
        } else if (s->replay)
                reply(s, "250 2.1.0 Ok"); /* speed_adjust: the filter hears of it at the final dot */
        else {
                s->proxy_busy = true;
                s->proxy_step = PROXY_STEP_MAIL;
        }
}

/* A recipient smtpd's restrictions accepted: the filter has the last word on it. */
static void proxy_rcpt(struct session *s, struct smtp_cmd *c)
{
        struct buf cmd = BUF_INIT, dsn = BUF_INIT;
        buf_printf(&cmd, "RCPT TO:<%s>", c->addr.addr);
        char tmp[64];
        if (c->params.notify)
                buf_printf(&dsn, " NOTIFY=%s", notify_text(c->params.notify, tmp, sizeof tmp));
        if (c->params.orcpt) {
                _cleanup_free_ char *x = smtp_xtext_encode(c->params.orcpt, strlen(c->params.orcpt));
                buf_printf(&dsn, " ORCPT=%s;%s", c->params.orcpt_type ? c->params.orcpt_type : "rfc822", x);
        }
        if (s->replay) {
                /* speed_adjust: smtpd's own checks decide now, the filter at the final dot. */
                proxy_replay_rcpt(s->replay, buf_str(&cmd), buf_str(&dsn));
                buf_done(&cmd);
                buf_done(&dsn);
                add_rcpt(s, c);
                reply(s, "250 2.1.5 Ok");
                return;
        }
        if (proxy_has_ext(s->proxy, "DSN"))
                buf_puts(&cmd, buf_str(&dsn));
        int r = proxy_command(s->proxy, buf_str(&cmd));
        buf_done(&cmd);
        buf_done(&dsn);
        if (r < 0) {
                proxy_failed(s);
                return;
        }
        s->proxy_busy = true;
        s->proxy_step = PROXY_STEP_RCPT;
        s->pending_rcpt = *c;
        *c = (struct smtp_cmd){0};
}

static void proxy_data(struct session *s)
{
        if (s->replay) {
                struct proxy_client cl = proxy_client_of(s);
                proxy_replay_received_header(s->replay, &cl, s->n_rcpts == 1 ? s->rcpts[0].addr : NULL);
                start_data(s);
                reply(s, "354 End data with <CR><LF>.<CR><LF>");
                return;
        }
        if (proxy_command(s->proxy, "DATA") < 0) {
                proxy_failed(s);
                return;
        }
        s->proxy_busy = true;
        s->proxy_step = PROXY_STEP_DATA;
}

/* The final dot: the filter's reply (its downstream's verdict) becomes the client's. */
static void proxy_finish(struct session *s)
{
        if (s->replay) {
                /* speed_adjust: now connect and replay; the replay is the proxy's from here. */
                struct proxy_client cl = proxy_client_of(s);
                struct proxy_replay *r = s->replay;
                s->replay = NULL;
                if (proxy_open_replay(service_event(s->srv->service), s->srv->proxy, &cl, r, &proxy_ops, s,
                                      &s->proxy) < 0) {
                        s->proxy = NULL;
                        log_whatsup(s, "proxy-reject", "END-OF-MESSAGE", PROXY_FAILED_REPLY, s->sender,
                                    s->n_rcpts ? s->rcpts[0].addr : NULL);
                        proxy_failed(s);
                        return;
                }
                s->proxy_busy = true;
                s->proxy_step = PROXY_STEP_END;
                return;
        }
        if (proxy_end(s->proxy) < 0) {
                log_whatsup(s, "proxy-reject", "END-OF-MESSAGE", PROXY_FAILED_REPLY, s->sender,
                            s->n_rcpts ? s->rcpts[0].addr : NULL);
                proxy_failed(s);
                return;
        }
        s->proxy_busy = true;
        s->proxy_step = PROXY_STEP_END;
}

static void proxy_end_replied(struct session *s, const char *text, bool ok)
{
        _cleanup_free_ char *flat = xstrdup(text);
        for (char *q = flat; *q; q++)
                if (*q == '\n')
                        *q = ' ';
        s->last_cmd = "END-OF-MESSAGE";
        log_whatsup(s, ok ? "proxy-accept" : "proxy-reject", "END-OF-MESSAGE", flat, s->sender,
                    s->n_rcpts ? s->rcpts[0].addr : NULL);
        reply(s, text);
        if (ok) {
                /* Delivered, as far as this client is concerned: as after a queued message. */
                s->errors = 0;
                s->junk_cmds = 0;
        }
        reset_transaction(s);
}

static void proxy_replied(struct session *s, const char *text)
{
        bool ok = text[0] == '2', failed = strcmp(text, PROXY_FAILED_REPLY) == 0;
        s->proxy_busy = false;
        switch (s->proxy_step) {
        case PROXY_STEP_MAIL:
                reply(s, text);
                if (!ok)
                        reset_transaction(s);
                break;
        case PROXY_STEP_RCPT:
                if (ok)
                        add_rcpt(s, &s->pending_rcpt);
                smtp_cmd_done(&s->pending_rcpt);
                reply(s, text);
                if (failed)
                        reset_transaction(s);
                break;
        case PROXY_STEP_DATA:
                if (strncmp(text, "354", 3) == 0) {
                        struct proxy_client cl = proxy_client_of(s);
                        proxy_received_header(s->proxy, &cl, s->n_rcpts == 1 ? s->rcpts[0].addr : NULL);
                        start_data(s);
                }
                reply(s, text);
                if (failed)
                        reset_transaction(s);
                break;
        case PROXY_STEP_END: proxy_end_replied(s, text, ok); break;
        }
        pump(s);
        finish(s);
}

/* Smuggling defence (smtpd_forbid_bare_newline = reject): nothing of this session goes further. */
static void bare_newline_reject(struct session *s)
{
        msg_info("disconnect: bare <LF> received after %s from %s", s->last_cmd, s->client);
        replyf(s, "521 5.5.2 %s Error: bare <LF> received", s->srv->myhostname);
        reset_transaction(s);
        s->in_off = s->in.len;
        close_after_reply(s);
}

static void do_vrfy(struct session *s, struct smtp_cmd *c)
{
        if (s->srv->disable_vrfy) {
                reply(s, "502 5.5.1 VRFY command is disabled");
                return;
        }
        if (tls_required(s))
                return;
        struct smtp_addr a = {0};
        size_t end = 0;
        unsigned flags = SMTP_ADDR_ALLOW_BARE | SMTP_ADDR_ALLOW_POSTMASTER;
        if (smtp_addr_parse(c->arg, strlen(c->arg), flags, &a, &end) < 0) {
                reply(s, "501 5.1.3 Bad recipient address syntax");
                return;
        }
        const char *at = strrchr(a.addr, '@');
        int local = smtpd_access_domain_is_local(s->srv->access, at ? at + 1 : NULL);
        int known = local > 0 ? smtpd_access_local_user_known(s->srv->access, a.addr) : 1;
        if (local < 0 || known < 0)
                replyf(s, "450 4.3.0 <%s>: Temporary lookup failure", a.addr);
        else if (known == 0)
                replyf(s,
                       "550 5.1.1 <%s>: Recipient address rejected: User unknown in local recipient table",
                       a.addr);
        else
                replyf(s, "252 2.0.0 %s", a.addr);
        smtp_addr_done(&a);
}

static void do_starttls(struct session *s)
{
        if (!s->srv->tls) {
                reply(s, "502 5.5.1 Error: command not implemented");
                return;
        }
        if (s->tls_active) {
                reply(s, "554 5.5.1 Error: TLS already active");
                return;
        }
        reply(s, "220 2.0.0 Ready to start TLS");
        s->tls_start_after_flush = true;
}

/* AUTH mechanism [initial-response] (RFC 4954). */
static void do_auth(struct session *s, struct smtp_cmd *c)
{
        if (!auth_allowed(s)) {
                reply(s, "503 5.5.1 Error: authentication not enabled");
                return;
        }
        if (!s->helo) {
                reply(s, "503 5.5.1 Error: send HELO/EHLO first");
                return;
        }
        if (s->sasl_username) {
                reply(s, "503 5.5.1 Error: already authenticated");
                return;
        }
        if (s->in_mail) {
                reply(s, "503 5.5.1 Error: MAIL transaction in progress");
                return;
        }
        if (anvil_refuses(s, SMTPD_ANVIL_AUTH, smtpd_anvil_limits(s->srv->anvil)->auth, "AUTH command",
                          "many AUTH commands"))
                return;
        if (!sasl_conv_have_mechs(s->sasl)) {
                /* Dovecot did not answer the EHLO's handshake: nothing can be checked or sent. */
                reply(s, "454 4.7.0 Temporary authentication failure");
                return;
        }
        const char *arg = c->arg;
        size_t mlen = strcspn(arg, " ");
        _cleanup_free_ char *mech = xstrndup(arg, mlen);
        const char *initial = arg[mlen] ? arg + mlen + strspn(arg + mlen, " ") : NULL;
        if (!sasl_conv_mech_offered(s->sasl, mech, s->tls_active)) {
                reply(s, "504 5.5.4 Unsupported authentication mechanism");
                return;
        }
        for (char *p = mech; *p; p++)
                *p = (char)toupper((unsigned char)*p);
        struct sasl_start st = {
                .mech = mech,
                .initial = initial && *initial ? initial : NULL,
                .remote_ip = strcmp(s->addr, "unknown") != 0 ? s->addr : NULL,
                .tls = s->tls_active,
        };
        int r = sasl_conv_start(s->sasl, service_event(s->srv->service), &st);
        if (r == -EINVAL) {
                reply(s, "501 5.5.2 Error: invalid base64 in the initial response");
                return;
        }
        if (r < 0) {
                reply(s, "454 4.7.0 Temporary authentication failure");
                return;
        }
        free(s->auth_mech);
        s->auth_mech = xstrdup(mech);
        s->sasl_busy = true;
}

/* The line after a 334: the client's base64 response, or "*" to give up. */
static void auth_response(struct session *s, const char *line, size_t len)
{
        s->auth_cont = false;
        _cleanup_free_ char *resp = xstrndup(line, len);
        if (strcmp(resp, "*") == 0) {
                sasl_conv_abort(s->sasl);
                reply(s, "501 5.7.0 Authentication aborted");
                return;
        }
        int r = sasl_conv_continue(s->sasl, service_event(s->srv->service), resp);
        if (r == -EINVAL) {
                sasl_conv_abort(s->sasl);
                reply(s, "501 5.5.2 Error: invalid base64 in the response");
        } else if (r < 0)
                reply(s, "454 4.7.0 Temporary authentication failure");
        else
                s->sasl_busy = true;
}

/* Too many errors end the session; after a failed AUTH the reply is held (smtpd_error_sleep_time). */
static void auth_failed_reply(struct session *s, const char *line)
{
        reply(s, line);
        if (s->errors >= s->srv->hard_error_limit) {
                msg_info("too many errors after AUTH from %s", s->client);
                replyf(s, "421 4.7.0 %s Error: too many errors", s->srv->myhostname);
                close_after_reply(s);
        }
        if (s->srv->error_sleep_sec <= 0 || !s->pause_timer)
                return;
        uint64_t now = event_loop_now(service_event(s->srv->service));
        event_source_set_time(s->pause_timer, now + (uint64_t)s->srv->error_sleep_sec * 1000000ULL);
        event_source_set_enabled(s->pause_timer, EVENT_ONESHOT);
        s->paused = true;
}

static void sasl_event(struct session *s, const struct sasl_event *ev)
{
        s->sasl_busy = false;
        if (s->ehlo_pending) {
                s->ehlo_pending = false;
                ehlo_reply(s);
        } else if (ev->outcome == SASL_CONT) {
                /* Not the AUTH command's final reply: its counter waits for that one. */
                s->cur_cnt = -1;
                replyf(s, "334 %s", ev->data);
                s->cur_cnt = CNT_AUTH;
                s->auth_cont = true;
        } else if (ev->outcome == SASL_OK) {
                s->sasl_method = s->auth_mech;
                s->auth_mech = NULL;
                s->sasl_username = xstrdup(!isempty(ev->user) ? ev->user : "unknown");
                sasl_conv_abort(s->sasl); /* done with Dovecot for this session */
                metrics_count(METRIC_SMTPD_AUTH_OK);
                reply(s, "235 2.7.0 Authentication successful");
        } else if (ev->outcome == SASL_FAIL) {
                const char *why = !isempty(ev->reason) ? ev->reason : "authentication failure";
                metrics_count(METRIC_SMTPD_AUTH_FAILED);
                if (!isempty(ev->user))
                        msg_warn("%s: SASL %s authentication failed: %s, sasl_username=%s", s->client,
                                 s->auth_mech, why, ev->user);
                else
                        msg_warn("%s: SASL %s authentication failed: %s", s->client, s->auth_mech, why);
                _cleanup_free_ char *line = xasprintf("535 5.7.8 Error: authentication failed: %s", why);
                auth_failed_reply(s, line);
        } else
                reply(s, "454 4.7.0 Temporary authentication failure");
        pump(s);
        finish(s);
}

static enum counter counter_of(enum smtp_verb v)
{
        switch (v) {
        case SMTP_VERB_HELO: return CNT_HELO;
        case SMTP_VERB_EHLO: return CNT_EHLO;
        case SMTP_VERB_STARTTLS: return CNT_STARTTLS;
        case SMTP_VERB_AUTH: return CNT_AUTH;
        case SMTP_VERB_MAIL: return CNT_MAIL;
        case SMTP_VERB_RCPT: return CNT_RCPT;
        case SMTP_VERB_DATA: return CNT_DATA;
        case SMTP_VERB_BDAT: return CNT_BDAT;
        case SMTP_VERB_RSET: return CNT_RSET;
        case SMTP_VERB_NOOP: return CNT_NOOP;
        case SMTP_VERB_VRFY: return CNT_VRFY;
        case SMTP_VERB_ETRN: return CNT_ETRN;
        case SMTP_VERB_QUIT: return CNT_QUIT;
        default: return CNT_UNKNOWN;
        }
}

/* RFC 2920 section 3.1: commands after which a client must wait for the reply. */
static bool ends_pipeline_group(enum smtp_verb v)
{
        switch (v) {
        case SMTP_VERB_EHLO:
        case SMTP_VERB_HELO:
        case SMTP_VERB_DATA:
        case SMTP_VERB_NOOP:
        case SMTP_VERB_VRFY:
        case SMTP_VERB_STARTTLS:
        case SMTP_VERB_AUTH:
        case SMTP_VERB_ETRN: return true;
        default: return false;
        }
}

/* Quote pipelined input for the log: printable ASCII, the rest escaped, bounded. */
static void log_improper_pipelining(struct session *s, const char *after)
{
        struct buf b = BUF_INIT;
        size_t n = s->in.len - s->in_off;
        const unsigned char *p = (const unsigned char *)s->in.data + s->in_off;
        for (size_t i = 0; i < n && i < SMTPD_PIPELINING_LOG_MAX; i++) {
                if (p[i] == '\r')
                        buf_puts(&b, "\\r");
                else if (p[i] == '\n')
                        buf_puts(&b, "\\n");
                else if (p[i] < 0x20 || p[i] >= 0x7f)
                        buf_printf(&b, "\\%03o", p[i]);
                else
                        buf_putc(&b, (char)p[i]);
        }
        msg_info("improper command pipelining after %s from %s: %s", after, s->client, buf_str(&b));
        buf_done(&b);
}

/* Input beyond the current command that the client had no right to send yet. true: session ends. */
static bool check_pipelining(struct session *s, enum smtp_verb v, const char *verb_name)
{
        /* After AUTH the pipelined input is the client's response: never quoted, it holds a password. */
        if (s->in_off >= s->in.len || s->closing || v == SMTP_VERB_QUIT || v == SMTP_VERB_AUTH)
                return false;
        if (s->esmtp && !ends_pipeline_group(v))
                return false;
        log_improper_pipelining(s, verb_name);
        if (!s->srv->forbid_unauth_pipelining)
                return false;
        reply(s, "554 5.5.0 Error: SMTP protocol synchronization");
        reset_transaction(s);
        s->in_off = s->in.len;
        close_after_reply(s);
        return true;
}

/* smtpd_junk_command_limit: the commands that move no mail (Postfix's list, HELO and EHLO included). */
static bool is_junk(enum smtp_verb v)
{
        switch (v) {
        case SMTP_VERB_HELO:
        case SMTP_VERB_EHLO:
        case SMTP_VERB_RSET:
        case SMTP_VERB_NOOP:
        case SMTP_VERB_VRFY:
        case SMTP_VERB_ETRN: return true;
        default: return false;
        }
}

static void handle_command(struct session *s, const char *line, size_t len)
{
        struct smtp_cmd c = {0};
        struct smtp_cmd_options o = {
                .smtputf8_txn = s->mail_params.smtputf8,
                .strict_rfc821 = s->srv->strict_rfc821,
                .smtputf8_disable = !s->srv->smtputf8_enable,
        };
        int r = smtp_cmd_parse(line, len, &o, &c);
        enum counter idx = counter_of(c.verb);
        if (!s->retrying) {
                s->cnt_total[idx]++;
                s->dns_rounds = 0;
        }
        s->cur_line = line;
        s->cur_len = len;
        s->cur_cnt = (int)idx;
        s->last_cmd = c.verb == SMTP_VERB_UNKNOWN ? "UNKNOWN" : smtp_verb_to_string(c.verb);

        if (c.verb == SMTP_VERB_UNKNOWN)
                reply(s, "502 5.5.2 Error: command not recognized");
        else if (s->access_denied && c.verb != SMTP_VERB_QUIT && c.verb != SMTP_VERB_NOOP &&
                 c.verb != SMTP_VERB_RSET)
                replyf(s, "503 5.7.0 Error: access denied for %s", s->client);
        else if (r < 0)
                reply(s, c.reply);
        else {
                switch (c.verb) {
                case SMTP_VERB_EHLO: do_ehlo(s, &c, true); break;
                case SMTP_VERB_HELO: do_ehlo(s, &c, false); break;
                case SMTP_VERB_MAIL: do_mail(s, &c); break;
                case SMTP_VERB_RCPT: do_rcpt(s, &c); break;
                case SMTP_VERB_DATA: do_data(s); break;
                case SMTP_VERB_RSET:
                        reset_transaction(s);
                        reply(s, "250 2.0.0 Ok");
                        break;
                case SMTP_VERB_NOOP: reply(s, "250 2.0.0 Ok"); break;
                case SMTP_VERB_QUIT:
                        reply(s, "221 2.0.0 Bye");
                        close_after_reply(s);
                        break;
                case SMTP_VERB_VRFY: do_vrfy(s, &c); break;
                case SMTP_VERB_STARTTLS: do_starttls(s); break;
                case SMTP_VERB_AUTH: do_auth(s, &c); break;
                default: reply(s, "502 5.5.1 Error: command not implemented"); break;
                }
        }
        /* As Postfix: beyond the limit each junk command is one more error (then soft/hard limits apply). A
         * command run again with its DNS answers was counted the first time. */
        if (!s->lookup && is_junk(c.verb) && s->junk_cmds++ > s->srv->junk_command_limit)
                s->errors++;
        if (!check_pipelining(s, c.verb, s->last_cmd) && c.verb == SMTP_VERB_STARTTLS &&
            s->tls_start_after_flush)
                s->in_off = s->in.len; /* RFC 3207: nothing sent before the handshake may count after it */
        smtp_cmd_done(&c);
        s->cur_line = NULL;
}

static bool output_full(const struct session *s)
{
        return s->out.len - s->out_off >= SMTPD_OUTPUT_MAX;
}

static bool waiting(const struct session *s)
{
        return s->lookup || s->opening || s->ending || s->sasl_busy || s->tls_handshaking ||
               s->tls_start_after_flush || s->paused || cleanup_submit_backlogged(s->sub) ||
               output_full(s) || s->proxy_busy || proxy_backlogged(s->proxy);
}

/* Handle what the input buffer holds. Returns true when something was consumed. */
static bool process(struct session *s)
{
        bool progress = false;
        /* Each round consumes input, so the input buffer's size bounds the loop. */
        for (size_t i = 0; i <= SMTPD_INPUT_MAX; i++) {
                if (s->dead || s->closing || waiting(s))
                        break;
                size_t avail = s->in.len - s->in_off;
                const char *p = s->in.data ? s->in.data + s->in_off : "";
                if (avail == 0)
                        break;
                if (s->in_data) {
                        size_t used = 0;
                        int r = smtp_data_feed(&s->data, p, avail, &used);
                        s->in_off += used;
                        progress = progress || used > 0;
                        if (s->data.error == SMTP_DATA_ERR_BARE_LF &&
                            s->bare_newline == SMTPD_BARE_NEWLINE_REJECT) {
                                bare_newline_reject(s);
                                break;
                        }
                        if (r == 1) {
                                data_end(s);
                                continue;
                        }
                        break;
                }
                size_t line_len = 0, consumed = 0;
                int r = smtp_cmd_line_split(p, avail, &line_len, &consumed);
                if (r == 0)
                        break;
                if (r == -E2BIG) {
                        /* Skip to the end of the overlong line, then answer once. */
                        const char *lf = memchr(p, '\n', avail);
                        s->in_off += lf ? (size_t)(lf - p) + 1 : avail;
                        progress = true;
                        if (!lf) {
                                s->discard_line = true;
                                break;
                        }
                        s->discard_line = false;
                        reply(s, "500 5.5.0 Error: line too long");
                        continue;
                }
                if (s->discard_line) {
                        s->in_off += consumed;
                        s->discard_line = false;
                        progress = true;
                        reply(s, "500 5.5.0 Error: line too long");
                        continue;
                }
                if (r == -EBADMSG) {
                        if (s->bare_newline == SMTPD_BARE_NEWLINE_REJECT) {
                                s->in_off += consumed;
                                bare_newline_reject(s);
                                break;
                        }
                        line_len = consumed - 1; /* normalize: a bare <LF> ends a command line */
                }
                s->in_off += consumed;
                progress = true;
                if (s->auth_cont) {
                        auth_response(s, p, line_len);
                        continue;
                }
                long long errors_before = s->errors;
                handle_command(s, p, line_len);
                if (s->errors >= s->srv->hard_error_limit && !s->closing) {
                        msg_info("too many errors after %s from %s", s->last_cmd, s->client);
                        replyf(s, "421 4.7.0 %s Error: too many errors", s->srv->myhostname);
                        close_after_reply(s);
                }
                if (errors_before >= s->srv->soft_error_limit && s->srv->error_sleep_sec > 0 &&
                    !s->closing && s->last_code >= 400) {
                        /* Once a client made smtpd_soft_error_limit errors without delivering mail, each
                         * error reply waits smtpd_error_sleep_time (sent when the pause ends); the errors
                         * counted are those before this command, as Postfix counts them. Postfix 2.1+ delays
                         * every reply then; postd keeps good replies prompt so that a client retrying on one
                         * connection reaches smtpd_hard_error_limit in bounded time. */
                        uint64_t now = event_loop_now(service_event(s->srv->service));
                        uint64_t when = now + (uint64_t)s->srv->error_sleep_sec * 1000000ULL;
                        if (s->pause_timer) {
                                event_source_set_time(s->pause_timer, when);
                                event_source_set_enabled(s->pause_timer, EVENT_ONESHOT);
                                s->paused = true;
                        }
                }
        }
        if (s->in_off > 0 && s->in_off == s->in.len) {
                buf_truncate(&s->in, 0);
                s->in_off = 0;
        } else if (s->in_off > SMTPD_INPUT_MAX / 2) {
                memmove(s->in.data, s->in.data + s->in_off, s->in.len - s->in_off);
                buf_truncate(&s->in, s->in.len - s->in_off);
                s->in_off = 0;
        }
        return progress;
}

/* ---- I/O ---- */

static void tls_established(struct session *s)
{
        s->tls_handshaking = false;
        s->tls_active = true;
        free(s->tls_info);
        s->tls_info = tls_conn_describe(s->tls);
        msg_info("Anonymous TLS connection established from %s: %s", s->client, s->tls_info);
        metrics_count(METRIC_SMTPD_TLS);
        /* RFC 3207 section 4.2: everything learned before the handshake is forgotten. */
        reset_transaction(s);
        free(s->helo);
        s->helo = NULL;
        s->esmtp = false;
        free(s->sasl_method);
        free(s->sasl_username);
        s->sasl_method = s->sasl_username = NULL;
        if (s->srv->wrappermode && s->cnt_total[CNT_STARTTLS] == 0)
                greet(s);
}

static bool tls_step(struct session *s)
{
        int r = tls_conn_handshake(s->tls);
        if (r == 1) {
                tls_established(s);
                return true;
        }
        s->tls_read_wants_write = r == TLS_WANT_WRITE;
        if (r == TLS_WANT_READ || r == TLS_WANT_WRITE)
                return false;
        msg_info("SSL_accept error from %s: %s", s->client, tls_last_error());
        msg_info("lost connection after %s from %s", s->last_cmd, s->client);
        kill_session(s);
        return false;
}

static void start_tls(struct session *s)
{
        s->tls_start_after_flush = false;
        s->tls = tls_conn_new(s->srv->tls, s->fd);
        if (!s->tls) {
                msg_warn("cannot start TLS for %s: %s", s->client, tls_last_error());
                kill_session(s);
                return;
        }
        s->tls_handshaking = true;
}

/* Write pending output. Returns true when bytes went out. */
static bool do_write(struct session *s)
{
        bool progress = false;
        s->tls_write_wants_read = false;
        while (!s->paused && s->out_off < s->out.len) {
                const char *p = s->out.data + s->out_off;
                size_t n = s->out.len - s->out_off;
                ssize_t w;
                if (s->tls) {
                        int r = tls_conn_write(s->tls, p, n);
                        if (r == TLS_WANT_READ) {
                                s->tls_write_wants_read = true;
                                break;
                        }
                        if (r == TLS_WANT_WRITE)
                                break;
                        if (r <= 0) {
                                kill_session(s);
                                return false;
                        }
                        w = r;
                } else {
                        w = send(s->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (w < 0) {
                                if (errno == EINTR)
                                        continue;
                                if (errno == EAGAIN)
                                        break;
                                if (!s->closing)
                                        msg_info("lost connection after %s from %s", s->last_cmd, s->client);
                                kill_session(s);
                                return false;
                        }
                }
                s->out_off += (size_t)w;
                progress = true;
        }
        if (s->out_off == s->out.len) {
                buf_truncate(&s->out, 0);
                s->out_off = 0;
                if (s->closing) {
                        kill_session(s);
                        return progress;
                }
                if (s->tls_start_after_flush)
                        start_tls(s);
        }
        return progress;
}

static bool can_read(const struct session *s)
{
        /* Nothing is read before the greeting's lookup ends: a wrapper-mode client's first bytes are TLS. */
        return !s->lookup && !s->eof && !s->closing && !s->dead && !s->tls_handshaking &&
               !s->tls_start_after_flush && s->in.len < SMTPD_INPUT_MAX &&
               !cleanup_submit_backlogged(s->sub) && !output_full(s) && !proxy_backlogged(s->proxy);
}

/* Read what is there. Returns true when bytes arrived. */
static bool do_read(struct session *s)
{
        bool progress = false;
        s->tls_read_wants_write = false;
        while (can_read(s)) {
                size_t room = SMTPD_INPUT_MAX - s->in.len;
                if (room > SESSION_READ_CHUNK)
                        room = SESSION_READ_CHUNK;
                buf_reserve(&s->in, room);
                char *dst = s->in.data + s->in.len;
                ssize_t n;
                if (s->tls) {
                        int r = tls_conn_read(s->tls, dst, room);
                        if (r == TLS_WANT_READ)
                                break;
                        if (r == TLS_WANT_WRITE) {
                                s->tls_read_wants_write = true;
                                break;
                        }
                        if (r == TLS_FAILED) {
                                msg_info("TLS read error from %s: %s", s->client, tls_last_error());
                                s->eof = true;
                                break;
                        }
                        n = r;
                } else {
                        if (s->drained)
                                break;
                        n = recv(s->fd, dst, room, MSG_DONTWAIT);
                        if (n < 0) {
                                if (errno == EINTR)
                                        continue;
                                if (errno == EAGAIN)
                                        s->drained = true;
                                if (errno != EAGAIN && errno != ECONNRESET)
                                        msg_warn("read from %s: %s", s->client, strerror(errno));
                                if (errno != EAGAIN)
                                        s->eof = true;
                                break;
                        }
                }
                if (n == 0) {
                        s->eof = true;
                        break;
                }
                if (!s->tls && (size_t)n < room)
                        s->drained = true;
                s->in.len += (size_t)n;
                s->in.data[s->in.len] = '\0';
                progress = true;
        }
        if (progress) {
                /* smtpd_timeout counts from the last input. */
                uint64_t now = event_loop_now(service_event(s->srv->service));
                event_source_set_time(s->timer, now + (uint64_t)s->srv->timeout_sec * 1000000ULL);
                event_source_set_enabled(s->timer, EVENT_ONESHOT);
        }
        return progress;
}

static void update_events(struct session *s)
{
        if (s->dead)
                return;
        uint32_t ev = 0;
        if (s->tls_handshaking)
                ev = s->tls_read_wants_write ? EPOLLOUT : EPOLLIN;
        else {
                /* At EOF the socket stays readable: that wakes us for input still to be handled. */
                if (can_read(s) || s->tls_write_wants_read || (s->eof && !waiting(s)))
                        ev |= EPOLLIN;
                if ((s->out_off < s->out.len && !s->paused) || s->tls_read_wants_write)
                        ev |= EPOLLOUT;
        }
        event_source_set_io_events(s->io, ev);
}

static void pump(struct session *s)
{
        for (int round = 0; round < SESSION_PUMP_ROUNDS && !s->dead; round++) {
                bool progress = false;
                if (s->tls_handshaking) {
                        if (!tls_step(s))
                                break;
                        progress = true;
                }
                progress |= do_write(s);
                if (s->dead)
                        break;
                open_early(s); /* after the MAIL reply went out, before the client's next command is read */
                progress |= do_read(s);
                bool processed = process(s);
                progress |= processed;
                if (s->dead)
                        break;
                if (s->eof && !processed && !s->closing && !waiting(s) && s->out_off == s->out.len) {
                        /* Input ended without QUIT; what was complete has been handled. */
                        msg_info("lost connection after %s from %s", s->last_cmd, s->client);
                        kill_session(s);
                        break;
                }
                if (!progress && !(s->tls && tls_conn_pending(s->tls) && can_read(s)))
                        break;
        }
        if (!s->dead)
                do_write(s);
        if (!s->dead)
                open_early(s);
        update_events(s);
}

/* ---- life cycle ---- */

static void session_free(struct session *s)
{
        metrics_count(METRIC_SMTPD_DISCONNECTS);
        struct buf b = BUF_INIT;
        unsigned ok = 0, total = 0;
        buf_printf(&b, "disconnect from %s", s->client);
        for (int i = 0; i < CNT_N; i++) {
                if (s->cnt_total[i] == 0)
                        continue;
                if (s->cnt_ok[i] == s->cnt_total[i])
                        buf_printf(&b, " %s=%u", counter_names[i], s->cnt_total[i]);
                else
                        buf_printf(&b, " %s=%u/%u", counter_names[i], s->cnt_ok[i], s->cnt_total[i]);
                ok += s->cnt_ok[i];
                total += s->cnt_total[i];
        }
        if (ok == total)
                buf_printf(&b, " commands=%u", total);
        else
                buf_printf(&b, " commands=%u/%u", ok, total);
        msg_info("%s", buf_str(&b));
        buf_done(&b);

        reset_transaction(s);
        anvil_disconnect(s);
        free(s->limit_reply);
        if (s->lookup)
                s->lookup->session = NULL; /* the worker still runs: its answer goes nowhere */
        if (s->next)
                s->next->prev = s->prev;
        if (s->prev)
                s->prev->next = s->next;
        else
                s->srv->sessions = s->next;
        tls_conn_free(s->tls);
        sasl_conv_free(s->sasl);
        free(s->auth_mech);
        free(s->sasl_method);
        free(s->sasl_username);
        event_source_disable_unref(s->io);
        event_source_disable_unref(s->timer);
        event_source_disable_unref(s->pause_timer);
        event_source_disable_unref(s->wait_timer);
        event_source_disable_unref(s->deadline_timer);
        close(s->fd);
        buf_done(&s->in);
        buf_done(&s->out);
        free(s->tls_info);
        free(s->helo);
        free(s->client);
        struct service *svc = s->srv->service;
        free(s);
        service_connection_done(svc);
}

/* Called at the end of every event handler: a session marked dead is freed here, and only here. */
static void finish(struct session *s)
{
        if (s->dead)
                session_free(s);
}

static int on_io(struct event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct session *s = userdata;
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
                s->drained = false;
        pump(s);
        finish(s);
        return 0;
}

static int on_timeout(struct event_source *src, uint64_t usec, void *userdata)
{
        struct session *s = userdata;
        if (s->opening || s->ending || s->proxy_busy) {
                /* Waiting on cleanup or the proxy filter, not on the client: their own timers cover that. */
                event_source_set_time(src, usec + (uint64_t)s->srv->timeout_sec * 1000000ULL);
                event_source_set_enabled(src, EVENT_ONESHOT);
                return 0;
        }
        if (s->in_data)
                msg_info("timeout after DATA (%llu bytes) from %s", (unsigned long long)s->data.received,
                         s->client);
        else
                msg_info("timeout after %s from %s", s->last_cmd, s->client);
        reset_transaction(s);
        replyf(s, "421 4.4.2 %s Error: timeout exceeded", s->srv->myhostname);
        close_after_reply(s);
        s->paused = false;
        do_write(s);
        if (!s->dead) /* a client that does not even read gets no more time */
                kill_session(s);
        finish(s);
        return 0;
}

/*
 * postd_smtpd_session_deadline: smtpd_timeout restarts with every byte, so a client that drips input
 * could hold a session (and its slot in smtpd_client_connection_count_limit) forever; this ends it.
 */
static int on_deadline(struct event_source *src, uint64_t usec, void *userdata)
{
        struct session *s = userdata;
        if (s->opening || s->ending || s->proxy_busy) {
                /* cleanup (or the filter) decides the message's fate first: cut now, the client could not
                 * know it. */
                event_source_set_time(src, usec + 1000000ULL);
                event_source_set_enabled(src, EVENT_ONESHOT);
                return 0;
        }
        msg_info("session time limit (postd_smtpd_session_deadline = %llds) exceeded after %s from %s",
                 s->srv->session_deadline_sec, s->in_data ? "DATA" : s->last_cmd, s->client);
        reset_transaction(s);
        replyf(s, "421 4.4.2 %s Error: session time limit exceeded", s->srv->myhostname);
        close_after_reply(s);
        s->paused = false;
        do_write(s);
        if (!s->dead) /* a client that does not read its reply gets no more time */
                kill_session(s);
        finish(s);
        return 0;
}

static int on_pause_end(struct event_source *src, uint64_t usec, void *userdata)
{
        struct session *s = userdata;
        s->paused = false;
        pump(s);
        finish(s);
        return 0;
}

/* ---- the client's DNS facts, looked up in a worker thread before the greeting ---- */

static void session_begin(struct session *s);

static void client_lookup_work(void *userdata)
{
        struct client_lookup *l = userdata;
        if (l->keys.n > 0) {
                for (size_t i = 0; i < l->keys.n; i++)
                        smtpd_dns_fact_lookup(l->keys.v[i], &l->facts[i]);
                return;
        }
        smtpd_client_dns_lookup(l->addr, l->names, &l->zones, &l->dns);
}

static void client_lookup_free(struct client_lookup *l)
{
        strv_done(&l->zones);
        strv_done(&l->keys);
        free(l->facts);
        free(l->retry_line);
        free(l);
}

/* The answers of a command's restrictions are in: run it (or the greeting) again. */
static void facts_done(struct session *s, struct client_lookup *l)
{
        for (size_t i = 0; i < l->keys.n; i++)
                smtpd_dns_facts_add(&s->facts, &l->facts[i]);
        if (s->dead)
                return;
        if (!l->retry_line) {
                greet(s);
        } else {
                s->retrying = true;
                handle_command(s, l->retry_line, l->retry_len);
                s->retrying = false;
        }
        pump(s);
}

/* Look up the DNS keys a command's restrictions need in a worker thread, then run it again. */
static int start_fact_lookup(struct session *s, const struct strv *keys, bool greeting)
{
        if (!greeting && !s->cur_line)
                return -EINVAL;
        struct client_lookup *l = xcalloc(1, sizeof *l);
        l->session = s;
        l->zones = (struct strv)STRV_INIT;
        l->keys = (struct strv)STRV_INIT;
        for (size_t i = 0; i < keys->n; i++)
                strv_push(&l->keys, keys->v[i]);
        l->facts = xcalloc(keys->n, sizeof *l->facts);
        if (!greeting) {
                l->retry_line = xstrndup(s->cur_line, s->cur_len);
                l->retry_len = s->cur_len;
        }
        int r = worker_run(service_event(s->srv->service), client_lookup_work, client_lookup_done, l);
        if (r < 0) {
                msg_warn("cannot start a DNS lookup for %s: %s", s->client, strerror(-r));
                client_lookup_free(l);
                return r;
        }
        s->lookup = l;
        return 0;
}

static void client_lookup_done(void *userdata)
{
        struct client_lookup *l = userdata;
        struct session *s = l->session;
        if (s && l->keys.n > 0) {
                s->lookup = NULL;
                facts_done(s, l);
                finish(s);
        } else if (s) {
                s->lookup = NULL;
                s->dns = l->dns;
                s->dns_done = true;
                free(s->client);
                s->client = xasprintf("%s[%s]", client_name(s), s->addr);
                if (!s->dead) {
                        session_begin(s);
                        pump(s);
                }
                finish(s);
        }
        client_lookup_free(l);
}

/*
 * smtpd_peername_lookup and the reject_rbl_client zones: the answers arrive before the greeting, as
 * with Postfix, without blocking the other sessions. 0: started (session_begin follows), <0: nothing
 * to look up, or it could not start (the client stays "unknown").
 */
static int start_client_lookup(struct session *s)
{
        struct client_lookup *l = xcalloc(1, sizeof *l);
        l->names = s->srv->peername_lookup;
        l->zones = (struct strv)STRV_INIT;
        smtpd_access_rbl_zones(s->srv->access, &l->zones);
        int r = -ENODATA;
        if ((l->names || l->zones.n > 0) && strcmp(s->addr, "unknown") != 0) {
                snprintf(l->addr, sizeof l->addr, "%s", s->addr);
                l->session = s;
                r = worker_run(service_event(s->srv->service), client_lookup_work, client_lookup_done, l);
                if (r < 0)
                        msg_warn("cannot look up the name of %s: %s", s->client, strerror(-r));
        }
        if (r < 0) {
                client_lookup_free(l);
                return r;
        }
        s->lookup = l;
        return 0;
}

/*
 * smtpd_forbid_bare_newline_exclusions exempt a client from "reject" only: it then gets "normalize",
 * so a bare <LF>.<LF> never ends DATA for anybody. A failed table lookup keeps the strict mode.
 */
static enum smtpd_bare_newline bare_newline_mode(struct smtpd *srv, const char *addr)
{
        if (srv->bare_newline != SMTPD_BARE_NEWLINE_REJECT)
                return srv->bare_newline;
        return smtpd_access_bare_newline_excluded(srv->access, addr) > 0 ? SMTPD_BARE_NEWLINE_NORMALIZE
                                                                         : SMTPD_BARE_NEWLINE_REJECT;
}

void session_start(struct smtpd *srv, int fd)
{
        struct session *s = xcalloc(1, sizeof(*s));
        metrics_count(METRIC_SMTPD_CONNECTIONS);
        struct event_loop *e = service_event(srv->service);
        s->srv = srv;
        s->fd = fd;
        s->cur_cnt = -1;
        s->last_cmd = "CONNECT";

        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        struct netaddr na = {0};
        if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *)&ss;
                na.family = AF_INET;
                memcpy(na.bytes, &in->sin_addr, 4);
                s->port = ntohs(in->sin_port);
        } else if (ss.ss_family == AF_INET6) {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
                na.family = AF_INET6;
                memcpy(na.bytes, &in6->sin6_addr, 16);
                s->port = ntohs(in6->sin6_port);
                /* An IPv4 client on a dual-stack socket is logged and matched as IPv4. */
                static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
                if (memcmp(na.bytes, mapped, 12) == 0) {
                        na.family = AF_INET;
                        memmove(na.bytes, na.bytes + 12, 4);
                }
        }
        if (na.family)
                netaddr_format(&na, s->addr, sizeof s->addr);
        else
                snprintf(s->addr, sizeof s->addr, "unknown");
        s->client = xasprintf("%s[%s]", client_name(s), s->addr);
        s->bare_newline = bare_newline_mode(srv, s->addr);
        if (srv->sasl)
                s->sasl = sasl_conv_new(srv->sasl, s, sasl_event);

        s->next = srv->sessions;
        if (s->next)
                s->next->prev = s;
        srv->sessions = s;

        uint64_t now = event_loop_now(e);
        int r = event_add_io(e, &s->io, fd, EPOLLIN, on_io, s);
        if (r >= 0)
                r = event_add_time(e, &s->timer, now + (uint64_t)srv->timeout_sec * 1000000ULL, on_timeout,
                                   s);
        if (r >= 0) {
                r = event_add_time(e, &s->pause_timer, now, on_pause_end, s);
                if (r >= 0)
                        event_source_set_enabled(s->pause_timer, EVENT_OFF);
        }
        if (r >= 0 && srv->session_deadline_sec > 0)
                r = event_add_time(e, &s->deadline_timer,
                                   now + (uint64_t)srv->session_deadline_sec * 1000000ULL, on_deadline, s);
        if (r < 0) {
                msg_warn("cannot watch the connection from %s: %s", s->client, strerror(-r));
                kill_session(s);
                finish(s);
                return;
        }
        if (start_client_lookup(s) == 0) {
                finish(s);
                return;
        }
        session_begin(s);
        pump(s);
        finish(s);
}

/* After the client's name is known (or not looked up): log the connection, then TLS or the greeting. */
static void session_begin(struct session *s)
{
        struct smtpd *srv = s->srv;
        int fd = s->fd;
        msg_info("connect from %s", s->client);
        anvil_connect(s);

        if (srv->wrappermode) {
                if (!srv->tls) {
                        msg_warn("smtpd_tls_wrappermode requires a working TLS setup; dropping %s",
                                 s->client);
                        kill_session(s);
                        finish(s);
                        return;
                }
                start_tls(s);
        } else {
                /* A client that talks before the greeting is a spam engine or a confused script. */
                char c;
                if (recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
                        do_read(s);
                        log_improper_pipelining(s, "CONNECT");
                        if (srv->forbid_unauth_pipelining) {
                                s->in_off = s->in.len;
                                reply(s, "554 5.5.0 Error: SMTP protocol synchronization");
                                close_after_reply(s);
                        }
                }
                if (!s->closing)
                        greet(s);
        }
}

void session_stop_all(struct smtpd *srv)
{
        for (struct session *s = srv->sessions, *next; s; s = next) {
                next = s->next;
                /* A session whose DNS lookup runs has not been answered yet (a new client waits for its
                 * greeting): it finishes like a transaction, within the stop timeout. */
                if (s->in_mail || s->closing || s->dead || s->lookup)
                        continue;
                replyf(s, "421 4.3.2 %s Service shutting down", srv->myhostname);
                close_after_reply(s);
                pump(s);
                finish(s);
        }
}
