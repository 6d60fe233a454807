/* compose.c: the text of a delivery status notification (RFC 3464 multipart/report), pure over its input. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "bounce.h"
#include "macro.h"

/* Header and report field values are single lines of printable text: anything else becomes '?'. */
static void put_clean(struct buf *out, const char *v)
{
        size_t n = 0;
        for (const unsigned char *p = (const unsigned char *)(v ? v : ""); *p && n < BOUNCE_FIELD_MAX;
             p++, n++)
                buf_putc(out, (*p < 0x20 && *p != '\t') || *p == 0x7f ? '?' : (char)*p);
}

static void put_date(struct buf *out, time_t t)
{
        struct tm tm;
        char s[80];
        localtime_r(&t, &tm);
        if (strftime(s, sizeof s, "%a, %e %b %Y %H:%M:%S %z (%Z)", &tm) == 0)
                snprintf(s, sizeof s, "%lld", (long long)t);
        buf_puts(out, s);
}

char *bounce_remote_mta(const char *relay)
{
        if (isempty(relay) || streq(relay, "local") || streq(relay, "none") || relay[0] == '[')
                return NULL;
        size_t n = strcspn(relay, "[:");
        return n == 0 ? NULL : xstrndup(relay, n);
}

void bounce_diagnostic(const char *relay, const char *reason, struct buf *out)
{
        static const char said[] = " said: ", inreply[] = " (in reply to ";
        const char *r = reason ? reason : "";
        _cleanup_free_ char *mta = bounce_remote_mta(relay);
        const char *s = mta ? strstr(r, said) : NULL;
        if (s && strncmp(r, "host ", 5) == 0) {
                /* The remote server's own words are the diagnostic: "host X said: TEXT (in reply to ...)".
                 */
                const char *text = s + sizeof said - 1;
                const char *end = strstr(text, inreply);
                size_t n = end ? (size_t)(end - text) : strlen(text);
                _cleanup_free_ char *t = xstrndup(text, n);
                buf_puts(out, "smtp; ");
                put_clean(out, t);
                return;
        }
        buf_puts(out, "X-Postfix; ");
        put_clean(out, r);
}

size_t bounce_header_len(const char *content, size_t len, size_t limit)
{
        if (len > limit)
                len = limit;
        const char *p = content, *end = content + len;
        while (p < end) {
                if (*p == '\n')
                        return (size_t)(p - content); /* an empty line: the body starts here */
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                if (!nl)
                        break;
                p = nl + 1;
        }
        return len;
}

/* RFC 3464 "Arrival-Date" and friends, and the rfc822 address type of a report field. */
static void put_addr_field(struct buf *out, const char *name, const char *addr)
{
        buf_printf(out, "%s: rfc822; ", name);
        put_clean(out, addr);
        buf_putc(out, '\n');
}

static void put_orcpt(struct buf *out, const struct dsnlog_rec *r)
{
        /* ORCPT already carries its type ("rfc822;addr"); without it the address as first received. */
        if (!isempty(r->orcpt) && strchr(r->orcpt, ';')) {
                buf_puts(out, "Original-Recipient: ");
                put_clean(out, r->orcpt);
                buf_putc(out, '\n');
        } else if (!isempty(r->orig_rcpt) && strcasecmp(r->orig_rcpt, r->rcpt) != 0)
                put_addr_field(out, "Original-Recipient", r->orig_rcpt);
}

static void put_text_part(const struct bounce_input *in, struct buf *out, bool whole)
{
        const char *name = isempty(in->mail_name) ? "Postfix" : in->mail_name;
        buf_puts(out, "This is the mail system at host ");
        put_clean(out, in->myhostname);
        buf_puts(out, ".\n\n");
        if (in->kind == BOUNCE_FAILED) {
                buf_puts(out, "Your message could not be delivered to one or more of its recipients.\n"
                              "The reason for each recipient is listed below; ");
                buf_puts(out, whole ? "the message itself is attached.\n"
                                    : "the headers of the message are attached.\n");
                buf_puts(out, "\nIf you need help, write to the postmaster of this system and include\n"
                              "this report. You may remove the text of your own message from it.\n");
        } else {
                buf_puts(out, "This is a warning only: your message has not been delivered yet to the\n"
                              "recipients below. The mail system keeps trying");
                if (in->warn_until_usec) {
                        buf_puts(out, " until\n");
                        put_date(out, (time_t)(in->warn_until_usec / 1000000));
                        buf_puts(out, ";\nyou do not need to send the message again.\n");
                } else
                        buf_puts(out, "; you do not need\nto send the message again.\n");
        }
        buf_printf(out, "\n                   The %s mail system\n\n", name);
        size_t shown = in->n_recs < BOUNCE_RCPTS_MAX ? in->n_recs : BOUNCE_RCPTS_MAX;
        for (size_t i = 0; i < shown; i++) {
                const struct dsnlog_rec *r = in->recs[i];
                buf_putc(out, '<');
                put_clean(out, r->rcpt);
                buf_putc(out, '>');
                if (!isempty(r->orig_rcpt) && strcasecmp(r->orig_rcpt, r->rcpt) != 0) {
                        buf_puts(out, " (expanded from <");
                        put_clean(out, r->orig_rcpt);
                        buf_puts(out, ">)");
                }
                buf_puts(out, ": ");
                put_clean(out, isempty(r->reason) ? "delivery failed" : r->reason);
                buf_puts(out, "\n\n");
        }
        if (shown < in->n_recs)
                buf_printf(out, "... and %zu more recipients.\n\n", in->n_recs - shown);
}

static void put_report_part(const struct bounce_input *in, struct buf *out)
{
        buf_puts(out, "Reporting-MTA: dns; ");
        put_clean(out, in->myhostname);
        buf_puts(out, "\nX-Postfix-Queue-ID: ");
        put_clean(out, in->queue_id);
        buf_putc(out, '\n');
        if (!isempty(in->envelope_id)) {
                buf_puts(out, "Original-Envelope-Id: ");
                put_clean(out, in->envelope_id);
                buf_putc(out, '\n');
        }
        put_addr_field(out, "X-Postfix-Sender", in->orig_sender);
        buf_puts(out, "Arrival-Date: ");
        put_date(out, (time_t)(in->arrival_usec / 1000000));
        buf_putc(out, '\n');
        size_t shown = in->n_recs < BOUNCE_RCPTS_MAX ? in->n_recs : BOUNCE_RCPTS_MAX;
        for (size_t i = 0; i < shown; i++) {
                const struct dsnlog_rec *r = in->recs[i];
                buf_putc(out, '\n');
                put_addr_field(out, "Final-Recipient", r->rcpt);
                put_orcpt(out, r);
                buf_printf(out, "Action: %s\n", in->kind == BOUNCE_FAILED ? "failed" : "delayed");
                buf_puts(out, "Status: ");
                put_clean(out, !isempty(r->status)         ? r->status
                               : in->kind == BOUNCE_FAILED ? "5.0.0"
                                                           : "4.0.0");
                buf_putc(out, '\n');
                _cleanup_free_ char *mta = bounce_remote_mta(r->relay);
                if (mta) {
                        buf_puts(out, "Remote-MTA: dns; ");
                        put_clean(out, mta);
                        buf_putc(out, '\n');
                }
                buf_puts(out, "Diagnostic-Code: ");
                bounce_diagnostic(r->relay, isempty(r->reason) ? "delivery failed" : r->reason, out);
                buf_putc(out, '\n');
                if (r->time_usec) {
                        buf_puts(out, "Last-Attempt-Date: ");
                        put_date(out, (time_t)(r->time_usec / 1000000));
                        buf_putc(out, '\n');
                }
                if (in->kind == BOUNCE_DELAYED && in->warn_until_usec) {
                        buf_puts(out, "Will-Retry-Until: ");
                        put_date(out, (time_t)(in->warn_until_usec / 1000000));
                        buf_putc(out, '\n');
                }
        }
}

static bool boundary_free(const struct bounce_input *in, const char *b)
{
        return !in->content || !memmem(in->content, in->content_len, b, strlen(b));
}

int bounce_compose(const struct bounce_input *in, struct buf *out)
{
        if (in->n_recs == 0)
                return -EINVAL;
        /* A boundary that the returned message cannot contain; bounded attempts, then a longer one. */
        char boundary[256];
        unsigned k = 0;
        do
                snprintf(boundary, sizeof boundary, "%s.%lld.%u/%.100s", in->queue_id, (long long)in->now, k,
                         in->myhostname);
        while (!boundary_free(in, boundary) && ++k < BOUNCE_BOUNDARY_TRIES);
        for (char *p = boundary; *p; p++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789./-_", *p))
                        *p = '-';

        bool have = in->content != NULL;
        bool whole = have && in->content_len <= in->size_limit;

        buf_puts(out, "From: ");
        put_clean(out, in->from);
        buf_puts(out, " (Mail Delivery System)\n");
        buf_printf(out, "Subject: %s\n",
                   in->kind == BOUNCE_FAILED ? "Undelivered Mail Returned to Sender"
                                             : "Delayed Mail (still being retried)");
        buf_puts(out, "To: ");
        put_clean(out, in->to);
        buf_puts(out, "\nAuto-Submitted: auto-replied\nMIME-Version: 1.0\n");
        buf_printf(out, "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"%s\"\n",
                   boundary);
        buf_puts(out, "Content-Transfer-Encoding: 8bit\nDate: ");
        put_date(out, in->now);
        buf_puts(out, "\n\nThis is a MIME-encapsulated message.\n\n");

        buf_printf(out,
                   "--%s\nContent-Description: Notification\nContent-Type: text/plain; charset=utf-8\n\n",
                   boundary);
        put_text_part(in, out, whole);

        buf_printf(out, "--%s\nContent-Description: %s\nContent-Type: message/delivery-status\n\n", boundary,
                   in->kind == BOUNCE_FAILED ? "Delivery report" : "Delivery delay report");
        put_report_part(in, out);
        buf_putc(out, '\n');

        if (have) {
                if (whole) {
                        buf_printf(out,
                                   "--%s\nContent-Description: Undelivered Message\nContent-Type: "
                                   "message/rfc822\n"
                                   "Content-Transfer-Encoding: 8bit\n\n",
                                   boundary);
                        buf_append(out, in->content, in->content_len);
                } else {
                        buf_printf(out,
                                   "--%s\nContent-Description: Undelivered Message Headers\n"
                                   "Content-Type: text/rfc822-headers\nContent-Transfer-Encoding: 8bit\n\n",
                                   boundary);
                        buf_append(out, in->content,
                                   bounce_header_len(in->content, in->content_len, in->size_limit));
                }
                if (out->len > 0 && out->data[out->len - 1] != '\n')
                        buf_putc(out, '\n');
                buf_putc(out, '\n');
        }
        buf_printf(out, "--%s--\n", boundary);
        return 0;
}
