/* maildrop.c: validation and rebuilding of maildrop files, the one gate for what local users submit. */
#include "maildrop.h"

#include <errno.h>
#include <string.h>

#include "alloc.h"

static bool has_control_chars(const char *s)
{
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        return true;
        return false;
}

static int refuse(struct maildrop_error *err, const char *reason)
{
        if (err)
                *err = (struct maildrop_error){.reason = reason, .offset = 0};
        return -EBADMSG;
}

const char *maildrop_full_name(const struct qfile_msg *m)
{
        for (size_t i = 0; i < m->n_extra; i++)
                if (streq(m->extra[i].name, MAILDROP_ATTR_FULL_NAME))
                        return m->extra[i].value;
        return NULL;
}

int maildrop_parse(const void *data, size_t len, uint64_t max_content, struct qfile_msg *ret,
                   struct maildrop_error *err)
{
        struct qfile_msg m = {0};
        struct qfile_error qerr = {0};
        int r = qfile_decode(data, len, &m, &qerr);
        if (r < 0) {
                if (err)
                        *err = (struct maildrop_error){.reason =
                                                               qerr.reason ? qerr.reason : "malformed file",
                                                       .offset = qerr.offset};
                return r;
        }
        size_t pending = 0;
        if (has_control_chars(m.sender)) {
                r = refuse(err, "control character in sender address");
                goto fail;
        }
        if (m.n_rcpts > MAILDROP_MAX_RECIPIENTS) {
                r = refuse(err, "too many recipients");
                goto fail;
        }
        for (size_t i = 0; i < m.n_rcpts; i++) {
                const struct qfile_rcpt *rc = &m.rcpts[i];
                if (has_control_chars(rc->address) || (rc->orig_rcpt && has_control_chars(rc->orig_rcpt)) ||
                    (rc->orcpt && has_control_chars(rc->orcpt))) {
                        r = refuse(err, "control character in recipient address");
                        goto fail;
                }
                if (qfile_rcpt_state_pending(rc->state))
                        pending++;
        }
        if (pending == 0) {
                r = refuse(err, "no pending recipient");
                goto fail;
        }
        const char *full_name = maildrop_full_name(&m);
        if (full_name && (strlen(full_name) > MAILDROP_FULL_NAME_MAX || has_control_chars(full_name))) {
                r = refuse(err, "bad full name");
                goto fail;
        }
        if (len - m.content_len > MAILDROP_ENVELOPE_MAX) {
                r = refuse(err, "envelope too large");
                goto fail;
        }
        if (max_content > 0 && m.content_len > max_content) {
                if (err)
                        *err = (struct maildrop_error){.reason = "message file too big", .offset = 0};
                r = -EFBIG;
                goto fail;
        }
        *ret = m;
        return 0;
fail:
        qfile_msg_done(&m);
        return r;
}

int maildrop_build(const struct qfile_msg *m, uint64_t now_usec, struct buf *out)
{
        struct qfile_msg b = {
                .arrival_usec = now_usec,
                .sender = m->sender,
                .origin_queue = (char *)"maildrop",
                .ready = true,
                .content = m->content,
                .content_len = m->content_len,
        };
        b.rcpts = xcalloc(m->n_rcpts ? m->n_rcpts : 1, sizeof *b.rcpts);
        for (size_t i = 0; i < m->n_rcpts; i++) {
                const struct qfile_rcpt *rc = &m->rcpts[i];
                if (!qfile_rcpt_state_pending(rc->state))
                        continue;
                b.rcpts[b.n_rcpts++] = (struct qfile_rcpt){
                        .address = rc->address,
                        .orig_rcpt = rc->orig_rcpt,
                        .orcpt = rc->orcpt,
                        .notify = rc->notify,
                };
        }
        struct qfile_attr full = {.name = (char *)MAILDROP_ATTR_FULL_NAME,
                                  .value = (char *)maildrop_full_name(m)};
        if (full.value) {
                b.extra = &full;
                b.n_extra = 1;
        }
        int r = qfile_encode_all(&b, out);
        free(b.rcpts);
        return r;
}
