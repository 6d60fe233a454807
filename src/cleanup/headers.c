/* headers.c: cleanup's header processing: parse the header block, add Received/Message-ID/Date/From. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "headers.h"

void headers_format_date(time_t t, char buf[static HEADERS_DATE_MAX])
{
        struct tm tm;
        char when[40];
        if (!localtime_r(&t, &tm) || strftime(when, sizeof when, "%a, %e %b %Y %H:%M:%S", &tm) == 0) {
                snprintf(buf, HEADERS_DATE_MAX, "Thu,  1 Jan 1970 00:00:00 +0000 (UTC)");
                return;
        }
        long off = tm.tm_gmtoff / 60;
        char sign = off < 0 ? '-' : '+';
        if (off < 0)
                off = -off;
        char zone[16];
        snprintf(zone, sizeof zone, "%.15s", tm.tm_zone ? tm.tm_zone : "UTC");
        snprintf(buf, HEADERS_DATE_MAX, "%s %c%02ld%02ld (%s)", when, sign, (off / 60) % 100, off % 60,
                 zone);
}

bool headers_is_field(const char *line, size_t len, size_t *ret_name_len)
{
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)line[i];
                if (c == ':') {
                        if (i == 0)
                                return false;
                        if (ret_name_len)
                                *ret_name_len = i;
                        return true;
                }
                /* RFC 5322 field names: printable US-ASCII except ':' */
                if (c < 33 || c > 126)
                        return false;
        }
        return false;
}

/* An envelope value inside a generated header: bounded, and never a line break (header injection). */
static void put_field(struct buf *out, const char *s)
{
        if (!s || !*s)
                s = "unknown";
        for (size_t i = 0; s[i] && i < HEADERS_FIELD_MAX; i++) {
                unsigned char c = (unsigned char)s[i];
                buf_putc(out, (c < 0x20 || c == 0x7f) ? '?' : (char)c);
        }
}

static bool name_is(const char *name, size_t len, const char *want)
{
        return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/*
 * Emit one physical or logical header's text, folding lines longer than limit at a blank when there
 * is one (folding before existing white space changes nothing once unfolded) and hard otherwise.
 */
static void put_folded(struct buf *out, const char *text, size_t len, size_t limit)
{
        size_t p = 0;
        while (p < len) {
                const char *nl = memchr(text + p, '\n', len - p);
                size_t eol = nl ? (size_t)(nl - text) : len;
                while (eol - p > limit) {
                        size_t cut = 0;
                        for (size_t k = p + limit; k > p; k--)
                                if (text[k] == ' ' || text[k] == '\t') {
                                        cut = k;
                                        break;
                                }
                        if (cut > p) {
                                buf_append(out, text + p, cut - p);
                                buf_putc(out, '\n');
                                p = cut; /* the blank starts the continuation line */
                        } else {
                                buf_append(out, text + p, limit);
                                buf_puts(out, "\n\t");
                                p += limit;
                        }
                }
                buf_append(out, text + p, eol - p);
                buf_putc(out, '\n'); /* also ends a last header that had no LF */
                p = nl ? eol + 1 : len;
        }
}

static char *unfold_value(const char *v, size_t len, size_t max)
{
        while (len > 0 && (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')) {
                v++;
                len--;
        }
        while (len > 0 &&
               (v[len - 1] == ' ' || v[len - 1] == '\t' || v[len - 1] == '\r' || v[len - 1] == '\n'))
                len--;
        struct buf b = BUF_INIT;
        for (size_t i = 0; i < len && b.len < max; i++) {
                unsigned char c = (unsigned char)v[i];
                if (c == '\r' || c == '\n')
                        continue;
                buf_putc(&b, (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c);
        }
        return buf_steal(&b);
}

static void put_received(const struct headers_opts *o, struct buf *out, const char *date)
{
        if (o->local) {
                buf_puts(out, "Received: by ");
                put_field(out, o->myhostname);
                buf_puts(out, " (Postfix");
                if (o->uid >= 0)
                        buf_printf(out, ", from userid %lld", o->uid);
                buf_puts(out, ")\n\tid ");
                put_field(out, o->queue_id);
                buf_printf(out, "; %s\n", date);
                return;
        }
        buf_puts(out, "Received: from ");
        put_field(out, !isempty(o->helo_name) ? o->helo_name : o->client_name);
        buf_puts(out, " (");
        put_field(out, o->client_name);
        buf_puts(out, " [");
        put_field(out, o->client_address);
        buf_puts(out, "])\n");
        if (!isempty(o->tls)) {
                buf_puts(out, "\t(using ");
                put_field(out, o->tls);
                buf_puts(out, ")\n");
        }
        if (!isempty(o->auth_sender)) {
                buf_puts(out, "\t(Authenticated sender: ");
                put_field(out, o->auth_sender);
                buf_puts(out, ")\n");
        }
        buf_puts(out, "\tby ");
        put_field(out, o->myhostname);
        buf_puts(out, " (Postfix) with ");
        put_field(out, !isempty(o->protocol) ? o->protocol : "SMTP");
        buf_puts(out, " id ");
        put_field(out, o->queue_id);
        if (o->single_rcpt) {
                buf_puts(out, "\n\tfor <");
                put_field(out, *o->single_rcpt ? o->single_rcpt : "");
                buf_puts(out, ">");
        }
        buf_printf(out, "; %s\n", date);
}

/*
 * With header_checks, the Received: header of mail from the network is checked like the message's own
 * headers: in Postfix smtpd writes it into the content, so rules written for it (IGNORE of internal hops)
 * apply. The one cleanup makes for local submissions is not, as in Postfix.
 */
static void put_received_checked(const struct headers_opts *o, struct buf *out, const char *date)
{
        if (!o->check_header || o->local) {
                put_received(o, out, date);
                return;
        }
        struct buf r = BUF_INIT;
        put_received(o, &r, date);
        if (o->check_header(o->check_userdata, r.data, r.len - 1, out))
                buf_append(out, r.data, r.len);
        buf_done(&r);
}

static bool atext_phrase(const char *s)
{
        for (; *s; s++)
                if (!isalnum((unsigned char)*s) && !strchr(" !#$%&'*+-/=?^_`{|}~", *s) &&
                    !((unsigned char)*s >= 0x80))
                        return false;
        return true;
}

static void put_from(const struct headers_opts *o, struct buf *out)
{
        const char *sender = !isempty(o->sender) ? o->sender : "MAILER-DAEMON";
        buf_puts(out, "From: ");
        if (!isempty(o->sender) && !isempty(o->sender_full_name)) {
                struct buf name = BUF_INIT;
                put_field(&name, o->sender_full_name);
                if (atext_phrase(buf_str(&name)))
                        buf_puts(out, buf_str(&name));
                else {
                        buf_putc(out, '"');
                        for (const char *p = buf_str(&name); *p; p++) {
                                if (*p == '"' || *p == '\\')
                                        buf_putc(out, '\\');
                                buf_putc(out, *p);
                        }
                        buf_putc(out, '"');
                }
                buf_done(&name);
                buf_puts(out, " <");
                put_field(out, sender);
                buf_puts(out, ">\n");
                return;
        }
        put_field(out, sender);
        buf_putc(out, '\n');
}

static bool rewritten_header(const char *name, size_t len)
{
        static const char *const names[] = {"From",      "To",        "Cc",
                                            "Sender",    "Reply-To",  "Resent-From",
                                            "Resent-To", "Resent-Cc", "Resent-Sender"};
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (name_is(name, len, names[i]))
                        return true;
        return false;
}

static size_t line_limit(const struct headers_opts *o)
{
        return o->line_length_limit < HEADERS_LINE_LENGTH_MIN ? HEADERS_LINE_LENGTH_MIN
                                                              : o->line_length_limit;
}

/*
 * The extent of one logical header at pos (its continuation lines included) in content[0..len): true
 * and *ret_end when it is known, false when more input could still extend it.
 */
static bool header_extent(const char *content, size_t len, size_t pos, bool eof, size_t *ret_end)
{
        const char *nl = memchr(content + pos, '\n', len - pos);
        if (!nl && !eof)
                return false;
        size_t end = nl ? (size_t)(nl - content) + 1 : len;
        while (end < len && (content[end] == ' ' || content[end] == '\t')) {
                const char *n2 = memchr(content + end, '\n', len - end);
                if (!n2 && !eof)
                        return false;
                end = n2 ? (size_t)(n2 - content) + 1 : len;
        }
        if (end == len && !eof)
                return false; /* the next line may be a continuation */
        *ret_end = end;
        return true;
}

bool headers_block_end(struct headers_scan *scan, const char *content, size_t len, size_t header_size_limit,
                       bool eof, size_t *ret_end)
{
        /* The same walk as headers_build_header(); every way out of the header block is at a line start. A
         * header accepted once stays accepted as input grows, so the walk resumes where it stopped. */
        size_t pos = scan->pos, hdr_bytes = scan->hdr_bytes;
        bool done = false;
        for (;;) {
                size_t room = header_size_limit - hdr_bytes;
                if (pos == len) {
                        done = eof;
                        break;
                }
                const char *nl = memchr(content + pos, '\n', len - pos);
                if (!nl && !eof) {
                        /* A partial line that already overflows the limit ends the block, header or not. */
                        done = len - pos > room;
                        break;
                }
                size_t eol = nl ? (size_t)(nl - content) : len;
                if (eol == pos || !headers_is_field(content + pos, eol - pos, NULL)) {
                        done = true;
                        break;
                }
                size_t end;
                if (!header_extent(content, len, pos, eof, &end)) {
                        done = len - pos > room; /* too big, whatever follows */
                        break;
                }
                if (end - pos > room) {
                        done = true;
                        break;
                }
                hdr_bytes += end - pos;
                pos = end;
        }
        scan->pos = pos;
        scan->hdr_bytes = hdr_bytes;
        if (done)
                *ret_end = pos;
        return done;
}

void headers_body_init(struct headers_body *b, const struct headers_opts *o)
{
        *b = (struct headers_body){.limit = line_limit(o)};
}

/* Body lines longer than the limit are cut into pieces of limit bytes, across calls. */
void headers_body_put(struct headers_body *b, const char *p, size_t n, struct buf *out)
{
        while (n > 0) {
                if (b->col == b->limit && *p != '\n') {
                        buf_putc(out, '\n');
                        b->col = 0;
                }
                const char *nl = memchr(p, '\n', n);
                size_t line = nl ? (size_t)(nl - p) : n;
                size_t room = b->limit - b->col, take;
                if (line <= room) {
                        take = nl ? line + 1 : line;
                        b->col = nl ? 0 : b->col + line;
                } else {
                        take = room;
                        b->col = b->limit;
                }
                buf_append(out, p, take);
                p += take;
                n -= take;
        }
}

void headers_build(const struct headers_opts *o, const char *content, size_t len, struct buf *out,
                   struct headers_result *ret)
{
        headers_build_header(o, content, len, out, ret);
        struct headers_body b;
        headers_body_init(&b, o);
        headers_body_put(&b, content + ret->body_offset, len - ret->body_offset, out);
}

void headers_build_header(const struct headers_opts *o, const char *content, size_t len, struct buf *out,
                          struct headers_result *ret)
{
        size_t limit = line_limit(o);
        size_t start = out->len, pos = 0, hdr_bytes = 0;
        bool have_msgid = false, have_date = false, have_from = false, need_separator = false;
        char date[HEADERS_DATE_MAX];

        *ret = (struct headers_result){0};
        headers_format_date(o->now, date);
        put_received_checked(o, out, date);

        while (pos < len) {
                const char *nl = memchr(content + pos, '\n', len - pos);
                size_t eol = nl ? (size_t)(nl - content) : len;
                size_t name_len = 0;
                if (eol == pos)
                        break; /* the empty line: the body follows */
                if (!headers_is_field(content + pos, eol - pos, &name_len)) {
                        need_separator = true; /* no empty line before the body: add one */
                        break;
                }
                size_t end = nl ? eol + 1 : len;
                while (end < len && (content[end] == ' ' || content[end] == '\t')) {
                        const char *n2 = memchr(content + end, '\n', len - end);
                        end = n2 ? (size_t)(n2 - content) + 1 : len;
                }
                if (hdr_bytes + (end - pos) > o->header_size_limit) {
                        need_separator = true; /* what does not fit is kept, as body */
                        break;
                }
                hdr_bytes += end - pos;

                const char *name = content + pos;
                const char *value = name + name_len + 1;
                size_t value_len = end - (pos + name_len + 1);
                if (name_is(name, name_len, "Message-ID")) {
                        if (!have_msgid)
                                ret->message_id = unfold_value(value, value_len, HEADERS_MSGID_LOG_MAX);
                        have_msgid = true;
                } else if (name_is(name, name_len, "Date"))
                        have_date = true;
                else if (name_is(name, name_len, "From"))
                        have_from = true;
                else if (name_is(name, name_len, "Received"))
                        ret->n_received++;

                if (o->check_header) {
                        size_t hl = end - pos;
                        if (hl > 0 && content[end - 1] == '\n')
                                hl--;
                        if (!o->check_header(o->check_userdata, content + pos, hl, out)) {
                                pos = end; /* IGNORE, REPLACE: the header goes */
                                continue;
                        }
                }
                _cleanup_free_ char *new_value = NULL;
                if (o->local && o->rewrite && rewritten_header(name, name_len)) {
                        size_t vl = value_len;
                        if (vl > 0 && value[vl - 1] == '\n')
                                vl--;
                        new_value = rewrite_header_value(o->rewrite, value, vl);
                }
                if (new_value) {
                        struct buf h = BUF_INIT;
                        buf_append(&h, name, name_len + 1);
                        buf_puts(&h, new_value);
                        put_folded(out, h.data, h.len, limit);
                        buf_done(&h);
                } else
                        put_folded(out, content + pos, end - pos, limit);
                pos = end;
        }

        if (!have_msgid) {
                struct tm tm;
                char stamp[32] = "19700101000000";
                if (gmtime_r(&o->now, &tm))
                        strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &tm);
                struct buf id = BUF_INIT;
                buf_printf(&id, "<%s.", stamp);
                put_field(&id, o->queue_id);
                buf_putc(&id, '@');
                put_field(&id, o->myhostname);
                buf_putc(&id, '>');
                buf_printf(out, "Message-ID: %s\n", buf_str(&id));
                ret->message_id = buf_steal(&id);
                ret->added_message_id = true;
        }
        if (!have_date)
                buf_printf(out, "Date: %s\n", date);
        if (o->local && !have_from)
                put_from(o, out);
        if (need_separator)
                buf_putc(out, '\n');
        ret->header_len = out->len - start;
        ret->body_offset = pos;
}

void headers_result_done(struct headers_result *r)
{
        free(r->message_id);
        *r = (struct headers_result){0};
}
