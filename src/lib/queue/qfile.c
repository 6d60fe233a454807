/* qfile.c: the queue file record format: a pure encoder and a pure, bounded decoder (docs/QUEUE_FORMAT.md).
 */
#include "qfile.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "crc32c.h"

uint32_t qfile_crc32c(uint32_t crc, const void *data, size_t len)
{
        return crc32c(crc, data, len);
}

/* ---- well-known attributes ---- */

enum { ATTR_STRING, ATTR_SIZE, ATTR_READY };

static const struct known_attr {
        const char *name;
        int kind;
        size_t offset; /* of the char * member, for ATTR_STRING */
} known_attrs[] = {
        {"client_name", ATTR_STRING, offsetof(struct qfile_msg, client_name)},
        {"client_address", ATTR_STRING, offsetof(struct qfile_msg, client_address)},
        {"helo_name", ATTR_STRING, offsetof(struct qfile_msg, helo_name)},
        {"protocol", ATTR_STRING, offsetof(struct qfile_msg, protocol)},
        {"sasl_username", ATTR_STRING, offsetof(struct qfile_msg, sasl_username)},
        {"envelope_id", ATTR_STRING, offsetof(struct qfile_msg, envelope_id)},
        {"origin_queue", ATTR_STRING, offsetof(struct qfile_msg, origin_queue)},
        {"size", ATTR_SIZE, 0},
        {"ready", ATTR_READY, 0},
};

static char **attr_field(struct qfile_msg *m, const struct known_attr *a)
{
        return (char **)((char *)m + a->offset);
}

static const struct known_attr *known_attr_find(const char *name, size_t len)
{
        for (size_t i = 0; i < ELEMENTSOF(known_attrs); i++)
                if (strlen(known_attrs[i].name) == len && memcmp(known_attrs[i].name, name, len) == 0)
                        return &known_attrs[i];
        return NULL;
}

static bool attr_name_ok(const char *name, size_t len)
{
        if (len == 0 || len > QFILE_MAX_ATTR_NAME_LEN)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = name[i];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
                        return false;
        }
        return true;
}

static bool dsn_status_ok(const char *s, size_t len)
{
        if (len > QFILE_MAX_DSN_STATUS_LEN)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.'))
                        return false;
        return true;
}

static bool notify_ok(unsigned n)
{
        if (n & ~0xFu)
                return false;
        return !((n & QFILE_NOTIFY_NEVER) && (n & ~(unsigned)QFILE_NOTIFY_NEVER));
}

const char *qfile_rcpt_state_to_string(enum qfile_rcpt_state s)
{
        switch (s) {
        case QFILE_RCPT_PENDING: return "pending";
        case QFILE_RCPT_DELIVERED: return "delivered";
        case QFILE_RCPT_BOUNCED: return "bounced";
        case QFILE_RCPT_ATTEMPTED: return "attempted";
        default: return NULL;
        }
}

/* ---- encoder ---- */

static void put_u8(struct buf *b, uint8_t v)
{
        buf_append(b, &v, 1);
}

static void put_u16(struct buf *b, uint16_t v)
{
        uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
        buf_append(b, x, sizeof x);
}

static void le32(uint8_t *x, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                x[i] = (uint8_t)(v >> (8 * i));
}

static void le64(uint8_t *x, uint64_t v)
{
        for (int i = 0; i < 8; i++)
                x[i] = (uint8_t)(v >> (8 * i));
}

static void put_u32(struct buf *b, uint32_t v)
{
        uint8_t x[4];
        le32(x, v);
        buf_append(b, x, sizeof x);
}

static void put_u64(struct buf *b, uint64_t v)
{
        uint8_t x[8];
        le64(x, v);
        buf_append(b, x, sizeof x);
}

static void put_record(struct buf *b, uint8_t type, const void *payload, size_t len)
{
        put_u8(b, type);
        put_u32(b, (uint32_t)len);
        buf_append(b, payload, len);
}

static void put_attr(struct buf *b, const char *name, const char *value)
{
        size_t nl = strlen(name), vl = strlen(value);
        put_u8(b, QFILE_REC_ATTR);
        put_u32(b, (uint32_t)(1 + nl + vl));
        put_u8(b, (uint8_t)nl);
        buf_append(b, name, nl);
        buf_append(b, value, vl);
}

static const char *str_or_empty(const char *s)
{
        return s ? s : "";
}

const char *qfile_extra(const struct qfile_msg *m, const char *name)
{
        for (size_t i = 0; i < m->n_extra; i++)
                if (streq(m->extra[i].name, name))
                        return m->extra[i].value;
        return NULL;
}

int qfile_encode_slot(enum qfile_rcpt_state state, uint64_t done_usec, const char *dsn_status,
                      uint8_t out[static QFILE_STATUS_SLOT_LEN])
{
        const char *dsn = str_or_empty(dsn_status);
        size_t dl = strlen(dsn);
        if ((unsigned)state >= _QFILE_RCPT_STATE_MAX || state == QFILE_RCPT_ATTEMPTED ||
            !dsn_status_ok(dsn, dl))
                return -EINVAL;
        memset(out, 0, QFILE_STATUS_SLOT_LEN);
        out[0] = (uint8_t)state;
        le64(out + 8, done_usec);
        memcpy(out + 16, dsn, dl);
        return 0;
}

#define QFILE_MBOX_SIZE_MAX ((UINT64_C(1) << 56) - 1) /* the 7 bytes after the state */

static bool attempt_ok(const struct qfile_rcpt *rc)
{
        if (rc->attempt_usec == 0 || rc->mbox_size > QFILE_MBOX_SIZE_MAX)
                return false;
        return rc->mbox_ino != 0 || (rc->mbox_dev == 0 && rc->mbox_size == 0);
}

int qfile_encode_rcpt_slot(const struct qfile_rcpt *rc, uint8_t out[static QFILE_STATUS_SLOT_LEN])
{
        if (rc->state != QFILE_RCPT_ATTEMPTED)
                return qfile_encode_slot(rc->state, rc->done_usec, rc->dsn_status, out);
        if (!attempt_ok(rc))
                return -EINVAL;
        /* state, u56 size, u64 attempt time, u64 inode, u64 device: the DSN status has no use here. */
        le64(out, rc->mbox_size << 8);
        out[0] = (uint8_t)QFILE_RCPT_ATTEMPTED;
        le64(out + 8, rc->attempt_usec);
        le64(out + 16, rc->mbox_ino);
        le64(out + 24, rc->mbox_dev);
        return 0;
}

static int check_msg(const struct qfile_msg *m)
{
        if (m->n_rcpts == 0 || m->n_rcpts > QFILE_MAX_RECIPIENTS || !m->rcpts)
                return -EINVAL;
        if (strlen(str_or_empty(m->sender)) > QFILE_MAX_ADDRESS_LEN)
                return -EINVAL;
        for (size_t i = 0; i < m->n_rcpts; i++) {
                const struct qfile_rcpt *r = &m->rcpts[i];
                if (isempty(r->address) || strlen(r->address) > QFILE_MAX_ADDRESS_LEN ||
                    strlen(str_or_empty(r->orig_rcpt)) > QFILE_MAX_ADDRESS_LEN ||
                    strlen(str_or_empty(r->orcpt)) > QFILE_MAX_ADDRESS_LEN || !notify_ok(r->notify))
                        return -EINVAL;
        }
        size_t n_attrs = m->n_extra;
        for (size_t i = 0; i < ELEMENTSOF(known_attrs); i++) {
                const struct known_attr *a = &known_attrs[i];
                if (a->kind == ATTR_STRING) {
                        const char *v = *attr_field((struct qfile_msg *)m, a);
                        if (!v)
                                continue;
                        if (strlen(v) > QFILE_MAX_ATTR_VALUE_LEN)
                                return -EINVAL;
                        n_attrs++;
                } else if ((a->kind == ATTR_SIZE && m->has_message_size) ||
                           (a->kind == ATTR_READY && m->ready))
                        n_attrs++;
        }
        if (n_attrs > QFILE_MAX_ATTRS)
                return -EINVAL;
        for (size_t i = 0; i < m->n_extra; i++) {
                const struct qfile_attr *a = &m->extra[i];
                if (!a->name || !a->value)
                        return -EINVAL;
                size_t nl = strlen(a->name);
                if (!attr_name_ok(a->name, nl) || known_attr_find(a->name, nl) ||
                    strlen(a->value) > QFILE_MAX_ATTR_VALUE_LEN)
                        return -EINVAL;
                for (size_t j = 0; j < i; j++)
                        if (streq(m->extra[j].name, a->name))
                                return -EINVAL;
        }
        if (m->content_len > QFILE_MAX_CONTENT_LEN || (m->content_len > 0 && !m->content))
                return -EINVAL;
        return 0;
}

/* Everything before the content record's header; *ret_crc covers it, status slots excepted. */
static int encode_head(const struct qfile_msg *m, struct buf *head, uint32_t *ret_crc)
{
        int r = check_msg(m);
        if (r < 0)
                return r;

        /* The checksum covers every byte before the end record except the status slots, which change in
         * place; crc_pos is how far into head it has been computed. */
        uint32_t crc = 0;
        size_t crc_pos = 0;
        buf_truncate(head, 0);

        buf_append(head, QFILE_MAGIC, QFILE_MAGIC_LEN);
        put_u32(head, QFILE_VERSION);
        put_u32(head, 0);

        uint8_t t[8];
        le64(t, m->arrival_usec);
        put_record(head, QFILE_REC_TIME, t, sizeof t);
        const char *sender = str_or_empty(m->sender);
        put_record(head, QFILE_REC_SENDER, sender, strlen(sender));

        for (size_t i = 0; i < m->n_rcpts; i++) {
                const struct qfile_rcpt *rc = &m->rcpts[i];
                const char *fields[3] = {rc->address, str_or_empty(rc->orig_rcpt), str_or_empty(rc->orcpt)};
                size_t lens[3];
                size_t start = head->len;
                size_t pad =
                        (QFILE_STATUS_SLOT_LEN - (start + QFILE_REC_HDR_LEN + 1) % QFILE_STATUS_SLOT_LEN) %
                        QFILE_STATUS_SLOT_LEN;
                size_t plen = 1 + pad + QFILE_STATUS_SLOT_LEN + 1;
                for (int k = 0; k < 3; k++) {
                        lens[k] = strlen(fields[k]);
                        plen += 2 + lens[k];
                }
                uint8_t slot[QFILE_STATUS_SLOT_LEN];
                r = qfile_encode_rcpt_slot(rc, slot);
                if (r < 0)
                        return r;

                put_u8(head, QFILE_REC_RCPT);
                put_u32(head, (uint32_t)plen);
                put_u8(head, (uint8_t)pad);
                for (size_t k = 0; k < pad; k++)
                        put_u8(head, 0);
                crc = qfile_crc32c(crc, head->data + crc_pos, head->len - crc_pos);
                buf_append(head, slot, sizeof slot);
                crc_pos = head->len;
                put_u8(head, (uint8_t)rc->notify);
                for (int k = 0; k < 3; k++) {
                        put_u16(head, (uint16_t)lens[k]);
                        buf_append(head, fields[k], lens[k]);
                }
        }

        for (size_t i = 0; i < ELEMENTSOF(known_attrs); i++) {
                const struct known_attr *a = &known_attrs[i];
                if (a->kind == ATTR_STRING) {
                        const char *v = *attr_field((struct qfile_msg *)m, a);
                        if (v)
                                put_attr(head, a->name, v);
                } else if (a->kind == ATTR_SIZE && m->has_message_size) {
                        char num[24];
                        snprintf(num, sizeof num, "%llu", (unsigned long long)m->message_size);
                        put_attr(head, a->name, num);
                } else if (a->kind == ATTR_READY && m->ready)
                        put_attr(head, a->name, "1");
        }
        for (size_t i = 0; i < m->n_extra; i++)
                put_attr(head, m->extra[i].name, m->extra[i].value);
        *ret_crc = qfile_crc32c(crc, head->data + crc_pos, head->len - crc_pos);
        return 0;
}

/*
 * CRC-32C of A||B from crc(A), crc(B) and the length of B. The CRC is linear over GF(2): running the
 * register over B from crc(A) instead of from the standard start adds crc(A) times x^(8 len B) modulo
 * the polynomial, so the content's checksum can be computed as it streams, before the length that
 * precedes it in the file is known. Polynomials are bit-reflected: bit 31 is x^0.
 */
#define CRC32C_POLY_REFLECTED 0x82F63B78u

static uint32_t gf2_mulmod(uint32_t a, uint32_t b)
{
        uint32_t product = 0;
        for (int i = 0; i < 32; i++) {
                if (a & (0x80000000u >> i))
                        product ^= b;
                b = (b & 1) ? (b >> 1) ^ CRC32C_POLY_REFLECTED : b >> 1; /* b *= x */
        }
        return product;
}

static uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
        uint32_t shift = 0x80000000u; /* x^0 */
        uint32_t power = 0x00800000u; /* x^8: one byte */
        for (uint64_t n = len_b; n > 0; n >>= 1) {
                if (n & 1)
                        shift = gf2_mulmod(shift, power);
                power = gf2_mulmod(power, power);
        }
        return gf2_mulmod(crc_a, shift) ^ crc_b;
}

int qfile_stream_begin(const struct qfile_msg *m, struct buf *head, struct qfile_stream *st)
{
        struct qfile_msg h = *m;
        h.content = NULL;
        h.content_len = 0;
        *st = (struct qfile_stream){0};
        int r = encode_head(&h, head, &st->head_crc);
        if (r < 0)
                return r;
        put_u8(head, QFILE_REC_CONTENT);
        put_u32(head, 0); /* the content length: qfile_stream_finish() */
        st->head_len = head->len;
        return 0;
}

int qfile_stream_content(struct qfile_stream *st, const void *data, size_t len)
{
        if (len > QFILE_MAX_CONTENT_LEN - st->content_len)
                return -EFBIG;
        st->content_crc = qfile_crc32c(st->content_crc, data, len);
        st->content_len += len;
        return 0;
}

void qfile_stream_finish(const struct qfile_stream *st, uint8_t len_field[static 4], struct buf *tail)
{
        uint8_t rec[QFILE_REC_HDR_LEN] = {QFILE_REC_CONTENT};
        le32(rec + 1, (uint32_t)st->content_len);
        memcpy(len_field, rec + 1, 4);
        uint32_t crc = qfile_crc32c(st->head_crc, rec, sizeof rec);
        crc = crc32c_combine(crc, st->content_crc, st->content_len);
        buf_truncate(tail, 0);
        put_u8(tail, QFILE_REC_END);
        put_u32(tail, QFILE_END_PAYLOAD_LEN);
        put_u64(tail, st->head_len + st->content_len);
        put_u32(tail, crc);
}

int qfile_encode(const struct qfile_msg *m, struct buf *head, struct buf *tail)
{
        if (m->content_len > QFILE_MAX_CONTENT_LEN || (m->content_len > 0 && !m->content))
                return -EINVAL;
        struct qfile_stream st;
        int r = qfile_stream_begin(m, head, &st);
        if (r < 0)
                return r;
        if (m->content_len > 0)
                (void)qfile_stream_content(&st, m->content, m->content_len); /* within the limit: checked */
        qfile_stream_finish(&st, (uint8_t *)head->data + st.head_len - 4, tail);
        return 0;
}

int qfile_encode_all(const struct qfile_msg *m, struct buf *out)
{
        struct buf tail = BUF_INIT;
        int r = qfile_encode(m, out, &tail);
        if (r >= 0) {
                buf_append(out, m->content, m->content_len);
                buf_append(out, tail.data, tail.len);
        }
        buf_done(&tail);
        return r;
}

/* ---- decoder ---- */

struct reader {
        const uint8_t *p;
        size_t len;
        size_t pos;
};

static bool rd_left(const struct reader *rd, size_t n)
{
        return rd->len - rd->pos >= n;
}

static uint8_t rd_u8(struct reader *rd)
{
        return rd->p[rd->pos++];
}

static uint16_t rd_u16(struct reader *rd)
{
        uint16_t v = (uint16_t)(rd->p[rd->pos] | rd->p[rd->pos + 1] << 8);
        rd->pos += 2;
        return v;
}

static uint32_t get_le32(const uint8_t *x)
{
        return (uint32_t)x[0] | (uint32_t)x[1] << 8 | (uint32_t)x[2] << 16 | (uint32_t)x[3] << 24;
}

static uint64_t get_le64(const uint8_t *x)
{
        return (uint64_t)get_le32(x) | (uint64_t)get_le32(x + 4) << 32;
}

struct decoder {
        const uint8_t *data;
        size_t len;
        struct qfile_error *err;
        uint32_t crc;
        size_t crc_pos;
        unsigned flags;
        uint32_t version; /* the file's */
        /* qfile_decode_split(): the content is not in data, which holds the file without it. */
        bool gap;
        size_t gap_at;    /* offset in data where the content would start */
        uint64_t gap_len; /* the content's length in the file */
        uint32_t gap_crc; /* and its CRC-32C */
};

static int fail(struct decoder *d, uint64_t offset, const char *reason)
{
        if (d->err) {
                d->err->reason = reason;
                d->err->offset = offset;
        }
        return -EBADMSG;
}

/* The data ends too soon: malformed for a whole file, but only "read more" for an envelope prefix. */
static int truncated(struct decoder *d, uint64_t offset, const char *reason)
{
        int r = fail(d, offset, reason);
        return d->flags & QFILE_DECODE_ENVELOPE ? -ENODATA : r;
}

/* A string field: bounded, no NUL, copied so callers get C strings. */
static char *take_string(const uint8_t *p, size_t n)
{
        return xstrndup((const char *)p, n);
}

static bool has_nul(const uint8_t *p, size_t n)
{
        return n > 0 && memchr(p, 0, n) != NULL;
}

static int decode_attempt_slot(const uint8_t s[static QFILE_STATUS_SLOT_LEN], struct qfile_rcpt *rc,
                               size_t *bad_at, const char **ret_why)
{
        struct qfile_rcpt a = {.state = QFILE_RCPT_ATTEMPTED,
                               .mbox_size = get_le64(s) >> 8,
                               .attempt_usec = get_le64(s + 8),
                               .mbox_ino = get_le64(s + 16),
                               .mbox_dev = get_le64(s + 24)};
        if (!attempt_ok(&a)) {
                if (bad_at)
                        *bad_at = a.attempt_usec == 0 ? 8 : 1;
                if (ret_why)
                        *ret_why = a.attempt_usec == 0 ? "attempted recipient without attempt time"
                                                       : "mailbox size or device without inode";
                return -EBADMSG;
        }
        rc->state = a.state;
        rc->done_usec = 0;
        rc->dsn_status[0] = '\0';
        rc->attempt_usec = a.attempt_usec;
        rc->mbox_size = a.mbox_size;
        rc->mbox_ino = a.mbox_ino;
        rc->mbox_dev = a.mbox_dev;
        return 0;
}

int qfile_decode_slot(const uint8_t s[static QFILE_STATUS_SLOT_LEN], struct qfile_rcpt *rc, size_t *bad_at,
                      const char **ret_why)
{
        size_t at = 0;
        const char *reason = NULL;
        const char *dsn = (const char *)s + 16;
        size_t dl = strnlen(dsn, 16);
        if (s[0] == QFILE_RCPT_ATTEMPTED)
                return decode_attempt_slot(s, rc, bad_at, ret_why);
        if (s[0] >= _QFILE_RCPT_STATE_MAX)
                reason = "unknown recipient state";
        for (int i = 1; i < 8 && !reason; i++)
                if (s[i] != 0)
                        reason = "reserved status slot bytes not zero";
        if (!reason && (dl > QFILE_MAX_DSN_STATUS_LEN || !dsn_status_ok(dsn, dl)))
                at = 16, reason = "bad DSN status in status slot";
        for (size_t i = dl; i < 16 && !reason; i++)
                if (dsn[i] != 0)
                        at = 16, reason = "bad DSN status padding";
        if (reason) {
                if (bad_at)
                        *bad_at = at;
                if (ret_why)
                        *ret_why = reason;
                return -EBADMSG;
        }
        rc->state = s[0];
        rc->attempt_usec = rc->mbox_size = rc->mbox_ino = rc->mbox_dev = 0;
        rc->done_usec = get_le64(s + 8);
        memcpy(rc->dsn_status, dsn, dl);
        rc->dsn_status[dl] = '\0';
        return 0;
}

static int decode_slot(struct decoder *d, size_t off, struct qfile_rcpt *rc)
{
        size_t at = 0;
        const char *why = NULL;
        if (qfile_decode_slot(d->data + off, rc, &at, &why) < 0)
                return fail(d, off + at, why);
        rc->slot_offset = off;
        return 0;
}

static int decode_rcpt(struct decoder *d, size_t start, size_t plen, struct qfile_rcpt *rc)
{
        struct reader rd = {d->data + start, plen, 0};
        if (!rd_left(&rd, 1))
                return fail(d, start, "recipient record too short");
        size_t pad = rd_u8(&rd);
        if (pad >= QFILE_STATUS_SLOT_LEN || !rd_left(&rd, pad + QFILE_STATUS_SLOT_LEN + 1))
                return fail(d, start, "bad recipient padding");
        for (size_t i = 0; i < pad; i++)
                if (rd_u8(&rd) != 0)
                        return fail(d, start + rd.pos - 1, "recipient padding not zero");
        size_t slot = start + rd.pos;
        if (slot % QFILE_STATUS_SLOT_LEN != 0)
                return fail(d, slot, "misaligned status slot");
        int r = decode_slot(d, slot, rc);
        if (r < 0)
                return r;
        if (rc->state == QFILE_RCPT_ATTEMPTED && d->version < 2)
                return fail(d, slot, "attempted recipient in a version 1 file");
        d->crc = qfile_crc32c(d->crc, d->data + d->crc_pos, slot - d->crc_pos);
        d->crc_pos = slot + QFILE_STATUS_SLOT_LEN;
        rd.pos += QFILE_STATUS_SLOT_LEN;

        rc->notify = rd_u8(&rd);
        if (!notify_ok(rc->notify))
                return fail(d, start + rd.pos - 1, "bad DSN NOTIFY flags");
        char **fields[3] = {&rc->address, &rc->orig_rcpt, &rc->orcpt};
        for (int k = 0; k < 3; k++) {
                if (!rd_left(&rd, 2))
                        return fail(d, start + rd.pos, "recipient record too short");
                size_t n = rd_u16(&rd);
                if (n > QFILE_MAX_ADDRESS_LEN)
                        return fail(d, start + rd.pos - 2, "address too long");
                if (!rd_left(&rd, n))
                        return fail(d, start + rd.pos - 2, "address runs past its record");
                if (has_nul(rd.p + rd.pos, n))
                        return fail(d, start + rd.pos, "NUL byte in address");
                if (k == 0 && n == 0)
                        return fail(d, start + rd.pos, "empty recipient address");
                *fields[k] = take_string(rd.p + rd.pos, n);
                rd.pos += n;
        }
        if (rd.pos != rd.len)
                return fail(d, start + rd.pos, "extra bytes in recipient record");
        return 0;
}

static bool parse_size(const uint8_t *p, size_t n, uint64_t *ret)
{
        if (n == 0 || n > 20 || (n > 1 && p[0] == '0'))
                return false;
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++) {
                if (p[i] < '0' || p[i] > '9')
                        return false;
                unsigned dgt = p[i] - '0';
                if (v > (UINT64_MAX - dgt) / 10)
                        return false;
                v = v * 10 + dgt;
        }
        *ret = v;
        return true;
}

static int decode_attr(struct decoder *d, size_t start, size_t plen, struct qfile_msg *m, size_t *n_attrs)
{
        if (++*n_attrs > QFILE_MAX_ATTRS)
                return fail(d, start, "too many attributes");
        const uint8_t *p = d->data + start;
        if (plen < 1)
                return fail(d, start, "attribute record too short");
        size_t nl = p[0];
        if (nl + 1 > plen)
                return fail(d, start, "attribute name runs past its record");
        const char *name = (const char *)p + 1;
        if (!attr_name_ok(name, nl))
                return fail(d, start + 1, "bad attribute name");
        const uint8_t *value = p + 1 + nl;
        size_t vl = plen - 1 - nl;
        if (vl > QFILE_MAX_ATTR_VALUE_LEN)
                return fail(d, start + 1 + nl, "attribute value too long");
        if (has_nul(value, vl))
                return fail(d, start + 1 + nl, "NUL byte in attribute value");

        const struct known_attr *a = known_attr_find(name, nl);
        if (a && a->kind == ATTR_STRING) {
                char **f = attr_field(m, a);
                if (*f)
                        return fail(d, start, "duplicate attribute");
                *f = take_string(value, vl);
        } else if (a && a->kind == ATTR_SIZE) {
                if (m->has_message_size)
                        return fail(d, start, "duplicate attribute");
                if (!parse_size(value, vl, &m->message_size))
                        return fail(d, start + 1 + nl, "bad size attribute");
                m->has_message_size = true;
        } else if (a && a->kind == ATTR_READY) {
                if (m->ready)
                        return fail(d, start, "duplicate attribute");
                if (vl != 1 || value[0] != '1')
                        return fail(d, start + 1 + nl, "bad ready attribute");
                m->ready = true;
        } else {
                for (size_t i = 0; i < m->n_extra; i++)
                        if (strlen(m->extra[i].name) == nl && memcmp(m->extra[i].name, name, nl) == 0)
                                return fail(d, start, "duplicate attribute");
                if (m->n_extra == 0)
                        m->extra = xcalloc(QFILE_MAX_ATTRS, sizeof *m->extra);
                m->extra[m->n_extra].name = xstrndup(name, nl);
                m->extra[m->n_extra].value = take_string(value, vl);
                m->n_extra++;
        }
        return 0;
}

/* Records must come in this order: time, sender, recipients, attributes, content, end. */
enum phase { NEED_TIME, NEED_SENDER, NEED_RCPT, AFTER_RCPT, AFTER_ATTR, NEED_END, DONE };

static int decode(struct decoder *d, struct qfile_msg *m)
{
        const uint8_t *data = d->data;
        size_t len = d->len;

        if (len == 0)
                return fail(d, 0, "empty file");
        size_t mlen = len < QFILE_MAGIC_LEN ? len : QFILE_MAGIC_LEN;
        if (memcmp(data, QFILE_MAGIC, mlen) != 0)
                return fail(d, 0, "bad magic: not a postd queue file");
        if (len < QFILE_HEADER_LEN)
                return truncated(d, len, "truncated header");
        uint32_t version = get_le32(data + 8);
        if (version < QFILE_VERSION_MIN || version > QFILE_VERSION) {
                fail(d, 8, "unsupported queue file version");
                return -EPROTONOSUPPORT;
        }
        d->version = version;
        m->version = version;
        if (get_le32(data + 12) != 0)
                return fail(d, 12, "unknown header flags");

        size_t rcpt_cap = 0, n_attrs = 0;
        enum phase phase = NEED_TIME;
        size_t pos = QFILE_HEADER_LEN;
        while (phase != DONE) {
                if (len - pos < QFILE_REC_HDR_LEN)
                        return truncated(
                                d, pos, pos == len ? "truncated: no end record" : "truncated record header");
                uint8_t type = data[pos];
                size_t plen = get_le32(data + pos + 1);
                size_t start = pos + QFILE_REC_HDR_LEN;
                if (type != QFILE_REC_CONTENT && plen > QFILE_MAX_RECORD_LEN)
                        return fail(d, pos, "record too long");
                bool gap_here = d->gap && type == QFILE_REC_CONTENT;
                if (gap_here && (start != d->gap_at || plen != d->gap_len))
                        return fail(d, pos, "truncated record");
                bool envelope_end = type == QFILE_REC_CONTENT && (d->flags & QFILE_DECODE_ENVELOPE);
                if (!gap_here && !envelope_end && plen > len - start)
                        return truncated(d, pos, "truncated record");

                int r = 0;
                switch (type) {
                case QFILE_REC_TIME:
                        if (phase != NEED_TIME)
                                return fail(d, pos, "time record out of order");
                        if (plen != 8)
                                return fail(d, pos, "bad time record length");
                        m->arrival_usec = get_le64(data + start);
                        phase = NEED_SENDER;
                        break;
                case QFILE_REC_SENDER:
                        if (phase != NEED_SENDER)
                                return fail(d, pos, "sender record out of order");
                        if (plen > QFILE_MAX_ADDRESS_LEN)
                                return fail(d, pos, "sender too long");
                        if (has_nul(data + start, plen))
                                return fail(d, start, "NUL byte in sender");
                        m->sender = take_string(data + start, plen);
                        phase = NEED_RCPT;
                        break;
                case QFILE_REC_RCPT:
                        if (phase != NEED_RCPT && phase != AFTER_RCPT)
                                return fail(d, pos, "recipient record out of order");
                        if (m->n_rcpts >= QFILE_MAX_RECIPIENTS)
                                return fail(d, pos, "too many recipients");
                        if (m->n_rcpts == rcpt_cap) {
                                rcpt_cap = rcpt_cap ? rcpt_cap * 2 : 4;
                                if (rcpt_cap > QFILE_MAX_RECIPIENTS)
                                        rcpt_cap = QFILE_MAX_RECIPIENTS;
                                m->rcpts = xrealloc(m->rcpts, rcpt_cap * sizeof *m->rcpts);
                        }
                        memset(&m->rcpts[m->n_rcpts], 0, sizeof *m->rcpts);
                        m->n_rcpts++;
                        r = decode_rcpt(d, start, plen, &m->rcpts[m->n_rcpts - 1]);
                        phase = AFTER_RCPT;
                        break;
                case QFILE_REC_ATTR:
                        if (phase != AFTER_RCPT && phase != AFTER_ATTR)
                                return fail(d, pos, "attribute record out of order");
                        r = decode_attr(d, start, plen, m, &n_attrs);
                        phase = AFTER_ATTR;
                        break;
                case QFILE_REC_CONTENT:
                        if (phase != AFTER_RCPT && phase != AFTER_ATTR)
                                return fail(d, pos, "content record out of order");
                        m->content = (const char *)data + start;
                        m->content_len = plen;
                        phase = NEED_END;
                        if (gap_here) {
                                /* The content's checksum, computed by the caller, continues the file's. */
                                d->crc = qfile_crc32c(d->crc, data + d->crc_pos, start - d->crc_pos);
                                d->crc = crc32c_combine(d->crc, d->gap_crc, d->gap_len);
                                d->crc_pos = start;
                                m->content = NULL;
                                plen = 0; /* the end record follows in data */
                        }
                        if (envelope_end) {
                                m->content = NULL;
                                return 0;
                        }
                        break;
                case QFILE_REC_END: {
                        if (phase != NEED_END)
                                return fail(d, pos, "end record out of order");
                        if (plen != QFILE_END_PAYLOAD_LEN)
                                return fail(d, pos, "bad end record length");
                        if (get_le64(data + start) != pos + (d->gap ? d->gap_len : 0))
                                return fail(d, start, "end record length does not match the file");
                        d->crc = qfile_crc32c(d->crc, data + d->crc_pos, pos - d->crc_pos);
                        if (get_le32(data + start + 8) != d->crc &&
                            !(d->flags & QFILE_DECODE_IGNORE_CHECKSUM))
                                return fail(d, start + 8, "checksum mismatch");
                        if (start + plen != len)
                                return fail(d, start + plen, "data after end record");
                        phase = DONE;
                        break;
                }
                default: return fail(d, pos, "unknown record type");
                }
                if (r < 0)
                        return r;
                pos = start + plen;
        }
        return 0;
}

int qfile_decode(const void *data, size_t len, struct qfile_msg *ret, struct qfile_error *err)
{
        return qfile_decode_flags(data, len, 0, ret, err);
}

int qfile_decode_flags(const void *data, size_t len, unsigned flags, struct qfile_msg *ret,
                       struct qfile_error *err)
{
        struct decoder d = {.data = data, .len = len, .err = err, .flags = flags};
        struct qfile_msg m = {0};
        if (err)
                *err = (struct qfile_error){NULL, 0};
        int r = decode(&d, &m);
        if (r < 0) {
                qfile_msg_done(&m);
                *ret = (struct qfile_msg){0};
                return r;
        }
        *ret = m;
        return 0;
}

int qfile_decode_split(const void *head, size_t head_len, uint64_t content_len, uint32_t content_crc,
                       const void *tail, size_t tail_len, struct qfile_msg *ret, struct qfile_error *err)
{
        struct buf b = BUF_INIT;
        buf_append(&b, head, head_len);
        buf_append(&b, tail, tail_len);
        struct decoder d = {.data = (const uint8_t *)b.data, .len = b.len, .err = err};
        d.gap = true;
        d.gap_at = head_len;
        d.gap_len = content_len;
        d.gap_crc = content_crc;
        struct qfile_msg m = {0};
        if (err)
                *err = (struct qfile_error){NULL, 0};
        int r = b.len > 0 ? decode(&d, &m) : fail(&d, 0, "empty file");
        buf_done(&b);
        if (r < 0) {
                qfile_msg_done(&m);
                *ret = (struct qfile_msg){0};
                return r;
        }
        *ret = m;
        return 0;
}

void qfile_msg_done(struct qfile_msg *m)
{
        free(m->sender);
        for (size_t i = 0; i < m->n_rcpts; i++) {
                free(m->rcpts[i].address);
                free(m->rcpts[i].orig_rcpt);
                free(m->rcpts[i].orcpt);
        }
        free(m->rcpts);
        for (size_t i = 0; i < ELEMENTSOF(known_attrs); i++)
                if (known_attrs[i].kind == ATTR_STRING)
                        free(*attr_field(m, &known_attrs[i]));
        for (size_t i = 0; i < m->n_extra; i++) {
                free(m->extra[i].name);
                free(m->extra[i].value);
        }
        free(m->extra);
        *m = (struct qfile_msg){0};
}
