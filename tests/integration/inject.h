/* inject.h: what the queue test tools share: a message from stdin written as a finished queue file. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "queue.h"

/* A test message never needs more. */
#define INJECT_CONTENT_MAX (16u * 1024 * 1024)

/* The whole of stdin into out; fatal beyond INJECT_CONTENT_MAX. */
void inject_read_stdin(struct buf *out);

/* CLOCK_REALTIME in microseconds, as queue files record arrival. */
uint64_t inject_now_usec(void);

/*
 * Write a ready message (sender, rcpts, content as in a queue file) into incoming/ durably, owned
 * by mail_owner (qmgr and the agents run as that account and update the file). Fatal on error.
 * Returns the queue ID (caller frees).
 */
char *inject_queue_message(struct queue *q, struct config *c, const char *sender, char *const *rcpts,
                           size_t n_rcpts, const struct buf *content, uint64_t arrival_usec);
