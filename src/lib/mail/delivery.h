/* delivery.h: what every delivery path logs per recipient: Postfix's to=, relay=, delay=, delays= line. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* "12345678.25" plus NUL; larger delays are clamped. */
#define DELIVERY_DELAY_BUF 24

/* Seconds as Postfix shows them: at most two decimals, trailing zeros dropped ("0", "0.5", "1.25"). */
void delivery_format_delay(uint64_t usec, char buf[static DELIVERY_DELAY_BUF]);

/* The moments of one delivery, CLOCK_REALTIME microseconds; 0 means "same as the one before". */
struct delivery_times {
        uint64_t arrival_usec; /* message queued */
        uint64_t active_usec;  /* qmgr took it */
        uint64_t agent_usec;   /* the delivery agent received the request */
        uint64_t conn_usec;    /* connection set up (local: same as agent_usec) */
        uint64_t done_usec;    /* this recipient finished */
};

/* Fill the 'delay=D, delays=a/b/c/d' part (without a leading separator) into out (>= 128 bytes). */
void delivery_format_delays(const struct delivery_times *t, char *out, size_t size);

/*
 * Log "QID: to=<to>, [orig_to=<orig_to>, ]relay=RELAY, delay=.., delays=.., dsn=DSN, status=STATUS (REASON)"
 * with the journal fields of the queue ID, status, DSN and relay. orig_to is left out when NULL, empty
 * or equal to to (case-insensitively).
 */
void delivery_log(const char *queue_id, const char *to, const char *orig_to, const char *relay,
                  const struct delivery_times *t, const char *dsn, const char *status, const char *reason);

uint64_t delivery_now_usec(void);
