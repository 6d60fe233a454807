/* milter_edit.c: a message's content rewritten as milters asked: header edits on the header block (held
 * in memory, bounded), then the body streamed across from the old content or the replacement body. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "alloc.h"
#include "milter.h"
#include "milter_proto.h"
#include "queue.h"

#define COPY_CHUNK (64u * 1024)
/* The header block cleanup wrote is at most header_size_limit plus the headers it adds. */
#define HEADER_SLACK (64u * 1024)

struct hdr_list {
        char **v; /* each "Name: value\n" (folded lines included); NULL once deleted */
        size_t n, cap;
};

static void hdr_insert(struct hdr_list *l, size_t at, char *text)
{
        if (l->n == l->cap) {
                l->cap = l->cap ? 2 * l->cap : 32;
                l->v = xrealloc(l->v, l->cap * sizeof *l->v);
        }
        if (at > l->n)
                at = l->n;
        memmove(l->v + at + 1, l->v + at, (l->n - at) * sizeof *l->v);
        l->v[at] = text;
        l->n++;
}

static void hdr_list_free(struct hdr_list *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
}

/* Read the header block at the start of fd. *ret_body is where the body starts (after the blank line). */
static int read_header_block(int fd, size_t max, struct buf *out, off_t *ret_body)
{
        char tmp[COPY_CHUNK];
        for (off_t off = 0;;) {
                if (out->len > max)
                        return -EFBIG;
                ssize_t n = pread(fd, tmp, sizeof tmp, off);
                if (n < 0)
                        return -errno;
                size_t old = out->len;
                buf_append(out, tmp, (size_t)n);
                off += n;
                const char *d = out->data ? out->data : "";
                if (out->len && d[0] == '\n') {
                        buf_truncate(out, 0);
                        *ret_body = 1;
                        return 0;
                }
                for (size_t i = old ? old - 1 : 0; i + 1 < out->len; i++)
                        if (d[i] == '\n' && d[i + 1] == '\n') {
                                buf_truncate(out, i + 1);
                                *ret_body = (off_t)(i + 2);
                                return 0;
                        }
                if (n == 0) { /* all headers, no body */
                        *ret_body = -1;
                        return 0;
                }
        }
}

static void split_headers(const struct buf *block, struct hdr_list *l)
{
        const char *p = block->data ? block->data : "";
        const char *end = p + block->len;
        while (p < end) {
                const char *q = p;
                for (;;) {
                        const char *nl = memchr(q, '\n', (size_t)(end - q));
                        q = nl ? nl + 1 : end;
                        if (q >= end || (*q != ' ' && *q != '\t'))
                                break;
                }
                size_t n = (size_t)(q - p);
                /* the last header of a message without a body may lack its LF */
                hdr_insert(l, l->n, p[n - 1] == '\n' ? xstrndup(p, n) : xasprintf("%.*s\n", (int)n, p));
                p = q;
        }
}

static bool has_name(const char *h, const char *name)
{
        size_t n = strlen(name);
        return h && strncasecmp(h, name, n) == 0 && h[n] == ':';
}

static void apply_edit(struct hdr_list *l, const struct milter_hdr_edit *e)
{
        char *text = xasprintf("%s: %s\n", e->name, e->value);
        if (e->op == MILTER_REPLY_ADDHEADER) {
                hdr_insert(l, l->n, text);
                return;
        }
        if (e->op == MILTER_REPLY_INSHEADER) {
                hdr_insert(l, e->index, text);
                return;
        }
        /* CHGHEADER: the index-th header of that name (from 1); an empty value deletes it; a change of
         * one that is not there adds it, as Sendmail and Postfix do. */
        uint32_t seen = 0;
        for (size_t i = 0; i < l->n; i++)
                if (has_name(l->v[i], e->name) && ++seen == (e->index ? e->index : 1)) {
                        free(text);
                        /* the header keeps its own spelling of the name */
                        text = *e->value ? xasprintf("%.*s: %s\n", (int)strlen(e->name), l->v[i], e->value)
                                         : NULL;
                        free(l->v[i]);
                        l->v[i] = text;
                        return;
                }
        if (*e->value)
                hdr_insert(l, l->n, text);
        else
                free(text);
}

static int copy_from(int fd, off_t off, milter_emit_fn emit, void *userdata)
{
        char tmp[COPY_CHUNK];
        for (;;) {
                ssize_t n = pread(fd, tmp, sizeof tmp, off);
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return 0;
                int r = emit(userdata, tmp, (size_t)n);
                if (r < 0)
                        return r;
                off += n;
        }
}

int milter_edit_content(int src_fd, const struct milter_edits *e, size_t header_max, milter_emit_fn emit,
                        void *userdata)
{
        struct buf block = BUF_INIT;
        off_t body_at = -1;
        int r = read_header_block(src_fd, header_max + HEADER_SLACK, &block, &body_at);
        if (r < 0) {
                buf_done(&block);
                return r;
        }
        struct hdr_list l = {0};
        split_headers(&block, &l);
        buf_done(&block);
        for (size_t i = 0; i < e->n_hdrs; i++)
                apply_edit(&l, &e->hdrs[i]);
        for (size_t i = 0; r >= 0 && i < l.n; i++)
                if (l.v[i])
                        r = emit(userdata, l.v[i], strlen(l.v[i]));
        hdr_list_free(&l);
        bool body = e->body_fd >= 0 || body_at >= 0;
        if (r >= 0 && body)
                r = emit(userdata, "\n", 1);
        if (r >= 0 && body)
                r = e->body_fd >= 0 ? copy_from(e->body_fd, 0, emit, userdata)
                                    : copy_from(src_fd, body_at, emit, userdata);
        return r;
}

int milter_scratch_open(int dir_fd)
{
        int fd = openat(dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
                return fd >= 0 ? fd : -errno;
        /* No O_TMPFILE here: a temporary name (recovery removes one left by a crash), unlinked at once. */
        static atomic_uint counter;
        char name[64];
        snprintf(name, sizeof name, QUEUE_TMP_PREFIX "milter.%d.%u", (int)getpid(),
                 atomic_fetch_add(&counter, 1));
        fd = openat(dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        (void)unlinkat(dir_fd, name, 0);
        return fd;
}

int milter_copy_range(int src, off_t off, uint64_t len, int dst)
{
        char tmp[COPY_CHUNK];
        while (len > 0) {
                ssize_t n = pread(src, tmp, len < sizeof tmp ? (size_t)len : sizeof tmp, off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                for (ssize_t w = 0; w < n;) {
                        ssize_t k = write(dst, tmp + w, (size_t)(n - w));
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k <= 0)
                                return k < 0 ? -errno : -EIO;
                        w += k;
                }
                off += n;
                len -= (uint64_t)n;
        }
        return 0;
}
