/* fill_deferred.c: benchmark tool: put N queue files straight into an instance's deferred/ (qmgr stopped).
 */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "log.h"
#include "qfile.h"
#include "queue.h"

/* Files written before one group commit (one directory fsync); also bounds the open descriptors. */
#define FILL_BATCH_MAX 512
/* More than any benchmark needs; keeps a typo from filling the disk. */
#define FILL_COUNT_MAX 10000000L

static void usage(void)
{
        fprintf(stderr,
                "usage: fill_deferred -c config_dir -n count [-r rcpt] [-f sender] [-d due_seconds]\n"
                "  -d  next retry this many seconds from now (default 3600; 0: due at once)\n");
        exit(2);
}

static uint64_t now_usec(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
        const char *config_dir = NULL, *rcpt = "someone@deferred.example", *sender = "sender@example.test";
        long count = 0, due = 3600;
        int opt;
        log_setup_command("fill_deferred");
        while ((opt = getopt(argc, argv, "c:n:r:f:d:")) != -1) {
                switch (opt) {
                case 'c': config_dir = optarg; break;
                case 'n': count = strtol(optarg, NULL, 10); break;
                case 'r': rcpt = optarg; break;
                case 'f': sender = optarg; break;
                case 'd': due = strtol(optarg, NULL, 10); break;
                default: usage();
                }
        }
        if (!config_dir || count <= 0 || count > FILL_COUNT_MAX || due < 0)
                usage();

        struct config *c = NULL;
        int r = config_load(config_dir, &c);
        if (r < 0)
                msg_fatal("load config: %s", strerror(-r));
        struct queue *q = NULL;
        r = queue_open(config_get(c, "queue_directory"), &q);
        if (r < 0)
                msg_fatal("open queue: %s", strerror(-r));
        /* qmgr (the mail owner) updates the files: as root, hand them over. */
        struct passwd *pw = getpwnam(config_get(c, "mail_owner"));
        bool chown_files = pw && geteuid() == 0;
        uid_t uid = pw ? pw->pw_uid : 0;
        gid_t gid = pw ? pw->pw_gid : 0;

        static char body[1024];
        static const char head[] = "Subject: deferred filler\nFrom: <sender@example.test>\n\n";
        memcpy(body, head, sizeof head - 1);
        for (size_t i = sizeof head - 1; i < sizeof body; i++)
                body[i] = (i % 64 == 63) ? '\n' : 'x';
        struct qfile_rcpt qr = {.address = (char *)rcpt};
        struct qfile_msg m = {.sender = (char *)sender,
                              .rcpts = &qr,
                              .n_rcpts = 1,
                              .protocol = (char *)"ESMTP",
                              .origin_queue = (char *)"incoming",
                              .message_size = sizeof body,
                              .has_message_size = true,
                              .ready = true,
                              .content = body,
                              .content_len = sizeof body};

        uint64_t start = now_usec();
        struct timespec times[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = time(NULL) + due}};
        struct queue_file *batch[FILL_BATCH_MAX];
        long done = 0;
        while (done < count) {
                size_t n = 0;
                m.arrival_usec = now_usec();
                for (; n < FILL_BATCH_MAX && done + (long)n < count; n++) {
                        r = queue_file_create(q, &batch[n]);
                        if (r >= 0)
                                r = queue_file_write(batch[n], &m, QUEUE_NOSYNC);
                        if (r < 0)
                                msg_fatal("write queue file: %s", strerror(-r));
                }
                /* The files' own syncs after all writes: one journal commit carries most of them. */
                for (size_t i = 0; i < n; i++) {
                        int fd = queue_file_fd(batch[i]);
                        if ((chown_files && fchown(fd, uid, gid) < 0) || futimens(fd, times) < 0)
                                msg_fatal("set owner or retry time: %s", strerror(errno));
                        r = queue_file_sync(batch[i]);
                        if (r < 0)
                                msg_fatal("sync queue file: %s", strerror(-r));
                }
                r = queue_commit_batch(queue_dirfd(q, QUEUE_INCOMING), batch, n);
                if (r < 0 || (size_t)r != n)
                        msg_fatal("commit batch: %s", r < 0 ? strerror(-r) : "some files failed");
                for (size_t i = 0; i < n; i++) {
                        r = queue_move(q, queue_file_id(batch[i]), QUEUE_INCOMING, QUEUE_DEFERRED, 0);
                        if (r < 0)
                                msg_fatal("move to deferred: %s", strerror(-r));
                        queue_file_free(batch[i]);
                }
                done += (long)n;
        }
        uint64_t took = now_usec() - start;
        printf("%ld files in deferred/ in %.1f s\n", done, (double)took / 1e6);
        queue_close(q);
        config_free(c);
        return 0;
}
