/* showq.c: mailq and postqueue -j output, kept byte-compatible with Postfix's so scripts keep working. */
#include "showq.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Widths of the mailq columns: queue ID (with its status mark), size, arrival time. */
#define COL_ID     11
#define COL_SIZE   7
#define COL_TIME   20
#define REASON_COL 76 /* a "(reason)" line is right-aligned to end near this column */

static const char *status_mark(const struct showq_entry *e)
{
        if (streq(e->queue_name, "active"))
                return "*";
        if (streq(e->queue_name, "hold"))
                return "!";
        return "";
}

/* The listing formats 100,000 entries in well under a second: fields are appended by hand, not printf'd. */
static void put_spaces(struct buf *out, size_t n)
{
        static const char spaces[] = "                                                                ";
        while (n > 0) {
                size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
                buf_append(out, spaces, k);
                n -= k;
        }
}

/* s padded with spaces to width on the left (right-aligned) or on the right (left-aligned). */
static void put_aligned(struct buf *out, const char *s, size_t len, size_t width, bool right)
{
        size_t pad = len < width ? width - len : 0;
        if (right)
                put_spaces(out, pad);
        buf_append(out, s, len);
        if (!right)
                put_spaces(out, pad);
}

/* Decimal digits of v at the end of tmp[24]; returns where they start. */
static char *u64_digits(uint64_t v, char tmp[static 24])
{
        char *p = tmp + 24;
        do
                *--p = (char)('0' + v % 10);
        while ((v /= 10) != 0);
        return p;
}

static void put_u64(struct buf *out, uint64_t v, size_t width)
{
        char tmp[24];
        char *p = u64_digits(v, tmp);
        put_aligned(out, p, (size_t)(tmp + 24 - p), width, true);
}

static void put_i64(struct buf *out, int64_t v)
{
        if (v < 0)
                buf_putc(out, '-');
        put_u64(out, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, 0);
}

static void put_2digits(char *p, int v, char lead)
{
        p[0] = v >= 10 ? (char)('0' + v / 10 % 10) : lead;
        p[1] = (char)('0' + v % 10);
}

/* strftime's "%a %b %e %H:%M:%S" in the C locale (the listing's, as Postfix's): 19 characters, or 0 when t
 * has no local time. */
static size_t format_when(time_t t, char out[static 20])
{
        static const char days[] = "SunMonTueWedThuFriSat";
        static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
        struct tm tm;
        if (!localtime_r(&t, &tm) || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 || tm.tm_mon > 11)
                return 0;
        memcpy(out, days + 3 * tm.tm_wday, 3);
        out[3] = ' ';
        memcpy(out + 4, months + 3 * tm.tm_mon, 3);
        out[7] = ' ';
        put_2digits(out + 8, tm.tm_mday, ' ');
        out[10] = ' ';
        put_2digits(out + 11, tm.tm_hour, '0');
        out[13] = ':';
        put_2digits(out + 14, tm.tm_min, '0');
        out[16] = ':';
        put_2digits(out + 17, tm.tm_sec, '0');
        return 19;
}

void showq_format_entry(const struct showq_entry *e, struct buf *out)
{
        size_t start = out->len;
        buf_puts(out, e->queue_id);
        buf_puts(out, status_mark(e));
        if (e->forced_expire)
                buf_putc(out, '#');
        size_t id_len = out->len - start;
        if (id_len < COL_ID)
                put_spaces(out, COL_ID - id_len);
        buf_putc(out, ' ');
        put_u64(out, e->size, COL_SIZE);
        buf_putc(out, ' ');
        char when[20];
        put_aligned(out, when, format_when(e->arrival_time, when), COL_TIME, false);
        buf_putc(out, ' ');
        buf_puts(out, isempty(e->sender) ? "MAILER-DAEMON" : e->sender);
        buf_putc(out, '\n');
        const char *prev = "";
        for (size_t i = 0; i < e->n_rcpts; i++) {
                const char *why = e->rcpts[i].reason ? e->rcpts[i].reason : "";
                if (!streq(prev, why)) {
                        const char *show = *why ? why : "reason unavailable";
                        size_t len = strlen(show);
                        put_spaces(out, len < REASON_COL ? REASON_COL - len : 0);
                        buf_putc(out, '(');
                        buf_append(out, show, len);
                        buf_puts(out, ")\n");
                        prev = why;
                }
                put_spaces(out, COL_ID + 1 + COL_SIZE + 1 + COL_TIME + 1);
                buf_puts(out, e->rcpts[i].address);
                buf_putc(out, '\n');
        }
}

void showq_format_list(const struct showq_entry *e, size_t n, struct buf *out)
{
        uint64_t total = 0;
        for (size_t i = 0; i < n; i++) {
                buf_puts(out, i == 0 ? SHOWQ_HEADING : "\n");
                showq_format_entry(&e[i], out);
                total += e[i].size;
        }
        showq_format_trailer(n, total, out);
}

void showq_format_trailer(size_t n, uint64_t total_size, struct buf *out)
{
        if (n == 0)
                buf_puts(out, "Mail queue is empty\n");
        else
                buf_printf(out, "\n-- %" PRIu64 " Kbytes in %zu Request%s.\n", total_size / 1024, n,
                           n == 1 ? "" : "s");
}

void showq_json_string(const char *s, struct buf *out)
{
        buf_putc(out, '"');
        const unsigned char *p = (const unsigned char *)s;
        for (;;) {
                const unsigned char *run = p;
                while (*p && *p != '"' && *p != '\\' && *p >= 0x20 && *p != 0x7f)
                        p++;
                buf_append(out, run, (size_t)(p - run));
                if (!*p)
                        break;
                if (*p == '"' || *p == '\\') {
                        buf_putc(out, '\\');
                        buf_putc(out, (char)*p);
                } else
                        buf_printf(out, "\\u%04x", *p);
                p++;
        }
        buf_putc(out, '"');
}

void showq_format_json(const struct showq_entry *e, struct buf *out)
{
        buf_puts(out, "{\"queue_name\": ");
        showq_json_string(e->queue_name, out);
        buf_puts(out, ", \"queue_id\": ");
        showq_json_string(e->queue_id, out);
        buf_puts(out, ", \"arrival_time\": ");
        put_i64(out, (int64_t)e->arrival_time);
        buf_puts(out, ", \"message_size\": ");
        put_u64(out, e->size, 0);
        buf_puts(out, e->forced_expire ? ", \"forced_expire\": true, \"sender\": "
                                       : ", \"forced_expire\": false, \"sender\": ");
        showq_json_string(e->sender ? e->sender : "", out);
        buf_puts(out, ", \"recipients\": [");
        for (size_t i = 0; i < e->n_rcpts; i++) {
                buf_puts(out, i ? ", {\"address\": " : "{\"address\": ");
                showq_json_string(e->rcpts[i].address, out);
                if (!isempty(e->rcpts[i].reason)) {
                        buf_puts(out, ", \"delay_reason\": ");
                        showq_json_string(e->rcpts[i].reason, out);
                }
                buf_putc(out, '}');
        }
        buf_puts(out, "]}\n");
}
