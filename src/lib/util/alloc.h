/* alloc.h: allocation wrappers; running out of memory is fatal (logged, then abort). */
#pragma once

#include <stddef.h>

#include "macro.h"

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) _printf_(1, 2);
