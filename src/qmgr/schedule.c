/* schedule.c: qmgr's deferred schedule, a binary min-heap by next attempt (O(log n) per message). */
#include "schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "alloc.h"

static void swap(struct schedule_entry *a, struct schedule_entry *b)
{
        struct schedule_entry t = *a;
        *a = *b;
        *b = t;
}

bool schedule_push(struct schedule *s, uint64_t when_usec, const char *id)
{
        if (s->n >= SCHEDULE_MAX)
                return false;
        if (s->n == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 64;
                s->v = xrealloc(s->v, s->cap * sizeof *s->v);
        }
        size_t i = s->n++;
        s->v[i].when_usec = when_usec;
        snprintf(s->v[i].id, sizeof s->v[i].id, "%s", id);
        while (i > 0) {
                size_t p = (i - 1) / 2;
                if (s->v[p].when_usec <= s->v[i].when_usec)
                        break;
                swap(&s->v[p], &s->v[i]);
                i = p;
        }
        return true;
}

bool schedule_pop_due(struct schedule *s, uint64_t now_usec, struct schedule_entry *ret)
{
        if (s->n == 0 || s->v[0].when_usec > now_usec)
                return false;
        *ret = s->v[0];
        s->v[0] = s->v[--s->n];
        size_t i = 0;
        for (;;) {
                size_t l = 2 * i + 1, r = l + 1, m = i;
                if (l < s->n && s->v[l].when_usec < s->v[m].when_usec)
                        m = l;
                if (r < s->n && s->v[r].when_usec < s->v[m].when_usec)
                        m = r;
                if (m == i)
                        break;
                swap(&s->v[i], &s->v[m]);
                i = m;
        }
        return true;
}

bool schedule_next(const struct schedule *s, uint64_t *ret_when_usec)
{
        if (s->n == 0)
                return false;
        *ret_when_usec = s->v[0].when_usec;
        return true;
}

void schedule_clear(struct schedule *s)
{
        s->n = 0;
}

void schedule_done(struct schedule *s)
{
        free(s->v);
        *s = (struct schedule){0};
}

uint64_t qmgr_now_usec(void)
{
        return clock_usec(CLOCK_REALTIME);
}

uint64_t qmgr_mono_usec_now(void)
{
        return clock_usec(CLOCK_MONOTONIC);
}
