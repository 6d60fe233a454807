/* test_smtp_reply.c: reply formatting, the incremental client-side reply parser and EHLO capabilities. */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>

#include "alloc.h"
#include "smtp_reply.h"

TEST(format)
{
        struct buf b = BUF_INIT;
        smtp_reply_format(&b, 250, "2.0.0", "Ok");
        CHECK_STR(buf_str(&b), "250 2.0.0 Ok\r\n");
        buf_truncate(&b, 0);
        smtp_reply_format(&b, 250, NULL, "mail.example.com\nPIPELINING\nSIZE 10240000\n8BITMIME");
        CHECK_STR(buf_str(&b),
                  "250-mail.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n");
        buf_truncate(&b, 0);
        smtp_reply_format(&b, 550, "5.7.1", "first\nsecond");
        CHECK_STR(buf_str(&b), "550-5.7.1 first\r\n550 5.7.1 second\r\n");
        buf_truncate(&b, 0);
        /* a CR in text must not become a line break on the wire */
        smtp_reply_format(&b, 554, "5.7.1", "<a@b>: evil\r\n250 ok");
        CHECK_STR(buf_str(&b), "554-5.7.1 <a@b>: evil?\r\n554 5.7.1 250 ok\r\n");
        buf_truncate(&b, 0);
        smtp_reply_printf(&b, 221, "2.0.0", "Bye %s", "now");
        CHECK_STR(buf_str(&b), "221 2.0.0 Bye now\r\n");
        buf_truncate(&b, 0);
        smtp_reply_format(&b, 354, NULL, "End data with <CR><LF>.<CR><LF>");
        CHECK_STR(buf_str(&b), "354 End data with <CR><LF>.<CR><LF>\r\n");
        buf_done(&b);
}

static int parse_all(const char *in, size_t chunk, struct smtp_reply *r, size_t *consumed)
{
        struct smtp_reply_parser p;
        size_t off = 0, n = strlen(in);
        int ret = 0;
        smtp_reply_parser_init(&p);
        while (off < n) {
                size_t take = chunk == 0 || n - off < chunk ? n - off : chunk, used = 0;
                ret = smtp_reply_parser_feed(&p, in + off, take, &used, r);
                off += used;
                if (ret != 0)
                        break;
        }
        smtp_reply_parser_done(&p);
        *consumed = off;
        return ret;
}

struct reply_case {
        const char *in;
        int ret;
        int code;
        const char *enhanced;
        const char *text;
        size_t consumed; /* 0: all */
};

static const struct reply_case cases[] = {
        {"220 mx.example ESMTP\r\n", 1, 220, "", "mx.example ESMTP", 0},
        {"250 2.1.0 Ok\r\n", 1, 250, "2.1.0", "2.1.0 Ok", 0},
        {"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n", 1, 250, "",
         "mx.example\nPIPELINING\nSIZE 1000", 0},
        {"550-5.1.1 no such\r\n550 5.1.1 user\r\n", 1, 550, "5.1.1", "5.1.1 no such\n5.1.1 user", 0},
        {"250\r\n", 1, 250, "", "", 0},
        {"250 ok\n", 1, 250, "", "ok", 0},
        {"250 ok\r\n250 second\r\n", 1, 250, "", "ok", 8},
        {"250 4.0.0 wrong class\r\n", 1, 250, "", "4.0.0 wrong class", 0},
        {"451 4.3.0 x\r\n", 1, 451, "4.3.0", "4.3.0 x", 0},
        {"250 2.0.1234 no\r\n", 1, 250, "", "2.0.1234 no", 0},
        {"250-a\r\n251 b\r\n", -EBADMSG, 0, NULL, NULL, 0},
        {"25 short\r\n", -EBADMSG, 0, NULL, NULL, 0},
        {"2500 x\r\n", -EBADMSG, 0, NULL, NULL, 0},
        {"650 x\r\n", -EBADMSG, 0, NULL, NULL, 0},
        {"190 x\r\n", -EBADMSG, 0, NULL, NULL, 0},
        {"abc x\r\n", -EBADMSG, 0, NULL, NULL, 0},
        {"\r\n", -EBADMSG, 0, NULL, NULL, 0},
        {"250-incomplete\r\n", 0, 0, NULL, NULL, 0},
        {"250 no line end", 0, 0, NULL, NULL, 0},
};

TEST(parser_table)
{
        size_t chunks[] = {0, 1, 3};
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const struct reply_case *c = &cases[i];
                for (size_t k = 0; k < ELEMENTSOF(chunks); k++) {
                        struct smtp_reply r = {0};
                        size_t used = 0;
                        int ret = parse_all(c->in, chunks[k], &r, &used);
                        if (ret != c->ret) {
                                unit_fail(__FILE__, __LINE__, "case %zu chunk %zu: ret %d, expected %d", i,
                                          chunks[k], ret, c->ret);
                                continue;
                        }
                        if (ret != 1)
                                continue;
                        CHECK_INT(r.code, c->code);
                        CHECK_STR(r.enhanced, c->enhanced);
                        CHECK_STR(r.text, c->text);
                        CHECK_INT(used, c->consumed ? c->consumed : strlen(c->in));
                        smtp_reply_done(&r);
                }
        }
}

TEST(nul_and_limits)
{
        struct smtp_reply_parser p;
        struct smtp_reply r;
        size_t used;
        smtp_reply_parser_init(&p);
        CHECK_INT(smtp_reply_parser_feed(&p, "250 a\0b\r\n", 9, &used, &r), -EBADMSG);
        smtp_reply_parser_done(&p);

        /* an endless line */
        char *big = xmalloc(SMTP_REPLY_LINE_MAX + 10);
        memcpy(big, "250 ", 4);
        memset(big + 4, 'x', SMTP_REPLY_LINE_MAX + 6);
        smtp_reply_parser_init(&p);
        int ret = 0;
        for (size_t off = 0; off < SMTP_REPLY_LINE_MAX + 10 && ret == 0; off += 100) {
                size_t take = SMTP_REPLY_LINE_MAX + 10 - off < 100 ? SMTP_REPLY_LINE_MAX + 10 - off : 100;
                ret = smtp_reply_parser_feed(&p, big + off, take, &used, &r);
        }
        CHECK_INT(ret, -EMSGSIZE);
        smtp_reply_parser_done(&p);
        free(big);

        /* too many continuation lines */
        smtp_reply_parser_init(&p);
        ret = 0;
        for (int i = 0; i <= SMTP_REPLY_LINES_MAX && ret == 0; i++)
                ret = smtp_reply_parser_feed(&p, "250-x\r\n", 7, &used, &r);
        CHECK_INT(ret, -EMSGSIZE);
        smtp_reply_parser_done(&p);

        /* a line of exactly the limit is fine */
        struct buf b = BUF_INIT;
        buf_puts(&b, "250 ");
        for (int i = 0; i < SMTP_REPLY_LINE_MAX - 4; i++)
                buf_putc(&b, 'y');
        buf_puts(&b, "\r\n");
        smtp_reply_parser_init(&p);
        CHECK_INT(smtp_reply_parser_feed(&p, b.data, b.len, &used, &r), 1);
        CHECK_INT(strlen(r.text), SMTP_REPLY_LINE_MAX - 4);
        smtp_reply_done(&r);
        smtp_reply_parser_done(&p);
        buf_done(&b);
}

TEST(pipelined_replies)
{
        const char *in = "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data\r\n";
        struct smtp_reply_parser p;
        struct smtp_reply r;
        size_t off = 0, used;
        int codes[3], n = 0;
        smtp_reply_parser_init(&p);
        while (off < strlen(in) && n < 3) {
                int ret = smtp_reply_parser_feed(&p, in + off, strlen(in) - off, &used, &r);
                off += used;
                if (ret == 1) {
                        codes[n++] = r.code;
                        smtp_reply_done(&r);
                } else
                        break;
        }
        smtp_reply_parser_done(&p);
        CHECK_INT(n, 3);
        CHECK_INT(codes[0], 250);
        CHECK_INT(codes[2], 354);
}

TEST(to_string)
{
        struct smtp_reply r = {.code = 250, .text = xstrdup("2.0.0 Ok: queued as ABC")};
        char *s = smtp_reply_to_string(&r);
        CHECK_STR(s, "250 2.0.0 Ok: queued as ABC");
        free(s);
        free(r.text);
        r.text = xstrdup("5.1.1 first\n5.1.1 second");
        r.code = 550;
        s = smtp_reply_to_string(&r);
        CHECK_STR(s, "550 5.1.1 first 5.1.1 second");
        free(s);
        free(r.text);
}

TEST(ehlo_caps)
{
        const char *in =
                "250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n"
                "250-STARTTLS\r\n250-AUTH PLAIN login PLAIN\r\n250-AUTH=LOGIN CRAM-MD5\r\n"
                "250-ENHANCEDSTATUSCODES\r\n250-8bitmime\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n";
        struct smtp_reply r;
        size_t used;
        CHECK_INT(parse_all(in, 5, &r, &used), 1);
        struct smtp_ehlo_caps c;
        CHECK_INT(smtp_ehlo_parse(&r, &c), 0);
        CHECK(c.pipelining);
        CHECK(c.size);
        CHECK_INT(c.size_limit, 10240000);
        CHECK(c.starttls);
        CHECK(c.auth);
        CHECK_INT(c.n_auth_mechs, 3);
        CHECK_STR(c.auth_mechs[0], "PLAIN");
        CHECK_STR(c.auth_mechs[1], "LOGIN");
        CHECK_STR(c.auth_mechs[2], "CRAM-MD5");
        CHECK(c.auth_mechs[3] == NULL);
        CHECK(smtp_ehlo_has_auth(&c, "cram-md5"));
        CHECK(!smtp_ehlo_has_auth(&c, "XOAUTH2"));
        CHECK(c.enhancedstatuscodes);
        CHECK(c.eightbitmime);
        CHECK(c.dsn);
        CHECK(c.smtputf8);
        CHECK(c.chunking);
        smtp_ehlo_caps_done(&c);
        smtp_reply_done(&r);

        /* the greeting line is never a capability; SIZE without a number means no fixed limit */
        in = "250-PIPELINING\r\n250 SIZE\r\n";
        CHECK_INT(parse_all(in, 0, &r, &used), 1);
        CHECK_INT(smtp_ehlo_parse(&r, &c), 0);
        CHECK(!c.pipelining);
        CHECK(c.size);
        CHECK_INT(c.size_limit, 0);
        CHECK(!c.auth);
        CHECK(c.auth_mechs == NULL);
        smtp_ehlo_caps_done(&c);
        smtp_reply_done(&r);

        in = "502 5.5.2 Error: command not recognized\r\n";
        CHECK_INT(parse_all(in, 0, &r, &used), 1);
        CHECK_INT(smtp_ehlo_parse(&r, &c), -EINVAL);
        smtp_ehlo_caps_done(&c);
        smtp_reply_done(&r);
}
