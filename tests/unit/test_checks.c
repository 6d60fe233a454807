/* test_checks.c: content inspection: the action parser, the pattern rule parser, and the streaming
 * header/MIME/body checks over real regexp: tables. */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>

#include "alloc.h"
#include "checks.h"
#include "checks_action.h"
#include "dict_pattern.h"

static int parse(const char *v, bool header, struct checks_action *a)
{
        const char *why = NULL;
        return checks_action_parse(v, header, a, &why);
}

TEST(action_words_and_text)
{
        struct checks_action a;
        CHECK_INT(parse("REJECT go away  ", true, &a), 0);
        CHECK_INT(a.kind, CHECKS_REJECT);
        CHECK_INT(a.text_len, 7);
        CHECK(strncmp(a.text, "go away", 7) == 0);
        CHECK_INT(parse("reject", true, &a), 0);
        CHECK_INT(a.text_len, 0);
        CHECK_INT(parse("  Discard\tspam", false, &a), 0);
        CHECK_INT(a.kind, CHECKS_DISCARD);
        CHECK_INT(parse("PREPEND X-Tag: yes", true, &a), 0);
        CHECK_INT(a.kind, CHECKS_PREPEND);
        CHECK_INT(parse("PREPEND any text", false, &a), 0); /* body rules take any line */
        CHECK_INT(parse("REPLACE Subject: new", true, &a), 0);
        CHECK_INT(parse("REDIRECT user@example.com", true, &a), 0);
        CHECK_INT(a.kind, CHECKS_REDIRECT);
        CHECK_INT(parse("BCC archive@example.com", false, &a), 0);
        CHECK_INT(parse("FILTER smtp:[127.0.0.1]:10025", true, &a), 0);
        CHECK_INT(a.kind, CHECKS_FILTER);
        const char *ok[] = {"DUNNO", "OK", "HOLD", "HOLD why", "WARN", "INFO note", "IGNORE"};
        for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
                CHECK_INT(parse(ok[i], true, &a), 0);
        CHECK_STR(checks_action_log_name(CHECKS_WARN), "warning");
        CHECK_STR(checks_action_log_name(CHECKS_REJECT), "reject");
}

TEST(action_errors)
{
        struct checks_action a;
        const char *why = NULL;
        CHECK_INT(checks_action_parse("FROBNICATE x", true, &a, &why), -EINVAL);
        CHECK(strstr(why, "unknown action") != NULL);
        CHECK_INT(parse("REJECTX", true, &a), -EINVAL);
        CHECK_INT(parse("", true, &a), -EINVAL);
        CHECK_INT(parse("REDIRECT", true, &a), -EINVAL);
        CHECK_INT(parse("BCC a@b c@d", true, &a), -EINVAL);
        CHECK_INT(parse("FILTER nocolon", true, &a), -EINVAL);
        CHECK_INT(parse("FILTER :dest", true, &a), -EINVAL);
        CHECK_INT(parse("PREPEND", true, &a), -EINVAL);
        CHECK_INT(checks_action_parse("PREPEND not a header", true, &a, &why), -EINVAL);
        CHECK(strstr(why, "Name: value") != NULL);
        CHECK_INT(parse("REPLACE Subject: a\rb", true, &a), -EINVAL);
        char *big = xmalloc(CHECKS_ACTION_TEXT_MAX + 20);
        memcpy(big, "WARN ", 5);
        memset(big + 5, 'x', CHECKS_ACTION_TEXT_MAX + 1);
        big[CHECKS_ACTION_TEXT_MAX + 6] = '\0';
        CHECK_INT(parse(big, true, &a), -EINVAL);
        free(big);
}

TEST(pattern_rule_syntax)
{
        struct dict_pattern_rule r;
        char *why = NULL;
        CHECK_INT(dict_pattern_parse("/a\\/b(c)/im REJECT $1 $$", "imx", &r, &why), 0);
        CHECK_STR(r.pattern, "a/b(c)");
        CHECK_STR(r.flags, "im");
        CHECK_STR(r.result, "REJECT $1 $$");
        CHECK_INT(r.max_ref, 1);
        dict_pattern_rule_done(&r);
        CHECK_INT(dict_pattern_parse("if !#x#", "i", &r, &why), 0);
        CHECK_INT(r.kind, DICT_PATTERN_IF);
        CHECK(r.negate);
        CHECK_STR(r.pattern, "x");
        dict_pattern_rule_done(&r);
        CHECK_INT(dict_pattern_parse("endif", "i", &r, &why), 0);
        CHECK_INT(r.kind, DICT_PATTERN_ENDIF);
        dict_pattern_rule_done(&r);
        const char *bad[] = {"/x/",      "/x/q y",    "x/ y",    "/unclosed y",
                             "if /x/ y", "!/(x)/ $1", "/x/ ${1", "/x/ $100"};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                CHECK_INT(dict_pattern_parse(bad[i], "imx", &r, &why), -EINVAL);
                CHECK(why != NULL);
                free(why);
                why = NULL;
        }
}

/* ---- the streaming checks over real regexp: tables ---- */

struct run {
        struct checks_conf conf;
        struct checks_msg m;
        struct buf out;
};

static void run_init(struct run *t, const char *hc, const char *mime, const char *nested, const char *body,
                     uint64_t limit, bool mime_on)
{
        char *specs[4] = {NULL, NULL, NULL, NULL};
        const char *texts[4] = {hc, mime, nested, body};
        static const char *const names[4] = {"hc", "mime", "nested", "body"};
        for (size_t i = 0; i < 4; i++)
                specs[i] =
                        texts[i] ? xasprintf("regexp:%s", unit_write_file(names[i], texts[i])) : xstrdup("");
        const char *values[4] = {specs[0], specs[1], specs[2], specs[3]};
        *t = (struct run){.out = BUF_INIT};
        checks_conf_init(&t->conf, values, limit, mime_on, 1000);
        for (size_t i = 0; i < 4; i++)
                free(specs[i]);
        checks_msg_init(&t->m, &t->conf, "QID", xstrdup("from local; from=<a@b> to=<c@d>"));
}

static void run_done(struct run *t)
{
        checks_msg_done(&t->m);
        for (size_t i = 0; i < 4; i++)
                table_param_done(&t->conf.tables[i]);
        buf_done(&t->out);
}

/* Headers one by one, then the body in pieces of n bytes (a partial line waits for the rest). */
static void run_message(struct run *t, const char *const *headers, const char *body, size_t n)
{
        for (size_t i = 0; headers[i]; i++)
                if (checks_header(&t->m, headers[i], strlen(headers[i]), &t->out)) {
                        buf_puts(&t->out, headers[i]);
                        buf_putc(&t->out, '\n');
                }
        buf_putc(&t->out, '\n');
        checks_headers_done(&t->m);
        struct buf raw = BUF_INIT;
        for (size_t off = 0, len = strlen(body); off < len; off += n) {
                buf_append(&raw, body + off, len - off < n ? len - off : n);
                checks_body(&t->m, &raw, &t->out, false);
        }
        checks_body(&t->m, &raw, &t->out, true);
        buf_done(&raw);
}

static const char *const mime_headers[] = {"Subject: hi", "X-Drop: me",
                                           "Content-Type: multipart/mixed;\n\tboundary=\"b1\"", NULL};
static const char mime_body[] = "preamble\n"
                                "--b1\n"
                                "Content-Type: text/plain\n"
                                "X-Part: secret\n"
                                "\n"
                                "fine line\n"
                                "bad line\n"
                                "--b1\n"
                                "Content-Type: message/rfc822\n"
                                "\n"
                                "Subject: nested\n"
                                " continued\n"
                                "\n"
                                "bad line\n"
                                "--b1--\n"
                                "bad line in epilogue";

TEST(streaming_mime_header_nested_body)
{
        struct run t;
        run_init(&t, "/^X-Drop:/ IGNORE\n/^Subject: hi$/ REPLACE Subject: HI\n", "/^X-Part:/ IGNORE\n",
                 "/^Subject: nested[[:space:]]+continued$/ PREPEND X-Was: nested\n",
                 "/^bad line/ REPLACE good line\n", 51200, true);
        for (size_t n = 1; n <= 64; n = n * 3 + 1) {
                checks_msg_done(&t.m);
                checks_msg_init(&t.m, &t.conf, "QID", xstrdup("from local"));
                buf_truncate(&t.out, 0);
                run_message(&t, mime_headers, mime_body, n);
                CHECK_STR(buf_str(&t.out), "Subject: HI\n"
                                           "Content-Type: multipart/mixed;\n\tboundary=\"b1\"\n"
                                           "\n"
                                           "preamble\n"
                                           "--b1\n"
                                           "Content-Type: text/plain\n"
                                           "\n"
                                           "fine line\n"
                                           "good line\n"
                                           "--b1\n"
                                           "Content-Type: message/rfc822\n"
                                           "\n"
                                           "X-Was: nested\n"
                                           "Subject: nested\n"
                                           " continued\n"
                                           "\n"
                                           "good line\n"
                                           "--b1--\n"
                                           "good line\n");
                CHECK(!checks_stopped(&t.m));
        }
        run_done(&t);
}

TEST(streaming_without_mime_and_size_limit_per_segment)
{
        struct run t;
        /* MIME off: part headers are body lines, the MIME table never sees them. */
        run_init(&t, NULL, "/^X-Part:/ IGNORE\n", NULL, "/^X-Part:/ REPLACE body saw it\n", 51200, false);
        run_message(&t, mime_headers, mime_body, 7);
        CHECK(strstr(buf_str(&t.out), "body saw it\n") != NULL);
        run_done(&t);

        /* 20 bytes per segment: the first part's second line is past it, the next part starts again. */
        run_init(&t, NULL, NULL, NULL, "/^bad line/ REJECT bad\n", 20, true);
        static const char body[] = "--b1\n\n0123456789012345678901\nbad line\n--b1\n\nbad line\n--b1--\n";
        run_message(&t, mime_headers, body, 5);
        CHECK_INT(t.m.res.status, 5);
        CHECK_STR(t.m.res.dsn, "5.7.1");
        CHECK_STR(t.m.res.reason, "bad");
        /* Only the second part's line counted: after REJECT nothing else is looked at. */
        CHECK(strstr(buf_str(&t.out), "0123456789012345678901\nbad line\n--b1\n\nbad line\n") != NULL);
        run_done(&t);
}

TEST(streaming_envelope_actions)
{
        struct run t;
        run_init(&t, "/^Subject: r/ REDIRECT x@example.com\n/^Subject: h/ HOLD\n", NULL, NULL,
                 "/^bcc/ BCC y@example.com\n/^filter/ FILTER smtp:[::1]:25\n/^late/ BCC z@example.com\n",
                 51200, true);
        const char *const headers[] = {"Subject: r", "Subject: h", NULL};
        run_message(&t, headers, "bcc\nfilter\n", 4);
        CHECK_STR(t.m.res.redirect, "x@example.com");
        CHECK(t.m.res.hold);
        CHECK_INT(t.m.res.bcc.n, 1);
        CHECK_STR(t.m.res.bcc.v[0], "y@example.com");
        CHECK_STR(t.m.res.filter, "smtp:[::1]:25");
        /* Once the envelope is written, envelope actions are only logged. */
        t.m.res.envelope_written = true;
        struct buf raw = BUF_INIT;
        buf_puts(&raw, "late\n");
        checks_body(&t.m, &raw, &t.out, true);
        buf_done(&raw);
        CHECK_INT(t.m.res.bcc.n, 1);
        run_done(&t);
}
