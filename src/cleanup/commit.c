/* commit.c: the group commit: files finished while one commit runs share the next one's directory fsync.
 * It knows queue files and their owners' callbacks, nothing else of cleanup. */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>

#include "alloc.h"
#include "commit.h"
#include "log.h"

/*
 * Why a thread: the fsyncs of one batch take milliseconds, and the event loop must keep reading the
 * other sessions meanwhile so that their files are written and ready to share the next batch. The
 * loop hands a batch over, the worker syncs each file and commits them with one directory fsync, then
 * wakes the loop through an eventfd; only the loop ever answers a client.
 */

/* A written file waiting for its commit, and whom to tell. */
struct waiting {
        struct queue_file *file;
        commit_done_fn done;
        void *owner;
};

struct batch_entry {
        struct waiting w;
        int result;
        /* Under the lock: the source gave up before the rename, or the rename is decided. */
        bool cancelled, committing;
};

struct commit {
        struct queue *queue;
        int efd;
        struct event_source *efd_src;
        struct event_source *defer_src;
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool work; /* under lock: the worker owns batch[] while true */
        bool running;

        struct waiting *pending; /* written, waiting for the next batch (loop only) */
        size_t n_pending, cap_pending;
        struct batch_entry batch[CLEANUP_BATCH_MAX];
        size_t n_batch;
        int batch_result;
};

static void *worker(void *userdata)
{
        struct commit *k = userdata;
        int incoming = queue_dirfd(k->queue, QUEUE_INCOMING);

        for (;;) {
                pthread_mutex_lock(&k->lock);
                while (!k->work)
                        pthread_cond_wait(&k->cond, &k->lock);
                pthread_mutex_unlock(&k->lock);

                struct queue_file *files[CLEANUP_BATCH_MAX];
                size_t n = 0;
                /* All writes queued first, then each waited for: the fdatasyncs of a batch overlap instead
                 * of each starting its write after the previous one's flush (about a third less time per
                 * file from 4 files on; docs/QUEUE_FORMAT.md). One file has nothing to overlap with. */
                for (size_t i = 0; k->n_batch > 1 && i < k->n_batch; i++)
                        queue_file_start_write(k->batch[i].w.file);
                for (size_t i = 0; i < k->n_batch; i++) {
                        struct batch_entry *e = &k->batch[i];
                        e->result = queue_file_sync(e->w.file);
                }
                /* The point of no return: a file whose source has not given up by now is renamed to its
                 * queue ID; one that has is never renamed (commit_cancel). */
                pthread_mutex_lock(&k->lock);
                for (size_t i = 0; i < k->n_batch; i++) {
                        struct batch_entry *e = &k->batch[i];
                        if (e->cancelled)
                                e->result = -ECANCELED;
                        else if (e->result == 0) {
                                e->committing = true;
                                files[n++] = e->w.file;
                        }
                }
                pthread_mutex_unlock(&k->lock);
                k->batch_result = n > 0 ? queue_commit_batch(incoming, files, n) : 0;
                for (size_t i = 0; i < k->n_batch; i++)
                        if (k->batch[i].committing)
                                k->batch[i].result = queue_file_result(k->batch[i].w.file);

                pthread_mutex_lock(&k->lock);
                k->work = false;
                pthread_mutex_unlock(&k->lock);
                uint64_t one = 1;
                while (write(k->efd, &one, sizeof one) < 0 && errno == EINTR)
                        ;
        }
        return NULL;
}

static void start_batch(struct commit *k)
{
        size_t n = k->n_pending < CLEANUP_BATCH_MAX ? k->n_pending : CLEANUP_BATCH_MAX;
        if (n == 0 || k->running)
                return;
        for (size_t i = 0; i < n; i++)
                k->batch[i] = (struct batch_entry){k->pending[i], -EINPROGRESS, false, false};
        memmove(k->pending, k->pending + n, (k->n_pending - n) * sizeof *k->pending);
        k->n_pending -= n;
        k->n_batch = n;
        k->running = true;
        pthread_mutex_lock(&k->lock);
        k->work = true;
        pthread_cond_signal(&k->cond);
        pthread_mutex_unlock(&k->lock);
}

static int on_batch_done(struct event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct commit *k = userdata;
        uint64_t v;
        if (read(k->efd, &v, sizeof v) < 0 && errno != EAGAIN)
                msg_warn("read commit eventfd: %s", strerror(errno));

        pthread_mutex_lock(&k->lock);
        bool done = !k->work;
        pthread_mutex_unlock(&k->lock);
        if (!done || !k->running)
                return 0;

        if (k->batch_result < 0)
                msg_warn("fsync %s/incoming: %s: no message of this batch was queued; check the file "
                         "system that holds queue_directory",
                         queue_directory(k->queue), strerror(-k->batch_result));
        size_t n = k->n_batch;
        k->n_batch = 0;
        k->running = false;
        /* Copy first: an owner may free itself (and re-enter nothing here) while being told. */
        struct batch_entry done_batch[CLEANUP_BATCH_MAX];
        memcpy(done_batch, k->batch, n * sizeof *done_batch);
        start_batch(k); /* whatever finished meanwhile goes straight into the next commit */
        for (size_t i = 0; i < n; i++)
                done_batch[i].w.done(done_batch[i].w.owner, done_batch[i].result);
        return 0;
}

static int on_defer(struct event_source *src, void *userdata)
{
        start_batch(userdata);
        return 0;
}

int commit_new(struct event_loop *e, struct queue *q, struct commit **ret)
{
        struct commit *k = xcalloc(1, sizeof *k);
        k->queue = q;
        pthread_mutex_init(&k->lock, NULL);
        pthread_cond_init(&k->cond, NULL);
        k->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (k->efd < 0) {
                int r = -errno;
                msg_error("eventfd: %s", strerror(errno));
                free(k);
                return r;
        }
        int r = event_add_io(e, &k->efd_src, k->efd, EPOLLIN, on_batch_done, k);
        if (r >= 0)
                r = event_add_defer(e, &k->defer_src, on_defer, k);
        if (r >= 0)
                r = event_source_set_enabled(k->defer_src, EVENT_OFF);
        if (r < 0) {
                msg_error("commit event sources: %s", strerror(-r));
                return r;
        }
        r = pthread_create(&k->thread, NULL, worker, k);
        if (r != 0) {
                msg_error("start commit thread: %s", strerror(r));
                return -r;
        }
        *ret = k;
        return 0;
}

enum commit_cancel commit_cancel(struct commit *k, void *owner)
{
        for (size_t i = 0; i < k->n_pending; i++)
                if (k->pending[i].owner == owner) {
                        memmove(k->pending + i, k->pending + i + 1,
                                (k->n_pending - i - 1) * sizeof *k->pending);
                        k->n_pending--;
                        return COMMIT_CANCELLED;
                }
        enum commit_cancel r = COMMIT_TOO_LATE;
        pthread_mutex_lock(&k->lock);
        /* batch[] and n_batch change only on the loop (start_batch, on_batch_done): safe to walk here. */
        for (size_t i = 0; k->running && i < k->n_batch; i++)
                if (k->batch[i].w.owner == owner && !k->batch[i].committing) {
                        k->batch[i].cancelled = true;
                        r = COMMIT_CANCEL_LATER;
                }
        pthread_mutex_unlock(&k->lock);
        return r;
}

void commit_add(struct commit *k, struct queue_file *file, commit_done_fn done, void *owner)
{
        if (k->n_pending == k->cap_pending) {
                k->cap_pending = k->cap_pending ? 2 * k->cap_pending : 64;
                k->pending = xrealloc(k->pending, k->cap_pending * sizeof *k->pending);
        }
        k->pending[k->n_pending++] = (struct waiting){file, done, owner};
        /* Not at once: sessions finishing in this same loop iteration join this batch. A running commit
         * picks the pending files up itself when it is done. */
        if (!k->running)
                event_source_set_enabled(k->defer_src, EVENT_ONESHOT);
}
