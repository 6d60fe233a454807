/* status.c: one delivery's outcome (result, DSN code, reason), as mailbox, file, command and forward
 * deliveries report it, and how the outcomes of one recipient's destinations combine. */
#include <stdarg.h>
#include <stdio.h>

#include "local.h"

void local_status_set(struct local_status *st, enum local_result result, const char *dsn, const char *fmt,
                      ...)
{
        st->result = result;
        snprintf(st->dsn, sizeof st->dsn, "%s", dsn);
        /* soft_bounce before anything logs it: the line says deferred, as the queue will. */
        if (result == LOCAL_BOUNCED && delivery_soft_bounce_dsn(st->dsn, sizeof st->dsn))
                st->result = LOCAL_DEFERRED;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->reason, sizeof st->reason, fmt, ap);
        va_end(ap);
}

/* Worse result wins: deferred (try again) over bounced over sent. */
void local_status_merge(struct local_status *total, const struct local_status *one, bool *first)
{
        int rank_one = one->result == LOCAL_DEFERRED ? 2 : one->result == LOCAL_BOUNCED ? 1 : 0;
        int rank_total = total->result == LOCAL_DEFERRED ? 2 : total->result == LOCAL_BOUNCED ? 1 : 0;
        if (*first || rank_one > rank_total)
                *total = *one;
        *first = false;
}
