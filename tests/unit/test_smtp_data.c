/* test_smtp_data.c: DATA decoding (unstuffing, end, smuggling variants, limits) and encoding. */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>

#include "alloc.h"
#include "smtp_data.h"

struct result {
        int ret;
        size_t consumed;
        enum smtp_data_error error;
        char *out;
        struct smtp_data d; /* state after decoding, for flags */
};

/* Decode in chunks of `chunk` bytes (0: all at once) until the end or the input is exhausted. */
static void decode(const char *in, size_t n, size_t chunk, const struct smtp_data_options *opt,
                   struct result *res)
{
        struct buf out = BUF_INIT;
        struct smtp_data d;
        size_t off = 0;
        int r = 0;

        smtp_data_init(&d, opt, smtp_data_line_to_buf, &out);
        while (off < n) {
                size_t take = chunk == 0 || n - off < chunk ? n - off : chunk, used = 0;
                r = smtp_data_feed(&d, in + off, take, &used);
                off += used;
                if (r != 0)
                        break;
                if (used != take) {
                        r = -999; /* a feed that needs more must consume everything */
                        break;
                }
        }
        res->ret = r;
        res->consumed = off;
        res->error = d.error;
        res->out = buf_steal(&out);
        smtp_data_done(&d);
        res->d = d;
}

struct data_case {
        const char *name;
        const char *in;
        int ret;         /* 1 end seen, 0 needs more */
        size_t consumed; /* 0: strlen(in) */
        enum smtp_data_error error;
        const char *out; /* NULL: not checked (error cases) */
};

static const struct data_case cases[] = {
        {"simple", "Subject: x\r\n\r\nbody\r\n.\r\n", 1, 0, SMTP_DATA_OK, "Subject: x\r\n\r\nbody\r\n"},
        {"empty message", ".\r\n", 1, 0, SMTP_DATA_OK, ""},
        {"dot stuffing", "..leading\r\n...two\r\n.\r\n", 1, 0, SMTP_DATA_OK, ".leading\r\n..two\r\n"},
        {"dot inside line", "a.b\r\n.\r\n", 1, 0, SMTP_DATA_OK, "a.b\r\n"},
        {"double dot line", "..\r\n.\r\n", 1, 0, SMTP_DATA_OK, ".\r\n"},
        {"pipelined command after end", "x\r\n.\r\nQUIT\r\n", 1, 6, SMTP_DATA_OK, "x\r\n"},
        {"no end yet", "x\r\n.", 0, 0, SMTP_DATA_OK, "x\r\n"},
        {"dot space is not end", "x\r\n. \r\n.\r\n", 1, 0, SMTP_DATA_OK, "x\r\n \r\n"},
        /* smuggling variants: none of these may end DATA */
        {"LF.LF", "a\n.\nMAIL FROM:<evil@x>\r\n", 0, 0, SMTP_DATA_ERR_BARE_LF, NULL},
        {"CRLF.LF", "a\r\n.\nMAIL FROM:<evil@x>\r\n", 0, 0, SMTP_DATA_ERR_BARE_LF, NULL},
        {"LF.CRLF", "a\n.\r\nMAIL FROM:<evil@x>\r\n", 0, 0, SMTP_DATA_ERR_BARE_LF, NULL},
        {"CR.LF", "a\r.\nMAIL FROM:<evil@x>\r\n", 0, 0, SMTP_DATA_ERR_BARE_CR, NULL},
        {"CR.CR", "a\r.\rMAIL FROM:<evil@x>\r\n", 0, 0, SMTP_DATA_ERR_BARE_CR, NULL},
        {"CRLF.CR", "a\r\n.\rMAIL FROM:<evil@x>\r\n", 0, 0, SMTP_DATA_ERR_BARE_CR, NULL},
        {"CRLF.CRCRLF", "a\r\n.\r\r\nMAIL\r\n", 0, 0, SMTP_DATA_ERR_BARE_CR, NULL},
        {"smuggled then real end", "a\n.\nMAIL FROM:<evil@x>\r\n.\r\nQUIT\r\n", 1, 27, SMTP_DATA_ERR_BARE_LF,
         NULL},
        {"bare CR then real end", "a\rb\r\n.\r\n", 1, 0, SMTP_DATA_ERR_BARE_CR, NULL},
        {"NUL is content", "a\0b\r\n.\r\n", 1, 8, SMTP_DATA_OK, NULL},
};

TEST(data_table_all_chunk_sizes)
{
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const struct data_case *c = &cases[i];
                size_t n = streq(c->name, "NUL is content") ? 8 : strlen(c->in);
                char *first = NULL;
                /* 1-byte, 2-byte, 3-byte, 7-byte and whole-buffer chunks must give identical results */
                size_t chunks[] = {0, 1, 2, 3, 7};
                for (size_t k = 0; k < ELEMENTSOF(chunks); k++) {
                        struct result res;
                        decode(c->in, n, chunks[k], NULL, &res);
                        if (res.ret != c->ret || res.consumed != (c->consumed ? c->consumed : n) ||
                            res.error != c->error)
                                unit_fail(__FILE__, __LINE__,
                                          "case %s chunk %zu: ret %d consumed %zu error %d, expected %d %zu "
                                          "%d",
                                          c->name, chunks[k], res.ret, res.consumed, res.error, c->ret,
                                          c->consumed ? c->consumed : n, c->error);
                        if (c->out && strcmp(res.out, c->out) != 0)
                                unit_fail(__FILE__, __LINE__, "case %s chunk %zu: output \"%s\"", c->name,
                                          chunks[k], res.out);
                        if (k == 0)
                                first = res.out;
                        else {
                                if (strcmp(first, res.out) != 0)
                                        unit_fail(__FILE__, __LINE__, "case %s: chunk %zu output differs",
                                                  c->name, chunks[k]);
                                free(res.out);
                        }
                }
                free(first);
        }
}

TEST(error_replies)
{
        CHECK_STR(smtp_data_error_reply(SMTP_DATA_ERR_BARE_LF), "550 5.5.2 Error: bare <LF> received");
        CHECK_STR(smtp_data_error_reply(SMTP_DATA_ERR_BARE_CR), "550 5.5.2 Error: bare <CR> received");
        CHECK_STR(smtp_data_error_reply(SMTP_DATA_ERR_TOO_BIG),
                  "552 5.3.4 Message size exceeds fixed limit");
        CHECK(smtp_data_error_reply(SMTP_DATA_OK) == NULL);
}

TEST(no_output_after_error)
{
        struct result res;
        const char *in = "good\r\nbad\nafter\r\n.\r\n";
        decode(in, strlen(in), 0, NULL, &res);
        CHECK_INT(res.ret, 1);
        CHECK_INT(res.error, SMTP_DATA_ERR_BARE_LF);
        CHECK_STR(res.out, "good\r\n");
        free(res.out);
}

TEST(normalize_mode)
{
        struct smtp_data_options o = {.bare_newline = SMTP_BARE_NEWLINE_NORMALIZE};
        struct result res;
        /* a bare LF ends a line but never DATA: "<LF>.<LF>" and "<LF>.<CR><LF>" stay content */
        const char *in = "a\nb\r\n..c\n.\n.\r\nd\r\n.\r\nQUIT\r\n";
        for (size_t chunk = 0; chunk < 4; chunk++) {
                decode(in, strlen(in), chunk, &o, &res);
                CHECK_INT(res.ret, 1);
                CHECK_INT(res.error, SMTP_DATA_OK);
                CHECK(res.d.saw_bare_lf);
                CHECK_STR(res.out, "a\r\nb\r\n.c\r\n.\r\n.\r\nd\r\n");
                CHECK_INT(res.consumed, strlen(in) - 6);
                free(res.out);
        }
        /* a bare CR is still refused unless allowed */
        in = "a\rb\r\n.\r\n";
        decode(in, strlen(in), 1, &o, &res);
        CHECK_INT(res.error, SMTP_DATA_ERR_BARE_CR);
        free(res.out);
        o.allow_bare_cr = true;
        decode(in, strlen(in), 1, &o, &res);
        CHECK_INT(res.error, SMTP_DATA_OK);
        CHECK_STR(res.out, "a\rb\r\n");
        free(res.out);
}

TEST(size_limit_keeps_consuming)
{
        struct smtp_data_options o = {.max_size = 10};
        struct result res;
        const char *in = "0123456\r\n.\r\n"; /* 9 bytes of content with CRLF */
        decode(in, strlen(in), 1, &o, &res);
        CHECK_INT(res.error, SMTP_DATA_OK);
        CHECK_INT(res.d.size, 9);
        free(res.out);
        in = "0123456789\r\nmore\r\nand more\r\n.\r\nQUIT\r\n";
        decode(in, strlen(in), 1, &o, &res);
        CHECK_INT(res.ret, 1);
        CHECK_INT(res.error, SMTP_DATA_ERR_TOO_BIG);
        CHECK_INT(res.consumed, strlen(in) - 6);
        CHECK_STR(res.out, "");
        free(res.out);
        /* 0 means no limit */
        o.max_size = 0;
        decode(in, strlen(in), 0, &o, &res);
        CHECK_INT(res.error, SMTP_DATA_OK);
        free(res.out);
        /* the first error wins: a later bare LF does not replace the size error */
        o.max_size = 3;
        in = "toolong\r\nx\ny\r\n.\r\n";
        decode(in, strlen(in), 0, &o, &res);
        CHECK_INT(res.error, SMTP_DATA_ERR_TOO_BIG);
        free(res.out);
}

struct piece {
        char text[64];
        unsigned flags;
};
struct pieces {
        struct piece p[32];
        size_t n;
};

static int collect(const char *p, size_t len, unsigned flags, void *userdata)
{
        struct pieces *ps = userdata;
        if (ps->n >= ELEMENTSOF(ps->p) || len >= sizeof(ps->p[0].text))
                return -ENOBUFS;
        memcpy(ps->p[ps->n].text, p, len);
        ps->p[ps->n].text[len] = '\0';
        ps->p[ps->n].flags = flags;
        ps->n++;
        return 0;
}

TEST(long_lines_are_cut_and_headers_flagged)
{
        struct smtp_data_options o = {.max_line = 4, .max_header = 1000};
        struct pieces ps = {0};
        struct smtp_data d;
        size_t used;
        const char *in = "Subj: abcdefgh\r\n\r\n.body\r\n.\r\n";
        smtp_data_init(&d, &o, collect, &ps);
        for (size_t i = 0; i < strlen(in); i++)
                CHECK_INT(smtp_data_feed(&d, in + i, 1, &used), i + 1 == strlen(in) ? 1 : 0);
        smtp_data_done(&d);
        CHECK_INT(ps.n, 6);
        CHECK_STR(ps.p[0].text, "Subj");
        CHECK_INT(ps.p[0].flags, SMTP_DATA_LINE_PARTIAL | SMTP_DATA_LINE_HEADER);
        CHECK_STR(ps.p[1].text, ": ab");
        CHECK_STR(ps.p[2].text, "cdef");
        CHECK_STR(ps.p[3].text, "gh");
        CHECK_INT(ps.p[3].flags, SMTP_DATA_LINE_HEADER);
        CHECK_STR(ps.p[4].text, "");
        CHECK_INT(ps.p[4].flags, 0);
        CHECK_STR(ps.p[5].text, "body");
        CHECK_INT(ps.p[5].flags, 0); /* exactly max_line bytes: one whole piece, not a partial one */
}

TEST(header_section_limit)
{
        struct smtp_data_options o = {.max_header = 20};
        struct pieces ps = {0};
        struct smtp_data d;
        size_t used;
        const char *in = "A: 1234567\r\nB: 1234567\r\nC: x\r\n\r\nbody\r\n.\r\n";
        smtp_data_init(&d, &o, collect, &ps);
        CHECK_INT(smtp_data_feed(&d, in, strlen(in), &used), 1);
        CHECK(d.header_overflow);
        smtp_data_done(&d);
        CHECK_INT(ps.n, 5);
        CHECK_INT(ps.p[0].flags, SMTP_DATA_LINE_HEADER);
        CHECK_INT(ps.p[1].flags, 0); /* 12 + 12 > 20 */
        CHECK_INT(ps.p[2].flags, 0);
}

TEST(callback_error_aborts)
{
        struct pieces ps = {.n = ELEMENTSOF(ps.p)};
        struct smtp_data d;
        size_t used = 0;
        smtp_data_init(&d, NULL, collect, &ps);
        CHECK_INT(smtp_data_feed(&d, "x\r\n.\r\n", 6, &used), -ENOBUFS);
        CHECK_INT(used, 3);
        smtp_data_done(&d);
}

TEST(after_end_feed_returns_end)
{
        struct smtp_data d;
        size_t used = 99;
        smtp_data_init(&d, NULL, NULL, NULL);
        CHECK_INT(smtp_data_feed(&d, ".\r\n", 3, &used), 1);
        CHECK_INT(used, 3);
        CHECK_INT(smtp_data_feed(&d, "QUIT\r\n", 6, &used), 1);
        CHECK_INT(used, 0);
        smtp_data_done(&d);
}

TEST(encoder)
{
        struct {
                const char *in, *out;
        } e[] = {
                {"", ".\r\n"},
                {"a\r\nb\r\n", "a\r\nb\r\n.\r\n"},
                {"a\nb", "a\r\nb\r\n.\r\n"},
                {".x\n.\n..\n", "..x\r\n..\r\n...\r\n.\r\n"},
                {"a\r.\rb", "a\r\n..\r\nb\r\n.\r\n"},
                {"a\r", "a\r\n.\r\n"},
                {"a\n.\nMAIL FROM:<x@y>", "a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n"},
        };
        for (size_t i = 0; i < ELEMENTSOF(e); i++) {
                /* whole and byte-by-byte must agree */
                for (int bytewise = 0; bytewise < 2; bytewise++) {
                        struct smtp_dot_encoder enc = {0};
                        struct buf out = BUF_INIT;
                        size_t n = strlen(e[i].in);
                        if (bytewise)
                                for (size_t k = 0; k < n; k++)
                                        smtp_dot_encode(&enc, e[i].in + k, 1, &out);
                        else
                                smtp_dot_encode(&enc, e[i].in, n, &out);
                        smtp_dot_encoder_finish(&enc, &out);
                        CHECK_STR(buf_str(&out), e[i].out);
                        buf_done(&out);
                }
        }
}

TEST(encode_decode_round_trip)
{
        const char *msgs[] = {"Subject: t\r\n\r\n.\r\n..\r\nx.\r\n", "a\r\n\r\n\r\n", ".", "\r\n"};
        for (size_t i = 0; i < ELEMENTSOF(msgs); i++) {
                struct smtp_dot_encoder enc = {0};
                struct buf wire = BUF_INIT;
                smtp_dot_encode(&enc, msgs[i], strlen(msgs[i]), &wire);
                smtp_dot_encoder_finish(&enc, &wire);
                struct result res;
                decode(wire.data, wire.len, 1, NULL, &res);
                CHECK_INT(res.ret, 1);
                CHECK_INT(res.consumed, wire.len);
                CHECK_INT(res.error, SMTP_DATA_OK);
                /* the decoder always ends lines with CRLF; the encoder closed the last line */
                char *expect = xstrdup(msgs[i]);
                if (*expect && !(strlen(expect) >= 2 && streq(expect + strlen(expect) - 2, "\r\n"))) {
                        char *t = xasprintf("%s\r\n", expect);
                        free(expect);
                        expect = t;
                }
                CHECK_STR(res.out, expect);
                free(expect);
                free(res.out);
                buf_done(&wire);
        }
}
