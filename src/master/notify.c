/* notify.c: the master's reports to systemd: READY/RELOADING/STOPPING, live STATUS= figures, WATCHDOG=1. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "master.h"
#include "sd_notify.h"

static long count_dir_fd(int dfd, long max, int depth)
{
        DIR *d = fdopendir(dfd);
        if (!d) {
                int e = errno;
                close(dfd);
                return -e;
        }
        long n = 0;
        struct dirent *de;
        while (n < max && (de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue; /* ".", "..", and files still being written (QUEUE_TMP_PREFIX) */
                if (de->d_type == DT_DIR && depth > 0) {
                        /* hash_queue_depth: a subdirectory of queue files, never deeper than that */
                        int sub = openat(dirfd(d), de->d_name,
                                         O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                        if (sub >= 0) {
                                long k = count_dir_fd(sub, max - n, depth - 1);
                                if (k > 0)
                                        n += k;
                        }
                        continue;
                }
                n++;
        }
        closedir(d);
        return n;
}

long master_count_queue(const char *dir, long max)
{
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return count_dir_fd(fd, max, 2);
}

static void put_count(struct buf *b, long n, const char *what)
{
        if (n < 0)
                buf_printf(b, "? %s", what);
        else
                buf_printf(b, "%ld%s %s", n, n >= MASTER_STATUS_SCAN_MAX ? "+" : "", what);
}

/* "inet 127.0.0.1 2525" -> "127.0.0.1:2525", "inet ::1 25" -> "[::1]:25"; NULL for other keys. */
static char *listener_address(const char *key)
{
        if (!key || strncmp(key, "inet ", 5) != 0)
                return NULL;
        const char *host = key + 5, *sp = strrchr(host, ' ');
        if (!sp)
                return NULL;
        int hl = (int)(sp - host);
        if (memchr(host, ':', (size_t)hl))
                return xasprintf("[%.*s]:%s", hl, host, sp + 1);
        return xasprintf("%.*s:%s", hl, host, sp + 1);
}

char *master_status_text(const struct master *m, long active, long deferred)
{
        struct buf b = BUF_INIT;
        size_t shown = 0, more = 0;
        for (size_t i = 0; i < m->n_services; i++) {
                const struct master_service *s = &m->services[i];
                for (size_t j = 0; j < s->n_listeners; j++) {
                        _cleanup_free_ char *a = listener_address(s->listeners[j].key);
                        if (!a)
                                continue;
                        if (shown >= MASTER_STATUS_ADDRS_MAX) {
                                more++;
                                continue;
                        }
                        buf_puts(&b, shown ? ", " : "accepting on ");
                        buf_puts(&b, a);
                        shown++;
                }
        }
        if (more)
                buf_printf(&b, " (+%zu more)", more);
        if (!shown)
                buf_puts(&b, "no inet listeners");
        buf_puts(&b, "; queue: ");
        put_count(&b, active, "active");
        buf_puts(&b, ", ");
        put_count(&b, deferred, "deferred");
        buf_printf(&b, "; %u processes", m->n_procs);
        return buf_steal(&b);
}

static void send_status(struct master *m)
{
        _cleanup_free_ char *active = xasprintf("%s/active", m->paths.queue_dir);
        _cleanup_free_ char *deferred = xasprintf("%s/deferred", m->paths.queue_dir);
        char *text = master_status_text(m, master_count_queue(active, MASTER_STATUS_SCAN_MAX),
                                        master_count_queue(deferred, MASTER_STATUS_SCAN_MAX));
        if (m->status && streq(m->status, text)) {
                free(text);
                return;
        }
        free(m->status);
        m->status = text;
        notify_sendf("STATUS=%s", text);
}

void master_notify(struct master *m, enum master_state state)
{
        m->state = state;
        switch (state) {
        case MASTER_STARTING: notify_send("STATUS=starting: queue recovery"); break;
        case MASTER_READY:
                /* Called after queue recovery and once every listener and service is set up. */
                free(m->status);
                m->status = NULL;
                send_status(m);
                notify_sendf("READY=1\nMAINPID=%d", (int)getpid());
                if (m->ready_fd >= 0) {
                        if (write(m->ready_fd, "R", 1) < 0) {
                                /* the parent is gone: nothing to tell */
                        }
                        close(m->ready_fd);
                        m->ready_fd = -1;
                }
                break;
        case MASTER_RELOADING: {
                /* MONOTONIC_USEC lets systemd match this RELOADING=1 to the reload it asked for. */
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                notify_sendf("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
                             (unsigned long long)ts.tv_sec * 1000000ULL +
                                     (unsigned long long)ts.tv_nsec / 1000);
                break;
        }
        case MASTER_STOPPING: notify_send("STOPPING=1\nSTATUS=stopping"); break;
        }
}

static int rearm(struct event_source *src, uint64_t usec, uint64_t interval)
{
        int r = event_source_set_time(src, usec + interval);
        if (r >= 0)
                r = event_source_set_enabled(src, EVENT_ONESHOT);
        return r;
}

static int on_status_timer(struct event_source *src, uint64_t usec, void *userdata)
{
        struct master *m = userdata;
        if (m->state == MASTER_READY)
                send_status(m);
        return rearm(src, usec, MASTER_STATUS_INTERVAL_USEC);
}

/* The interval is half of WatchdogSec=, as sd_watchdog_enabled(3) advises. */
static int on_watchdog_timer(struct event_source *src, uint64_t usec, void *userdata)
{
        uint64_t *interval = userdata;
        notify_send("WATCHDOG=1");
        return rearm(src, usec, *interval);
}

static uint64_t watchdog_interval;

void master_notify_start_timers(struct master *m)
{
        uint64_t now = event_loop_now(m->event);
        if (!getenv("NOTIFY_SOCKET"))
                return; /* nobody to tell: no timers */
        int r = event_add_time(m->event, &m->status_timer, now + MASTER_STATUS_INTERVAL_USEC,
                               on_status_timer, m);
        if (r < 0)
                msg_warn("STATUS= refresh timer: %s", strerror(-r));
        uint64_t wd = 0;
        if (notify_watchdog_usec(&wd) > 0 && wd > 0) {
                watchdog_interval = wd / 2;
                r = event_add_time(m->event, &m->watchdog_timer, now + watchdog_interval, on_watchdog_timer,
                                   &watchdog_interval);
                if (r < 0)
                        msg_warn("watchdog timer: %s", strerror(-r));
                else
                        notify_send("WATCHDOG=1");
        }
}

void master_notify_free(struct master *m)
{
        m->status_timer = event_source_disable_unref(m->status_timer);
        m->watchdog_timer = event_source_disable_unref(m->watchdog_timer);
        free(m->status);
        m->status = NULL;
}
