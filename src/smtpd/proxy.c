/* proxy.c: smtpd_proxy_filter: the SMTP client side of a before-queue filter, non-blocking, on smtpd's loop. */
#include "proxy.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "log.h"
#include "smtp_cmd.h"
#include "smtp_reply.h"
#include "smtpd.h"

/* Read size of one recv from the filter. */
#define PROXY_READ_CHUNK 4096u
/* Written bytes at the head of the output buffer beyond which the rest is moved down. */
#define PROXY_COMPACT_AT (64u * 1024)

enum proxy_state {
        P_CONNECTING,
        P_GREETING,
        P_EHLO,
        P_XFORWARD, /* one reply per XFORWARD line */
        P_COMMAND,  /* MAIL, RCPT, DATA: the reply goes to the client */
        P_IDLE,     /* between commands, or streaming content */
        P_END,      /* the final dot sent */
        P_REPLAY,   /* speed_adjust: the kept content goes out; then the final dot */
        P_BROKEN,
};

struct proxy {
        struct session *owner;
        const struct proxy_ops *ops;
        const struct smtpd_proxy_cfg *cfg;
        int fd;
        struct event_source *io, *timer;
        enum proxy_state state;
        const char *step; /* what the pending reply answers, for logs */
        struct buf out;   /* bytes for the filter not yet written */
        size_t out_off;
        struct smtp_reply_parser parser;
        struct strv xf_attrs; /* "NAME=value" (xtext): what XFORWARD may tell, if the filter asks */
        struct strv xforward; /* XFORWARD lines still to send */
        size_t xforward_next;
        char *mail_cmd;              /* sent after the handshake */
        char *mail_dsn;              /* its DSN parameters, for a filter that announces DSN */
        struct strv exts;            /* the filter's EHLO keywords, upper case */
        bool at_bol;                 /* content: the next byte starts a line (dot-stuffing) */
        bool in_content;             /* between DATA's 354 and the final dot: no QUIT can be sent then */
        bool backlogged;             /* the session was told to stop reading: "drained" follows */
        struct proxy_replay *replay; /* speed_adjust: the transaction to replay, owned here */
        size_t replay_rcpt;          /* its next RCPT to send */
        uint64_t replay_off;         /* its content sent so far */
        unsigned busy;               /* inside one of our event callbacks: proxy_close only marks */
        bool closed;                 /* proxy_close was called while busy: freed when the callback ends */
};

/* speed_adjust: a whole transaction, kept until its final dot. */
struct proxy_replay {
        char *mail_cmd, *mail_dsn;
        struct strv rcpts, rcpt_dsns; /* in step */
        int fd;                       /* memfd: the content as the filter gets it (stuffed, CRLF) */
        uint64_t len;                 /* bytes in fd */
        struct buf pending;           /* not yet written to fd */
        bool at_bol;
        int error; /* a write to fd failed: negative errno */
};

/* ---- the configuration ---- */

static int set_unix(struct smtpd_proxy_cfg *cfg, const char *path, const char *queue_dir)
{
        struct sockaddr_un *un = (struct sockaddr_un *)&cfg->addr;
        _cleanup_free_ char *full = path[0] == '/' ? xstrdup(path) : xasprintf("%s/%s", queue_dir, path);
        if (strlen(full) >= sizeof un->sun_path)
                return -ENAMETOOLONG;
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, full, strlen(full) + 1);
        cfg->addr_len = (socklen_t)sizeof *un;
        return 0;
}

/* host:port, [host]:port, :port or port; the host defaults to the local one, as in Postfix. *why: the
 * resolver's reason (static) when the name or port does not resolve. */
static int set_inet(struct smtpd_proxy_cfg *cfg, const char *v, const char **ret_why)
{
        _cleanup_free_ char *host = NULL;
        const char *port;
        if (v[0] == '[') {
                const char *close = strchr(v, ']');
                if (!close || close[1] != ':')
                        return -EINVAL;
                host = xstrndup(v + 1, (size_t)(close - v - 1));
                port = close + 2;
        } else {
                const char *colon = strrchr(v, ':');
                host = colon ? xstrndup(v, (size_t)(colon - v)) : xstrdup("");
                port = colon ? colon + 1 : v;
        }
        if (isempty(port))
                return -EINVAL;
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
        int r = getaddrinfo(isempty(host) ? "localhost" : host, port, &hints, &res);
        if (r != 0) {
                *ret_why = r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r);
                return -EHOSTUNREACH;
        }
        memcpy(&cfg->addr, res->ai_addr, res->ai_addrlen);
        cfg->addr_len = res->ai_addrlen;
        freeaddrinfo(res);
        return 0;
}

/* smtpd_proxy_options. speed_adjust keeps each message in memory until its final dot, so it needs a bound. */
static void set_options(struct smtpd_proxy_cfg *cfg, struct config *c)
{
        struct strv opts = STRV_INIT;
        strv_split(&opts, config_get(c, "smtpd_proxy_options"), ", \t\r\n");
        for (size_t i = 0; i < opts.n; i++) {
                if (strcasecmp(opts.v[i], "speed_adjust") == 0)
                        cfg->speed_adjust = true;
                else
                        msg_warn("smtpd_proxy_options: unknown option \"%s\" ignored (known: speed_adjust)",
                                 opts.v[i]);
        }
        strv_done(&opts);
        if (cfg->speed_adjust && config_get_int(c, "message_size_limit") <= 0) {
                msg_warn("smtpd_proxy_options = speed_adjust needs a message_size_limit: smtpd keeps each "
                         "message in memory until it is complete; without a limit it connects to the filter "
                         "at MAIL FROM instead");
                cfg->speed_adjust = false;
        }
}

int smtpd_proxy_cfg_new(struct config *c, const char *queue_dir, struct smtpd_proxy_cfg **ret,
                        char **ret_error)
{
        *ret = NULL;
        const char *v = config_get(c, "smtpd_proxy_filter");
        if (isempty(v))
                return 0;
        struct smtpd_proxy_cfg *cfg = xcalloc(1, sizeof *cfg);
        cfg->name = xstrdup(v);
        cfg->ehlo = xstrdup(config_get(c, "smtpd_proxy_ehlo"));
        cfg->timeout_sec = config_get_time(c, "smtpd_proxy_timeout");
        if (cfg->timeout_sec <= 0)
                cfg->timeout_sec = 1;
        int r;
        const char *why = NULL;
        if (strncasecmp(v, "unix:", 5) == 0)
                r = isempty(v + 5) ? -EINVAL : set_unix(cfg, v + 5, queue_dir);
        else
                r = set_inet(cfg, strncasecmp(v, "inet:", 5) == 0 ? v + 5 : v, &why);
        if (r < 0) {
                *ret_error = xasprintf(
                        "smtpd_proxy_filter = %s: %s; write host:port, inet:host:port or unix:path "
                        "(a numeric address or a name the host resolves, a port number or service "
                        "name)",
                        v,
                        why            ? why
                        : r == -EINVAL ? "bad syntax"
                                       : strerror(-r));
                smtpd_proxy_cfg_free(cfg);
                return r;
        }
        set_options(cfg, c);
        *ret = cfg;
        return 0;
}

void smtpd_proxy_cfg_free(struct smtpd_proxy_cfg *cfg)
{
        if (!cfg)
                return;
        free(cfg->name);
        free(cfg->ehlo);
        free(cfg);
}

bool smtpd_proxy_cfg_inet(const struct smtpd_proxy_cfg *cfg)
{
        return cfg && cfg->addr.ss_family != AF_UNIX;
}

/* ---- I/O ---- */

static void update_events(struct proxy *p)
{
        if (p->state == P_BROKEN || p->closed)
                return;
        uint32_t ev = EPOLLIN;
        if (p->state == P_CONNECTING || p->state == P_REPLAY || p->out_off < p->out.len)
                ev |= EPOLLOUT;
        event_source_set_io_events(p->io, ev);
}

/* smtpd_proxy_timeout runs while a reply or unwritten bytes are pending; it restarts with progress. */
static void arm_timer(struct proxy *p)
{
        bool pending = p->state != P_IDLE || p->out_off < p->out.len;
        if (p->state == P_BROKEN || !pending) {
                event_source_set_enabled(p->timer, EVENT_OFF);
                return;
        }
        uint64_t now = event_loop_now(event_source_loop(p->timer));
        event_source_set_time(p->timer, now + (uint64_t)p->cfg->timeout_sec * 1000000ULL);
        event_source_set_enabled(p->timer, EVENT_ONESHOT);
}

/*
 * The filter failed: log why. Inside our own callbacks the pending step is answered with the generic
 * 451 here; when the session called us, the call's return value tells it instead (no re-entry).
 */
static void fail(struct proxy *p, const char *fmt, ...) _printf_(2, 3);
static void fail(struct proxy *p, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        struct buf b = BUF_INIT;
        buf_vprintf(&b, fmt, ap);
        va_end(ap);
        msg_warn("proxy filter %s: %s", p->cfg->name, buf_str(&b));
        buf_done(&b);
        bool waiting = p->state != P_IDLE && p->state != P_BROKEN;
        p->state = P_BROKEN;
        event_source_set_enabled(p->io, EVENT_OFF);
        event_source_set_enabled(p->timer, EVENT_OFF);
        if (waiting && p->busy)
                p->ops->replied(p->owner, PROXY_FAILED_REPLY);
        else if (p->backlogged && p->busy) {
                /* The session stopped reading for us: let it go on, its final dot learns of the failure. */
                p->backlogged = false;
                p->ops->drained(p->owner);
        }
}

static void send_line(struct proxy *p, const char *line)
{
        buf_puts(&p->out, line);
        buf_puts(&p->out, "\r\n");
}

bool proxy_backlogged(const struct proxy *p)
{
        return p && p->state != P_BROKEN && p->out.len - p->out_off > PROXY_BACKLOG_MAX;
}

/* Write what is pending; false when the connection broke (already reported). */
static bool flush(struct proxy *p)
{
        while (p->out_off < p->out.len) {
                ssize_t w = send(p->fd, p->out.data + p->out_off, p->out.len - p->out_off,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0 && errno == EAGAIN)
                        break;
                if (w < 0) {
                        fail(p, "write error while sending %s: %s", p->step, strerror(errno));
                        return false;
                }
                p->out_off += (size_t)w;
                arm_timer(p);
        }
        if (p->out_off == p->out.len) {
                buf_truncate(&p->out, 0);
                p->out_off = 0;
        } else if (p->out_off >= PROXY_COMPACT_AT) {
                /* A filter that always lags a little must not make the buffer hold the whole message. */
                memmove(p->out.data, p->out.data + p->out_off, p->out.len - p->out_off);
                buf_truncate(&p->out, p->out.len - p->out_off);
                p->out_off = 0;
        }
        return true;
}

/* Send the queued bytes now if the connection is up; the rest goes on EPOLLOUT. */
static void kick(struct proxy *p)
{
        if (p->state == P_CONNECTING || p->state == P_BROKEN)
                return;
        if (flush(p)) {
                arm_timer(p);
                update_events(p);
        }
}

static void start_step(struct proxy *p, enum proxy_state st, const char *step, const char *line)
{
        p->state = st;
        p->step = step;
        if (line)
                send_line(p, line);
        kick(p);
}

/* The keywords of an EHLO reply (its lines after the first), upper case. */
static void take_exts(struct proxy *p, const struct smtp_reply *r)
{
        const char *line = r->text ? strchr(r->text, '\n') : NULL;
        while (line) {
                line++;
                char *kw = xstrndup(line, strcspn(line, "\n"));
                for (char *q = kw; *q; q++)
                        *q = (char)toupper((unsigned char)*q);
                strv_push_take(&p->exts, kw);
                line = strchr(line, '\n');
        }
}

bool proxy_has_ext(const struct proxy *p, const char *keyword)
{
        size_t n = strlen(keyword);
        for (size_t i = 0; i < p->exts.n; i++)
                if (strncasecmp(p->exts.v[i], keyword, n) == 0 &&
                    (p->exts.v[i][n] == '\0' || p->exts.v[i][n] == ' '))
                        return true;
        return false;
}

/* Is attr among the words of the filter's "XFORWARD NAME ADDR ..." keyword line? */
static bool xforward_offers(const struct proxy *p, const char *attr, size_t len)
{
        for (size_t i = 0; i < p->exts.n; i++) {
                const char *w = p->exts.v[i];
                if (strncmp(w, "XFORWARD ", 9) != 0)
                        continue;
                for (w += 9; *w;) {
                        size_t wl = strcspn(w, " ");
                        if (wl == len && strncmp(w, attr, len) == 0)
                                return true;
                        w += wl + strspn(w + wl, " ");
                }
        }
        return false;
}

/* What XFORWARD can tell: xtext values, "[UNAVAILABLE]" for what smtpd does not know (as Postfix). */
static void xf_attr(struct proxy *p, const char *attr, const char *value)
{
        _cleanup_free_ char *enc =
                isempty(value) ? xstrdup("[UNAVAILABLE]") : smtp_xtext_encode(value, strlen(value));
        strv_push_take(&p->xf_attrs, xasprintf("%s=%s", attr, enc));
}

static void keep_client(struct proxy *p, const struct proxy_client *cl)
{
        char port[16];
        snprintf(port, sizeof port, "%d", cl->port);
        bool known_addr = strcmp(cl->addr, "unknown") != 0;
        xf_attr(p, "NAME", strcmp(cl->name, "unknown") != 0 ? cl->name : NULL);
        xf_attr(p, "ADDR", known_addr ? cl->addr : NULL);
        xf_attr(p, "PORT", known_addr ? port : NULL);
        xf_attr(p, "PROTO", cl->proto);
        xf_attr(p, "HELO", cl->helo);
        xf_attr(p, "SOURCE", "REMOTE");
}

/* The XFORWARD lines for the attributes the filter announced, each within PROXY_XFORWARD_LINE_MAX. */
static void build_xforward(struct proxy *p)
{
        struct buf line = BUF_INIT;
        for (size_t i = 0; i < p->xf_attrs.n; i++) {
                const char *a = p->xf_attrs.v[i];
                if (!xforward_offers(p, a, strcspn(a, "=")))
                        continue;
                if (line.len > 0 && line.len + 1 + strlen(a) > PROXY_XFORWARD_LINE_MAX) {
                        strv_push(&p->xforward, buf_str(&line));
                        buf_truncate(&line, 0);
                }
                buf_printf(&line, "%s %s", line.len == 0 ? "XFORWARD" : "", a);
        }
        if (line.len > 0)
                strv_push(&p->xforward, buf_str(&line));
        buf_done(&line);
}

/* After the EHLO reply or an XFORWARD's: the next XFORWARD line, or the client's MAIL FROM. */
static void next_handshake_step(struct proxy *p)
{
        if (p->xforward_next < p->xforward.n)
                start_step(p, P_XFORWARD, "XFORWARD", p->xforward.v[p->xforward_next++]);
        else {
                _cleanup_free_ char *mail =
                        xasprintf("%s%s", p->mail_cmd, proxy_has_ext(p, "DSN") ? p->mail_dsn : "");
                start_step(p, P_COMMAND, "MAIL FROM", mail);
        }
}

/* The reply the session waits for (with speed_adjust: a refusal, or the reply to the final dot). */
static void answer(struct proxy *p, const struct smtp_reply *r)
{
        p->state = P_IDLE;
        arm_timer(p);
        _cleanup_free_ char *text = xasprintf("%d %s", r->code, r->text ? r->text : "");
        p->ops->replied(p->owner, text);
}

/* Queue kept content while less than a read chunk's worth waits; the final dot after the last byte. */
static void replay_fill(struct proxy *p)
{
        struct proxy_replay *rp = p->replay;
        while (p->state == P_REPLAY && p->out.len - p->out_off < PROXY_COMPACT_AT) {
                if (p->replay_off >= rp->len) {
                        p->in_content = false;
                        start_step(p, P_END, "END-OF-MESSAGE", ".");
                        return;
                }
                size_t want = PROXY_READ_CHUNK * 4;
                buf_reserve(&p->out, want);
                ssize_t n = pread(rp->fd, p->out.data + p->out.len, want, (off_t)p->replay_off);
                if (n <= 0) {
                        fail(p, "cannot read the kept message: %s", n < 0 ? strerror(errno) : "short file");
                        return;
                }
                p->out.len += (size_t)n;
                p->out.data[p->out.len] = '\0';
                p->replay_off += (uint64_t)n;
        }
}

/* A reply while replaying: the next RCPT, DATA, or the content; any refusal ends the replay. */
static void replay_step(struct proxy *p, const struct smtp_reply *r)
{
        struct proxy_replay *rp = p->replay;
        bool data = strcmp(p->step, "DATA") == 0;
        if (data ? r->code != 354 : r->code / 100 != 2) {
                answer(p, r);
                return;
        }
        if (data) {
                p->state = P_REPLAY;
                p->step = "the message content";
                p->in_content = true;
                replay_fill(p);
                kick(p);
                return;
        }
        if (p->replay_rcpt < rp->rcpts.n) {
                size_t i = p->replay_rcpt++;
                _cleanup_free_ char *cmd =
                        xasprintf("%s%s", rp->rcpts.v[i], proxy_has_ext(p, "DSN") ? rp->rcpt_dsns.v[i] : "");
                start_step(p, P_COMMAND, "RCPT TO", cmd);
                return;
        }
        start_step(p, P_COMMAND, "DATA", "DATA");
}

/* One complete reply from the filter. May end with ops->replied: the caller touches p only if !closed. */
static void on_reply(struct proxy *p, const struct smtp_reply *r)
{
        _cleanup_free_ char *flat = smtp_reply_to_string(r);
        switch (p->state) {
        case P_GREETING: {
                if (r->code / 100 != 2) {
                        fail(p, "rejected the connection: %s", flat);
                        return;
                }
                _cleanup_free_ char *ehlo = xasprintf("EHLO %s", p->cfg->ehlo);
                start_step(p, P_EHLO, "EHLO", ehlo);
                return;
        }
        case P_EHLO:
                if (r->code / 100 != 2) {
                        fail(p, "EHLO refused: %s", flat);
                        return;
                }
                take_exts(p, r);
                build_xforward(p);
                next_handshake_step(p);
                return;
        case P_XFORWARD:
                if (r->code / 100 != 2) {
                        fail(p, "XFORWARD refused: %s", flat);
                        return;
                }
                next_handshake_step(p);
                return;
        case P_COMMAND:
                if (p->replay)
                        replay_step(p, r);
                else
                        answer(p, r);
                return;
        case P_END: answer(p, r); return;
        default: fail(p, "unexpected reply after %s: %s", p->step, flat);
        }
}

/* Read and handle the filter's replies until the socket is drained, the connection fails or closes. */
static void do_read(struct proxy *p)
{
        char chunk[PROXY_READ_CHUNK];
        while (p->state != P_BROKEN && !p->closed) {
                ssize_t n = recv(p->fd, chunk, sizeof chunk, MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n <= 0) {
                        fail(p, "lost connection after %s%s%s", p->step, n < 0 ? ": " : "",
                             n < 0 ? strerror(errno) : "");
                        return;
                }
                arm_timer(p);
                size_t off = 0;
                while (off < (size_t)n && p->state != P_BROKEN && !p->closed) {
                        struct smtp_reply r = {0};
                        size_t used = 0;
                        int k = smtp_reply_parser_feed(&p->parser, chunk + off, (size_t)n - off, &used, &r);
                        off += used;
                        if (k < 0) {
                                fail(p, "malformed reply to %s: %s", p->step, strerror(-k));
                                return;
                        }
                        if (k == 0)
                                break;
                        on_reply(p, &r);
                        smtp_reply_done(&r);
                }
        }
}

static void proxy_free(struct proxy *p)
{
        event_source_disable_unref(p->io);
        event_source_disable_unref(p->timer);
        if (p->fd >= 0)
                close(p->fd);
        buf_done(&p->out);
        smtp_reply_parser_done(&p->parser);
        strv_done(&p->xf_attrs);
        strv_done(&p->xforward);
        strv_done(&p->exts);
        free(p->mail_cmd);
        free(p->mail_dsn);
        proxy_replay_free(p->replay);
        free(p);
}

static void connected(struct proxy *p)
{
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
        if (err != 0) {
                /* Postfix's wording: the warning names the filter and the errno. */
                p->step = "connect";
                msg_warn("connect to proxy filter %s: %s", p->cfg->name, strerror(err));
                p->state = P_BROKEN;
                event_source_set_enabled(p->io, EVENT_OFF);
                event_source_set_enabled(p->timer, EVENT_OFF);
                p->ops->replied(p->owner, PROXY_FAILED_REPLY);
                return;
        }
        p->state = P_GREETING;
        p->step = "the greeting";
        arm_timer(p);
        update_events(p);
}

static int on_io(struct event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct proxy *p = userdata;
        p->busy++;
        if (p->state == P_CONNECTING) {
                if (revents & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                        connected(p);
        } else if (p->state != P_BROKEN) {
                if (revents & (EPOLLIN | EPOLLERR | EPOLLHUP))
                        do_read(p);
                if (!p->closed && p->state != P_BROKEN && flush(p)) {
                        if (p->state == P_REPLAY) {
                                replay_fill(p);
                                if (p->state != P_BROKEN)
                                        flush(p);
                        }
                        if (p->state != P_BROKEN) {
                                arm_timer(p);
                                update_events(p);
                        }
                }
                if (!p->closed && p->backlogged && !proxy_backlogged(p)) {
                        p->backlogged = false;
                        p->ops->drained(p->owner);
                }
        }
        if (--p->busy == 0 && p->closed)
                proxy_free(p);
        return 0;
}

static int on_timeout(struct event_source *src, uint64_t usec, void *userdata)
{
        struct proxy *p = userdata;
        p->busy++;
        if (p->state == P_CONNECTING) {
                p->state = P_GREETING; /* so that fail() answers the pending MAIL FROM */
                fail(p, "connect: timed out (smtpd_proxy_timeout = %llds)", p->cfg->timeout_sec);
        } else if (p->state == P_IDLE || p->state == P_REPLAY)
                fail(p, "timeout sending the message content (smtpd_proxy_timeout = %llds)",
                     p->cfg->timeout_sec);
        else
                fail(p, "timeout waiting for the reply to %s (smtpd_proxy_timeout = %llds)", p->step,
                     p->cfg->timeout_sec);
        if (--p->busy == 0 && p->closed)
                proxy_free(p);
        return 0;
}

int proxy_open(struct event_loop *e, const struct smtpd_proxy_cfg *cfg, const struct proxy_client *cl,
               const char *mail_cmd, const char *mail_dsn, const struct proxy_ops *ops,
               struct session *owner, struct proxy **ret)
{
        int fd = socket(cfg->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                msg_warn("connect to proxy filter %s: %s", cfg->name, strerror(errno));
                return -errno;
        }
        if (connect(fd, (const struct sockaddr *)&cfg->addr, cfg->addr_len) < 0 && errno != EINPROGRESS) {
                int r = -errno;
                msg_warn("connect to proxy filter %s: %s", cfg->name, strerror(errno));
                close(fd);
                return r;
        }
        struct proxy *p = xcalloc(1, sizeof *p);
        p->owner = owner;
        p->ops = ops;
        p->cfg = cfg;
        p->fd = fd;
        p->state = P_CONNECTING;
        p->step = "connect";
        p->at_bol = true;
        p->mail_cmd = xstrdup(mail_cmd);
        p->mail_dsn = xstrdup(mail_dsn);
        p->xf_attrs = (struct strv)STRV_INIT;
        p->xforward = (struct strv)STRV_INIT;
        p->exts = (struct strv)STRV_INIT;
        smtp_reply_parser_init(&p->parser);
        keep_client(p, cl);
        int r = event_add_io(e, &p->io, fd, EPOLLIN | EPOLLOUT, on_io, p);
        if (r >= 0)
                r = event_add_time(e, &p->timer, 0, on_timeout, p);
        if (r < 0) {
                msg_warn("proxy filter %s: cannot watch the connection: %s", cfg->name, strerror(-r));
                proxy_free(p);
                return r;
        }
        arm_timer(p);
        *ret = p;
        return 0;
}

int proxy_command(struct proxy *p, const char *cmd)
{
        if (p->state != P_IDLE)
                return -EPIPE;
        start_step(p, P_COMMAND, strncasecmp(cmd, "RCPT", 4) == 0 ? "RCPT TO" : "DATA", cmd);
        return p->state == P_BROKEN ? -EPIPE : 0;
}

/* A Received: field's text: no line breaks or control characters from the client reach the filter. */
static void put_field(struct buf *b, const char *v)
{
        for (const unsigned char *q = (const unsigned char *)v; *q; q++)
                buf_putc(b, *q < 0x20 || *q == 0x7f ? '?' : (char)*q);
}

static void rfc2822_date(char *out, size_t size)
{
        time_t t = time(NULL);
        struct tm tm;
        char when[40];
        if (!localtime_r(&t, &tm) || strftime(when, sizeof when, "%a, %e %b %Y %H:%M:%S %z", &tm) == 0) {
                snprintf(out, size, "Thu,  1 Jan 1970 00:00:00 +0000 (UTC)");
                return;
        }
        snprintf(out, size, "%s (%s)", when, tm.tm_zone ? tm.tm_zone : "UTC");
}

/* Content as the filter gets it: RFC 5321 4.5.2 dot-stuffing, CRLF line ends. */
static void stuff(struct buf *out, bool *at_bol, const char *line, size_t len, bool partial)
{
        if (*at_bol && len > 0 && line[0] == '.')
                buf_putc(out, '.');
        buf_append(out, line, len);
        if (!partial)
                buf_puts(out, "\r\n");
        *at_bol = !partial;
}

/* The Received: header smtpd writes, its lines separated by "\n" (no final one). */
static void received_text(const struct proxy_client *cl, const char *single_rcpt, struct buf *out)
{
        struct buf b = BUF_INIT;
        buf_puts(&b, "Received: from ");
        put_field(&b, !isempty(cl->helo) ? cl->helo : cl->name);
        buf_puts(&b, " (");
        put_field(&b, cl->name);
        buf_puts(&b, " [");
        put_field(&b, cl->addr);
        buf_puts(&b, "])\n");
        if (cl->tls) {
                buf_puts(&b, "\t(using ");
                put_field(&b, cl->tls);
                buf_puts(&b, ")\n");
        }
        if (cl->auth_sender) {
                buf_puts(&b, "\t(Authenticated sender: ");
                put_field(&b, cl->auth_sender);
                buf_puts(&b, ")\n");
        }
        buf_puts(&b, "\tby ");
        put_field(&b, cl->myhostname);
        buf_puts(&b, " (Postfix) with ");
        put_field(&b, cl->proto);
        if (single_rcpt) {
                buf_puts(&b, "\n\tfor <");
                put_field(&b, single_rcpt);
                buf_puts(&b, ">");
        }
        char date[96];
        rfc2822_date(date, sizeof date);
        buf_printf(&b, "; %s", date);
        buf_append(out, b.data, b.len);
        buf_done(&b);
}

void proxy_received_header(struct proxy *p, const struct proxy_client *cl, const char *single_rcpt)
{
        struct buf b = BUF_INIT;
        received_text(cl, single_rcpt, &b);
        /* One line at a time: the content path turns "\n" into CRLF. */
        for (const char *line = buf_str(&b); *line;) {
                size_t len = strcspn(line, "\n");
                proxy_content(p, line, len, false);
                line += len + (line[len] == '\n');
        }
        buf_done(&b);
}

void proxy_content(struct proxy *p, const char *line, size_t len, bool partial)
{
        if (p->state == P_BROKEN)
                return;
        p->in_content = true;
        stuff(&p->out, &p->at_bol, line, len, partial);
        if (proxy_backlogged(p))
                p->backlogged = true;
        /* Write in large pieces: the event loop sends the rest. */
        if (p->out.len - p->out_off >= PROXY_READ_CHUNK * 4)
                kick(p);
        else
                update_events(p);
}

int proxy_end(struct proxy *p)
{
        if (p->state != P_IDLE)
                return -EPIPE;
        if (!p->at_bol)
                buf_puts(&p->out, "\r\n");
        p->in_content = false;
        start_step(p, P_END, "END-OF-MESSAGE", ".");
        return p->state == P_BROKEN ? -EPIPE : 0;
}

void proxy_close(struct proxy *p)
{
        if (!p || p->closed)
                return;
        /* One transaction per connection, as Postfix: QUIT without waiting for its answer. Never inside
         * the content: the filter would take it for a line of the message, and closing without the
         * final dot is what drops the message there. */
        if (p->state == P_IDLE && !p->in_content && p->out_off == p->out.len)
                (void)send(p->fd, "QUIT\r\n", 6, MSG_NOSIGNAL | MSG_DONTWAIT);
        p->state = P_BROKEN;
        event_source_set_enabled(p->io, EVENT_OFF);
        event_source_set_enabled(p->timer, EVENT_OFF);
        if (p->busy)
                p->closed = true;
        else
                proxy_free(p);
}

const char *proxy_filter_name(const struct proxy *p)
{
        return p->cfg->name;
}

/* ---- speed_adjust: the transaction kept until its final dot ---- */

int proxy_replay_new(const char *mail_cmd, const char *mail_dsn, struct proxy_replay **ret)
{
        /* Memory, not a file in the queue: smtpd may create no files (docs/PRIVILEGES.md); the size is
         * bounded by message_size_limit (smtpd_proxy_cfg_new insists on one). */
        int fd = memfd_create("postd-smtpd-proxy", MFD_CLOEXEC);
        if (fd < 0) {
                int r = -errno;
                msg_warn("smtpd_proxy_options = speed_adjust: cannot keep a message: memfd_create: %s",
                         strerror(errno));
                return r;
        }
        struct proxy_replay *r = xcalloc(1, sizeof *r);
        r->mail_cmd = xstrdup(mail_cmd);
        r->mail_dsn = xstrdup(mail_dsn);
        r->rcpts = (struct strv)STRV_INIT;
        r->rcpt_dsns = (struct strv)STRV_INIT;
        r->fd = fd;
        r->at_bol = true;
        *ret = r;
        return 0;
}

void proxy_replay_free(struct proxy_replay *r)
{
        if (!r)
                return;
        free(r->mail_cmd);
        free(r->mail_dsn);
        strv_done(&r->rcpts);
        strv_done(&r->rcpt_dsns);
        if (r->fd >= 0)
                close(r->fd);
        buf_done(&r->pending);
        free(r);
}

void proxy_replay_rcpt(struct proxy_replay *r, const char *cmd, const char *dsn)
{
        strv_push(&r->rcpts, cmd);
        strv_push(&r->rcpt_dsns, dsn);
}

/* Move what waits in memory into the memory file. */
static void replay_write(struct proxy_replay *r)
{
        size_t off = 0;
        while (r->error == 0 && off < r->pending.len) {
                ssize_t w = write(r->fd, r->pending.data + off, r->pending.len - off);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        r->error = w < 0 ? -errno : -EIO;
                        msg_warn("smtpd_proxy_options = speed_adjust: cannot keep the message: %s",
                                 strerror(-r->error));
                        break;
                }
                off += (size_t)w;
                r->len += (uint64_t)w;
        }
        buf_truncate(&r->pending, 0);
}

void proxy_replay_content(struct proxy_replay *r, const char *line, size_t len, bool partial)
{
        stuff(&r->pending, &r->at_bol, line, len, partial);
        if (r->pending.len >= PROXY_COMPACT_AT)
                replay_write(r);
}

void proxy_replay_received_header(struct proxy_replay *r, const struct proxy_client *cl,
                                  const char *single_rcpt)
{
        struct buf b = BUF_INIT;
        received_text(cl, single_rcpt, &b);
        for (const char *line = buf_str(&b); *line;) {
                size_t len = strcspn(line, "\n");
                proxy_replay_content(r, line, len, false);
                line += len + (line[len] == '\n');
        }
        buf_done(&b);
}

int proxy_open_replay(struct event_loop *e, const struct smtpd_proxy_cfg *cfg, const struct proxy_client *cl,
                      struct proxy_replay *r, const struct proxy_ops *ops, struct session *owner,
                      struct proxy **ret)
{
        if (!r->at_bol)
                stuff(&r->pending, &r->at_bol, "", 0, false);
        replay_write(r);
        int k = r->error;
        if (k == 0)
                k = proxy_open(e, cfg, cl, r->mail_cmd, r->mail_dsn, ops, owner, ret);
        if (k < 0) {
                proxy_replay_free(r);
                return k;
        }
        (*ret)->replay = r;
        return 0;
}
