/* test_tablefile.c: the postmap, aliases and inline:{...} source parsers. */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>

#include "alloc.h"
#include "tablefile.h"

static int parse_map(const char *text, struct tablefile *t)
{
        return tablefile_parse_map(text, strlen(text), t);
}

TEST(map_keys_values_comments_continuations)
{
        struct tablefile t = TABLEFILE_INIT;
        CHECK_INT(parse_map("# comment\n"
                            "example.net   smtp:[mail.isp.example]\n"
                            "\n"
                            "   # indented comment\n"
                            ".example.net\t:[mail.isp.example]  \r\n"
                            "multi  first\n"
                            "  second\n"
                            "\tthird\n"
                            "last value",
                            &t),
                  0);
        CHECK_INT(t.n_diags, 0);
        CHECK_INT(t.n_entries, 4);
        CHECK_STR(t.entries[0].key, "example.net");
        CHECK_STR(t.entries[0].value, "smtp:[mail.isp.example]");
        CHECK_INT(t.entries[0].line, 2);
        CHECK_STR(t.entries[1].key, ".example.net");
        CHECK_STR(t.entries[1].value, ":[mail.isp.example]");
        CHECK_INT(t.entries[1].line, 5);
        CHECK_STR(t.entries[2].key, "multi");
        CHECK_STR(t.entries[2].value, "first  second\tthird");
        CHECK_INT(t.entries[2].line, 6);
        CHECK_STR(t.entries[3].key, "last");
        CHECK_STR(t.entries[3].value, "value");
        CHECK_INT(t.entries[3].line, 9);
        tablefile_done(&t);
}

TEST(map_bad_lines_are_reported_and_skipped)
{
        struct tablefile t = TABLEFILE_INIT;
        CHECK_INT(parse_map("  orphan continuation\nnovalue\ngood yes\n", &t), 0);
        CHECK_INT(t.n_entries, 1);
        CHECK_STR(t.entries[0].key, "good");
        CHECK_INT(t.n_diags, 2);
        CHECK_INT(t.diags[0].line, 1);
        CHECK(strstr(t.diags[0].message, "continuation") != NULL);
        CHECK_INT(t.diags[1].line, 2);
        CHECK_STR(t.diags[1].message, "expected format: key whitespace value");
        tablefile_done(&t);
}

TEST(map_nul_byte_and_long_line_skipped)
{
        struct tablefile t = TABLEFILE_INIT;
        const char text[] = "a b\nx\0y z\nc d\n";
        CHECK_INT(tablefile_parse_map(text, sizeof text - 1, &t), 0);
        CHECK_INT(t.n_entries, 2);
        CHECK_STR(t.entries[1].key, "c");
        CHECK_INT(t.n_diags, 1);
        CHECK_INT(t.diags[0].line, 2);
        tablefile_done(&t);

        size_t n = TABLEFILE_LINE_MAX + 10;
        char *big = xmalloc(n + 20);
        memset(big, 'k', n);
        strcpy(big + n, " v\nok 1\n");
        CHECK_INT(parse_map(big, &t), 0);
        free(big);
        CHECK_INT(t.n_entries, 1);
        CHECK_STR(t.entries[0].key, "ok");
        CHECK_INT(t.n_diags, 1);
        CHECK(strstr(t.diags[0].message, "longer") != NULL);
        tablefile_done(&t);
}

TEST(lines_keep_blanks_inside)
{
        struct tablefile t = TABLEFILE_INIT;
        const char *text = "/^From: .*spam/ REJECT no thanks\n  continued\n# c\n/x y/i OK\n";
        CHECK_INT(tablefile_parse_lines(text, strlen(text), &t), 0);
        CHECK_INT(t.n_entries, 2);
        CHECK_STR(t.entries[0].key, "/^From: .*spam/ REJECT no thanks  continued");
        CHECK(t.entries[0].value == NULL);
        CHECK_STR(t.entries[1].key, "/x y/i OK");
        CHECK_INT(t.entries[1].line, 4);
        tablefile_done(&t);
}

TEST(aliases_format)
{
        struct tablefile t = TABLEFILE_INIT;
        const char *text = "# /etc/aliases\n"
                           "postmaster: root\n"
                           "root :  linux, admin@example.com\n"
                           "team: a,\n"
                           "   b,\n"
                           "   :include:/etc/postfix/team.list\n"
                           "\"odd name\": x\n"
                           "nocolon here\n"
                           "empty:\n"
                           "\"unterminated: y\n";
        CHECK_INT(tablefile_parse_aliases(text, strlen(text), &t), 0);
        CHECK_INT(t.n_entries, 4);
        CHECK_STR(t.entries[0].key, "postmaster");
        CHECK_STR(t.entries[0].value, "root");
        CHECK_STR(t.entries[1].key, "root");
        CHECK_STR(t.entries[1].value, "linux, admin@example.com");
        CHECK_STR(t.entries[2].key, "team");
        CHECK_STR(t.entries[2].value, "a,   b,   :include:/etc/postfix/team.list");
        CHECK_STR(t.entries[3].key, "odd name");
        CHECK_INT(t.n_diags, 3);
        CHECK_INT(t.diags[0].line, 8);
        CHECK_STR(t.diags[0].message, "need name:value pair");
        CHECK_INT(t.diags[1].line, 9);
        CHECK_INT(t.diags[2].line, 10);
        tablefile_done(&t);
}

TEST(alias_targets_split_and_classify)
{
        struct strv v = STRV_INIT;
        CHECK_INT(tablefile_split_alias_targets(
                          "a,   b@example.com,:include:/etc/x ,\"|/usr/bin/prog a,b\", /var/mail/box,,", &v),
                  0);
        CHECK_INT(v.n, 5);
        CHECK_STR(v.v[0], "a");
        CHECK_STR(v.v[1], "b@example.com");
        CHECK_STR(v.v[2], ":include:/etc/x");
        CHECK_STR(v.v[3], "\"|/usr/bin/prog a,b\"");
        CHECK_STR(v.v[4], "/var/mail/box");

        char *arg = NULL;
        CHECK_INT(tablefile_alias_target_kind(v.v[0], &arg), ALIAS_TARGET_ADDRESS);
        CHECK_STR(arg, "a");
        free(arg);
        CHECK_INT(tablefile_alias_target_kind(v.v[2], &arg), ALIAS_TARGET_INCLUDE);
        CHECK_STR(arg, "/etc/x");
        free(arg);
        CHECK_INT(tablefile_alias_target_kind(v.v[3], &arg), ALIAS_TARGET_COMMAND);
        CHECK_STR(arg, "/usr/bin/prog a,b");
        free(arg);
        CHECK_INT(tablefile_alias_target_kind(v.v[4], &arg), ALIAS_TARGET_FILE);
        CHECK_STR(arg, "/var/mail/box");
        free(arg);
        strv_done(&v);
}

TEST(inline_syntax)
{
        struct tablefile t = TABLEFILE_INIT;
        const char *text = " { a=b, C=d,{ key = value with spaces }  e=f=g } ";
        CHECK_INT(tablefile_parse_inline(text, strlen(text), &t), 0);
        CHECK_INT(t.n_entries, 4);
        CHECK_STR(t.entries[0].key, "a");
        CHECK_STR(t.entries[0].value, "b");
        CHECK_STR(t.entries[1].key, "C");
        CHECK_STR(t.entries[2].key, "key");
        CHECK_STR(t.entries[2].value, "value with spaces");
        CHECK_STR(t.entries[3].key, "e");
        CHECK_STR(t.entries[3].value, "f=g");
        tablefile_done(&t);

        const char *bad[] = {"a=b", "{ a }", "{ =b }", "{ { a = b }", "{ a=b", "{ a=b} }"};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                CHECK_INT(tablefile_parse_inline(bad[i], strlen(bad[i]), &t), -EINVAL);
                CHECK(t.n_diags >= 1);
                tablefile_done(&t);
        }
}

TEST(aliases_empty_quoted_name)
{
        struct tablefile t = TABLEFILE_INIT;
        const char *text = "\"\": x\n\"a\\\"b\": y\n";
        CHECK_INT(tablefile_parse_aliases(text, strlen(text), &t), 0);
        CHECK_INT(t.n_diags, 1);
        CHECK_STR(t.diags[0].message, "need name:value pair");
        CHECK_INT(t.n_entries, 1);
        CHECK_STR(t.entries[0].key, "a\"b");
        tablefile_done(&t);
}
