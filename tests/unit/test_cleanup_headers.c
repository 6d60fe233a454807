/* test_cleanup_headers.c: unit tests of cleanup's header processing (src/cleanup/headers.c). */
#include <stdlib.h>
#include <time.h>

#include "../../src/cleanup/headers.h"
#include "alloc.h"
#include "unit.h"

/* 2024-03-05 06:07:08 UTC */
#define T0 ((time_t)1709618828)

static const struct rewrite_opts rw = {"mx.example.test", "example.test", true, false};

static struct headers_opts remote(void)
{
        setenv("TZ", "UTC", 1);
        tzset();
        return (struct headers_opts){
                .queue_id = "3F1A2B4C5D",
                .myhostname = "mx.example.test",
                .uid = -1,
                .helo_name = "client.example.org",
                .client_name = "client.example.org",
                .client_address = "192.0.2.7",
                .protocol = "ESMTP",
                .single_rcpt = "user@example.test",
                .rewrite = &rw,
                .now = T0,
                .header_size_limit = 102400,
                .line_length_limit = 2048,
        };
}

static struct buf out;
static struct headers_result res;

static const char *build(const struct headers_opts *o, const char *msg)
{
        buf_done(&out);
        headers_result_done(&res);
        headers_build(o, msg, strlen(msg), &out, &res);
        return buf_str(&out);
}

TEST(date_format)
{
        char d[HEADERS_DATE_MAX];
        setenv("TZ", "UTC", 1);
        tzset();
        headers_format_date(T0, d);
        CHECK_STR(d, "Tue,  5 Mar 2024 06:07:08 +0000 (UTC)");
        setenv("TZ", "CET-1", 1);
        tzset();
        headers_format_date(T0, d);
        CHECK_STR(d, "Tue,  5 Mar 2024 07:07:08 +0100 (CET)");
        setenv("TZ", "XYZ+3:30", 1);
        tzset();
        headers_format_date(T0, d);
        CHECK_STR(d, "Tue,  5 Mar 2024 02:37:08 -0330 (XYZ)");
}

TEST(remote_adds_received_message_id_date)
{
        struct headers_opts o = remote();
        const char *r = build(&o, "Subject: hi\nFrom: a@example.org\n\nbody\n");
        CHECK_STR(r, "Received: from client.example.org (client.example.org [192.0.2.7])\n"
                     "\tby mx.example.test (Postfix) with ESMTP id 3F1A2B4C5D\n"
                     "\tfor <user@example.test>; Tue,  5 Mar 2024 06:07:08 +0000 (UTC)\n"
                     "Subject: hi\n"
                     "From: a@example.org\n"
                     "Message-ID: <20240305060708.3F1A2B4C5D@mx.example.test>\n"
                     "Date: Tue,  5 Mar 2024 06:07:08 +0000 (UTC)\n"
                     "\n"
                     "body\n");
        CHECK_STR(res.message_id, "<20240305060708.3F1A2B4C5D@mx.example.test>");
        CHECK(res.added_message_id);
        CHECK_INT(res.header_len, strlen(r) - strlen("\nbody\n"));
}

/* header_checks' hook: every logical header of the message and the Received: header go through it. */
static struct strv seen = STRV_INIT;

static bool check_cb(void *userdata, const char *hdr, size_t len, struct buf *o)
{
        strv_push_take(&seen, xstrndup(hdr, len));
        if (strncmp(hdr, "X-Drop:", 7) == 0)
                return false;
        if (strncmp(hdr, "Subject:", 8) == 0) {
                buf_puts(o, "Subject: replaced\n");
                return false;
        }
        if (strncmp(hdr, "Received:", 9) == 0)
                buf_puts(o, "X-Before-Received: yes\n");
        return true;
}

TEST(header_check_hook)
{
        struct headers_opts o = remote();
        o.check_header = check_cb;
        const char *r = build(&o, "Subject: hi\nX-Drop: a\n\tb\nMessage-ID: <m@x>\n\nX-Drop: body\n");
        CHECK_STR(r, "X-Before-Received: yes\n"
                     "Received: from client.example.org (client.example.org [192.0.2.7])\n"
                     "\tby mx.example.test (Postfix) with ESMTP id 3F1A2B4C5D\n"
                     "\tfor <user@example.test>; Tue,  5 Mar 2024 06:07:08 +0000 (UTC)\n"
                     "Subject: replaced\n"
                     "Message-ID: <m@x>\n"
                     "Date: Tue,  5 Mar 2024 06:07:08 +0000 (UTC)\n"
                     "\n"
                     "X-Drop: body\n");
        CHECK_INT(seen.n, 4);
        CHECK(strncmp(seen.v[0], "Received: from client.example.org", 33) == 0);
        CHECK_STR(seen.v[2], "X-Drop: a\n\tb"); /* logical header, continuation kept, no last LF */
        strv_done(&seen);
        /* Local submissions: cleanup's own Received: header is not inspected (as in Postfix). */
        o.local = true;
        build(&o, "To: x\n\nbody\n");
        CHECK_INT(seen.n, 1);
        CHECK_STR(seen.v[0], "To: x");
        strv_done(&seen);
}

TEST(no_for_clause_with_several_recipients_and_tls)
{
        struct headers_opts o = remote();
        o.single_rcpt = NULL;
        o.tls = "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384";
        o.helo_name = NULL;
        const char *r = build(&o, "Message-ID: <x@y>\nDate: whenever\n\nb\n");
        CHECK_STR(r, "Received: from client.example.org (client.example.org [192.0.2.7])\n"
                     "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\n"
                     "\tby mx.example.test (Postfix) with ESMTP id 3F1A2B4C5D; "
                     "Tue,  5 Mar 2024 06:07:08 +0000 (UTC)\n"
                     "Message-ID: <x@y>\nDate: whenever\n\nb\n");
        CHECK_STR(res.message_id, "<x@y>");
        CHECK(!res.added_message_id);
}

TEST(existing_message_id_is_found_case_insensitive_and_unfolded)
{
        struct headers_opts o = remote();
        build(&o, "message-id:\n  <folded@example.org>  \nDATE: x\n\n");
        CHECK_STR(res.message_id, "<folded@example.org>");
        CHECK(strstr(buf_str(&out), "Message-ID: <2024") == NULL);
        CHECK(strstr(buf_str(&out), "\nDate: ") == NULL);
}

TEST(local_submission)
{
        struct headers_opts o = remote();
        o.local = true;
        o.uid = 1000;
        o.sender = "joe@mx.example.test";
        const char *r = build(&o, "To: bob, Carol <carol>\nCc: dave@example.org\nSubject: s\n\nhello\n");
        CHECK_STR(r, "Received: by mx.example.test (Postfix, from userid 1000)\n"
                     "\tid 3F1A2B4C5D; Tue,  5 Mar 2024 06:07:08 +0000 (UTC)\n"
                     "To: bob@mx.example.test, Carol <carol@mx.example.test>\n"
                     "Cc: dave@example.org\n"
                     "Subject: s\n"
                     "Message-ID: <20240305060708.3F1A2B4C5D@mx.example.test>\n"
                     "Date: Tue,  5 Mar 2024 06:07:08 +0000 (UTC)\n"
                     "From: joe@mx.example.test\n"
                     "\n"
                     "hello\n");
}

TEST(local_from_with_full_name_and_rewrite)
{
        struct headers_opts o = remote();
        o.local = true;
        o.sender = "joe@mx.example.test";
        o.sender_full_name = "Joe \"JJ\" User";
        build(&o, "\nbody\n");
        CHECK(strstr(buf_str(&out), "From: \"Joe \\\"JJ\\\" User\" <joe@mx.example.test>\n\nbody\n") !=
              NULL);
        o.sender_full_name = "Joe User";
        build(&o, "\nbody\n");
        CHECK(strstr(buf_str(&out), "From: Joe User <joe@mx.example.test>\n") != NULL);
        /* an existing From: is kept, its address made canonical */
        build(&o, "From: joe\n\nbody\n");
        CHECK(strstr(buf_str(&out), "From: joe@mx.example.test\nMessage-ID: <") != NULL);
        CHECK(strstr(buf_str(&out), "From: Joe User") == NULL);
        /* remote mail: headers are left alone */
        o.local = false;
        build(&o, "From: joe\n\nbody\n");
        CHECK(strstr(buf_str(&out), "From: joe\n") != NULL);
}

TEST(body_without_separator_and_empty_message)
{
        struct headers_opts o = remote();
        o.single_rcpt = NULL;
        const char *r = build(&o, "just text, no headers\nmore\n");
        CHECK(strstr(r, "Date: Tue,  5 Mar 2024 06:07:08 +0000 (UTC)\n\njust text, no headers\nmore\n") !=
              NULL);
        r = build(&o, "");
        CHECK(strstr(r, "Date: Tue,  5 Mar 2024 06:07:08 +0000 (UTC)\n") != NULL);
        CHECK(r[strlen(r) - 1] == '\n');
        CHECK(strstr(r, "\n\n") == NULL);
        /* a last header without LF */
        r = build(&o, "Subject: x");
        CHECK(strstr(r, "Subject: x\nMessage-ID: <") != NULL);
        /* a continuation line with no header before it is body */
        r = build(&o, " indented\n");
        CHECK(strstr(r, "(UTC)\n\n indented\n") != NULL);
}

TEST(header_lines_stay_as_received)
{
        struct headers_opts o = remote();
        const char *msg = "Subject:  two  spaces \t\nX-Odd:no-space\nX-Fold: a\n\tb\n  c\n\nbody\n\n";
        const char *r = build(&o, msg);
        CHECK(strstr(r, "Subject:  two  spaces \t\nX-Odd:no-space\nX-Fold: a\n\tb\n  c\nMessage-ID:") !=
              NULL);
        CHECK(strstr(r, "\n\nbody\n\n") != NULL);
}

TEST(received_counted)
{
        struct headers_opts o = remote();
        build(&o, "Received: a\nReceived: b\n\tcont\nreceived: c\n\n");
        CHECK_INT(res.n_received, 3);
}

TEST(header_size_limit_rest_is_body)
{
        struct headers_opts o = remote();
        o.header_size_limit = 30;
        const char *r =
                build(&o, "Subject: 0123456789\nX-Second: 0123456789\nMessage-ID: <late@x>\n\nbody\n");
        /* Subject fits (20 bytes), X-Second would exceed: it and what follows are body, kept as is */
        CHECK(strstr(r, "Subject: 0123456789\nMessage-ID: <2024") != NULL);
        CHECK(strstr(r, "(UTC)\n\nX-Second: 0123456789\nMessage-ID: <late@x>\n\nbody\n") != NULL);
        CHECK(res.added_message_id);
}

TEST(long_lines_are_split)
{
        struct headers_opts o = remote();
        o.line_length_limit = 100;
        char body[400], hdr[400];
        memset(body, 'b', 250);
        body[250] = '\0';
        /* a header of words: folded before a blank, nothing lost once unfolded */
        strcpy(hdr, "Subject:");
        for (int i = 0; i < 30; i++)
                strcat(hdr, " word");
        char msg[1000];
        snprintf(msg, sizeof msg, "%s\n\n%s\nend\n", hdr, body);
        const char *r = build(&o, msg);
        const char *b = strstr(r, "\n\nbbbb");
        CHECK(b != NULL);
        b += 2;
        for (int k = 0; k < 2; k++) {
                for (int i = 0; i < 100; i++)
                        CHECK(b[i] == 'b');
                CHECK(b[100] == '\n');
                b += 101;
        }
        CHECK(strncmp(b, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\nend\n", 55) == 0);

        const char *s = strstr(r, "Subject:");
        const char *e = strstr(s, "\nMessage-ID:");
        CHECK(e != NULL);
        /* every physical line of the folded header is within the limit, and unfolding restores it */
        struct buf unfolded = BUF_INIT;
        size_t col = 0;
        for (const char *p = s; p < e + 1; p++) {
                if (*p == '\n') {
                        CHECK(col <= 100);
                        col = 0;
                        continue;
                }
                col++;
                buf_putc(&unfolded, *p);
        }
        CHECK_STR(buf_str(&unfolded), hdr);
        buf_done(&unfolded);
}

TEST(long_header_without_blanks_is_hard_folded)
{
        struct headers_opts o = remote();
        o.line_length_limit = 1; /* raised to HEADERS_LINE_LENGTH_MIN */
        char msg[400] = "X-Long:";
        memset(msg + 7, 'x', 200);
        strcpy(msg + 207, "\n\n");
        const char *r = build(&o, msg);
        const char *s = strstr(r, "X-Long:");
        CHECK(s != NULL);
        CHECK(s[HEADERS_LINE_LENGTH_MIN] == '\n' && s[HEADERS_LINE_LENGTH_MIN + 1] == '\t');
}

TEST(envelope_values_cannot_inject_headers)
{
        struct headers_opts o = remote();
        o.helo_name = "evil\nX-Injected: yes";
        o.single_rcpt = "a@b>\r\nBcc: c@d";
        const char *r = build(&o, "\n");
        CHECK(strstr(r, "\nX-Injected") == NULL);
        CHECK(strstr(r, "\nBcc") == NULL);
        CHECK(strstr(r, "from evil?X-Injected: yes (") != NULL);
}

TEST(is_field)
{
        size_t n = 0;
        CHECK(headers_is_field("Subject: x", 10, &n));
        CHECK_INT(n, 7);
        CHECK(!headers_is_field(": x", 3, &n));
        CHECK(!headers_is_field("No colon", 8, &n));
        CHECK(!headers_is_field("Sp ace: x", 9, &n));
        CHECK(!headers_is_field("From someone", 12, &n));
}

/* What cleanup does: hold input until the header block's end is known, then pass the body through. */
static void build_streamed(const struct headers_opts *o, const char *msg, size_t len, size_t piece,
                           struct buf *ret, size_t *ret_held)
{
        struct buf held = BUF_INIT;
        struct headers_result hr = {0};
        struct headers_body body;
        struct headers_scan scan = {0};
        bool in_body = false;
        *ret_held = 0;
        for (size_t off = 0; off <= len; off += piece) {
                size_t n = len - off < piece ? len - off : piece;
                bool eof = off + n == len;
                if (in_body) {
                        headers_body_put(&body, msg + off, n, ret);
                } else {
                        buf_append(&held, msg + off, n);
                        if (held.len > *ret_held)
                                *ret_held = held.len;
                        size_t end;
                        if (headers_block_end(&scan, held.data ? held.data : "", held.len,
                                              o->header_size_limit, eof, &end)) {
                                headers_build_header(o, held.data ? held.data : "", held.len, ret, &hr);
                                CHECK_INT(hr.body_offset, end);
                                headers_body_init(&body, o);
                                headers_body_put(&body, held.data + hr.body_offset,
                                                 held.len - hr.body_offset, ret);
                                headers_result_done(&hr);
                                in_body = true;
                        }
                }
                if (eof)
                        break;
        }
        CHECK(in_body);
        buf_done(&held);
}

TEST(streamed_build_is_the_same_and_holds_only_the_headers)
{
        struct buf longline = BUF_INIT, many = BUF_INIT, bighdr = BUF_INIT;
        for (int i = 0; i < 300; i++)
                buf_puts(&longline, "0123456789");
        buf_puts(&many, "Subject: many\nReceived: a\n\tb\n\n");
        for (int i = 0; i < 3000; i++)
                buf_printf(&many, "body line %d %s\n", i, i % 100 == 0 ? buf_str(&longline) : "");
        for (int i = 0; i < 200; i++)
                buf_printf(&bighdr, "X-H%d: %s\n", i, i % 7 == 0 ? "v\n folded" : "value");
        buf_puts(&bighdr, "\nbody\n");
        char *longhdr = xasprintf("Subject: %s\n %s\n\nbody %s", buf_str(&longline), buf_str(&longline),
                                  buf_str(&longline));
        const char *msgs[] = {
                "",
                "\n",
                "Subject: x\n",
                "Subject: x",
                "Subject: x\n\nbody",
                "Subject: x\n folded\n\nbody\n",
                "Subject: x\nnot a header\nmore\n",
                "From: a\n\tcont\n  cont2\nTo: b\n\n\n\nbody\n",
                buf_str(&many),
                buf_str(&bighdr),
                longhdr,
        };
        const size_t limits[] = {0, 10, 100, 2000, 102400};
        const size_t pieces[] = {1, 2, 5, 64, 4096, 65536};
        struct headers_opts o = remote();
        o.line_length_limit = 100;
        for (size_t mi = 0; mi < ELEMENTSOF(msgs); mi++)
                for (size_t li = 0; li < ELEMENTSOF(limits); li++) {
                        o.header_size_limit = limits[li];
                        struct buf want = BUF_INIT;
                        struct headers_result hr;
                        headers_build(&o, msgs[mi], strlen(msgs[mi]), &want, &hr);
                        headers_result_done(&hr);
                        for (size_t pi = 0; pi < ELEMENTSOF(pieces); pi++) {
                                struct buf got = BUF_INIT;
                                size_t held;
                                build_streamed(&o, msgs[mi], strlen(msgs[mi]), pieces[pi], &got, &held);
                                CHECK_INT(got.len, want.len);
                                CHECK(got.len == want.len && memcmp(got.data, want.data, want.len) == 0);
                                /* Never more than the header limit plus one piece and a line is held. */
                                CHECK(held <= limits[li] + pieces[pi] + 1);
                                buf_done(&got);
                        }
                        buf_done(&want);
                }
        free(longhdr);
        buf_done(&longline);
        buf_done(&many);
        buf_done(&bighdr);
}
