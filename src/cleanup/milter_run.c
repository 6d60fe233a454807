/* milter_run.c: one message's conversation with each filter of its list, stage by stage; the replies
 * become one verdict, and the changes asked for at end of message are collected for cleanup to apply. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "milter.h"
#include "milter_proto.h"

/* Progress packets one answer may take before the filter counts as broken (each has its own timeout). */
#define MILTER_PROGRESS_MAX 1000
/* Modification requests one end of message may carry; more is a broken filter. */
#define MILTER_EDITS_MAX 10000

/* What this MTA lets a filter do (not SETSYMLIST: the macro lists are ours). */
#define OFFERED_ACTIONS                                                                      \
        (MILTER_ACT_ADDHDRS | MILTER_ACT_CHGBODY | MILTER_ACT_ADDRCPT | MILTER_ACT_DELRCPT | \
         MILTER_ACT_CHGHDRS | MILTER_ACT_QUARANTINE | MILTER_ACT_CHGFROM | MILTER_ACT_ADDRCPT_PAR)
/* Before version 6 only the first seven protocol bits existed. */
#define OLD_PROTOCOL_MASK 0x7fu

struct filter {
        const struct milter_spec *spec;
        int fd; /* -1 once gone */
        uint32_t version, actions, pflags;
        bool done;      /* accepted the message, or dropped (default_action=accept): no more commands */
        bool skip_body; /* answered SKIP to a body chunk */
        struct buf in;
};

struct milter_run {
        const struct milter_conf *mc;
        struct milter_facts facts;
        struct filter *f;
        size_t n;
        int dir_fd;
        struct milter_verdict v;
        struct milter_edits e;
        size_t n_edits;
        const struct filter *body_owner; /* the filter whose replacement body body_fd holds */
        struct buf hdr;                  /* the header block until its end is seen */
        bool in_body;                    /* headers and EOH were sent */
        struct buf wire;                 /* one packet (or a macro packet and its command) being built */
};

/* How a filter's answer left things. */
enum step { STEP_GO_ON, STEP_STOP };

static bool stopped(const struct milter_run *r)
{
        return r->v.status || r->v.discard;
}

static void set_verdict(struct milter_run *r, int status, const char *dsn, const char *text)
{
        r->v.status = status;
        r->v.code = status == 5 ? 550 : 451;
        snprintf(r->v.dsn, sizeof r->v.dsn, "%s", dsn);
        free(r->v.text);
        /* The text ends up in an SMTP reply line: its first line only, no control characters (a
         * multi-line "550-..." reply or a stray CR must not inject anything into the SMTP stream). */
        r->v.text = xstrndup(text, strcspn(text, "\r\n"));
        for (char *p = r->v.text; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = ' ';
}

static void filter_close(struct filter *f)
{
        if (f->fd >= 0)
                close(f->fd);
        f->fd = -1;
        f->done = true;
}

/* A filter that cannot be talked to: milter_default_action (or its own default_action) decides. */
static enum step filter_failed(struct milter_run *r, struct filter *f, const char *what, int err)
{
        msg_warn("milter %s: %s: %s", f->spec->endpoint, what,
                 err == -ETIMEDOUT ? "Connection timed out" : strerror(-err));
        filter_close(f);
        switch (f->spec->default_action) {
        case MILTER_DEFAULT_ACCEPT: return STEP_GO_ON;
        case MILTER_DEFAULT_QUARANTINE:
                r->v.hold = true;
                if (!r->v.hold_reason)
                        r->v.hold_reason = xasprintf("milter %s unavailable", f->spec->endpoint);
                return STEP_GO_ON;
        case MILTER_DEFAULT_REJECT: set_verdict(r, 5, "5.7.1", "Command rejected"); return STEP_STOP;
        case MILTER_DEFAULT_TEMPFAIL:
        default: set_verdict(r, 4, "4.7.1", "Service unavailable - try again later"); return STEP_STOP;
        }
}

/* "550 5.7.1 text": the status class, the DSN (given or derived) and the text. */
static void replycode_verdict(struct milter_run *r, const char *line)
{
        int code = milter_reply_code(line);
        const char *p = line + 3;
        p += strspn(p, " -");
        char dsn[16];
        size_t dl = strspn(p, "0123456789.");
        if (dl >= 5 && dl < sizeof dsn && (p[0] == '4' || p[0] == '5') && p[0] == line[0]) {
                memcpy(dsn, p, dl);
                dsn[dl] = '\0';
                p += dl;
                p += strspn(p, " ");
        } else
                snprintf(dsn, sizeof dsn, "%c.7.1", line[0]);
        set_verdict(r, code / 100, dsn,
                    *p                ? p
                    : code / 100 == 4 ? "Service unavailable"
                                      : "Command rejected");
        r->v.code = code;
}

/* A final answer to a command (not a modification request). */
static enum step final_answer(struct milter_run *r, struct filter *f, const struct milter_reply *rep,
                              bool body, bool rcpt)
{
        switch (rep->cmd) {
        case MILTER_REPLY_CONTINUE: return STEP_GO_ON;
        case MILTER_REPLY_ACCEPT:
                if (!rcpt) /* at RCPT it accepts that recipient only */
                        f->done = true;
                return STEP_GO_ON;
        case MILTER_REPLY_SKIP:
                if (!body)
                        return filter_failed(r, f, "SKIP outside the body", -EPROTO);
                f->skip_body = true;
                return STEP_GO_ON;
        case MILTER_REPLY_REJECT: set_verdict(r, 5, "5.7.1", "Command rejected"); return STEP_STOP;
        case MILTER_REPLY_TEMPFAIL:
                set_verdict(r, 4, "4.7.1", "Service unavailable - try again later");
                return STEP_STOP;
        case MILTER_REPLY_REPLYCODE: replycode_verdict(r, rep->text); return STEP_STOP;
        case MILTER_REPLY_DISCARD: r->v.discard = true; return STEP_STOP;
        default: return filter_failed(r, f, "unexpected reply", -EPROTO);
        }
}

/* Send what r->wire holds to f, then (unless no_reply) read its answer. */
static enum step exchange(struct milter_run *r, struct filter *f, const char *what, bool no_reply,
                          int timeout_ms, bool body, bool rcpt)
{
        int e = milter_send_all(f->fd, &r->wire, timeout_ms);
        buf_truncate(&r->wire, 0);
        if (e < 0)
                return filter_failed(r, f, what, e);
        if (no_reply)
                return STEP_GO_ON;
        for (unsigned i = 0; i < MILTER_PROGRESS_MAX; i++) {
                size_t len;
                struct milter_reply rep;
                e = milter_read_packet(f->fd, &f->in, timeout_ms, &len);
                if (e == 0)
                        e = milter_parse_reply((const uint8_t *)f->in.data, len, &rep);
                if (e < 0)
                        return filter_failed(r, f, what, e);
                enum step s = STEP_GO_ON;
                bool progress = rep.cmd == MILTER_REPLY_PROGRESS;
                if (!progress)
                        s = final_answer(r, f, &rep, body, rcpt);
                milter_consume(&f->in, len);
                if (!progress)
                        return s;
        }
        return filter_failed(r, f, what, -ETIMEDOUT);
}

/* The macros a stage asks for, as one packet ahead of its command (none when the list is empty). */
static void put_stage_macros(struct milter_run *r, enum milter_stage st, char cmd)
{
        const struct strv *names = &r->mc->macros[st];
        const char **n = xcalloc(names->n + 1, sizeof *n);
        char **v = xcalloc(names->n + 1, sizeof *v);
        size_t k = 0;
        for (size_t i = 0; i < names->n; i++) {
                char *val = milter_macro_value(&r->facts, names->v[i]);
                if (!val)
                        continue;
                n[k] = names->v[i];
                v[k++] = val;
        }
        if (k)
                milter_put_macros(&r->wire, cmd, n, (const char *const *)v, k);
        for (size_t i = 0; i < k; i++)
                free(v[i]);
        free(n);
        free(v);
}

static int negotiate(struct milter_run *r, struct filter *f)
{
        uint32_t actions = OFFERED_ACTIONS, proto = MILTER_P_MTA_KNOWS;
        if (f->spec->version < 6) {
                actions &= 0x3f; /* CHGFROM and ADDRCPT_PAR came with version 6 */
                proto &= OLD_PROTOCOL_MASK;
        }
        milter_put_optneg(&r->wire, f->spec->version, actions, proto);
        int e = milter_send_all(f->fd, &r->wire, f->spec->command_timeout_ms);
        buf_truncate(&r->wire, 0);
        size_t len = 0;
        struct milter_reply rep;
        if (e == 0)
                e = milter_read_packet(f->fd, &f->in, f->spec->command_timeout_ms, &len);
        if (e == 0)
                e = milter_parse_reply((const uint8_t *)f->in.data, len, &rep);
        if (e == 0 && (rep.cmd != MILTER_REPLY_OPTNEG || rep.version < 2 || (rep.protocol & ~proto) != 0))
                e = -EPROTO; /* not an answer to the negotiation, or steps we did not offer */
        if (e < 0)
                return filter_failed(r, f, "negotiation", e) == STEP_STOP ? -1 : 0;
        f->version = rep.version < f->spec->version ? rep.version : f->spec->version;
        f->actions = rep.actions & actions;
        f->pflags = rep.protocol;
        milter_consume(&f->in, len);
        return 0;
}

struct milter_run *milter_run_new(const struct milter_conf *mc, const struct milter_spec *specs, size_t n,
                                  const struct milter_facts *facts, int dir_fd)
{
        struct milter_run *r = xcalloc(1, sizeof *r);
        r->mc = mc;
        r->facts = *facts;
        r->dir_fd = dir_fd;
        r->e.body_fd = -1;
        r->v.stage = "CONNECT";
        r->f = xcalloc(n ? n : 1, sizeof *r->f);
        r->n = n;
        for (size_t i = 0; i < n; i++) {
                struct filter *f = &r->f[i];
                *f = (struct filter){.spec = &specs[i], .fd = -1};
                if (stopped(r)) {
                        f->done = true;
                        continue;
                }
                int e = milter_connect(f->spec, &f->fd);
                if (e < 0) {
                        f->fd = -1; /* logged: "connect to Milter service ..." */
                        (void)filter_failed(r, f, "connect", e);
                        continue;
                }
                (void)negotiate(r, f);
        }
        return r;
}

void milter_run_free(struct milter_run *r)
{
        if (!r)
                return;
        for (size_t i = 0; i < r->n; i++) {
                struct filter *f = &r->f[i];
                if (f->fd >= 0) {
                        milter_put_simple(&r->wire, MILTER_CMD_QUIT);
                        (void)milter_send_all(f->fd, &r->wire, 1000);
                        buf_truncate(&r->wire, 0);
                }
                filter_close(f);
                buf_done(&f->in);
        }
        free(r->f);
        free(r->v.text);
        free(r->v.hold_reason);
        struct milter_edits *e = &r->e;
        for (size_t i = 0; i < e->n_hdrs; i++) {
                free(e->hdrs[i].name);
                free(e->hdrs[i].value);
        }
        free(e->hdrs);
        strv_done(&e->add_rcpts);
        strv_done(&e->del_rcpts);
        free(e->new_sender);
        if (e->body_fd >= 0)
                close(e->body_fd);
        buf_done(&r->hdr);
        buf_done(&r->wire);
        free(r);
}

/* One command to every filter still in the conversation; `no` and `nr` are its "not sent"/"no reply"
 * protocol bits. put builds the command into r->wire. */
typedef void (*put_fn)(struct milter_run *r, const void *arg);

static int stage(struct milter_run *r, enum milter_stage st, char cmd, uint32_t no, uint32_t nr, put_fn put,
                 const void *arg, const char *label, unsigned min_version)
{
        r->v.stage = label;
        for (size_t i = 0; i < r->n && !stopped(r); i++) {
                struct filter *f = &r->f[i];
                if (f->done || (f->pflags & no) || f->version < min_version)
                        continue;
                if (st < _MILTER_STAGE_MAX)
                        put_stage_macros(r, st, cmd);
                put(r, arg);
                int timeout =
                        st >= MILTER_STAGE_DATA ? f->spec->content_timeout_ms : f->spec->command_timeout_ms;
                (void)exchange(r, f, label, (f->pflags & nr) != 0, timeout, false, st == MILTER_STAGE_RCPT);
        }
        return stopped(r) ? -1 : 0;
}

static void put_connect(struct milter_run *r, const void *arg)
{
        const struct milter_facts *fa = &r->facts;
        const char *addr = fa->client_addr;
        char family = !addr               ? MILTER_FAMILY_UNKNOWN
                      : strchr(addr, ':') ? MILTER_FAMILY_INET6
                                          : MILTER_FAMILY_INET;
        long port = fa->client_port ? strtol(fa->client_port, NULL, 10) : 0;
        milter_put_connect(&r->wire, fa->client_name ? fa->client_name : "unknown", family,
                           (uint16_t)(port > 0 && port < 65536 ? port : 0), addr);
}

static void put_helo(struct milter_run *r, const void *arg)
{
        milter_put_helo(&r->wire, arg);
}

struct addr_arg {
        const char *addr;
        const char *const *params;
        size_t n;
};

static void put_mail(struct milter_run *r, const void *arg)
{
        const struct addr_arg *a = arg;
        milter_put_mail(&r->wire, a->addr, a->params, a->n);
}

static void put_rcpt(struct milter_run *r, const void *arg)
{
        const struct addr_arg *a = arg;
        milter_put_rcpt(&r->wire, a->addr, NULL, 0);
}

static void put_simple(struct milter_run *r, const void *arg)
{
        milter_put_simple(&r->wire, *(const char *)arg);
}

int milter_run_envelope(struct milter_run *r, const char *sender, const char *const *params, size_t n_params)
{
        if (stopped(r))
                return -1;
        if (stage(r, MILTER_STAGE_CONNECT, MILTER_CMD_CONNECT, MILTER_P_NOCONNECT, MILTER_P_NR_CONN,
                  put_connect, NULL, "CONNECT", 2) < 0)
                return -1;
        if (r->facts.helo && stage(r, MILTER_STAGE_HELO, MILTER_CMD_HELO, MILTER_P_NOHELO, MILTER_P_NR_HELO,
                                   put_helo, r->facts.helo, "HELO", 2) < 0)
                return -1;
        struct addr_arg a = {sender, params, n_params};
        return stage(r, MILTER_STAGE_MAIL, MILTER_CMD_MAIL, MILTER_P_NOMAIL, MILTER_P_NR_MAIL, put_mail, &a,
                     "MAIL", 2);
}

int milter_run_rcpt(struct milter_run *r, const char *rcpt)
{
        if (stopped(r))
                return -1;
        r->facts.rcpt = rcpt;
        struct addr_arg a = {rcpt, NULL, 0};
        int e = stage(r, MILTER_STAGE_RCPT, MILTER_CMD_RCPT, MILTER_P_NORCPT, MILTER_P_NR_RCPT, put_rcpt, &a,
                      "RCPT", 2);
        r->facts.rcpt = NULL;
        return e;
}

void milter_run_rcpt_check(struct milter_run *r, const char *rcpt, int *status, int *code, char dsn[16],
                           char **text)
{
        *status = 0;
        bool earlier = stopped(r);
        if (!earlier)
                (void)milter_run_rcpt(r, rcpt);
        if (!r->v.status)
                return; /* accepted, or DISCARD: the message is dropped at its end, the RCPT gets 250 */
        *status = r->v.status;
        *code = r->v.code;
        snprintf(dsn, 16, "%s", r->v.dsn);
        *text = xstrdup(r->v.text);
        if (earlier)
                return;
        /* This recipient only: the conversation goes on with the next RCPT. */
        r->v.status = 0;
        r->v.stage = "RCPT";
}

/* A header value as the protocol carries it: folded lines end in CRLF. */
static char *wire_value(const char *p, size_t n, bool leadspc)
{
        if (!leadspc && n && *p == ' ') {
                p++;
                n--;
        }
        struct buf b = BUF_INIT;
        for (size_t i = 0; i < n; i++) {
                if (p[i] == '\n')
                        buf_putc(&b, '\r');
                buf_putc(&b, p[i]);
        }
        return buf_steal(&b);
}

/* One header ("Name: value\n\tmore\n", the last LF left out) to every filter that wants headers. */
static void send_header(struct milter_run *r, const char *h, size_t len)
{
        const char *colon = memchr(h, ':', len);
        if (!colon)
                return; /* cleanup wrote the block: every header has its colon */
        _cleanup_free_ char *name = xstrndup(h, (size_t)(colon - h));
        size_t vlen = len - (size_t)(colon + 1 - h);
        for (size_t i = 0; i < r->n && !stopped(r); i++) {
                struct filter *f = &r->f[i];
                if (f->done || (f->pflags & MILTER_P_NOHDRS))
                        continue;
                _cleanup_free_ char *value = wire_value(colon + 1, vlen, f->pflags & MILTER_P_HDR_LEADSPC);
                milter_put_header(&r->wire, name, value);
                (void)exchange(r, f, "header", f->pflags & MILTER_P_NR_HDR, f->spec->content_timeout_ms,
                               false, false);
        }
}

/* The header block is complete (hdr holds it, without the blank line): DATA, each header, EOH. */
static void send_headers(struct milter_run *r)
{
        char data = MILTER_CMD_DATA, eoh = MILTER_CMD_EOH;
        if (stage(r, MILTER_STAGE_DATA, MILTER_CMD_DATA, MILTER_P_NODATA, MILTER_P_NR_DATA, put_simple,
                  &data, "DATA", 4) < 0)
                return;
        const char *p = r->hdr.data ? r->hdr.data : "";
        const char *end = p + r->hdr.len;
        while (p < end && !stopped(r)) {
                const char *q = p;
                /* a header runs to the LF not followed by a continuation line */
                for (;;) {
                        const char *nl = memchr(q, '\n', (size_t)(end - q));
                        q = nl ? nl + 1 : end;
                        if (q >= end || (*q != ' ' && *q != '\t'))
                                break;
                }
                size_t len = (size_t)(q - p);
                if (len && p[len - 1] == '\n')
                        len--;
                send_header(r, p, len);
                p = q;
        }
        if (!stopped(r))
                stage(r, MILTER_STAGE_EOH, MILTER_CMD_EOH, MILTER_P_NOEOH, MILTER_P_NR_EOH, put_simple, &eoh,
                      "END-OF-HEADERS", 2);
}

/* Body bytes (LF line ends) to every filter that wants the body, as CRLF, in protocol-sized chunks. */
static void send_body(struct milter_run *r, const char *data, size_t len)
{
        struct buf crlf = BUF_INIT;
        for (size_t i = 0; i < len; i++) {
                if (data[i] == '\n')
                        buf_putc(&crlf, '\r');
                buf_putc(&crlf, data[i]);
        }
        for (size_t i = 0; i < r->n && !stopped(r); i++) {
                struct filter *f = &r->f[i];
                for (size_t off = 0; off < crlf.len && !stopped(r); off += MILTER_CHUNK_MAX) {
                        if (f->done || f->skip_body || (f->pflags & MILTER_P_NOBODY))
                                break;
                        size_t n = crlf.len - off < MILTER_CHUNK_MAX ? crlf.len - off : MILTER_CHUNK_MAX;
                        milter_put_body(&r->wire, crlf.data + off, n);
                        (void)exchange(r, f, "body", f->pflags & MILTER_P_NR_BODY,
                                       f->spec->content_timeout_ms, true, false);
                }
        }
        buf_done(&crlf);
}

int milter_run_content(struct milter_run *r, const char *data, size_t len)
{
        if (stopped(r))
                return -1;
        if (r->in_body) {
                send_body(r, data, len);
                return stopped(r) ? -1 : 0;
        }
        size_t old = r->hdr.len;
        buf_append(&r->hdr, data, len);
        /* The end of the header block: an empty first line, or an LF right after an LF. */
        const char *h = r->hdr.data;
        size_t at = 0;
        bool found = r->hdr.len > 0 && h[0] == '\n';
        for (size_t i = old ? old - 1 : 0; !found && i + 1 < r->hdr.len; i++)
                if (h[i] == '\n' && h[i + 1] == '\n') {
                        found = true;
                        at = i + 1;
                }
        if (!found)
                return 0;
        size_t body_at = at + 1;
        _cleanup_free_ char *rest = xstrndup(h + body_at, r->hdr.len - body_at);
        size_t rest_len = r->hdr.len - body_at;
        buf_truncate(&r->hdr, at);
        send_headers(r);
        r->in_body = true;
        buf_done(&r->hdr);
        if (rest_len && !stopped(r))
                send_body(r, rest, rest_len);
        return stopped(r) ? -1 : 0;
}

/* ---- end of message: modification requests, then the final answer ---- */

/* An address from a filter, without its angle brackets. */
static char *bare_address(const char *a)
{
        size_t n = strlen(a);
        if (n >= 2 && a[0] == '<' && a[n - 1] == '>')
                return xstrndup(a + 1, n - 2);
        return xstrdup(a);
}

/* A header value from a filter: CRLF line ends become LF. */
static char *lf_value(const char *v)
{
        struct buf b = BUF_INIT;
        for (; *v; v++)
                if (!(v[0] == '\r' && v[1] == '\n'))
                        buf_putc(&b, *v);
        return buf_steal(&b);
}

/* A piece of the replacement body, CRLF to LF, appended to its temporary file. */
static int body_piece(struct milter_run *r, const uint8_t *p, size_t n)
{
        struct milter_edits *e = &r->e;
        if (e->body_fd < 0) {
                e->body_fd = milter_scratch_open(r->dir_fd);
                if (e->body_fd < 0)
                        return e->body_fd;
        }
        struct buf b = BUF_INIT;
        if (e->body_cr && !(n && p[0] == '\n'))
                buf_putc(&b, '\r'); /* a lone CR held back from the last piece */
        e->body_cr = false;
        for (size_t i = 0; i < n; i++) {
                if (p[i] == '\r' && i + 1 == n) {
                        e->body_cr = true;
                        break;
                }
                if (!(p[i] == '\r' && p[i + 1] == '\n'))
                        buf_putc(&b, (char)p[i]);
        }
        int ret = 0;
        for (size_t off = 0; off < b.len;) {
                ssize_t w = write(e->body_fd, b.data + off, b.len - off);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        ret = w < 0 ? -errno : -EIO;
                        break;
                }
                off += (size_t)w;
        }
        buf_done(&b);
        return ret;
}

static void add_hdr_edit(struct milter_edits *e, const struct milter_reply *rep)
{
        if (e->n_hdrs == e->cap_hdrs) {
                e->cap_hdrs = e->cap_hdrs ? 2 * e->cap_hdrs : 8;
                e->hdrs = xrealloc(e->hdrs, e->cap_hdrs * sizeof *e->hdrs);
        }
        e->hdrs[e->n_hdrs++] = (struct milter_hdr_edit){
                .op = rep->cmd,
                .index = rep->index,
                .name = xstrdup(rep->text),
                .value = lf_value(rep->value),
        };
}

/* One modification request: 0 taken, -EPERM not negotiated, -EPROTO not a modification. */
static int take_edit(struct milter_run *r, struct filter *f, const struct milter_reply *rep)
{
        struct milter_edits *e = &r->e;
        uint32_t need = 0;
        switch (rep->cmd) {
        case MILTER_REPLY_ADDHEADER:
        case MILTER_REPLY_INSHEADER: need = MILTER_ACT_ADDHDRS; break;
        case MILTER_REPLY_CHGHEADER: need = MILTER_ACT_CHGHDRS; break;
        case MILTER_REPLY_ADDRCPT: need = MILTER_ACT_ADDRCPT; break;
        case MILTER_REPLY_ADDRCPT_PAR: need = MILTER_ACT_ADDRCPT_PAR; break;
        case MILTER_REPLY_DELRCPT: need = MILTER_ACT_DELRCPT; break;
        case MILTER_REPLY_CHGFROM: need = MILTER_ACT_CHGFROM; break;
        case MILTER_REPLY_REPLBODY: need = MILTER_ACT_CHGBODY; break;
        case MILTER_REPLY_QUARANTINE: need = MILTER_ACT_QUARANTINE; break;
        default: return -EPROTO;
        }
        if (!(f->actions & need) || ++r->n_edits > MILTER_EDITS_MAX)
                return -EPERM;
        switch (rep->cmd) {
        case MILTER_REPLY_ADDRCPT:
        case MILTER_REPLY_ADDRCPT_PAR: strv_push_take(&e->add_rcpts, bare_address(rep->text)); return 0;
        case MILTER_REPLY_DELRCPT: strv_push_take(&e->del_rcpts, bare_address(rep->text)); return 0;
        case MILTER_REPLY_CHGFROM:
                free(e->new_sender);
                e->new_sender = bare_address(rep->text);
                return 0;
        case MILTER_REPLY_REPLBODY:
                if (r->body_owner != f && e->body_fd >= 0) {
                        /* a later filter's replacement replaces the earlier one's, as in Sendmail */
                        if (ftruncate(e->body_fd, 0) < 0 || lseek(e->body_fd, 0, SEEK_SET) < 0)
                                return -errno;
                        e->body_cr = false;
                }
                r->body_owner = f;
                return body_piece(r, rep->data, rep->len);
        case MILTER_REPLY_QUARANTINE:
                r->v.hold = true;
                free(r->v.hold_reason);
                r->v.hold_reason = xstrdup(rep->text);
                return 0;
        default: add_hdr_edit(e, rep); return 0;
        }
}

/* Read f's answers to end of message: modification requests until the final answer. */
static void end_of_message(struct milter_run *r, struct filter *f)
{
        put_stage_macros(r, MILTER_STAGE_EOM, MILTER_CMD_BODYEOB);
        milter_put_simple(&r->wire, MILTER_CMD_BODYEOB);
        int timeout = f->spec->content_timeout_ms;
        int e = milter_send_all(f->fd, &r->wire, timeout);
        buf_truncate(&r->wire, 0);
        for (unsigned i = 0; e == 0 && i < MILTER_EDITS_MAX + MILTER_PROGRESS_MAX; i++) {
                size_t len;
                struct milter_reply rep;
                e = milter_read_packet(f->fd, &f->in, timeout, &len);
                if (e == 0)
                        e = milter_parse_reply((const uint8_t *)f->in.data, len, &rep);
                if (e < 0)
                        break;
                if (rep.cmd == MILTER_REPLY_PROGRESS) {
                        milter_consume(&f->in, len);
                        continue;
                }
                e = take_edit(r, f, &rep);
                if (e == -EPROTO) {
                        (void)final_answer(r, f, &rep, false, false);
                        milter_consume(&f->in, len);
                        f->done = true; /* one message per conversation here */
                        return;
                }
                milter_consume(&f->in, len);
        }
        (void)filter_failed(r, f, "END-OF-MESSAGE", e < 0 ? e : -EPROTO);
}

int milter_run_end(struct milter_run *r)
{
        if (stopped(r))
                return -1;
        if (!r->in_body) {
                /* a message without a blank line: all of it is headers */
                if (r->hdr.len && r->hdr.data[r->hdr.len - 1] == '\n')
                        buf_truncate(&r->hdr, r->hdr.len - 1);
                send_headers(r);
                r->in_body = true;
        }
        r->v.stage = "END-OF-MESSAGE";
        for (size_t i = 0; i < r->n && !stopped(r); i++)
                if (!r->f[i].done)
                        end_of_message(r, &r->f[i]);
        if (r->e.body_cr && r->e.body_fd >= 0) {
                (void)!write(r->e.body_fd, "\r", 1);
                r->e.body_cr = false;
        }
        return stopped(r) ? -1 : 0;
}

struct milter_verdict *milter_run_verdict(struct milter_run *r)
{
        return &r->v;
}

struct milter_edits *milter_run_edits(struct milter_run *r)
{
        return &r->e;
}

bool milter_edits_any(const struct milter_edits *e)
{
        return e->n_hdrs || e->add_rcpts.n || e->del_rcpts.n || e->new_sender || e->body_fd >= 0;
}
