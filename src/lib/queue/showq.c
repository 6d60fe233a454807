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

void showq_format_entry(const struct showq_entry *e, struct buf *out)
{
        char id[128];
        snprintf(id, sizeof id, "%s%s%s", e->queue_id, status_mark(e), e->forced_expire ? "#" : "");
        struct tm tm;
        char when[32] = "";
        time_t t = e->arrival_time;
        if (localtime_r(&t, &tm))
                strftime(when, sizeof when, "%a %b %e %H:%M:%S", &tm);
        buf_printf(out, "%-*s %*" PRIu64 " %-*.*s %s\n", COL_ID, id, COL_SIZE, e->size, COL_TIME, COL_TIME,
                   when, isempty(e->sender) ? "MAILER-DAEMON" : e->sender);
        const char *prev = "";
        for (size_t i = 0; i < e->n_rcpts; i++) {
                const char *why = e->rcpts[i].reason ? e->rcpts[i].reason : "";
                if (!streq(prev, why)) {
                        const char *show = *why ? why : "reason unavailable";
                        int pad = REASON_COL - (int)strlen(show);
                        buf_printf(out, "%*s(%s)\n", pad > 0 ? pad : 0, "", show);
                        prev = why;
                }
                buf_printf(out, "%*s%s\n", COL_ID + 1 + COL_SIZE + 1 + COL_TIME + 1, "",
                           e->rcpts[i].address);
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
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p == '"' || *p == '\\') {
                        buf_putc(out, '\\');
                        buf_putc(out, (char)*p);
                } else if (*p < 0x20 || *p == 0x7f)
                        buf_printf(out, "\\u%04x", *p);
                else
                        buf_putc(out, (char)*p);
        }
        buf_putc(out, '"');
}

void showq_format_json(const struct showq_entry *e, struct buf *out)
{
        buf_puts(out, "{\"queue_name\": ");
        showq_json_string(e->queue_name, out);
        buf_puts(out, ", \"queue_id\": ");
        showq_json_string(e->queue_id, out);
        buf_printf(out,
                   ", \"arrival_time\": %lld, \"message_size\": %" PRIu64
                   ", \"forced_expire\": %s, \"sender\": ",
                   (long long)e->arrival_time, e->size, e->forced_expire ? "true" : "false");
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
