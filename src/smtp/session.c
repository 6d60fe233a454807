/* session.c: one outbound SMTP or LMTP connection: a non-blocking state machine with STARTTLS, AUTH, reuse. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "alloc.h"
#include "catalog.h"
#include "delivery.h"
#include "log.h"
#include "macro.h"
#include "session.h"
#include "smtp_util.h"
#include "tls_policy.h"

#define SESSION_READ_CHUNK 16384

static const char *state_doing(enum sstate st, bool lmtp)
{
        switch (st) {
        case S_CONNECT: return "connecting";
        case S_GREETING: return "receiving the initial server greeting";
        case S_EHLO: return lmtp ? "performing the LHLO handshake" : "performing the EHLO handshake";
        case S_HELO: return "performing the HELO handshake";
        case S_STARTTLS: return "sending STARTTLS";
        case S_TLS_HANDSHAKE: return "performing the TLS handshake";
        case S_AUTH:
        case S_AUTH_LOGIN_USER:
        case S_AUTH_LOGIN_PASS: return "performing SASL authentication";
        case S_RSET: return "sending RSET";
        case S_MAIL: return "sending MAIL FROM";
        case S_RCPT: return "sending RCPT TO";
        case S_DATA: return "sending DATA command";
        case S_DATA_XFER:
        case S_DATA_DONE: return "sending message body";
        case S_IDLE: return "waiting for the next message";
        case S_QUIT: return "sending QUIT";
        }
        return "talking";
}

static const char *state_command(enum sstate st, bool lmtp)
{
        switch (st) {
        case S_GREETING: return "initial greeting";
        case S_EHLO: return lmtp ? "LHLO command" : "EHLO command";
        case S_HELO: return "HELO command";
        case S_STARTTLS: return "STARTTLS command";
        case S_AUTH:
        case S_AUTH_LOGIN_USER:
        case S_AUTH_LOGIN_PASS: return "AUTH command";
        case S_RSET: return "RSET command";
        case S_MAIL: return "MAIL FROM command";
        case S_RCPT: return "RCPT TO command";
        case S_DATA: return "DATA command";
        case S_DATA_DONE: return "end of DATA command";
        default: return "command";
        }
}

static uint64_t now_mono(struct agent *a)
{
        uint64_t now = event_loop_now(a->event);
        return now;
}

static void set_timer(struct session *s, uint64_t usec)
{
        event_source_set_time(s->timer, now_mono(s->a) + usec);
        event_source_set_enabled(s->timer, EVENT_ONESHOT);
}

static void cache_unlink(struct session *s)
{
        if (!s->cached)
                return;
        for (struct session **p = &s->a->cache; *p; p = &(*p)->next)
                if (*p == s) {
                        *p = s->next;
                        break;
                }
        s->cached = false;
        s->a->n_cache--;
}

static void session_free(struct session *s)
{
        cache_unlink(s);
        event_source_disable_unref(s->io);
        event_source_disable_unref(s->timer);
        smtp_tls_done(s);
        if (s->fd >= 0)
                close(s->fd);
        buf_done(&s->out);
        smtp_reply_parser_done(&s->parser);
        smtp_ehlo_caps_done(&s->caps);
        free(s->key);
        free(s->auth_user);
        if (s->auth_pass) {
                explicit_bzero(s->auth_pass, strlen(s->auth_pass));
                free(s->auth_pass);
        }
        free(s);
}

/* Close now; the memory goes once the current callback returns. */
static void session_close(struct session *s)
{
        cache_unlink(s);
        s->rq = NULL;
        event_source_set_enabled(s->io, EVENT_OFF);
        event_source_set_enabled(s->timer, EVENT_OFF);
        if (s->in_callback)
                s->dead = true;
        else
                session_free(s);
}

/* Failed before the transaction: the request tries the next address. */
static void setup_failed(struct session *s, const char *dsn, const char *reason)
{
        struct request *rq = s->rq;
        const struct session_ops *ops = s->ops; /* s may be freed by session_close */
        char d[SMTP_ENHANCED_MAX];
        snprintf(d, sizeof d, "%s", dsn);
        d[0] = '4'; /* another host may still take it: never final from here */
        bool reused = s->reused;
        session_close(s);
        if (!rq)
                return;
        if (reused)
                ops->reuse_failed(rq); /* a stale cached connection: start over with a fresh one */
        else
                ops->failed(rq, d, reason, false);
}

static void transaction_end(struct session *s, bool reusable);

/* Failed inside the transaction: every recipient not yet final is deferred with reason. */
static void transaction_failed(struct session *s, const char *dsn, const char *reason)
{
        struct request *rq = s->rq;
        for (size_t i = 0; rq && i < rq->n_rcpts; i++) {
                struct rcpt *r = &rq->rcpts[i];
                if (r->status == RCPT_PENDING || r->status == RCPT_ACCEPTED)
                        s->ops->rcpt_final(rq, r, s->relay, RCPT_DEFERRED, dsn, reason);
        }
        transaction_end(s, false);
}

static void connection_lost(struct session *s, const char *what)
{
        _cleanup_free_ char *reason = xasprintf("%s with %s[%s] while %s", what, s->host, s->addr,
                                                state_doing(s->state, s->a->set.lmtp));
        if (s->state == S_IDLE || s->state == S_QUIT || !s->rq) {
                session_close(s);
                return;
        }
        if (s->state < S_MAIL || s->state == S_RSET)
                setup_failed(s, "4.4.2", reason);
        else
                transaction_failed(s, "4.4.2", reason);
}

static void send_line(struct session *s, enum sstate next, uint64_t timeout, const char *fmt, ...)
        _printf_(4, 5);
static void send_line(struct session *s, enum sstate next, uint64_t timeout, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        buf_vprintf(&s->out, fmt, ap);
        va_end(ap);
        buf_append(&s->out, "\r\n", 2);
        s->state = next;
        set_timer(s, timeout);
}

static char *reply_reason(struct session *s, const struct smtp_reply *r)
{
        _cleanup_free_ char *text = smtp_reply_to_string(r);
        return limit_reason(xasprintf("host %s[%s] said: %s (in reply to %s)", s->host, s->addr, text,
                                      state_command(s->state, s->a->set.lmtp)));
}

static void reply_dsn(const struct smtp_reply *r, char dsn[static SMTP_ENHANCED_MAX])
{
        if (r->enhanced[0])
                snprintf(dsn, SMTP_ENHANCED_MAX, "%s", r->enhanced);
        else
                snprintf(dsn, SMTP_ENHANCED_MAX, "%d.0.0", r->code / 100);
}

/* EHLO, or LHLO in LMTP mode (RFC 2033: same capabilities, no HELO fallback). */
static void send_hello(struct session *s)
{
        send_line(s, S_EHLO, s->a->set.helo_timeout, "%s %s", s->a->set.lmtp ? "LHLO" : "EHLO",
                  s->a->set.helo_name);
}

/* ---- transaction ---- */

static void start_transaction(struct session *s)
{
        struct request *rq = s->rq;
        struct agent *a = s->a;
        rq->conn_usec = delivery_now_usec();
        s->n_accepted = 0;
        s->rcpt_cur = 0;
        uint64_t size = rq->msg.has_message_size ? rq->msg.message_size : rq->msg.content_len;
        if (s->caps.size && s->caps.size_limit > 0 && size > s->caps.size_limit) {
                _cleanup_free_ char *reason = xasprintf(
                        "message size %llu exceeds size limit %llu of server %s[%s]",
                        (unsigned long long)size, (unsigned long long)s->caps.size_limit, s->host, s->addr);
                for (size_t i = 0; i < rq->n_rcpts; i++)
                        if (rq->rcpts[i].status == RCPT_PENDING)
                                s->ops->rcpt_final(rq, &rq->rcpts[i], s->relay, RCPT_BOUNCED, "5.3.4",
                                                   reason);
                transaction_end(s, true);
                return;
        }
        struct buf cmd = BUF_INIT;
        buf_printf(&cmd, "MAIL FROM:<%s>", rq->msg.sender ? rq->msg.sender : "");
        if (s->caps.size)
                buf_printf(&cmd, " SIZE=%llu", (unsigned long long)size);
        if (s->caps.eightbitmime && smtp_content_is_8bit(rq->msg.content, rq->msg.content_len))
                buf_puts(&cmd, " BODY=8BITMIME");
        send_line(s, S_MAIL, a->set.mail_timeout, "%s", buf_str(&cmd));
        buf_done(&cmd);
}

static bool next_rcpt(struct session *s)
{
        struct request *rq = s->rq;
        while (s->rcpt_cur < rq->n_rcpts && rq->rcpts[s->rcpt_cur].status != RCPT_PENDING)
                s->rcpt_cur++;
        if (s->rcpt_cur >= rq->n_rcpts)
                return false;
        send_line(s, S_RCPT, s->a->set.rcpt_timeout, "RCPT TO:<%s>", rq->rcpts[s->rcpt_cur].q->address);
        return true;
}

static void fill_data(struct session *s)
{
        struct request *rq = s->rq;
        if (s->data_end || s->out_off < s->out.len)
                return;
        buf_truncate(&s->out, 0);
        s->out_off = 0;
        if (smtp_data_encode(rq->msg.content, rq->msg.content_len, &s->data_off, &s->data_bol, &s->out,
                             SMTP_DATA_CHUNK) == 1)
                s->data_end = true;
        set_timer(s, s->a->set.data_xfer_timeout);
}

static void transaction_end(struct session *s, bool reusable)
{
        struct request *rq = s->rq;
        struct agent *a = s->a;
        const struct session_ops *ops = s->ops; /* s may be freed by session_close */
        s->rq = NULL;
        if (reusable && a->set.cache_on_demand && a->n_cache < SMTP_CACHE_MAX && rq) {
                free(s->key);
                s->key = xstrdup(ops->cache_key(rq));
                s->state = S_IDLE;
                s->cached = true;
                s->next = a->cache;
                a->cache = s;
                a->n_cache++;
                set_timer(s, a->set.cache_time_limit);
        } else if (reusable) {
                send_line(s, S_QUIT, a->set.quit_timeout, "QUIT");
        } else
                session_close(s);
        if (rq)
                ops->done(rq);
}

/* ---- connection setup: EHLO, STARTTLS, AUTH ---- */

static void proceed_auth(struct session *s);

static void after_ehlo(struct session *s)
{
        struct agent *a = s->a;
        if (!s->tls && s->level != TLS_NONE && a->ssl_ctx) {
                /* Unusable TLS settings: defer rather than send in the clear what should be protected. */
                if (s->tls_error && (s->caps.starttls || smtp_tls_mandatory(s))) {
                        _cleanup_free_ char *reason = xasprintf("TLS is unavailable: %s", s->tls_error);
                        setup_failed(s, "4.7.5", reason);
                        return;
                }
                if (s->caps.starttls) {
                        send_line(s, S_STARTTLS, a->set.helo_timeout, "STARTTLS");
                        return;
                }
                if (smtp_tls_mandatory(s)) {
                        _cleanup_free_ char *reason = xasprintf(
                                "TLS is required, but was not offered by host %s[%s]", s->host, s->addr);
                        setup_failed(s, "4.7.4", reason);
                        return;
                }
        }
        proceed_auth(s);
}

static int lookup_password(struct session *s)
{
        struct strv keys = STRV_INIT;
        int found = 0;
        smtp_sasl_keys(s->rq->hop_name, s->host, s->port, &keys);
        for (size_t i = 0; i < keys.n && found == 0; i++) {
                char *value = NULL;
                int r = maps_find(s->a->set.sasl_maps, keys.v[i], &value);
                if (r < 0) {
                        found = r;
                        break;
                }
                if (r > 0) {
                        if (smtp_sasl_split(value, &s->auth_user, &s->auth_pass) == 0)
                                found = 1;
                        else
                                msg_warn("smtp_sasl_password_maps: value for %s is not \"user:password\"",
                                         keys.v[i]);
                        explicit_bzero(value, strlen(value));
                        free(value);
                }
        }
        strv_done(&keys);
        return found;
}

static void proceed_auth(struct session *s)
{
        struct agent *a = s->a;
        if (!a->set.sasl_enable || !a->set.sasl_maps || s->auth_user) {
                start_transaction(s);
                return;
        }
        int r = lookup_password(s);
        if (r < 0) {
                setup_failed(s, "4.3.0", "smtp_sasl_password_maps lookup failed");
                return;
        }
        if (r == 0 || !s->caps.auth) {
                start_transaction(s); /* no password for this host, or the server has no AUTH */
                return;
        }
        unsigned opts = s->tls ? a->set.sasl_tls_opts : a->set.sasl_opts;
        if (opts & SMTP_SASL_NOPLAINTEXT) {
                _cleanup_free_ char *reason =
                        xasprintf("SASL authentication to %s[%s] not attempted: PLAIN and LOGIN would send "
                                  "the password "
                                  "in plain text, which %s forbids (noplaintext)%s",
                                  s->host, s->addr,
                                  s->tls ? "smtp_sasl_tls_security_options" : "smtp_sasl_security_options",
                                  s->tls ? "" : "; use TLS or allow it");
                setup_failed(s, "4.7.0", reason);
                return;
        }
        if (smtp_ehlo_has_auth(&s->caps, "PLAIN")) {
                size_t ul = strlen(s->auth_user), pl = strlen(s->auth_pass);
                _cleanup_free_ char *raw = xmalloc(ul + pl + 2);
                raw[0] = '\0';
                memcpy(raw + 1, s->auth_user, ul);
                raw[1 + ul] = '\0';
                memcpy(raw + 2 + ul, s->auth_pass, pl);
                _cleanup_free_ char *b = smtp_base64(raw, ul + pl + 2);
                explicit_bzero(raw, ul + pl + 2);
                send_line(s, S_AUTH, a->set.helo_timeout, "AUTH PLAIN %s", b);
                explicit_bzero(b, strlen(b));
        } else if (smtp_ehlo_has_auth(&s->caps, "LOGIN"))
                send_line(s, S_AUTH_LOGIN_USER, a->set.helo_timeout, "AUTH LOGIN");
        else {
                _cleanup_free_ char *reason = xasprintf("SASL authentication to %s[%s] failed: no mechanism "
                                                        "available (this client has PLAIN "
                                                        "and LOGIN)",
                                                        s->host, s->addr);
                setup_failed(s, "4.7.0", reason);
        }
}

/* ---- STARTTLS ---- */

static void tls_handshake(struct session *s)
{
        _cleanup_free_ char *reason = NULL;
        int r = smtp_tls_handshake(s, &reason);
        if (r < 0) {
                setup_failed(s, "4.7.5", reason);
                return;
        }
        if (r == 0)
                return;
        /* RFC 3207: forget what the server said before TLS; ask again under protection. */
        smtp_ehlo_caps_done(&s->caps);
        memset(&s->caps, 0, sizeof s->caps);
        send_hello(s);
}

static void start_tls(struct session *s)
{
        _cleanup_free_ char *reason = NULL;
        if (smtp_tls_start(s, &reason) < 0) {
                setup_failed(s, "4.7.5", reason);
                return;
        }
        s->state = S_TLS_HANDSHAKE;
        set_timer(s, s->a->set.helo_timeout);
        tls_handshake(s);
}

/* ---- replies ---- */

/* The peer is this very instance (it greets with our myhostname): delivering would only loop. Every
 * recipient is deferred, not tried on another address: the next hop itself is misconfigured. */
static bool loops_back(struct session *s, const struct smtp_reply *r)
{
        struct request *rq = s->rq;
        /* An LMTP server is a mail store, not a relay: it may well greet with this host's name. */
        if (s->a->set.lmtp || !smtp_reply_names_myself(r->text, s->a->set.myhostname))
                return false;
        const char *domain = s->ops->rcpt_domain(rq);
        _cleanup_free_ char *reason = smtp_loop_reason(domain, domain);
        msg_fields(LOG_LEVEL_WARNING,
                   &(struct log_fields){.queue_id = rq->queue_id, .catalog_id = CATALOG_LOOPS_BACK},
                   "%s: host %s[%s] %s with my own hostname %s: %s", rq->queue_id, s->host, s->addr,
                   s->state == S_GREETING ? "greeted me" : "replied to EHLO", s->a->set.myhostname, reason);
        transaction_failed(s, "4.4.6", reason);
        return true;
}

/* LMTP after the body: this reply is for the next accepted recipient alone (RFC 2033 section 4.2). */
static void lmtp_rcpt_reply(struct session *s, const struct smtp_reply *r, const char *dsn)
{
        struct request *rq = s->rq;
        int cls = r->code / 100;
        while (s->rcpt_cur < rq->n_rcpts && rq->rcpts[s->rcpt_cur].status != RCPT_ACCEPTED)
                s->rcpt_cur++;
        if (s->rcpt_cur >= rq->n_rcpts) { /* more replies than recipients: nothing left to answer */
                transaction_end(s, false);
                return;
        }
        _cleanup_free_ char *text = smtp_reply_to_string(r);
        _cleanup_free_ char *reason = cls == 2 ? limit_reason(xstrdup(text)) : reply_reason(s, r);
        s->ops->rcpt_final(rq, &rq->rcpts[s->rcpt_cur++], s->relay,
                           cls == 2   ? RCPT_SENT
                           : cls == 5 ? RCPT_BOUNCED
                                      : RCPT_DEFERRED,
                           dsn, reason);
        for (size_t i = s->rcpt_cur; i < rq->n_rcpts; i++)
                if (rq->rcpts[i].status == RCPT_ACCEPTED) {
                        set_timer(s, s->a->set.data_done_timeout);
                        return;
                }
        transaction_end(s, true);
}

static void on_reply(struct session *s, const struct smtp_reply *r)
{
        struct agent *a = s->a;
        struct request *rq = s->rq;
        int cls = r->code / 100;
        char dsn[SMTP_ENHANCED_MAX];
        reply_dsn(r, dsn);

        if (s->state == S_IDLE || s->state == S_QUIT || !rq) {
                /* 421 on an idle connection, or QUIT's answer: done with it either way. */
                if (s->state == S_QUIT || s->state == S_IDLE)
                        session_close(s);
                return;
        }
        switch (s->state) {
        case S_GREETING:
                if (cls == 2 && loops_back(s, r))
                        return;
                if (cls == 2)
                        send_hello(s);
                else {
                        _cleanup_free_ char *reason = reply_reason(s, r);
                        setup_failed(s, dsn, reason);
                }
                return;
        case S_EHLO:
                if (cls == 2 && loops_back(s, r))
                        return;
                if (cls == 2) {
                        smtp_ehlo_caps_done(&s->caps);
                        memset(&s->caps, 0, sizeof s->caps);
                        smtp_ehlo_parse(r, &s->caps);
                        after_ehlo(s);
                } else if (cls == 5 && !s->tls && !a->set.lmtp)
                        send_line(s, S_HELO, a->set.helo_timeout, "HELO %s", a->set.helo_name);
                else {
                        _cleanup_free_ char *reason = reply_reason(s, r);
                        setup_failed(s, dsn, reason);
                }
                return;
        case S_HELO:
                if (cls == 2) {
                        smtp_ehlo_caps_done(&s->caps);
                        memset(&s->caps, 0, sizeof s->caps);
                        after_ehlo(s);
                } else {
                        _cleanup_free_ char *reason = reply_reason(s, r);
                        setup_failed(s, dsn, reason);
                }
                return;
        case S_STARTTLS:
                if (cls == 2) {
                        start_tls(s);
                } else if (smtp_tls_mandatory(s)) {
                        _cleanup_free_ char *reason = reply_reason(s, r);
                        setup_failed(s, "4.7.4", reason);
                } else
                        proceed_auth(s);
                return;
        case S_AUTH_LOGIN_USER:
        case S_AUTH_LOGIN_PASS:
                if (r->code == 334) {
                        const char *v = s->state == S_AUTH_LOGIN_USER ? s->auth_user : s->auth_pass;
                        _cleanup_free_ char *b = smtp_base64(v, strlen(v));
                        send_line(s, s->state == S_AUTH_LOGIN_USER ? S_AUTH_LOGIN_PASS : S_AUTH,
                                  a->set.helo_timeout, "%s", b);
                        explicit_bzero(b, strlen(b));
                        return;
                }
                __attribute__((fallthrough)); /* a final answer */
        case S_AUTH:
                if (cls == 2)
                        start_transaction(s);
                else {
                        _cleanup_free_ char *text = smtp_reply_to_string(r);
                        _cleanup_free_ char *reason =
                                limit_reason(xasprintf("SASL authentication failed; server %s[%s] said: %s",
                                                       s->host, s->addr, text));
                        setup_failed(s, "4.7.0", reason);
                }
                return;
        case S_RSET:
                if (cls == 2)
                        start_transaction(s);
                else {
                        _cleanup_free_ char *reason = reply_reason(s, r);
                        setup_failed(s, dsn, reason);
                }
                return;
        case S_MAIL:
                if (cls == 2) {
                        if (!next_rcpt(s))
                                transaction_end(s, true);
                } else {
                        _cleanup_free_ char *reason = reply_reason(s, r);
                        for (size_t i = 0; i < rq->n_rcpts; i++)
                                if (rq->rcpts[i].status == RCPT_PENDING)
                                        s->ops->rcpt_final(rq, &rq->rcpts[i], s->relay,
                                                           cls == 5 ? RCPT_BOUNCED : RCPT_DEFERRED, dsn,
                                                           reason);
                        transaction_end(s, true);
                }
                return;
        case S_RCPT: {
                struct rcpt *rc = &rq->rcpts[s->rcpt_cur++];
                if (cls == 2) {
                        rc->status = RCPT_ACCEPTED;
                        s->n_accepted++;
                } else {
                        _cleanup_free_ char *reason = reply_reason(s, r);
                        s->ops->rcpt_final(rq, rc, s->relay, cls == 5 ? RCPT_BOUNCED : RCPT_DEFERRED, dsn,
                                           reason);
                }
                if (next_rcpt(s))
                        return;
                if (s->n_accepted == 0) {
                        transaction_end(s, true);
                        return;
                }
                send_line(s, S_DATA, a->set.data_init_timeout, "DATA");
                return;
        }
        case S_DATA:
                if (r->code == 354) {
                        s->rcpt_cur = 0; /* LMTP: the replies after the body go to these in order */
                        s->state = S_DATA_XFER;
                        s->data_off = 0;
                        s->data_bol = true;
                        s->data_end = false;
                        fill_data(s);
                        return;
                }
                __attribute__((fallthrough)); /* DATA refused: the accepted recipients share its answer */
        case S_DATA_DONE: {
                if (s->state == S_DATA_DONE && a->set.lmtp && cls != 3) {
                        lmtp_rcpt_reply(s, r, dsn);
                        return;
                }
                _cleanup_free_ char *text = smtp_reply_to_string(r);
                _cleanup_free_ char *reason = cls == 2 ? limit_reason(xstrdup(text)) : reply_reason(s, r);
                enum rcpt_status st = cls == 2 ? RCPT_SENT : cls == 5 ? RCPT_BOUNCED : RCPT_DEFERRED;
                if (cls == 3) { /* 354 after the body or a 3xx to DATA: the server is confused */
                        st = RCPT_DEFERRED;
                        snprintf(dsn, sizeof dsn, "4.5.0");
                }
                s->ops->accepted_final(rq, s->relay, st, dsn, reason);
                transaction_end(s, cls != 3);
                return;
        }
        case S_DATA_XFER: {
                /* An answer while the body is still being sent: the server gave up on it. */
                _cleanup_free_ char *reason = reply_reason(s, r);
                transaction_failed(s, cls == 5 ? "4.5.0" : dsn, reason);
                return;
        }
        default: break;
        }
}

/* ---- I/O ---- */

static int write_out(struct session *s)
{
        while (s->out_off < s->out.len) {
                size_t n = s->out.len - s->out_off;
                if (s->ssl) {
                        ERR_clear_error();
                        int w = SSL_write(s->ssl, s->out.data + s->out_off,
                                          n > INT32_MAX ? INT32_MAX : (int)n);
                        if (w <= 0) {
                                int e = SSL_get_error(s->ssl, w);
                                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                                        return -EAGAIN;
                                return -EIO;
                        }
                        s->out_off += (size_t)w;
                } else {
                        ssize_t w = send(s->fd, s->out.data + s->out_off, n, MSG_NOSIGNAL);
                        if (w < 0) {
                                if (errno == EAGAIN || errno == EINTR)
                                        return -EAGAIN;
                                return -errno;
                        }
                        s->out_off += (size_t)w;
                }
        }
        buf_truncate(&s->out, 0);
        s->out_off = 0;
        return 0;
}

/* Feed bytes to the reply parser; returns false when the session is gone or must stop reading. */
static bool feed(struct session *s, const char *data, size_t n)
{
        while (n > 0 && !s->dead) {
                struct smtp_reply reply = {0};
                size_t used = 0;
                int r = smtp_reply_parser_feed(&s->parser, data, n, &used, &reply);
                if (r < 0) {
                        connection_lost(s, "malformed reply from");
                        return false;
                }
                data += used;
                n -= used;
                if (r == 0)
                        return true;
                enum sstate before = s->state;
                on_reply(s, &reply);
                smtp_reply_done(&reply);
                if (before == S_STARTTLS && s->state == S_TLS_HANDSHAKE && n > 0) {
                        /* Bytes sent before the handshake must not be read as protected (STARTTLS
                         * injection). */
                        setup_failed(s, "4.7.5", "STARTTLS: the server sent data before the TLS handshake");
                        return false;
                }
                if (s->state == S_TLS_HANDSHAKE)
                        return false;
        }
        return !s->dead;
}

static void read_in(struct session *s)
{
        char chunk[SESSION_READ_CHUNK];
        for (unsigned rounds = 0; rounds < 64 && !s->dead && s->state != S_TLS_HANDSHAKE; rounds++) {
                ssize_t n;
                if (s->ssl) {
                        ERR_clear_error();
                        int k = SSL_read(s->ssl, chunk, sizeof chunk);
                        if (k <= 0) {
                                int e = SSL_get_error(s->ssl, k);
                                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                                        return;
                                connection_lost(s, "lost connection");
                                return;
                        }
                        n = k;
                } else {
                        n = recv(s->fd, chunk, sizeof chunk, 0);
                        if (n < 0) {
                                if (errno == EAGAIN || errno == EINTR)
                                        return;
                                connection_lost(s, "lost connection");
                                return;
                        }
                        if (n == 0) {
                                connection_lost(s, "lost connection");
                                return;
                        }
                }
                if (!feed(s, chunk, (size_t)n))
                        return;
        }
}

static void update_events(struct session *s)
{
        if (s->dead)
                return;
        uint32_t ev = EPOLLIN;
        if (s->state == S_CONNECT || s->out_off < s->out.len ||
            (s->state == S_TLS_HANDSHAKE && s->tls_wants_write) || (s->state == S_DATA_XFER && !s->data_end))
                ev |= EPOLLOUT;
        if (s->state == S_CONNECT)
                ev = EPOLLOUT;
        event_source_set_io_events(s->io, ev);
}

static void connect_failed(struct session *s, int err, bool timeout)
{
        char hint[256] = "";
        if (timeout && s->bind_param)
                snprintf(hint, sizeof hint, " (source address %s comes from %s: check that parameter)",
                         s->bind_addr, s->bind_param);
        _cleanup_free_ char *reason = xasprintf("connect to %s: %s%s", s->relay,
                                                timeout ? "Connection timed out" : strerror(err), hint);
        if (timeout && s->bind_param)
                msg_fields(LOG_LEVEL_WARNING,
                           &(struct log_fields){.queue_id = s->rq ? s->rq->queue_id : NULL,
                                                .catalog_id = CATALOG_BIND_CONNECT_TIMEOUT},
                           "%s", reason);
        setup_failed(s, "4.4.1", reason);
}

/* Write what is queued; while sending the body, encode more as the socket takes it. */
static void flush(struct session *s)
{
        for (unsigned rounds = 0; rounds < 64 && !s->dead; rounds++) {
                if (s->out_off >= s->out.len) {
                        if (s->state != S_DATA_XFER)
                                return;
                        if (s->data_end) {
                                s->state = S_DATA_DONE;
                                set_timer(s, s->a->set.data_done_timeout);
                                return;
                        }
                        fill_data(s);
                }
                int r = write_out(s);
                if (r == -EAGAIN)
                        return;
                if (r < 0) {
                        connection_lost(s, "lost connection");
                        return;
                }
        }
}

static void pump(struct session *s, uint32_t revents)
{
        if (s->state == S_CONNECT) {
                int err = 0;
                socklen_t len = sizeof err;
                if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                        err = errno;
                if (err) {
                        connect_failed(s, err, false);
                        return;
                }
                s->state = S_GREETING;
                set_timer(s, s->a->set.helo_timeout);
                return;
        }
        if (s->state == S_TLS_HANDSHAKE) {
                tls_handshake(s);
                return;
        }
        flush(s);
        if (!s->dead && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                read_in(s);
        /* A command queued by a reply handler goes out now rather than on the next wakeup. */
        if (!s->dead && s->state != S_TLS_HANDSHAKE)
                flush(s);
}

static int on_io(struct event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct session *s = userdata;
        s->in_callback = true;
        pump(s, revents);
        s->in_callback = false;
        if (s->dead)
                session_free(s);
        else
                update_events(s);
        return 0;
}

static int on_timer(struct event_source *src, uint64_t usec, void *userdata)
{
        struct session *s = userdata;
        s->in_callback = true;
        if (s->state == S_CONNECT)
                connect_failed(s, ETIMEDOUT, true);
        else if (s->state == S_IDLE) {
                /* Cached too long: say goodbye, without waiting long for the answer. */
                cache_unlink(s);
                send_line(s, S_QUIT, s->a->set.quit_timeout, "QUIT");
                if (write_out(s) < 0)
                        session_close(s);
        } else if (s->state == S_QUIT)
                session_close(s);
        else {
                _cleanup_free_ char *what = xasprintf("conversation with %s[%s] timed out while %s", s->host,
                                                      s->addr, state_doing(s->state, s->a->set.lmtp));
                if (s->state < S_MAIL || s->state == S_RSET)
                        setup_failed(s, "4.4.2", what);
                else
                        transaction_failed(s, "4.4.2", what);
        }
        s->in_callback = false;
        if (s->dead)
                session_free(s);
        else
                update_events(s);
        return 0;
}

static struct session *session_new(struct agent *a, struct request *rq)
{
        struct session *s = xcalloc(1, sizeof *s);
        s->a = a;
        s->rq = rq;
        s->fd = -1;
        smtp_reply_parser_init(&s->parser);
        return s;
}

static void connect_now(struct session *s);

/* The TLSA records of a dane destination are in: decide its TLS, then connect. */
static void on_tlsa(const struct dns_tlsa *t, void *userdata)
{
        struct session *s = userdata;
        const char *dsn = NULL;
        _cleanup_free_ char *why = NULL;
        if (smtp_tls_plan_dane(s, t, &dsn, &why) < 0) {
                setup_failed(s, dsn, why);
                return;
        }
        connect_now(s);
}

void session_connect(struct agent *a, struct request *rq, const struct session_ops *ops,
                     const struct dns_addr *addr)
{
        struct session *s = session_new(a, rq);
        s->ops = ops;
        int family = addr->sa.ss_family;
        rq->session = s;
        s->dest = *addr;
        if (family == AF_UNIX) {
                /* Postfix's form for a local socket: relay=myhostname[private/dovecot-lmtp]. */
                snprintf(s->host, sizeof s->host, "%s", a->set.myhostname);
                snprintf(s->addr, sizeof s->addr, "%s", addr->host);
                snprintf(s->relay, sizeof s->relay, "%s[%s]", s->host, s->addr);
        } else {
                snprintf(s->host, sizeof s->host, "%s", addr->host);
                const void *ip =
                        family == AF_INET
                                ? (const void *)&((const struct sockaddr_in *)&addr->sa)->sin_addr
                                : (const void *)&((const struct sockaddr_in6 *)&addr->sa)->sin6_addr;
                inet_ntop(family, ip, s->addr, sizeof s->addr);
                s->port = ntohs(family == AF_INET ? ((const struct sockaddr_in *)&addr->sa)->sin_port
                                                  : ((const struct sockaddr_in6 *)&addr->sa)->sin6_port);
                snprintf(s->relay, sizeof s->relay, "%s[%s]:%u", s->host, s->addr, s->port);
        }

        const char *tls_dsn = NULL;
        _cleanup_free_ char *tls_why = NULL;
        int r = smtp_tls_plan(s, &tls_dsn, &tls_why);
        if (r < 0) {
                setup_failed(s, tls_dsn, tls_why);
                return;
        }
        if (r > 0) {
                /* dane: the host's TLSA records decide; the connection waits for them. */
                r = dns_tlsa_async(a->event, s->host, s->port, on_tlsa, s);
                if (r < 0) {
                        _cleanup_free_ char *why =
                                xasprintf("TLSA lookup error for %s:%u: %s", s->host, s->port, strerror(-r));
                        setup_failed(s, "4.7.5", why);
                }
                return;
        }
        connect_now(s);
}

/* Open the connection to s->dest (the TLS plan is made). */
static void connect_now(struct session *s)
{
        struct agent *a = s->a;
        const struct dns_addr *addr = &s->dest;
        int family = addr->sa.ss_family;
        s->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->fd < 0) {
                connect_failed(s, errno, false);
                return;
        }
        if (event_add_io(a->event, &s->io, s->fd, EPOLLOUT, on_io, s) < 0 ||
            event_add_time(a->event, &s->timer, UINT64_MAX, on_timer, s) < 0) {
                connect_failed(s, ENOMEM, false);
                return;
        }
        const char *source = family == AF_INET ? a->set.bind4 : family == AF_INET6 ? a->set.bind6 : "";
        if (source[0]) {
                snprintf(s->bind_addr, sizeof s->bind_addr, "%s", source);
                s->bind_param = family == AF_INET ? a->set.bind4_param : a->set.bind6_param;
                struct sockaddr_storage src = {.ss_family = (sa_family_t)family};
                socklen_t slen;
                int ok;
                if (family == AF_INET) {
                        ok = inet_pton(AF_INET, source, &((struct sockaddr_in *)&src)->sin_addr);
                        slen = sizeof(struct sockaddr_in);
                } else {
                        ok = inet_pton(AF_INET6, source, &((struct sockaddr_in6 *)&src)->sin6_addr);
                        slen = sizeof(struct sockaddr_in6);
                }
                if (ok != 1 || bind(s->fd, (struct sockaddr *)&src, slen) < 0) {
                        int err = ok != 1 ? EINVAL : errno;
                        _cleanup_free_ char *reason =
                                xasprintf("cannot bind to source address %s (from %s): %s", source,
                                          s->bind_param, strerror(err));
                        msg_warn("%s", reason);
                        setup_failed(s, "4.4.1", reason);
                        return;
                }
        }
        set_timer(s, a->set.connect_timeout);
        s->state = S_CONNECT;
        if (connect(s->fd, (const struct sockaddr *)&addr->sa, addr->salen) < 0 && errno != EINPROGRESS) {
                connect_failed(s, errno, false);
                return;
        }
        /* Completion (or failure) shows as EPOLLOUT. */
}

bool session_reuse(struct agent *a, struct request *rq, const struct session_ops *ops, const char *key)
{
        for (struct session *s = a->cache; s; s = s->next) {
                if (!s->key || !streq(s->key, key))
                        continue;
                cache_unlink(s);
                s->rq = rq;
                s->ops = ops;
                s->reused = true;
                rq->session = s;
                send_line(s, S_RSET, a->set.helo_timeout, "RSET");
                s->in_callback = true;
                int r = write_out(s);
                if (r < 0 && r != -EAGAIN)
                        s->dead = true;
                s->in_callback = false;
                if (s->dead) {
                        /* Gone while idle: the caller opens a new connection. */
                        rq->session = NULL;
                        s->rq = NULL;
                        session_free(s);
                        return false;
                }
                update_events(s);
                return true;
        }
        return false;
}

void session_cache_flush(struct agent *a)
{
        while (a->cache) {
                struct session *s = a->cache;
                cache_unlink(s);
                send_line(s, S_QUIT, a->set.quit_timeout, "QUIT");
                (void)write_out(s);
                session_free(s);
        }
}
