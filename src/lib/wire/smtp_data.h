/* smtp_data.h: DATA stream decoder (unstuffing, end detection, smuggling defence) and encoder. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Longer content lines are handed out in pieces of this size (Postfix's line_length_limit). */
#define SMTP_DATA_LINE_MAX 2048
/* Default bytes of the header section that are flagged as header (Postfix's header_size_limit). */
#define SMTP_DATA_HEADER_MAX 102400
/* Default message size limit (Postfix's message_size_limit); 0 in the options means no limit. */
#define SMTP_DATA_SIZE_DEFAULT 10240000

enum smtp_bare_newline {
        /* Any bare <LF> (or bare <CR>, unless allowed) fails the message: the default. */
        SMTP_BARE_NEWLINE_REJECT,
        /* A bare <LF> ends a content line as <CR><LF> would (Postfix's "normalize"), but never ends DATA. */
        SMTP_BARE_NEWLINE_NORMALIZE,
};

enum smtp_data_error {
        SMTP_DATA_OK,
        SMTP_DATA_ERR_BARE_LF, /* "550 5.5.2 Error: bare <LF> received" */
        SMTP_DATA_ERR_BARE_CR, /* "550 5.5.2 Error: bare <CR> received" */
        SMTP_DATA_ERR_TOO_BIG, /* "552 5.3.4 Message size exceeds fixed limit" */
};

enum {
        SMTP_DATA_LINE_PARTIAL = 1 << 0, /* the line continues in the next piece (it was cut at max_line) */
        SMTP_DATA_LINE_HEADER = 1 << 1,  /* the piece belongs to the header section */
};

/* Receives each line (without line end, dot-unstuffed); a negative return aborts smtp_data_feed(). */
typedef int (*smtp_data_line_fn)(const char *p, size_t len, unsigned flags, void *userdata);

struct smtp_data_options {
        uint64_t max_size; /* content bytes, lines counted with CRLF; 0 = no limit */
        size_t max_line;   /* 0 = SMTP_DATA_LINE_MAX */
        size_t max_header; /* 0 = SMTP_DATA_HEADER_MAX */
        enum smtp_bare_newline bare_newline;
        bool allow_bare_cr; /* keep a lone <CR> as content instead of failing */
};

struct smtp_data {
        struct smtp_data_options opt;
        smtp_data_line_fn line_fn;
        void *userdata;
        char *line;        /* opt.max_line bytes */
        size_t line_len;   /* bytes buffered in line[] */
        size_t line_total; /* content bytes of the current line, pieces already handed out included */
        bool crlf_start;   /* the current line began right after <CR><LF> (or at the start of DATA) */
        bool dot_removed;  /* the current line's first byte was a "." and was dropped */
        bool pending_cr;
        bool in_header;
        bool done;
        enum smtp_data_error error;
        uint64_t size; /* content bytes, as if each line end were CRLF */
        uint64_t header_size;
        bool header_overflow; /* the header section exceeded max_header; the rest was marked body */
        bool saw_bare_lf;     /* for logging in normalize mode */
        uint64_t received;    /* raw bytes consumed */
};

void smtp_data_init(struct smtp_data *d, const struct smtp_data_options *opt, smtp_data_line_fn fn,
                    void *userdata);
void smtp_data_done(struct smtp_data *d);
/*
 * Feed received bytes. Returns 0 when more input is needed (all n bytes consumed), 1 when the end
 * <CR><LF>.<CR><LF> was seen (*ret_consumed says how many bytes belonged to DATA; the rest is the next
 * command), or the callback's negative return. After an error the stream is still followed to its
 * end, without further callbacks, so that the session stays in sync; d->error tells which.
 */
int smtp_data_feed(struct smtp_data *d, const char *in, size_t n, size_t *ret_consumed);
/* The reply for d->error, or NULL for SMTP_DATA_OK. */
const char *smtp_data_error_reply(enum smtp_data_error e);

/* A line callback that appends each line with <CR><LF> (none after a partial piece) to a struct buf. */
int smtp_data_line_to_buf(const char *p, size_t len, unsigned flags, void *userdata);

/*
 * Output side (SMTP client): turn message content into the DATA stream. Every <LF>, <CR><LF> or lone
 * <CR> becomes <CR><LF>, and lines starting with "." get one more, so nothing in the content can end
 * DATA early. smtp_dot_encoder_finish() closes the last line and appends ".<CR><LF>".
 */
struct smtp_dot_encoder {
        bool mid_line;
        bool pending_cr;
};
void smtp_dot_encode(struct smtp_dot_encoder *e, const char *p, size_t n, struct buf *out);
void smtp_dot_encoder_finish(struct smtp_dot_encoder *e, struct buf *out);
