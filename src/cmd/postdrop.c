/* postdrop.c: the set-gid gate into the maildrop queue: validate a submission and store it durably. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "fileio.h"
#include "log.h"
#include "maildrop.h"
#include "queue_id.h"
#include "queue_space.h"
#include "submit.h"

/* Attempts at a free temporary name / final name in maildrop/ before giving up. */
#define NAME_ATTEMPTS 100
/* How long the pickup wakeup may take; pickup also scans on its timer, so this is only a hint. */
#define WAKEUP_TIMEOUT_USEC (1000 * USEC_PER_MSEC)
#define READ_CHUNK          (64u * 1024)

/* Read all of fd, failing with -EFBIG beyond limit bytes. */
static int read_all(int fd, size_t limit, struct buf *out)
{
        for (;;) {
                buf_reserve(out, READ_CHUNK);
                ssize_t n = read(fd, out->data + out->len, READ_CHUNK);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return 0;
                out->len += (size_t)n;
                out->data[out->len] = '\0';
                if (out->len > limit)
                        return -EFBIG;
        }
}

/*
 * Store data as maildrop/QUEUEID: a temporary name first (pickup skips names starting with "."), fsync,
 * then a rename to the ID (from the inode, as queue files are named) and an fsync of the directory, so that
 * pickup never sees a partial file and a file it sees survives a crash.
 */
static int maildrop_store(const char *queue_dir, const struct buf *data, char id[static QUEUE_ID_BUF_SIZE])
{
        _cleanup_free_ char *dir = xasprintf("%s/maildrop", queue_dir);
        /* maildrop/ is 1730: the postdrop group may search and write it, not read it; O_PATH suffices for
         * the *at() calls. */
        _cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        char tmp[64];
        _cleanup_close_ int fd = -1;
        for (unsigned i = 0; i < NAME_ATTEMPTS && fd < 0; i++) {
                snprintf(tmp, sizeof tmp, ".tmp.%ld.%u.%" PRIu64, (long)getpid(), i,
                         clock_usec(CLOCK_REALTIME));
                fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (fd < 0 && errno != EEXIST)
                        return -errno;
        }
        if (fd < 0)
                return -EEXIST;
        int r = write_full(fd, data->data, data->len);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        struct stat st;
        if (r == 0 && fstat(fd, &st) < 0)
                r = -errno;
        for (unsigned i = 0; r == 0; i++) {
                queue_id_make((uint64_t)st.st_ino, id);
                if (renameat2(dfd, tmp, dfd, id, RENAME_NOREPLACE) == 0)
                        break;
                r = -errno;
                if (r == -EEXIST && i < NAME_ATTEMPTS)
                        r = 0; /* a stale file of a reused inode: the next microsecond gives another ID */
        }
        if (r < 0) {
                unlinkat(dfd, tmp, 0);
                return r;
        }
        /* The new name must be durable before sendmail reports success. Without read permission on the
         * directory (the normal set-gid case) it cannot be opened for fsync(), so sync the file system
         * instead: costlier, but local submissions are rare next to SMTP. */
        _cleanup_close_ int sync_fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (sync_fd >= 0 ? fsync(sync_fd) < 0 : syncfs(fd) < 0)
                return -errno; /* the file stays: it is complete, pickup may still take it */
        return 0;
}

/* queue_minfree: refuse now, with the reason, rather than fill the queue file system. */
static void check_space(struct config *cfg, const char *queue_dir, uint64_t size, uid_t uid)
{
        long long minfree = config_get_int(cfg, "queue_minfree");
        long long limit = config_get_int(cfg, "message_size_limit");
        uint64_t need =
                queue_space_minfree(minfree > 0 ? (uint64_t)minfree : 0, limit > 0 ? (uint64_t)limit : 0);
        uint64_t avail = 0;
        if (queue_space_avail(queue_dir, &avail) < 0)
                return; /* unknown is not full: a write error below still refuses the message */
        if (!queue_space_enough(avail, need, size))
                submit_fatal(SUBMIT_EX_TEMPFAIL,
                             "uid=%ld: not enough free space in the mail queue %s: %llu bytes free, %llu "
                             "required (queue_minfree, at least 1.5 x message_size_limit) plus 1.5 x the "
                             "message (%llu bytes); try again later",
                             (long)uid, queue_dir, (unsigned long long)avail, (unsigned long long)need,
                             (unsigned long long)size);
}

_noreturn_ static void usage(void)
{
        submit_fatal(SUBMIT_EX_USAGE, "usage: postdrop [-rv] [-c config_dir]");
}

int main(int argc, char **argv)
{
        submit_harden_process();
        log_setup_command("postdrop");
        umask(022);
        const char *dir_arg = NULL;
        int c;
        while ((c = getopt(argc, argv, "c:rv")) != -1) {
                switch (c) {
                case 'c': dir_arg = optarg; break;
                case 'r':
                case 'v': break;
                default: usage();
                }
        }
        if (optind < argc)
                usage();
        struct config *cfg = submit_load_config(dir_arg);
        log_command_to_system(config_get(cfg, "syslog_name"), config_get(cfg, "maillog_file"));

        uid_t uid = getuid();
        _cleanup_free_ char *user = submit_user_name(uid);
        submit_require_authorized(cfg, user, uid);

        long long limit = config_get_int(cfg, "message_size_limit");
        uint64_t max_content = limit > 0 ? (uint64_t)limit : QFILE_MAX_CONTENT_LEN;
        struct buf in = BUF_INIT;
        int r = read_all(STDIN_FILENO, max_content + MAILDROP_ENVELOPE_MAX, &in);
        if (r == -EFBIG)
                submit_fatal(SUBMIT_EX_DATAERR, "uid=%ld: message file too big", (long)uid);
        if (r < 0)
                submit_fatal(SUBMIT_EX_IOERR, "uid=%ld: read standard input: %s", (long)uid, strerror(-r));

        struct qfile_msg m = {0};
        struct maildrop_error merr = {0};
        r = maildrop_parse(in.data ? in.data : "", in.len, max_content, &m, &merr);
        if (r == -EFBIG)
                submit_fatal(SUBMIT_EX_DATAERR, "uid=%ld: message file too big", (long)uid);
        if (r < 0)
                submit_fatal(SUBMIT_EX_DATAERR, "uid=%ld: malformed input: %s (offset %" PRIu64 ")",
                             (long)uid, merr.reason, merr.offset);

        struct buf out = BUF_INIT;
        r = maildrop_build(&m, clock_usec(CLOCK_REALTIME), &out);
        if (r < 0)
                submit_fatal(SUBMIT_EX_DATAERR, "uid=%ld: malformed input: cannot encode the message",
                             (long)uid);
        qfile_msg_done(&m);
        buf_done(&in);

        const char *queue_dir = config_get(cfg, "queue_directory");
        check_space(cfg, queue_dir, out.len, uid);
        char id[QUEUE_ID_BUF_SIZE];
        r = maildrop_store(queue_dir, &out, id);
        if (r < 0)
                submit_fatal(SUBMIT_EX_TEMPFAIL, "uid=%ld: create file in %s/maildrop: %s", (long)uid,
                             queue_dir, strerror(-r));
        buf_done(&out);

        /* Wake pickup through the master's public/pickup listener; pickup's timer covers a failure. */
        _cleanup_free_ char *trigger = xasprintf("%s/public/pickup", queue_dir);
        (void)submit_trigger(trigger, USEC_TO_MS(WAKEUP_TIMEOUT_USEC));
        config_free(cfg);
        return 0;
}
