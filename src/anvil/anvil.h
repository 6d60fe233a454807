/* anvil.h: the anvil role's counting table (pure: time is passed in) and its protocol names. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Protocol (src/lib/proto/ipc.h framing). smtpd keeps one connection per process and sends:
 *
 *   {req=connect|disconnect|message|rcpt|auth, ident=SERVICE:ADDR}
 *
 * anvil answers each with {status=0, count=N, rate=N}: the connections of ident open now (over every
 * client of anvil) and the events of that kind in the current rate interval (anvil_rate_time_unit),
 * this one included. status is a negative errno when the event was not counted (table full, a bad
 * request): the client then applies no limit to it. A client's connects that it never disconnected
 * are undone when its connection to anvil closes (an smtpd that crashed leaves no phantom sessions).
 */
#define ANVIL_IDENT_MAX 300 /* "service:address": a master.cf name and an IPv6 text fit */

enum anvil_event { ANVIL_CONNECT, ANVIL_DISCONNECT, ANVIL_MESSAGE, ANVIL_RCPT, ANVIL_AUTH, ANVIL_EVENT_N };

/* "connect" -> ANVIL_CONNECT; -EINVAL for an unknown name. */
int anvil_event_from_name(const char *name);
const char *anvil_event_name(enum anvil_event e);

struct anvil_table;

struct anvil_answer {
        long long count; /* simultaneous connections */
        long long rate;  /* events of this kind in the current interval */
};

/*
 * unit_usec: the rate interval (anvil_rate_time_unit); max_entries: the table's size cap (bounded
 * memory whatever the clients do). Entries with no open connection are dropped once their interval
 * is over.
 */
struct anvil_table *anvil_table_new(uint64_t unit_usec, size_t max_entries);
void anvil_table_free(struct anvil_table *t);
/*
 * Count one event at time now. 0 and *ret filled; -ENOSPC when ident is new and the table is full even
 * after dropping expired entries; -EINVAL for an empty or overlong ident. A disconnect of an ident with
 * no open connection changes nothing.
 */
int anvil_table_event(struct anvil_table *t, enum anvil_event e, const char *ident, uint64_t now,
                      struct anvil_answer *ret);
/* Drop every entry without open connections whose interval is over; returns how many were dropped. */
size_t anvil_table_expire(struct anvil_table *t, uint64_t now);
size_t anvil_table_size(const struct anvil_table *t);

/* The largest values seen since the last anvil_table_take_stats(), for the statistics log lines. */
struct anvil_max {
        long long value;
        char ident[ANVIL_IDENT_MAX + 1];
        uint64_t when; /* the caller's clock (anvil's main passes the wall clock alongside) */
};
struct anvil_stats {
        struct anvil_max count;
        struct anvil_max rate[ANVIL_EVENT_N]; /* connect, message, rcpt, auth (disconnect unused) */
        size_t max_size;
};
/* Copy the maxima out and start over. */
void anvil_table_take_stats(struct anvil_table *t, struct anvil_stats *ret);
