/* qfile.h: the queue file record format: a pure encoder and a pure, bounded decoder (docs/QUEUE_FORMAT.md).
 */
#pragma once

#include "dsn_notify.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define QFILE_VERSION         2 /* written; 2 added the "attempted" recipient state */
#define QFILE_VERSION_MIN     1 /* oldest read */
#define QFILE_MAGIC           "\x89PDQ\r\n\x1a\n"
#define QFILE_MAGIC_LEN       8
#define QFILE_HEADER_LEN      16 /* magic, u32 version, u32 flags */
#define QFILE_REC_HDR_LEN     5  /* u8 type, u32 payload length */
#define QFILE_END_PAYLOAD_LEN 12
#define QFILE_STATUS_SLOT_LEN 32 /* aligned to its size in the file, so one pwrite never spans a sector */

/* Named limits: every size and count the decoder accepts. The encoder refuses what the decoder would. */
#define QFILE_MAX_RECIPIENTS     100000
#define QFILE_MAX_ATTRS          64
#define QFILE_MAX_RECORD_LEN     8192 /* every record but the content */
#define QFILE_MAX_ADDRESS_LEN    2048 /* sender, recipient, original recipient, ORCPT */
#define QFILE_MAX_ATTR_NAME_LEN  64
#define QFILE_MAX_ATTR_VALUE_LEN 4096
#define QFILE_MAX_CONTENT_LEN    UINT32_MAX
#define QFILE_MAX_DSN_STATUS_LEN 15

enum qfile_record_type {
        QFILE_REC_TIME = 'T',
        QFILE_REC_SENDER = 'S',
        QFILE_REC_RCPT = 'R',
        QFILE_REC_ATTR = 'A',
        QFILE_REC_CONTENT = 'C',
        QFILE_REC_END = 'E',
};

/* DSN NOTIFY= (RFC 3461); 0 means the client gave none. NEVER excludes the others. */
enum {
        QFILE_NOTIFY_NEVER = DSN_NOTIFY_NEVER,
        QFILE_NOTIFY_SUCCESS = DSN_NOTIFY_SUCCESS,
        QFILE_NOTIFY_FAILURE = DSN_NOTIFY_FAILURE,
        QFILE_NOTIFY_DELAY = DSN_NOTIFY_DELAY,
};

enum qfile_rcpt_state {
        QFILE_RCPT_PENDING = 0,
        QFILE_RCPT_DELIVERED = 1, /* delivered, forwarded or expanded: nothing more to do */
        QFILE_RCPT_BOUNCED = 2,   /* failed permanently; the bounce has been queued */
        QFILE_RCPT_ATTEMPTED = 3, /* still to do, but local may have written a copy: check before writing */
        _QFILE_RCPT_STATE_MAX,
};

/* Not done yet: pending, or attempted (a retry goes through the agent, which checks what the attempt did).
 */
static inline bool qfile_rcpt_state_pending(enum qfile_rcpt_state s)
{
        return s == QFILE_RCPT_PENDING || s == QFILE_RCPT_ATTEMPTED;
}

struct qfile_rcpt {
        char *address;
        char *orig_rcpt; /* as first received, before rewriting and aliasing; NULL or "" when none */
        char *orcpt;     /* DSN ORCPT=, e.g. "rfc822;user@example.com"; NULL or "" when none */
        unsigned notify; /* QFILE_NOTIFY_* */
        /* The status slot, rewritten in place when the recipient is done. */
        enum qfile_rcpt_state state;
        uint64_t done_usec;
        char dsn_status[QFILE_MAX_DSN_STATUS_LEN + 1]; /* "2.0.0", "5.1.1"; "" while pending */
        /* QFILE_RCPT_ATTEMPTED only (0 otherwise): when the attempt began, which fixes its rendering (the
         * From_ line, the Maildir name), and the mbox it appended to with that file's size before the append
         * (mbox_ino 0: none recorded). */
        uint64_t attempt_usec;
        uint64_t mbox_dev, mbox_ino, mbox_size;
        uint64_t slot_offset; /* set by the decoder: file offset of the status slot */
};

struct qfile_attr {
        char *name;
        char *value;
};

struct qfile_msg {
        uint32_t version;      /* set by the decoder: the file's format version */
        uint64_t arrival_usec; /* CLOCK_REALTIME, microseconds */
        char *sender;          /* "" for the null sender <> */
        struct qfile_rcpt *rcpts;
        size_t n_rcpts;

        /* Well-known attributes; NULL when absent. */
        char *client_name;
        char *client_address;
        char *helo_name;
        char *protocol; /* "ESMTP", "SMTP", "LMTP"... */
        char *sasl_username;
        char *envelope_id;     /* DSN ENVID= */
        char *origin_queue;    /* queue the message was first written to: "incoming", "maildrop"... */
        uint64_t message_size; /* SIZE as received; meaningful when has_message_size */
        bool has_message_size;
        bool ready; /* the writer finished the content: the message may be scheduled */

        /* Other attributes, kept and rewritten unchanged (forward compatibility within a version). */
        struct qfile_attr *extra;
        size_t n_extra;

        /* Headers and body as cleanup produced them (LF line ends). Not owned by the message: for a decoded
         * message it points into the decoded buffer. */
        const char *content;
        size_t content_len;
};

struct qfile_error {
        const char *reason; /* static text */
        uint64_t offset;    /* where in the input the problem was found */
};

/*
 * Encode m. head receives the header and every record up to and including the content record's header;
 * the content bytes themselves are not copied (write them from m->content); tail receives the end record.
 * The file is head + content + tail. -EINVAL when m breaks a limit or a rule of the format.
 */
int qfile_encode(const struct qfile_msg *m, struct buf *head, struct buf *tail);

/*
 * Streaming encoder, for content too large to hold: qfile_stream_begin() encodes everything up to and
 * including the content record's header, whose length field is 0 until the end; qfile_stream_content()
 * takes the content in pieces as they are written after the head; qfile_stream_finish() gives the 4
 * bytes of the real length field (at offset head_len - 4) and the end record. The file is head (with
 * the length field replaced) + content + tail, byte for byte what qfile_encode() makes of the whole
 * message. m->content is ignored by begin.
 */
struct qfile_stream {
        uint32_t head_crc;    /* of the head before the content record header, status slots excepted */
        uint64_t head_len;    /* bytes of the head, content record header included */
        uint32_t content_crc; /* of the content so far, on its own */
        uint64_t content_len;
};
int qfile_stream_begin(const struct qfile_msg *m, struct buf *head, struct qfile_stream *st);
/* -EFBIG when the content would exceed QFILE_MAX_CONTENT_LEN (nothing is counted then). */
int qfile_stream_content(struct qfile_stream *st, const void *data, size_t len);
void qfile_stream_finish(const struct qfile_stream *st, uint8_t len_field[static 4], struct buf *tail);

/* Encode into one buffer (tests, tools, small messages). */
int qfile_encode_all(const struct qfile_msg *m, struct buf *out);

/* The value of an extra attribute ("tls", "filter"...) of a decoded message, or NULL. Pure. */
const char *qfile_extra(const struct qfile_msg *m, const char *name);

/* Encode one status slot (QFILE_STATUS_SLOT_LEN bytes); -EINVAL for a bad state or DSN status, and for
 * QFILE_RCPT_ATTEMPTED (its slot carries other fields: qfile_encode_rcpt_slot). */
int qfile_encode_slot(enum qfile_rcpt_state state, uint64_t done_usec, const char *dsn_status,
                      uint8_t out[static QFILE_STATUS_SLOT_LEN]);
/* Encode rc's status slot, whatever its state: an attempted one with attempt_usec (not 0) and the mbox
 * fields (all 0 when mbox_ino is 0; mbox_size below 2^56). -EINVAL when they break those rules. */
int qfile_encode_rcpt_slot(const struct qfile_rcpt *rc, uint8_t out[static QFILE_STATUS_SLOT_LEN]);
/* Decode one status slot into rc's state, done_usec and dsn_status (and the attempt fields); -EBADMSG with
 * *why (and the offset inside the slot in *bad_at), both optional, for a malformed one. Pure. */
int qfile_decode_slot(const uint8_t slot[static QFILE_STATUS_SLOT_LEN], struct qfile_rcpt *rc,
                      size_t *bad_at, const char **ret_why);

/*
 * Decode a whole queue file. Pure: reads only data[0..len), allocates the strings of ret (free with
 * qfile_msg_done), and ret->content points into data. -EBADMSG for anything malformed, truncated or
 * with a bad checksum; -EPROTONOSUPPORT for a version this build does not know. err (optional) says why.
 */
int qfile_decode(const void *data, size_t len, struct qfile_msg *ret, struct qfile_error *err);

enum {
        QFILE_DECODE_IGNORE_CHECKSUM =
                1 << 0, /* for fuzzing and for showing a damaged file; never for delivery */
        /* data is a prefix of the file: decode up to and including the content record's header and stop
         * (content_len set, content NULL, neither content nor checksum read). -ENODATA when the prefix
         * ends before that header: read more of the file. For listings only, never for delivery. */
        QFILE_DECODE_ENVELOPE = 1 << 1,
};
/* qfile_decode() with QFILE_DECODE_* flags. */
int qfile_decode_flags(const void *data, size_t len, unsigned flags, struct qfile_msg *ret,
                       struct qfile_error *err);

/*
 * Decode a queue file without holding its content: head is the file up to and including the content
 * record's header, tail what follows the content; content_len and content_crc are the length and
 * CRC-32C of the content bytes the caller read from the file. The same checks as qfile_decode(), so that
 * a file can be verified in bounded memory (queue recovery); ret->content is NULL.
 */
int qfile_decode_split(const void *head, size_t head_len, uint64_t content_len, uint32_t content_crc,
                       const void *tail, size_t tail_len, struct qfile_msg *ret, struct qfile_error *err);

/* Free what a decoded (or hand-built, xmalloc'd) message owns; leaves m zeroed. */
void qfile_msg_done(struct qfile_msg *m);

/* CRC-32C (Castagnoli), as used by the end record; crc is 0 to start. */
uint32_t qfile_crc32c(uint32_t crc, const void *data, size_t len);

const char *qfile_rcpt_state_to_string(enum qfile_rcpt_state s);
