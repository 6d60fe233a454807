/* showq.h: the queue listing of mailq / postqueue -p / -j, formatted from plain structs (pure). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"

struct showq_rcpt {
        const char *address;
        const char *reason; /* why delivery was delayed; NULL or "" when unknown */
};

struct showq_entry {
        const char *queue_name; /* "active", "deferred", "hold", "incoming", "maildrop" */
        const char *queue_id;
        time_t arrival_time;
        uint64_t size;
        const char *sender; /* "" for the null sender */
        bool forced_expire;
        const struct showq_rcpt *rcpts; /* the recipients still to be delivered */
        size_t n_rcpts;
};

/* The heading line of the mailq layout (with its newline). */
#define SHOWQ_HEADING "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"

/*
 * Postfix's mailq layout: the heading before the first entry; per entry the queue ID with "*" (active) or
 * "!" (hold) appended, the size, the arrival time (local time, asctime's first 20 characters), the sender
 * (MAILER-DAEMON for <>); a "(reason)" line whenever the reason changes between recipients; each recipient
 * indented under the heading's sender column; a blank line between entries; then
 * "-- N Kbytes in M Request(s)." or, with no entry, "Mail queue is empty". Appends to out.
 */
void showq_format_list(const struct showq_entry *e, size_t n, struct buf *out);
/* The last line(s): "\n-- N Kbytes in M Request(s).\n", or "Mail queue is empty\n" when n is 0. */
void showq_format_trailer(size_t n, uint64_t total_size, struct buf *out);
/* One entry (no heading, no blank line, no trailer), as showq_format_list prints it. */
void showq_format_entry(const struct showq_entry *e, struct buf *out);

/*
 * postqueue -j: one JSON object per line with Postfix's field names: queue_name, queue_id, arrival_time,
 * message_size, forced_expire, sender, recipients[{address, delay_reason}] (delay_reason only when known).
 */
void showq_format_json(const struct showq_entry *e, struct buf *out);
/* Append s as a JSON string (quotes included), escaping quotes, backslashes and control characters. */
void showq_json_string(const char *s, struct buf *out);

/* Messages one listing shows; a larger queue is listed up to this many. */
#define SHOWQ_LIST_MAX 1000000

/*
 * The listing of the queue in queue_dir (maildrop, incoming, active, deferred, hold, as Postfix's
 * showq orders them) written to out: the mailq layout with its trailer, or JSON lines. Messages
 * being written or gone meanwhile are skipped. Returns 0 or a negative errno (queue not openable).
 */
int showq_list_queue(const char *queue_dir, bool json, FILE *out);
