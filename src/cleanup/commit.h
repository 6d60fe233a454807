/* commit.h: the group commit on a worker thread, so that files written meanwhile share the next
 * directory fsync. Depends on the queue alone: each file's owner is told through its callback. */
#pragma once

#include "event.h"

#include "queue.h"

/* Messages committed together at most (bounds one batch's fsync time and memory). */
#define CLEANUP_BATCH_MAX 256u

struct commit;

/* The file of owner is committed: result 0 = durable under its queue ID, else a negative errno. On the loop. */
typedef void (*commit_done_fn)(void *owner, int result);

int commit_new(struct event_loop *e, struct queue *q, struct commit **ret);
/* Queue a written file (QUEUE_NOSYNC); done(owner, result) follows, on the loop. */
void commit_add(struct commit *k, struct queue_file *file, commit_done_fn done, void *owner);

/* What commit_cancel() could do about an owner whose source gave up waiting. */
enum commit_cancel {
        COMMIT_CANCELLED,    /* it was still waiting: back to the owner, never renamed, not queued */
        COMMIT_CANCEL_LATER, /* in the running batch, not renamed and now never will be: not queued;
                              * done(-ECANCELED) follows when the batch is over */
        COMMIT_TOO_LATE,     /* renamed to its queue ID already: queued unless the directory fsync fails;
                              * done() follows with that result */
};
enum commit_cancel commit_cancel(struct commit *k, void *owner);
