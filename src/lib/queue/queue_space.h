/* queue_space.h: queue_minfree: whether the queue file system has room for more mail (smtpd, postdrop). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/*
 * The free space the queue file system must keep: queue_minfree, and, as in Postfix, at least
 * 1.5 x message_size_limit when that is set (0: no limit), so that a message of the largest size still
 * fits. Saturates instead of overflowing.
 */
uint64_t queue_space_minfree(uint64_t queue_minfree, uint64_t message_size_limit);

/*
 * Pure decision: may a message of size bytes (0: not announced) be accepted with avail bytes free and
 * minfree to keep? No when avail < minfree, or when what is left above minfree is less than 1.5 x size.
 */
bool queue_space_enough(uint64_t avail, uint64_t minfree, uint64_t size);

/* Bytes an unprivileged writer may still use on the file system of path (statvfs f_bavail x f_frsize). */
int queue_space_avail(const char *path, uint64_t *ret);
