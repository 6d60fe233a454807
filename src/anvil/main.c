/* main.c: anvil, the per-client connection count and event rate keeper of an instance's smtpd processes. */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "anvil.h"
#include "ipc.h"
#include "log.h"
#include "macro.h"
#include "service.h"

/* smtpd processes of one instance, each with one connection: far beyond any process_limit in use. */
#define ANVIL_CLIENTS_MAX 4096
/* Entries kept at most: about 200 bytes each, so the table stays under ~20 MB whatever clients do. */
#define ANVIL_TABLE_MAX 100000
/* Open connections one client may register: smtpd's sessions per process, with room to spare. */
#define ANVIL_HELD_MAX 4096

struct held {
        char *ident;
        long long n; /* connects not yet disconnected */
};

struct anvil {
        struct service *svc;
        struct event_loop *event;
        struct anvil_table *table;
        uint64_t unit_usec;
        long long unit_sec;
        struct event_source *expire_timer, *status_timer;
        bool full_warned; /* since the last statistics */
};

struct client {
        struct anvil *a;
        int fd;
        struct ipc_conn conn;
        struct event_source *io;
        struct held *held;
        size_t n_held;
};

static uint64_t now_usec(struct anvil *a)
{
        uint64_t now = event_loop_now(a->event);
        return now;
}

static struct held *held_find(struct client *c, const char *ident)
{
        for (size_t i = 0; i < c->n_held; i++)
                if (streq(c->held[i].ident, ident))
                        return &c->held[i];
        return NULL;
}

/* Remember a connect so that it is undone when this client goes away without its disconnect. */
static void held_add(struct client *c, const char *ident, long long delta)
{
        struct held *h = held_find(c, ident);
        if (!h && delta > 0 && c->n_held < ANVIL_HELD_MAX) {
                c->held = xrealloc(c->held, (c->n_held + 1) * sizeof *c->held);
                h = &c->held[c->n_held++];
                *h = (struct held){xstrdup(ident), 0};
        }
        if (!h)
                return;
        h->n += delta;
        if (h->n <= 0) {
                free(h->ident);
                *h = c->held[--c->n_held];
        }
}

static void client_free(struct client *c)
{
        struct anvil *a = c->a;
        uint64_t now = now_usec(a);
        for (size_t i = 0; i < c->n_held; i++) {
                struct anvil_answer ans;
                for (long long k = 0; k < c->held[i].n; k++)
                        (void)anvil_table_event(a->table, ANVIL_DISCONNECT, c->held[i].ident, now, &ans);
                free(c->held[i].ident);
        }
        free(c->held);
        event_source_disable_unref(c->io);
        ipc_conn_done(&c->conn);
        close(c->fd);
        free(c);
        service_connection_done(a->svc);
}

static void warn_full(struct anvil *a, const char *ident)
{
        if (a->full_warned)
                return;
        a->full_warned = true;
        msg_warn("anvil table full (%d entries): %s and other new clients are not counted, so smtpd applies "
                 "no "
                 "client limits to them until entries expire (after anvil_rate_time_unit = %llds)",
                 ANVIL_TABLE_MAX, ident, a->unit_sec);
}

static int answer(struct client *c, int status, const struct anvil_answer *ans)
{
        struct ipc_msg m = IPC_MSG_INIT;
        int r = ipc_msg_add_int(&m, "status", status);
        if (r >= 0 && status == 0)
                r = ipc_msg_add_int(&m, "count", ans->count);
        if (r >= 0 && status == 0)
                r = ipc_msg_add_int(&m, "rate", ans->rate);
        if (r >= 0)
                r = ipc_conn_queue(&c->conn, &m);
        ipc_msg_done(&m);
        return r;
}

static int handle(struct client *c, const struct ipc_msg *m)
{
        struct anvil *a = c->a;
        int ev = anvil_event_from_name(ipc_msg_get_str(m, "req"));
        const char *ident = ipc_msg_get_str(m, "ident");
        struct anvil_answer ans = {0};
        /* Only the client that counted a connect may take it back (a reconnected smtpd's old sessions were
         * undone when its first connection closed). */
        if (ev == ANVIL_DISCONNECT && ident && !held_find(c, ident))
                return answer(c, 0, &ans);
        int r = ev < 0 || !ident ? -EINVAL : anvil_table_event(a->table, ev, ident, now_usec(a), &ans);
        if (r == -ENOSPC)
                warn_full(a, ident);
        else if (r == 0 && ev == ANVIL_CONNECT)
                held_add(c, ident, 1);
        else if (r == 0 && ev == ANVIL_DISCONNECT)
                held_add(c, ident, -1);
        return answer(c, r, &ans);
}

static int on_client_io(struct event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct client *c = userdata;
        int r = ipc_conn_read(&c->conn);
        /* Each round takes one message out of the bounded input buffer: the bound ends the loop. */
        for (int i = 0; r >= 0 && i < 1024; i++) {
                struct ipc_msg m = IPC_MSG_INIT;
                int got = ipc_conn_next(&c->conn, &m);
                if (got <= 0) {
                        r = got;
                        break;
                }
                r = handle(c, &m);
                ipc_msg_done(&m);
        }
        if (r >= 0 || r == -EAGAIN) {
                r = ipc_conn_flush(&c->conn);
                if (r == -EAGAIN)
                        r = 0;
        }
        if (r < 0 || c->conn.eof) {
                client_free(c);
                return 0;
        }
        event_source_set_io_events(c->io, ipc_conn_want_write(&c->conn) ? EPOLLIN | EPOLLOUT : EPOLLIN);
        return 0;
}

static void on_connection(struct service *s, int fd)
{
        struct anvil *a = service_userdata(s);
        struct client *c = xcalloc(1, sizeof *c);
        c->a = a;
        c->fd = fd;
        ipc_conn_init(&c->conn, fd);
        if (event_add_io(a->event, &c->io, fd, EPOLLIN, on_client_io, c) < 0) {
                msg_warn("cannot watch an anvil client connection");
                client_free(c);
        }
}

static int on_expire(struct event_source *src, uint64_t usec, void *userdata)
{
        struct anvil *a = userdata;
        anvil_table_expire(a->table, usec);
        event_source_set_time(src, usec + a->unit_usec);
        event_source_set_enabled(src, EVENT_ON);
        return 0;
}

/* "Dec  7 01:02:03" for a time on the monotonic clock, as the statistics lines show it. */
static void format_when(struct anvil *a, uint64_t when, char *buf, size_t size)
{
        uint64_t now = now_usec(a);
        time_t t = time(NULL) - (time_t)((now > when ? now - when : 0) / 1000000ULL);
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(buf, size, "%b %e %H:%M:%S", &tm);
}

static void log_max(struct anvil *a, const char *what, const struct anvil_max *m, bool rate)
{
        if (m->value <= 0)
                return;
        char when[32];
        format_when(a, m->when, when, sizeof when);
        if (rate)
                msg_info("statistics: max %s rate %lld/%llds for (%s) at %s", what, m->value, a->unit_sec,
                         m->ident, when);
        else
                msg_info("statistics: max %s %lld for (%s) at %s", what, m->value, m->ident, when);
}

/* anvil_status_update_time: the busiest clients of the last period, as Postfix's anvil logs them. */
static void log_stats(struct anvil *a)
{
        struct anvil_stats st;
        anvil_table_take_stats(a->table, &st);
        log_max(a, "connection", &st.rate[ANVIL_CONNECT], true);
        log_max(a, "connection count", &st.count, false);
        log_max(a, "message", &st.rate[ANVIL_MESSAGE], true);
        log_max(a, "recipient", &st.rate[ANVIL_RCPT], true);
        log_max(a, "auth", &st.rate[ANVIL_AUTH], true);
        if (st.max_size > 0) {
                char when[32];
                format_when(a, now_usec(a), when, sizeof when);
                msg_info("statistics: max cache size %zu at %s", st.max_size, when);
        }
        a->full_warned = false;
}

static int on_status(struct event_source *src, uint64_t usec, void *userdata)
{
        struct anvil *a = userdata;
        log_stats(a);
        long long sec = config_get_time(service_config(a->svc), "anvil_status_update_time");
        event_source_set_time(src, usec + (uint64_t)(sec > 0 ? sec : 600) * 1000000ULL);
        event_source_set_enabled(src, EVENT_ON);
        return 0;
}

static int anvil_init(struct service *s)
{
        struct anvil *a = service_userdata(s);
        struct config *c = service_config(s);
        a->svc = s;
        a->event = service_event(s);
        a->unit_sec = config_get_time(c, "anvil_rate_time_unit");
        if (a->unit_sec <= 0) {
                msg_warn("anvil_rate_time_unit must be at least 1s: using 60s");
                a->unit_sec = 60;
        }
        a->unit_usec = (uint64_t)a->unit_sec * 1000000ULL;
        long long status_sec = config_get_time(c, "anvil_status_update_time");
        if (status_sec <= 0)
                status_sec = 600;
        a->table = anvil_table_new(a->unit_usec, ANVIL_TABLE_MAX);
        int r = event_add_time_relative(a->event, &a->expire_timer, a->unit_usec, on_expire, a);
        if (r >= 0)
                r = event_add_time_relative(a->event, &a->status_timer, (uint64_t)status_sec * 1000000ULL,
                                            on_status, a);
        if (r >= 0) {
                event_source_set_enabled(a->expire_timer, EVENT_ON);
                event_source_set_enabled(a->status_timer, EVENT_ON);
        }
        if (r < 0)
                msg_error("cannot set up the anvil timers: %s", strerror(-r));
        return r < 0 ? r : 0;
}

static void anvil_stop(struct service *s)
{
        /* What was counted since the last report is logged once more on the way out, as Postfix does. */
        log_stats(service_userdata(s));
}

int main(int argc, char **argv)
{
        struct anvil a = {0};
        const struct service_ops ops = {
                .init = anvil_init,
                .on_connection = on_connection,
                .on_stop = anvil_stop,
                .max_connections = ANVIL_CLIENTS_MAX,
                .long_lived = true,
                .userdata = &a,
        };
        int r = service_main(argc, argv, &ops);
        event_source_disable_unref(a.expire_timer);
        event_source_disable_unref(a.status_timer);
        anvil_table_free(a.table);
        return r;
}
