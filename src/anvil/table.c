/* table.c: anvil's table of (service, client) entries: connection counts and per-interval event rates. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "anvil.h"
#include "macro.h"

static const char *const event_names[ANVIL_EVENT_N] = {"connect", "disconnect", "message", "rcpt", "auth"};

int anvil_event_from_name(const char *name)
{
        for (int i = 0; name && i < ANVIL_EVENT_N; i++)
                if (streq(event_names[i], name))
                        return i;
        return -EINVAL;
}

const char *anvil_event_name(enum anvil_event e)
{
        return e < ANVIL_EVENT_N ? event_names[e] : "unknown";
}

struct entry {
        struct entry *next; /* hash chain */
        long long count;
        long long rate[ANVIL_EVENT_N];
        uint64_t start; /* when the current rate interval began */
        char ident[];
};

struct anvil_table {
        struct entry **buckets;
        size_t n_buckets;
        size_t size, max_entries;
        uint64_t unit;
        struct anvil_stats stats;
};

struct anvil_table *anvil_table_new(uint64_t unit_usec, size_t max_entries)
{
        struct anvil_table *t = xcalloc(1, sizeof *t);
        /* About one entry per bucket at the cap; a power of two for the mask. */
        t->n_buckets = 64;
        while (t->n_buckets < max_entries && t->n_buckets < (1u << 20))
                t->n_buckets <<= 1;
        t->buckets = xcalloc(t->n_buckets, sizeof *t->buckets);
        t->max_entries = max_entries ? max_entries : 1;
        t->unit = unit_usec ? unit_usec : 1;
        return t;
}

void anvil_table_free(struct anvil_table *t)
{
        if (!t)
                return;
        for (size_t i = 0; i < t->n_buckets; i++)
                for (struct entry *e = t->buckets[i], *next; e; e = next) {
                        next = e->next;
                        free(e);
                }
        free(t->buckets);
        free(t);
}

/* FNV-1a: the keys are short and come from the network only as smtpd formats them. */
static size_t bucket_of(const struct anvil_table *t, const char *ident)
{
        uint64_t h = 1469598103934665603ULL;
        for (const unsigned char *p = (const unsigned char *)ident; *p; p++)
                h = (h ^ *p) * 1099511628211ULL;
        return (size_t)h & (t->n_buckets - 1);
}

static bool expired(const struct anvil_table *t, const struct entry *e, uint64_t now)
{
        return now >= e->start && now - e->start >= t->unit;
}

size_t anvil_table_expire(struct anvil_table *t, uint64_t now)
{
        size_t dropped = 0;
        for (size_t i = 0; i < t->n_buckets; i++) {
                struct entry **pp = &t->buckets[i];
                while (*pp) {
                        struct entry *e = *pp;
                        if (e->count <= 0 && expired(t, e, now)) {
                                *pp = e->next;
                                free(e);
                                dropped++;
                        } else
                                pp = &e->next;
                }
        }
        t->size -= dropped;
        return dropped;
}

size_t anvil_table_size(const struct anvil_table *t)
{
        return t->size;
}

static struct entry *lookup(struct anvil_table *t, const char *ident)
{
        for (struct entry *e = t->buckets[bucket_of(t, ident)]; e; e = e->next)
                if (streq(e->ident, ident))
                        return e;
        return NULL;
}

static int insert(struct anvil_table *t, const char *ident, uint64_t now, struct entry **ret)
{
        if (t->size >= t->max_entries && anvil_table_expire(t, now) == 0)
                return -ENOSPC;
        size_t len = strlen(ident);
        struct entry *e = xcalloc(1, sizeof *e + len + 1);
        memcpy(e->ident, ident, len + 1);
        e->start = now;
        size_t b = bucket_of(t, ident);
        e->next = t->buckets[b];
        t->buckets[b] = e;
        t->size++;
        if (t->size > t->stats.max_size)
                t->stats.max_size = t->size;
        *ret = e;
        return 0;
}

static void note_max(struct anvil_max *m, long long value, const char *ident, uint64_t now)
{
        if (value <= m->value)
                return;
        m->value = value;
        snprintf(m->ident, sizeof m->ident, "%s", ident);
        m->when = now;
}

int anvil_table_event(struct anvil_table *t, enum anvil_event ev, const char *ident, uint64_t now,
                      struct anvil_answer *ret)
{
        if (ev >= ANVIL_EVENT_N || isempty(ident) || strlen(ident) > ANVIL_IDENT_MAX)
                return -EINVAL;
        struct entry *e = lookup(t, ident);
        if (!e && ev == ANVIL_DISCONNECT) {
                *ret = (struct anvil_answer){0};
                return 0;
        }
        if (!e) {
                int r = insert(t, ident, now, &e);
                if (r < 0)
                        return r;
        }
        if (expired(t, e, now)) {
                /* A new interval: every rate starts again from zero. */
                memset(e->rate, 0, sizeof e->rate);
                e->start = now;
        }
        if (ev == ANVIL_CONNECT)
                e->count++;
        else if (ev == ANVIL_DISCONNECT && e->count > 0)
                e->count--;
        if (ev != ANVIL_DISCONNECT)
                e->rate[ev]++;
        note_max(&t->stats.count, e->count, ident, now);
        if (ev != ANVIL_DISCONNECT)
                note_max(&t->stats.rate[ev], e->rate[ev], ident, now);
        *ret = (struct anvil_answer){.count = e->count, .rate = ev == ANVIL_DISCONNECT ? 0 : e->rate[ev]};
        return 0;
}

void anvil_table_take_stats(struct anvil_table *t, struct anvil_stats *ret)
{
        *ret = t->stats;
        t->stats = (struct anvil_stats){.max_size = t->size};
}
