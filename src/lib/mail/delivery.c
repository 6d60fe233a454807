/* delivery.c: the per-recipient delivery log line shared by qmgr and the delivery agents. */
#include "delivery.h"

#include <stdio.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "macro.h"

/* Delays beyond this (about 3 years) are shown as this: the queue lifetime is far shorter. */
#define DELIVERY_DELAY_MAX_USEC (99999999 * USEC_PER_SEC)

void delivery_format_delay(uint64_t usec, char buf[static DELIVERY_DELAY_BUF])
{
        uint64_t centi = (usec + 5000) / 10000;
        if (centi > DELIVERY_DELAY_MAX_USEC / 10000)
                centi = DELIVERY_DELAY_MAX_USEC / 10000;
        unsigned long long whole = centi / 100, frac = centi % 100;
        if (frac == 0)
                snprintf(buf, DELIVERY_DELAY_BUF, "%llu", whole);
        else if (frac % 10 == 0)
                snprintf(buf, DELIVERY_DELAY_BUF, "%llu.%llu", whole, frac / 10);
        else
                snprintf(buf, DELIVERY_DELAY_BUF, "%llu.%02llu", whole, frac);
}

static uint64_t diff(uint64_t later, uint64_t earlier)
{
        return later > earlier ? later - earlier : 0;
}

void delivery_format_delays(const struct delivery_times *t, char *out, size_t size)
{
        uint64_t active = t->active_usec ? t->active_usec : t->arrival_usec;
        uint64_t agent = t->agent_usec ? t->agent_usec : active;
        uint64_t conn = t->conn_usec ? t->conn_usec : agent;
        uint64_t done = t->done_usec ? t->done_usec : conn;
        char d[DELIVERY_DELAY_BUF], a[DELIVERY_DELAY_BUF], b[DELIVERY_DELAY_BUF], c[DELIVERY_DELAY_BUF],
                e[DELIVERY_DELAY_BUF];
        delivery_format_delay(diff(done, t->arrival_usec), d);
        delivery_format_delay(diff(active, t->arrival_usec), a);
        delivery_format_delay(diff(agent, active), b);
        delivery_format_delay(diff(conn, agent), c);
        delivery_format_delay(diff(done, conn), e);
        snprintf(out, size, "delay=%s, delays=%s/%s/%s/%s", d, a, b, c, e);
}

void delivery_log(const char *queue_id, const char *to, const char *orig_to, const char *relay,
                  const struct delivery_times *t, const char *dsn, const char *status, const char *reason)
{
        char delays[160];
        delivery_format_delays(t, delays, sizeof delays);
        bool show_orig = !isempty(orig_to) && strcasecmp(orig_to, to) != 0;
        struct log_fields f = {.queue_id = queue_id, .status = status, .dsn = dsn, .relay = relay};
        enum metrics_status ms = streq(status, "sent")      ? METRICS_SENT
                                 : streq(status, "bounced") ? METRICS_BOUNCED
                                                            : METRICS_DEFERRED;
        metrics_delivery(metrics_transport(), ms,
                         t->done_usec > t->arrival_usec ? t->done_usec - t->arrival_usec : 0);
        msg_fields(LOG_LEVEL_INFO, &f, "%s: to=<%s>, %s%s%srelay=%s, %s, dsn=%s, status=%s (%s)", queue_id,
                   to, show_orig ? "orig_to=<" : "", show_orig ? orig_to : "", show_orig ? ">, " : "", relay,
                   delays, dsn, status, reason ? reason : "");
}

uint64_t delivery_now_usec(void)
{
        return clock_usec(CLOCK_REALTIME);
}
