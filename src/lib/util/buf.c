/* buf.c: growable byte buffer and string vector. */
#include "buf.h"

#include <stdio.h>

#include "alloc.h"

void buf_reserve(struct buf *b, size_t extra)
{
        size_t need = b->len + extra + 1;
        if (need <= b->cap)
                return;
        size_t cap = b->cap ? b->cap : 64;
        while (cap < need)
                cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
        b->data[b->len] = '\0'; /* a fresh buffer must read as "" before the first append */
}

void buf_append(struct buf *b, const void *p, size_t n)
{
        buf_reserve(b, n);
        if (n)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s)
{
        buf_append(b, s, strlen(s));
}

void buf_putc(struct buf *b, char c)
{
        buf_append(b, &c, 1);
}

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
        /* Format into the free space first; only a too-long result needs a second pass. */
        buf_reserve(b, 64);
        size_t room = b->cap - b->len;
        va_list aq;
        va_copy(aq, ap);
        int n = vsnprintf(b->data + b->len, room, fmt, aq);
        va_end(aq);
        if (n < 0) {
                b->data[b->len] = '\0';
                return;
        }
        if ((size_t)n >= room) {
                buf_reserve(b, (size_t)n);
                vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        }
        b->len += (size_t)n;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        buf_vprintf(b, fmt, ap);
        va_end(ap);
}

void buf_truncate(struct buf *b, size_t len)
{
        if (len < b->len) {
                b->len = len;
                b->data[len] = '\0';
        }
}

char *buf_steal(struct buf *b)
{
        char *p = b->data ? b->data : xstrdup("");
        *b = (struct buf)BUF_INIT;
        return p;
}

const char *buf_str(const struct buf *b)
{
        return b->data ? b->data : "";
}

void buf_done(struct buf *b)
{
        free(b->data);
        *b = (struct buf)BUF_INIT;
}

void strv_push_take(struct strv *s, char *str)
{
        if (s->n + 2 > s->cap) {
                s->cap = s->cap ? s->cap * 2 : 8;
                s->v = xrealloc(s->v, s->cap * sizeof(char *));
        }
        s->v[s->n++] = str;
        s->v[s->n] = NULL;
}

void strv_push(struct strv *s, const char *str)
{
        strv_push_take(s, xstrdup(str));
}

void strv_done(struct strv *s)
{
        for (size_t i = 0; i < s->n; i++)
                free(s->v[i]);
        free(s->v);
        *s = (struct strv)STRV_INIT;
}

void strv_split(struct strv *s, const char *text, const char *separators)
{
        const char *p = text;
        while (*p) {
                p += strspn(p, separators);
                size_t n = strcspn(p, separators);
                if (n)
                        strv_push_take(s, xstrndup(p, n));
                p += n;
        }
}
