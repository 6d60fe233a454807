/* showq_list.c: the queue listing itself (mailq layout or JSON lines), shared by postqueue as root and
 * the showq daemon that answers everyone else. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "dsnlog.h"
#include "qfile.h"
#include "queue.h"
#include "queue_id.h"
#include "showq.h"

/* The order of Postfix's showq. */
static const enum queue_name list_queues[] = {QUEUE_MAILDROP, QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED,
                                              QUEUE_HOLD};

/* The first read of a queue file: the envelope of a message with a few recipients, so one pread (and no
 * fstat) per message; a longer envelope is read in larger pieces until its content record's header. */
#define SHOWQ_FIRST_READ 4096
/* Output is written in pieces of about this size. */
#define SHOWQ_FLUSH_AT (64 * 1024)

struct lister {
        struct queue *q;
        bool json;
        FILE *out_file;
        struct buf out;  /* text not yet written */
        struct buf data; /* the file being read */
        bool first;
        uint64_t total;
        /* The names in defer/ (sorted), read once before the first message that could have a log:
         * a message without one costs no failed open. */
        bool defer_read;
        bool defer_known; /* false when defer/ could not be listed: try each message's log */
        struct strv defer;
};

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The valid queue IDs in dirfd (not consumed), sorted; regular files only (or of unknown type) when
 * files_only. At most budget names. */
static int read_names(int dirfd, bool files_only, size_t budget, struct strv *names)
{
        int dup_fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
        if (dup_fd < 0)
                return -errno;
        DIR *d = fdopendir(dup_fd);
        if (!d) {
                int r = -errno;
                close(dup_fd);
                return r;
        }
        rewinddir(d);
        struct dirent *de;
        while ((de = readdir(d)) && names->n < budget)
                if ((!files_only || de->d_type == DT_REG || de->d_type == DT_UNKNOWN) &&
                    queue_id_valid(de->d_name))
                        strv_push(names, de->d_name);
        closedir(d);
        if (names->n > 1)
                qsort(names->v, names->n, sizeof *names->v, cmp_str);
        return 0;
}

static void read_defer_names(struct lister *l)
{
        l->defer_read = true;
        _cleanup_free_ char *path =
                xasprintf("%s/%s", queue_directory(l->q), queue_name_to_string(QUEUE_DEFER));
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return;
        l->defer_known = read_names(fd, false, SIZE_MAX, &l->defer) == 0;
        close(fd);
}

static bool may_have_defer_log(struct lister *l, const char *qid)
{
        if (!l->defer_read)
                read_defer_names(l);
        return !l->defer_known || bsearch(&qid, l->defer.v, l->defer.n, sizeof *l->defer.v, cmp_str);
}

/* Each pending recipient's latest deferral reason from defer/QID (matched by queue file position, else by
 * address), as Postfix's showq reads its defer logs. The reasons point into *log. */
static void fill_reasons(struct lister *l, const char *qid, const struct qfile_msg *m, struct showq_rcpt *rc,
                         const size_t *pos, size_t n, struct dsnlog *log)
{
        if (n == 0 || !may_have_defer_log(l, qid) || dsnlog_read(l->q, QUEUE_DEFER, qid, log) < 0)
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

/*
 * The envelope of the queue file open on fd, read from its start into b: SHOWQ_FIRST_READ bytes, then four
 * times as many while the envelope goes on. The content is neither read nor checked (the queue manager and
 * recovery do that); -EBADMSG for a file that is malformed or ends before its content.
 */
static int read_envelope(int fd, struct buf *b, struct qfile_msg *m)
{
        size_t want = SHOWQ_FIRST_READ;
        b->len = 0;
        for (;;) {
                buf_reserve(b, want - b->len);
                ssize_t k = pread(fd, b->data + b->len, want - b->len, (off_t)b->len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                b->len += (size_t)k;
                /* Decoded after every read: a short read (the whole of a small file) is the usual case. */
                int r = qfile_decode_flags(b->data, b->len, QFILE_DECODE_ENVELOPE, m, NULL);
                if (r != -ENODATA)
                        return r;
                if (k == 0 || want >= QUEUE_MAX_FILE_SIZE)
                        return -EBADMSG; /* ends before its content */
                if (b->len == want)
                        want *= 4;
        }
}

static void write_out(struct lister *l)
{
        if (l->out.len > 0)
                fwrite(l->out.data, 1, l->out.len, l->out_file);
        l->out.len = 0;
}

/* List one message; false when it is gone, being written or unreadable. */
static bool show_message(struct lister *l, enum queue_name qn, const char *qid)
{
        int fd = -1;
        if (queue_open_file(l->q, qid, qn, O_RDONLY, &fd) < 0)
                return false; /* delivered or moved since the scan */
        struct qfile_msg m = {0};
        int r = read_envelope(fd, &l->data, &m);
        close(fd);
        if (r < 0)
                return false; /* corrupt or foreign: recovery's business, not the listing's */
        struct showq_rcpt *rc = xcalloc(m.n_rcpts ? m.n_rcpts : 1, sizeof *rc);
        size_t *pos = xcalloc(m.n_rcpts ? m.n_rcpts : 1, sizeof *pos);
        size_t n = 0;
        for (size_t j = 0; j < m.n_rcpts; j++)
                if (qfile_rcpt_state_pending(m.rcpts[j].state)) {
                        pos[n] = j;
                        rc[n++] = (struct showq_rcpt){.address = m.rcpts[j].address};
                }
        struct dsnlog log = {0};
        fill_reasons(l, qid, &m, rc, pos, n, &log);
        struct showq_entry e = {
                .queue_name = queue_name_to_string(qn),
                .queue_id = qid,
                .arrival_time = (time_t)(m.arrival_usec / 1000000u),
                .size = m.content_len,
                .sender = m.sender,
                .rcpts = rc,
                .n_rcpts = n,
        };
        if (l->json)
                showq_format_json(&e, &l->out);
        else {
                buf_puts(&l->out, l->first ? SHOWQ_HEADING : "\n");
                showq_format_entry(&e, &l->out);
        }
        if (l->out.len >= SHOWQ_FLUSH_AT)
                write_out(l);
        l->first = false;
        l->total += e.size;
        free(rc);
        free(pos);
        dsnlog_done(&log);
        qfile_msg_done(&m);
        return true;
}

/* Print one queue's messages in the order of their IDs; returns how many were shown. */
static size_t show_queue(struct lister *l, enum queue_name qn, size_t budget)
{
        int dfd = queue_dirfd(l->q, qn);
        struct strv names = STRV_INIT;
        if (dfd < 0 || read_names(dfd, true, budget, &names) < 0)
                return 0;
        size_t shown = 0;
        for (size_t i = 0; i < names.n; i++)
                shown += show_message(l, qn, names.v[i]);
        strv_done(&names);
        return shown;
}

int showq_list_queue(const char *queue_dir, bool json, FILE *out_file)
{
        struct lister l = {.json = json, .out_file = out_file, .first = true};
        int r = queue_open(queue_dir, &l.q);
        if (r < 0)
                return r;
        size_t n = 0;
        for (size_t i = 0; i < ELEMENTSOF(list_queues) && n < SHOWQ_LIST_MAX; i++)
                n += show_queue(&l, list_queues[i], SHOWQ_LIST_MAX - n);
        if (!json)
                showq_format_trailer(n, l.total, &l.out);
        write_out(&l);
        buf_done(&l.out);
        buf_done(&l.data);
        strv_done(&l.defer);
        queue_close(l.q);
        return 0;
}
