/* fileio.c: whole-file reads with a size limit and crash-safe file replacement. */
#include "fileio.h"

#include <errno.h>
#include <time.h>
#include <poll.h>
#include <limits.h>
#include <stdlib.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <sys/stat.h>

#include "alloc.h"
#include "buf.h"
#include "macro.h"

int read_file(const char *path, size_t limit, char **ret, size_t *ret_len)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;

        struct buf b = BUF_INIT;
        buf_reserve(&b, 0);
        for (;;) {
                char chunk[16384];
                ssize_t n = read(fd, chunk, sizeof chunk);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        int r = -errno;
                        buf_done(&b);
                        return r;
                }
                if (n == 0)
                        break;
                if (b.len + (size_t)n > limit) {
                        buf_done(&b);
                        return -EFBIG;
                }
                buf_append(&b, chunk, (size_t)n);
        }
        if (ret_len)
                *ret_len = b.len;
        *ret = buf_steal(&b);
        return 0;
}

int fsync_dir(const char *dir)
{
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fsync(fd) < 0)
                return -errno;
        return 0;
}

int fsync_parent_dir(const char *path)
{
        _cleanup_free_ char *copy = xstrdup(path);
        return fsync_dir(dirname(copy));
}

int write_full(int fd, const void *data, size_t len)
{
        const char *p = data;
        while (len > 0) {
                ssize_t w = write(fd, p, len);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += w;
                len -= (size_t)w;
        }
        return 0;
}

long long monotonic_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fd_wait(int fd, short events, long long deadline)
{
        for (;;) {
                long long left = deadline - monotonic_ms();
                if (left <= 0)
                        return -ETIMEDOUT;
                struct pollfd pfd = {.fd = fd, .events = events};
                int r = poll(&pfd, 1, (int)(left > 60000 ? 60000 : left));
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (r > 0)
                        return 0;
        }
}

int read_full(int fd, void *data, size_t len)
{
        char *p = data;
        while (len > 0) {
                ssize_t n = read(fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
        _cleanup_free_ char *tmp = xasprintf("%s.tmpXXXXXX", path);
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;

        int r = write_full(fd, data, len);
        if (r < 0)
                goto fail;
        if (fchmod(fd, mode) < 0 || fsync(fd) < 0) {
                r = -errno;
                goto fail;
        }
        if (rename(tmp, path) < 0) {
                r = -errno;
                goto fail;
        }
        return fsync_parent_dir(path);
fail:
        unlink(tmp);
        return r;
}

bool same_directory(const char *a, const char *b)
{
        char ra[PATH_MAX], rb[PATH_MAX];
        if (!realpath(a, ra) || !realpath(b, rb))
                return streq(a, b);
        return streq(ra, rb);
}
