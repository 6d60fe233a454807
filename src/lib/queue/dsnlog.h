/* dsnlog.h: per-message logs of recipient outcomes (bounce/QID, defer/QID): crash-safe appends, a pure
 * parser. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "qfile.h"
#include "queue.h"

/*
 * One text line per record (docs/QUEUE_FORMAT.md, "Per-message logs"):
 *
 *   dsnlog=1 TAB time=USEC TAB index=N TAB rcpt=ADDR ... TAB crc=XXXXXXXX LF
 *
 * Values are percent-encoded where they hold '%', control characters or DEL. The CRC-32C of the bytes
 * before "\tcrc=" makes a record torn by a crash (or damaged on disk) detectable: it is skipped, counted,
 * and never taken for a shorter valid one.
 */
#define DSNLOG_VERSION     1
#define DSNLOG_LINE_MAX    16384u                 /* bytes of one encoded record, LF included */
#define DSNLOG_FIELDS_MAX  32u                    /* fields of one record, unknown ones included */
#define DSNLOG_RECORDS_MAX 200000u                /* records read from one file (recipients, retries) */
#define DSNLOG_FILE_MAX    (64u * 1024 * 1024)    /* bytes of one file a reader loads */
#define DSNLOG_REASON_MAX  8192u                  /* bytes of a reason the writer keeps */
#define DSNLOG_NO_INDEX    ((uint64_t)UINT32_MAX) /* a record not tied to a queue file position */

/*
 * A record. Strings are borrowed: for a parsed record they point into the parsed buffer (decoded in
 * place); for a record being written, into the caller's storage. NULL or "" means absent.
 */
struct dsnlog_rec {
        uint64_t time_usec;
        uint64_t index;        /* the recipient's position in the queue file, or DSNLOG_NO_INDEX */
        const char *rcpt;      /* required */
        const char *orig_rcpt; /* before rewriting and aliasing */
        const char *orcpt;     /* DSN ORCPT, "rfc822;user@example.com" */
        unsigned notify;       /* QFILE_NOTIFY_* */
        const char *action;    /* RFC 3464 action: "failed", "delayed", "delivered", "relayed", "expanded" */
        const char *status;    /* DSN status, "5.1.1" */
        const char *relay;     /* as in the to= line: "local", "none", "host[addr]:port" */
        const char *reason;    /* the text in parentheses of the to= line */
};

/* Parsed records of one file; free with dsnlog_done. */
struct dsnlog {
        char *data; /* the file's bytes, decoded in place; records point into it */
        struct dsnlog_rec *recs;
        size_t n;
        size_t n_bad; /* lines skipped: torn, damaged or from a newer version */
};

/* Encode one record as a line (LF included), appended to out. -EINVAL when rcpt is missing, -E2BIG when
 * the line would exceed DSNLOG_LINE_MAX (the writer shortens the reason first). Pure. */
int dsnlog_format(const struct dsnlog_rec *rec, struct buf *out);

/*
 * Parse data[0..len) in place (values are decoded inside the buffer, which must stay alive while the
 * records are used). Pure: every malformed line is skipped and counted in *ret_bad, never fatal.
 * -E2BIG when there are more than DSNLOG_RECORDS_MAX records (the first ones are kept) or len exceeds
 * DSNLOG_FILE_MAX.
 */
int dsnlog_parse(char *data, size_t len, struct dsnlog_rec **ret_recs, size_t *ret_n, size_t *ret_bad);

/*
 * Append rec to which/QID (which is QUEUE_BOUNCE, QUEUE_DEFER or QUEUE_TRACE): created 0600 with
 * O_EXCL (then owned by the directory's owner when the writer is root, and the directory fsync'd), else
 * opened O_APPEND; one write(), then fdatasync(). After 0 the record survives a crash.
 */
int dsnlog_append(struct queue *q, enum queue_name which, const char *qid, const struct dsnlog_rec *rec);

/*
 * What delivery agents call: a record for queue file recipient r at position index (action "failed" for
 * QUEUE_BOUNCE, "delayed" for QUEUE_DEFER), now, with the to= line's relay, DSN status and reason.
 * Errors are logged here (the caller decides: a bounce record that cannot be written means "defer").
 */
int dsnlog_append_rcpt(struct queue *q, enum queue_name which, const char *qid, size_t index,
                       const struct qfile_rcpt *r, const char *status, const char *relay,
                       const char *reason);

/* Read and parse which/QID. -ENOENT when there is none. */
int dsnlog_read(struct queue *q, enum queue_name which, const char *qid, struct dsnlog *ret);
void dsnlog_done(struct dsnlog *l);

/* 1 when which/QID exists, 0 when not, <0 on error. */
int dsnlog_exists(struct queue *q, enum queue_name which, const char *qid);
/* Remove one log (missing is fine); with QUEUE_SYNC the directory is fsync'd. */
int dsnlog_remove_one(struct queue *q, enum queue_name which, const char *qid, unsigned flags);
/* Remove every per-message log of qid (bounce, defer, trace): postsuper -d, qmgr after the last recipient.
 */
int dsnlog_remove(struct queue *q, const char *qid);

/* The last record for each recipient index (or address when no index), in queue file order: retries and
 * duplicates after a crash collapse into one. Returns the count; *ret is malloc'd pointers into l. */
size_t dsnlog_latest(const struct dsnlog *l, const struct dsnlog_rec ***ret);
