/* buf.h: a growable byte buffer that is always NUL-terminated, and a growable string list. */
#pragma once

#include <stdarg.h>
#include <stddef.h>

#include "macro.h"

struct buf {
        char *data; /* NUL-terminated; NULL until the first append */
        size_t len;
        size_t cap;
};

#define BUF_INIT           \
        {                  \
                NULL, 0, 0 \
        }

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) _printf_(2, 3);
void buf_vprintf(struct buf *b, const char *fmt, va_list ap) _printf_(2, 0);
void buf_truncate(struct buf *b, size_t len);
/* Returns the string (never NULL: "" for an empty buffer); the caller owns it, the buffer is reset. */
char *buf_steal(struct buf *b);
const char *buf_str(const struct buf *b);
void buf_done(struct buf *b);
#define _cleanup_buf_ _cleanup_(buf_done)

/* A NULL-terminated vector of owned strings. */
struct strv {
        char **v; /* v[n] == NULL once anything was pushed */
        size_t n;
        size_t cap;
};

#define STRV_INIT          \
        {                  \
                NULL, 0, 0 \
        }

void strv_push(struct strv *s, const char *str); /* copies str */
void strv_push_take(struct strv *s, char *str);  /* takes ownership */
void strv_done(struct strv *s);
#define _cleanup_strv_ _cleanup_(strv_done)
/* Split on any of the separator characters, skipping empty fields (Postfix list syntax: ", \t\r\n"). */
void strv_split(struct strv *s, const char *text, const char *separators);
