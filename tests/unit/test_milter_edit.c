/* test_milter_edit.c: cleanup's milter pieces that need no filter: the content rewrite (header edits, a
 * replacement body), the smtpd_milters element syntax, and macro values. */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "milter.h"
#include "milter_proto.h"

static int mem_fd(const char *text)
{
        int fd = memfd_create("milter-test", MFD_CLOEXEC);
        if (fd >= 0 && write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
                close(fd);
                return -1;
        }
        return fd;
}

static int emit(void *userdata, const void *data, size_t len)
{
        buf_append(userdata, data, len);
        return 0;
}

static void add(struct milter_edits *e, char op, uint32_t index, const char *name, const char *value)
{
        if (e->n_hdrs == e->cap_hdrs) {
                e->cap_hdrs = e->cap_hdrs ? 2 * e->cap_hdrs : 8;
                e->hdrs = realloc(e->hdrs, e->cap_hdrs * sizeof *e->hdrs);
        }
        e->hdrs[e->n_hdrs++] = (struct milter_hdr_edit){op, index, strdup(name), strdup(value)};
}

static void edits_done(struct milter_edits *e)
{
        for (size_t i = 0; i < e->n_hdrs; i++) {
                free(e->hdrs[i].name);
                free(e->hdrs[i].value);
        }
        free(e->hdrs);
        if (e->body_fd >= 0)
                close(e->body_fd);
}

/* The content after the edits, as a string (the caller frees). */
static char *edited(const char *content, struct milter_edits *e)
{
        int fd = mem_fd(content);
        struct buf out = BUF_INIT;
        int r = milter_edit_content(fd, e, 100000, emit, &out);
        close(fd);
        if (r < 0) {
                buf_done(&out);
                return NULL;
        }
        return buf_steal(&out);
}

TEST(header_edits_in_order)
{
        struct milter_edits e = {.body_fd = -1};
        add(&e, MILTER_REPLY_CHGHEADER, 2, "subject", "second changed");
        add(&e, MILTER_REPLY_CHGHEADER, 1, "X-Gone", "");
        add(&e, MILTER_REPLY_INSHEADER, 0, "X-Top", "first");
        add(&e, MILTER_REPLY_ADDHEADER, 0, "X-End", "one\n\ttwo");
        add(&e, MILTER_REPLY_CHGHEADER, 1, "X-Missing", "added"); /* changing an absent header adds it */
        add(&e, MILTER_REPLY_CHGHEADER, 1, "X-Never", "");        /* deleting an absent one does nothing */
        char *got =
                edited("Subject: one\nX-Gone: folded\n\tline\nSubject: two\nTo: a@b\n\nbody\n\nmore\n", &e);
        CHECK_STR(got, "X-Top: first\nSubject: one\nSubject: second changed\nTo: a@b\nX-End: one\n\ttwo\n"
                       "X-Missing: added\n\nbody\n\nmore\n");
        free(got);
        edits_done(&e);
}

TEST(replacement_body_and_headers_only_messages)
{
        struct milter_edits e = {.body_fd = mem_fd("new body\n")};
        char *got = edited("Subject: s\n\nold body\n", &e);
        CHECK_STR(got, "Subject: s\n\nnew body\n");
        free(got);
        /* a message that is all headers, its last line without LF: a header added after it stays apart */
        edits_done(&e);
        e = (struct milter_edits){.body_fd = -1};
        add(&e, MILTER_REPLY_ADDHEADER, 0, "X-A", "b");
        got = edited("Subject: s", &e);
        CHECK_STR(got, "Subject: s\nX-A: b\n");
        free(got);
        got = edited("\nbody only\n", &e);
        CHECK_STR(got, "X-A: b\n\nbody only\n");
        free(got);
        edits_done(&e);
}

TEST(header_block_is_bounded)
{
        struct milter_edits e = {.body_fd = -1};
        struct buf big = BUF_INIT;
        for (int i = 0; i < 20000; i++)
                buf_puts(&big, "X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n");
        int fd = mem_fd(big.data);
        struct buf out = BUF_INIT;
        CHECK_INT(milter_edit_content(fd, &e, 1000, emit, &out), -EFBIG);
        close(fd);
        buf_done(&out);
        buf_done(&big);
}

TEST(spec_syntax)
{
        struct milter_spec sp = {
                .connect_timeout_ms = 30000, .default_action = MILTER_DEFAULT_TEMPFAIL, .version = 6};
        char *why = NULL;
        CHECK_INT(milter_spec_parse("{ inet:127.0.0.1:8891, connect_timeout=5s, default_action=accept, "
                                    "protocol=4 }",
                                    &sp, &why),
                  0);
        CHECK_STR(sp.endpoint, "inet:127.0.0.1:8891");
        CHECK_INT(sp.connect_timeout_ms, 5000);
        CHECK_INT(sp.default_action, MILTER_DEFAULT_ACCEPT);
        CHECK_INT(sp.version, 4);
        free(sp.endpoint);
        CHECK_INT(milter_spec_parse("unix:/run/f.sock", &sp, &why), 0);
        free(sp.endpoint);
        CHECK_INT(milter_spec_parse("inet6:[::1]:8891", &sp, &why), 0);
        free(sp.endpoint);
        static const char *const bad[] = {"inet:127.0.0.1",
                                          "tcp:1.2.3.4:5",
                                          "unix:relative",
                                          "{ inet:h:1, default_action=maybe }",
                                          "{ inet:h:1, frob=1 }",
                                          "{ inet:h:1, protocol=7 }",
                                          "{ inet:h:1"};
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                why = NULL;
                CHECK_INT(milter_spec_parse(bad[i], &sp, &why), -EINVAL);
                CHECK(why && *why);
                free(why);
        }
}

TEST(macro_values)
{
        struct milter_facts f = {.queue_id = "3F1A2B4C5D",
                                 .client_name = "mx.example",
                                 .client_addr = "192.0.2.1",
                                 .tls = "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
                                 .sender = "",
                                 .rcpt = "u@example.org"};
        char *v;
        CHECK_STR(v = milter_macro_value(&f, "i"), "3F1A2B4C5D");
        free(v);
        CHECK_STR(v = milter_macro_value(&f, "_"), "mx.example [192.0.2.1]");
        free(v);
        CHECK_STR(v = milter_macro_value(&f, "{tls_version}"), "TLSv1.3");
        free(v);
        CHECK_STR(v = milter_macro_value(&f, "{cipher}"), "TLS_AES_256_GCM_SHA384");
        free(v);
        CHECK_STR(v = milter_macro_value(&f, "{cipher_bits}"), "256");
        free(v);
        CHECK_STR(v = milter_macro_value(&f, "{mail_addr}"), ""); /* the null sender is a value */
        free(v);
        CHECK_STR(v = milter_macro_value(&f, "{rcpt_host}"), "example.org");
        free(v);
        CHECK(milter_macro_value(&f, "{cert_subject}") == NULL);
        CHECK(milter_macro_value(&f, "{mail_host}") == NULL);
}
