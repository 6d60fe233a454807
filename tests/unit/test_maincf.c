/* test_maincf.c: main.cf parser (continuations, comments, bad lines, limits) and the postconf -e/-X/-#
 * editor. */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>

#include "alloc.h"
#include "buf.h"
#include "maincf.h"

static int parse(const char *text, struct maincf *m)
{
        return maincf_parse(text, strlen(text), m);
}

TEST(parse_basic_entries_and_whitespace)
{
        struct maincf m;
        CHECK_INT(parse("a = 1\nb=2\n  \nc   =    three words   \t\nempty =\nlast=x", &m), 0);
        CHECK_INT(m.n_entries, 5);
        CHECK_INT(m.n_diags, 0);
        CHECK_STR(m.entries[0].name, "a");
        CHECK_STR(m.entries[0].value, "1");
        CHECK_STR(m.entries[1].value, "2");
        CHECK_STR(m.entries[2].name, "c");
        CHECK_STR(m.entries[2].value, "three words");
        CHECK_INT(m.entries[2].line, 4);
        CHECK_STR(m.entries[3].value, "");
        CHECK_STR(m.entries[4].value, "x");
        CHECK_INT(m.entries[4].line, 6);
        maincf_done(&m);
}

TEST(parse_continuation_lines_join_with_one_space)
{
        struct maincf m;
        CHECK_INT(parse("mydestination = a,\n    b,\n\tc\r\nnext = 1\n", &m), 0);
        CHECK_INT(m.n_entries, 2);
        CHECK_STR(m.entries[0].value, "a, b, c");
        CHECK_INT(m.entries[0].line, 1);
        CHECK_INT(m.entries[0].last_line, 3);
        CHECK_STR(m.entries[1].name, "next");
        CHECK_INT(m.entries[1].line, 4);
        maincf_done(&m);
}

TEST(parse_comments_only_at_line_start)
{
        struct maincf m;
        CHECK_INT(parse("# comment\n   # indented comment\nrelayhost = [h]:25 # not a comment\nx = a\n  # "
                        "c\n  b\n",
                        &m),
                  0);
        CHECK_INT(m.n_entries, 2);
        CHECK_STR(m.entries[0].value, "[h]:25 # not a comment");
        /* A comment line inside a multi-line value neither ends nor joins it. */
        CHECK_STR(m.entries[1].value, "a b");
        CHECK_INT(m.n_diags, 0);
        maincf_done(&m);
}

TEST(parse_bad_lines_become_diagnostics)
{
        struct maincf m;
        CHECK_INT(parse("  leading continuation\n   more\nfoo bar\n  baz\nbad-name = 1\n= x\ngood = yes\n",
                        &m),
                  0);
        CHECK_INT(m.n_entries, 1);
        CHECK_STR(m.entries[0].name, "good");
        CHECK_INT(m.entries[0].line, 7);
        CHECK_INT(m.n_diags, 4);
        CHECK_INT(m.diags[0].line, 1);
        CHECK_STR(m.diags[0].message, "continuation line before any parameter");
        CHECK_INT(m.diags[1].line, 3);
        CHECK_STR(m.diags[1].message, "missing '=' after parameter name: \"foo bar baz\"");
        CHECK_INT(m.diags[2].line, 5);
        CHECK_STR(m.diags[2].message, "bad parameter name: \"bad-name\"");
        CHECK_INT(m.diags[3].line, 6);
        CHECK_STR(m.diags[3].message, "missing parameter name before '='");
        maincf_done(&m);
}

TEST(parse_last_duplicate_wins_in_find)
{
        struct maincf m;
        CHECK_INT(parse("a = 1\nb = 2\na = 3\n", &m), 0);
        CHECK_INT(m.n_entries, 3);
        CHECK_STR(maincf_find(&m, "a")->value, "3");
        CHECK(maincf_find(&m, "zzz") == NULL);
        maincf_done(&m);
}

TEST(parse_limits)
{
        struct maincf m;
        /* File size limit. */
        size_t big = MAINCF_FILE_MAX + 1;
        char *text = xmalloc(big + 1);
        memset(text, '#', big);
        text[big] = 0;
        CHECK_INT(maincf_parse(text, big, &m), -EFBIG);
        CHECK_INT(m.n_entries, 0);
        free(text);

        /* Logical line limit, reached through continuations. */
        struct buf b = BUF_INIT;
        buf_puts(&b, "long = x\n");
        for (unsigned i = 0; i < MAINCF_LINE_MAX / 1000 + 2; i++) {
                buf_puts(&b, " ");
                for (int k = 0; k < 1000; k++)
                        buf_putc(&b, 'y');
                buf_puts(&b, "\n");
        }
        buf_puts(&b, "after = 1\n");
        CHECK_INT(maincf_parse(b.data, b.len, &m), 0);
        CHECK_INT(m.n_entries, 1);
        CHECK_STR(m.entries[0].name, "after");
        CHECK_INT(m.n_diags, 1);
        CHECK_INT(m.diags[0].line, 1);
        CHECK(strstr(m.diags[0].message, "line too long") != NULL);
        maincf_done(&m);
        buf_done(&b);

        /* Diagnostics are capped, with one summary at the end. */
        for (unsigned i = 0; i < MAINCF_DIAGS_MAX * 2; i++)
                buf_puts(&b, "bad line\n");
        CHECK_INT(maincf_parse(b.data, b.len, &m), 0);
        CHECK_INT(m.n_diags, MAINCF_DIAGS_MAX);
        CHECK(strstr(m.diags[MAINCF_DIAGS_MAX - 1].message, "too many errors") != NULL);
        CHECK(strstr(m.diags[MAINCF_DIAGS_MAX - 1].message, "101 more") != NULL);
        maincf_done(&m);
        buf_done(&b);
}

TEST(parse_nul_and_control_bytes_are_safe)
{
        struct maincf m;
        static const char text[] = "a = 1\0junk\nb\x01 = 2\n";
        CHECK_INT(maincf_parse(text, sizeof text - 1, &m), 0);
        CHECK_INT(m.n_entries, 1);
        CHECK_STR(m.entries[0].name, "a");
        CHECK_INT(m.n_diags, 1);
        CHECK_STR(m.diags[0].message, "bad parameter name: \"b?\"");
        maincf_done(&m);
}

static char *edit(const char *text, const struct maincf_edit *edits, size_t n)
{
        char *out = NULL;
        size_t len = 0;
        if (maincf_edit(text, strlen(text), edits, n, &out, &len) < 0)
                return NULL;
        if (strlen(out) != len) {
                free(out);
                return NULL;
        }
        return out;
}

static const char sample[] = "# header comment\n"
                             "\n"
                             "myhostname = host.example.com\n"
                             "# about relays\n"
                             "relayhost =\n"
                             "mydestination = $myhostname,\n"
                             "    localhost\n"
                             "unrelated=keep   \n"
                             "#trailing comment";

TEST(edit_set_in_place_keeps_everything_else)
{
        struct maincf_edit e[] = {{"relayhost", "[127.0.0.1]:2526", MAINCF_EDIT_SET}};
        char *out = edit(sample, e, 1);
        CHECK(out);
        CHECK_STR(out, "# header comment\n"
                       "\n"
                       "myhostname = host.example.com\n"
                       "# about relays\n"
                       "relayhost = [127.0.0.1]:2526\n"
                       "mydestination = $myhostname,\n"
                       "    localhost\n"
                       "unrelated=keep   \n"
                       "#trailing comment");
        free(out);
}

TEST(edit_replaces_multi_line_entry_and_appends_new)
{
        struct maincf_edit e[] = {
                {"mydestination", "localhost", MAINCF_EDIT_SET},
                {"newparam", "v", MAINCF_EDIT_SET},
                {"empty", "", MAINCF_EDIT_SET},
        };
        char *out = edit(sample, e, 3);
        CHECK(out);
        CHECK_STR(out, "# header comment\n"
                       "\n"
                       "myhostname = host.example.com\n"
                       "# about relays\n"
                       "relayhost =\n"
                       "mydestination = localhost\n"
                       "unrelated=keep   \n"
                       "#trailing comment\n"
                       "newparam = v\n"
                       "empty =\n");
        free(out);
}

TEST(edit_remove_and_comment_out)
{
        struct maincf_edit e[] = {
                {"myhostname", NULL, MAINCF_EDIT_REMOVE},
                {"mydestination", NULL, MAINCF_EDIT_COMMENT},
                {"notthere", NULL, MAINCF_EDIT_REMOVE},
        };
        char *out = edit(sample, e, 3);
        CHECK(out);
        CHECK_STR(out, "# header comment\n"
                       "\n"
                       "# about relays\n"
                       "relayhost =\n"
                       "#mydestination = $myhostname,\n"
                       "#    localhost\n"
                       "unrelated=keep   \n"
                       "#trailing comment");
        /* The commented-out entry is gone for the parser. */
        struct maincf m;
        CHECK_INT(parse(out, &m), 0);
        CHECK(maincf_find(&m, "mydestination") == NULL);
        CHECK_INT(m.n_diags, 0);
        maincf_done(&m);
        free(out);
}

TEST(edit_duplicates_collapse_and_last_edit_wins)
{
        struct maincf_edit e[] = {
                {"a", "first", MAINCF_EDIT_SET},
                {"a", "second", MAINCF_EDIT_SET},
        };
        char *out = edit("a = 1\nb = 2\na = 3\n", e, 2);
        CHECK(out);
        CHECK_STR(out, "a = second\nb = 2\n");
        free(out);
}

TEST(edit_appends_after_missing_final_newline_and_rejects_bad_input)
{
        struct maincf_edit e[] = {{"x", "1", MAINCF_EDIT_SET}};
        char *out = edit("a = 1", e, 1);
        CHECK(out);
        CHECK_STR(out, "a = 1\nx = 1\n");
        free(out);
        out = edit("", e, 1);
        CHECK_STR(out, "x = 1\n");
        free(out);

        char *r = NULL;
        struct maincf_edit bad_name[] = {{"bad-name", "1", MAINCF_EDIT_SET}};
        CHECK_INT(maincf_edit("", 0, bad_name, 1, &r, NULL), -EINVAL);
        struct maincf_edit bad_value[] = {{"ok", "1\nevil = 2", MAINCF_EDIT_SET}};
        CHECK_INT(maincf_edit("", 0, bad_value, 1, &r, NULL), -EINVAL);
        CHECK(r == NULL);
}

TEST(split_assignment_forms)
{
        char *n = NULL, *v = NULL;
        CHECK_INT(maincf_split_assignment("relayhost = [127.0.0.1]:2526", &n, &v), 0);
        CHECK_STR(n, "relayhost");
        CHECK_STR(v, "[127.0.0.1]:2526");
        free(n);
        free(v);
        CHECK_INT(maincf_split_assignment("authorized_submit_users=static:anyone", &n, &v), 0);
        CHECK_STR(n, "authorized_submit_users");
        CHECK_STR(v, "static:anyone");
        free(n);
        free(v);
        CHECK_INT(maincf_split_assignment("x=a=b", &n, &v), 0);
        CHECK_STR(v, "a=b");
        free(n);
        free(v);
        CHECK_INT(maincf_split_assignment("novalue", &n, &v), -EINVAL);
        CHECK_INT(maincf_split_assignment(" = v", &n, &v), -EINVAL);
        CHECK_INT(maincf_split_assignment("a b = v", &n, &v), -EINVAL);
}
