/* headers.h: cleanup's header processing: Received/Message-ID/Date/From, pure over the message bytes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "buf.h"
#include "rewrite.h"

/* Bytes of one envelope value (HELO name, client name, recipient...) put into a generated header. */
#define HEADERS_FIELD_MAX 512u
/* Bytes of a Message-ID value kept for the log line. */
#define HEADERS_MSGID_LOG_MAX 1000u
/* Room for "Mon, 31 Dec 2024 23:59:59 +0100 (CET)". */
#define HEADERS_DATE_MAX 64u
/* Smallest line_length_limit honoured (smaller settings would make header folding impossible). */
#define HEADERS_LINE_LENGTH_MIN 80u

struct headers_opts {
        const char *queue_id;
        const char *myhostname;
        /*
         * A local submission (origin=pickup): "Received: by ... (Postfix, from userid UID)", a missing
         * From: is added from sender, and From:/To:/Cc: addresses are rewritten with rewrite.
         */
        bool local;
        long long uid;                                                   /* local; < 0 when unknown */
        const char *helo_name, *client_name, *client_address, *protocol; /* remote; NULL when unknown */
        const char *tls;              /* e.g. "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384"; NULL: none */
        const char *auth_sender;      /* smtpd_sasl_authenticated_header: the SASL login; NULL: none */
        const char *single_rcpt;      /* the "for <...>" clause: the recipient when there is exactly one */
        const char *sender;           /* canonical envelope sender, for a missing From: (local) */
        const char *sender_full_name; /* local: the submitting user's full name, or NULL */
        const struct rewrite_opts *rewrite;
        time_t now;
        size_t header_size_limit; /* header bytes beyond this are kept, as body */
        size_t line_length_limit; /* longer lines are split */
        /*
         * header_checks: called with each logical header of the message (without its last LF); writes what
         * goes before it or instead of it to out, and returns true when the header is to be kept. NULL:
         * none.
         */
        bool (*check_header)(void *userdata, const char *hdr, size_t len, struct buf *out);
        void *check_userdata;
};

struct headers_result {
        char *message_id;      /* Message-ID value as found (trimmed, unfolded) or as added; malloc'd */
        bool added_message_id; /* cleanup generated it */
        unsigned n_received;   /* Received: headers in the message as received */
        size_t header_len;     /* bytes of the header block of out (generated headers included) */
        size_t body_offset;    /* where the body starts in the content as received */
};

/*
 * Build the message cleanup queues from content as received (LF line ends): a Received: header
 * first, the message's own headers as they are (for local mail with rewritten addresses), the
 * missing Message-ID:, Date: (and for local mail From:) at the end of the header block, then the body
 * unchanged except that lines longer than line_length_limit are split (header lines are folded).
 * Appends to out. Pure apart from the local time zone used for dates. Free ret with
 * headers_result_done().
 */
void headers_build(const struct headers_opts *o, const char *content, size_t len, struct buf *out,
                   struct headers_result *ret);
void headers_result_done(struct headers_result *r);

/*
 * The same in pieces, so that cleanup holds only the header block, never the message: once
 * headers_block_end() says where the header block of the content received so far ends (true; false
 * while more input could change it; eof: nothing more comes; scan keeps its progress, so that input that
 * arrives in small pieces is walked once), headers_build_header() on that content
 * appends the header block (ret->body_offset: where the body starts in it), and headers_body_put()
 * then takes the body in pieces of any size, from body_offset on. The result is byte for byte
 * headers_build()'s.
 */
struct headers_scan {
        size_t pos, hdr_bytes; /* where the walk stopped: zero it before the first call */
};
bool headers_block_end(struct headers_scan *scan, const char *content, size_t len, size_t header_size_limit,
                       bool eof, size_t *ret_end);
void headers_build_header(const struct headers_opts *o, const char *content, size_t len, struct buf *out,
                          struct headers_result *ret);
struct headers_body {
        size_t limit; /* line_length_limit, at least HEADERS_LINE_LENGTH_MIN */
        size_t col;   /* bytes of the current output line so far */
};
void headers_body_init(struct headers_body *b, const struct headers_opts *o);
void headers_body_put(struct headers_body *b, const char *p, size_t n, struct buf *out);

/* RFC 5322 date in the local time zone: "Mon,  1 Jan 2024 12:00:00 +0100 (CET)". */
void headers_format_date(time_t t, char buf[static HEADERS_DATE_MAX]);

/* True when line[0..len) starts a header: a field name of printable characters then ':'. */
bool headers_is_field(const char *line, size_t len, size_t *ret_name_len);
