/* dsnlog.c: per-message logs of recipient outcomes: record codec, crash-safe appends, readers. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "dsnlog.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"

#define CRC_FIELD     "\tcrc="
#define CRC_FIELD_LEN 5
#define CRC_HEX_LEN   8

static bool needs_escape(unsigned char c)
{
        return c == '%' || c < 0x20 || c == 0x7f;
}

static void put_value(struct buf *out, const char *v)
{
        static const char hex[] = "0123456789ABCDEF";
        for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
                if (needs_escape(*p)) {
                        char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
                        buf_append(out, e, 3);
                } else
                        buf_putc(out, (char)*p);
        }
}

static void put_field(struct buf *out, const char *name, const char *value)
{
        if (isempty(value))
                return;
        buf_printf(out, "\t%s=", name);
        put_value(out, value);
}

static bool valid_status(const char *s)
{
        size_t n = strlen(s);
        if (n < 5 || n > QFILE_MAX_DSN_STATUS_LEN)
                return false;
        for (; *s; s++)
                if ((*s < '0' || *s > '9') && *s != '.')
                        return false;
        return true;
}

/* What the parser accepts, so that the writer never writes a record the reader would skip. */
static bool rec_valid(const struct dsnlog_rec *rec)
{
        return !isempty(rec->rcpt) && strlen(rec->rcpt) <= QFILE_MAX_ADDRESS_LEN &&
               (isempty(rec->status) || valid_status(rec->status)) && rec->index <= DSNLOG_NO_INDEX &&
               rec->notify <= 15;
}

int dsnlog_format(const struct dsnlog_rec *rec, struct buf *out)
{
        if (!rec_valid(rec))
                return -EINVAL;
        size_t start = out->len;
        buf_printf(out, "dsnlog=%d\ttime=%" PRIu64 "\tindex=%" PRIu64, DSNLOG_VERSION, rec->time_usec,
                   rec->index);
        put_field(out, "rcpt", rec->rcpt);
        put_field(out, "orig_rcpt", rec->orig_rcpt);
        put_field(out, "orcpt", rec->orcpt);
        if (rec->notify)
                buf_printf(out, "\tnotify=%u", rec->notify);
        put_field(out, "action", rec->action);
        put_field(out, "status", rec->status);
        put_field(out, "relay", rec->relay);
        put_field(out, "reason", rec->reason);
        uint32_t crc = qfile_crc32c(0, out->data + start, out->len - start);
        buf_printf(out, CRC_FIELD "%08" PRIx32 "\n", crc);
        if (out->len - start > DSNLOG_LINE_MAX) {
                buf_truncate(out, start);
                return -E2BIG;
        }
        return 0;
}

/* Decode %XX in place over [v, end); NUL-terminates. False for a bad escape or an encoded NUL. */
static bool decode_value(char *v, char *end)
{
        char *w = v;
        for (char *p = v; p < end; p++) {
                if (*p != '%') {
                        *w++ = *p;
                        continue;
                }
                if (end - p < 3)
                        return false;
                int hi = unhexchar(p[1]), lo = unhexchar(p[2]);
                if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                        return false;
                *w++ = (char)(hi * 16 + lo);
                p += 2;
        }
        *w = '\0';
        return true;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
        if (!*s || strlen(s) > 20)
                return false;
        uint64_t v = 0;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return false;
                unsigned d = (unsigned)(*s - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        if (v > max)
                return false;
        *ret = v;
        return true;
}

/* One line without its LF, in place. */
static bool parse_line(char *line, size_t len, struct dsnlog_rec *rec)
{
        if (len == 0 || len + 1 > DSNLOG_LINE_MAX || memchr(line, '\0', len))
                return false;
        /* The checksum field is last and covers everything before it. */
        if (len < CRC_FIELD_LEN + CRC_HEX_LEN)
                return false;
        char *crcf = line + len - CRC_FIELD_LEN - CRC_HEX_LEN;
        if (memcmp(crcf, CRC_FIELD, CRC_FIELD_LEN) != 0)
                return false;
        uint32_t want = 0;
        for (size_t i = 0; i < CRC_HEX_LEN; i++) {
                int h = unhexchar(crcf[CRC_FIELD_LEN + i]);
                if (h < 0)
                        return false;
                want = want << 4 | (uint32_t)h;
        }
        if (qfile_crc32c(0, line, (size_t)(crcf - line)) != want)
                return false;
        *crcf = '\0';

        *rec = (struct dsnlog_rec){.index = DSNLOG_NO_INDEX};
        bool seen_version = false, seen_time = false, seen_index = false;
        char *p = line;
        char *end = crcf;
        for (size_t nf = 0; p < end; nf++) {
                if (nf >= DSNLOG_FIELDS_MAX)
                        return false;
                char *tab = memchr(p, '\t', (size_t)(end - p));
                char *fe = tab ? tab : end;
                char *eq = memchr(p, '=', (size_t)(fe - p));
                if (!eq || eq == p)
                        return false;
                *eq = '\0';
                const char *name = p;
                char *value = eq + 1;
                if (!decode_value(value, fe))
                        return false;
                p = tab ? tab + 1 : end;
                if (nf == 0) {
                        /* A newer version may mean anything: skip it rather than misread it. */
                        if (!streq(name, "dsnlog") || !streq(value, "1"))
                                return false;
                        seen_version = true;
                        continue;
                }
                const char **str = NULL;
                if (streq(name, "time")) {
                        if (seen_time || !parse_u64(value, UINT64_MAX, &rec->time_usec))
                                return false;
                        seen_time = true;
                } else if (streq(name, "index")) {
                        if (seen_index || !parse_u64(value, DSNLOG_NO_INDEX, &rec->index))
                                return false;
                        seen_index = true;
                } else if (streq(name, "notify")) {
                        uint64_t n;
                        if (rec->notify || !parse_u64(value, 15, &n) || n == 0)
                                return false;
                        rec->notify = (unsigned)n;
                } else if (streq(name, "rcpt"))
                        str = &rec->rcpt;
                else if (streq(name, "orig_rcpt"))
                        str = &rec->orig_rcpt;
                else if (streq(name, "orcpt"))
                        str = &rec->orcpt;
                else if (streq(name, "action"))
                        str = &rec->action;
                else if (streq(name, "status"))
                        str = &rec->status;
                else if (streq(name, "relay"))
                        str = &rec->relay;
                else if (streq(name, "reason"))
                        str = &rec->reason;
                /* Other names: a newer minor writer's addition, ignored. */
                if (str) {
                        if (*str)
                                return false; /* a field twice */
                        *str = value;
                }
        }
        if (!seen_version || !seen_time || isempty(rec->rcpt))
                return false;
        return rec_valid(rec);
}

int dsnlog_parse(char *data, size_t len, struct dsnlog_rec **ret_recs, size_t *ret_n, size_t *ret_bad)
{
        struct dsnlog_rec *recs = NULL;
        size_t n = 0, cap = 0, bad = 0;
        int r = 0;
        if (len > DSNLOG_FILE_MAX) {
                len = DSNLOG_FILE_MAX;
                r = -E2BIG;
        }
        char *p = data, *end = data + len;
        while (p < end) {
                char *nl = memchr(p, '\n', (size_t)(end - p));
                if (!nl) {
                        /* An unterminated last line: a write torn by a crash. */
                        bad++;
                        break;
                }
                size_t l = (size_t)(nl - p);
                char *line = p;
                p = nl + 1;
                if (l == 0)
                        continue;
                struct dsnlog_rec rec;
                if (!parse_line(line, l, &rec)) {
                        bad++;
                        continue;
                }
                if (n >= DSNLOG_RECORDS_MAX) {
                        r = -E2BIG;
                        break;
                }
                if (n == cap) {
                        cap = cap ? 2 * cap : 16;
                        recs = xrealloc(recs, cap * sizeof *recs);
                }
                recs[n++] = rec;
        }
        *ret_recs = recs;
        *ret_n = n;
        *ret_bad = bad;
        return r;
}

static bool log_queue(enum queue_name which)
{
        return which == QUEUE_BOUNCE || which == QUEUE_DEFER || which == QUEUE_TRACE;
}

static int open_log_dir(struct queue *q, enum queue_name which)
{
        _cleanup_free_ char *path = xasprintf("%s/%s", queue_directory(q), queue_name_to_string(which));
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

int dsnlog_append(struct queue *q, enum queue_name which, const char *qid, const struct dsnlog_rec *rec)
{
        if (!log_queue(which) || !queue_id_valid(qid))
                return -EINVAL;
        struct buf line = BUF_INIT;
        int r = dsnlog_format(rec, &line);
        if (r < 0) {
                buf_done(&line);
                return r;
        }
        _cleanup_close_ int dfd = open_log_dir(q, which);
        if (dfd < 0) {
                buf_done(&line);
                return dfd;
        }
        bool created = true;
        int fd = openat(dfd, qid, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST) {
                created = false;
                fd = openat(dfd, qid, O_RDWR | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
        }
        if (fd < 0) {
                r = -errno;
                buf_done(&line);
                return r;
        }
        if (created && geteuid() == 0) {
                /* local runs as root; the bounce daemon and qmgr (mail_owner) must read and remove it. */
                struct stat st;
                if (fstat(dfd, &st) == 0 && fchown(fd, st.st_uid, st.st_gid) < 0)
                        r = -errno;
        }
        if (r >= 0 && !created) {
                /* A crash may have torn the last record: start on a fresh line so this one stays whole. */
                struct stat st;
                char last = '\n';
                if (fstat(fd, &st) == 0 && st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) == 1 &&
                    last != '\n')
                        r = write_full(fd, "\n", 1);
        }
        if (r >= 0)
                r = write_full(fd, line.data, line.len);
        if (r >= 0 && fdatasync(fd) < 0)
                r = -errno;
        close(fd);
        if (r >= 0 && created && fsync(dfd) < 0)
                r = -errno;
        buf_done(&line);
        return r;
}

static uint64_t now_usec(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int dsnlog_append_rcpt(struct queue *q, enum queue_name which, const char *qid, size_t index,
                       const struct qfile_rcpt *r, const char *status, const char *relay, const char *reason)
{
        _cleanup_free_ char *short_reason = NULL;
        if (reason && strlen(reason) > DSNLOG_REASON_MAX)
                reason = short_reason = xstrndup(reason, DSNLOG_REASON_MAX);
        /* A malformed DSN from a peer must not cost the record: keep the class, drop the detail. */
        if (!isempty(status) && !valid_status(status))
                status = which == QUEUE_BOUNCE ? "5.0.0" : "4.0.0";
        struct dsnlog_rec rec = {
                .time_usec = now_usec(),
                .index = index,
                .rcpt = r->address,
                .orig_rcpt = r->orig_rcpt,
                .orcpt = r->orcpt,
                .notify = r->notify,
                .action = which == QUEUE_BOUNCE  ? "failed"
                          : which == QUEUE_DEFER ? "delayed"
                                                 : "delivered",
                .status = status,
                .relay = relay,
                .reason = reason,
        };
        int k = dsnlog_append(q, which, qid, &rec);
        if (k < 0)
                msg_fields(LOG_LEVEL_WARNING, &(struct log_fields){.queue_id = qid},
                           "%s: cannot append to %s/%s for recipient %s: %s", qid,
                           queue_name_to_string(which), qid, r->address, strerror(-k));
        return k;
}

int dsnlog_read(struct queue *q, enum queue_name which, const char *qid, struct dsnlog *ret)
{
        *ret = (struct dsnlog){0};
        if (!log_queue(which) || !queue_id_valid(qid))
                return -EINVAL;
        _cleanup_free_ char *path =
                xasprintf("%s/%s/%s", queue_directory(q), queue_name_to_string(which), qid);
        char *data = NULL;
        size_t len = 0;
        int r = read_file(path, DSNLOG_FILE_MAX, &data, &len);
        if (r < 0)
                return r;
        ret->data = data;
        r = dsnlog_parse(data, len, &ret->recs, &ret->n, &ret->n_bad);
        return r == -E2BIG ? 0 : r; /* the first records are kept: better a partial report than none */
}

void dsnlog_done(struct dsnlog *l)
{
        free(l->recs);
        free(l->data);
        *l = (struct dsnlog){0};
}

int dsnlog_exists(struct queue *q, enum queue_name which, const char *qid)
{
        if (!log_queue(which) || !queue_id_valid(qid))
                return -EINVAL;
        _cleanup_close_ int dfd = open_log_dir(q, which);
        if (dfd < 0)
                return dfd;
        struct stat st;
        if (fstatat(dfd, qid, &st, AT_SYMLINK_NOFOLLOW) == 0)
                return 1;
        return errno == ENOENT ? 0 : -errno;
}

int dsnlog_remove_one(struct queue *q, enum queue_name which, const char *qid, unsigned flags)
{
        if (!log_queue(which) || !queue_id_valid(qid))
                return -EINVAL;
        _cleanup_close_ int dfd = open_log_dir(q, which);
        if (dfd < 0)
                return dfd;
        if (unlinkat(dfd, qid, 0) < 0)
                return errno == ENOENT ? 0 : -errno;
        if ((flags & QUEUE_SYNC) && fsync(dfd) < 0)
                return -errno;
        return 0;
}

int dsnlog_remove(struct queue *q, const char *qid)
{
        int ret = 0;
        static const enum queue_name all[] = {QUEUE_BOUNCE, QUEUE_DEFER, QUEUE_TRACE};
        for (size_t i = 0; i < ELEMENTSOF(all); i++) {
                int r = dsnlog_remove_one(q, all[i], qid, 0);
                if (r < 0 && r != -ENOENT && ret == 0)
                        ret = r;
        }
        return ret;
}

struct latest_key {
        const struct dsnlog_rec *rec;
        size_t seq;
};

static bool same_rcpt(const struct dsnlog_rec *a, const struct dsnlog_rec *b)
{
        if (a->index != b->index)
                return false;
        return a->index != DSNLOG_NO_INDEX || streq(a->rcpt, b->rcpt);
}

static int cmp_latest(const void *x, const void *y)
{
        const struct latest_key *a = x, *b = y;
        if (a->rec->index != b->rec->index)
                return a->rec->index < b->rec->index ? -1 : 1;
        if (a->rec->index == DSNLOG_NO_INDEX) {
                int c = strcmp(a->rec->rcpt, b->rec->rcpt);
                if (c != 0)
                        return c;
        }
        return a->seq < b->seq ? -1 : a->seq > b->seq;
}

size_t dsnlog_latest(const struct dsnlog *l, const struct dsnlog_rec ***ret)
{
        /* Sorting keeps this O(n log n) for a message with many recipients and retries. */
        struct latest_key *k = xcalloc(l->n ? l->n : 1, sizeof *k);
        for (size_t i = 0; i < l->n; i++)
                k[i] = (struct latest_key){&l->recs[i], i};
        qsort(k, l->n, sizeof *k, cmp_latest);
        const struct dsnlog_rec **v = xcalloc(l->n ? l->n : 1, sizeof *v);
        size_t n = 0;
        for (size_t i = 0; i < l->n; i++)
                if (i + 1 == l->n || !same_rcpt(k[i].rec, k[i + 1].rec))
                        v[n++] = k[i].rec;
        free(k);
        *ret = v;
        return n;
}
