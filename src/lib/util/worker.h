/* worker.h: blocking work (name service lookups) in a pool of long-lived threads, its completion back on an
 * event loop (event.h). */
#pragma once

#include "event.h"

/* Threads per process, started on demand and kept: jobs running at once; more wait in a FIFO. */
#define WORKER_THREADS_MAX 8
/* Jobs waiting for a thread; one more is refused with -EAGAIN. */
#define WORKER_QUEUE_MAX 4096

typedef void (*worker_fn)(void *userdata);

/*
 * Run work(userdata) in a worker thread, then done(userdata) from e's loop (never from inside this call).
 * work must touch nothing the loop's thread uses meanwhile. Once started, a job always runs to its end
 * and done is always called: there is no cancelling; an owner that goes away first tells userdata so
 * (smtpd: lookup->session = NULL) and done frees it. Jobs finish in any order. e gets one eventfd for
 * the life of the process (and keeps a reference on e): pass a process's long-lived loop. 0, or a
 * negative errno (-EAGAIN: WORKER_QUEUE_MAX jobs already wait): then neither function is ever called.
 */
int worker_run(struct event_loop *e, worker_fn work, worker_fn done, void *userdata);
