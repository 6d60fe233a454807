/* worker.c: blocking work (name service lookups) in a lazily started, bounded pool of long-lived threads
 * fed from one mutex-protected FIFO; each loop learns of finished jobs through one eventfd it registers once. */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "alloc.h"

/*
 * Why a pool: smtpd looks up every client before the greeting, and a thread plus a pipe per job cost a
 * clone, a pipe2, two epoll_ctl, two close, a madvise and an exit per message (bench/README.md, issue 19).
 * Long-lived threads cost a futex wake and an eventfd write, and the loop one read per wakeup, however
 * many jobs finished meanwhile.
 */

/* The completions of one event loop: the threads append, the loop's thread takes the whole list. */
struct loop {
        struct event_loop *event;
        struct event_source *src;
        int efd;
        struct job *done_head, *done_tail; /* under lock */
        struct loop *next;                 /* loops[]: touched only from loops' threads */
};

struct job {
        worker_fn work, done;
        void *userdata;
        struct loop *loop;
        struct job *next; /* the waiting FIFO, then its loop's done list */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
/* Under lock. */
static struct job *wait_head, *wait_tail;
static unsigned waiting, threads, idle;
static bool atfork_set;

/* Every loop that ever ran a job, with its eventfd: one per struct event_loop a process uses. */
static struct loop *loops;

static void post_done(struct job *j)
{
        struct loop *l = j->loop;
        pthread_mutex_lock(&lock);
        bool was_empty = !l->done_head;
        j->next = NULL;
        if (l->done_tail)
                l->done_tail->next = j;
        else
                l->done_head = j;
        l->done_tail = j;
        pthread_mutex_unlock(&lock);
        /* Only the first completion after the loop emptied the list wakes it: the loop takes the whole list. */
        if (was_empty) {
                uint64_t one = 1;
                ssize_t n;
                do
                        n = write(l->efd, &one, sizeof one);
                while (n < 0 && errno == EINTR);
        }
}

static void *thread_main(void *arg)
{
        (void)arg;
        pthread_mutex_lock(&lock);
        for (;;) {
                while (!wait_head) {
                        idle++;
                        pthread_cond_wait(&wake, &lock);
                        idle--;
                }
                struct job *j = wait_head;
                wait_head = j->next;
                if (!wait_head)
                        wait_tail = NULL;
                waiting--;
                pthread_mutex_unlock(&lock);
                j->work(j->userdata);
                post_done(j);
                pthread_mutex_lock(&lock);
        }
        return NULL;
}

static int on_done(struct event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct loop *l = userdata;
        uint64_t n;
        if (read(fd, &n, sizeof n) < 0) {
                /* EAGAIN: an earlier wakeup already took this list */
        }
        pthread_mutex_lock(&lock);
        struct job *j = l->done_head;
        l->done_head = l->done_tail = NULL;
        pthread_mutex_unlock(&lock);
        while (j) {
                struct job *next = j->next;
                j->done(j->userdata);
                free(j);
                j = next;
        }
        return 0;
}

static int loop_get(struct event_loop *e, struct loop **ret)
{
        for (struct loop *l = loops; l; l = l->next)
                if (l->event == e) {
                        *ret = l;
                        return 0;
                }
        struct loop *l = xcalloc(1, sizeof *l);
        l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (l->efd < 0) {
                int r = -errno;
                free(l);
                return r;
        }
        int r = event_add_io(e, &l->src, l->efd, EPOLLIN, on_done, l);
        if (r < 0) {
                close(l->efd);
                free(l);
                return r;
        }
        /* The loop lives as long as the process: a job may finish after its caller forgot it. */
        l->event = event_loop_ref(e);
        l->next = loops;
        loops = l;
        *ret = l;
        return 0;
}

/* A forked child has only the forking thread: it starts its own threads (and eventfds: the parent's are
 * shared with it) if it needs any. The jobs the parent's threads ran or waited for belong to the parent. */
static void atfork_child(void)
{
        loops = NULL;
        pthread_mutex_init(&lock, NULL);
        pthread_cond_init(&wake, NULL);
        wait_head = wait_tail = NULL;
        waiting = threads = idle = 0;
}

/* Under lock: one more thread if the waiting jobs outnumber the idle threads. */
static void pool_grow(void)
{
        if (waiting <= idle || threads >= WORKER_THREADS_MAX)
                return;
        if (!atfork_set && pthread_atfork(NULL, NULL, atfork_child) == 0)
                atfork_set = true;
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        if (pthread_create(&t, &attr, thread_main, NULL) == 0)
                threads++;
        pthread_attr_destroy(&attr);
}

int worker_run(struct event_loop *e, worker_fn work, worker_fn done, void *userdata)
{
        struct loop *l = NULL;
        int r = loop_get(e, &l);
        if (r < 0)
                return r;
        struct job *j = xcalloc(1, sizeof *j);
        *j = (struct job){.work = work, .done = done, .userdata = userdata, .loop = l};

        pthread_mutex_lock(&lock);
        /* Full (only when lookups stall under thousands of sessions): refused, and the caller takes its
         * own "could not start" path: smtpd's client stays "unknown" and a restriction that needs a DNS
         * answer replies 451; AUTH and the smtp client's lookups fail temporarily. Jobs queued still run. */
        if (waiting >= WORKER_QUEUE_MAX) {
                pthread_mutex_unlock(&lock);
                free(j);
                return -EAGAIN;
        }
        if (wait_tail)
                wait_tail->next = j;
        else
                wait_head = j;
        wait_tail = j;
        waiting++;
        pool_grow();
        bool no_thread = threads == 0;
        if (no_thread) {
                /* Not one thread could start: do the work here, but still report through the loop, never
                 * inside the caller's own call. */
                wait_head = wait_tail = NULL;
                waiting = 0;
        } else if (idle > 0)
                pthread_cond_signal(&wake);
        pthread_mutex_unlock(&lock);
        if (no_thread) {
                work(userdata);
                post_done(j);
        }
        return 0;
}
