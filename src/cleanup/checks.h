/* checks.h: content inspection while the message streams: header_checks, mime_header_checks,
 * nested_header_checks and body_checks with Postfix's actions, and a small MIME boundary tracker. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "virtual.h"

/* Nested multipart levels tracked (Postfix's mime_nesting_limit default is 100). */
#define CHECKS_MIME_DEPTH_MAX 100u
/* Longest MIME boundary kept (RFC 2046: 70). */
#define CHECKS_BOUNDARY_MAX 200u
/* Bytes of a header or body line shown in a log line. */
#define CHECKS_LOG_TEXT_MAX 200u

enum checks_class { CHECKS_CLASS_HEADER, CHECKS_CLASS_MIME, CHECKS_CLASS_NESTED, CHECKS_CLASS_BODY };

/* The tables of one cleanup process (main.c). */
struct checks_conf {
        struct table_param tables[4]; /* by enum checks_class */
        uint64_t body_size_limit;     /* body_checks_size_limit, per MIME segment */
        bool mime;                    /* !disable_mime_input_processing */
        size_t header_size_limit;     /* bound of a MIME header held while it is checked */
        bool bounce;                  /* internal_mail_filter_classes has "bounce": notifications too */
};

void checks_conf_init(struct checks_conf *k, const char *const values[4], uint64_t body_size_limit,
                      bool mime, size_t header_size_limit);
/* Any table set: the session must run the body through checks_body(). */
bool checks_conf_body(const struct checks_conf *k);
bool checks_conf_any(const struct checks_conf *k);

/* What the checks of one message decided so far. */
struct checks_result {
        int status;     /* 0; 5 REJECT; 4 a table failed (the message is deferred) */
        char dsn[16];   /* with status */
        char *reason;   /* with status */
        bool discard;   /* DISCARD: answer 250, queue nothing */
        bool hold;      /* HOLD: commit into hold/ */
        char *redirect; /* REDIRECT: the only recipient */
        char *filter;   /* FILTER transport:destination */
        struct strv bcc;
        bool envelope_written; /* the caller wrote the envelope: REDIRECT/BCC/FILTER come too late */
};

struct checks_msg {
        struct checks_conf *conf;
        char *queue_id; /* a copy: the session's file may go before the checks do */
        char *log_ctx;  /* "from host[addr]; from=<s> to=<r> proto=ESMTP helo=<h>" */
        struct checks_result res;
        /* body and MIME state */
        uint64_t segment_bytes; /* body bytes of the current MIME segment seen */
        struct strv boundaries; /* open multipart boundaries, outermost first */
        int state;              /* in a body, or in a part's or an attached message's headers */
        struct buf held;        /* a MIME header being collected (its continuation lines may follow) */
        bool held_overflow;     /* the held header grew past header_size_limit: passed on unchecked */
        char *pending_boundary; /* multipart boundary of the header block being read */
        bool pending_message;   /* the header block being read says message/rfc822 */
};

/* log_ctx is taken over (freed by checks_msg_done). */
void checks_msg_init(struct checks_msg *m, struct checks_conf *conf, const char *queue_id, char *log_ctx);
void checks_msg_done(struct checks_msg *m);
/* No further inspection: REJECT, DISCARD or a table failure. */
bool checks_stopped(const struct checks_msg *m);

/*
 * One logical header of the message (text without its last LF, continuation lines joined with LF):
 * header_checks; also notes a multipart boundary for the body. Writes what goes before the header
 * (PREPEND) or instead of it (REPLACE) to out; true when the caller writes the header itself.
 */
bool checks_header(struct checks_msg *m, const char *hdr, size_t len, struct buf *out);
/* The primary header block ended; the body starts. */
void checks_headers_done(struct checks_msg *m);
/*
 * Body bytes as line_length_limit splitting produced them: complete lines are taken out of raw, checked
 * (MIME headers by their tables, the rest by body_checks) and written to out; an incomplete last line
 * stays in raw until more comes, or until eof.
 */
void checks_body(struct checks_msg *m, struct buf *raw, struct buf *out, bool eof);
