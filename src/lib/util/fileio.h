/* fileio.h: whole-file reads with a size limit and crash-safe file replacement. */
#pragma once

#include <stdbool.h>

#include <stddef.h>
#include <sys/types.h>

/* Read all of path (at most limit bytes, else -EFBIG) into a NUL-terminated malloc'd buffer. */
int read_file(const char *path, size_t limit, char **ret, size_t *ret_len);

/* Write all of data (retrying short writes and EINTR): 0 or a negative errno. */
int write_full(int fd, const void *data, size_t len);
/* Milliseconds on CLOCK_MONOTONIC: deadlines for fd_wait. */
long long monotonic_ms(void);
/* Wait for events (POLLIN, POLLOUT) on fd until deadline (monotonic_ms()); EINTR is retried. 0, -ETIMEDOUT, or
 * a negative errno. */
int fd_wait(int fd, short events, long long deadline);
/* Read exactly len bytes (retrying short reads and EINTR): 0, -EIO at end of file, or a negative errno. */
int read_full(int fd, void *data, size_t len);

/*
 * Replace path atomically and durably: write "path.tmpXXXXXX" in the same directory, fsync it,
 * rename it over path, fsync the directory. Mode applies to the new file.
 */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* fsync the directory that contains path (path itself for a directory when is_dir). */
int fsync_parent_dir(const char *path);
int fsync_dir(const char *dir);

/* Do two paths name the same directory (after resolving symbolic links)? Paths that do not
 * resolve are compared as written. */
bool same_directory(const char *a, const char *b);
