/* postqueue.c: list the queue (mailq layout or JSON lines) and ask qmgr to flush it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "dsnlog.h"
#include "ipc.h"
#include "log.h"
#include "mail_proto.h"
#include "qfile.h"
#include "queue.h"
#include "showq.h"
#include "submit.h"

/* Messages one listing shows; a larger queue is listed up to this many (and says so). */
#define POSTQUEUE_LIST_MAX 1000000
#define FLUSH_TIMEOUT_MS   (60 * 1000)
#define EX_UNAVAILABLE     69

/* The order of Postfix's showq. */
static const enum queue_name list_queues[] = {QUEUE_MAILDROP, QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED,
                                              QUEUE_HOLD};

enum mode { MODE_NONE, MODE_LIST, MODE_JSON, MODE_FLUSH, MODE_FLUSH_ID, MODE_SITE };

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Each pending recipient's latest deferral reason from defer/QID (matched by queue file position, else by
 * address), as Postfix's showq reads its defer logs. The reasons point into *log. */
static void fill_reasons(struct queue *q, const char *qid, const struct qfile_msg *m, struct showq_rcpt *rc,
                         const size_t *pos, size_t n, struct dsnlog *log)
{
        if (n == 0 || dsnlog_read(q, QUEUE_DEFER, qid, log) < 0)
                return;
        const struct dsnlog_rec **latest = NULL;
        size_t nl = dsnlog_latest(log, &latest);
        for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < nl; k++) {
                        const struct dsnlog_rec *rec = latest[k];
                        bool same = rec->index != DSNLOG_NO_INDEX
                                            ? rec->index == pos[i]
                                            : streq(rec->rcpt, m->rcpts[pos[i]].address);
                        if (same) {
                                rc[i].reason = rec->reason;
                                break;
                        }
                }
        free(latest);
}

/* Print one queue's messages; returns how many were shown, adds their sizes to *total. */
static size_t show_queue(struct queue *q, enum queue_name qn, enum mode mode, bool *first, uint64_t *total,
                         size_t budget)
{
        int dfd = queue_dirfd(q, qn);
        int dup_fd = dfd >= 0 ? fcntl(dfd, F_DUPFD_CLOEXEC, 3) : -1;
        DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
        if (!d) {
                if (dup_fd >= 0)
                        close(dup_fd);
                return 0;
        }
        rewinddir(d);
        struct strv names = STRV_INIT;
        struct dirent *de;
        while ((de = readdir(d)) && names.n < budget)
                if (queue_id_valid(de->d_name))
                        strv_push(&names, de->d_name);
        closedir(d);
        if (names.n > 1)
                qsort(names.v, names.n, sizeof *names.v, cmp_str);
        size_t shown = 0;
        for (size_t i = 0; i < names.n; i++) {
                int fd = -1;
                if (queue_open_file(q, names.v[i], qn, O_RDONLY, &fd) < 0)
                        continue; /* delivered or moved since the scan */
                char *data = NULL;
                size_t len = 0;
                int r = queue_read_fd(fd, &data, &len);
                close(fd);
                struct qfile_msg m = {0};
                if (r < 0 || qfile_decode(data, len, &m, NULL) < 0) {
                        free(data);
                        continue; /* being written, or corrupt: recovery's business, not the listing's */
                }
                struct showq_rcpt *rc = xcalloc(m.n_rcpts ? m.n_rcpts : 1, sizeof *rc);
                size_t *pos = xcalloc(m.n_rcpts ? m.n_rcpts : 1, sizeof *pos);
                size_t n = 0;
                for (size_t j = 0; j < m.n_rcpts; j++)
                        if (m.rcpts[j].state == QFILE_RCPT_PENDING) {
                                pos[n] = j;
                                rc[n++] = (struct showq_rcpt){.address = m.rcpts[j].address};
                        }
                struct dsnlog log = {0};
                fill_reasons(q, names.v[i], &m, rc, pos, n, &log);
                struct showq_entry e = {
                        .queue_name = queue_name_to_string(qn),
                        .queue_id = names.v[i],
                        .arrival_time = (time_t)(m.arrival_usec / 1000000u),
                        .size = m.content_len,
                        .sender = m.sender,
                        .rcpts = rc,
                        .n_rcpts = n,
                };
                struct buf out = BUF_INIT;
                if (mode == MODE_JSON)
                        showq_format_json(&e, &out);
                else {
                        buf_puts(&out, *first ? SHOWQ_HEADING : "\n");
                        showq_format_entry(&e, &out);
                }
                fputs(buf_str(&out), stdout);
                buf_free(&out);
                *first = false;
                *total += e.size;
                shown++;
                free(rc);
                free(pos);
                dsnlog_free(&log);
                qfile_msg_free(&m);
                free(data);
        }
        strv_free(&names);
        return shown;
}

static int list(struct config *cfg, enum mode mode)
{
        const char *qdir = config_get(cfg, "queue_directory");
        struct queue *q = NULL;
        int r = queue_open(qdir, &q);
        if (r < 0)
                submit_fatal(SUBMIT_EX_TEMPFAIL, "open queue directory %s: %s", qdir, strerror(-r));
        bool first = true;
        uint64_t total = 0;
        size_t n = 0;
        for (size_t i = 0; i < ELEMENTSOF(list_queues) && n < POSTQUEUE_LIST_MAX; i++)
                n += show_queue(q, list_queues[i], mode, &first, &total, POSTQUEUE_LIST_MAX - n);
        if (mode == MODE_LIST) {
                struct buf out = BUF_INIT;
                showq_format_trailer(n, total, &out);
                fputs(buf_str(&out), stdout);
                buf_free(&out);
        }
        queue_close(q);
        if (fflush(stdout) != 0 && errno != EPIPE)
                submit_fatal(SUBMIT_EX_IOERR, "output write error: %s", strerror(errno));
        return 0;
}

/* Ask qmgr to run the deferred queue: all of it, one message (id) or one destination (site). */
static int flush(struct config *cfg, const char *id, const char *site)
{
        _cleanup_free_ char *path =
                xasprintf("%s/%s", config_get(cfg, "queue_directory"), MAIL_PROTO_QMGR_SOCKET);
        int fd = -1;
        int r = ipc_connect_unix(path, FLUSH_TIMEOUT_MS, &fd);
        struct ipc_msg req = IPC_MSG_INIT, rep = IPC_MSG_INIT;
        long long status = -1, count = -1;
        if (r == 0) {
                r = ipc_msg_add_str(&req, "req", "flush");
                if (r == 0 && id)
                        r = ipc_msg_add_str(&req, "queue_id", id);
                if (r == 0 && site)
                        r = ipc_msg_add_str(&req, "site", site);
                if (r == 0)
                        r = ipc_call(fd, &req, &rep, FLUSH_TIMEOUT_MS);
                close(fd);
                if (r == 0 && (ipc_msg_get_int(&rep, "status", &status) < 0 || status != 0))
                        r = -EIO;
                if (r == 0)
                        ipc_msg_get_int(&rep, "count", &count);
        }
        ipc_msg_free(&req);
        ipc_msg_free(&rep);
        if (r == 0 && count == 0 && id)
                msg_warn("%s: no such message in the deferred queue", id);
        else if (r == 0 && count == 0 && site)
                msg_warn("no deferred mail for site %s", site);
        if (r < 0) {
                msg_warn("connect to %s: %s", path, strerror(-r));
                submit_fatal(EX_UNAVAILABLE, "Cannot flush mail queue - mail system is down");
        }
        return 0;
}

_noreturn_ static void usage(void)
{
        submit_fatal(SUBMIT_EX_USAGE,
                     "usage: postqueue -f | postqueue -i queueid | postqueue -j | postqueue -p | "
                     "postqueue -s site");
}

int main(int argc, char **argv)
{
        submit_harden_process();
        log_setup_command("postqueue");
        const char *dir_arg = NULL, *arg = NULL;
        enum mode mode = MODE_NONE;
        int c;
        while ((c = getopt(argc, argv, "c:fi:jps:v")) != -1) {
                enum mode m = MODE_NONE;
                switch (c) {
                case 'c': dir_arg = optarg; continue;
                case 'v': continue;
                case 'f': m = MODE_FLUSH; break;
                case 'i':
                        m = MODE_FLUSH_ID;
                        arg = optarg;
                        break;
                case 'j': m = MODE_JSON; break;
                case 'p': m = MODE_LIST; break;
                case 's':
                        m = MODE_SITE;
                        arg = optarg;
                        break;
                default: usage();
                }
                if (mode != MODE_NONE)
                        submit_fatal(SUBMIT_EX_USAGE, "specify only one of -f, -i, -j, -p or -s");
                mode = m;
        }
        if (optind < argc || mode == MODE_NONE)
                usage();
        struct config *cfg = submit_load_config(dir_arg);

        uid_t uid = getuid();
        _cleanup_free_ char *user = submit_user_name(uid);
        bool listing = mode == MODE_LIST || mode == MODE_JSON;
        _cleanup_free_ char *err = NULL;
        const char *param = listing ? "authorized_mailq_users" : "authorized_flush_users";
        int r = submit_access_check(config_get(cfg, param), user, &err);
        if (r < 0)
                submit_fatal(SUBMIT_EX_TEMPFAIL, "%s: %s", param, err);
        if (r == 0)
                submit_fatal(SUBMIT_EX_NOPERM, "User %s(%ld) is not allowed to %s the mail queue", user,
                             (long)uid, listing ? "view" : "flush");

        switch (mode) {
        case MODE_LIST:
        case MODE_JSON: r = list(cfg, mode); break;
        case MODE_FLUSH_ID:
                if (!queue_id_valid(arg))
                        submit_fatal(SUBMIT_EX_USAGE, "invalid mail queue id: %s", arg);
                r = flush(cfg, arg, NULL);
                break;
        case MODE_FLUSH: r = flush(cfg, NULL, NULL); break;
        case MODE_SITE:
                if (isempty(arg) || strpbrk(arg, " \t\r\n@"))
                        submit_fatal(SUBMIT_EX_USAGE, "invalid site name: %s", arg);
                r = flush(cfg, NULL, arg);
                break;
        case MODE_NONE: usage();
        }
        config_free(cfg);
        return r < 0 ? SUBMIT_EX_TEMPFAIL : 0;
}
