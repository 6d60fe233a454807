/* mailbox_format.c: a delivered copy as a mailbox holds it (mbox or Maildir), written by local and virtual.
 */
#include "mailbox_format.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "fileio.h"
#include "macro.h"

void mailbox_from_line(struct buf *b, const char *sender, time_t when)
{
        struct tm tm;
        char date[64];
        localtime_r(&when, &tm);
        strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", &tm);
        buf_printf(b, "From %s %s\n", isempty(sender) ? "MAILER-DAEMON" : sender, date);
}

/* Where the rendered copy goes, a piece at a time: 0 to go on, 1 to stop early, or a negative errno. */
typedef int (*copy_sink)(void *userdata, const char *data, size_t len);

static int flush_buf(struct buf *b, copy_sink sink, void *userdata)
{
        int r = b->len ? sink(userdata, b->data, b->len) : 0;
        buf_truncate(b, 0);
        return r;
}

/* The copy, in pieces of about MAILBOX_WRITE_CHUNK bytes: the message is never held twice. */
static int render_copy(const struct mailbox_copy *c, copy_sink sink, void *userdata)
{
        struct buf b = BUF_INIT;
        int r = 0;
        if (c->mbox)
                mailbox_from_line(&b, c->sender, c->when);
        buf_printf(&b, "Return-Path: <%s>\nDelivered-To: %s\n", c->sender, c->rcpt);
        for (const char *p = c->content, *end = c->content + c->len; p < end && r == 0;) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
                if (c->mbox && n >= 5 && memcmp(p, "From ", 5) == 0)
                        buf_putc(&b, '>');
                buf_append(&b, p, n);
                if (!nl)
                        buf_putc(&b, '\n');
                p += n;
                if (b.len >= MAILBOX_WRITE_CHUNK)
                        r = flush_buf(&b, sink, userdata);
        }
        if (r == 0 && c->mbox)
                buf_putc(&b, '\n'); /* the empty line that ends a message in an mbox */
        if (r == 0)
                r = flush_buf(&b, sink, userdata);
        buf_done(&b);
        return r < 0 ? r : 0;
}

static int write_sink(void *userdata, const char *data, size_t len)
{
        return write_full(*(int *)userdata, data, len);
}

int mailbox_write_copy(int fd, const struct mailbox_copy *c)
{
        return render_copy(c, write_sink, &fd);
}

struct compare {
        int fd;
        off_t at;   /* where the next piece should be in the file */
        int result; /* MAILBOX_COPY_* so far */
        char chunk[MAILBOX_WRITE_CHUNK];
};

static int compare_sink(void *userdata, const char *data, size_t len)
{
        struct compare *c = userdata;
        for (size_t done = 0; done < len;) {
                size_t want = len - done < sizeof c->chunk ? len - done : sizeof c->chunk;
                ssize_t n = pread(c->fd, c->chunk, want, c->at);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (memcmp(c->chunk, data + done, (size_t)n) != 0) {
                        c->result = MAILBOX_COPY_ABSENT;
                        return 1;
                }
                done += (size_t)n;
                c->at += n;
                if ((size_t)n < want) {
                        c->result = MAILBOX_COPY_TORN; /* the file ends inside the copy */
                        return 1;
                }
        }
        return 0;
}

int mailbox_copy_present(int fd, off_t at, const struct mailbox_copy *c)
{
        _cleanup_free_ struct compare *cmp = xmalloc(sizeof *cmp);
        cmp->fd = fd;
        cmp->at = at;
        cmp->result = MAILBOX_COPY_PRESENT;
        int r = render_copy(c, compare_sink, cmp);
        return r < 0 ? r : cmp->result;
}

int maildir_deliver_file(int fd, const char *tmp, const char *dst, const struct mailbox_copy *c)
{
        int r = mailbox_write_copy(fd, c);
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
