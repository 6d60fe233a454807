/* test_dsnlog.c: the per-message log records: round trip, torn and damaged lines, limits, appends. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "dsnlog.h"
#include "queue.h"
#include "unit.h"

static const struct dsnlog_rec sample = {
        .time_usec = 1700000000123456ull,
        .index = 3,
        .rcpt = "user@example.com",
        .orig_rcpt = "Alias@example.com",
        .orcpt = "rfc822;alias@example.com",
        .notify = QFILE_NOTIFY_FAILURE | QFILE_NOTIFY_DELAY,
        .action = "failed",
        .status = "5.1.1",
        .relay = "mx.example.com[192.0.2.1]:25",
        .reason = "host mx.example.com[192.0.2.1] said: 550 5.1.1 <user@example.com>:\tno such user 100%\r\n"
                  "(in reply to RCPT TO command)",
};

static int parse_copy(const char *text, char **ret_buf, struct dsnlog_rec **recs, size_t *n, size_t *bad)
{
        *ret_buf = xstrdup(text);
        return dsnlog_parse(*ret_buf, strlen(text), recs, n, bad);
}

TEST(round_trip)
{
        struct buf b = BUF_INIT;
        CHECK_INT(dsnlog_format(&sample, &b), 0);
        CHECK(b.len > 0 && b.data[b.len - 1] == '\n');
        /* Exactly one line: every LF, CR, TAB and % of the values is encoded. */
        CHECK(memchr(b.data, '\n', b.len - 1) == NULL);
        CHECK(memchr(b.data, '\r', b.len) == NULL);
        CHECK(strstr(b.data, "100%25") != NULL);
        CHECK(strncmp(b.data, "dsnlog=1\ttime=1700000000123456\tindex=3\t", 39) == 0);

        char *copy;
        struct dsnlog_rec *recs;
        size_t n, bad;
        CHECK_INT(parse_copy(b.data, &copy, &recs, &n, &bad), 0);
        CHECK_INT(n, 1);
        CHECK_INT(bad, 0);
        CHECK_INT(recs[0].time_usec, sample.time_usec);
        CHECK_INT(recs[0].index, 3);
        CHECK_INT(recs[0].notify, sample.notify);
        CHECK_STR(recs[0].rcpt, sample.rcpt);
        CHECK_STR(recs[0].orig_rcpt, sample.orig_rcpt);
        CHECK_STR(recs[0].orcpt, sample.orcpt);
        CHECK_STR(recs[0].action, "failed");
        CHECK_STR(recs[0].status, "5.1.1");
        CHECK_STR(recs[0].relay, sample.relay);
        CHECK_STR(recs[0].reason, sample.reason);
        free(recs);
        free(copy);
        buf_done(&b);
}

TEST(optional_fields_absent)
{
        struct dsnlog_rec r = {.time_usec = 1, .index = DSNLOG_NO_INDEX, .rcpt = "a@b"};
        struct buf b = BUF_INIT;
        CHECK_INT(dsnlog_format(&r, &b), 0);
        char *copy;
        struct dsnlog_rec *recs;
        size_t n, bad;
        CHECK_INT(parse_copy(b.data, &copy, &recs, &n, &bad), 0);
        CHECK_INT(n, 1);
        CHECK(recs[0].orig_rcpt == NULL && recs[0].reason == NULL && recs[0].status == NULL);
        CHECK_INT(recs[0].index, DSNLOG_NO_INDEX);
        free(recs);
        free(copy);
        buf_done(&b);
}

TEST(format_refuses_what_parse_would_skip)
{
        struct buf b = BUF_INIT;
        struct dsnlog_rec r = sample;
        r.rcpt = "";
        CHECK_INT(dsnlog_format(&r, &b), -EINVAL);
        r = sample;
        r.status = "5.1";
        CHECK_INT(dsnlog_format(&r, &b), -EINVAL);
        r = sample;
        r.status = "5.1.1x";
        CHECK_INT(dsnlog_format(&r, &b), -EINVAL);
        r = sample;
        r.notify = 16;
        CHECK_INT(dsnlog_format(&r, &b), -EINVAL);
        r = sample;
        char *big = xmalloc(DSNLOG_LINE_MAX + 1);
        memset(big, 'x', DSNLOG_LINE_MAX);
        big[DSNLOG_LINE_MAX] = '\0';
        r.reason = big;
        CHECK_INT(dsnlog_format(&r, &b), -E2BIG);
        CHECK_INT(b.len, 0);
        free(big);
        buf_done(&b);
}

TEST(torn_and_damaged_lines_are_skipped)
{
        struct buf b = BUF_INIT;
        struct dsnlog_rec r1 = sample, r2 = sample, r3 = sample;
        r1.index = 0;
        r2.index = 1;
        r3.index = 2;
        CHECK_INT(dsnlog_format(&r1, &b), 0);
        size_t first = b.len;
        CHECK_INT(dsnlog_format(&r2, &b), 0);
        /* Damage one byte of the second record's reason: its checksum no longer matches. */
        char *x = strstr(b.data + first, "no such user");
        CHECK(x != NULL);
        *x = 'N';
        buf_puts(&b, "\n\n"); /* empty lines are fine */
        CHECK_INT(dsnlog_format(&r3, &b), 0);
        /* A torn last record: cut off before its checksum and its LF. */
        struct buf torn = BUF_INIT;
        CHECK_INT(dsnlog_format(&r1, &torn), 0);
        buf_append(&b, torn.data, torn.len - 20);

        char *copy;
        struct dsnlog_rec *recs;
        size_t n, bad;
        CHECK_INT(parse_copy(b.data, &copy, &recs, &n, &bad), 0);
        CHECK_INT(n, 2);
        CHECK_INT(bad, 2);
        CHECK_INT(recs[0].index, 0);
        CHECK_INT(recs[1].index, 2);
        free(recs);
        free(copy);
        buf_done(&b);
        buf_done(&torn);
}

TEST(torn_prefix_is_not_a_shorter_record)
{
        /* A line cut anywhere never parses: the checksum field must be last and match. */
        struct buf b = BUF_INIT;
        CHECK_INT(dsnlog_format(&sample, &b), 0);
        for (size_t cut = 1; cut < b.len - 1; cut++) {
                char *copy = xstrndup(b.data, cut);
                struct dsnlog_rec *recs;
                size_t n, bad;
                char *withnl = xasprintf("%s\n", copy);
                CHECK_INT(dsnlog_parse(withnl, cut + 1, &recs, &n, &bad), 0);
                CHECK_INT(n, 0);
                free(recs);
                free(withnl);
                free(copy);
        }
        buf_done(&b);
}

TEST(bad_lines)
{
        static const char *const lines[] = {
                "dsnlog=2\ttime=1\tindex=0\trcpt=a@b\tcrc=00000000\n", /* newer version (and a bad crc) */
                "garbage\n",
                "\tcrc=12345678\n",
                "=\n",
        };
        for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
                char *copy;
                struct dsnlog_rec *recs;
                size_t n, bad;
                CHECK_INT(parse_copy(lines[i], &copy, &recs, &n, &bad), 0);
                CHECK_INT(n, 0);
                CHECK_INT(bad, 1);
                free(recs);
                free(copy);
        }
}

/* A correct checksum over fields that break a rule: the rule still rejects the record. */
static char *signed_line(const char *fields)
{
        uint32_t crc = qfile_crc32c(0, fields, strlen(fields));
        return xasprintf("%s\tcrc=%08x\n", fields, crc);
}

TEST(rules_beyond_the_checksum)
{
        static const char *const bad_fields[] = {
                "dsnlog=2\ttime=1\trcpt=a@b",                    /* unknown version */
                "dsnlog=1\ttime=1",                              /* no recipient */
                "dsnlog=1\trcpt=a@b",                            /* no time */
                "dsnlog=1\ttime=1\ttime=2\trcpt=a@b",            /* a field twice */
                "dsnlog=1\ttime=1\trcpt=a@b\trcpt=c@d",          /* a field twice */
                "dsnlog=1\ttime=x\trcpt=a@b",                    /* not a number */
                "dsnlog=1\ttime=99999999999999999999\trcpt=a@b", /* overflow */
                "dsnlog=1\ttime=1\trcpt=a@b\tstatus=5.x.1",      /* bad DSN */
                "dsnlog=1\ttime=1\trcpt=a%00b",                  /* encoded NUL */
                "dsnlog=1\ttime=1\trcpt=a%4",                    /* short escape */
                "dsnlog=1\ttime=1\trcpt=a%zzb",                  /* bad escape */
                "dsnlog=1\ttime=1\trcpt=a@b\tnotify=16",         /* notify out of range */
                "dsnlog=1\ttime=1\trcpt=a@b\tindex=4294967296",  /* index out of range */
                "dsnlog=1\ttime=1\trcpt=a@b\tnoequals",
        };
        for (size_t i = 0; i < sizeof bad_fields / sizeof *bad_fields; i++) {
                char *line = signed_line(bad_fields[i]);
                struct dsnlog_rec *recs;
                size_t n, bad;
                CHECK_INT(dsnlog_parse(line, strlen(line), &recs, &n, &bad), 0);
                if (n != 0)
                        fprintf(stderr, "accepted: %s\n", bad_fields[i]);
                CHECK_INT(n, 0);
                CHECK_INT(bad, 1);
                free(recs);
                free(line);
        }
        /* Unknown field names from a newer minor writer are ignored. */
        char *line = signed_line("dsnlog=1\ttime=1\trcpt=a@b\tfuture=yes");
        struct dsnlog_rec *recs;
        size_t n, bad;
        CHECK_INT(dsnlog_parse(line, strlen(line), &recs, &n, &bad), 0);
        CHECK_INT(n, 1);
        CHECK_STR(recs[0].rcpt, "a@b");
        free(recs);
        free(line);
}

TEST(too_many_fields)
{
        struct buf f = BUF_INIT;
        buf_puts(&f, "dsnlog=1\ttime=1\trcpt=a@b");
        for (unsigned i = 0; i < DSNLOG_FIELDS_MAX; i++)
                buf_printf(&f, "\tx%u=1", i);
        char *line = signed_line(f.data);
        struct dsnlog_rec *recs;
        size_t n, bad;
        CHECK_INT(dsnlog_parse(line, strlen(line), &recs, &n, &bad), 0);
        CHECK_INT(n, 0);
        free(recs);
        free(line);
        buf_done(&f);
}

TEST(latest_per_recipient)
{
        struct buf b = BUF_INIT;
        struct dsnlog_rec r = sample;
        const char *reasons[] = {"first", "second", "third", "fourth"};
        size_t idx[] = {5, 1, 5, 1};
        for (size_t i = 0; i < 4; i++) {
                r.index = idx[i];
                r.reason = reasons[i];
                CHECK_INT(dsnlog_format(&r, &b), 0);
        }
        r.index = DSNLOG_NO_INDEX;
        r.rcpt = "x@y";
        r.reason = "no index";
        CHECK_INT(dsnlog_format(&r, &b), 0);
        struct dsnlog l = {.data = b.data};
        CHECK_INT(dsnlog_parse(l.data, b.len, &l.recs, &l.n, &l.n_bad), 0);
        const struct dsnlog_rec **latest;
        size_t n = dsnlog_latest(&l, &latest);
        CHECK_INT(n, 3);
        CHECK_INT(latest[0]->index, 1);
        CHECK_STR(latest[0]->reason, "fourth");
        CHECK_INT(latest[1]->index, 5);
        CHECK_STR(latest[1]->reason, "third");
        CHECK_STR(latest[2]->reason, "no index");
        free(latest);
        free(l.recs);
        buf_done(&b);
}

TEST(append_read_remove)
{
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/q", unit_tmpdir());
        struct queue_owners o = {getuid(), getgid(), getgid(), getuid(), getgid()};
        CHECK_INT(queue_layout_create(dir, &o), 0);
        struct queue *q;
        CHECK_INT(queue_open(dir, &q), 0);
        const char *qid = "3F1A2B4C5D";

        struct dsnlog l;
        CHECK_INT(dsnlog_read(q, QUEUE_BOUNCE, qid, &l), -ENOENT);
        CHECK_INT(dsnlog_exists(q, QUEUE_BOUNCE, qid), 0);
        CHECK_INT(dsnlog_append(q, QUEUE_ACTIVE, qid, &sample), -EINVAL);
        CHECK_INT(dsnlog_append(q, QUEUE_BOUNCE, "../etc", &sample), -EINVAL);

        struct qfile_rcpt rc = {.address = (char *)"a@example.com", .orig_rcpt = (char *)"b@example.com"};
        CHECK_INT(dsnlog_append_rcpt(q, QUEUE_BOUNCE, qid, 0, &rc, "5.1.1", "local", "unknown user: \"a\""),
                  0);
        /* A peer's malformed DSN still gets a record. */
        CHECK_INT(dsnlog_append_rcpt(q, QUEUE_BOUNCE, qid, 1, &rc, "5.x", "none", "odd"), 0);
        CHECK_INT(dsnlog_exists(q, QUEUE_BOUNCE, qid), 1);

        /* Simulate a crash in the middle of a write: the next append starts a new line. */
        char path[4200];
        snprintf(path, sizeof path, "%s/bounce/%s", dir, qid);
        int fd = open(path, O_WRONLY | O_APPEND);
        CHECK(fd >= 0);
        CHECK(write(fd, "dsnlog=1\ttime=5\trcpt=torn", 25) == 25);
        close(fd);
        CHECK_INT(dsnlog_append_rcpt(q, QUEUE_BOUNCE, qid, 2, &rc, "5.0.0", "none", "after the tear"), 0);
        struct stat st;
        CHECK_INT(stat(path, &st), 0);
        CHECK_INT(st.st_mode & 0777, 0600);

        CHECK_INT(dsnlog_read(q, QUEUE_BOUNCE, qid, &l), 0);
        CHECK_INT(l.n, 3);
        CHECK_INT(l.n_bad, 1);
        CHECK_STR(l.recs[0].action, "failed");
        CHECK_STR(l.recs[0].status, "5.1.1");
        CHECK_STR(l.recs[0].orig_rcpt, "b@example.com");
        CHECK_STR(l.recs[1].status, "5.0.0");
        CHECK_STR(l.recs[2].reason, "after the tear");
        dsnlog_done(&l);

        CHECK_INT(dsnlog_append_rcpt(q, QUEUE_DEFER, qid, 0, &rc, "4.4.1", "none", "connect refused"), 0);
        CHECK_INT(dsnlog_read(q, QUEUE_DEFER, qid, &l), 0);
        CHECK_INT(l.n, 1);
        CHECK_STR(l.recs[0].action, "delayed");
        dsnlog_done(&l);

        CHECK_INT(dsnlog_remove(q, qid), 0);
        CHECK_INT(dsnlog_exists(q, QUEUE_BOUNCE, qid), 0);
        CHECK_INT(dsnlog_exists(q, QUEUE_DEFER, qid), 0);
        CHECK_INT(dsnlog_remove(q, qid), 0); /* nothing left: still fine */
        queue_close(q);
}
