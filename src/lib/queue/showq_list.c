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
static size_t show_queue(struct queue *q, enum queue_name qn, bool json, bool *first, uint64_t *total,
                         size_t budget, FILE *out_file)
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
                        if (qfile_rcpt_state_pending(m.rcpts[j].state)) {
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
                if (json)
                        showq_format_json(&e, &out);
                else {
                        buf_puts(&out, *first ? SHOWQ_HEADING : "\n");
                        showq_format_entry(&e, &out);
                }
                fputs(buf_str(&out), out_file);
                buf_done(&out);
                *first = false;
                *total += e.size;
                shown++;
                free(rc);
                free(pos);
                dsnlog_done(&log);
                qfile_msg_done(&m);
                free(data);
        }
        strv_done(&names);
        return shown;
}

int showq_list_queue(const char *queue_dir, bool json, FILE *out_file)
{
        struct queue *q = NULL;
        int r = queue_open(queue_dir, &q);
        if (r < 0)
                return r;
        bool first = true;
        uint64_t total = 0;
        size_t n = 0;
        for (size_t i = 0; i < ELEMENTSOF(list_queues) && n < SHOWQ_LIST_MAX; i++)
                n += show_queue(q, list_queues[i], json, &first, &total, SHOWQ_LIST_MAX - n, out_file);
        if (!json) {
                struct buf out = BUF_INIT;
                showq_format_trailer(n, total, &out);
                fputs(buf_str(&out), out_file);
                buf_done(&out);
        }
        queue_close(q);
        return 0;
}
