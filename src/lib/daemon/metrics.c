/* metrics.c: the shared counters file of an instance, updates from the roles, the OpenMetrics text. */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "macro.h"

static struct metrics_shm *shm; /* this process's mapping; NULL: not counting */
static char transport_name[METRICS_NAME_MAX];

int metrics_create(const char *data_dir, int *ret_fd)
{
        _cleanup_free_ char *path = xasprintf("%s/%s", data_dir, METRICS_FILE);
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct metrics_shm head = {.magic = METRICS_MAGIC,
                                   .created_usec =
                                           (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000};
        /* A fresh start: zero everything (a shorter or longer file of another version included). */
        if (ftruncate(fd, 0) < 0 || ftruncate(fd, sizeof(struct metrics_shm)) < 0 ||
            pwrite(fd, &head, offsetof(struct metrics_shm, counter), 0) !=
                    (ssize_t)offsetof(struct metrics_shm, counter)) {
                int e = errno;
                close(fd);
                return -e;
        }
        *ret_fd = fd;
        return 0;
}

int metrics_attach(int fd)
{
        void *p = mmap(NULL, sizeof(struct metrics_shm), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        if (((struct metrics_shm *)p)->magic != METRICS_MAGIC) {
                munmap(p, sizeof(struct metrics_shm));
                return -EBADMSG;
        }
        shm = p;
        return 0;
}

const struct metrics_shm *metrics_attached(void)
{
        return shm;
}

int metrics_map(const char *path, const struct metrics_shm **ret)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(struct metrics_shm)) {
                close(fd);
                return -EBADMSG;
        }
        void *p = mmap(NULL, sizeof(struct metrics_shm), PROT_READ, MAP_SHARED, fd, 0);
        int e = errno;
        close(fd);
        if (p == MAP_FAILED)
                return -e;
        if (((const struct metrics_shm *)p)->magic != METRICS_MAGIC) {
                munmap(p, sizeof(struct metrics_shm));
                return -EBADMSG;
        }
        *ret = p;
        return 0;
}

void metrics_unmap(const struct metrics_shm *m)
{
        if (m)
                munmap((void *)m, sizeof(struct metrics_shm));
}

void metrics_count(enum metrics_counter c)
{
        if (shm && c < _METRIC_COUNTER_MAX)
                atomic_fetch_add_explicit(&shm->counter[c], 1, memory_order_relaxed);
}

void metrics_set_transport(const char *name)
{
        snprintf(transport_name, sizeof transport_name, "%s", name ? name : "");
}

const char *metrics_transport(void)
{
        return transport_name;
}

/* The slot of a transport, claimed on first use; NULL when all are taken (then it is not counted). */
static struct metrics_transport *transport_slot(const char *name)
{
        for (size_t i = 0; i < METRICS_TRANSPORTS_MAX; i++) {
                struct metrics_transport *t = &shm->transport[i];
                uint32_t st = atomic_load_explicit(&t->state, memory_order_acquire);
                if (st == 2 && strncmp(t->name, name, METRICS_NAME_MAX) == 0)
                        return t;
                uint32_t free_state = 0;
                if (st == 0 && atomic_compare_exchange_strong(&t->state, &free_state, 1)) {
                        snprintf(t->name, sizeof t->name, "%s", name);
                        atomic_store_explicit(&t->state, 2, memory_order_release);
                        return t;
                }
                /* Being named by another process (state 1): a second slot of the same name may follow;
                 * the text sums slots by name. */
        }
        return NULL;
}

static const double delay_bounds[METRICS_DELAY_BUCKETS] = METRICS_DELAY_BOUNDS;

void metrics_delivery(const char *transport, enum metrics_status status, uint64_t delay_usec)
{
        if (!shm || status >= _METRICS_STATUS_MAX)
                return;
        struct metrics_transport *t = transport_slot(!isempty(transport) ? transport : "unknown");
        if (!t)
                return;
        atomic_fetch_add_explicit(&t->status[status], 1, memory_order_relaxed);
        if (status != METRICS_SENT)
                return;
        size_t b = 0;
        while (b < METRICS_DELAY_BUCKETS && (double)delay_usec / 1e6 > delay_bounds[b])
                b++;
        atomic_fetch_add_explicit(&t->delay_bucket[b], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&t->delay_sum_usec, delay_usec, memory_order_relaxed);
}

/* cleanup's origin attribute and the counter of each; "other" also stands for anything unknown. */
static const struct {
        const char *name;
        enum metrics_counter c;
} origins[] = {{"smtpd", METRIC_RECEIVED_SMTPD},
               {"pickup", METRIC_RECEIVED_PICKUP},
               {"bounce", METRIC_RECEIVED_BOUNCE},
               {"local", METRIC_RECEIVED_FORWARD}, /* local's forwarded copies */
               {"other", METRIC_RECEIVED_OTHER}};

enum metrics_counter metrics_origin_counter(const char *origin)
{
        for (size_t i = 0; origin && i < ELEMENTSOF(origins); i++)
                if (streq(origin, origins[i].name))
                        return origins[i].c;
        return METRIC_RECEIVED_OTHER;
}

/* ---- the text ---- */

static void label_value(struct buf *out, const char *v)
{
        for (; *v; v++) {
                if (*v == '\\' || *v == '"')
                        buf_putc(out, '\\'), buf_putc(out, *v);
                else if (*v == '\n')
                        buf_puts(out, "\\n");
                else
                        buf_putc(out, *v);
        }
}

static void family(struct buf *out, const char *name, const char *type, const char *help)
{
        buf_printf(out, "# TYPE %s %s\n# HELP %s %s\n", name, type, name, help);
}

/* NAME{instance="I"[,K="V"]...} VALUE */
static void sample(struct buf *out, const char *name, const char *instance, const char *labels, uint64_t v)
{
        buf_printf(out, "%s{instance=\"", name);
        label_value(out, instance);
        buf_printf(out, "\"%s} %llu\n", labels ? labels : "", (unsigned long long)v);
}

static uint64_t load(const _Atomic uint64_t *p)
{
        return atomic_load_explicit(p, memory_order_relaxed);
}

static void render_smtpd(const struct metrics_shm *m, const char *instance, struct buf *out)
{
        static const struct {
                const char *name, *help;
                enum metrics_counter c;
        } counters[] = {
                {"postd_smtpd_connections", "Connections accepted by smtpd.", METRIC_SMTPD_CONNECTIONS},
                {"postd_smtpd_tls_handshakes", "TLS handshakes completed by smtpd.", METRIC_SMTPD_TLS},
                {"postd_smtpd_rejects", "4xx and 5xx answers of smtpd to MAIL, RCPT and DATA.",
                 METRIC_SMTPD_REJECTS},
        };
        for (size_t i = 0; i < ELEMENTSOF(counters); i++) {
                family(out, counters[i].name, "counter", counters[i].help);
                _cleanup_free_ char *n = xasprintf("%s_total", counters[i].name);
                sample(out, n, instance, NULL, load(&m->counter[counters[i].c]));
        }
        family(out, "postd_smtpd_auth", "counter", "AUTH attempts of clients, by result.");
        sample(out, "postd_smtpd_auth_total", instance, ",result=\"success\"",
               load(&m->counter[METRIC_SMTPD_AUTH_OK]));
        sample(out, "postd_smtpd_auth_total", instance, ",result=\"failure\"",
               load(&m->counter[METRIC_SMTPD_AUTH_FAILED]));
        uint64_t opened = load(&m->counter[METRIC_SMTPD_CONNECTIONS]),
                 closed = load(&m->counter[METRIC_SMTPD_DISCONNECTS]);
        family(out, "postd_smtpd_sessions", "gauge", "SMTP sessions open now.");
        sample(out, "postd_smtpd_sessions", instance, NULL, opened > closed ? opened - closed : 0);
}

static void render_received(const struct metrics_shm *m, const char *instance, struct buf *out)
{
        family(out, "postd_messages_received", "counter",
               "Messages queued by cleanup, by where they came from.");
        for (size_t i = 0; i < ELEMENTSOF(origins); i++) {
                _cleanup_free_ char *l = xasprintf(",origin=\"%s\"", origins[i].name);
                sample(out, "postd_messages_received_total", instance, l, load(&m->counter[origins[i].c]));
        }
}

/* One transport's figures summed over its slots (two processes may have named one at once). */
struct transport_sum {
        char name[METRICS_NAME_MAX];
        uint64_t status[_METRICS_STATUS_MAX], bucket[METRICS_DELAY_BUCKETS + 1], sum_usec;
};

static size_t sum_transports(const struct metrics_shm *m, struct transport_sum *v)
{
        size_t n = 0;
        for (size_t i = 0; i < METRICS_TRANSPORTS_MAX; i++) {
                const struct metrics_transport *t = &m->transport[i];
                if (atomic_load_explicit(&t->state, memory_order_acquire) != 2)
                        continue;
                size_t k = 0;
                while (k < n && strncmp(v[k].name, t->name, METRICS_NAME_MAX) != 0)
                        k++;
                if (k == n) {
                        v[n] = (struct transport_sum){0};
                        memcpy(v[n].name, t->name, METRICS_NAME_MAX);
                        v[n].name[METRICS_NAME_MAX - 1] = '\0';
                        n++;
                }
                for (size_t s = 0; s < _METRICS_STATUS_MAX; s++)
                        v[k].status[s] += load(&t->status[s]);
                for (size_t b = 0; b <= METRICS_DELAY_BUCKETS; b++)
                        v[k].bucket[b] += load(&t->delay_bucket[b]);
                v[k].sum_usec += load(&t->delay_sum_usec);
        }
        return n;
}

static void render_deliveries(const struct metrics_shm *m, const char *instance, struct buf *out)
{
        static const char *const status_names[] = {"sent", "deferred", "bounced"};
        struct transport_sum v[METRICS_TRANSPORTS_MAX];
        size_t n = sum_transports(m, v);
        family(out, "postd_deliveries", "counter",
               "Recipients delivered, deferred or bounced, by transport.");
        for (size_t k = 0; k < n; k++)
                for (size_t s = 0; s < _METRICS_STATUS_MAX; s++) {
                        struct buf l = BUF_INIT;
                        buf_puts(&l, ",transport=\"");
                        label_value(&l, v[k].name);
                        buf_printf(&l, "\",status=\"%s\"", status_names[s]);
                        sample(out, "postd_deliveries_total", instance, buf_str(&l), v[k].status[s]);
                        buf_done(&l);
                }
        family(out, "postd_delivery_delay_seconds", "histogram",
               "Time from arrival to delivery of recipients sent, by transport.");
        for (size_t k = 0; k < n; k++) {
                uint64_t cum = 0;
                for (size_t b = 0; b <= METRICS_DELAY_BUCKETS; b++) {
                        cum += v[k].bucket[b];
                        struct buf l = BUF_INIT;
                        buf_puts(&l, ",transport=\"");
                        label_value(&l, v[k].name);
                        if (b < METRICS_DELAY_BUCKETS)
                                buf_printf(&l, "\",le=\"%g\"", delay_bounds[b]);
                        else
                                buf_puts(&l, "\",le=\"+Inf\"");
                        sample(out, "postd_delivery_delay_seconds_bucket", instance, buf_str(&l), cum);
                        buf_done(&l);
                }
                struct buf l = BUF_INIT;
                buf_puts(&l, ",transport=\"");
                label_value(&l, v[k].name);
                buf_puts(&l, "\"");
                sample(out, "postd_delivery_delay_seconds_count", instance, buf_str(&l), cum);
                buf_printf(out, "postd_delivery_delay_seconds_sum{instance=\"");
                label_value(out, instance);
                buf_printf(out, "\"%s} %.6f\n", buf_str(&l), (double)v[k].sum_usec / 1e6);
                buf_done(&l);
        }
}

static void render_queues(const struct metrics_queues *q, const char *instance, struct buf *out)
{
        const struct {
                const char *name;
                long long n;
        } queues[] = {{"incoming", q->incoming},
                      {"active", q->active},
                      {"deferred", q->deferred},
                      {"hold", q->hold},
                      {"maildrop", q->maildrop}};
        family(out, "postd_queue_messages", "gauge", "Messages in each queue directory.");
        for (size_t i = 0; i < ELEMENTSOF(queues); i++) {
                if (queues[i].n < 0)
                        continue;
                _cleanup_free_ char *l = xasprintf(",queue=\"%s\"", queues[i].name);
                sample(out, "postd_queue_messages", instance, l, (uint64_t)queues[i].n);
        }
}

void metrics_render(const struct metrics_shm *m, const char *instance, const struct metrics_queues *q,
                    struct buf *out)
{
        if (m) {
                render_smtpd(m, instance, out);
                render_received(m, instance, out);
                render_deliveries(m, instance, out);
                family(out, "postd_start_time_seconds", "gauge", "When the instance's counters started.");
                buf_printf(out, "postd_start_time_seconds{instance=\"");
                label_value(out, instance);
                buf_printf(out, "\"} %.6f\n", (double)m->created_usec / 1e6);
        }
        if (q)
                render_queues(q, instance, out);
        buf_puts(out, "# EOF\n");
}
