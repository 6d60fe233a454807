/* shadow.h: the power-cut model's record of what has been made durable (test-only, see shadow.c). */
#pragma once

#include <stdbool.h>

/* Record what a successful fsync()/fdatasync() of fd made durable, when fd is a regular file or a
 * directory whose path starts with root: a file's content, or a directory's entries. Returns 0 when
 * recorded or not tracked, a negative errno when the record failed. */
int shadow_record_fd(const char *shadow, const char *root, int fd);

/* Record dir's entries and the content of every regular file in it, as if all were fsync'd (the
 * state at the start of a test, after sync(2)); prints "KEY PATH" to stdout. */
int shadow_baseline(const char *shadow, const char *dir);

/* Mark that something the model does not cover happened (e.g. syncfs); the test fails on it. */
void shadow_unsupported(const char *shadow, const char *what);
