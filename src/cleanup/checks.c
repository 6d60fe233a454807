/* checks.c: content inspection while the message streams: header_checks, mime_header_checks,
 * nested_header_checks and body_checks with Postfix's actions, and a small MIME boundary tracker. */
#include "checks.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "checks_action.h"
#include "headers.h"
#include "log.h"
#include "maps.h"

enum mime_state {
        MIME_BODY,           /* body text: body_checks */
        MIME_PART_HEADERS,   /* the headers of a multipart part: mime_header_checks */
        MIME_NESTED_HEADERS, /* the headers of an attached message/rfc822: nested_header_checks */
};

static const char *const class_param[] = {
        [CHECKS_CLASS_HEADER] = "header_checks",
        [CHECKS_CLASS_MIME] = "mime_header_checks",
        [CHECKS_CLASS_NESTED] = "nested_header_checks",
        [CHECKS_CLASS_BODY] = "body_checks",
};

void checks_conf_init(struct checks_conf *k, const char *const values[4], uint64_t body_size_limit,
                      bool mime, size_t header_size_limit)
{
        for (size_t i = 0; i < 4; i++)
                table_param_init(&k->tables[i], class_param[i], values[i]);
        k->body_size_limit = body_size_limit;
        k->mime = mime;
        k->header_size_limit = header_size_limit;
}

bool checks_conf_body(const struct checks_conf *k)
{
        return !table_param_empty(&k->tables[CHECKS_CLASS_BODY]) ||
               (k->mime && (!table_param_empty(&k->tables[CHECKS_CLASS_MIME]) ||
                            !table_param_empty(&k->tables[CHECKS_CLASS_NESTED])));
}

bool checks_conf_any(const struct checks_conf *k)
{
        return checks_conf_body(k) || !table_param_empty(&k->tables[CHECKS_CLASS_HEADER]);
}

void checks_msg_init(struct checks_msg *m, struct checks_conf *conf, const char *queue_id, char *log_ctx)
{
        *m = (struct checks_msg){.conf = conf, .queue_id = xstrdup(queue_id), .log_ctx = log_ctx};
        m->boundaries = (struct strv)STRV_INIT;
        m->res.bcc = (struct strv)STRV_INIT;
}

void checks_msg_done(struct checks_msg *m)
{
        free(m->queue_id);
        free(m->log_ctx);
        free(m->res.reason);
        free(m->res.redirect);
        free(m->res.filter);
        strv_done(&m->res.bcc);
        strv_done(&m->boundaries);
        buf_done(&m->held);
        free(m->pending_boundary);
        *m = (struct checks_msg){0};
}

bool checks_stopped(const struct checks_msg *m)
{
        return m->res.status != 0 || m->res.discard;
}

/* "header Subject: text" or "body text", bounded, control characters shown as blanks. */
static void put_subject(struct buf *b, enum checks_class cls, const char *text, size_t len)
{
        buf_puts(b, cls == CHECKS_CLASS_BODY ? "body " : "header ");
        for (size_t i = 0; i < len && i < CHECKS_LOG_TEXT_MAX; i++) {
                unsigned char c = (unsigned char)text[i];
                buf_putc(b, c < 0x20 || c == 0x7f ? ' ' : (char)c);
        }
}

/* Postfix's line: "QID: reject: header Subject: x from host[addr]; from=<> to=<> ...: 5.7.1 text". */
static void log_action(struct checks_msg *m, enum checks_class cls, const char *what, const char *text,
                       size_t len, const char *detail)
{
        struct buf b = BUF_INIT;
        put_subject(&b, cls, text, len);
        struct log_fields lf = {.queue_id = m->queue_id};
        msg_fields(LOG_LEVEL_INFO, &lf, "%s: %s: %s %s%s%s", m->queue_id, what, buf_str(&b), m->log_ctx,
                   detail && *detail ? ": " : "", detail ? detail : "");
        buf_done(&b);
}

static void set_status(struct checks_msg *m, int status, const char *dsn, const char *reason)
{
        if (m->res.status)
                return;
        m->res.status = status;
        snprintf(m->res.dsn, sizeof m->res.dsn, "%s", dsn);
        m->res.reason = xstrdup(reason);
}

/* REJECT [d.d.d] [text]: an enhanced status code of class 5 at the start of the text is used. */
static void do_reject(struct checks_msg *m, enum checks_class cls, const char *line, size_t len,
                      const struct checks_action *a)
{
        _cleanup_free_ char *t = xstrndup(a->text, a->text_len);
        const char *dsn = "5.7.1", *reason = t;
        char code[16];
        size_t cl = strspn(t, "0123456789.");
        if (cl >= 5 && cl < sizeof code && t[0] == '5' && t[1] == '.' && (t[cl] == ' ' || !t[cl])) {
                snprintf(code, sizeof code, "%.*s", (int)cl, t);
                dsn = code;
                reason = t + cl + strspn(t + cl, " ");
        }
        if (!*reason)
                reason = "Message content rejected";
        _cleanup_free_ char *detail = xasprintf("%s %s", dsn, reason);
        log_action(m, cls, "reject", line, len, detail);
        set_status(m, 5, dsn, reason);
}

static void replace_str(char **slot, const char *t, size_t n)
{
        free(*slot);
        *slot = xstrndup(t, n);
}

/* REDIRECT, BCC, FILTER change the envelope: only while the caller has not written it yet. */
static bool envelope_open(struct checks_msg *m, enum checks_class cls, const char *line, size_t len,
                          const struct checks_action *a)
{
        if (!m->res.envelope_written)
                return true;
        _cleanup_free_ char *detail =
                xasprintf("%.*s ignored: the envelope was already written (REDIRECT, BCC and FILTER work in "
                          "header_checks and in the first body_checks_size_limit bytes of the body)",
                          (int)a->text_len, a->text);
        log_action(m, cls, "warning", line, len, detail);
        return false;
}

/* Apply one action. true: the caller writes the line itself; false: dropped or replaced. */
static bool apply(struct checks_msg *m, enum checks_class cls, const char *line, size_t len,
                  const struct checks_action *a, struct buf *out)
{
        _cleanup_free_ char *text = xstrndup(a->text, a->text_len);
        const char *name = checks_action_log_name(a->kind);
        switch (a->kind) {
        case CHECKS_DUNNO:
        case CHECKS_OK: return true;
        case CHECKS_REJECT: do_reject(m, cls, line, len, a); return true;
        case CHECKS_DISCARD:
                log_action(m, cls, name, line, len, text);
                m->res.discard = true;
                return true;
        case CHECKS_HOLD:
                log_action(m, cls, name, line, len, text);
                m->res.hold = true;
                return true;
        case CHECKS_WARN:
        case CHECKS_INFO: log_action(m, cls, name, line, len, text); return true;
        case CHECKS_IGNORE: return false;
        case CHECKS_REDIRECT:
        case CHECKS_BCC:
        case CHECKS_FILTER:
                if (!envelope_open(m, cls, line, len, a))
                        return true;
                log_action(m, cls, name, line, len, text);
                if (a->kind == CHECKS_REDIRECT)
                        replace_str(&m->res.redirect, a->text, a->text_len);
                else if (a->kind == CHECKS_FILTER)
                        replace_str(&m->res.filter, a->text, a->text_len);
                else
                        strv_push(&m->res.bcc, text);
                return true;
        case CHECKS_PREPEND:
        case CHECKS_REPLACE:
                log_action(m, cls, name, line, len, text);
                buf_append(out, a->text, a->text_len);
                buf_putc(out, '\n');
                return a->kind == CHECKS_PREPEND;
        }
        return true;
}

/* Look line up in the class's tables and apply the result. true: the caller writes the line. */
static bool inspect(struct checks_msg *m, enum checks_class cls, const char *line, size_t len,
                    struct buf *out)
{
        struct table_param *t = &m->conf->tables[cls];
        if (checks_stopped(m) || table_param_empty(t))
                return true;
        struct maps *maps;
        _cleanup_free_ char *key = xstrndup(line, len), *value = NULL;
        int r = table_param_get(t, &maps, NULL);
        if (r >= 0)
                r = maps_find(maps, key, &value);
        if (r < 0) {
                msg_warn("%s: %s map lookup problem -- message not accepted, try again later", m->queue_id,
                         class_param[cls]);
                set_status(m, 4, "4.3.0", "Error: temporary lookup failure in content checks");
                return true;
        }
        if (r == 0)
                return true;
        struct checks_action a;
        const char *why = NULL;
        if (checks_action_parse(value, cls != CHECKS_CLASS_BODY, &a, &why) < 0) {
                msg_warn("%s: %s: bad action \"%.100s\": %s; rule ignored", m->queue_id, class_param[cls],
                         value, why);
                return true;
        }
        return apply(m, cls, line, len, &a, out);
}

/* ---- MIME: Content-Type of a header block, boundaries in the body ---- */

static bool ascii_prefix(const char *s, size_t n, const char *want)
{
        size_t wl = strlen(want);
        return n >= wl && strncasecmp(s, want, wl) == 0;
}

/* The boundary parameter of a Content-Type value, or NULL. */
static char *find_boundary(const char *v, size_t n)
{
        for (size_t i = 0; i + 9 <= n; i++) {
                if (strncasecmp(v + i, "boundary=", 9) != 0 || (i > 0 && !strchr("; \t\n", v[i - 1])))
                        continue;
                const char *p = v + i + 9, *end = v + n;
                size_t bl = 0;
                if (p < end && *p == '"') {
                        p++;
                        while (p + bl < end && p[bl] != '"')
                                bl++;
                } else
                        while (p + bl < end && !strchr("; \t\r\n", p[bl]))
                                bl++;
                return bl > 0 && bl <= CHECKS_BOUNDARY_MAX ? xstrndup(p, bl) : NULL;
        }
        return NULL;
}

/* Note what a header block's Content-Type says the body holds. */
static void note_content_type(struct checks_msg *m, const char *hdr, size_t len)
{
        if (!ascii_prefix(hdr, len, "Content-Type:"))
                return;
        const char *v = hdr + 13;
        size_t n = len - 13;
        while (n > 0 && (*v == ' ' || *v == '\t' || *v == '\n')) {
                v++;
                n--;
        }
        free(m->pending_boundary);
        m->pending_boundary = ascii_prefix(v, n, "multipart/") ? find_boundary(v, n) : NULL;
        m->pending_message = ascii_prefix(v, n, "message/rfc822");
}

bool checks_header(struct checks_msg *m, const char *hdr, size_t len, struct buf *out)
{
        if (m->conf->mime)
                note_content_type(m, hdr, len);
        return inspect(m, CHECKS_CLASS_HEADER, hdr, len, out);
}

/* A header block ended: its body is a multipart, an attached message, or plain text. */
static void headers_end(struct checks_msg *m)
{
        m->state = MIME_BODY;
        m->segment_bytes = 0;
        if (m->pending_boundary && m->boundaries.n < CHECKS_MIME_DEPTH_MAX)
                strv_push_take(&m->boundaries, TAKE_PTR(m->pending_boundary));
        else if (m->pending_message)
                m->state = MIME_NESTED_HEADERS;
        free(m->pending_boundary);
        m->pending_boundary = NULL;
        m->pending_message = false;
}

void checks_headers_done(struct checks_msg *m)
{
        if (m->conf->mime)
                headers_end(m);
        else
                m->state = MIME_BODY;
}

static void pop_boundary(struct checks_msg *m)
{
        free(m->boundaries.v[--m->boundaries.n]);
        m->boundaries.v[m->boundaries.n] = NULL;
}

/* Which open boundary line (without LF) is: its index, *close for "--b--"; -1 for none. */
static int boundary_of(const struct checks_msg *m, const char *line, size_t len, bool *close)
{
        if (len < 3 || line[0] != '-' || line[1] != '-')
                return -1;
        while (len > 2 && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
                len--;
        for (size_t i = m->boundaries.n; i-- > 0;) {
                const char *b = m->boundaries.v[i];
                size_t bl = strlen(b);
                if (len == 2 + bl && memcmp(line + 2, b, bl) == 0) {
                        *close = false;
                        return (int)i;
                }
                if (len == 4 + bl && memcmp(line + 2, b, bl) == 0 && line[2 + bl] == '-' &&
                    line[3 + bl] == '-') {
                        *close = true;
                        return (int)i;
                }
        }
        return -1;
}

/* Check the MIME header held so far and write it (or what replaces it). */
static void flush_held(struct checks_msg *m, struct buf *out)
{
        if (m->held.len == 0)
                return;
        const char *h = m->held.data;
        size_t n = m->held.len;
        if (n > 0 && h[n - 1] == '\n')
                n--;
        enum checks_class cls = m->state == MIME_PART_HEADERS ? CHECKS_CLASS_MIME : CHECKS_CLASS_NESTED;
        bool keep = true;
        if (!m->held_overflow) {
                note_content_type(m, h, n);
                keep = inspect(m, cls, h, n, out);
        }
        if (keep)
                buf_append(out, m->held.data, m->held.len);
        buf_truncate(&m->held, 0);
        m->held_overflow = false;
}

/* A line (with its LF) inside a part's or an attached message's header block. */
static void header_line(struct checks_msg *m, const char *line, size_t len, struct buf *out)
{
        size_t tl = len > 0 && line[len - 1] == '\n' ? len - 1 : len;
        if (tl == 0) { /* the empty line ends the block */
                flush_held(m, out);
                buf_append(out, line, len);
                headers_end(m);
                return;
        }
        if ((line[0] == ' ' || line[0] == '\t') && m->held.len > 0) {
                if (m->held.len + len > m->conf->header_size_limit)
                        m->held_overflow = true; /* too big to check: passed on as it is */
                buf_append(&m->held, line, len);
                return;
        }
        flush_held(m, out);
        if (headers_is_field(line, tl, NULL)) {
                buf_append(&m->held, line, len);
                return;
        }
        /* Not a header: the block ended without its empty line; this is body text already. */
        headers_end(m);
        if (m->segment_bytes < m->conf->body_size_limit && !inspect(m, CHECKS_CLASS_BODY, line, tl, out))
                return;
        m->segment_bytes += len;
        buf_append(out, line, len);
}

static void body_line(struct checks_msg *m, const char *line, size_t len, struct buf *out)
{
        size_t tl = len > 0 && line[len - 1] == '\n' ? len - 1 : len;
        bool close = false;
        int b = m->conf->mime ? boundary_of(m, line, tl, &close) : -1;
        if (b >= 0) {
                flush_held(m, out);
                /* Inner multiparts end with their enclosing part. */
                while (m->boundaries.n > (size_t)b + 1)
                        pop_boundary(m);
                if (close) {
                        pop_boundary(m);
                        m->state = MIME_BODY;
                } else
                        m->state = MIME_PART_HEADERS;
                m->segment_bytes = 0;
                free(m->pending_boundary);
                m->pending_boundary = NULL;
                m->pending_message = false;
                buf_append(out, line, len); /* a delimiter is structure, not text to inspect */
                return;
        }
        if (m->state != MIME_BODY) {
                header_line(m, line, len, out);
                return;
        }
        bool keep = true;
        if (m->segment_bytes < m->conf->body_size_limit)
                keep = inspect(m, CHECKS_CLASS_BODY, line, tl, out);
        m->segment_bytes += len;
        if (keep)
                buf_append(out, line, len);
}

void checks_body(struct checks_msg *m, struct buf *raw, struct buf *out, bool eof)
{
        size_t pos = 0;
        while (pos < raw->len) {
                const char *nl = memchr(raw->data + pos, '\n', raw->len - pos);
                if (!nl && !eof)
                        break;
                size_t end = nl ? (size_t)(nl - raw->data) + 1 : raw->len;
                body_line(m, raw->data + pos, end - pos, out);
                pos = end;
        }
        if (eof)
                flush_held(m, out);
        if (pos > 0) {
                memmove(raw->data, raw->data + pos, raw->len - pos);
                buf_truncate(raw, raw->len - pos);
        }
}
