/* test_virtual.c: virtual alias expansion and canonical mapping over a fake table; virtual alias domains. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "config.h"
#include "resolve.h"
#include "unit.h"
#include "virtual.h"

/* A table as NULL-terminated key/value pairs; keys match without regard to case, as hash: tables do. */
struct fake_table {
        const char *const *pairs;
        const char *fail_key; /* looking this key up is a table failure */
        unsigned lookups;
};

static int fake_lookup(void *userdata, const char *address, char **ret_value)
{
        struct fake_table *t = userdata;
        t->lookups++;
        if (t->fail_key && strcasecmp(address, t->fail_key) == 0)
                return -EIO;
        /* "user@domain", then the "@domain" catch-all, as maps_find_address does for other domains. */
        const char *at = strrchr(address, '@');
        const char *keys[] = {address, at};
        for (size_t k = 0; k < 2 && keys[k]; k++)
                for (size_t i = 0; t->pairs[i]; i += 2)
                        if (strcasecmp(t->pairs[i], keys[k]) == 0) {
                                *ret_value = xstrdup(t->pairs[i + 1]);
                                return 1;
                        }
        return 0;
}

/* A bare user gets "@origin.test", as cleanup's myorigin rewriting does. */
static char *fake_canon(void *userdata, const char *address)
{
        return strchr(address, '@') ? xstrdup(address) : xasprintf("%s@origin.test", address);
}

static struct virtual_ops ops_for(struct fake_table *t)
{
        return (struct virtual_ops){
                .lookup = fake_lookup,
                .canon = fake_canon,
                .userdata = t,
                .recursion_limit = VIRTUAL_RECURSION_LIMIT_DEFAULT,
                .expansion_limit = VIRTUAL_EXPANSION_LIMIT_DEFAULT,
                .address_length_limit = VIRTUAL_ADDRESS_LENGTH_LIMIT_DEFAULT,
        };
}

/* The expansion joined with spaces, or "ERROR:<limit or lookup>@<where>". */
static char *expand(struct virtual_ops *ops, const char *address)
{
        struct virtual_result vr;
        int r = virtual_expand(ops, address, &vr);
        struct buf b = BUF_INIT;
        if (r < 0)
                buf_printf(&b, "ERROR:%s@%s",
                           vr.status == VIRTUAL_LOOKUP_FAILED ? "lookup"
                                                              : virtual_status_limit_name(vr.status),
                           vr.where);
        else
                for (size_t i = 0; i < vr.addresses.n; i++)
                        buf_printf(&b, "%s%s", i ? " " : "", vr.addresses.v[i]);
        virtual_result_done(&vr);
        buf_putc(&b, '\0');
        return buf_steal(&b);
}

#define CHECK_EXPAND(ops, address, expected)                      \
        do {                                                      \
                _cleanup_free_ char *_got = expand(ops, address); \
                CHECK_STR(_got, expected);                        \
        } while (0)

TEST(not_in_table_is_final)
{
        static const char *const pairs[] = {NULL};
        struct fake_table t = {.pairs = pairs};
        struct virtual_ops ops = ops_for(&t);
        CHECK_EXPAND(&ops, "user@example.test", "user@example.test");
        CHECK_INT(t.lookups, 1);
}

TEST(one_to_many_recursive_with_duplicates)
{
        static const char *const pairs[] = {
                "team@virtual.test",
                "alice@virtual.test, bob@virtual.test\tcarol@other.test",
                "alice@virtual.test",
                "alice@real.test",
                "bob@virtual.test",
                "alice@real.test bob@real.test",
                NULL,
        };
        struct fake_table t = {.pairs = pairs};
        struct virtual_ops ops = ops_for(&t);
        CHECK_EXPAND(&ops, "team@virtual.test", "alice@real.test bob@real.test carol@other.test");
        CHECK_EXPAND(&ops, "TEAM@Virtual.Test", "alice@real.test bob@real.test carol@other.test");
}

TEST(self_reference_is_kept_and_not_expanded_again)
{
        static const char *const pairs[] = {
                "user@example.test",
                "user@example.test, archive@example.test",
                "archive@example.test",
                "store@backup.test",
                NULL,
        };
        struct fake_table t = {.pairs = pairs};
        struct virtual_ops ops = ops_for(&t);
        CHECK_EXPAND(&ops, "user@example.test", "user@example.test store@backup.test");
        /* The self-reference matches without regard to case. */
        CHECK_EXPAND(&ops, "User@Example.test", "user@example.test store@backup.test");
}

TEST(at_domain_value_keeps_user_and_bare_user_is_canonicalised)
{
        static const char *const pairs[] = {
                "@old.test", "@new.test", "root@new.test", "admin", NULL,
        };
        struct fake_table t = {.pairs = pairs};
        struct virtual_ops ops = ops_for(&t);
        CHECK_EXPAND(&ops, "jane@old.test", "jane@new.test");
        CHECK_EXPAND(&ops, "root@old.test", "admin@origin.test");
}

TEST(loop_hits_recursion_limit)
{
        static const char *const pairs[] = {"a@x.test", "b@x.test", "b@x.test", "a@x.test", NULL};
        struct fake_table t = {.pairs = pairs};
        struct virtual_ops ops = ops_for(&t);
        CHECK_EXPAND(&ops, "a@x.test", "ERROR:virtual_alias_recursion_limit@a@x.test");
        CHECK_INT(t.lookups, VIRTUAL_RECURSION_LIMIT_DEFAULT);

        /* Exactly limit rewrites are allowed; one more is not. */
        static const char *const chain[] = {"1@x.test", "2@x.test", "2@x.test", "3@x.test", NULL};
        struct fake_table c = {.pairs = chain};
        struct virtual_ops cops = ops_for(&c);
        cops.recursion_limit = 3;
        CHECK_EXPAND(&cops, "1@x.test", "3@x.test");
        cops.recursion_limit = 2;
        CHECK_EXPAND(&cops, "1@x.test", "ERROR:virtual_alias_recursion_limit@3@x.test");
}

TEST(expansion_and_length_limits)
{
        static const char *const pairs[] = {"list@x.test", "a@y.test b@y.test c@y.test d@y.test", NULL};
        struct fake_table t = {.pairs = pairs};
        struct virtual_ops ops = ops_for(&t);
        ops.expansion_limit = 4;
        CHECK_EXPAND(&ops, "list@x.test", "a@y.test b@y.test c@y.test d@y.test");
        ops.expansion_limit = 3;
        CHECK_EXPAND(&ops, "list@x.test", "ERROR:virtual_alias_expansion_limit@list@x.test");
        ops.expansion_limit = 100;
        ops.address_length_limit = 7;
        CHECK_EXPAND(&ops, "list@x.test", "ERROR:virtual_alias_address_length_limit@list@x.test");
}

TEST(fan_out_is_bounded_by_lookups)
{
        /* Every level doubles the paths to the same two leaves: without a bound this is 2^500 lookups. */
        static char *pairs[2 * 501 + 1];
        for (int i = 0; i < 500; i++) {
                pairs[2 * i] = xasprintf("n%d@x.test", i);
                pairs[2 * i + 1] = xasprintf("n%d@x.test, n%d@x.test", i + 1, i + 1);
        }
        struct fake_table t = {.pairs = (const char *const *)pairs};
        struct virtual_ops ops = ops_for(&t);
        _cleanup_free_ char *got = expand(&ops, "n0@x.test");
        CHECK(strncmp(got, "ERROR:VIRTUAL_LOOKUPS_MAX@", 26) == 0);
        CHECK(t.lookups <= VIRTUAL_LOOKUPS_MAX);
        for (int i = 0; i < 1000; i++)
                free(pairs[i]);
}

TEST(lookup_failure_is_reported)
{
        static const char *const pairs[] = {"a@x.test", "b@x.test, c@x.test", NULL};
        struct fake_table t = {.pairs = pairs, .fail_key = "c@x.test"};
        struct virtual_ops ops = ops_for(&t);
        CHECK_EXPAND(&ops, "a@x.test", "ERROR:lookup@c@x.test");
}

TEST(canonical_one_to_one)
{
        static const char *const pairs[] = {
                "old@x.test",  "mid@x.test, ignored@x.test",
                "mid@x.test",  "new@y.test",
                "@z.test",     "@y.test",
                "self@x.test", "SELF@x.test",
                "p@x.test",    "q@x.test",
                "q@x.test",    "p@x.test",
                NULL,
        };
        struct fake_table t = {.pairs = pairs};
        struct virtual_ops ops = ops_for(&t);
        char *out = NULL;
        bool deep = false;
        CHECK_INT(virtual_map_one(&ops, "old@x.test", &out, &deep), 0);
        CHECK_STR(out, "new@y.test");
        CHECK(!deep);
        free(out);
        CHECK_INT(virtual_map_one(&ops, "kim@z.test", &out, &deep), 0);
        CHECK_STR(out, "kim@y.test");
        free(out);
        CHECK_INT(virtual_map_one(&ops, "nobody@x.test", &out, &deep), 0);
        CHECK_STR(out, "nobody@x.test");
        free(out);
        CHECK_INT(virtual_map_one(&ops, "self@x.test", &out, &deep), 0);
        CHECK_STR(out, "SELF@x.test");
        free(out);
        CHECK_INT(virtual_map_one(&ops, "p@x.test", &out, &deep), 0);
        CHECK(deep);
        CHECK_STR(out, "p@x.test");
        free(out);
        t.fail_key = "mid@x.test";
        CHECK_INT(virtual_map_one(&ops, "old@x.test", &out, &deep), -EIO);
        CHECK(!out);
}

TEST(split_value)
{
        struct strv v = STRV_INIT;
        virtual_split_value(" a@x, \"b c\"@y\t\n d@z,,", &v);
        CHECK_INT(v.n, 3);
        CHECK_STR(v.v[0], "a@x");
        CHECK_STR(v.v[1], "\"b c\"@y");
        CHECK_STR(v.v[2], "d@z");
        strv_done(&v);
}

/* ---- the resolver's side: virtual alias domains ---- */

static struct resolve *open_resolver(const char *text, struct config **ret_c)
{
        struct config *c = NULL;
        if (config_load_text("/nonexistent", text, strlen(text), &c) < 0)
                return NULL;
        config_set_hostname(c, "mx.example.test");
        struct resolve *r = NULL;
        char *err = NULL;
        if (resolve_new(c, &r, &err) < 0) {
                free(err);
                config_free(c);
                return NULL;
        }
        *ret_c = c;
        return r;
}

#define BASE                                                                              \
        "myhostname = mx.example.test\nmydomain = example.test\nmyorigin = origin.test\n" \
        "mydestination = $myhostname, localhost\ninet_interfaces = 127.0.0.1\n"

TEST(virtual_alias_domains_default_from_table_keys)
{
        struct config *c = NULL;
        struct resolve *r = open_resolver(
                BASE
                "virtual_alias_maps = inline:{ virtual.test=whatever, info@virtual.test=postd@localhost, "
                "@catch.test=all@localhost, root=admin@localhost }\n",
                &c);
        CHECK(r);
        CHECK_INT(resolve_domain_is_virtual_alias(r, "virtual.test"), 1);
        CHECK_INT(resolve_domain_is_virtual_alias(r, "Catch.Test."), 1);
        CHECK_INT(resolve_domain_is_virtual_alias(r, "other.test"), 0);
        CHECK_INT(resolve_domain_is_virtual_alias(r, "[127.0.0.1]"), 0);

        char *v = NULL;
        CHECK_INT(resolve_virtual_alias_find(r, "info@virtual.test", &v), 1);
        CHECK_STR(v, "postd@localhost");
        free(v);
        CHECK_INT(resolve_virtual_alias_find(r, "anyone@catch.test", &v), 1);
        CHECK_STR(v, "all@localhost");
        free(v);
        CHECK_INT(resolve_virtual_alias_find(r, "nobody@virtual.test", &v), 0);
        /* The bare user key only for our own domains: $myorigin, $mydestination, our addresses. */
        CHECK_INT(resolve_virtual_alias_find(r, "root@origin.test", &v), 1);
        free(v);
        CHECK_INT(resolve_virtual_alias_find(r, "root@localhost", &v), 1);
        free(v);
        CHECK_INT(resolve_virtual_alias_find(r, "root@[127.0.0.1]", &v), 1);
        free(v);
        CHECK_INT(resolve_virtual_alias_find(r, "root@other.test", &v), 0);

        struct resolve_result res;
        CHECK_INT(resolve_address(r, "nobody@virtual.test", &res), 0);
        CHECK_STR(res.transport, "error");
        CHECK_STR(res.nexthop, "5.1.1 <nobody@virtual.test>: User unknown in virtual alias table");
        CHECK(!res.local);
        resolve_result_done(&res);
        CHECK_INT(resolve_address(r, "user@other.test", &res), 0);
        CHECK_STR(res.transport, "smtp");
        resolve_result_done(&res);
        resolve_free(r);
        config_free(c);
}

TEST(virtual_alias_domains_explicit_list_and_local_wins)
{
        struct config *c = NULL;
        struct resolve *r = open_resolver(BASE "virtual_alias_maps = inline:{ a@virtual.test=b@localhost }\n"
                                               "virtual_alias_domains = listed.test, localhost, "
                                               "inline:{ table.test=x }\n",
                                          &c);
        CHECK(r);
        CHECK_INT(resolve_domain_is_virtual_alias(r, "listed.test"), 1);
        CHECK_INT(resolve_domain_is_virtual_alias(r, "table.test"), 1);
        CHECK_INT(resolve_domain_is_virtual_alias(r, "virtual.test"), 0);
        struct resolve_result res;
        CHECK_INT(resolve_address(r, "user@localhost", &res), 0);
        CHECK_STR(res.transport, "local");
        resolve_result_done(&res);
        CHECK_INT(resolve_address(r, "user@table.test", &res), 0);
        CHECK_STR(res.transport, "error");
        resolve_result_done(&res);
        resolve_free(r);
        config_free(c);
}

TEST(missing_table_is_a_lookup_failure_not_a_start_failure)
{
        struct config *c = NULL;
        struct resolve *r = open_resolver(BASE "virtual_alias_maps = hash:/nonexistent/virtual\n", &c);
        CHECK(r);
        char *v = NULL;
        CHECK(resolve_virtual_alias_find(r, "a@b.test", &v) < 0);
        CHECK(resolve_domain_is_virtual_alias(r, "b.test") < 0);
        struct resolve_result res;
        CHECK(resolve_address(r, "a@b.test", &res) < 0);
        /* Local mail does not need the table. */
        CHECK_INT(resolve_address(r, "a@localhost", &res), 0);
        resolve_result_done(&res);
        resolve_free(r);
        config_free(c);
}
