/* test_cleanup_rewrite.c: unit tests of cleanup's address canonicalisation (src/cleanup/rewrite.c). */
#include <stdlib.h>

#include "../../src/cleanup/rewrite.h"
#include "unit.h"

static const struct rewrite_opts both = {"example.com", "example.com", true, true};
static const struct rewrite_opts origin_only = {"mx.example.com", "example.com", true, false};
static const struct rewrite_opts none = {"example.com", "example.com", false, false};

static char *rw(const struct rewrite_opts *o, const char *a)
{
        static char *last;
        free(last);
        last = rewrite_address(o, a);
        return last;
}

TEST(null_sender_stays_empty)
{
        CHECK_STR(rw(&both, ""), "");
}

TEST(append_at_myorigin)
{
        CHECK_STR(rw(&origin_only, "user"), "user@mx.example.com");
        CHECK_STR(rw(&none, "user"), "user");
        CHECK_STR(rw(&origin_only, "user@"), "user@mx.example.com");
}

TEST(append_dot_mydomain)
{
        CHECK_STR(rw(&both, "user@host"), "user@host.example.com");
        CHECK_STR(rw(&origin_only, "user@host"), "user@host");
        CHECK_STR(rw(&both, "user@host.other.org"), "user@host.other.org");
        CHECK_STR(rw(&both, "user@[192.0.2.1]"), "user@[192.0.2.1]");
        /* "user" gets @myorigin, which already has a dot */
        CHECK_STR(rw(&both, "user"), "user@example.com");
}

TEST(myorigin_without_dot_gets_mydomain_too)
{
        struct rewrite_opts o = {"mail", "example.org", true, true};
        CHECK_STR(rw(&o, "root"), "root@mail.example.org");
}

TEST(case_is_kept)
{
        CHECK_STR(rw(&both, "John.Doe@Example.COM"), "John.Doe@Example.COM");
        CHECK_STR(rw(&origin_only, "UPPER"), "UPPER@mx.example.com");
}

TEST(trailing_dots_removed)
{
        CHECK_STR(rw(&none, "user@example.net."), "user@example.net");
        CHECK_STR(rw(&none, "user@example.net.."), "user@example.net");
}

TEST(source_route_and_bang_path)
{
        CHECK_STR(rw(&none, "@relay.example,@r2.example:user@example.net"), "user@example.net");
        CHECK_STR(rw(&none, "host.example.net!user"), "user@host.example.net");
}

TEST(quoted_local_part)
{
        CHECK_STR(rw(&none, "\"a@b\"@example.net"), "\"a@b\"@example.net");
        CHECK_STR(rw(&origin_only, "\"a@b\""), "\"a@b\"@mx.example.com");
}

static char *hv(const struct rewrite_opts *o, const char *v)
{
        static char *last;
        free(last);
        last = rewrite_header_value(o, v, strlen(v));
        return last;
}

TEST(header_values)
{
        CHECK_STR(hv(&origin_only, " root"), " root@mx.example.com");
        CHECK_STR(hv(&origin_only, " Root User <root>"), " Root User <root@mx.example.com>");
        CHECK_STR(hv(&origin_only, " a, b@x.org, \"Doe, J\" <jd>"),
                  " a@mx.example.com, b@x.org, \"Doe, J\" <jd@mx.example.com>");
        CHECK_STR(hv(&origin_only, " bob (Bob, the builder)"), " bob@mx.example.com (Bob, the builder)");
        CHECK_STR(hv(&origin_only, " friends: a, b;"), " friends: a@mx.example.com, b@mx.example.com;");
        CHECK_STR(hv(&origin_only, " a,\n\tb"), " a@mx.example.com,\n\tb@mx.example.com");
}

TEST(header_values_unchanged_give_null)
{
        CHECK(hv(&origin_only, " user@example.org") == NULL);
        CHECK(hv(&origin_only, " <>") == NULL);
        CHECK(hv(&origin_only, " undisclosed-recipients:;") == NULL);
        CHECK(hv(&origin_only, "") == NULL);
        /* broken syntax is left alone rather than half rewritten */
        CHECK(hv(&origin_only, " \"unterminated a") == NULL);
        CHECK(hv(&origin_only, " (unterminated a") == NULL);
        CHECK(hv(&origin_only, " <a") == NULL);
        /* free text without an address is not rewritten */
        CHECK(hv(&origin_only, " John Doe") == NULL);
}

TEST(header_value_limits)
{
        size_t n = REWRITE_HEADER_VALUE_MAX + 10;
        char *big = malloc(n + 1);
        memset(big, 'a', n);
        big[n] = '\0';
        CHECK(rewrite_header_value(&origin_only, big, n) == NULL);
        free(big);

        /* nested comments beyond the limit stop the rewriting */
        char deep[200] = " a ";
        for (int i = 0; i < 40; i++)
                strcat(deep, "(");
        CHECK(hv(&origin_only, deep) == NULL);
}
