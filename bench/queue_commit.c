/* queue_commit.c: cost of a durable queue file create, one directory fsync each vs a group commit. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "queue.h"

#define MAX_MESSAGES 100000

static double now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static char content[1024];

static void die(const char *what, int r)
{
        fprintf(stderr, "queue_commit: %s: %s\n", what, strerror(-r));
        exit(1);
}

/* Write n messages, committing batch at a time; returns the elapsed milliseconds. With sync_late, all files
 * of a batch are written before the first is synced. */
static double run(struct queue *q, int n, int batch, bool sync_late)
{
        struct qfile_rcpt rcpt = {.address = "rcpt@example.com"};
        struct qfile_msg m = {.sender = "sender@example.org",
                              .rcpts = &rcpt,
                              .n_rcpts = 1,
                              .ready = true,
                              .content = content,
                              .content_len = sizeof content};
        struct queue_file **files = xcalloc((size_t)batch, sizeof *files);
        struct strv ids = STRV_INIT;
        double start = now_ms();
        for (int done = 0; done < n;) {
                int k = n - done < batch ? n - done : batch;
                for (int i = 0; i < k; i++) {
                        int r = queue_file_create(q, &files[i]);
                        if (r < 0)
                                die("create", r);
                        r = queue_file_write(files[i], &m, sync_late ? QUEUE_NOSYNC : 0);
                        if (r < 0)
                                die("write", r);
                }
                for (int i = 0; sync_late && i < k; i++) {
                        int r = queue_file_sync(files[i]);
                        if (r < 0)
                                die("sync", r);
                }
                int r = queue_commit_batch(queue_dirfd(q, QUEUE_INCOMING), files, (size_t)k);
                if (r != k)
                        die("commit", r < 0 ? r : -EIO);
                for (int i = 0; i < k; i++) {
                        strv_push(&ids, queue_file_id(files[i]));
                        queue_file_free(files[i]);
                }
                done += k;
        }
        double elapsed = now_ms() - start;
        for (size_t i = 0; i < ids.n; i++)
                queue_remove(q, ids.v[i], QUEUE_INCOMING, 0);
        fsync(queue_dirfd(q, QUEUE_INCOMING));
        strv_done(&ids);
        free(files);
        return elapsed;
}

int main(int argc, char **argv)
{
        if (argc < 2 || argc > 4) {
                fprintf(stderr, "usage: %s QUEUE_DIR [MESSAGES (200)] [BATCH (20)]\n", argv[0]);
                return 2;
        }
        int n = argc > 2 ? atoi(argv[2]) : 200;
        int batch = argc > 3 ? atoi(argv[3]) : 20;
        if (n < 1 || n > MAX_MESSAGES || batch < 1 || batch > n) {
                fprintf(stderr, "queue_commit: need 1 <= BATCH <= MESSAGES <= %d\n", MAX_MESSAGES);
                return 2;
        }
        memset(content, 'x', sizeof content);
        for (size_t i = 63; i < sizeof content; i += 64)
                content[i] = '\n';

        struct queue_owners o = {getuid(), getgid(), getgid(), getuid(), getgid()};
        int r = queue_layout_create(argv[1], &o);
        if (r < 0)
                die(argv[1], r);
        struct queue *q;
        r = queue_open(argv[1], &q);
        if (r < 0)
                die(argv[1], r);

        run(q, batch, batch, false); /* warm up */
        double single = run(q, n, 1, false);
        double grouped = run(q, n, batch, false);
        double late = run(q, n, batch, true);
        printf("%d messages of %zu bytes in %s\n", n, sizeof content, argv[1]);
        printf("one at a time (write+fdatasync+rename+dir fsync): %.3f ms/msg, %.0f msg/s\n", single / n,
               n / single * 1e3);
        printf("batches of %d (each file fdatasync'd, one dir fsync per batch): %.3f ms/msg, %.0f msg/s\n",
               batch, grouped / n, n / grouped * 1e3);
        printf("batches of %d (all written, then each fdatasync'd, one dir fsync): %.3f ms/msg, %.0f "
               "msg/s\n",
               batch, late / n, n / late * 1e3);
        queue_close(q);
        return 0;
}
