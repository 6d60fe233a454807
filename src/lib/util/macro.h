/* macro.h: small language helpers shared by every postd source file. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ELEMENTSOF(x)  (sizeof(x) / sizeof((x)[0]))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_     __attribute__((noreturn))
#define _unused_       __attribute__((unused))
#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _warn_unused_  __attribute__((warn_unused_result))

static inline bool streq(const char *a, const char *b)
{
        return strcmp(a, b) == 0;
}

static inline bool streq_ptr(const char *a, const char *b)
{
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

/* A hex digit's value (either case), or -1. */
static inline int unhexchar(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

static inline bool isempty(const char *s)
{
        return !s || !*s;
}

static inline void freep(void *p)
{
        free(*(void **)p);
}

static inline void closep(int *fd)
{
        if (*fd >= 0)
                close(*fd);
}

/* Time constants are microseconds (as event.h counts); these convert where an API wants another unit. */
#define USEC_PER_SEC   1000000ULL
#define USEC_PER_MSEC  1000ULL
#define USEC_TO_MS(u)  ((int)((u) / USEC_PER_MSEC))
#define USEC_TO_SEC(u) ((int)((u) / USEC_PER_SEC))

/* The time of clock id (CLOCK_REALTIME for timestamps, CLOCK_MONOTONIC for deadlines) in microseconds. */
static inline uint64_t clock_usec(clockid_t id)
{
        struct timespec ts;
        clock_gettime(id, &ts);
        return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

#define _cleanup_free_  _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

/*
 * Ownership conventions (systemd's): TYPE_free(p) frees the object p points to; TYPE_done(p) frees only
 * what an object (usually on the stack or embedded) holds. _cleanup_(TYPE_done) works as it is; for
 * pointers, DEFINE_POINTER_CLEANUP(type, TYPE_free) makes TYPE_freep for _cleanup_(TYPE_freep).
 */
#define DEFINE_POINTER_CLEANUP(type, func)   \
        static inline void func##p(type **p) \
        {                                    \
                if (*p)                      \
                        func(*p);            \
        }

/* Hand ownership out of a _cleanup_ variable. */
#define TAKE_PTR(p)                      \
        ({                               \
                __typeof__(p) _p_ = (p); \
                (p) = NULL;              \
                _p_;                     \
        })
#define TAKE_FD(fd)              \
        ({                       \
                int _fd_ = (fd); \
                (fd) = -1;       \
                _fd_;            \
        })
