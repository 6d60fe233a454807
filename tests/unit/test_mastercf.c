/* test_mastercf.c: master.cf syntax forms, per-line diagnostics, limits, and the shipped conf/master.cf. */
#include "unit.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "alloc.h"
#include "buf.h"
#include "fileio.h"
#include "mastercf.h"
#include "postd-build.h"

static void parse(const char *text, struct mastercf *m)
{
        int r = mastercf_parse(text, strlen(text), m);
        if (r < 0)
                unit_fail(__FILE__, __LINE__, "mastercf_parse: %d", r);
}

/* The diagnostic of that line containing needle, or NULL. */
static const char *diag_on(const struct mastercf *m, unsigned line, const char *needle)
{
        for (size_t i = 0; i < m->n_diags; i++)
                if (m->diags[i].line == line && strstr(m->diags[i].message, needle))
                        return m->diags[i].message;
        return NULL;
}

static const char * override(const struct mastercf_service *s, const char *name)
{
        for (size_t i = 0; i < s->n_overrides; i++)
                if (streq(s->overrides[i].name, name))
                        return s->overrides[i].value;
        return NULL;
}

/* Parse one entry that must produce exactly one diagnostic on line 1 containing needle, and no service. */
static int one_error(const char *text, const char *needle)
{
        struct mastercf m;
        int ok;
        parse(text, &m);
        ok = m.n_services == 0 && m.n_diags == 1 && diag_on(&m, 1, needle);
        if (!ok)
                fprintf(stderr, "input: %s\n  services %zu, diags %zu, first: %s\n", text, m.n_services,
                        m.n_diags, m.n_diags ? m.diags[0].message : "(none)");
        mastercf_done(&m);
        return ok;
}

TEST(columns_and_defaults)
{
        struct mastercf m;
        parse("smtp      inet  n       -       n       -       -       smtpd\n"
              "pickup    unix  n       -       y       60      1       pickup\n"
              "qmgr      fifo  -       y       -       300?    0       qmgr -v\n"
              "postlog   unix-dgram n  -       n       -       1       postlogd\n"
              "smtpd     pass  -       n       -       -       -       smtpd\n",
              &m);
        CHECK_INT(m.n_diags, 0);
        CHECK_INT(m.n_services, 5);

        const struct mastercf_service *s = &m.services[0];
        CHECK_STR(s->name, "smtp");
        CHECK_STR(s->type_name, "inet");
        CHECK_INT(s->type, MASTERCF_INET);
        CHECK(!s->private_ && s->unpriv && !s->chroot);
        CHECK_INT(s->wakeup, 0);
        CHECK(!s->wakeup_conditional);
        CHECK_INT(s->maxproc, -1);
        CHECK_STR(s->command, "smtpd");
        CHECK_INT(s->args.n, 0);
        CHECK(s->host == NULL);
        CHECK_STR(s->port, "smtp");
        CHECK_INT(s->line, 1);
        const char *cols[7] = {"smtp", "inet", "n", "-", "n", "-", "-"};
        for (size_t i = 0; i < 7; i++)
                CHECK_STR(s->column[i], cols[i]);

        s = mastercf_find(&m, "pickup", MASTERCF_UNIX);
        CHECK(s == &m.services[1]);
        CHECK(!s->private_ && s->unpriv && s->chroot);
        CHECK_INT(s->wakeup, 60);
        CHECK_INT(s->maxproc, 1);
        CHECK(s->host == NULL && s->port == NULL);

        s = &m.services[2];
        CHECK_INT(s->type, MASTERCF_FIFO);
        CHECK(s->private_ && s->unpriv && !s->chroot); /* "-" resolved */
        CHECK_INT(s->wakeup, 300);
        CHECK(s->wakeup_conditional);
        CHECK_STR(s->column[5], "300?");
        CHECK_INT(s->maxproc, 0);
        CHECK_INT(s->args.n, 1);
        CHECK_STR(s->args.v[0], "-v");

        CHECK_INT(m.services[3].type, MASTERCF_UNIX_DGRAM);
        CHECK_INT(m.services[4].type, MASTERCF_PASS);
        CHECK(!m.services[4].unpriv);
        CHECK(mastercf_find(&m, "smtp", MASTERCF_UNIX) == NULL);
        CHECK(mastercf_find(&m, "nosuch", MASTERCF_INET) == NULL);
        mastercf_done(&m);
        CHECK(m.services == NULL && m.n_services == 0);
}

TEST(comments_blank_lines_and_continuation)
{
        struct mastercf m;
        parse("# a comment\n"
              "\n"
              "   \t \n"
              "submission inet n - n - - smtpd\n"
              "  -o smtpd_tls_security_level=encrypt\n"
              "#  -o smtpd_sasl_auth_enable=yes\n"
              "\n"
              "\t-o smtpd_client_restrictions=permit_sasl_authenticated,reject\n"
              "  # indented comment inside the entry\n"
              "  -o syslog_name=postfix/submission\n"
              "relay unix - - n - - smtp\n"
              "smtp unix - - n - - smtp\n"
              "    -o smtp_bind_address=0.0.0.0",
              &m);
        CHECK_INT(m.n_diags, 0);
        CHECK_INT(m.n_services, 3);
        const struct mastercf_service *s = &m.services[0];
        CHECK_STR(s->name, "submission");
        CHECK_INT(s->line, 4);
        CHECK_INT(s->n_overrides, 3);
        CHECK_STR(s->overrides[0].name, "smtpd_tls_security_level");
        CHECK_STR(s->overrides[0].value, "encrypt");
        CHECK_STR(s->overrides[1].name, "smtpd_client_restrictions");
        CHECK_STR(s->overrides[1].value, "permit_sasl_authenticated,reject");
        CHECK_STR(s->overrides[2].value, "postfix/submission");
        CHECK(override(s, "smtpd_sasl_auth_enable") == NULL); /* commented out */
        CHECK_INT(s->args.n, 0);
        CHECK_STR(s->port, "submission");
        CHECK_INT(m.services[1].line, 11);
        s = mastercf_find(&m, "smtp", MASTERCF_UNIX);
        CHECK(s && s->line == 12);
        CHECK_STR(override(s, "smtp_bind_address"), "0.0.0.0");
        mastercf_done(&m);
}

TEST(crlf_and_missing_final_newline)
{
        struct mastercf m;
        parse("smtp inet n - n - - smtpd\r\n  -o a=b\r\ncleanup unix n - n - 0 cleanup", &m);
        CHECK_INT(m.n_diags, 0);
        CHECK_INT(m.n_services, 2);
        CHECK_STR(m.services[0].command, "smtpd");
        CHECK_STR(override(&m.services[0], "a"), "b");
        CHECK_STR(m.services[1].command, "cleanup");
        mastercf_done(&m);

        parse("", &m);
        CHECK_INT(m.n_services + m.n_diags, 0);
        mastercf_done(&m);
        parse("# only a comment", &m);
        CHECK_INT(m.n_services + m.n_diags, 0);
        mastercf_done(&m);
}

TEST(override_forms_and_braced_arguments)
{
        struct mastercf m;
        parse("smtps inet n - n - - smtpd -v -o smtpd_tls_wrappermode=yes\n"
              "  -o { smtpd_client_restrictions = check_client_access inline:{1.2.3.4=REJECT}, permit }\n"
              "  -o {empty=}\n"
              "  -o short=\n"
              "  -o eq=a=b\n"
              "  { an argument with spaces }  {}\n"
              "  -x\n"
              "  inline:{ a = b }\n",
              &m);
        CHECK_INT(m.n_diags, 0);
        CHECK_INT(m.n_services, 1);
        const struct mastercf_service *s = &m.services[0];
        CHECK_INT(s->n_overrides, 5);
        CHECK_STR(s->overrides[0].name, "smtpd_tls_wrappermode");
        CHECK_STR(s->overrides[0].value, "yes");
        CHECK_STR(s->overrides[1].name, "smtpd_client_restrictions");
        CHECK_STR(s->overrides[1].value, "check_client_access inline:{1.2.3.4=REJECT}, permit");
        CHECK_STR(s->overrides[2].name, "empty");
        CHECK_STR(s->overrides[2].value, "");
        CHECK_STR(s->overrides[3].value, "");
        CHECK_STR(s->overrides[4].name, "eq");
        CHECK_STR(s->overrides[4].value, "a=b");
        /* Arguments in order, -o pairs removed, braces stripped only around a whole word. */
        CHECK_INT(s->args.n, 5);
        CHECK_STR(s->args.v[0], "-v");
        CHECK_STR(s->args.v[1], "an argument with spaces");
        CHECK_STR(s->args.v[2], "");
        CHECK_STR(s->args.v[3], "-x");
        CHECK_STR(s->args.v[4], "inline:{ a = b }");
        CHECK(s->args.v[5] == NULL);
        CHECK_STR(s->port, "smtps");
        mastercf_done(&m);
}

TEST(inet_endpoints)
{
        static const struct {
                const char *name, *host, *port;
        } good[] = {
                {"[::1]:25", "::1", "25"},
                {"127.0.0.1:10025", "127.0.0.1", "10025"},
                {"192.0.2.100:10025", "192.0.2.100", "10025"},
                {"2525", NULL, "2525"},
                {"smtp", NULL, "smtp"},
                {"submission", NULL, "submission"},
                {"localhost:smtp", "localhost", "smtp"},
                {"[2001:db8::1]:587", "2001:db8::1", "587"},
                {"[192.0.2.1]:25", "192.0.2.1", "25"},
                {"mail.example.com:65535", "mail.example.com", "65535"},
        };
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                struct mastercf m;
                _cleanup_free_ char *text = xasprintf("%s inet n - n - - smtpd\n", good[i].name);
                parse(text, &m);
                CHECK_INT(m.n_diags, 0);
                CHECK_INT(m.n_services, 1);
                CHECK_STR(m.services[0].name, good[i].name);
                CHECK(streq_ptr(m.services[0].host, good[i].host));
                CHECK_STR(m.services[0].port, good[i].port);
                mastercf_done(&m);
        }

        static const char *const bad[] = {
                "::1:25",      "[::1]25", "[::1]",      "[zz::1]:25",   "[::1:25", "0",        "65536",
                "99999999999", "host:",   ":25",        "bad_host!:25", "a..b:25", "-smtp",    "1.2.3.4:0",
                "smtp:smtp:x", "[]:25",   "[::1]:abc!", "host:25x",     "25x",     "[::1]:-1",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *text = xasprintf("%s inet n - n - - smtpd\n", bad[i]);
                CHECK(one_error(text, "bad inet endpoint"));
        }
        CHECK(one_error("::1:25 inet n - n - - smtpd\n", "[::1]:25"));
        /* The same forms mean nothing special for unix services. */
        struct mastercf m;
        parse("127.0.0.1:10025 unix - - n - - smtp\n", &m);
        CHECK_INT(m.n_diags, 0);
        CHECK(m.services[0].host == NULL && m.services[0].port == NULL);
        mastercf_done(&m);
}

TEST(column_diagnostics)
{
        CHECK(one_error("smtp tcp n - n - - smtpd\n", "unknown service type \"tcp\""));
        CHECK(one_error("smtp INET n - n - - smtpd\n", "unknown service type"));
        CHECK(one_error("smtp inet yes - n - - smtpd\n", "bad private field \"yes\""));
        CHECK(one_error("smtp inet n x n - - smtpd\n", "bad unpriv field"));
        CHECK(one_error("smtp inet n - Y - - smtpd\n", "bad chroot field"));
        CHECK(one_error("smtp inet y - n - - smtpd\n", "cannot be private"));
        CHECK(one_error("pickup unix n - n 1m 1 pickup\n", "bad wakeup time \"1m\""));
        CHECK(one_error("pickup unix n - n ? 1 pickup\n", "bad wakeup time"));
        CHECK(one_error("pickup unix n - n 60?? 1 pickup\n", "bad wakeup time"));
        CHECK(one_error("pickup unix n - n -5 1 pickup\n", "bad wakeup time"));
        CHECK(one_error("pickup unix n - n 99999999999999999999 1 pickup\n", "bad wakeup time"));
        CHECK(one_error("pickup unix n - n 60 many pickup\n", "bad process limit \"many\""));
        CHECK(one_error("pickup unix n - n 60 -1 pickup\n", "bad process limit"));
        CHECK(one_error("pickup unix n - n 60 1000001 pickup\n", "bad process limit"));
        CHECK(one_error("pickup unix n - n 60 1\n", "missing command"));
        CHECK(one_error("pickup unix n - n\n", "too few fields (5)"));
        CHECK(one_error("smtp\n", "too few fields (1)"));
        CHECK(one_error("a/b unix - - n - - smtp\n", "must not contain '/'"));
        CHECK(one_error(".. unix - - n - - smtp\n", "bad service name"));
        CHECK(one_error("smtp inet n - n - - {smtpd}\n", "field 8 must not be written in { }"));
        CHECK(one_error("{smtp} inet n - n - - smtpd\n", "field 1"));
        CHECK(one_error("smtp inet n - n - - -o a=b\n", "bad command \"-o\""));
        CHECK(one_error("smtp inet n - n - - smtpd -o\n", "-o without name=value"));
        CHECK(one_error("smtp inet n - n - - smtpd -o novalue\n", "expected name=value"));
        CHECK(one_error("smtp inet n - n - - smtpd -o =x\n", "bad parameter name"));
        CHECK(one_error("smtp inet n - n - - smtpd -o { bad name = x }\n", "bad parameter name"));
        CHECK(one_error("smtp inet n - n - - smtpd -o {a=b\n", "missing '}'"));
        CHECK(one_error("smtp inet n - n - - smtpd x}\n", "unbalanced '}'"));
        CHECK(one_error("smtp inet n - n - - smtpd {a}b\n", "text \"b\" after '}'"));
        /* Several problems of one entry are all reported, and the entry is skipped. */
        struct mastercf m;
        parse("smtp inet q q q q q smtpd\n", &m);
        CHECK_INT(m.n_services, 0);
        CHECK_INT(m.n_diags, 5);
        mastercf_done(&m);
        /* Input echoed in a message is escaped and cut. */
        char msg[300];
        snprintf(msg, sizeof(msg), "smtp in\x01\"et%0200d n - n - - smtpd\n", 0);
        parse(msg, &m);
        CHECK_INT(m.n_diags, 1);
        CHECK(strstr(m.diags[0].message, "\"in\\x01\\\"et000"));
        CHECK(strstr(m.diags[0].message, "\"..."));
        CHECK(strlen(m.diags[0].message) < 200);
        mastercf_done(&m);
}

TEST(diagnostics_name_their_line_and_good_entries_survive)
{
        struct mastercf m;
        parse("# header\n"
              "smtp inet n - n - - smtpd\n"
              "  -o a=b\n"
              "bogus inet n - n -\n"
              "  -o continued=of_bogus\n"
              "cleanup unix n - n - 0 cleanup\n"
              "smtp inet n - n - 10 smtpd\n"
              "2525 inet n - n - - smtpd\n"
              "  -o x=y\n"
              "2525 unix - - n - - smtpd\n",
              &m);
        CHECK_INT(m.n_services, 4);
        CHECK_INT(m.n_diags, 2);
        /* "-o continued=of_bogus" is the 8th word: the command of a broken entry, not a new entry. */
        CHECK(diag_on(&m, 4, "bad process limit \"-o\""));
        CHECK(diag_on(&m, 7, "duplicate service \"smtp\" type inet (first defined on line 2)"));
        CHECK_INT(mastercf_find(&m, "smtp", MASTERCF_INET)->maxproc, -1); /* the first one wins */
        CHECK(mastercf_find(&m, "2525", MASTERCF_UNIX));
        mastercf_done(&m);

        parse("  -o leading=continuation\nsmtp inet n - n - - smtpd\n", &m);
        CHECK_INT(m.n_services, 1);
        CHECK_INT(m.n_diags, 1);
        CHECK(diag_on(&m, 1, "continuation line without a preceding entry"));
        mastercf_done(&m);

        /* A NUL byte spoils only its own entry. */
        static const char nul[] =
                "a unix - - n - - x\nb unix - - n - - y\0z\n  -o q=r\nc unix - - n - - z\n";
        CHECK_INT(mastercf_parse(nul, sizeof(nul) - 1, &m), 0);
        CHECK_INT(m.n_services, 2);
        CHECK(diag_on(&m, 2, "NUL"));
        CHECK(mastercf_find(&m, "c", MASTERCF_UNIX));
        mastercf_done(&m);
}

TEST(limits)
{
        struct mastercf m;
        struct buf b = BUF_INIT;

        /* One physical line over the limit, and one entry over it through continuation lines. */
        buf_puts(&b, "long unix - - n - - cmd ");
        for (size_t i = 0; i < MASTERCF_LINE_MAX; i++)
                buf_putc(&b, 'a');
        buf_puts(&b, "\nlong2 unix - - n - - cmd\n");
        for (size_t i = 0; i < MASTERCF_LINE_MAX / 1000 + 1; i++) {
                buf_putc(&b, ' ');
                for (size_t j = 0; j < 999; j++)
                        buf_putc(&b, 'b');
                buf_putc(&b, '\n');
        }
        buf_puts(&b, "ok unix - - n - - cmd\n");
        CHECK_INT(mastercf_parse(b.data, b.len, &m), 0);
        CHECK_INT(m.n_services, 1);
        CHECK_STR(m.services[0].name, "ok");
        CHECK_INT(m.n_diags, 2);
        CHECK(diag_on(&m, 1, "entry longer than"));
        CHECK(diag_on(&m, 2, "entry longer than"));
        mastercf_done(&m);
        buf_truncate(&b, 0);

        buf_puts(&b, "many unix - - n - - cmd");
        for (size_t i = 0; i < MASTERCF_FIELDS_MAX; i++)
                buf_puts(&b, " x");
        buf_puts(&b, "\n");
        CHECK_INT(mastercf_parse(b.data, b.len, &m), 0);
        CHECK_INT(m.n_services, 0);
        CHECK(diag_on(&m, 1, "more than 1024 fields"));
        mastercf_done(&m);
        buf_truncate(&b, 0);

        for (size_t i = 0; i < MASTERCF_SERVICES_MAX + 10; i++)
                buf_printf(&b, "s%zu unix - - n - - cmd\n", i);
        CHECK_INT(mastercf_parse(b.data, b.len, &m), 0);
        CHECK_INT(m.n_services, MASTERCF_SERVICES_MAX);
        CHECK(diag_on(&m, MASTERCF_SERVICES_MAX + 1, "more than 4096 services"));
        CHECK_INT(m.n_diags, 2); /* the limit, then a count of the 9 further ignored entries */
        CHECK(strstr(m.diags[1].message, "9 further"));
        mastercf_done(&m);
        buf_truncate(&b, 0);

        for (size_t i = 0; i < MASTERCF_DIAGS_MAX + 50; i++)
                buf_puts(&b, "bad\n");
        CHECK_INT(mastercf_parse(b.data, b.len, &m), 0);
        CHECK_INT(m.n_diags, MASTERCF_DIAGS_MAX + 1);
        CHECK(strstr(m.diags[MASTERCF_DIAGS_MAX].message, "50 further problems not reported"));
        mastercf_done(&m);
        buf_done(&b);

        /* Refused before any byte is read. */
        CHECK_INT(mastercf_parse("", (size_t)MASTERCF_TEXT_MAX + 1, &m), -EFBIG);
}

TEST(port_numbers)
{
        static const struct {
                const char *s;
                uint16_t port;
        } ok[] = {
                {"25", 25},           {"smtp", 25}, {"submission", 587}, {"smtps", 465},
                {"submissions", 465}, {"lmtp", 24}, {"2525", 2525},      {"65535", 65535},
        };
        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                uint16_t p = 0;
                CHECK_INT(mastercf_port_number(ok[i].s, &p), 0);
                CHECK_INT(p, ok[i].port);
        }
        uint16_t p = 7;
        CHECK_INT(mastercf_port_number("0", &p), -EINVAL);
        CHECK_INT(mastercf_port_number("65536", &p), -EINVAL);
        CHECK_INT(mastercf_port_number("", &p), -EINVAL);
        CHECK_INT(mastercf_port_number("25x", &p), -EINVAL);
        CHECK_INT(mastercf_port_number("a b", &p), -EINVAL);
        CHECK_INT(mastercf_port_number("no-such-service-postd", &p), -ENOENT);
        CHECK_INT(p, 7);
}

TEST(type_names)
{
        static const char *const names[] = {"inet", "unix", "unix-dgram", "fifo", "pass"};
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                enum mastercf_type t;
                CHECK_INT(mastercf_type_from_string(names[i], &t), 0);
                CHECK_STR(mastercf_type_to_string(t), names[i]);
        }
        enum mastercf_type t;
        CHECK_INT(mastercf_type_from_string("tcp", &t), -EINVAL);
        CHECK(mastercf_type_to_string((enum mastercf_type)99) == NULL);
}

TEST(shipped_master_cf)
{
        _cleanup_free_ char *path = xasprintf("%s/conf/master.cf", POSTD_SOURCE_DIR);
        _cleanup_free_ char *text = NULL;
        size_t len;
        struct mastercf m;

        CHECK_INT(read_file(path, 1024 * 1024, &text, &len), 0);
        CHECK_INT(mastercf_parse(text, len, &m), 0);
        for (size_t i = 0; i < m.n_diags; i++)
                fprintf(stderr, "%s: line %u: %s\n", path, m.diags[i].line, m.diags[i].message);
        CHECK_INT(m.n_diags, 0);

        static const struct {
                const char *name;
                enum mastercf_type type;
                const char *command;
        } want[] = {
                {"smtp", MASTERCF_INET, "smtpd"},      {"pickup", MASTERCF_UNIX, "pickup"},
                {"cleanup", MASTERCF_UNIX, "cleanup"}, {"qmgr", MASTERCF_UNIX, "qmgr"},
                {"bounce", MASTERCF_UNIX, "bounce"},   {"defer", MASTERCF_UNIX, "bounce"},
                {"trace", MASTERCF_UNIX, "bounce"},    {"smtp", MASTERCF_UNIX, "smtp"},
                {"relay", MASTERCF_UNIX, "smtp"},      {"lmtp", MASTERCF_UNIX, "lmtp"},
                {"showq", MASTERCF_UNIX, "showq"},     {"error", MASTERCF_UNIX, "error"},
                {"discard", MASTERCF_UNIX, "discard"}, {"local", MASTERCF_UNIX, "local"},
                {"virtual", MASTERCF_UNIX, "virtual"}, {"anvil", MASTERCF_UNIX, "anvil"},
        };
        CHECK_INT(m.n_services, ELEMENTSOF(want));
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                const struct mastercf_service *s = mastercf_find(&m, want[i].name, want[i].type);
                CHECK(s);
                CHECK_STR(s->command, want[i].command);
        }
        CHECK(!mastercf_find(&m, "local", MASTERCF_UNIX)->unpriv);
        CHECK(!mastercf_find(&m, "virtual", MASTERCF_UNIX)->unpriv);
        CHECK_INT(mastercf_find(&m, "qmgr", MASTERCF_UNIX)->maxproc, 1);
        CHECK_INT(mastercf_find(&m, "anvil", MASTERCF_UNIX)->maxproc, 1);
        CHECK_INT(mastercf_find(&m, "pickup", MASTERCF_UNIX)->wakeup, 60);
        mastercf_done(&m);

        /* The commented examples work once uncommented, as the guides tell operators to do. */
        struct buf b = BUF_INIT;
        for (const char *l = text; *l;) {
                const char *nl = strchr(l, '\n');
                size_t n = nl ? (size_t)(nl - l + 1) : strlen(l);
                bool example = strncmp(l, "#submission ", 12) == 0 || strncmp(l, "#smtps ", 7) == 0 ||
                               strncmp(l, "#  -o ", 6) == 0;
                if (example)
                        buf_append(&b, l + 1, n - 1);
                else
                        buf_append(&b, l, n);
                l += n;
        }
        CHECK_INT(mastercf_parse(b.data, b.len, &m), 0);
        CHECK_INT(m.n_diags, 0);
        const struct mastercf_service *s = mastercf_find(&m, "smtps", MASTERCF_INET);
        CHECK(s && s->n_overrides == 3);
        CHECK_STR(override(s, "smtpd_tls_wrappermode"), "yes");
        s = mastercf_find(&m, "submission", MASTERCF_INET);
        CHECK(s && s->n_overrides == 3);
        CHECK_STR(override(s, "smtpd_client_restrictions"), "permit_sasl_authenticated,reject");
        mastercf_done(&m);
        buf_done(&b);
}
