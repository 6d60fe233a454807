/* worker.h: blocking work (name service lookups) in threads, its completion back on an sd-event loop. */
#pragma once

#include <systemd/sd-event.h>

/* Jobs running at once per process; more wait in a FIFO. */
#define WORKER_THREADS_MAX 8

typedef void (*worker_fn)(void *userdata);

/*
 * Run work(userdata) in a thread of its own, then done(userdata) from e's loop (never from inside this
 * call). work must touch nothing the loop's thread uses meanwhile. 0, or a negative errno: then neither
 * function is ever called.
 */
int worker_run(sd_event *e, worker_fn work, worker_fn done, void *userdata);
