/* sdproto-probe.c: a Type=notify test service that speaks systemd's daemon protocols through
 * src/lib/util's own code (no libsystemd calls), so that test_sdproto.py can read back, from a real
 * systemd and journald, what each of them received. Test-only, never installed. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "alloc.h"
#include "buf.h"
#include "journal_send.h"
#include "listen_fds.h"
#include "macro.h"
#include "sd_notify.h"

/* Size of the large entry's PROBE_BIG field: above any datagram (2 x the 8 MiB SO_SNDBUF asked for). */
#define PROBE_BIG_SIZE ((size_t)17 << 20)

static int send_fields(struct strv *fields)
{
        struct iovec iov[16];
        for (size_t i = 0; i < fields->n && i < ELEMENTSOF(iov); i++)
                iov[i] = (struct iovec){.iov_base = fields->v[i], .iov_len = strlen(fields->v[i])};
        int r = journal_sendv(iov, fields->n);
        strv_done(fields);
        return r;
}

/* What socket activation, the watchdog variables and the booted test gave us, as one journal entry. */
static int report_start(int n, char **names, uint64_t wd)
{
        struct strv f = STRV_INIT;
        struct buf joined = BUF_INIT;
        bool cloexec = true;
        for (int i = 0; i < n; i++) {
                buf_printf(&joined, "%s%s", i ? ":" : "", names[i]);
                cloexec = cloexec && (fcntl(LISTEN_FDS_START + i, F_GETFD) & FD_CLOEXEC);
        }
        strv_push(&f, "MESSAGE=sdproto-probe started");
        strv_push(&f, "PROBE=start");
        strv_push_take(&f, xasprintf("PROBE_FDS=%d", n));
        strv_push_take(&f, xasprintf("PROBE_NAMES=%s", buf_str(&joined)));
        strv_push_take(&f, xasprintf("PROBE_CLOEXEC=%d", cloexec));
        strv_push_take(&f, xasprintf("PROBE_ENV_LEFT=%d", getenv("LISTEN_FDS") || getenv("LISTEN_PID")));
        strv_push_take(&f, xasprintf("PROBE_WATCHDOG_USEC=%llu", (unsigned long long)wd));
        strv_push_take(&f, xasprintf("PROBE_BOOTED=%d", systemd_booted()));
        buf_done(&joined);
        return send_fields(&f);
}

/* A multi-line value (binary framing), a value with a NUL, and an entry larger than a datagram. */
static int report_framing(void)
{
        static const char nul[] = "PROBE_NUL=a\0b";
        static const char multi[] = "MESSAGE=first line\nsecond line=with equals\n";
        struct iovec iov[] = {{.iov_base = (void *)"PROBE=framing", .iov_len = 13},
                              {.iov_base = (void *)multi, .iov_len = sizeof multi - 1},
                              {.iov_base = (void *)nul, .iov_len = sizeof nul - 1}};
        int r = journal_sendv(iov, ELEMENTSOF(iov));
        if (r < 0)
                return r;
        char *big = xmalloc(PROBE_BIG_SIZE);
        size_t prefix = strlen("PROBE_BIG=");
        memcpy(big, "PROBE_BIG=", prefix);
        for (size_t i = prefix; i < PROBE_BIG_SIZE; i++)
                big[i] = (char)('a' + (i * 7 + i / 4096) % 26);
        struct iovec bigv[] = {{.iov_base = (void *)"PROBE=big", .iov_len = 9},
                               {.iov_base = (void *)"MESSAGE=sdproto-probe big entry", .iov_len = 31},
                               {.iov_base = big, .iov_len = PROBE_BIG_SIZE}};
        r = journal_sendv(bigv, ELEMENTSOF(bigv));
        free(big);
        return r;
}

static void fail(const char *what, int r)
{
        fprintf(stderr, "sdproto-probe: %s: %s\n", what, strerror(-r));
        exit(1);
}

int main(void)
{
        char **names = NULL;
        int n = listen_fds_take(&names);
        if (n < 0)
                fail("listen_fds_take", n);
        uint64_t wd = 0;
        int r = notify_watchdog_usec(&wd);
        if (r < 0)
                fail("notify_watchdog_usec", r);
        if ((r = report_start(n, names, wd)) < 0)
                fail("journal_sendv", r);
        if ((r = report_framing()) < 0)
                fail("journal_sendv (framing)", r);
        if ((r = notify_sendf("READY=1\nSTATUS=probe ready, %d sockets", n)) <= 0)
                fail("notify_sendf", r ? r : -ENOTCONN);
        /* Keep the watchdog fed at half its interval (PROBE_NO_PING: let it starve) until SIGTERM. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigprocmask(SIG_BLOCK, &set, NULL);
        bool ping = wd > 0 && !getenv("PROBE_NO_PING");
        uint64_t period = ping ? wd / 2 : 3600 * USEC_PER_SEC;
        for (;;) {
                struct timespec ts = {.tv_sec = (time_t)(period / USEC_PER_SEC),
                                      .tv_nsec = (long)(period % USEC_PER_SEC) * 1000};
                if (sigtimedwait(&set, NULL, &ts) == SIGTERM)
                        break;
                if (ping)
                        (void)notify_send("WATCHDOG=1");
        }
        (void)notify_send("STOPPING=1");
        for (int i = 0; names && names[i]; i++)
                free(names[i]);
        free(names);
        return 0;
}
