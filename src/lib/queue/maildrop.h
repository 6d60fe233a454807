/* maildrop.h: the files of the maildrop queue (sendmail -> postdrop -> pickup): a pure, bounded validator.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "qfile.h"

/*
 * A maildrop file is a queue file (docs/QUEUE_FORMAT.md, "The maildrop queue"): sendmail encodes the
 * envelope and content with qfile_encode_all() and pipes those bytes to postdrop, which validates them with
 * maildrop_parse(), rebuilds the message from what it accepts (maildrop_build) and writes that. pickup reads
 * the file back as untrusted input, again through maildrop_parse(). Everything an unprivileged user can
 * write passes this one function before a daemon acts on it.
 */

/* The only extra attribute a submitter may set: sendmail -F, for the From: header cleanup may add. */
#define MAILDROP_ATTR_FULL_NAME "full_name"
#define MAILDROP_FULL_NAME_MAX  256
/* Bytes of file beyond the content (envelope records) that a reader accepts. */
#define MAILDROP_ENVELOPE_MAX (8u * 1024 * 1024)
/* Recipients of one submission (sendmail's argv or -t headers). */
#define MAILDROP_MAX_RECIPIENTS 10000

struct maildrop_error {
        const char *reason; /* static text */
        uint64_t offset;
};

/*
 * Decode data as a maildrop file and apply maildrop's rules: a content no larger than max_content (0: no
 * limit beyond the format's), addresses without control characters, at least one pending recipient, at
 * most MAILDROP_MAX_RECIPIENTS recipients, a full name without control characters. Pure; ret as
 * qfile_decode (ret->content points into data). -EBADMSG with err->reason when the file is refused,
 * -EFBIG when only the content size is over the limit, -EPROTONOSUPPORT for another format version.
 */
int maildrop_parse(const void *data, size_t len, uint64_t max_content, struct qfile_msg *ret,
                   struct maildrop_error *err);

/* The full name of a parsed file (extra attribute), or NULL. */
const char *maildrop_full_name(const struct qfile_msg *m);

/*
 * What postdrop writes: sender, the pending recipients (with their DSN fields), the full name and content
 * of m, arrival time now_usec, origin_queue "maildrop". Nothing else of the submitter's file survives.
 * out is appended to. -EINVAL when the result would break the format.
 */
int maildrop_build(const struct qfile_msg *m, uint64_t now_usec, struct buf *out);
