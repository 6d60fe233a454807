/* mailbox_format.c: a delivered copy as a mailbox holds it (mbox or Maildir), written by local and virtual.
 */
#include "mailbox_format.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"

static int flush_buf(int fd, struct buf *b)
{
        int r = b->len ? write_full(fd, b->data, b->len) : 0;
        buf_truncate(b, 0);
        return r;
}

void mailbox_from_line(struct buf *b, const char *sender)
{
        time_t now = time(NULL);
        struct tm tm;
        char date[64];
        localtime_r(&now, &tm);
        strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", &tm);
        buf_printf(b, "From %s %s\n", isempty(sender) ? "MAILER-DAEMON" : sender, date);
}

int mailbox_write_copy(int fd, const char *sender, const char *rcpt, const char *content, size_t len,
                       bool mbox)
{
        struct buf b = BUF_INIT;
        int r = 0;
        if (mbox)
                mailbox_from_line(&b, sender);
        buf_printf(&b, "Return-Path: <%s>\nDelivered-To: %s\n", sender, rcpt);
        for (const char *p = content, *end = content + len; p < end && r >= 0;) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
                if (mbox && n >= 5 && memcmp(p, "From ", 5) == 0)
                        buf_putc(&b, '>');
                buf_append(&b, p, n);
                if (!nl)
                        buf_putc(&b, '\n');
                p += n;
                if (b.len >= MAILBOX_WRITE_CHUNK)
                        r = flush_buf(fd, &b);
        }
        if (r >= 0 && mbox)
                buf_putc(&b, '\n'); /* the empty line that ends a message in an mbox */
        if (r >= 0)
                r = flush_buf(fd, &b);
        buf_free(&b);
        return r;
}

int maildir_deliver_file(int fd, const char *tmp, const char *dst, const char *sender, const char *rcpt,
                         const char *content, size_t len)
{
        int r = mailbox_write_copy(fd, sender, rcpt, content, len, false);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r >= 0)
                r = -errno;
        /* The data first, then its name in new/: only then is the message delivered. */
        if (r >= 0 && rename(tmp, dst) < 0)
                r = -errno;
        if (r >= 0)
                r = fsync_parent_dir(dst);
        if (r < 0)
                unlink(tmp);
        return r;
}
