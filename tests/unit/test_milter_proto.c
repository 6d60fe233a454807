/* test_milter_proto.c: milter packets as the protocol lays them out, and the decoder's bounds. */
#include "unit.h"

#include <errno.h>
#include <string.h>

#include "buf.h"
#include "milter_proto.h"

/* A packet a filter would send: length, command, data. */
static size_t packet(uint8_t *out, char cmd, const void *data, size_t len)
{
        uint32_t n = (uint32_t)len + 1;
        out[0] = (uint8_t)(n >> 24), out[1] = (uint8_t)(n >> 16), out[2] = (uint8_t)(n >> 8),
        out[3] = (uint8_t)n;
        out[4] = (uint8_t)cmd;
        memcpy(out + 5, data, len);
        return len + 5;
}

TEST(optneg_is_three_big_endian_words)
{
        struct buf b = BUF_INIT;
        milter_put_optneg(&b, 6, MILTER_ACT_ADDHDRS | MILTER_ACT_CHGBODY, 0x1fffff);
        static const uint8_t want[] = {0, 0, 0, 13, 'O', 0, 0, 0, 6, 0, 0, 0, 3, 0, 0x1f, 0xff, 0xff};
        CHECK_INT(b.len, sizeof want);
        CHECK(memcmp(b.data, want, sizeof want) == 0);
        buf_done(&b);
}

TEST(connect_mail_rcpt_and_macros_layout)
{
        struct buf b = BUF_INIT;
        milter_put_connect(&b, "mx.example", MILTER_FAMILY_INET, 25, "192.0.2.1");
        static const char want_c[] = "\0\0\0\x19"
                                     "Cmx.example\0"
                                     "4\0\x19"
                                     "192.0.2.1";
        CHECK_INT(b.len, sizeof want_c); /* the final NUL of the literal is the address's */
        CHECK(memcmp(b.data, want_c, sizeof want_c) == 0);
        buf_truncate(&b, 0);
        const char *params[] = {"SIZE=10", "BODY=8BITMIME"};
        milter_put_mail(&b, "a@b", params, 2);
        static const char want_m[] = "\0\0\0\x1d"
                                     "M<a@b>\0SIZE=10\0BODY=8BITMIME";
        CHECK_INT(b.len, sizeof want_m);
        CHECK(memcmp(b.data, want_m, sizeof want_m) == 0);
        buf_truncate(&b, 0);
        const char *names[] = {"i", "{auth_authen}"}, *values[] = {"4F1A2B", "alice"};
        milter_put_macros(&b, MILTER_CMD_MAIL, names, values, 2);
        static const char want_d[] = "\0\0\0\x1f"
                                     "DMi\0004F1A2B\0{auth_authen}\0alice";
        CHECK_INT(b.len, sizeof want_d);
        CHECK(memcmp(b.data, want_d, sizeof want_d) == 0);
        buf_truncate(&b, 0);
        milter_put_simple(&b, MILTER_CMD_EOH);
        CHECK_INT(b.len, 5);
        CHECK(memcmp(b.data, "\0\0\0\1N", 5) == 0);
        buf_done(&b);
}

TEST(body_chunks_are_capped)
{
        struct buf b = BUF_INIT;
        static char big[70000];
        milter_put_body(&b, big, sizeof big);
        CHECK_INT(b.len, MILTER_HEADER_LEN + 1 + MILTER_CHUNK_MAX);
        size_t n = 0;
        CHECK_INT(milter_packet_complete((const uint8_t *)b.data, b.len, &n), 1);
        CHECK_INT(n, b.len);
        buf_done(&b);
}

TEST(packet_framing)
{
        uint8_t p[64];
        size_t len = packet(p, 'c', "", 0), n = 0;
        CHECK_INT(milter_packet_complete(p, 3, &n), 0);
        CHECK_INT(milter_packet_complete(p, len - 1, &n), 0);
        CHECK_INT(milter_packet_complete(p, len, &n), 1);
        CHECK_INT(n, 5);
        static const uint8_t zero[] = {0, 0, 0, 0, 'c'}, huge[] = {0x7f, 0xff, 0xff, 0xff, 'c'};
        CHECK_INT(milter_packet_complete(zero, sizeof zero, &n), -EMSGSIZE);
        CHECK_INT(milter_packet_complete(huge, sizeof huge, &n), -EMSGSIZE);
}

TEST(replies_decode)
{
        uint8_t p[128];
        struct milter_reply r;
        size_t len = packet(p, 'y', "550 5.7.1 go away", 18);
        CHECK_INT(milter_parse_reply(p, len, &r), 0);
        CHECK(r.cmd == 'y');
        CHECK_STR(r.text, "550 5.7.1 go away");
        CHECK_INT(milter_reply_code(r.text), 550);
        len = packet(p, 'h', "X-Spam\0yes", 11);
        CHECK_INT(milter_parse_reply(p, len, &r), 0);
        CHECK_STR(r.text, "X-Spam");
        CHECK_STR(r.value, "yes");
        len = packet(p, 'm', "\0\0\0\2Subject\0", 13);
        CHECK_INT(milter_parse_reply(p, len, &r), 0);
        CHECK_INT(r.index, 2);
        CHECK_STR(r.text, "Subject");
        CHECK_STR(r.value, ""); /* an empty value deletes the header */
        len = packet(p, 'e', "<new@example>", 14);
        CHECK_INT(milter_parse_reply(p, len, &r), 0);
        CHECK_STR(r.text, "<new@example>");
        CHECK(r.value == NULL);
        len = packet(p, 'O', "\0\0\0\6\0\0\0\1\0\0\0\x10", 12);
        CHECK_INT(milter_parse_reply(p, len, &r), 0);
        CHECK_INT(r.version, 6);
        CHECK_INT(r.actions, MILTER_ACT_ADDHDRS);
        CHECK_INT(r.protocol, MILTER_P_NOBODY);
        len = packet(p, 'b', "new body", 8);
        CHECK_INT(milter_parse_reply(p, len, &r), 0);
        CHECK_INT(r.len, 8);
        CHECK(memcmp(r.data, "new body", 8) == 0);
}

TEST(malformed_replies_are_refused)
{
        uint8_t p[128];
        struct milter_reply r;
        size_t len = packet(p, 'y', "250 fine", 9); /* only 4xx/5xx may be forced */
        CHECK_INT(milter_parse_reply(p, len, &r), -EBADMSG);
        len = packet(p, 'h', "X-Spam", 6); /* no NUL, no value */
        CHECK_INT(milter_parse_reply(p, len, &r), -EBADMSG);
        len = packet(p, 'm', "\0\0", 2); /* short index */
        CHECK_INT(milter_parse_reply(p, len, &r), -EBADMSG);
        len = packet(p, 'O', "\0\0\0\6", 4);
        CHECK_INT(milter_parse_reply(p, len, &r), -EBADMSG);
        len = packet(p, 'Z', "", 0);
        CHECK_INT(milter_parse_reply(p, len, &r), -EPROTO);
        len = packet(p, 'c', "", 0);
        CHECK_INT(milter_parse_reply(p, len - 1, &r), -EBADMSG); /* length field disagrees */
}
