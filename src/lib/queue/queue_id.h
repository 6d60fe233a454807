/* queue_id.h: Postfix-style short queue IDs (microseconds + inode, uppercase hex) and their validation. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * A short queue ID is QUEUE_ID_USEC_DIGITS hex digits of the microseconds within the second the file was
 * created, followed by the file's inode number in hex (no leading zeros). The inode makes the ID unique
 * among the live files of one queue file system; the microseconds keep IDs apart over time when the file
 * system reuses an inode, so that log lines of different messages do not share an ID.
 */
#define QUEUE_ID_USEC_DIGITS      5
#define QUEUE_ID_INODE_MAX_DIGITS 16 /* 64-bit inode */
#define QUEUE_ID_MIN_LEN          (QUEUE_ID_USEC_DIGITS + 1)
#define QUEUE_ID_MAX_LEN          (QUEUE_ID_USEC_DIGITS + QUEUE_ID_INODE_MAX_DIGITS)
#define QUEUE_ID_BUF_SIZE         (QUEUE_ID_MAX_LEN + 1)

/* Format the ID of a file with this inode created at microsecond usec (0..999999) of its second. */
void queue_id_format(uint32_t usec, uint64_t inode, char buf[static QUEUE_ID_BUF_SIZE]);

/* Same, reading the microseconds from the real-time clock. */
void queue_id_make(uint64_t inode, char buf[static QUEUE_ID_BUF_SIZE]);

/*
 * True when s is a well-formed short queue ID. Used on untrusted input (postsuper, postqueue arguments)
 * before it becomes part of a path, so it only ever accepts uppercase hex of bounded length.
 */
bool queue_id_valid(const char *s);

/* The inode part of a valid ID; -EINVAL when s is not valid. */
int queue_id_inode(const char *s, uint64_t *ret);
