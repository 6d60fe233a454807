/* scan.c: qmgr's view of the queue directories: incoming and deferred scans, and the queue-run timer. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>

#include "alloc.h"
#include "log.h"
#include "qmgr.h"

static uint64_t mono_usec(struct qmgr *q)
{
        uint64_t now = event_loop_now(q->event);
        return now;
}

/* ---- directory scans ---- */

struct found {
        uint64_t mtime_usec;
        char id[QUEUE_ID_BUF_SIZE];
};

static int cmp_found(const void *a, const void *b)
{
        const struct found *x = a, *y = b;
        if (x->mtime_usec != y->mtime_usec)
                return x->mtime_usec < y->mtime_usec ? -1 : 1;
        return strcmp(x->id, y->id);
}

/* Queue IDs in queue n with their mtimes, at most max of them; *ret_more when some were left out. */
static size_t list_queue(struct qmgr *q, enum queue_name n, size_t max, struct found **ret, bool *ret_more)
{
        *ret = NULL;
        *ret_more = false;
        int dfd = queue_dirfd(q->queue, n);
        if (dfd < 0)
                return 0;
        int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return 0;
        }
        struct found *v = NULL;
        size_t cnt = 0, cap = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!queue_id_valid(de->d_name))
                        continue; /* ".", "..", temporary names of files being written */
                if (cnt == max) {
                        *ret_more = true;
                        break;
                }
                struct stat st;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                        continue;
                if (cnt == cap) {
                        cap = cap ? cap * 2 : 64;
                        v = xrealloc(v, cap * sizeof *v);
                }
                v[cnt].mtime_usec =
                        (uint64_t)st.st_mtim.tv_sec * 1000000ULL + (uint64_t)st.st_mtim.tv_nsec / 1000;
                size_t idlen = strnlen(de->d_name, QUEUE_ID_MAX_LEN); /* valid: never longer */
                memcpy(v[cnt].id, de->d_name, idlen);
                v[cnt].id[idlen] = '\0';
                cnt++;
        }
        closedir(d);
        *ret = v;
        return cnt;
}

void qmgr_scan_incoming(struct qmgr *q)
{
        struct found *v = NULL;
        bool more = false;
        size_t n = list_queue(q, QUEUE_INCOMING, QMGR_SCAN_MAX, &v, &more);
        /* Arrival order: a file's mtime is when its writer finished it. (qsort of NULL is undefined.) */
        if (n > 0)
                qsort(v, n, sizeof *v, cmp_found);
        size_t i = 0;
        for (; i < n; i++)
                if (qmgr_activate(q, v[i].id, QUEUE_INCOMING) == -EBUSY)
                        break;
        free(v);
        /* More waiting and room left: go on in the next turn of the loop rather than all at once. */
        if (more && i == n)
                qmgr_run_soon(q);
}

void qmgr_scan_deferred(struct qmgr *q, bool all_due)
{
        struct found *v = NULL;
        bool more = false;
        size_t n = list_queue(q, QUEUE_DEFERRED, SCHEDULE_MAX, &v, &more);
        schedule_clear(&q->deferred); /* rebuilt from the directory: it is the truth */
        for (size_t i = 0; i < n; i++)
                qmgr_schedule(q, all_due ? 0 : v[i].mtime_usec, v[i].id);
        free(v);
}

/* active/ is qmgr's memory: whatever is there when qmgr starts was left by a previous qmgr. */
void qmgr_requeue_active(struct qmgr *q)
{
        struct found *v = NULL;
        bool more = false;
        size_t n = list_queue(q, QUEUE_ACTIVE, QMGR_SCAN_MAX, &v, &more);
        for (size_t i = 0; i < n; i++) {
                int r = queue_move(q->queue, v[i].id, QUEUE_ACTIVE, QUEUE_INCOMING, 0);
                if (r < 0 && r != -ENOENT)
                        msg_warn("%s: move from active to incoming: %s", v[i].id, strerror(-r));
        }
        free(v);
}

static bool has_pending_rcpt_in(struct qmgr *q, const char *id, const char *site)
{
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        struct qfile_msg m = {0};
        if (queue_open_file(q->queue, id, QUEUE_DEFERRED, O_RDONLY, &fd) < 0 ||
            queue_read_fd(fd, &data, &len) < 0 || qfile_decode(data, len, &m, NULL) < 0)
                return false;
        bool found = false;
        for (size_t i = 0; i < m.n_rcpts && !found; i++) {
                if (!qfile_rcpt_state_pending(m.rcpts[i].state))
                        continue;
                _cleanup_free_ char *domain = resolve_domain_of(m.rcpts[i].address);
                found = domain && strcasecmp(domain, site) == 0;
        }
        qfile_msg_done(&m);
        return found;
}

size_t qmgr_flush_some(struct qmgr *q, const char *id, const char *site)
{
        if (id) {
                _cleanup_close_ int fd = -1;
                if (queue_open_file(q->queue, id, QUEUE_DEFERRED, O_RDONLY, &fd) == 0) {
                        qmgr_schedule(q, 0, id);
                        qmgr_run_soon(q);
                        return 1;
                }
                /* Already on its way (or held, which a flush does not release). */
                bool busy = queue_open_file(q->queue, id, QUEUE_ACTIVE, O_RDONLY, &fd) == 0 ||
                            queue_open_file(q->queue, id, QUEUE_INCOMING, O_RDONLY, &fd) == 0;
                return busy ? 1 : 0;
        }
        /* An administrator's request: one pass over deferred/ (bounded like any scan) is fine here. */
        struct found *v = NULL;
        bool more = false;
        size_t n = list_queue(q, QUEUE_DEFERRED, QMGR_SCAN_MAX, &v, &more), hits = 0;
        for (size_t i = 0; i < n; i++)
                if (has_pending_rcpt_in(q, v[i].id, site)) {
                        qmgr_schedule(q, 0, v[i].id);
                        hits++;
                }
        free(v);
        if (hits)
                qmgr_run_soon(q);
        return hits;
}

void qmgr_schedule(struct qmgr *q, uint64_t when_usec, const char *id)
{
        /* When full, the periodic rescan of deferred/ finds it. */
        (void)schedule_push(&q->deferred, when_usec, id);
}

unsigned qmgr_deferred_active_max(const struct qmgr *q)
{
        long long n = q->active_limit / QMGR_DEFERRED_SHARE;
        return n >= 1 ? (unsigned)n : 1;
}

/* Room for due deferred mail: never more than its share, so that new mail is never stuck behind it. */
static bool deferred_room(const struct qmgr *q)
{
        return q->n_active < q->active_limit && q->n_active_deferred < qmgr_deferred_active_max(q);
}

/* Activate deferred messages whose time has come, as far as their share of the active queue allows. */
void qmgr_run_due(struct qmgr *q)
{
        uint64_t now = qmgr_now_usec();
        /* In batches: mail for a dead destination is deferred again at once, and a queue of such mail must
         * not hold the loop (new mail, agents' answers) for the whole pass. The timer comes back at once. */
        uint64_t until = qmgr_mono_usec_now() + QMGR_DUE_SLICE_USEC;
        struct schedule_entry e;
        for (unsigned n = 0;
             n < QMGR_DUE_BATCH && deferred_room(q) && (n == 0 || qmgr_mono_usec_now() < until) &&
             schedule_pop_due(&q->deferred, now, &e);
             n++) {
                int r = qmgr_activate(q, e.id, QUEUE_DEFERRED);
                if (r == -EBUSY) {
                        q->blocked = true;
                        qmgr_schedule(q, e.when_usec, e.id);
                        break;
                }
        }
}

static int on_timer(struct event_source *src, uint64_t usec, void *userdata)
{
        struct qmgr *q = userdata;
        if (q->stopping)
                return 0;
        uint64_t mono = mono_usec(q);
        if (mono >= q->next_scan_usec) {
                q->next_scan_usec = mono + q->run_delay_usec;
                if (++q->runs % QMGR_DEFERRED_RESCAN_RUNS == 0)
                        qmgr_scan_deferred(q, false);
                qmgr_scan_incoming(q);
        }
        qmgr_run_due(q);
        qmgr_rearm(q);
        return 0;
}

void qmgr_rearm(struct qmgr *q)
{
        uint64_t mono = mono_usec(q);
        uint64_t when = q->next_scan_usec;
        uint64_t next;
        if (deferred_room(q) && schedule_next(&q->deferred, &next)) {
                uint64_t now = qmgr_now_usec();
                uint64_t due = next <= now ? mono : mono + (next - now);
                if (due < when)
                        when = due;
        }
        if (!q->timer) {
                int r = event_add_time(q->event, &q->timer, when, on_timer, q);
                if (r < 0)
                        msg_fatal("queue run timer: %s", strerror(-r));
                /* Queue runs yield to new mail and agents' answers: a backlog is worked on when they wait.
                 */
                event_source_set_priority(q->timer, EVENT_PRIORITY_IDLE);
                return;
        }
        event_source_set_time(q->timer, when);
        event_source_set_enabled(q->timer, EVENT_ONESHOT);
}

void qmgr_run_soon(struct qmgr *q)
{
        q->next_scan_usec = mono_usec(q);
        qmgr_rearm(q);
}
