/* test_submit.c: unit tests of the maildrop file rules, authorized_submit_users lists, address extraction
 * and the mailq layout. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "maildrop.h"
#include "showq.h"
#include "submit.h"
#include "unit.h"

/* ---- maildrop files ---- */

static struct qfile_rcpt rcpt(const char *a)
{
        return (struct qfile_rcpt){.address = (char *)a};
}

static void encode(struct qfile_msg *m, struct buf *out)
{
        buf_truncate(out, 0);
        if (qfile_encode_all(m, out) < 0)
                abort();
}

TEST(maildrop_parse_accepts_and_rebuilds)
{
        struct qfile_rcpt r[2] = {rcpt("a@example.test"), rcpt("b@example.test")};
        r[1].notify = QFILE_NOTIFY_SUCCESS;
        struct qfile_attr fn = {(char *)"full_name", (char *)"Jo User"};
        struct qfile_attr other = {(char *)"client_name", (char *)"spoofed.example"};
        struct qfile_msg m = {.arrival_usec = 1,
                              .sender = (char *)"jo",
                              .rcpts = r,
                              .n_rcpts = 2,
                              .client_name = (char *)"evil",
                              .extra = &fn,
                              .n_extra = 1,
                              .content = "Subject: x\n\nhi\n",
                              .content_len = 15};
        (void)other;
        struct buf b = BUF_INIT;
        encode(&m, &b);
        struct qfile_msg got = {0};
        struct maildrop_error err = {0};
        CHECK_INT(maildrop_parse(b.data, b.len, 1000, &got, &err), 0);
        CHECK_STR(got.sender, "jo");
        CHECK_INT(got.n_rcpts, 2);
        CHECK_STR(maildrop_full_name(&got), "Jo User");

        struct buf rebuilt = BUF_INIT;
        CHECK_INT(maildrop_build(&got, 42, &rebuilt), 0);
        struct qfile_msg again = {0};
        CHECK_INT(qfile_decode(rebuilt.data, rebuilt.len, &again, NULL), 0);
        CHECK_INT(again.arrival_usec, 42);
        CHECK_STR(again.origin_queue, "maildrop");
        CHECK(again.client_name == NULL); /* nothing of the submitter's but envelope, name, content */
        CHECK_INT(again.rcpts[1].notify, QFILE_NOTIFY_SUCCESS);
        CHECK_STR(maildrop_full_name(&again), "Jo User");
        CHECK_INT(again.content_len, 15);
        CHECK(memcmp(again.content, "Subject: x\n\nhi\n", 15) == 0);
        qfile_msg_done(&again);
        qfile_msg_done(&got);
        buf_done(&rebuilt);
        buf_done(&b);
}

TEST(maildrop_parse_refuses)
{
        struct qfile_rcpt r[1] = {rcpt("a@example.test")};
        struct qfile_msg m = {
                .sender = (char *)"jo", .rcpts = r, .n_rcpts = 1, .content = "12345", .content_len = 5};
        struct buf b = BUF_INIT;
        struct qfile_msg got = {0};
        struct maildrop_error err = {0};

        /* Too big for the limit. */
        encode(&m, &b);
        CHECK_INT(maildrop_parse(b.data, b.len, 4, &got, &err), -EFBIG);
        CHECK_STR(err.reason, "message file too big");
        CHECK_INT(maildrop_parse(b.data, b.len, 5, &got, &err), 0);
        qfile_msg_done(&got);

        /* Control characters in addresses would forge log lines and headers. */
        m.sender = (char *)"jo\nfake: line";
        encode(&m, &b);
        CHECK_INT(maildrop_parse(b.data, b.len, 0, &got, &err), -EBADMSG);
        CHECK_STR(err.reason, "control character in sender address");
        m.sender = (char *)"jo";
        r[0].address = (char *)"a\r@example.test";
        encode(&m, &b);
        CHECK_INT(maildrop_parse(b.data, b.len, 0, &got, &err), -EBADMSG);
        r[0].address = (char *)"a@example.test";

        /* Every recipient already done: nothing to submit. */
        r[0].state = QFILE_RCPT_DELIVERED;
        strcpy(r[0].dsn_status, "2.0.0");
        r[0].done_usec = 5;
        encode(&m, &b);
        CHECK_INT(maildrop_parse(b.data, b.len, 0, &got, &err), -EBADMSG);
        CHECK_STR(err.reason, "no pending recipient");
        r[0] = rcpt("a@example.test");

        /* A bad full name. */
        struct qfile_attr fn = {(char *)"full_name", (char *)"a\tb"};
        m.extra = &fn;
        m.n_extra = 1;
        encode(&m, &b);
        CHECK_INT(maildrop_parse(b.data, b.len, 0, &got, &err), -EBADMSG);
        CHECK_STR(err.reason, "bad full name");
        m.extra = NULL;
        m.n_extra = 0;

        /* Truncated, garbage, empty. */
        encode(&m, &b);
        CHECK_INT(maildrop_parse(b.data, b.len - 1, 0, &got, &err), -EBADMSG);
        CHECK(err.reason != NULL);
        CHECK_INT(maildrop_parse("From: x\n\nbody\n", 14, 0, &got, &err), -EBADMSG);
        CHECK_INT(maildrop_parse("", 0, 0, &got, &err), -EBADMSG);
        buf_done(&b);
}

/* ---- authorized_submit_users ---- */

static int fake_lookup(const char *spec, const char *name, void *userdata)
{
        if (strcmp(spec, "static:anyone") == 0)
                return 1;
        if (strcmp(spec, "hash:/broken") == 0)
                return -EIO;
        if (strcmp(spec, "inline:{alice=1}") == 0)
                return strcmp(name, "alice") == 0;
        return 0;
}

static int match(const char *list, const char *user)
{
        struct strv l = STRV_INIT;
        strv_split(&l, list, ", ");
        const char *failed = NULL;
        int r = submit_list_match(l.v, l.n, user, fake_lookup, NULL, &failed);
        strv_done(&l);
        return r;
}

TEST(submit_list_semantics)
{
        CHECK_INT(match("static:anyone", "root"), 1);
        CHECK_INT(match("!root, static:anyone", "root"), 0);
        CHECK_INT(match("!root, static:anyone", "jo"), 1);
        CHECK_INT(match("jo, bob", "root"), 0);              /* no match denies */
        CHECK_INT(match("jo, bob", "BOB"), 1);               /* names compare without case */
        CHECK_INT(match("", "jo"), 0);                       /* empty list: nobody */
        CHECK_INT(match("static:anyone, !root", "root"), 1); /* first match decides */
        CHECK_INT(match("!!root", "root"), 1);
        CHECK_INT(match("inline:{alice=1}", "alice"), 1);
        CHECK_INT(match("inline:{alice=1}", "bob"), 0);
        CHECK_INT(match("!inline:{alice=1}, static:anyone", "alice"), 0);
        CHECK_INT(match("jo, hash:/broken", "root"), -EIO);
        CHECK_INT(match("root, hash:/broken", "root"), 1); /* decided before the broken table */
}

TEST(submit_access_check_real_tables)
{
        char *err = NULL;
        CHECK_INT(submit_access_check("!root, static:anyone", "root", &err), 0);
        CHECK(err == NULL);
        CHECK_INT(submit_access_check("!root, static:anyone", "jo", &err), 1);
        CHECK_INT(submit_access_check("inline:{ jo=ok }", "jo", &err), 1);
        const char *f = unit_write_file("users", "# comment\nalice bob\n");
        char list[512];
        snprintf(list, sizeof list, "!%s, static:anyone", f);
        CHECK_INT(submit_access_check(list, "bob", &err), 0);
        CHECK_INT(submit_access_check(list, "carol", &err), 1);
        CHECK_INT(submit_access_check("nosuchtype:x", "jo", &err), -EPROTONOSUPPORT);
        CHECK(err && strstr(err, "unsupported dictionary type"));
        free(err);
}

TEST(config_dir_from_arg)
{
        char *d = submit_config_dir_from_arg("/etc/postfix-a/main.cf");
        CHECK_STR(d, "/etc/postfix-a");
        free(d);
        d = submit_config_dir_from_arg("/etc/postfix-a//");
        CHECK_STR(d, "/etc/postfix-a");
        free(d);
        d = submit_config_dir_from_arg("/");
        CHECK_STR(d, "/");
        free(d);
}

TEST(config_dir_allowed)
{
        const char *dir = unit_tmpdir();
        unit_write_file("main.cf",
                        "alternate_config_directories = /etc/postfix-b\n"
                        "multi_instance_directories = /etc/postfix-c, $alternate_config_directories\n");
        setenv("POSTD_DEFAULT_CONFIG_DIR", dir, 1);
        CHECK_INT(submit_config_dir_allowed(dir), 1);
        CHECK_INT(submit_config_dir_allowed("/etc/postfix-b"), 1);
        CHECK_INT(submit_config_dir_allowed("/etc/postfix-c/"), 1);
        CHECK_INT(submit_config_dir_allowed("/etc/postfix-d"), 0);
        CHECK_INT(submit_config_dir_allowed("/etc/postfix"), 0);
        setenv("POSTD_DEFAULT_CONFIG_DIR", "/nonexistent-postd", 1);
        CHECK(submit_config_dir_allowed("/etc/postfix-b") < 0);
        unsetenv("POSTD_DEFAULT_CONFIG_DIR");
}

/* ---- addresses ---- */

static char *joined(const char *text)
{
        struct strv out = STRV_INIT;
        submit_extract_addresses(text, strlen(text), &out);
        struct buf b = BUF_INIT;
        for (size_t i = 0; i < out.n; i++) {
                buf_puts(&b, out.v[i]);
                buf_putc(&b, '|');
        }
        strv_done(&out);
        return buf_steal(&b);
}

#define CHECK_ADDRS(text, want)                   \
        do {                                      \
                char *_j = joined(text);          \
                bool _ok = strcmp(_j, want) == 0; \
                if (!_ok)                         \
                        CHECK_STR(_j, want);      \
                free(_j);                         \
        } while (0)

TEST(extract_addresses)
{
        CHECK_ADDRS("a@x", "a@x|");
        CHECK_ADDRS(" A <a@x>, b@y (Bee), \"Last, First\" <c@z>", "a@x|b@y|c@z|");
        CHECK_ADDRS("team: d@x, e@y;, f@z", "d@x|e@y|f@z|");
        CHECK_ADDRS("<@r1,@r2:g@x>", "g@x|");
        CHECK_ADDRS("(only (nested) comment)", "");
        CHECK_ADDRS(",,,", "");
        CHECK_ADDRS("\"unterminated <a@x>", "\"unterminated <a@x>|");
}

TEST(extract_header_rcpts)
{
        const char *msg =
                "From: me\nTO: a@x,\n b@y\nSubject: s\nBcc: secret@z\n\t, more@z\nCc: c@x\n\nTo: body@x\n";
        struct strv r = STRV_INIT;
        struct buf out = BUF_INIT;
        submit_extract_header_rcpts(msg, strlen(msg), &r, &out);
        CHECK_INT(r.n, 5);
        CHECK_STR(r.v[0], "a@x");
        CHECK_STR(r.v[1], "b@y");
        CHECK_STR(r.v[2], "secret@z");
        CHECK_STR(r.v[3], "more@z");
        CHECK_STR(r.v[4], "c@x");
        CHECK_STR(buf_str(&out), "From: me\nTO: a@x,\n b@y\nSubject: s\nCc: c@x\n\nTo: body@x\n");
        strv_done(&r);
        buf_done(&out);

        /* Resent- headers take over; a message without headers has no recipients. */
        msg = "To: old@x\nResent-To: new@x\nResent-Bcc: rb@x\n\nbody\n";
        submit_extract_header_rcpts(msg, strlen(msg), &r, &out);
        CHECK_INT(r.n, 2);
        CHECK_STR(r.v[0], "new@x");
        CHECK_STR(r.v[1], "rb@x");
        CHECK_STR(buf_str(&out), "To: old@x\nResent-To: new@x\n\nbody\n");
        strv_done(&r);
        buf_done(&out);
        msg = "just a body line\nTo: x@y\n";
        submit_extract_header_rcpts(msg, strlen(msg), &r, &out);
        CHECK_INT(r.n, 0);
        CHECK_STR(buf_str(&out), msg);
        buf_done(&out);
}

/* ---- mailq layout ---- */

TEST(showq_layout)
{
        setenv("TZ", "UTC", 1);
        struct showq_rcpt r1[] = {{"r1@example.test", NULL}, {"r2@example.test", NULL}};
        struct showq_rcpt r2[] = {{"x@example.test", "connect to mx: timed out"},
                                  {"y@example.test", "connect to mx: timed out"},
                                  {"z@example.test", NULL}};
        struct showq_entry e[] = {
                {"active", "3F1A2B4C5D", 1700000000, 2048, "alice@example.test", false, r1, 2},
                {"deferred", "A1B2C3D4E5F6", 1700000061, 1000, "", false, r2, 3},
                {"hold", "1234567", 1700000122, 0, "bob@example.test", true, NULL, 0},
        };
        struct buf out = BUF_INIT;
        showq_format_list(e, 3, &out);
        const char *want = "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
                           "3F1A2B4C5D*    2048 Tue Nov 14 22:13:20  alice@example.test\n"
                           "                                         r1@example.test\n"
                           "                                         r2@example.test\n"
                           "\n"
                           "A1B2C3D4E5F6    1000 Tue Nov 14 22:14:21  MAILER-DAEMON\n"
                           "                                                    (connect to mx: timed out)\n"
                           "                                         x@example.test\n"
                           "                                         y@example.test\n"
                           "                                                          (reason unavailable)\n"
                           "                                         z@example.test\n"
                           "\n"
                           "1234567!#         0 Tue Nov 14 22:15:22  bob@example.test\n"
                           "\n"
                           "-- 2 Kbytes in 3 Requests.\n";
        CHECK_STR(buf_str(&out), want);
        buf_done(&out);

        showq_format_list(NULL, 0, &out);
        CHECK_STR(buf_str(&out), "Mail queue is empty\n");
        buf_done(&out);

        showq_format_list(e, 1, &out);
        CHECK(strstr(buf_str(&out), "\n-- 2 Kbytes in 1 Request.\n") != NULL);
        buf_done(&out);
}

TEST(showq_json)
{
        struct showq_rcpt r[] = {{"a\"q@x", "why\n"}, {"b@x", NULL}};
        struct showq_entry e = {"deferred", "ABCDEF1", 1700000000, 10, "s@x", false, r, 2};
        struct buf out = BUF_INIT;
        showq_format_json(&e, &out);
        CHECK_STR(buf_str(&out),
                  "{\"queue_name\": \"deferred\", \"queue_id\": \"ABCDEF1\", \"arrival_time\": "
                  "1700000000, \"message_size\": 10, \"forced_expire\": false, \"sender\": \"s@x\", "
                  "\"recipients\": [{\"address\": \"a\\\"q@x\", \"delay_reason\": \"why\\u000a\"}, "
                  "{\"address\": \"b@x\"}]}\n");
        buf_done(&out);
}

/* The address limit is per argument or header: recipients from earlier ones never push later ones out
 * (sendmail with 3000 arguments kept only the first 1000, silently), and a list longer than a message may
 * hold stays longer, so that sendmail's own count refuses it. */
TEST(extract_addresses_limit_is_per_call)
{
        struct strv out = STRV_INIT;
        for (int i = 0; i < 3000; i++) {
                char a[32];
                snprintf(a, sizeof a, "u%d@example.test", i);
                CHECK_INT(submit_extract_addresses(a, strlen(a), &out), 1);
        }
        CHECK_INT(out.n, 3000);
        CHECK_STR(out.v[2999], "u2999@example.test");
        strv_done(&out);

        struct buf list = BUF_INIT;
        for (int i = 0; i < MAILDROP_MAX_RECIPIENTS + 5; i++)
                buf_printf(&list, "%sv%d@example.test", i ? ", " : "", i);
        CHECK_INT(submit_extract_addresses(list.data, list.len, &out), SUBMIT_ADDRS_MAX);
        CHECK(out.n > MAILDROP_MAX_RECIPIENTS);
        strv_done(&out);
        buf_done(&list);
}
