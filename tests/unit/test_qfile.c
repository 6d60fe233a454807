/* test_qfile.c: queue file record codec: round trips, limits, and rejection of every malformed input. */
#include "unit.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "alloc.h"
#include "buf.h"
#include "qfile.h"

static const char content[] = "Subject: test\nFrom: a@example.org\n\nbody line\n.dot\n";

static struct qfile_rcpt rcpts[3] = {
        {.address = "one@example.com",
         .orig_rcpt = "alias@example.com",
         .orcpt = "rfc822;alias@example.com",
         .notify = QFILE_NOTIFY_SUCCESS | QFILE_NOTIFY_FAILURE},
        {.address = "two@example.com", .notify = QFILE_NOTIFY_NEVER},
        {.address = "three@example.com",
         .state = QFILE_RCPT_BOUNCED,
         .done_usec = 1700000000123456ull,
         .dsn_status = "5.1.1"},
};

static struct qfile_attr extras[2] = {{"x_future", "kept"}, {"empty_value", ""}};

static struct qfile_msg full_msg(void)
{
        return (struct qfile_msg){
                .arrival_usec = 1712345678901234ull,
                .sender = "sender@example.org",
                .rcpts = rcpts,
                .n_rcpts = ELEMENTSOF(rcpts),
                .client_name = "mail.example.org",
                .client_address = "192.0.2.1",
                .helo_name = "mail.example.org",
                .protocol = "ESMTP",
                .sasl_username = "alice",
                .envelope_id = "ENV-1",
                .origin_queue = "incoming",
                .message_size = 12345,
                .has_message_size = true,
                .ready = true,
                .extra = extras,
                .n_extra = ELEMENTSOF(extras),
                .content = content,
                .content_len = sizeof(content) - 1,
        };
}

static struct qfile_rcpt min_rcpt = {.address = "x@y"};

static struct qfile_msg min_msg(void)
{
        return (struct qfile_msg){.sender = "", .rcpts = &min_rcpt, .n_rcpts = 1};
}

TEST(crc32c_known_vector)
{
        CHECK_INT(qfile_crc32c(0, "123456789", 9), 0xE3069283u);
        /* Incremental use gives the same result. */
        CHECK_INT(qfile_crc32c(qfile_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
}

TEST(round_trip_every_record_type)
{
        struct qfile_msg in = full_msg();
        struct buf b = BUF_INIT;
        CHECK_INT(qfile_encode_all(&in, &b), 0);
        struct qfile_msg out;
        struct qfile_error err;
        CHECK_INT(qfile_decode(b.data, b.len, &out, &err), 0);
        CHECK(err.reason == NULL);
        CHECK_INT(out.arrival_usec, in.arrival_usec);
        CHECK_STR(out.sender, in.sender);
        CHECK_INT(out.n_rcpts, 3);
        for (size_t i = 0; i < 3; i++) {
                CHECK_STR(out.rcpts[i].address, in.rcpts[i].address);
                CHECK_STR(out.rcpts[i].orig_rcpt, in.rcpts[i].orig_rcpt ? in.rcpts[i].orig_rcpt : "");
                CHECK_STR(out.rcpts[i].orcpt, in.rcpts[i].orcpt ? in.rcpts[i].orcpt : "");
                CHECK_INT(out.rcpts[i].notify, in.rcpts[i].notify);
                CHECK_INT(out.rcpts[i].state, in.rcpts[i].state);
                CHECK_INT(out.rcpts[i].done_usec, in.rcpts[i].done_usec);
                CHECK_STR(out.rcpts[i].dsn_status, in.rcpts[i].dsn_status);
                /* The slot is aligned and really holds the state byte. */
                CHECK_INT(out.rcpts[i].slot_offset % QFILE_STATUS_SLOT_LEN, 0);
                CHECK(out.rcpts[i].slot_offset + QFILE_STATUS_SLOT_LEN <= b.len);
                CHECK_INT((uint8_t)b.data[out.rcpts[i].slot_offset], in.rcpts[i].state);
        }
        CHECK_STR(out.client_name, "mail.example.org");
        CHECK_STR(out.client_address, "192.0.2.1");
        CHECK_STR(out.helo_name, "mail.example.org");
        CHECK_STR(out.protocol, "ESMTP");
        CHECK_STR(out.sasl_username, "alice");
        CHECK_STR(out.envelope_id, "ENV-1");
        CHECK_STR(out.origin_queue, "incoming");
        CHECK(out.has_message_size);
        CHECK_INT(out.message_size, 12345);
        CHECK(out.ready);
        CHECK_INT(out.n_extra, 2);
        CHECK_STR(out.extra[0].name, "x_future");
        CHECK_STR(out.extra[0].value, "kept");
        CHECK_STR(out.extra[1].name, "empty_value");
        CHECK_STR(out.extra[1].value, "");
        CHECK_INT(out.content_len, sizeof(content) - 1);
        CHECK(out.content >= b.data && out.content + out.content_len <= b.data + b.len);
        CHECK(memcmp(out.content, content, out.content_len) == 0);

        /* Re-encoding the decoded message gives the same bytes. */
        struct buf b2 = BUF_INIT;
        CHECK_INT(qfile_encode_all(&out, &b2), 0);
        CHECK_INT(b2.len, b.len);
        CHECK(memcmp(b.data, b2.data, b.len) == 0);
        qfile_msg_done(&out);
        CHECK(out.sender == NULL && out.rcpts == NULL);
        buf_done(&b);
        buf_done(&b2);
}

TEST(round_trip_minimal)
{
        struct qfile_msg in = min_msg();
        struct buf b = BUF_INIT;
        CHECK_INT(qfile_encode_all(&in, &b), 0);
        struct qfile_msg out;
        CHECK_INT(qfile_decode(b.data, b.len, &out, NULL), 0);
        CHECK_STR(out.sender, "");
        CHECK_INT(out.n_rcpts, 1);
        CHECK_STR(out.rcpts[0].address, "x@y");
        CHECK_INT(out.rcpts[0].state, QFILE_RCPT_PENDING);
        CHECK_STR(out.rcpts[0].dsn_status, "");
        CHECK(out.client_name == NULL && out.protocol == NULL);
        CHECK(!out.has_message_size && !out.ready);
        CHECK_INT(out.n_extra, 0);
        CHECK_INT(out.content_len, 0);
        qfile_msg_done(&out);
        buf_done(&b);
}

TEST(head_content_tail_is_the_whole_file)
{
        struct qfile_msg in = full_msg();
        struct buf head = BUF_INIT, tail = BUF_INIT, all = BUF_INIT;
        CHECK_INT(qfile_encode(&in, &head, &tail), 0);
        CHECK_INT(qfile_encode_all(&in, &all), 0);
        CHECK_INT(head.len + in.content_len + tail.len, all.len);
        CHECK(memcmp(all.data, head.data, head.len) == 0);
        CHECK(memcmp(all.data + head.len + in.content_len, tail.data, tail.len) == 0);
        CHECK_INT(tail.len, QFILE_REC_HDR_LEN + QFILE_END_PAYLOAD_LEN);
        buf_done(&head);
        buf_done(&tail);
        buf_done(&all);
}

TEST(truncation_at_every_offset_is_rejected)
{
        struct qfile_msg in = full_msg();
        struct buf b = BUF_INIT;
        CHECK_INT(qfile_encode_all(&in, &b), 0);
        for (size_t len = 0; len < b.len; len++) {
                /* A copy of exactly len bytes, so ASan catches any read past the end. */
                char *copy = xmalloc(len ? len : 1);
                memcpy(copy, b.data, len);
                struct qfile_msg out;
                struct qfile_error err = {0};
                int r = qfile_decode(copy, len, &out, &err);
                free(copy);
                if (r != -EBADMSG) {
                        unit_fail(__FILE__, __LINE__, "truncated to %zu of %zu bytes: %d", len, b.len, r);
                        break;
                }
                CHECK(err.reason != NULL);
                CHECK(err.offset <= len);
                CHECK(out.sender == NULL && out.rcpts == NULL && out.content == NULL);
        }
        buf_done(&b);
}

TEST(every_flipped_byte_outside_slots_is_detected)
{
        struct qfile_msg in = full_msg();
        struct buf b = BUF_INIT;
        CHECK_INT(qfile_encode_all(&in, &b), 0);
        struct qfile_msg dec;
        CHECK_INT(qfile_decode(b.data, b.len, &dec, NULL), 0);
        size_t accepted = 0;
        for (size_t i = 0; i < b.len; i++) {
                bool in_slot = false;
                for (size_t k = 0; k < dec.n_rcpts; k++)
                        if (i >= dec.rcpts[k].slot_offset &&
                            i < dec.rcpts[k].slot_offset + QFILE_STATUS_SLOT_LEN)
                                in_slot = true;
                if (in_slot)
                        continue;
                b.data[i] ^= 0x20;
                struct qfile_msg out;
                int r = qfile_decode(b.data, b.len, &out, NULL);
                b.data[i] ^= 0x20;
                if (r >= 0) {
                        accepted++;
                        qfile_msg_done(&out);
                }
        }
        CHECK_INT(accepted, 0);
        qfile_msg_done(&dec);
        buf_done(&b);
}

TEST(status_slot_is_outside_the_checksum)
{
        struct qfile_msg in = full_msg();
        struct buf b = BUF_INIT;
        CHECK_INT(qfile_encode_all(&in, &b), 0);
        struct qfile_msg dec;
        CHECK_INT(qfile_decode(b.data, b.len, &dec, NULL), 0);
        uint8_t slot[QFILE_STATUS_SLOT_LEN];
        CHECK_INT(qfile_encode_slot(QFILE_RCPT_DELIVERED, 42, "2.0.0", slot), 0);
        memcpy(b.data + dec.rcpts[1].slot_offset, slot, sizeof slot);
        qfile_msg_done(&dec);
        CHECK_INT(qfile_decode(b.data, b.len, &dec, NULL), 0);
        CHECK_INT(dec.rcpts[1].state, QFILE_RCPT_DELIVERED);
        CHECK_INT(dec.rcpts[1].done_usec, 42);
        CHECK_STR(dec.rcpts[1].dsn_status, "2.0.0");
        CHECK_INT(dec.rcpts[0].state, QFILE_RCPT_PENDING);
        /* A garbage state in the slot is still caught. */
        b.data[dec.rcpts[1].slot_offset] = 9;
        qfile_msg_done(&dec);
        struct qfile_error err;
        CHECK_INT(qfile_decode(b.data, b.len, &dec, &err), -EBADMSG);
        CHECK_STR(err.reason, "unknown recipient state");
        buf_done(&b);
}

TEST(bad_magic_version_flags_and_trailing_data)
{
        struct qfile_msg in = min_msg();
        struct buf b = BUF_INIT;
        CHECK_INT(qfile_encode_all(&in, &b), 0);
        struct qfile_msg out;
        struct qfile_error err;

        b.data[1] = 'X';
        CHECK_INT(qfile_decode(b.data, b.len, &out, &err), -EBADMSG);
        CHECK_STR(err.reason, "bad magic: not a postd queue file");
        b.data[1] = 'P';
        CHECK_INT(qfile_decode("From x", 6, &out, &err), -EBADMSG);
        CHECK_STR(err.reason, "bad magic: not a postd queue file");

        b.data[8] = QFILE_VERSION + 1;
        CHECK_INT(qfile_decode(b.data, b.len, &out, &err), -EPROTONOSUPPORT);
        CHECK_STR(err.reason, "unsupported queue file version");
        b.data[8] = 0;
        CHECK_INT(qfile_decode(b.data, b.len, &out, &err), -EPROTONOSUPPORT);
        b.data[8] = QFILE_VERSION;
        b.data[12] = 1;
        CHECK_INT(qfile_decode(b.data, b.len, &out, &err), -EBADMSG);
        CHECK_STR(err.reason, "unknown header flags");
        b.data[12] = 0;

        CHECK_INT(qfile_decode(b.data, b.len, &out, NULL), 0);
        qfile_msg_done(&out);
        buf_putc(&b, 0);
        CHECK_INT(qfile_decode(b.data, b.len, &out, &err), -EBADMSG);
        CHECK_STR(err.reason, "data after end record");
        buf_done(&b);
}

/* A valid file's bytes up to (not including) its content record, to append hand-made records to. */
static struct buf prefix_before_content(const struct qfile_msg *m)
{
        struct buf head = BUF_INIT, tail = BUF_INIT;
        if (qfile_encode(m, &head, &tail) < 0)
                abort();
        buf_truncate(&head, head.len - QFILE_REC_HDR_LEN);
        buf_done(&tail);
        return head;
}

static void rec(struct buf *b, char type, uint32_t len, const void *payload, size_t n)
{
        uint8_t h[5] = {(uint8_t)type, (uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                        (uint8_t)(len >> 24)};
        buf_append(b, h, sizeof h);
        buf_append(b, payload, n);
}

static const char *decode_reason(const struct buf *b)
{
        static struct qfile_error err;
        struct qfile_msg out;
        int r = qfile_decode(b->data, b->len, &out, &err);
        if (r >= 0) {
                qfile_msg_done(&out);
                return "accepted";
        }
        return err.reason;
}

TEST(bad_lengths)
{
        struct qfile_msg in = min_msg();
        struct buf b = prefix_before_content(&in);
        size_t base = b.len;

        rec(&b, 'C', 0xFFFFFFFFu, "", 0);
        CHECK_STR(decode_reason(&b), "truncated record");
        buf_truncate(&b, base);
        rec(&b, 'A', QFILE_MAX_RECORD_LEN + 1, "", 0);
        CHECK_STR(decode_reason(&b), "record too long");
        buf_truncate(&b, base);
        rec(&b, 'A', 5,
            "\x09"
            "abcd",
            5);
        CHECK_STR(decode_reason(&b), "attribute name runs past its record");
        buf_truncate(&b, base);
        rec(&b, 'A', 3,
            "\x02"
            "A=",
            3);
        CHECK_STR(decode_reason(&b), "bad attribute name");
        buf_truncate(&b, base);
        rec(&b, 'A', 8, "\x04size012", 8);
        CHECK_STR(decode_reason(&b), "bad size attribute");
        buf_truncate(&b, base);
        rec(&b, 'A', 25, "\x04size99999999999999999999", 25);
        CHECK_STR(decode_reason(&b), "bad size attribute");
        buf_truncate(&b, base);
        rec(&b, 'A', 5,
            "\x01"
            "a\0bc",
            5);
        CHECK_STR(decode_reason(&b), "NUL byte in attribute value");
        buf_truncate(&b, base);
        rec(&b, 'A', 2,
            "\x01"
            "a",
            2);
        rec(&b, 'A', 2,
            "\x01"
            "a",
            2);
        CHECK_STR(decode_reason(&b), "duplicate attribute");
        buf_truncate(&b, base);
        rec(&b, 'Z', 0, "", 0);
        CHECK_STR(decode_reason(&b), "unknown record type");
        buf_truncate(&b, base);
        rec(&b, 'C', 0, "", 0);
        rec(&b, 'E', 11, "01234567890", 11);
        CHECK_STR(decode_reason(&b), "bad end record length");
        buf_truncate(&b, base);
        rec(&b, 'C', 0, "", 0);
        rec(&b, 'E', 12, "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
        CHECK_STR(decode_reason(&b), "end record length does not match the file");
        buf_done(&b);

        /* A time record of the wrong size, right after the header. */
        struct buf t = BUF_INIT;
        buf_append(&t, QFILE_MAGIC, QFILE_MAGIC_LEN);
        buf_append(&t, "\x01\0\0\0\0\0\0\0", 8);
        size_t hdr = t.len;
        rec(&t, 'T', 7, "1234567", 7);
        CHECK_STR(decode_reason(&t), "bad time record length");
        buf_truncate(&t, hdr);
        rec(&t, 'S', 0, "", 0);
        CHECK_STR(decode_reason(&t), "sender record out of order");
        buf_truncate(&t, hdr);
        rec(&t, 'T', 8, "12345678", 8);
        rec(&t, 'S', 3, "a\0b", 3);
        CHECK_STR(decode_reason(&t), "NUL byte in sender");
        buf_truncate(&t, hdr);
        rec(&t, 'T', 8, "12345678", 8);
        rec(&t, 'S', 0, "", 0);
        rec(&t, 'C', 0, "", 0);
        CHECK_STR(decode_reason(&t), "content record out of order");
        buf_done(&t);
}

TEST(bad_recipient_records)
{
        struct qfile_msg in = min_msg();
        struct buf head = BUF_INIT, tail = BUF_INIT;
        CHECK_INT(qfile_encode(&in, &head, &tail), 0);
        struct qfile_msg dec;
        struct buf all = BUF_INIT;
        CHECK_INT(qfile_encode_all(&in, &all), 0);
        CHECK_INT(qfile_decode(all.data, all.len, &dec, NULL), 0);
        size_t slot = dec.rcpts[0].slot_offset;
        qfile_msg_done(&dec);

        /* Reserved slot bytes, the DSN status and the NOTIFY flags are all checked. */
        all.data[slot + 3] = 1;
        CHECK_STR(decode_reason(&all), "reserved status slot bytes not zero");
        all.data[slot + 3] = 0;
        all.data[slot + 16] = 'x';
        CHECK_STR(decode_reason(&all), "bad DSN status in status slot");
        all.data[slot + 16] = 0;
        all.data[slot + 20] = '1';
        CHECK_STR(decode_reason(&all), "bad DSN status padding");
        all.data[slot + 20] = 0;
        all.data[slot + QFILE_STATUS_SLOT_LEN] = QFILE_NOTIFY_NEVER | QFILE_NOTIFY_DELAY;
        CHECK_STR(decode_reason(&all), "bad DSN NOTIFY flags");
        all.data[slot + QFILE_STATUS_SLOT_LEN] = 0;
        /* Address length pointing past the record. */
        all.data[slot + QFILE_STATUS_SLOT_LEN + 1] = 100;
        CHECK_STR(decode_reason(&all), "address runs past its record");
        all.data[slot + QFILE_STATUS_SLOT_LEN + 1] = 0;
        CHECK_STR(decode_reason(&all), "empty recipient address");
        all.data[slot + QFILE_STATUS_SLOT_LEN + 1] = 3;
        CHECK_STR(decode_reason(&all), "accepted");
        buf_done(&head);
        buf_done(&tail);
        buf_done(&all);
}

TEST(decoder_limits_on_counts)
{
        /* QFILE_MAX_ATTRS + 1 distinct attributes. */
        struct qfile_msg in = min_msg();
        struct buf b = prefix_before_content(&in);
        for (int i = 0; i <= QFILE_MAX_ATTRS; i++) {
                char p[8];
                int n = snprintf(p, sizeof p, "%ca%03d", 4, i);
                rec(&b, 'A', (uint32_t)n, p, (size_t)n);
        }
        CHECK_STR(decode_reason(&b), "too many attributes");
        buf_done(&b);

        /* QFILE_MAX_RECIPIENTS + 1 recipients: encoding refuses, decoding refuses. */
        size_t n = QFILE_MAX_RECIPIENTS + 1;
        struct qfile_rcpt *many = xcalloc(n, sizeof *many);
        for (size_t i = 0; i < n; i++)
                many[i].address = "r@example.com";
        struct qfile_msg big = {.sender = "", .rcpts = many, .n_rcpts = n};
        struct buf enc = BUF_INIT;
        CHECK_INT(qfile_encode_all(&big, &enc), -EINVAL);
        big.n_rcpts = QFILE_MAX_RECIPIENTS;
        CHECK_INT(qfile_encode_all(&big, &enc), 0);
        struct qfile_msg out;
        CHECK_INT(qfile_decode(enc.data, enc.len, &out, NULL), 0);
        CHECK_INT(out.n_rcpts, QFILE_MAX_RECIPIENTS);
        qfile_msg_done(&out);
        /* Splice one more recipient record in front of the content record (checksum not reached). */
        struct buf head = BUF_INIT, tail = BUF_INIT;
        CHECK_INT(qfile_encode(&big, &head, &tail), 0);
        size_t cut = head.len - QFILE_REC_HDR_LEN;
        struct buf more = BUF_INIT;
        buf_append(&more, head.data, cut);
        /* Copy the last recipient record again (the record boundaries come from walking the lengths). */
        size_t rec_start = 0;
        for (size_t pos = QFILE_HEADER_LEN; pos < cut;) {
                uint32_t l = (uint8_t)head.data[pos + 1] | (uint8_t)head.data[pos + 2] << 8 |
                             (uint32_t)(uint8_t)head.data[pos + 3] << 16 |
                             (uint32_t)(uint8_t)head.data[pos + 4] << 24;
                if (head.data[pos] == 'R')
                        rec_start = pos;
                pos += QFILE_REC_HDR_LEN + l;
        }
        CHECK(head.data[rec_start] == 'R');
        buf_append(&more, head.data + rec_start, cut - rec_start);
        buf_append(&more, head.data + cut, QFILE_REC_HDR_LEN);
        struct qfile_error err;
        CHECK_INT(qfile_decode(more.data, more.len, &out, &err), -EBADMSG);
        CHECK_STR(err.reason, "too many recipients");
        free(many);
        buf_done(&enc);
        buf_done(&head);
        buf_done(&tail);
        buf_done(&more);
}

TEST(encoder_refuses_what_decoder_would)
{
        struct buf b = BUF_INIT;
        struct qfile_msg m = min_msg();
        m.n_rcpts = 0;
        CHECK_INT(qfile_encode_all(&m, &b), -EINVAL);

        m = min_msg();
        char *longaddr = xmalloc(QFILE_MAX_ADDRESS_LEN + 2);
        memset(longaddr, 'a', QFILE_MAX_ADDRESS_LEN + 1);
        longaddr[QFILE_MAX_ADDRESS_LEN + 1] = '\0';
        m.sender = longaddr;
        CHECK_INT(qfile_encode_all(&m, &b), -EINVAL);
        longaddr[QFILE_MAX_ADDRESS_LEN] = '\0';
        CHECK_INT(qfile_encode_all(&m, &b), 0);
        free(longaddr);

        struct qfile_rcpt r = {.address = ""};
        m = min_msg();
        m.rcpts = &r;
        CHECK_INT(qfile_encode_all(&m, &b), -EINVAL);
        r = (struct qfile_rcpt){.address = "a@b", .notify = QFILE_NOTIFY_NEVER | QFILE_NOTIFY_SUCCESS};
        CHECK_INT(qfile_encode_all(&m, &b), -EINVAL);
        r = (struct qfile_rcpt){.address = "a@b", .dsn_status = "2.0.0x"};
        CHECK_INT(qfile_encode_all(&m, &b), -EINVAL);

        struct qfile_attr bad[2] = {{"Upper", "v"}, {"ok", "v"}};
        m = min_msg();
        m.extra = bad;
        m.n_extra = 1;
        CHECK_INT(qfile_encode_all(&m, &b), -EINVAL);
        bad[0].name = "protocol"; /* a known name must go in its own field */
        CHECK_INT(qfile_encode_all(&m, &b), -EINVAL);
        bad[0].name = "ok";
        m.n_extra = 2;
        CHECK_INT(qfile_encode_all(&m, &b), -EINVAL);

        struct qfile_attr many[QFILE_MAX_ATTRS + 1];
        char names[QFILE_MAX_ATTRS + 1][8];
        for (int i = 0; i <= QFILE_MAX_ATTRS; i++) {
                snprintf(names[i], sizeof names[i], "a%03d", i);
                many[i] = (struct qfile_attr){names[i], "v"};
        }
        m = min_msg();
        m.extra = many;
        m.n_extra = QFILE_MAX_ATTRS;
        CHECK_INT(qfile_encode_all(&m, &b), 0);
        m.protocol = "SMTP"; /* known attributes count too */
        CHECK_INT(qfile_encode_all(&m, &b), -EINVAL);
        buf_done(&b);
}

TEST(slot_encoding)
{
        uint8_t s[QFILE_STATUS_SLOT_LEN];
        CHECK_INT(qfile_encode_slot(QFILE_RCPT_DELIVERED, 0x0102030405060708ull, "2.0.0", s), 0);
        CHECK_INT(s[0], 1);
        CHECK_INT(s[8], 0x08);
        CHECK_INT(s[15], 0x01);
        CHECK(memcmp(s + 16, "2.0.0\0", 6) == 0);
        CHECK_INT(qfile_encode_slot(_QFILE_RCPT_STATE_MAX, 0, NULL, s), -EINVAL);
        CHECK_INT(qfile_encode_slot(QFILE_RCPT_DELIVERED, 0, "1234567890123456", s), -EINVAL);
        CHECK_STR(qfile_rcpt_state_to_string(QFILE_RCPT_BOUNCED), "bounced");
}

static struct qfile_rcpt attempted(uint64_t when, uint64_t dev, uint64_t ino, uint64_t size)
{
        return (struct qfile_rcpt){.address = "a@example.com",
                                   .state = QFILE_RCPT_ATTEMPTED,
                                   .attempt_usec = when,
                                   .mbox_dev = dev,
                                   .mbox_ino = ino,
                                   .mbox_size = size};
}

TEST(attempted_slot_encoding)
{
        uint8_t s[QFILE_STATUS_SLOT_LEN];
        struct qfile_rcpt rc = attempted(0x0102030405060708ull, 0x2233, 0x44556677, 0x00AABBCCDDEEFF11ull);
        CHECK_INT(qfile_encode_rcpt_slot(&rc, s), 0);
        CHECK_INT(s[0], QFILE_RCPT_ATTEMPTED);
        CHECK_INT(s[1], 0x11);
        CHECK_INT(s[7], 0xAA);
        CHECK_INT(s[8], 0x08);
        CHECK_INT(s[16], 0x77);
        CHECK_INT(s[24], 0x33);
        struct qfile_rcpt out = {.done_usec = 9, .dsn_status = "2.0.0"};
        CHECK_INT(qfile_decode_slot(s, &out, NULL, NULL), 0);
        CHECK_INT(out.state, QFILE_RCPT_ATTEMPTED);
        CHECK(out.attempt_usec == rc.attempt_usec && out.mbox_dev == rc.mbox_dev &&
              out.mbox_ino == rc.mbox_ino && out.mbox_size == rc.mbox_size);
        CHECK(out.done_usec == 0 && out.dsn_status[0] == '\0');
        CHECK(qfile_rcpt_state_pending(out.state));
        CHECK(qfile_rcpt_state_pending(QFILE_RCPT_PENDING));
        CHECK(!qfile_rcpt_state_pending(QFILE_RCPT_DELIVERED) &&
              !qfile_rcpt_state_pending(QFILE_RCPT_BOUNCED));
        CHECK_STR(qfile_rcpt_state_to_string(QFILE_RCPT_ATTEMPTED), "attempted");

        /* Only the time: a Maildir or a command was attempted, no mailbox recorded. */
        rc = attempted(5, 0, 0, 0);
        CHECK_INT(qfile_encode_rcpt_slot(&rc, s), 0);
        CHECK_INT(qfile_decode_slot(s, &out, NULL, NULL), 0);
        CHECK(out.attempt_usec == 5 && out.mbox_ino == 0);

        /* A later mark overwrites every attempt field. */
        CHECK_INT(qfile_encode_slot(QFILE_RCPT_DELIVERED, 7, "2.0.0", s), 0);
        CHECK_INT(qfile_decode_slot(s, &out, NULL, NULL), 0);
        CHECK(out.state == QFILE_RCPT_DELIVERED && out.attempt_usec == 0 && out.mbox_size == 0);

        /* What the encoder refuses, and the decoder too. */
        CHECK_INT(qfile_encode_slot(QFILE_RCPT_ATTEMPTED, 1, "", s), -EINVAL);
        struct qfile_rcpt bad[] = {attempted(0, 0, 0, 0), attempted(1, 0, 1, 1ull << 56),
                                   attempted(1, 3, 0, 0), attempted(1, 0, 0, 4)};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                CHECK_INT(qfile_encode_rcpt_slot(&bad[i], s), -EINVAL);
        rc = attempted(1, 3, 9, 4);
        CHECK_INT(qfile_encode_rcpt_slot(&rc, s), 0);
        const char *why = NULL;
        size_t at = 0;
        s[16] = 0; /* inode 0, device and size still set */
        CHECK_INT(qfile_decode_slot(s, &out, &at, &why), -EBADMSG);
        CHECK_STR(why, "mailbox size or device without inode");
        memset(s + 8, 0, 8);
        CHECK_INT(qfile_decode_slot(s, &out, &at, &why), -EBADMSG);
        CHECK_STR(why, "attempted recipient without attempt time");
        CHECK_INT(at, 8);
}

/* As an older postd wrote it: version 1, the checksum made again over the changed header. */
static void make_version_1(struct buf *b)
{
        struct qfile_msg m;
        CHECK_INT(qfile_decode_flags(b->data, b->len, QFILE_DECODE_IGNORE_CHECKSUM, &m, NULL), 0);
        b->data[8] = 1;
        size_t end = b->len - QFILE_REC_HDR_LEN - QFILE_END_PAYLOAD_LEN;
        uint32_t crc = 0;
        size_t pos = 0;
        for (size_t i = 0; i < m.n_rcpts; i++) {
                crc = qfile_crc32c(crc, b->data + pos, m.rcpts[i].slot_offset - pos);
                pos = m.rcpts[i].slot_offset + QFILE_STATUS_SLOT_LEN;
        }
        crc = qfile_crc32c(crc, b->data + pos, end - pos);
        for (int i = 0; i < 4; i++)
                b->data[b->len - 4 + i] = (char)(crc >> (8 * i));
        qfile_msg_done(&m);
}

TEST(version_1_files_are_read_but_hold_no_attempt)
{
        struct qfile_msg in = full_msg();
        struct buf b = BUF_INIT;
        CHECK_INT(qfile_encode_all(&in, &b), 0);
        struct qfile_msg out;
        CHECK_INT(qfile_decode(b.data, b.len, &out, NULL), 0);
        CHECK_INT(out.version, QFILE_VERSION);
        size_t slot = out.rcpts[1].slot_offset;
        qfile_msg_done(&out);

        /* An attempted slot in a current file: decoded, and encoded back to the same bytes. */
        struct qfile_rcpt rc = attempted(1712345678000001ull, 0x801, 123456, 4096);
        CHECK_INT(qfile_encode_rcpt_slot(&rc, (uint8_t *)b.data + slot), 0);
        CHECK_INT(qfile_decode(b.data, b.len, &out, NULL), 0);
        CHECK_INT(out.rcpts[1].state, QFILE_RCPT_ATTEMPTED);
        CHECK(out.rcpts[1].mbox_ino == 123456 && out.rcpts[1].mbox_size == 4096);
        struct buf again = BUF_INIT;
        CHECK_INT(qfile_encode_all(&out, &again), 0);
        CHECK(again.len == b.len && memcmp(again.data, b.data, b.len) == 0);
        buf_done(&again);
        qfile_msg_done(&out);

        /* Version 1 is still read; the state it did not know is refused there, so no older reader
         * would ever have met it. */
        CHECK_INT(qfile_encode_slot(QFILE_RCPT_PENDING, 0, "", (uint8_t *)b.data + slot), 0);
        make_version_1(&b);
        CHECK_INT(qfile_decode(b.data, b.len, &out, NULL), 0);
        CHECK_INT(out.version, 1);
        CHECK_STR(out.rcpts[0].address, "one@example.com");
        qfile_msg_done(&out);
        CHECK_INT(qfile_encode_rcpt_slot(&rc, (uint8_t *)b.data + slot), 0);
        struct qfile_error err;
        CHECK_INT(qfile_decode(b.data, b.len, &out, &err), -EBADMSG);
        CHECK_STR(err.reason, "attempted recipient in a version 1 file");
        CHECK_INT(err.offset, slot);
        buf_done(&b);
}

/* The streaming encoder, fed in pieces of every size, makes exactly the bytes of the one-shot encoder. */
TEST(stream_encoder_matches_one_shot)
{
        /* Content long enough that the checksum combination runs over many bit lengths. */
        struct buf big = BUF_INIT;
        for (int i = 0; i < 5000; i++)
                buf_printf(&big, "line %d of a body that is streamed\n", i);
        const size_t lens[] = {0, 1, 2, 3, 7, 8, 64, 1000, big.len};
        for (size_t li = 0; li < ELEMENTSOF(lens); li++) {
                struct qfile_msg in = full_msg();
                in.content = big.data;
                in.content_len = lens[li];
                struct buf want = BUF_INIT;
                CHECK_INT(qfile_encode_all(&in, &want), 0);
                const size_t pieces[] = {1, 3, 4096, 65536};
                for (size_t pi = 0; pi < ELEMENTSOF(pieces); pi++) {
                        struct buf head = BUF_INIT, tail = BUF_INIT, got = BUF_INIT;
                        struct qfile_stream st;
                        in.content = NULL; /* ignored by begin */
                        CHECK_INT(qfile_stream_begin(&in, &head, &st), 0);
                        CHECK_INT(st.head_len, head.len);
                        for (size_t off = 0; off < lens[li]; off += pieces[pi]) {
                                size_t n = lens[li] - off < pieces[pi] ? lens[li] - off : pieces[pi];
                                CHECK_INT(qfile_stream_content(&st, big.data + off, n), 0);
                        }
                        uint8_t len_field[4];
                        qfile_stream_finish(&st, len_field, &tail);
                        memcpy(head.data + head.len - 4, len_field, 4);
                        buf_append(&got, head.data, head.len);
                        buf_append(&got, big.data, lens[li]);
                        buf_append(&got, tail.data, tail.len);
                        CHECK_INT(got.len, want.len);
                        CHECK(memcmp(got.data, want.data, want.len) == 0);
                        struct qfile_msg out;
                        CHECK_INT(qfile_decode(got.data, got.len, &out, NULL), 0);
                        CHECK_INT(out.content_len, lens[li]);
                        qfile_msg_done(&out);
                        buf_done(&head);
                        buf_done(&tail);
                        buf_done(&got);
                }
                buf_done(&want);
        }
        buf_done(&big);
}

TEST(stream_encoder_refuses_content_past_the_limit)
{
        struct qfile_msg in = min_msg();
        struct buf head = BUF_INIT;
        struct qfile_stream st;
        CHECK_INT(qfile_stream_begin(&in, &head, &st), 0);
        st.content_len = QFILE_MAX_CONTENT_LEN - 1;
        CHECK_INT(qfile_stream_content(&st, "ab", 2), -EFBIG);
        CHECK_INT(st.content_len, QFILE_MAX_CONTENT_LEN - 1);
        CHECK_INT(qfile_stream_content(&st, "a", 1), 0);
        buf_done(&head);
}

/* What recovery does for a big file, on a buffer: walk to the content record, checksum the content on its
 * own, decode the rest with qfile_decode_split(). 1: it took that path, with its verdict in *ret. */
static int split_decode(const char *data, size_t len, int *ret)
{
        size_t pos = QFILE_HEADER_LEN;
        while (pos + QFILE_REC_HDR_LEN <= len) {
                uint8_t type = (uint8_t)data[pos];
                const uint8_t *l = (const uint8_t *)data + pos + 1;
                size_t plen = (size_t)l[0] | (size_t)l[1] << 8 | (size_t)l[2] << 16 | (size_t)l[3] << 24;
                if (type == QFILE_REC_CONTENT) {
                        size_t at = pos + QFILE_REC_HDR_LEN;
                        if (at + plen > len)
                                return 0;
                        struct qfile_msg m;
                        *ret = qfile_decode_split(data, at, plen, qfile_crc32c(0, data + at, plen),
                                                  data + at + plen, len - at - plen, &m, NULL);
                        if (*ret == 0) {
                                if (m.content != NULL || m.content_len != plen)
                                        *ret = -EINVAL; /* fails the comparison */
                                qfile_msg_done(&m);
                        }
                        return 1;
                }
                if (type == QFILE_REC_END || plen > QFILE_MAX_RECORD_LEN)
                        return 0;
                pos += QFILE_REC_HDR_LEN + plen;
        }
        return 0;
}

/* The split decoder accepts exactly what the whole-buffer decoder accepts, for every one-byte change. */
TEST(split_decode_agrees_with_decode)
{
        struct qfile_msg in = full_msg();
        struct buf b = BUF_INIT;
        CHECK_INT(qfile_encode_all(&in, &b), 0);
        int r = -1;
        CHECK_INT(split_decode(b.data, b.len, &r), 1);
        CHECK_INT(r, 0);
        size_t paths = 0;
        for (size_t i = 0; i < b.len; i++)
                for (int bit = 0; bit < 8; bit += 3) {
                        b.data[i] ^= (char)(1 << bit);
                        struct qfile_msg m;
                        int whole = qfile_decode(b.data, b.len, &m, NULL);
                        if (whole == 0)
                                qfile_msg_done(&m);
                        int split = -1;
                        if (split_decode(b.data, b.len, &split)) {
                                paths++;
                                CHECK_INT(split, whole);
                        }
                        b.data[i] ^= (char)(1 << bit);
                }
        CHECK(paths > b.len); /* most changes reach the split decoder */
        /* Truncations and trailing bytes too. */
        for (size_t len = 0; len < b.len; len++) {
                int split = -1;
                if (split_decode(b.data, len, &split))
                        CHECK_INT(split, -EBADMSG);
        }
        buf_putc(&b, 'x');
        int split = -1;
        CHECK_INT(split_decode(b.data, b.len, &split), 1);
        CHECK_INT(split, -EBADMSG);
        buf_done(&b);
}

/* A listing reads only a first chunk of each file: every prefix short of the content record's header asks
 * for more (-ENODATA, never "malformed"), every longer one gives the whole envelope without the content. */
TEST(envelope_decode_of_every_prefix)
{
        struct qfile_msg in = full_msg();
        struct buf b = BUF_INIT;
        CHECK_INT(qfile_encode_all(&in, &b), 0);
        size_t content_at = b.len - in.content_len - QFILE_REC_HDR_LEN - QFILE_END_PAYLOAD_LEN;
        for (size_t len = 0; len <= b.len; len++) {
                char *copy = xmalloc(len ? len : 1);
                memcpy(copy, b.data, len);
                struct qfile_msg out;
                int r = qfile_decode_flags(copy, len, QFILE_DECODE_ENVELOPE, &out, NULL);
                free(copy);
                int want = len == 0 ? -EBADMSG : len < content_at ? -ENODATA : 0;
                if (r != want) {
                        unit_fail(__FILE__, __LINE__, "prefix of %zu of %zu bytes: %d, expected %d", len,
                                  b.len, r, want);
                        break;
                }
                if (r < 0)
                        continue;
                CHECK(out.content == NULL);
                CHECK_INT(out.content_len, in.content_len);
                CHECK(out.arrival_usec == in.arrival_usec);
                CHECK_STR(out.sender, in.sender);
                CHECK_INT(out.n_rcpts, in.n_rcpts);
                CHECK_STR(out.rcpts[2].address, in.rcpts[2].address);
                CHECK_INT(out.rcpts[2].state, QFILE_RCPT_BOUNCED);
                qfile_msg_done(&out);
        }
        /* Malformed stays malformed, however short: a bad magic, a record out of order. */
        struct qfile_msg out;
        CHECK_INT(qfile_decode_flags("\x89PDX", 4, QFILE_DECODE_ENVELOPE, &out, NULL), -EBADMSG);
        b.data[QFILE_HEADER_LEN] = QFILE_REC_SENDER;
        CHECK_INT(qfile_decode_flags(b.data, b.len, QFILE_DECODE_ENVELOPE, &out, NULL), -EBADMSG);
        buf_done(&b);
}
