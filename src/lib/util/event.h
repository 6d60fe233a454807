/* event.h: postd's event loop: descriptors, monotonic timers, signals, deferred and exit work over one epoll. */
#pragma once

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>

/*
 * One loop per thread that waits. A source is created enabled (descriptors and signals EVENT_ON,
 * timers, deferred and exit work EVENT_ONESHOT: off again once dispatched) and is dispatched from
 * event_loop_step()/event_loop_run() only. Among the sources ready in one turn, lower priority values
 * go first, equal ones in the order they became ready; a source that becomes ready while the turn is
 * dispatched waits for the next turn (after a fresh look at the descriptors), so deferred work
 * enabled by a handler runs after the rest of the turn's ready sources: that is what batches commits.
 * Disabling a source forgets that it was ready. A handler returning <0 disables its source.
 *
 * Ownership: event_add_*() with ret != NULL hands the caller one reference, and the source keeps the
 * loop alive; with ret == NULL the source belongs to the loop and goes with it. Dropping the last
 * reference takes the source out of the loop at once (its descriptor can be closed right after), even
 * from its own handler. Descriptors are level-triggered; signals must be blocked by the caller.
 *
 * Differences from sd-event, whose semantics the daemons were written against: timers are
 * CLOCK_MONOTONIC only and fire at their time (no accuracy window); one epoll_wait per turn, not per
 * dispatched source.
 */

struct event_loop;
struct event_source;

enum { EVENT_OFF = 0, EVENT_ON = 1, EVENT_ONESHOT = -1 };
enum { EVENT_PRIORITY_NORMAL = 0, EVENT_PRIORITY_IDLE = 100 };

typedef int (*event_io_handler)(struct event_source *s, int fd, uint32_t revents, void *userdata);
/* usec: the time the timer was set to (CLOCK_MONOTONIC). */
typedef int (*event_time_handler)(struct event_source *s, uint64_t usec, void *userdata);
typedef int (*event_signal_handler)(struct event_source *s, const struct signalfd_siginfo *si,
                                    void *userdata);
typedef int (*event_handler)(struct event_source *s, void *userdata);

int event_loop_new(struct event_loop **ret);
struct event_loop *event_loop_ref(struct event_loop *e);
struct event_loop *event_loop_unref(struct event_loop *e);
/* CLOCK_MONOTONIC microseconds as of the current turn's wakeup (the clock itself before the first). */
uint64_t event_loop_now(struct event_loop *e);
/* Wait up to timeout_usec (UINT64_MAX: no limit) and dispatch one turn: 1 if a source was dispatched,
 * 0 if none, -ESTALE once the loop has finished, other negative errno on failure. */
int event_loop_step(struct event_loop *e, uint64_t timeout_usec);
/* Turn until event_loop_exit(); returns its code. */
int event_loop_run(struct event_loop *e);
/* Stop after the current handler: no other source is dispatched, then the exit sources run once. */
int event_loop_exit(struct event_loop *e, int code);

int event_add_io(struct event_loop *e, struct event_source **ret, int fd, uint32_t events,
                 event_io_handler cb, void *userdata);
/* At usec (CLOCK_MONOTONIC microseconds; 0 means at once), or usec after the loop's now. */
int event_add_time(struct event_loop *e, struct event_source **ret, uint64_t usec, event_time_handler cb,
                   void *userdata);
int event_add_time_relative(struct event_loop *e, struct event_source **ret, uint64_t usec,
                            event_time_handler cb, void *userdata);
int event_add_signal(struct event_loop *e, struct event_source **ret, int sig, event_signal_handler cb,
                     void *userdata);
/* Runs in the next turn (and every turn while EVENT_ON). */
int event_add_defer(struct event_loop *e, struct event_source **ret, event_handler cb, void *userdata);
/* Runs once the loop is told to exit. */
int event_add_exit(struct event_loop *e, struct event_source **ret, event_handler cb, void *userdata);

int event_source_set_enabled(struct event_source *s, int enabled);
int event_source_set_priority(struct event_source *s, int64_t priority);
int event_source_set_io_events(struct event_source *s, uint32_t events);
int event_source_set_time(struct event_source *s, uint64_t usec);
int event_source_set_time_relative(struct event_source *s, uint64_t usec);
struct event_loop *event_source_loop(struct event_source *s);
struct event_source *event_source_ref(struct event_source *s);
/* Both return NULL, for "s = event_source_unref(s);". NULL is accepted. */
struct event_source *event_source_unref(struct event_source *s);
struct event_source *event_source_disable_unref(struct event_source *s);
