/* bounce.h: the bounce daemon: RFC 3464 delivery status notifications composed from the per-message logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "dsnlog.h"

/* Recipients listed in one notification; the rest are summarised in one line (the log keeps them all). */
#define BOUNCE_RCPTS_MAX 10000
/* Bytes of one value (address, reason, host name) copied into a header or report field. */
#define BOUNCE_FIELD_MAX 2048
/* Boundary candidates tried before giving up on one that the returned message does not contain. */
#define BOUNCE_BOUNDARY_TRIES 16

enum bounce_kind {
        BOUNCE_FAILED,  /* non-delivery: Action: failed */
        BOUNCE_DELAYED, /* delay warning: Action: delayed */
};

struct bounce_input {
        enum bounce_kind kind;
        const char *queue_id;
        const char *myhostname;
        const char *mail_name;   /* "Postfix": the mail system's name in the text */
        const char *from;        /* header From: address, "MAILER-DAEMON@host" */
        const char *to;          /* the notified address (the original sender, or the postmaster) */
        const char *orig_sender; /* the original envelope sender ("" for <>) */
        const char *envelope_id; /* DSN ENVID, or NULL */
        uint64_t arrival_usec;
        time_t now;
        uint64_t warn_until_usec; /* BOUNCE_DELAYED: Will-Retry-Until; 0 = not said */
        const struct dsnlog_rec *const *recs;
        size_t n_recs;
        const char *content; /* the original message (LF line ends); NULL when it could not be read */
        size_t content_len;
        size_t size_limit; /* bounce_size_limit: larger messages are returned as headers only */
};

/*
 * Compose the whole notification message (headers and the multipart/report body, LF line ends) into
 * out. Pure apart from the local time zone of its dates. -EINVAL without recipients.
 */
int bounce_compose(const struct bounce_input *in, struct buf *out);

/* "smtp; 550 5.1.1 ..." from a to= line's relay and reason; "X-Postfix; reason" for local errors. Pure. */
void bounce_diagnostic(const char *relay, const char *reason, struct buf *out);
/* "host" of a relay "host[addr]:port", or NULL (local, none, empty); malloc'd. */
char *bounce_remote_mta(const char *relay);
/* The header block of a message (up to and excluding the empty line), bounded by limit bytes. */
size_t bounce_header_len(const char *content, size_t len, size_t limit);
