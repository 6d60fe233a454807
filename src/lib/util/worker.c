/* worker.c: blocking work (name service lookups) in threads, its completion back on an sd-event loop. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "alloc.h"

struct job {
        worker_fn work, done;
        void *userdata;
        sd_event *event;
        sd_event_source *src;
        int pipe[2];      /* the thread writes one byte when work() returned */
        struct job *next; /* waiting FIFO */
};

/* Touched only from the loop's thread. */
static unsigned running;
static struct job *wait_head, *wait_tail;

static void job_start(struct job *j);

static void *thread_main(void *arg)
{
        struct job *j = arg;
        j->work(j->userdata);
        char c = 1;
        ssize_t n;
        do
                n = write(j->pipe[1], &c, 1);
        while (n < 0 && errno == EINTR);
        return NULL;
}

static int on_done(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct job *j = userdata;
        sd_event_source_unref(j->src);
        close(j->pipe[0]);
        close(j->pipe[1]);
        running--;
        while (wait_head && running < WORKER_THREADS_MAX) {
                struct job *next = wait_head;
                wait_head = next->next;
                if (!wait_head)
                        wait_tail = NULL;
                job_start(next);
        }
        j->done(j->userdata);
        sd_event_unref(j->event);
        free(j);
        return 0;
}

static void job_start(struct job *j)
{
        running++;
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        int r = pthread_create(&t, &attr, thread_main, j);
        pthread_attr_destroy(&attr);
        if (r != 0) {
                /* No thread: do the work here, but still report through the loop, never inside the
                 * caller's own call. */
                j->work(j->userdata);
                char c = 1;
                if (write(j->pipe[1], &c, 1) < 0) {
                        /* a fresh pipe always has room for one byte */
                }
        }
}

int worker_run(sd_event *e, worker_fn work, worker_fn done, void *userdata)
{
        struct job *j = xcalloc(1, sizeof *j);
        *j = (struct job){.work = work, .done = done, .userdata = userdata};
        if (pipe2(j->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
                int r = -errno;
                free(j);
                return r;
        }
        int r = sd_event_add_io(e, &j->src, j->pipe[0], EPOLLIN, on_done, j);
        if (r < 0) {
                close(j->pipe[0]);
                close(j->pipe[1]);
                free(j);
                return r;
        }
        j->event = sd_event_ref(e);
        if (running < WORKER_THREADS_MAX)
                job_start(j);
        else {
                if (wait_tail)
                        wait_tail->next = j;
                else
                        wait_head = j;
                wait_tail = j;
        }
        return 0;
}
