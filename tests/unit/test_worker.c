/* test_worker.c: the worker pool: every job's work then done on the loop, any finishing order, an owner
 * gone before its job ends, a full queue. */
#include "unit.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "alloc.h"
#include "worker.h"

#define DEADLINE_USEC (20 * 1000000ULL)

static struct event_loop *loop(void)
{
        static struct event_loop *e;
        if (!e && event_loop_new(&e) < 0)
                abort();
        return e;
}

static uint64_t now_usec(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Run the loop until *count reaches want or the deadline passes; the count reached. */
static unsigned run_until(const unsigned *count, unsigned want)
{
        uint64_t end = now_usec() + DEADLINE_USEC;
        while (*count < want && now_usec() < end)
                if (event_loop_step(loop(), 100 * 1000) < 0)
                        break;
        return *count;
}

/* ---- many jobs ---- */

struct plain {
        atomic_bool worked;
        bool bad; /* done ran before work, off the loop's thread, or twice */
        bool finished;
};

static pthread_t loop_thread;
static unsigned plain_done;

static void plain_work(void *userdata)
{
        struct plain *p = userdata;
        p->worked = true;
}

static void plain_finish(void *userdata)
{
        struct plain *p = userdata;
        if (!p->worked || !pthread_equal(pthread_self(), loop_thread) || p->finished)
                p->bad = true;
        p->finished = true;
        plain_done++;
}

TEST(many_jobs_each_work_then_done_on_the_loop)
{
        enum { N = 500 };
        loop_thread = pthread_self();
        plain_done = 0;
        struct plain *p = xcalloc(N, sizeof *p);
        for (unsigned i = 0; i < N; i++)
                CHECK_INT(worker_run(loop(), plain_work, plain_finish, &p[i]), 0);
        /* never from inside worker_run */
        CHECK_INT(plain_done, 0);
        CHECK_INT(run_until(&plain_done, N), N);
        for (unsigned i = 0; i < N; i++) {
                CHECK(p[i].finished);
                CHECK(!p[i].bad);
        }
        /* and nothing more arrives */
        CHECK(event_loop_step(loop(), 50 * 1000) >= 0);
        CHECK_INT(plain_done, N);
        free(p);
}

/* ---- finishing order ---- */

static sem_t gate;
static unsigned order[2], n_order;

static void slow_work(void *userdata)
{
        (void)userdata;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 20;
        /* released by the quick job's done: a pool that ran jobs one by one would never get there */
        (void)sem_timedwait(&gate, &ts);
}

static void quick_work(void *userdata)
{
        (void)userdata;
}

static void slow_done(void *userdata)
{
        (void)userdata;
        order[n_order++] = 1;
}

static void quick_done(void *userdata)
{
        (void)userdata;
        order[n_order++] = 2;
        sem_post(&gate);
}

TEST(a_later_job_finishes_first)
{
        sem_init(&gate, 0, 0);
        n_order = 0;
        CHECK_INT(worker_run(loop(), slow_work, slow_done, NULL), 0);
        CHECK_INT(worker_run(loop(), quick_work, quick_done, NULL), 0);
        CHECK_INT(run_until(&n_order, 2), 2);
        CHECK_INT(order[0], 2);
        CHECK_INT(order[1], 1);
        sem_destroy(&gate);
}

/* ---- an owner gone first: smtpd's session ending during its client lookup ---- */

struct owner;
struct lookup {
        struct owner *owner; /* NULL once the owner is gone */
        sem_t *release;
        char answer[32];
};
struct owner {
        struct lookup *lookup;
        bool answered;
};

static unsigned lookups_done, answers_lost;

static void lookup_work(void *userdata)
{
        struct lookup *l = userdata;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 20;
        (void)sem_timedwait(l->release, &ts);
        snprintf(l->answer, sizeof l->answer, "host.example");
}

static void lookup_done(void *userdata)
{
        struct lookup *l = userdata;
        if (l->owner) {
                l->owner->lookup = NULL;
                l->owner->answered = true;
        } else
                answers_lost++;
        free(l);
        lookups_done++;
}

TEST(an_owner_gone_before_its_job_ends)
{
        sem_t release;
        sem_init(&release, 0, 0);
        lookups_done = answers_lost = 0;
        struct owner *gone = xcalloc(1, sizeof *gone), stays = {0};
        struct lookup *l1 = xcalloc(1, sizeof *l1), *l2 = xcalloc(1, sizeof *l2);
        *l1 = (struct lookup){.owner = gone, .release = &release};
        *l2 = (struct lookup){.owner = &stays, .release = &release};
        CHECK_INT(worker_run(loop(), lookup_work, lookup_done, l1), 0);
        gone->lookup = l1;
        CHECK_INT(worker_run(loop(), lookup_work, lookup_done, l2), 0);
        stays.lookup = l2;
        /* the session ends while its lookup runs: ASan sees any touch of the freed owner */
        gone->lookup->owner = NULL;
        free(gone);
        sem_post(&release);
        sem_post(&release);
        CHECK_INT(run_until(&lookups_done, 2), 2);
        CHECK_INT(answers_lost, 1);
        CHECK(stays.answered);
        CHECK(stays.lookup == NULL);
        sem_destroy(&release);
}

/* ---- a full queue ---- */

static atomic_uint blocked_running;
static unsigned full_done;

static void blocked_work(void *userdata)
{
        (void)userdata;
        blocked_running++;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 20;
        (void)sem_timedwait(&gate, &ts);
}

static void count_done(void *userdata)
{
        (void)userdata;
        full_done++;
}

TEST(a_full_queue_refuses_then_drains)
{
        sem_init(&gate, 0, 0);
        blocked_running = 0;
        full_done = 0;
        for (unsigned i = 0; i < WORKER_THREADS_MAX; i++)
                CHECK_INT(worker_run(loop(), blocked_work, count_done, NULL), 0);
        /* every thread busy, so what follows waits in the queue */
        uint64_t end = now_usec() + DEADLINE_USEC;
        while (blocked_running < WORKER_THREADS_MAX && now_usec() < end)
                (void)event_loop_step(loop(), 1000);
        CHECK_INT(blocked_running, WORKER_THREADS_MAX);
        unsigned queued = 0;
        int r;
        while ((r = worker_run(loop(), quick_work, count_done, NULL)) == 0 && queued <= WORKER_QUEUE_MAX)
                queued++;
        CHECK_INT(r, -EAGAIN);
        CHECK_INT(queued, WORKER_QUEUE_MAX);
        for (unsigned i = 0; i < WORKER_THREADS_MAX; i++)
                sem_post(&gate);
        unsigned want = WORKER_THREADS_MAX + WORKER_QUEUE_MAX;
        CHECK_INT(run_until(&full_done, want), want);
        /* room again */
        CHECK_INT(worker_run(loop(), quick_work, count_done, NULL), 0);
        CHECK_INT(run_until(&full_done, want + 1), want + 1);
        sem_destroy(&gate);
}
