/* schedule.h: qmgr's schedule of deferred mail (a min-heap by next attempt) and its clocks: depends on
 * nothing else in qmgr. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue_id.h"

/* Deferred messages the schedule holds at most; beyond it the periodic rescan of deferred/ finds them. */
#define SCHEDULE_MAX (8u * 1024 * 1024)

struct schedule_entry {
        uint64_t when_usec; /* CLOCK_REALTIME */
        char id[QUEUE_ID_BUF_SIZE];
};

struct schedule {
        struct schedule_entry *v;
        size_t n, cap;
};

/* Add a message due at when_usec; false when the schedule is full (SCHEDULE_MAX). O(log n). */
bool schedule_push(struct schedule *s, uint64_t when_usec, const char *id);
/* The earliest entry when it is due at now_usec (removed into *ret); false otherwise. O(log n). */
bool schedule_pop_due(struct schedule *s, uint64_t now_usec, struct schedule_entry *ret);
/* When the earliest entry is due; false when the schedule is empty. */
bool schedule_next(const struct schedule *s, uint64_t *ret_when_usec);
/* Forget every entry (before a rebuild from deferred/); schedule_done also frees the storage. */
void schedule_clear(struct schedule *s);
void schedule_done(struct schedule *s);

/* Wall-clock time (what queue files and logs record), and the monotonic clock itself (not an event
 * loop's cached time: for slicing work inside one callback). Microseconds. */
uint64_t qmgr_now_usec(void);
uint64_t qmgr_mono_usec_now(void);
