/* test_local.c: unit tests of local's pure helpers: forward_path macros, sysexits, list splitting. */
#include <stdlib.h>
#include <string.h>

#include "../../src/local/local.h"
#include "unit.h"

struct vars {
        const char *home, *user, *extension, *delimiter;
};

static const char *lookup(void *userdata, const char *name)
{
        const struct vars *v = userdata;
        return strcmp(name, "home") == 0                  ? v->home
               : strcmp(name, "user") == 0                ? v->user
               : strcmp(name, "extension") == 0           ? v->extension
               : strcmp(name, "recipient_delimiter") == 0 ? v->delimiter
                                                          : NULL;
}

static char *expand(const char *tmpl, const struct vars *v)
{
        static char *last;
        free(last);
        last = local_expand(tmpl, lookup, (void *)v);
        return last;
}

TEST(forward_path_default_elements)
{
        const char *with_ext = "$home/.forward${recipient_delimiter}${extension}";
        struct vars v = {"/home/u", "u", "lists", "+"};
        CHECK_STR(expand(with_ext, &v), "/home/u/.forward+lists");
        CHECK_STR(expand("$home/.forward", &v), "/home/u/.forward");
        /* No extension, or no delimiter: the element does not apply (never "/home/u/.forward+"). */
        v.extension = "";
        CHECK(expand(with_ext, &v) == NULL);
        v = (struct vars){"/home/u", "u", "x", ""};
        CHECK(expand(with_ext, &v) == NULL);
        CHECK_STR(expand("$(home)/x-$user", &v), "/home/u/x-u");
        CHECK(expand("$unknown/x", &v) == NULL);
        CHECK(expand("${home", &v) == NULL);
        CHECK_STR(expand("plain", &v), "plain");
        /* Conditional text: present or absent with the macro, never "undefined". */
        v = (struct vars){"/home/u", "u", "", "+"};
        CHECK_STR(expand("$home/.forward${extension?+lists}", &v), "/home/u/.forward");
        CHECK_STR(expand("${extension:none}", &v), "none");
        v.extension = "x";
        CHECK_STR(expand("${extension?+}${extension}", &v), "+x");
        CHECK_STR(expand("a${extension:none}b", &v), "ab");
}

TEST(sysexits_soft_and_hard)
{
        const char *dsn, *text;
        CHECK(command_exit_status(75, &dsn, &text));
        CHECK_STR(dsn, "4.3.0");
        CHECK(command_exit_status(71, &dsn, &text));
        CHECK(!command_exit_status(67, &dsn, &text));
        CHECK_STR(dsn, "5.1.1");
        CHECK_STR(text, "user unknown");
        CHECK(!command_exit_status(69, &dsn, &text));
        CHECK_STR(dsn, "5.3.0");
        CHECK(!command_exit_status(77, &dsn, &text));
        CHECK_STR(dsn, "5.7.0");
        CHECK(!command_exit_status(1, &dsn, &text));
        CHECK(dsn == NULL && text == NULL);
}

TEST(list_members)
{
        struct strv v = STRV_INIT;
        CHECK_INT(alias_split("a, \"|cmd x, y\" , /f,:include:/l", &v), 0);
        CHECK_INT(v.n, 4);
        CHECK_STR(v.v[0], "a");
        CHECK_STR(v.v[1], "|cmd x, y");
        CHECK_STR(v.v[2], "/f");
        CHECK_STR(v.v[3], ":include:/l");
        strv_done(&v);
        char *s = local_strip_extension("user+ext", "+");
        CHECK_STR(s, "user");
        free(s);
}
