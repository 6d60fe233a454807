/* showq_list.c: the queue listing itself (mailq layout or JSON lines), shared by postqueue as root and
 * the showq daemon that answers everyone else. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
/* A queue's names are read in windows of this many, by this many threads (opening and reading a file is
 * most of the work, and kernel work: a second core halves it); at most SHOWQ_AHEAD windows are held,
 * printed in the order of the names whichever thread finishes first. */
#define SHOWQ_WINDOW  256
#define SHOWQ_THREADS 2
#define SHOWQ_AHEAD   (4 * SHOWQ_THREADS)

struct lister {
        struct queue *q;
        bool json;
        FILE *out_file;
        struct buf out; /* text not yet written */
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

static bool may_have_defer_log(const struct lister *l, const char *qid)
{
        return !l->defer_known || bsearch(&qid, l->defer.v, l->defer.n, sizeof *l->defer.v, cmp_str);
}

/* Each pending recipient's latest deferral reason from defer/QID (matched by queue file position, else by
 * address), as Postfix's showq reads its defer logs. The reasons point into *log. */
static void fill_reasons(const struct lister *l, const char *qid, const struct qfile_msg *m,
                         struct showq_rcpt *rc, const size_t *pos, size_t n, struct dsnlog *log)
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

/* What one window of names gave: its text (each mailq entry after a blank line), sizes and count. */
struct piece {
        struct buf text;
        uint64_t total;
        size_t shown;
        bool done;
};

/* List one message into p; nothing when it is gone, being written or unreadable. data: a read buffer. */
static void show_message(const struct lister *l, enum queue_name qn, const char *qid, struct buf *data,
                         struct piece *p)
{
        int fd = -1;
        if (queue_open_file(l->q, qid, qn, O_RDONLY, &fd) < 0)
                return; /* delivered or moved since the scan */
        struct qfile_msg m = {0};
        int r = read_envelope(fd, data, &m);
        close(fd);
        if (r < 0)
                return; /* corrupt or foreign: recovery's business, not the listing's */
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
                showq_format_json(&e, &p->text);
        else {
                buf_putc(&p->text, '\n');
                showq_format_entry(&e, &p->text);
        }
        p->total += e.size;
        p->shown++;
        free(rc);
        free(pos);
        dsnlog_done(&log);
        qfile_msg_done(&m);
}

/* One queue's listing, shared by its threads under mu. */
struct job {
        const struct lister *l;
        enum queue_name qn;
        const struct strv *names;
        size_t n_windows;
        size_t next_claim; /* the next window no thread has taken */
        size_t next_write; /* the next window to print */
        struct piece slots[SHOWQ_AHEAD];
        pthread_mutex_t mu;
        pthread_cond_t cv;
};

/* Take the next window, if one is free and within SHOWQ_AHEAD of the printing, and list it (mu held on
 * entry and return, released while working). */
static bool work_one(struct job *j, struct buf *data)
{
        if (j->next_claim >= j->n_windows || j->next_claim >= j->next_write + SHOWQ_AHEAD)
                return false;
        size_t w = j->next_claim++;
        struct piece *p = &j->slots[w % SHOWQ_AHEAD];
        pthread_mutex_unlock(&j->mu);
        size_t end = (w + 1) * SHOWQ_WINDOW < j->names->n ? (w + 1) * SHOWQ_WINDOW : j->names->n;
        for (size_t i = w * SHOWQ_WINDOW; i < end; i++)
                show_message(j->l, j->qn, j->names->v[i], data, p);
        pthread_mutex_lock(&j->mu);
        p->done = true;
        pthread_cond_broadcast(&j->cv);
        return true;
}

static void *worker_main(void *arg)
{
        struct job *j = arg;
        struct buf data = BUF_INIT;
        pthread_mutex_lock(&j->mu);
        while (j->next_claim < j->n_windows)
                if (!work_one(j, &data))
                        pthread_cond_wait(&j->cv, &j->mu);
        pthread_mutex_unlock(&j->mu);
        buf_done(&data);
        return NULL;
}

/* Print a finished window (mu not held): the heading before the first entry of the listing. */
static size_t print_piece(struct lister *l, struct piece *p)
{
        const char *text = p->text.data;
        size_t len = p->text.len;
        if (!l->json && l->first && len > 0) {
                buf_puts(&l->out, SHOWQ_HEADING);
                text++; /* the blank line that separates entries */
                len--;
                l->first = false;
        }
        buf_append(&l->out, text, len);
        if (l->out.len >= SHOWQ_FLUSH_AT)
                write_out(l);
        l->total += p->total;
        size_t shown = p->shown;
        p->text.len = 0;
        p->total = 0;
        p->shown = 0;
        p->done = false;
        return shown;
}

/* Print one queue's messages in the order of their IDs; returns how many were shown. */
static size_t show_queue(struct lister *l, enum queue_name qn, size_t budget)
{
        int dfd = queue_dirfd(l->q, qn);
        struct strv names = STRV_INIT;
        if (dfd < 0 || read_names(dfd, true, budget, &names) < 0 || names.n == 0) {
                strv_done(&names);
                return 0;
        }
        if (!l->defer_read)
                read_defer_names(l); /* after the queue's names: a log written before its file moved */
        struct job j = {.l = l, .qn = qn, .names = &names};
        j.n_windows = (names.n + SHOWQ_WINDOW - 1) / SHOWQ_WINDOW;
        pthread_mutex_init(&j.mu, NULL);
        pthread_cond_init(&j.cv, NULL);
        pthread_t tids[SHOWQ_THREADS];
        size_t n_tids = 0;
        while (n_tids + 1 < SHOWQ_THREADS && n_tids + 1 < j.n_windows &&
               pthread_create(&tids[n_tids], NULL, worker_main, &j) == 0)
                n_tids++;
        struct buf data = BUF_INIT;
        size_t shown = 0;
        pthread_mutex_lock(&j.mu);
        while (j.next_write < j.n_windows) {
                struct piece *p = &j.slots[j.next_write % SHOWQ_AHEAD];
                if (p->done) {
                        pthread_mutex_unlock(&j.mu);
                        shown += print_piece(l, p);
                        pthread_mutex_lock(&j.mu);
                        j.next_write++;
                        pthread_cond_broadcast(&j.cv);
                } else if (!work_one(&j, &data))
                        pthread_cond_wait(&j.cv, &j.mu);
        }
        pthread_mutex_unlock(&j.mu);
        for (size_t i = 0; i < n_tids; i++)
                pthread_join(tids[i], NULL);
        for (size_t i = 0; i < SHOWQ_AHEAD; i++)
                buf_done(&j.slots[i].text);
        buf_done(&data);
        pthread_cond_destroy(&j.cv);
        pthread_mutex_destroy(&j.mu);
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
        strv_done(&l.defer);
        queue_close(l.q);
        return 0;
}
