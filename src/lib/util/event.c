/* event.c: postd's event loop (event.h): one epoll, one signalfd, a heap of monotonic timers, a ready list. */
#include "event.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "macro.h"

/*
 * Why not sd-event: every daemon of every instance mapped libsystemd and the compression and crypto
 * libraries Debian 12's libsystemd links, about 1.1 MiB of RSS per process for a loop this size
 * (bench/README.md, issue 19 item 5).
 */

enum source_type { SOURCE_IO, SOURCE_TIME, SOURCE_SIGNAL, SOURCE_DEFER, SOURCE_EXIT };

#define HEAP_NONE SIZE_MAX

struct event_source {
        struct event_loop *loop;
        enum source_type type;
        unsigned n_ref;
        int enabled;
        int64_t priority;
        bool floating;    /* owned by the loop, holds no reference on it */
        bool dispatching; /* its handler runs: freeing waits for the return */
        bool dead;        /* out of the loop, freed when the handler returns */
        bool ready;
        uint64_t ready_turn;
        struct event_source *ready_prev, *ready_next;
        struct event_source *prev, *next; /* all of the loop's live sources */
        void *userdata;
        union {
                struct {
                        int fd;
                        uint32_t events, revents;
                        bool registered;
                        event_io_handler cb;
                } io;
                struct {
                        uint64_t usec;
                        size_t heap_index;
                        event_time_handler cb;
                } time;
                struct {
                        int sig;
                        struct signalfd_siginfo info;
                        event_signal_handler cb;
                } signal;
                event_handler cb; /* SOURCE_DEFER, SOURCE_EXIT */
        };
};

struct event_loop {
        unsigned n_ref;
        int epoll_fd;
        int signal_fd;
        sigset_t signal_mask;
        struct event_source *signal_sources[_NSIG];
        struct event_source **heap; /* enabled timers that are not ready, earliest first */
        size_t n_heap, heap_cap;
        struct event_source *ready_head, *ready_tail; /* by priority, then by the turn they became ready */
        struct event_source *sources;
        uint64_t turn;
        uint64_t now;
        bool now_valid;
        bool exiting, finished;
        int exit_code;
};

static uint64_t monotonic_usec(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

/* --- the ready list --- */

static void ready_remove(struct event_source *s)
{
        if (!s->ready)
                return;
        struct event_loop *e = s->loop;
        if (s->ready_prev)
                s->ready_prev->ready_next = s->ready_next;
        else
                e->ready_head = s->ready_next;
        if (s->ready_next)
                s->ready_next->ready_prev = s->ready_prev;
        else
                e->ready_tail = s->ready_prev;
        s->ready_prev = s->ready_next = NULL;
        s->ready = false;
}

/* Behind every source of the same or a lower priority value: equal priorities keep their order. */
static void ready_add(struct event_source *s)
{
        if (s->ready)
                return;
        struct event_loop *e = s->loop;
        struct event_source *after = e->ready_tail;
        while (after && after->priority > s->priority)
                after = after->ready_prev;
        s->ready_prev = after;
        s->ready_next = after ? after->ready_next : e->ready_head;
        if (s->ready_next)
                s->ready_next->ready_prev = s;
        else
                e->ready_tail = s;
        if (after)
                after->ready_next = s;
        else
                e->ready_head = s;
        s->ready = true;
        s->ready_turn = e->turn;
}

/* --- the timer heap --- */

static bool heap_before(const struct event_source *a, const struct event_source *b)
{
        return a->time.usec < b->time.usec;
}

static void heap_set(struct event_loop *e, size_t i, struct event_source *s)
{
        e->heap[i] = s;
        s->time.heap_index = i;
}

static void heap_up(struct event_loop *e, size_t i)
{
        struct event_source *s = e->heap[i];
        while (i > 0 && heap_before(s, e->heap[(i - 1) / 2])) {
                heap_set(e, i, e->heap[(i - 1) / 2]);
                i = (i - 1) / 2;
        }
        heap_set(e, i, s);
}

static void heap_down(struct event_loop *e, size_t i)
{
        struct event_source *s = e->heap[i];
        for (;;) {
                size_t c = 2 * i + 1;
                if (c >= e->n_heap)
                        break;
                if (c + 1 < e->n_heap && heap_before(e->heap[c + 1], e->heap[c]))
                        c++;
                if (!heap_before(e->heap[c], s))
                        break;
                heap_set(e, i, e->heap[c]);
                i = c;
        }
        heap_set(e, i, s);
}

static void heap_add(struct event_source *s)
{
        struct event_loop *e = s->loop;
        if (s->time.heap_index != HEAP_NONE)
                return;
        if (e->n_heap == e->heap_cap) {
                e->heap_cap = e->heap_cap ? 2 * e->heap_cap : 16;
                e->heap = xrealloc(e->heap, e->heap_cap * sizeof *e->heap);
        }
        heap_set(e, e->n_heap++, s);
        heap_up(e, e->n_heap - 1);
}

static void heap_remove(struct event_source *s)
{
        struct event_loop *e = s->loop;
        size_t i = s->time.heap_index;
        if (i == HEAP_NONE)
                return;
        s->time.heap_index = HEAP_NONE;
        struct event_source *last = e->heap[--e->n_heap];
        if (i == e->n_heap)
                return;
        heap_set(e, i, last);
        heap_up(e, i);
        heap_down(e, last->time.heap_index);
}

/* --- putting a source on and off --- */

static int signal_mask_update(struct event_loop *e)
{
        if (e->signal_fd < 0) {
                e->signal_fd = signalfd(-1, &e->signal_mask, SFD_NONBLOCK | SFD_CLOEXEC);
                if (e->signal_fd < 0)
                        return -errno;
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = e};
                if (epoll_ctl(e->epoll_fd, EPOLL_CTL_ADD, e->signal_fd, &ev) < 0)
                        return -errno;
                return 0;
        }
        return signalfd(e->signal_fd, &e->signal_mask, SFD_NONBLOCK | SFD_CLOEXEC) < 0 ? -errno : 0;
}

static int io_register(struct event_source *s)
{
        struct epoll_event ev = {.events = s->io.events, .data.ptr = s};
        int op = s->io.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        if (epoll_ctl(s->loop->epoll_fd, op, s->io.fd, &ev) < 0)
                return -errno;
        s->io.registered = true;
        return 0;
}

static void io_unregister(struct event_source *s)
{
        if (!s->io.registered)
                return;
        (void)epoll_ctl(s->loop->epoll_fd, EPOLL_CTL_DEL, s->io.fd, NULL);
        s->io.registered = false;
}

static int source_online(struct event_source *s)
{
        struct event_loop *e = s->loop;
        switch (s->type) {
        case SOURCE_IO: return io_register(s);
        case SOURCE_TIME: heap_add(s); return 0;
        case SOURCE_SIGNAL: sigaddset(&e->signal_mask, s->signal.sig); return signal_mask_update(e);
        case SOURCE_DEFER: ready_add(s); return 0;
        case SOURCE_EXIT: return 0;
        }
        return -EINVAL;
}

static void source_offline(struct event_source *s)
{
        struct event_loop *e = s->loop;
        ready_remove(s);
        switch (s->type) {
        case SOURCE_IO:
                io_unregister(s);
                s->io.revents = 0;
                break;
        case SOURCE_TIME: heap_remove(s); break;
        case SOURCE_SIGNAL:
                sigdelset(&e->signal_mask, s->signal.sig);
                (void)signal_mask_update(e);
                break;
        case SOURCE_DEFER:
        case SOURCE_EXIT: break;
        }
}

int event_source_set_enabled(struct event_source *s, int enabled)
{
        if (!s || s->dead)
                return -EINVAL;
        if (enabled != EVENT_OFF && enabled != EVENT_ON && enabled != EVENT_ONESHOT)
                return -EINVAL;
        bool was_on = s->enabled != EVENT_OFF;
        s->enabled = enabled;
        if (was_on == (enabled != EVENT_OFF))
                return 0;
        if (enabled == EVENT_OFF) {
                source_offline(s);
                return 0;
        }
        int r = source_online(s);
        if (r < 0) {
                s->enabled = EVENT_OFF;
                source_offline(s);
        }
        return r;
}

/* --- creating and freeing --- */

static void source_free(struct event_source *s)
{
        struct event_loop *e = s->loop;
        bool floating = s->floating;
        free(s);
        if (!floating)
                event_loop_unref(e);
}

/* Out of the loop now; the memory goes once no handler of it runs. */
static void source_kill(struct event_source *s)
{
        struct event_loop *e = s->loop;
        if (s->enabled != EVENT_OFF)
                source_offline(s);
        s->enabled = EVENT_OFF;
        if (s->type == SOURCE_SIGNAL && e->signal_sources[s->signal.sig] == s)
                e->signal_sources[s->signal.sig] = NULL;
        if (s->prev)
                s->prev->next = s->next;
        else
                e->sources = s->next;
        if (s->next)
                s->next->prev = s->prev;
        s->dead = true;
        if (!s->dispatching)
                source_free(s);
}

static struct event_source *source_new(struct event_loop *e, struct event_source **ret,
                                       enum source_type type, void *userdata)
{
        struct event_source *s = xcalloc(1, sizeof *s);
        s->loop = e;
        s->type = type;
        s->n_ref = 1;
        s->userdata = userdata;
        s->floating = !ret;
        if (!s->floating)
                event_loop_ref(e);
        s->next = e->sources;
        if (s->next)
                s->next->prev = s;
        e->sources = s;
        return s;
}

/* Enable a new source; on failure it is freed again. */
static int source_start(struct event_source *s, int enabled, struct event_source **ret)
{
        int r = event_source_set_enabled(s, enabled);
        if (r < 0) {
                source_kill(s);
                return r;
        }
        if (ret)
                *ret = s;
        return 0;
}

int event_add_io(struct event_loop *e, struct event_source **ret, int fd, uint32_t events,
                 event_io_handler cb, void *userdata)
{
        if (fd < 0 || !cb)
                return -EINVAL;
        struct event_source *s = source_new(e, ret, SOURCE_IO, userdata);
        s->io.fd = fd;
        s->io.events = events;
        s->io.cb = cb;
        return source_start(s, EVENT_ON, ret);
}

int event_add_time(struct event_loop *e, struct event_source **ret, uint64_t usec, event_time_handler cb,
                   void *userdata)
{
        if (!cb)
                return -EINVAL;
        struct event_source *s = source_new(e, ret, SOURCE_TIME, userdata);
        s->time.usec = usec;
        s->time.heap_index = HEAP_NONE;
        s->time.cb = cb;
        return source_start(s, EVENT_ONESHOT, ret);
}

static uint64_t add_saturating(uint64_t a, uint64_t b)
{
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

int event_add_time_relative(struct event_loop *e, struct event_source **ret, uint64_t usec,
                            event_time_handler cb, void *userdata)
{
        return event_add_time(e, ret, add_saturating(event_loop_now(e), usec), cb, userdata);
}

int event_add_signal(struct event_loop *e, struct event_source **ret, int sig, event_signal_handler cb,
                     void *userdata)
{
        if (sig <= 0 || sig >= _NSIG || !cb)
                return -EINVAL;
        if (e->signal_sources[sig])
                return -EBUSY;
        struct event_source *s = source_new(e, ret, SOURCE_SIGNAL, userdata);
        s->signal.sig = sig;
        s->signal.cb = cb;
        e->signal_sources[sig] = s;
        return source_start(s, EVENT_ON, ret);
}

/* SOURCE_DEFER and SOURCE_EXIT: a plain handler, one-shot. */
static int add_plain(struct event_loop *e, struct event_source **ret, enum source_type type,
                     event_handler cb, void *userdata)
{
        if (!cb)
                return -EINVAL;
        struct event_source *s = source_new(e, ret, type, userdata);
        s->cb = cb;
        return source_start(s, EVENT_ONESHOT, ret);
}

int event_add_defer(struct event_loop *e, struct event_source **ret, event_handler cb, void *userdata)
{
        return add_plain(e, ret, SOURCE_DEFER, cb, userdata);
}

int event_add_exit(struct event_loop *e, struct event_source **ret, event_handler cb, void *userdata)
{
        return add_plain(e, ret, SOURCE_EXIT, cb, userdata);
}

struct event_source *event_source_ref(struct event_source *s)
{
        if (s)
                s->n_ref++;
        return s;
}

struct event_source *event_source_unref(struct event_source *s)
{
        if (!s || --s->n_ref > 0)
                return NULL;
        source_kill(s);
        return NULL;
}

struct event_source *event_source_disable_unref(struct event_source *s)
{
        if (s && !s->dead)
                (void)event_source_set_enabled(s, EVENT_OFF);
        return event_source_unref(s);
}

struct event_loop *event_source_loop(struct event_source *s)
{
        return s->loop;
}

int event_source_set_priority(struct event_source *s, int64_t priority)
{
        s->priority = priority;
        if (s->ready) {
                /* Its place in the ready list depends on it. */
                uint64_t turn = s->ready_turn;
                ready_remove(s);
                ready_add(s);
                s->ready_turn = turn;
        }
        return 0;
}

int event_source_set_io_events(struct event_source *s, uint32_t events)
{
        if (s->type != SOURCE_IO)
                return -EINVAL;
        if (s->io.events == events)
                return 0;
        s->io.events = events;
        return s->io.registered ? io_register(s) : 0;
}

int event_source_set_time(struct event_source *s, uint64_t usec)
{
        if (s->type != SOURCE_TIME)
                return -EINVAL;
        s->time.usec = usec;
        ready_remove(s);
        if (s->time.heap_index != HEAP_NONE) {
                heap_up(s->loop, s->time.heap_index);
                heap_down(s->loop, s->time.heap_index);
        } else if (s->enabled != EVENT_OFF)
                heap_add(s);
        return 0;
}

int event_source_set_time_relative(struct event_source *s, uint64_t usec)
{
        return event_source_set_time(s, add_saturating(event_loop_now(s->loop), usec));
}

/* --- the loop --- */

int event_loop_new(struct event_loop **ret)
{
        struct event_loop *e = xcalloc(1, sizeof *e);
        e->n_ref = 1;
        e->signal_fd = -1;
        sigemptyset(&e->signal_mask);
        e->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (e->epoll_fd < 0) {
                int r = -errno;
                free(e);
                return r;
        }
        *ret = e;
        return 0;
}

struct event_loop *event_loop_ref(struct event_loop *e)
{
        if (e)
                e->n_ref++;
        return e;
}

struct event_loop *event_loop_unref(struct event_loop *e)
{
        if (!e || --e->n_ref > 0)
                return NULL;
        /* Only floating sources are left: the others hold a reference. */
        e->n_ref = 1; /* freeing them must not free the loop again */
        while (e->sources)
                source_kill(e->sources);
        if (e->signal_fd >= 0)
                close(e->signal_fd);
        close(e->epoll_fd);
        free(e->heap);
        free(e);
        return NULL;
}

uint64_t event_loop_now(struct event_loop *e)
{
        return e->now_valid ? e->now : monotonic_usec();
}

int event_loop_exit(struct event_loop *e, int code)
{
        if (e->finished)
                return -ESTALE;
        if (!e->exiting) {
                e->exiting = true;
                e->exit_code = code;
        }
        return 0;
}

static int wait_ms(struct event_loop *e, uint64_t timeout_usec)
{
        if (e->ready_head)
                return 0;
        uint64_t wait = timeout_usec;
        if (e->n_heap > 0) {
                uint64_t now = monotonic_usec(), due = e->heap[0]->time.usec;
                uint64_t until = due <= now ? 0 : due - now;
                if (until < wait)
                        wait = until;
        }
        if (wait == UINT64_MAX)
                return -1;
        uint64_t ms = (wait + 999) / 1000; /* late rather than early: the timer must be due on waking */
        return ms > INT_MAX ? INT_MAX : (int)ms;
}

static void read_signals(struct event_loop *e)
{
        struct signalfd_siginfo si;
        while (read(e->signal_fd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo >= _NSIG)
                        continue;
                struct event_source *s = e->signal_sources[si.ssi_signo];
                if (s && s->enabled != EVENT_OFF) {
                        s->signal.info = si;
                        ready_add(s);
                }
        }
}

/* Mark what epoll and the clock report as ready. */
static int collect(struct event_loop *e, uint64_t timeout_usec)
{
        struct epoll_event evs[64];
        int n = epoll_wait(e->epoll_fd, evs, (int)ELEMENTSOF(evs), wait_ms(e, timeout_usec));
        if (n < 0 && errno != EINTR)
                return -errno;
        e->now = monotonic_usec();
        e->now_valid = true;
        for (int i = 0; i < n; i++) {
                if (evs[i].data.ptr == e) {
                        read_signals(e);
                        continue;
                }
                struct event_source *s = evs[i].data.ptr;
                s->io.revents |= evs[i].events;
                ready_add(s);
        }
        while (e->n_heap > 0 && e->heap[0]->time.usec <= e->now) {
                struct event_source *s = e->heap[0];
                heap_remove(s);
                ready_add(s);
        }
        return 0;
}

static int call(struct event_source *s)
{
        switch (s->type) {
        case SOURCE_IO: {
                uint32_t revents = s->io.revents;
                s->io.revents = 0;
                return s->io.cb(s, s->io.fd, revents, s->userdata);
        }
        case SOURCE_TIME: return s->time.cb(s, s->time.usec, s->userdata);
        case SOURCE_SIGNAL: return s->signal.cb(s, &s->signal.info, s->userdata);
        case SOURCE_DEFER:
        case SOURCE_EXIT: return s->cb(s, s->userdata);
        }
        return -EINVAL;
}

static void dispatch(struct event_source *s)
{
        ready_remove(s);
        if (s->enabled == EVENT_ONESHOT)
                (void)event_source_set_enabled(s, EVENT_OFF);
        s->dispatching = true;
        int r = call(s);
        s->dispatching = false;
        if (s->dead) {
                source_free(s);
                return;
        }
        if (r < 0)
                (void)event_source_set_enabled(s, EVENT_OFF);
        else if (s->enabled != EVENT_OFF && s->type == SOURCE_TIME && !s->ready)
                heap_add(s); /* still on: it fires again at its (maybe new) time */
        else if (s->enabled != EVENT_OFF && s->type == SOURCE_DEFER)
                ready_add(s); /* next turn */
}

static int run_exit_sources(struct event_loop *e)
{
        for (;;) {
                struct event_source *best = NULL;
                for (struct event_source *s = e->sources; s; s = s->next)
                        if (s->type == SOURCE_EXIT && s->enabled != EVENT_OFF &&
                            (!best || s->priority < best->priority))
                                best = s;
                if (!best)
                        break;
                best->enabled = EVENT_ONESHOT; /* once, whatever it was set to */
                dispatch(best);
        }
        e->finished = true;
        return 1;
}

/* The first source, by priority, that was ready when the turn began; those made ready since wait. */
static struct event_source *first_ready_since(struct event_loop *e, uint64_t turn)
{
        struct event_source *s = e->ready_head;
        while (s && s->ready_turn > turn)
                s = s->ready_next;
        return s;
}

int event_loop_step(struct event_loop *e, uint64_t timeout_usec)
{
        if (e->finished)
                return -ESTALE;
        event_loop_ref(e);
        int r = 0;
        if (!e->exiting)
                r = collect(e, timeout_usec);
        if (r >= 0 && !e->exiting) {
                uint64_t turn = e->turn++;
                struct event_source *s;
                while (!e->exiting && (s = first_ready_since(e, turn))) {
                        dispatch(s);
                        r = 1;
                }
        }
        if (r >= 0 && e->exiting)
                r = run_exit_sources(e);
        event_loop_unref(e);
        return r;
}

int event_loop_run(struct event_loop *e)
{
        while (!e->finished) {
                int r = event_loop_step(e, UINT64_MAX);
                if (r < 0)
                        return r;
        }
        return e->exit_code;
}
