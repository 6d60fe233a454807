/* test_event.c: the event loop: descriptors, timers in time order, signals, dispatch order within a turn,
 * one-shot and failing handlers, sources freed from handlers, exit work, ownership. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "event.h"

/* Every handler appends its tag here, so a test can check what ran and in which order. */
static char trace[256];

static void note(const char *tag)
{
        size_t n = strlen(trace);
        snprintf(trace + n, sizeof trace - n, "%s%s", n ? " " : "", tag);
}

static int on_io(struct event_source *s, int fd, uint32_t revents, void *userdata)
{
        char c;
        if (revents & EPOLLIN)
                (void)!read(fd, &c, 1);
        note(userdata);
        return 0;
}

static int on_io_fail(struct event_source *s, int fd, uint32_t revents, void *userdata)
{
        note(userdata);
        return -EIO;
}

static int on_time(struct event_source *s, uint64_t usec, void *userdata)
{
        note(userdata);
        return 0;
}

static int on_defer(struct event_source *s, void *userdata)
{
        note(userdata);
        return 0;
}

static int new_pipe(int p[2])
{
        return pipe2(p, O_CLOEXEC | O_NONBLOCK);
}

/* Steps until nothing is dispatched in a turn that did not wait (bounded). */
static void drain(struct event_loop *e)
{
        for (int i = 0; i < 100 && event_loop_step(e, 0) > 0; i++)
                ;
}

TEST(io_on_stays_oneshot_goes_off_fails_off)
{
        struct event_loop *e;
        CHECK(event_loop_new(&e) == 0);
        int a[2], b[2], c[2];
        CHECK(new_pipe(a) == 0 && new_pipe(b) == 0 && new_pipe(c) == 0);
        struct event_source *sa, *sb, *sc;
        CHECK(event_add_io(e, &sa, a[0], EPOLLIN, on_io, "a") == 0);
        CHECK(event_add_io(e, &sb, b[0], EPOLLIN, on_io, "b") == 0);
        CHECK(event_add_io(e, &sc, c[0], EPOLLIN, on_io_fail, "c") == 0);
        CHECK(event_source_set_enabled(sb, EVENT_ONESHOT) == 0);
        trace[0] = '\0';
        CHECK(event_loop_step(e, 0) == 0); /* nothing readable */
        CHECK_STR(trace, "");
        for (int round = 0; round < 2; round++) {
                CHECK(write(a[1], "x", 1) == 1 && write(b[1], "x", 1) == 1);
                CHECK(write(c[1], "xx", 2) == 2); /* still readable after the failing handler */
                drain(e);
        }
        /* a twice, b once (one-shot), c once (its failure turned it off) */
        CHECK_STR(trace, "a b c a");
        event_source_disable_unref(sa);
        event_source_disable_unref(sb);
        event_source_disable_unref(sc);
        for (int i = 0; i < 2; i++) {
                close(a[i]);
                close(b[i]);
                close(c[i]);
        }
        CHECK(event_loop_unref(e) == NULL);
}

TEST(timers_fire_in_time_order_and_move)
{
        struct event_loop *e;
        CHECK(event_loop_new(&e) == 0);
        static const char *const tags[] = {"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"};
        /* Added out of order: 5 3 7 0 6 2 4 1 (ms from now). */
        static const int order[] = {5, 3, 7, 0, 6, 2, 4, 1};
        struct event_source *t[8];
        uint64_t now = event_loop_now(e);
        for (int i = 0; i < 8; i++)
                CHECK(event_add_time(e, &t[order[i]], now + 1000 * (uint64_t)(order[i] + 1), on_time,
                                     (void *)tags[order[i]]) == 0);
        /* t7 moves before everything, t0 after everything, t4 is switched off. */
        CHECK(event_source_set_time(t[7], now + 1) == 0);
        CHECK(event_source_set_time(t[0], now + 20000) == 0);
        CHECK(event_source_set_enabled(t[4], EVENT_OFF) == 0);
        trace[0] = '\0';
        for (int i = 0; i < 100 && strlen(trace) < 20; i++)
                CHECK(event_loop_step(e, 200 * 1000) >= 0);
        CHECK_STR(trace, "t7 t1 t2 t3 t5 t6 t0");
        CHECK(event_loop_now(e) >= now + 20000); /* t0 did not fire early */
        for (int i = 0; i < 8; i++)
                event_source_unref(t[i]);
        CHECK(event_loop_unref(e) == NULL);
}

/* One turn: normal priority before idle; work deferred by a handler after the turn's other ready sources. */
struct order_ctx {
        struct event_source *defer;
        struct event_source *victim;
};

static int on_io_defers(struct event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct order_ctx *o = userdata;
        char c;
        (void)!read(fd, &c, 1);
        note("first");
        event_source_set_enabled(o->defer, EVENT_ONESHOT);
        /* A source that was ready in this turn and is dropped now must not run. */
        o->victim = event_source_disable_unref(o->victim);
        return 0;
}

TEST(dispatch_order_within_a_turn)
{
        struct event_loop *e;
        CHECK(event_loop_new(&e) == 0);
        int p[4][2];
        for (int i = 0; i < 4; i++)
                CHECK(new_pipe(p[i]) == 0);
        struct order_ctx o = {0};
        struct event_source *idle, *first, *second;
        CHECK(event_add_defer(e, &o.defer, on_defer, "deferred") == 0);
        CHECK(event_source_set_enabled(o.defer, EVENT_OFF) == 0);
        CHECK(event_add_io(e, &idle, p[0][0], EPOLLIN, on_io, "idle") == 0);
        CHECK(event_source_set_priority(idle, EVENT_PRIORITY_IDLE) == 0);
        CHECK(event_add_io(e, &first, p[1][0], EPOLLIN, on_io_defers, &o) == 0);
        CHECK(event_add_io(e, &second, p[2][0], EPOLLIN, on_io, "second") == 0);
        CHECK(event_add_io(e, &o.victim, p[3][0], EPOLLIN, on_io, "victim") == 0);
        for (int i = 0; i < 4; i++)
                CHECK(write(p[i][1], "x", 1) == 1);
        trace[0] = '\0';
        CHECK(event_loop_step(e, 0) == 1);
        /* epoll reports the pipes in the order they became readable; idle goes last, the victim never,
         * the deferred work in the next turn. */
        CHECK_STR(trace, "first second idle");
        CHECK(event_loop_step(e, 0) == 1);
        CHECK_STR(trace, "first second idle deferred");
        event_source_unref(idle);
        event_source_unref(first);
        event_source_unref(second);
        event_source_unref(o.defer);
        for (int i = 0; i < 4; i++) {
                close(p[i][0]);
                close(p[i][1]);
        }
        CHECK(event_loop_unref(e) == NULL);
}

/* A handler that drops its own source and closes its descriptor; the loop must not touch either after. */
static int on_io_self_destruct(struct event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct event_source **self = userdata;
        *self = event_source_unref(*self);
        close(fd);
        note("gone");
        return 0;
}

TEST(source_freed_by_its_own_handler)
{
        struct event_loop *e;
        CHECK(event_loop_new(&e) == 0);
        int p[2];
        CHECK(new_pipe(p) == 0);
        struct event_source *s;
        CHECK(event_add_io(e, &s, p[0], EPOLLIN, on_io_self_destruct, &s) == 0);
        CHECK(write(p[1], "x", 1) == 1);
        trace[0] = '\0';
        CHECK(event_loop_step(e, 0) == 1);
        CHECK_STR(trace, "gone");
        CHECK(s == NULL);
        /* The number is reused at once; a new source on it works. */
        int q[2];
        CHECK(new_pipe(q) == 0);
        struct event_source *t;
        CHECK(event_add_io(e, &t, q[0], EPOLLIN, on_io, "new") == 0);
        CHECK(write(q[1], "x", 1) == 1);
        CHECK(event_loop_step(e, 0) == 1);
        CHECK_STR(trace, "gone new");
        event_source_unref(t);
        close(p[1]);
        close(q[0]);
        close(q[1]);
        CHECK(event_loop_unref(e) == NULL);
}

static int on_signal(struct event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        *(int *)userdata = (int)si->ssi_signo;
        return 0;
}

TEST(signals_arrive_as_events)
{
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGUSR1);
        sigaddset(&mask, SIGUSR2);
        CHECK(sigprocmask(SIG_BLOCK, &mask, NULL) == 0);
        struct event_loop *e;
        CHECK(event_loop_new(&e) == 0);
        int got1 = 0, got2 = 0;
        CHECK(event_add_signal(e, NULL, SIGUSR1, on_signal, &got1) == 0);
        struct event_source *s2;
        CHECK(event_add_signal(e, &s2, SIGUSR2, on_signal, &got2) == 0);
        CHECK(event_add_signal(e, NULL, SIGUSR1, on_signal, &got1) == -EBUSY);
        CHECK(event_source_set_enabled(s2, EVENT_OFF) == 0);
        CHECK(kill(getpid(), SIGUSR1) == 0);
        CHECK(kill(getpid(), SIGUSR2) == 0);
        for (int i = 0; i < 50 && !got1; i++)
                CHECK(event_loop_step(e, 100 * 1000) >= 0);
        CHECK_INT(got1, SIGUSR1);
        CHECK_INT(got2, 0); /* off: left pending in the kernel */
        CHECK(event_source_set_enabled(s2, EVENT_ON) == 0);
        for (int i = 0; i < 50 && !got2; i++)
                CHECK(event_loop_step(e, 100 * 1000) >= 0);
        CHECK_INT(got2, SIGUSR2);
        event_source_unref(s2);
        CHECK(event_loop_unref(e) == NULL); /* the floating SIGUSR1 source goes with the loop */
        CHECK(sigprocmask(SIG_UNBLOCK, &mask, NULL) == 0);
}

static int on_io_exits(struct event_source *s, int fd, uint32_t revents, void *userdata)
{
        char c;
        (void)!read(fd, &c, 1);
        note("exit");
        event_loop_exit(event_source_loop(s), 7);
        return 0;
}

TEST(exit_stops_the_turn_and_runs_exit_work_once)
{
        struct event_loop *e;
        CHECK(event_loop_new(&e) == 0);
        int p[2][2];
        CHECK(new_pipe(p[0]) == 0 && new_pipe(p[1]) == 0);
        struct event_source *x, *y, *bye;
        CHECK(event_add_io(e, &x, p[0][0], EPOLLIN, on_io_exits, NULL) == 0);
        CHECK(event_add_io(e, &y, p[1][0], EPOLLIN, on_io, "late") == 0);
        CHECK(event_source_set_priority(y, EVENT_PRIORITY_IDLE) == 0); /* behind x in the turn */
        CHECK(event_add_exit(e, &bye, on_defer, "bye") == 0);
        CHECK(event_source_set_enabled(bye, EVENT_ON) == 0); /* still once */
        CHECK(write(p[0][1], "x", 1) == 1 && write(p[1][1], "x", 1) == 1);
        trace[0] = '\0';
        CHECK_INT(event_loop_run(e), 7);
        CHECK_STR(trace, "exit bye");
        CHECK_INT(event_loop_step(e, 0), -ESTALE);
        event_source_unref(x);
        event_source_unref(y);
        event_source_unref(bye);
        for (int i = 0; i < 2; i++) {
                close(p[i][0]);
                close(p[i][1]);
        }
        CHECK(event_loop_unref(e) == NULL);
}

TEST(a_held_source_keeps_the_loop)
{
        struct event_loop *e;
        CHECK(event_loop_new(&e) == 0);
        struct event_source *t;
        CHECK(event_add_time_relative(e, &t, 1000, on_time, "t") == 0);
        CHECK(event_loop_unref(e) == NULL);
        /* Still usable: the source holds the loop (ASan would report a use after free). */
        CHECK(event_source_loop(t) == e);
        CHECK(event_source_set_time_relative(t, 0) == 0);
        trace[0] = '\0';
        for (int i = 0; i < 10 && !trace[0]; i++)
                CHECK(event_loop_step(e, 100 * 1000) >= 0);
        CHECK_STR(trace, "t");
        event_source_unref(t); /* frees the loop too */
}
