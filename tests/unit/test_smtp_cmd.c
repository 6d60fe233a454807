/* test_smtp_cmd.c: SMTP command lines to verbs, paths, ESMTP parameters and Postfix's error replies. */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>

#include "alloc.h"
#include "buf.h"
#include "smtp_cmd.h"

struct cmd_case {
        const char *line;
        enum smtp_verb verb;
        const char *reply; /* NULL: parses */
        const char *addr;  /* MAIL/RCPT internal form */
};

static const struct cmd_case cases[] = {
        {"EHLO client.example", SMTP_VERB_EHLO, NULL, NULL},
        {"ehlo client.example", SMTP_VERB_EHLO, NULL, NULL},
        {"EHLO", SMTP_VERB_EHLO, "501 Syntax: EHLO hostname", NULL},
        {"HELO   ", SMTP_VERB_HELO, "501 Syntax: HELO hostname", NULL},
        {"HeLo client", SMTP_VERB_HELO, NULL, NULL},
        {"MAIL FROM:<a@b.example>", SMTP_VERB_MAIL, NULL, "a@b.example"},
        {"mail from:<a@b.example>", SMTP_VERB_MAIL, NULL, "a@b.example"},
        {"MAIL FROM: <a@b.example>", SMTP_VERB_MAIL, NULL, "a@b.example"},
        {"MAIL FROM:<>", SMTP_VERB_MAIL, NULL, ""},
        {"MAIL FROM:<> ", SMTP_VERB_MAIL, NULL, ""},
        {"MAIL FROM:a@b.example", SMTP_VERB_MAIL, NULL, "a@b.example"},
        {"MAIL FROM:<@r.example:a@b.example>", SMTP_VERB_MAIL, NULL, "a@b.example"},
        {"MAIL FROM:<\"x y\"@b.example>", SMTP_VERB_MAIL, NULL, "x y@b.example"},
        {"MAIL", SMTP_VERB_MAIL, "501 5.5.4 Syntax: MAIL FROM:<address>", NULL},
        {"MAIL TO:<a@b.example>", SMTP_VERB_MAIL, "501 5.5.4 Syntax: MAIL FROM:<address>", NULL},
        {"MAIL FROM:", SMTP_VERB_MAIL, "501 5.5.4 Syntax: MAIL FROM:<address>", NULL},
        {"MAIL FROM <a@b.example>", SMTP_VERB_MAIL, "501 5.5.4 Syntax: MAIL FROM:<address>", NULL},
        {"MAIL FROM:<a@b.example", SMTP_VERB_MAIL, "501 5.1.7 Bad sender address syntax", NULL},
        {"MAIL FROM:<a@b.example>x", SMTP_VERB_MAIL, "501 5.1.7 Bad sender address syntax", NULL},
        {"MAIL FROM:<a..b@b.example>", SMTP_VERB_MAIL, "501 5.1.7 Bad sender address syntax", NULL},
        /* A sender without a domain is taken as Postfix does; smtpd qualifies it with $myorigin. */
        {"MAIL FROM:<postmaster>", SMTP_VERB_MAIL, NULL, "postmaster"},
        {"MAIL FROM:<user>", SMTP_VERB_MAIL, NULL, "user"},
        {"MAIL FROM:user SIZE=10", SMTP_VERB_MAIL, NULL, "user"},
        {"MAIL FROM:<\"a b\">", SMTP_VERB_MAIL, NULL, "a b"},
        {"MAIL FROM:<user", SMTP_VERB_MAIL, "501 5.1.7 Bad sender address syntax", NULL},
        {"MAIL FROM:<user>x", SMTP_VERB_MAIL, "501 5.1.7 Bad sender address syntax", NULL},
        {"MAIL FROM:<user@>", SMTP_VERB_MAIL, "501 5.1.7 Bad sender address syntax", NULL},
        {"RCPT TO:<user>", SMTP_VERB_RCPT, "501 5.1.3 Bad recipient address syntax", NULL},
        {"RCPT TO:<c@d.example>", SMTP_VERB_RCPT, NULL, "c@d.example"},
        {"RCPT TO: <c@d.example>", SMTP_VERB_RCPT, NULL, "c@d.example"},
        {"RCPT TO:<postmaster>", SMTP_VERB_RCPT, NULL, "postmaster"},
        {"RCPT TO:<>", SMTP_VERB_RCPT, "501 5.1.3 Bad recipient address syntax", NULL},
        {"RCPT TO:<c@d.example", SMTP_VERB_RCPT, "501 5.1.3 Bad recipient address syntax", NULL},
        {"RCPT", SMTP_VERB_RCPT, "501 5.5.4 Syntax: RCPT TO:<address>", NULL},
        {"RCPT FROM:<c@d.example>", SMTP_VERB_RCPT, "501 5.5.4 Syntax: RCPT TO:<address>", NULL},
        /* parameters */
        {"MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME", SMTP_VERB_MAIL, NULL, "a@b.example"},
        {"MAIL FROM:<a@b.example> FOO", SMTP_VERB_MAIL, "555 5.5.4 Unsupported option: FOO", NULL},
        {"MAIL FROM:<a@b.example> FOO=bar", SMTP_VERB_MAIL, "555 5.5.4 Unsupported option: FOO=bar", NULL},
        {"MAIL FROM:<a@b.example> NOTIFY=NEVER", SMTP_VERB_MAIL,
         "555 5.5.4 Unsupported option: NOTIFY=NEVER", NULL},
        {"RCPT TO:<c@d.example> RET=FULL", SMTP_VERB_RCPT, "555 5.5.4 Unsupported option: RET=FULL", NULL},
        {"RCPT TO:<c@d.example> SIZE=10", SMTP_VERB_RCPT, "555 5.5.4 Unsupported option: SIZE=10", NULL},
        {"MAIL FROM:<a@b.example> SIZE=", SMTP_VERB_MAIL, "555 5.5.4 Unsupported option: SIZE=", NULL},
        {"MAIL FROM:<a@b.example> SIZE=12x", SMTP_VERB_MAIL, "501 5.5.4 Bad message size syntax", NULL},
        {"MAIL FROM:<a@b.example> SIZE", SMTP_VERB_MAIL, "501 5.5.4 Bad message size syntax", NULL},
        {"MAIL FROM:<a@b.example> SIZE=99999999999999999999999", SMTP_VERB_MAIL,
         "501 5.5.4 Bad message size syntax", NULL},
        {"MAIL FROM:<a@b.example> SIZE=18446744073709551616", SMTP_VERB_MAIL,
         "501 5.5.4 Bad message size syntax", NULL},
        {"MAIL FROM:<a@b.example> SIZE=1 SIZE=2", SMTP_VERB_MAIL,
         "501 5.5.4 Error: duplicate SIZE parameter", NULL},
        {"MAIL FROM:<a@b.example> BODY=BINARYMIME", SMTP_VERB_MAIL, "501 5.5.4 Bad BODY keyword syntax",
         NULL},
        {"MAIL FROM:<a@b.example> RET=ALL", SMTP_VERB_MAIL, "501 5.5.4 Bad RET parameter syntax", NULL},
        {"MAIL FROM:<a@b.example> ENVID=a+2", SMTP_VERB_MAIL, "501 5.5.4 Bad ENVID parameter syntax", NULL},
        {"MAIL FROM:<a@b.example> ENVID=a+00b", SMTP_VERB_MAIL, "501 5.5.4 Bad ENVID parameter syntax",
         NULL},
        {"MAIL FROM:<a@b.example> SMTPUTF8=yes", SMTP_VERB_MAIL, "501 5.5.4 Bad SMTPUTF8 parameter syntax",
         NULL},
        {"RCPT TO:<c@d.example> NOTIFY=NEVER,SUCCESS", SMTP_VERB_RCPT,
         "501 5.5.4 Error: Bad NOTIFY parameter syntax", NULL},
        {"RCPT TO:<c@d.example> NOTIFY=DELAY,DELAY", SMTP_VERB_RCPT,
         "501 5.5.4 Error: Bad NOTIFY parameter syntax", NULL},
        {"RCPT TO:<c@d.example> NOTIFY=SOMETIMES", SMTP_VERB_RCPT,
         "501 5.5.4 Error: Bad NOTIFY parameter syntax", NULL},
        {"RCPT TO:<c@d.example> ORCPT=x400;foo", SMTP_VERB_RCPT,
         "501 5.5.4 Error: Bad ORCPT parameter syntax", NULL},
        {"RCPT TO:<c@d.example> ORCPT=rfc822", SMTP_VERB_RCPT, "501 5.5.4 Error: Bad ORCPT parameter syntax",
         NULL},
        {"RCPT TO:<c@d.example> ORCPT=rfc822;", SMTP_VERB_RCPT,
         "501 5.5.4 Error: Bad ORCPT parameter syntax", NULL},
        {"MAIL FROM:<a@b.example> AUTH=", SMTP_VERB_MAIL, "555 5.5.4 Unsupported option: AUTH=", NULL},
        {"MAIL FROM:<a@b.example> =x", SMTP_VERB_MAIL, "555 5.5.4 Unsupported option: =x", NULL},
        {"MAIL FROM:<a@b.example> -X", SMTP_VERB_MAIL, "555 5.5.4 Unsupported option: -X", NULL},
        /* SMTPUTF8 */
        {"MAIL FROM:<j\xc3\xb6rg@b.example>", SMTP_VERB_MAIL,
         "553 5.6.7 Must declare SMTPUTF8 to send unicode address", NULL},
        {"MAIL FROM:<j\xc3\xb6rg@b.example> SMTPUTF8", SMTP_VERB_MAIL, NULL, "j\xc3\xb6rg@b.example"},
        {"RCPT TO:<j\xc3\xb6rg@b.example>", SMTP_VERB_RCPT,
         "553 5.6.7 Must declare SMTPUTF8 to send unicode address", NULL},
        {"MAIL FROM:<j\xc3rg@b.example> SMTPUTF8", SMTP_VERB_UNKNOWN, "500 5.5.2 Error: bad UTF-8 syntax",
         NULL},
        /* the other verbs */
        {"DATA", SMTP_VERB_DATA, NULL, NULL},
        {"DATA now", SMTP_VERB_DATA, "501 5.5.4 Syntax: DATA", NULL},
        {"RSET", SMTP_VERB_RSET, NULL, NULL},
        {"RSET x", SMTP_VERB_RSET, "501 5.5.4 Syntax: RSET", NULL},
        {"NOOP", SMTP_VERB_NOOP, NULL, NULL},
        {"NOOP anything at all", SMTP_VERB_NOOP, NULL, NULL},
        {"QUIT", SMTP_VERB_QUIT, NULL, NULL},
        {"quit ", SMTP_VERB_QUIT, NULL, NULL},
        {"QUIT now", SMTP_VERB_QUIT, "501 5.5.4 Syntax: QUIT", NULL},
        {"VRFY", SMTP_VERB_VRFY, "501 5.5.4 Syntax: VRFY address", NULL},
        {"VRFY user", SMTP_VERB_VRFY, NULL, NULL},
        {"STARTTLS", SMTP_VERB_STARTTLS, NULL, NULL},
        {"STARTTLS x", SMTP_VERB_STARTTLS, "501 5.5.4 Syntax: STARTTLS", NULL},
        {"AUTH PLAIN AGFAAGI=", SMTP_VERB_AUTH, NULL, NULL},
        {"AUTH", SMTP_VERB_AUTH, "501 5.5.4 Syntax: AUTH mechanism", NULL},
        {"BDAT 100 LAST", SMTP_VERB_BDAT, "502 5.5.2 Error: command not implemented", NULL},
        {"ETRN example.com", SMTP_VERB_ETRN, "502 5.5.2 Error: command not implemented", NULL},
        {"EXPN list", SMTP_VERB_UNKNOWN, "500 5.5.2 Error: command not recognized", NULL},
        {"GET / HTTP/1.1", SMTP_VERB_UNKNOWN, "500 5.5.2 Error: command not recognized", NULL},
        {"MAILFROM:<a@b.example>", SMTP_VERB_UNKNOWN, "500 5.5.2 Error: command not recognized", NULL},
        {"", SMTP_VERB_UNKNOWN, "500 5.5.2 Error: bad syntax", NULL},
        {"   ", SMTP_VERB_UNKNOWN, "500 5.5.2 Error: bad syntax", NULL},
        {"NOOP\rRSET", SMTP_VERB_UNKNOWN, "500 5.5.2 Error: bad syntax", NULL},
        {"NOOP\nRSET", SMTP_VERB_UNKNOWN, "500 5.5.2 Error: bad syntax", NULL},
        {"NOOP \xff", SMTP_VERB_UNKNOWN, "500 5.5.2 Error: bad UTF-8 syntax", NULL},
};

TEST(command_table)
{
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const struct cmd_case *c = &cases[i];
                struct smtp_cmd cmd;
                int r = smtp_cmd_parse(c->line, strlen(c->line), NULL, &cmd);
                if (cmd.verb != c->verb)
                        unit_fail(__FILE__, __LINE__, "case %zu \"%s\": verb %d, expected %d", i, c->line,
                                  cmd.verb, c->verb);
                if (c->reply) {
                        if (r != -EINVAL || !cmd.reply || strcmp(cmd.reply, c->reply) != 0)
                                unit_fail(__FILE__, __LINE__,
                                          "case %zu \"%s\": ret %d reply \"%s\", expected \"%s\"", i,
                                          c->line, r, cmd.reply ? cmd.reply : "(null)", c->reply);
                } else {
                        if (r != 0)
                                unit_fail(__FILE__, __LINE__, "case %zu \"%s\": ret %d reply \"%s\"", i,
                                          c->line, r, cmd.reply ? cmd.reply : "(null)");
                        else if (c->addr && !streq_ptr(cmd.addr.addr, c->addr))
                                unit_fail(__FILE__, __LINE__,
                                          "case %zu \"%s\": addr \"%s\", expected \"%s\"", i, c->line,
                                          cmd.addr.addr ? cmd.addr.addr : "(null)", c->addr);
                }
                smtp_cmd_done(&cmd);
        }
}

TEST(nul_byte_rejected)
{
        struct smtp_cmd cmd;
        CHECK_INT(smtp_cmd_parse("MAIL FROM:<a@b.example>\0x", 25, NULL, &cmd), -EINVAL);
        CHECK_STR(cmd.reply, "500 5.5.2 Error: bad syntax");
        smtp_cmd_done(&cmd);
        CHECK_INT(smtp_cmd_parse("\0", 1, NULL, &cmd), -EINVAL);
        smtp_cmd_done(&cmd);
}

TEST(line_too_long)
{
        char *line = xmalloc(SMTP_CMD_LINE_MAX + 1);
        memcpy(line, "NOOP ", 5);
        memset(line + 5, 'x', SMTP_CMD_LINE_MAX - 4);
        struct smtp_cmd cmd;
        CHECK_INT(smtp_cmd_parse(line, SMTP_CMD_LINE_MAX, NULL, &cmd), 0);
        smtp_cmd_done(&cmd);
        CHECK_INT(smtp_cmd_parse(line, SMTP_CMD_LINE_MAX + 1, NULL, &cmd), -EINVAL);
        CHECK_STR(cmd.reply, "500 5.5.0 Error: line too long");
        smtp_cmd_done(&cmd);
        free(line);
}

TEST(mail_params_values)
{
        struct smtp_cmd cmd;
        const char *l =
                "MAIL FROM:<a@b.example> size=12345 body=7bit RET=HDRS ENVID=QQ+2Bx+3Dy AUTH=<> SMTPUTF8";
        CHECK_INT(smtp_cmd_parse(l, strlen(l), NULL, &cmd), 0);
        CHECK(cmd.params.size_given);
        CHECK_INT(cmd.params.size, 12345);
        CHECK_INT(cmd.params.body, SMTP_BODY_7BIT);
        CHECK_INT(cmd.params.ret, SMTP_RET_HDRS);
        CHECK_STR(cmd.params.envid, "QQ+x=y");
        CHECK_STR(cmd.params.auth, "<>");
        CHECK(cmd.params.smtputf8);
        CHECK_STR(cmd.verb_name, "MAIL");
        smtp_cmd_done(&cmd);

        l = "MAIL FROM:<a@b.example> AUTH=user+2Bx@b.example SIZE=18446744073709551615";
        CHECK_INT(smtp_cmd_parse(l, strlen(l), NULL, &cmd), 0);
        CHECK_STR(cmd.params.auth, "user+x@b.example");
        CHECK(cmd.params.size == UINT64_MAX);
        smtp_cmd_done(&cmd);

        l = "RCPT TO:<c@d.example> NOTIFY=success,FAILURE,Delay ORCPT=RFC822;c+40d.example";
        CHECK_INT(smtp_cmd_parse(l, strlen(l), NULL, &cmd), 0);
        CHECK_INT(cmd.params.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
        CHECK_STR(cmd.params.orcpt_type, "rfc822");
        CHECK_STR(cmd.params.orcpt, "c@d.example");
        smtp_cmd_done(&cmd);

        l = "RCPT TO:<c@d.example> NOTIFY=NEVER";
        CHECK_INT(smtp_cmd_parse(l, strlen(l), NULL, &cmd), 0);
        CHECK_INT(cmd.params.notify, SMTP_NOTIFY_NEVER);
        smtp_cmd_done(&cmd);
}

TEST(envid_limit_and_too_many_params)
{
        struct smtp_cmd cmd;
        char l[400];
        char id[120];
        memset(id, 'e', 101);
        id[101] = '\0';
        snprintf(l, sizeof(l), "MAIL FROM:<a@b.example> ENVID=%s", id);
        CHECK_INT(smtp_cmd_parse(l, strlen(l), NULL, &cmd), -EINVAL);
        CHECK_STR(cmd.reply, "501 5.5.4 Bad ENVID parameter syntax");
        smtp_cmd_done(&cmd);
        id[100] = '\0';
        snprintf(l, sizeof(l), "MAIL FROM:<a@b.example> ENVID=%s", id);
        CHECK_INT(smtp_cmd_parse(l, strlen(l), NULL, &cmd), 0);
        smtp_cmd_done(&cmd);

        struct buf b = BUF_INIT;
        buf_puts(&b, "MAIL FROM:<a@b.example>");
        for (int i = 0; i <= SMTP_CMD_PARAMS_MAX; i++)
                buf_puts(&b, " SIZE=1");
        CHECK_INT(smtp_cmd_parse(b.data, b.len, NULL, &cmd), -EINVAL);
        /* the duplicate is caught before the count */
        CHECK_STR(cmd.reply, "501 5.5.4 Error: duplicate SIZE parameter");
        smtp_cmd_done(&cmd);
        buf_truncate(&b, 0);
        buf_puts(&b, "RCPT TO:<a@b.example>");
        for (int i = 0; i <= SMTP_CMD_PARAMS_MAX; i++)
                buf_puts(&b, " X");
        CHECK_INT(smtp_cmd_parse(b.data, b.len, NULL, &cmd), -EINVAL);
        CHECK_STR(cmd.reply, "555 5.5.4 Unsupported option: X");
        smtp_cmd_done(&cmd);
        buf_done(&b);
}

TEST(options)
{
        struct smtp_cmd cmd;
        struct smtp_cmd_options strict = {.strict_rfc821 = true};
        const char *l = "MAIL FROM: <a@b.example>";
        CHECK_INT(smtp_cmd_parse(l, strlen(l), &strict, &cmd), -EINVAL);
        CHECK_STR(cmd.reply, "501 5.1.7 Bad sender address syntax");
        smtp_cmd_done(&cmd);
        l = "MAIL FROM:a@b.example";
        CHECK_INT(smtp_cmd_parse(l, strlen(l), &strict, &cmd), -EINVAL);
        smtp_cmd_done(&cmd);
        l = "MAIL FROM:<a@b.example>";
        CHECK_INT(smtp_cmd_parse(l, strlen(l), &strict, &cmd), 0);
        smtp_cmd_done(&cmd);
        l = "MAIL FROM:<user>"; /* strict_rfc821_envelopes wants a whole path */
        CHECK_INT(smtp_cmd_parse(l, strlen(l), &strict, &cmd), -EINVAL);
        CHECK_STR(cmd.reply, "501 5.1.7 Bad sender address syntax");
        smtp_cmd_done(&cmd);

        struct smtp_cmd_options utf8_txn = {.smtputf8_txn = true};
        l = "RCPT TO:<j\xc3\xb6rg@b\xc3\xbc"
            "cher.example>";
        CHECK_INT(smtp_cmd_parse(l, strlen(l), &utf8_txn, &cmd), 0);
        CHECK(cmd.addr.utf8);
        smtp_cmd_done(&cmd);

        struct smtp_cmd_options no_utf8 = {.smtputf8_disable = true};
        l = "MAIL FROM:<a@b.example> SMTPUTF8";
        CHECK_INT(smtp_cmd_parse(l, strlen(l), &no_utf8, &cmd), -EINVAL);
        CHECK_STR(cmd.reply, "555 5.5.4 Unsupported option: SMTPUTF8");
        smtp_cmd_done(&cmd);
}

TEST(arg_and_verb_name)
{
        struct smtp_cmd cmd;
        const char *l = "  ehlo\t  mail.example.org  ";
        CHECK_INT(smtp_cmd_parse(l, strlen(l), NULL, &cmd), 0);
        CHECK_STR(cmd.verb_name, "EHLO");
        CHECK_STR(cmd.arg, "mail.example.org");
        smtp_cmd_done(&cmd);
        l = "xyzzy plugh";
        CHECK_INT(smtp_cmd_parse(l, strlen(l), NULL, &cmd), -EINVAL);
        CHECK_STR(cmd.verb_name, "XYZZY");
        smtp_cmd_done(&cmd);
}

TEST(line_split)
{
        size_t len = 0, used = 0;
        CHECK_INT(smtp_cmd_line_split("EHLO x\r\nMAIL", 12, &len, &used), 1);
        CHECK_INT(len, 6);
        CHECK_INT(used, 8);
        CHECK_INT(smtp_cmd_line_split("MAIL", 4, &len, &used), 0);
        CHECK_INT(smtp_cmd_line_split("EHLO x\r", 7, &len, &used), 0);
        CHECK_INT(smtp_cmd_line_split("EHLO x\nQUIT\r\n", 13, &len, &used), -EBADMSG);
        CHECK_INT(used, 7);
        CHECK_INT(smtp_cmd_line_split("\n", 1, &len, &used), -EBADMSG);
        CHECK_INT(smtp_cmd_line_split("\r\n", 2, &len, &used), 1);
        CHECK_INT(len, 0);

        char *big = xmalloc(SMTP_CMD_LINE_MAX + 2);
        memset(big, 'a', SMTP_CMD_LINE_MAX + 2);
        CHECK_INT(smtp_cmd_line_split(big, SMTP_CMD_LINE_MAX + 1, &len, &used), 0);
        CHECK_INT(smtp_cmd_line_split(big, SMTP_CMD_LINE_MAX + 2, &len, &used), -E2BIG);
        big[SMTP_CMD_LINE_MAX] = '\r';
        big[SMTP_CMD_LINE_MAX + 1] = '\n';
        CHECK_INT(smtp_cmd_line_split(big, SMTP_CMD_LINE_MAX + 2, &len, &used), 1);
        CHECK_INT(len, SMTP_CMD_LINE_MAX);
        free(big);
}

TEST(xtext)
{
        char *s = NULL;
        CHECK_INT(smtp_xtext_decode("a+2Bb+3d", 8, 100, &s), 0);
        CHECK_STR(s, "a+b=");
        free(s);
        CHECK_INT(smtp_xtext_decode("a=b", 3, 100, &s), -EINVAL);
        CHECK_INT(smtp_xtext_decode("a b", 3, 100, &s), -EINVAL);
        CHECK_INT(smtp_xtext_decode("+G0", 3, 100, &s), -EINVAL);
        CHECK_INT(smtp_xtext_decode("abc", 3, 2, &s), -EINVAL);
        char *e = smtp_xtext_encode("a+b= c\xc3\xa9", 8);
        CHECK_STR(e, "a+2Bb+3D+20c+C3+A9");
        CHECK_INT(smtp_xtext_decode(e, strlen(e), 100, &s), 0);
        CHECK_STR(s, "a+b= c\xc3\xa9");
        free(s);
        free(e);
}
