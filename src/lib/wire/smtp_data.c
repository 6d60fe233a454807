/* smtp_data.c: DATA stream decoder (unstuffing, end detection, smuggling defence) and encoder. */
#include "smtp_data.h"

#include <string.h>

#include "alloc.h"

void smtp_data_init(struct smtp_data *d, const struct smtp_data_options *opt, smtp_data_line_fn fn,
                    void *userdata)
{
        *d = (struct smtp_data){0};
        if (opt)
                d->opt = *opt;
        else
                d->opt.max_size = SMTP_DATA_SIZE_DEFAULT;
        if (d->opt.max_line == 0)
                d->opt.max_line = SMTP_DATA_LINE_MAX;
        if (d->opt.max_header == 0)
                d->opt.max_header = SMTP_DATA_HEADER_MAX;
        d->line_fn = fn;
        d->userdata = userdata;
        d->line = xmalloc(d->opt.max_line);
        d->crlf_start = true;
        d->in_header = true;
}

void smtp_data_done(struct smtp_data *d)
{
        free(d->line);
        d->line = NULL;
}

const char *smtp_data_error_reply(enum smtp_data_error e)
{
        switch (e) {
        case SMTP_DATA_OK: return NULL;
        case SMTP_DATA_ERR_BARE_LF: return "550 5.5.2 Error: bare <LF> received";
        case SMTP_DATA_ERR_BARE_CR: return "550 5.5.2 Error: bare <CR> received";
        case SMTP_DATA_ERR_TOO_BIG: return "552 5.3.4 Message size exceeds fixed limit";
        }
        return NULL;
}

static void set_error(struct smtp_data *d, enum smtp_data_error e)
{
        /* The first error wins: a smuggling attempt must not be reported as a mere size problem. */
        if (d->error == SMTP_DATA_OK)
                d->error = e;
}

static int emit(struct smtp_data *d, bool partial)
{
        unsigned flags = partial ? SMTP_DATA_LINE_PARTIAL : 0;
        uint64_t bytes = d->line_len + (partial ? 0 : 2);

        d->size += bytes;
        if (d->opt.max_size > 0 && d->size > d->opt.max_size)
                set_error(d, SMTP_DATA_ERR_TOO_BIG);
        if (d->in_header) {
                if (!partial && d->line_total == 0) {
                        d->in_header = false; /* the empty line ends the header section */
                } else {
                        d->header_size += bytes;
                        if (d->header_size > d->opt.max_header) {
                                d->in_header = false;
                                d->header_overflow = true;
                        } else
                                flags |= SMTP_DATA_LINE_HEADER;
                }
        }
        size_t len = d->line_len;
        d->line_len = 0;
        if (d->error != SMTP_DATA_OK || !d->line_fn)
                return 0;
        return d->line_fn(d->line, len, flags, d->userdata);
}

static int put_byte(struct smtp_data *d, char c)
{
        if (d->line_len == d->opt.max_line) {
                int r = emit(d, true);
                if (r < 0)
                        return r;
        }
        d->line[d->line_len++] = c;
        d->line_total++;
        return 0;
}

/* A line ended; crlf tells whether by <CR><LF> (else a normalised bare <LF>). Returns 1 at end of DATA. */
static int end_line(struct smtp_data *d, bool crlf)
{
        int r;
        if (d->dot_removed && d->line_total == 0) {
                if (crlf && d->crlf_start)
                        return 1;
                /* "." alone after a bare line end is content, never the end: keep it as written. */
                r = put_byte(d, '.');
                if (r < 0)
                        return r;
        }
        r = emit(d, false);
        if (r < 0)
                return r;
        d->line_total = 0;
        d->dot_removed = false;
        d->crlf_start = crlf;
        return 0;
}

static int content_byte(struct smtp_data *d, char c)
{
        if (c == '.' && d->line_total == 0 && !d->dot_removed) {
                d->dot_removed = true;
                return 0;
        }
        return put_byte(d, c);
}

int smtp_data_feed(struct smtp_data *d, const char *in, size_t n, size_t *ret_consumed)
{
        size_t i = 0;
        int r;

        if (d->done) {
                *ret_consumed = 0;
                return 1;
        }
        while (i < n) {
                char c = in[i++];
                if (d->pending_cr) {
                        d->pending_cr = false;
                        if (c == '\n') {
                                r = end_line(d, true);
                                if (r < 0)
                                        goto out;
                                if (r > 0) {
                                        d->done = true;
                                        break;
                                }
                                continue;
                        }
                        if (!d->opt.allow_bare_cr)
                                set_error(d, SMTP_DATA_ERR_BARE_CR);
                        r = content_byte(d, '\r');
                        if (r < 0)
                                goto out;
                        /* a bare CR also spoils "." detection for this line: it is content now */
                }
                if (c == '\r') {
                        d->pending_cr = true;
                        continue;
                }
                if (c == '\n') {
                        d->saw_bare_lf = true;
                        if (d->opt.bare_newline == SMTP_BARE_NEWLINE_REJECT)
                                set_error(d, SMTP_DATA_ERR_BARE_LF);
                        r = end_line(d, false);
                        if (r < 0)
                                goto out;
                        continue;
                }
                r = content_byte(d, c);
                if (r < 0)
                        goto out;
                /* Fast path: the rest of an ordinary line goes in one copy (memchr is vectorised; a
                 * byte loop here was the largest user-space cost of smtpd with 100 KiB messages). */
                size_t room = d->opt.max_line - d->line_len, k = n - i < room ? n - i : room;
                const char *lf = memchr(in + i, '\n', k);
                if (lf)
                        k = (size_t)(lf - (in + i));
                const char *cr = memchr(in + i, '\r', k);
                if (cr)
                        k = (size_t)(cr - (in + i));
                memcpy(d->line + d->line_len, in + i, k);
                d->line_len += k;
                d->line_total += k;
                i += k;
        }
        d->received += i;
        *ret_consumed = i;
        return d->done ? 1 : 0;
out:
        d->received += i;
        *ret_consumed = i;
        return r;
}

int smtp_data_line_to_buf(const char *p, size_t len, unsigned flags, void *userdata)
{
        struct buf *b = userdata;
        buf_append(b, p, len);
        if (!(flags & SMTP_DATA_LINE_PARTIAL))
                buf_append(b, "\r\n", 2);
        return 0;
}

void smtp_dot_encode(struct smtp_dot_encoder *e, const char *p, size_t n, struct buf *out)
{
        for (size_t i = 0; i < n; i++) {
                char c = p[i];
                if (e->pending_cr) {
                        e->pending_cr = false;
                        buf_append(out, "\r\n", 2);
                        e->mid_line = false;
                        if (c == '\n')
                                continue;
                }
                if (c == '\r') {
                        e->pending_cr = true;
                        continue;
                }
                if (c == '\n') {
                        buf_append(out, "\r\n", 2);
                        e->mid_line = false;
                        continue;
                }
                if (!e->mid_line && c == '.')
                        buf_putc(out, '.');
                buf_putc(out, c);
                e->mid_line = true;
        }
}

void smtp_dot_encoder_finish(struct smtp_dot_encoder *e, struct buf *out)
{
        if (e->pending_cr || e->mid_line)
                buf_append(out, "\r\n", 2);
        buf_append(out, ".\r\n", 3);
        *e = (struct smtp_dot_encoder){0};
}
