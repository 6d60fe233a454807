/* test_dict.c: every lookup table type, the type registry's messages, and maps' search orders. */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "alloc.h"
#include "dict.h"
#include "maps.h"
#include "postd-build.h"

/* Look key up in an open table: the value, "" + NULL-free "(none)" when not found, "(error)" on error. */
static char *lookup(struct dict *d, const char *key)
{
        char *v = NULL;
        int r = dict_get(d, key, &v);
        if (r < 0)
                return xstrdup("(error)");
        return r == 0 ? xstrdup("(none)") : v;
}

#define CHECK_LOOKUP(d, key, expected)                                                                  \
        do {                                                                                            \
                char *_v = lookup(d, key);                                                              \
                if (strcmp(_v, expected) != 0) {                                                        \
                        unit_fail(__FILE__, __LINE__, "lookup(%s) == \"%s\", expected \"%s\"", key, _v, \
                                  expected);                                                            \
                        free(_v);                                                                       \
                        return;                                                                         \
                }                                                                                       \
                free(_v);                                                                               \
        } while (0)

static struct dict *open_ok(const char *spec)
{
        struct dict *d = NULL;
        char *err = NULL;
        int r = dict_open(spec, &d, &err);
        if (r < 0) {
                fprintf(stderr, "  dict_open(%s): %s\n", spec, err);
                free(err);
                return NULL;
        }
        return d;
}

static int write_db(const char *path, char **keys, char **values, size_t n)
{
        char *err = NULL;
        int r = dict_db_write(path, keys, values, n, 0644, (uid_t)-1, (gid_t)-1, &err);
        if (r < 0)
                fprintf(stderr, "  dict_db_write: %s\n", err);
        free(err);
        return r;
}

/* The optional table types this build has (meson: libpcre2-8, lmdb), in the registry's order. */
#if HAVE_LMDB && HAVE_PCRE2
#define OPTIONAL_TYPES "lmdb, pcre, "
#elif HAVE_LMDB
#define OPTIONAL_TYPES "lmdb, "
#elif HAVE_PCRE2
#define OPTIONAL_TYPES "pcre, "
#else
#define OPTIONAL_TYPES ""
#endif

TEST(hash_build_lookup_fold_and_rebuild_while_open)
{
        char *base = xasprintf("%s/transport", unit_tmpdir());
        char *db = dict_db_path(base);
        char *keys1[] = {"example.net", ".example.net"}, *vals1[] = {"smtp:[mail.isp.example]", "relay:x"};
        CHECK_INT(write_db(db, keys1, vals1, 2), 0);
        struct stat st;
        CHECK_INT(stat(db, &st), 0);
        CHECK_INT(st.st_mode & 0777, 0644);

        char *spec = xasprintf("hash:%s", base);
        struct dict *d = open_ok(spec);
        CHECK(d != NULL);
        CHECK_STR(dict_type_name(d), "hash");
        CHECK_STR(dict_name(d), base);
        CHECK_LOOKUP(d, "example.net", "smtp:[mail.isp.example]");
        CHECK_LOOKUP(d, "EXAMPLE.Net", "smtp:[mail.isp.example]");
        CHECK_LOOKUP(d, ".example.net", "relay:x");
        CHECK_LOOKUP(d, "example.org", "(none)");

        /* postmap replaces the file by rename; the open table must follow it. */
        char *keys2[] = {"example.net"}, *vals2[] = {"smtp:[new.example]"};
        CHECK_INT(write_db(db, keys2, vals2, 1), 0);
        CHECK_LOOKUP(d, "example.net", "smtp:[new.example]");
        CHECK_LOOKUP(d, ".example.net", "(none)");
        dict_close(d);

        /* btree: is the same GDBM format */
        char *bspec = xasprintf("btree:%s", base);
        d = open_ok(bspec);
        CHECK(d != NULL);
        CHECK_LOOKUP(d, "example.net", "smtp:[new.example]");
        dict_close(d);

        /* no temporary files are left behind */
        char *cmd = xasprintf("test -z \"$(ls %s | grep tmp)\"", unit_tmpdir());
        CHECK_INT(system(cmd), 0);
        free(cmd);
        free(bspec);
        free(spec);
        free(db);
        free(base);
}

static int count_entry(const char *key, const char *value, void *userdata)
{
        size_t *n = userdata;
        if (streq(key, "k2") && streq(value, "v2"))
                n[1]++;
        n[0]++;
        return 0;
}

TEST(hash_walk_and_missing_file)
{
        char *db = xasprintf("%s/walk.db", unit_tmpdir());
        char *keys[] = {"k1", "k2", "k3"}, *vals[] = {"v1", "v2", "v3"};
        CHECK_INT(write_db(db, keys, vals, 3), 0);
        char *spec = xasprintf("hash:%s/walk", unit_tmpdir());
        struct dict *d = open_ok(spec);
        CHECK(d != NULL);
        size_t n[2] = {0, 0};
        CHECK_INT(dict_walk(d, count_entry, n), 0);
        CHECK_INT(n[0], 3);
        CHECK_INT(n[1], 1);
        dict_close(d);

        char *err = NULL;
        d = NULL;
        CHECK_INT(dict_open("hash:/nonexistent/dir/table", &d, &err), -ENOENT);
        CHECK_STR(err, "open database /nonexistent/dir/table.db: No such file or directory");
        free(err);
        err = NULL;
        CHECK_INT(dict_check_spec("hash:/nonexistent/dir/table", &err), -ENOENT);
        free(err);
        err = NULL;
        CHECK_INT(dict_check_spec(spec, &err), 0);
        free(spec);
        free(db);
}

TEST(unsupported_type_message)
{
        struct dict *d = NULL;
        char *err = NULL;
        CHECK_INT(dict_open("sdbm:/etc/postfix/transport", &d, &err), -EPROTONOSUPPORT);
        CHECK_STR(err, "unsupported dictionary type: sdbm (supported types: btree, cidr, hash, "
                       "inline, " OPTIONAL_TYPES "regexp, static, texthash, unix)");
        free(err);
        err = NULL;
        CHECK_INT(dict_check_spec("dbm:/x", &err), -EPROTONOSUPPORT);
        CHECK(strstr(err, "unsupported dictionary type: dbm") == err);
        free(err);
        err = NULL;
        CHECK_INT(dict_open("/etc/aliases", &d, &err), -EINVAL);
        CHECK_STR(err, "expecting \"type:name\" form instead of \"/etc/aliases\"");
        free(err);
        CHECK(!dict_type_supported("dbm"));
        const char *types[] = {"btree", "cidr", "hash", "inline", "regexp", "static", "texthash", "unix"};
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
                CHECK(dict_type_supported(types[i]));
                CHECK(strstr(dict_supported_types(), types[i]) != NULL);
        }
}

TEST(texthash_reads_source)
{
        const char *path = unit_write_file("th", "# x\nAlice alice@example.com\nbob  bob@example.com,\n"
                                                 "   bob2@example.com\nalice dup@example.com\n");
        char *spec = xasprintf("texthash:%s", path);
        struct dict *d = open_ok(spec);
        CHECK(d != NULL);
        CHECK_LOOKUP(d, "alice", "alice@example.com");
        CHECK_LOOKUP(d, "ALICE", "alice@example.com");
        CHECK_LOOKUP(d, "bob", "bob@example.com,   bob2@example.com");
        CHECK_LOOKUP(d, "carol", "(none)");
        dict_close(d);
        free(spec);
}

TEST(inline_and_static)
{
        struct dict *d = open_ok("inline:{ a=b, Key=Value, { x = with spaces, and comma } }");
        CHECK(d != NULL);
        CHECK_LOOKUP(d, "a", "b");
        CHECK_LOOKUP(d, "KEY", "Value");
        CHECK_LOOKUP(d, "x", "with spaces, and comma");
        CHECK_LOOKUP(d, "b", "(none)");
        dict_close(d);

        char *err = NULL;
        d = NULL;
        CHECK_INT(dict_open("inline:a=b", &d, &err), -EINVAL);
        CHECK(strstr(err, "inline:a=b") != NULL);
        free(err);

        d = open_ok("static:anyone");
        CHECK(d != NULL);
        CHECK_LOOKUP(d, "root", "anyone");
        CHECK_LOOKUP(d, "", "anyone");
        dict_close(d);
        /* no proxymap service: proxy:TYPE:NAME is TYPE:NAME */
        d = open_ok("proxy:static:anyone");
        CHECK(d != NULL);
        CHECK_STR(dict_spec(d), "static:anyone");
        CHECK_LOOKUP(d, "x", "anyone");
        dict_close(d);
        d = open_ok("static:{ OK with spaces }");
        CHECK(d != NULL);
        CHECK_LOOKUP(d, "x", "OK with spaces");
        dict_close(d);
}

TEST(cidr_v4_v6_first_match)
{
        const char *path = unit_write_file("access.cidr", "# clients\n"
                                                          "192.0.2.1       OK one\n"
                                                          "192.0.2.0/24    REJECT net\n"
                                                          "192.0.2.1/24    bad host bits\n"
                                                          "garbage         skipped\n"
                                                          "[::1]/128       OK v6 loopback\n"
                                                          "2001:db8::/32   DUNNO doc\n"
                                                          "0.0.0.0/0       DEFER rest\n");
        char *spec = xasprintf("cidr:%s", path);
        struct dict *d = open_ok(spec);
        CHECK(d != NULL);
        CHECK_LOOKUP(d, "192.0.2.1", "OK one");
        CHECK_LOOKUP(d, "192.0.2.77", "REJECT net");
        CHECK_LOOKUP(d, "::1", "OK v6 loopback");
        CHECK_LOOKUP(d, "2001:db8:1::5", "DUNNO doc");
        CHECK_LOOKUP(d, "2001:db9::5", "(none)");
        CHECK_LOOKUP(d, "10.9.8.7", "DEFER rest");
        CHECK_LOOKUP(d, "::ffff:192.0.2.9", "REJECT net");
        CHECK_LOOKUP(d, "not an address", "(none)");
        dict_close(d);
        free(spec);

        char *err = NULL;
        d = NULL;
        CHECK_INT(dict_open("cidr:/nonexistent/x.cidr", &d, &err), -ENOENT);
        CHECK_STR(err, "open /nonexistent/x.cidr: No such file or directory");
        free(err);
}

TEST(regexp_substitution_flags_and_if)
{
        const char *path = unit_write_file("re", "# header checks\n"
                                                 "/^(.*)@old\\.example$/   $1@new.example\n"
                                                 "/^CaseSensitive$/i      exact case\n"
                                                 "/^casesensitive/        any case\n"
                                                 "if /\\.test$/\n"
                                                 "/^a/                    a in test\n"
                                                 "!/^b/                   not b in test\n"
                                                 "endif\n"
                                                 "/^(x+)(y+)?z$/          [${1}|$2|$$]\n"
                                                 "/a\\/b/                 slash\n"
                                                 "/bad($/                 skipped: bad regexp\n"
                                                 "/^(q)$/                 $2 skipped: no group 2\n"
                                                 "/^nores/\n");
        char *spec = xasprintf("regexp:%s", path);
        struct dict *d = open_ok(spec);
        CHECK(d != NULL);
        CHECK_LOOKUP(d, "joe@old.example", "joe@new.example");
        CHECK_LOOKUP(d, "JOE@OLD.EXAMPLE", "JOE@new.example");
        CHECK_LOOKUP(d, "CaseSensitive", "exact case");
        CHECK_LOOKUP(d, "casesensitive", "any case");
        CHECK_LOOKUP(d, "a.test", "a in test");
        CHECK_LOOKUP(d, "c.test", "not b in test");
        CHECK_LOOKUP(d, "b.test", "(none)");
        CHECK_LOOKUP(d, "a.other", "(none)");
        CHECK_LOOKUP(d, "xxz", "[xx||$]");
        CHECK_LOOKUP(d, "xyyz", "[x|yy|$]");
        CHECK_LOOKUP(d, "1a/b2", "slash");
        CHECK_LOOKUP(d, "q", "(none)");
        dict_close(d);
        free(spec);
}

#if HAVE_PCRE2
TEST(pcre_flags_groups_and_if)
{
        const char *path = unit_write_file("pcre", "/^Subject:.*\\b(viagra|cialis)\\b/ REJECT no $1\n"
                                                   "/^(\\w+)@old\\.example$/   $1@new.example\n"
                                                   "/^CaseSensitive$/i        exact case\n"
                                                   "if /\\.test$/\n"
                                                   "/^a/                      a in test\n"
                                                   "!/^b/                     not b in test\n"
                                                   "endif\n"
                                                   "/^x.y$/s                  dotall\n"
                                                   "/^(a+?)(a*)$/U            [$1|$2]\n"
                                                   "/bad(/                    skipped: bad pcre\n"
                                                   "/^(q)$/z                  skipped: unknown flag\n");
        char *spec = xasprintf("pcre:%s", path);
        struct dict *d = open_ok(spec);
        CHECK(d != NULL);
        CHECK_LOOKUP(d, "Subject: buy VIAGRA now", "REJECT no VIAGRA");
        CHECK_LOOKUP(d, "Subject: viagrax", "(none)");
        CHECK_LOOKUP(d, "joe@OLD.example", "joe@new.example");
        CHECK_LOOKUP(d, "casesensitive", "(none)");
        CHECK_LOOKUP(d, "CaseSensitive", "exact case");
        CHECK_LOOKUP(d, "a.test", "a in test");
        CHECK_LOOKUP(d, "c.test", "not b in test");
        CHECK_LOOKUP(d, "b.test", "(none)");
        CHECK_LOOKUP(d, "x\ny", "dotall");
        /* U makes quantifiers lazy by default, so "a+?" turns greedy. */
        CHECK_LOOKUP(d, "aaa", "[aaa|]");
        CHECK_LOOKUP(d, "q", "(none)");
        dict_close(d);
        free(spec);
        char *err = NULL;
        path = unit_write_file("pcre-badif", "if /(/\n/x/ y\nendif\n");
        spec = xasprintf("pcre:%s", path);
        d = NULL;
        CHECK_INT(dict_open_strict(spec, &d, &err), -EINVAL);
        CHECK(err && strstr(err, "line 1") != NULL);
        free(err);
        free(spec);
}
#endif

#if HAVE_LMDB
TEST(lmdb_write_read_walk)
{
        const char *dir = unit_write_file("lmdb-src", "x\n");
        char *db = xasprintf("%s.lmdb", dir);
        char *keys[] = {"alice@example.com", "example.net"};
        char *values[] = {"smtp:[relay]:25", "OK"};
        char *err = NULL;
        CHECK_INT(dict_table_write("lmdb", db, keys, values, 2, 0640, (uid_t)-1, (gid_t)-1, &err), 0);
        struct stat st;
        CHECK(stat(db, &st) == 0 && (st.st_mode & 0777) == 0640);
        char *spec = xasprintf("lmdb:%s", dir);
        struct dict *d = open_ok(spec);
        CHECK(d != NULL);
        CHECK_LOOKUP(d, "ALICE@example.com", "smtp:[relay]:25");
        CHECK_LOOKUP(d, "example.net", "OK");
        CHECK_LOOKUP(d, "example.org", "(none)");
        /* A rebuilt table is seen by an open reader (postmap renames a new file over the old one). */
        char *values2[] = {"relay:[other]", "REJECT"};
        CHECK_INT(dict_table_write("lmdb", db, keys, values2, 2, 0644, (uid_t)-1, (gid_t)-1, &err), 0);
        CHECK_LOOKUP(d, "example.net", "REJECT");
        dict_close(d);
        free(spec);
        free(db);
}
#endif

TEST(unix_passwd_byname)
{
        struct dict *d = open_ok("unix:passwd.byname");
        CHECK(d != NULL);
        char *v = lookup(d, "root");
        CHECK(strncmp(v, "root:", 5) == 0);
        CHECK(strstr(v, ":0:0:") != NULL);
        free(v);
        CHECK_LOOKUP(d, "no-such-user-postd-test", "(none)");
        dict_close(d);

        char *err = NULL;
        d = NULL;
        CHECK_INT(dict_open("unix:group.byname", &d, &err), -EINVAL);
        free(err);
}

TEST(maps_open_error_names_parameter)
{
        struct maps *m = NULL;
        char *err = NULL;
        CHECK_INT(maps_open("transport_maps", "hash:/nonexistent/t, sdbm:/etc/postfix/transport", &m, &err),
                  -ENOENT);
        CHECK_STR(err,
                  "transport_maps: hash:/nonexistent/t: open database /nonexistent/t.db: No such file or "
                  "directory");
        free(err);
        err = NULL;
        CHECK_INT(maps_open("transport_maps", "sdbm:/etc/postfix/transport", &m, &err), -EPROTONOSUPPORT);
        CHECK_STR(err, "transport_maps: sdbm:/etc/postfix/transport: unsupported dictionary type: sdbm "
                       "(supported types: btree, cidr, hash, inline, " OPTIONAL_TYPES
                       "regexp, static, texthash, unix)");
        free(err);

        CHECK_INT(maps_open("relay_domains", "", &m, &err), 0);
        CHECK_INT(maps_count(m), 0);
        char *v = NULL;
        CHECK_INT(maps_find(m, "x", &v), 0);
        maps_free(m);
}

TEST(maps_split_keeps_braces)
{
        struct strv v = STRV_INIT;
        maps_split_list(" hash:/a, inline:{ a=b, { c = d e } },static:x\n\tcidr:/c", &v);
        CHECK_INT(v.n, 4);
        CHECK_STR(v.v[0], "hash:/a");
        CHECK_STR(v.v[1], "inline:{ a=b, { c = d e } }");
        CHECK_STR(v.v[2], "static:x");
        CHECK_STR(v.v[3], "cidr:/c");
        strv_done(&v);
}

TEST(maps_find_domain_order)
{
        struct maps *m = NULL;
        char *err = NULL;
        CHECK_INT(maps_open("transport_maps",
                            "inline:{ .example.net=parent, .net=tld, b.example.net=exact-b }, "
                            "inline:{ a.b.example.net=second-table-exact, .b.example.net=second-parent }",
                            &m, &err),
                  0);
        char *v = NULL;
        /* the exact domain in the second table beats a parent in the first */
        CHECK_INT(maps_find_domain(m, "a.b.example.net", &v), 1);
        CHECK_STR(v, "second-table-exact");
        free(v);
        CHECK_INT(maps_find_domain(m, "c.b.example.net", &v), 1);
        CHECK_STR(v, "second-parent");
        free(v);
        CHECK_INT(maps_find_domain(m, "B.Example.NET", &v), 1);
        CHECK_STR(v, "exact-b");
        free(v);
        CHECK_INT(maps_find_domain(m, "x.y.example.net", &v), 1);
        CHECK_STR(v, "parent");
        free(v);
        CHECK_INT(maps_find_domain(m, "example.net", &v), 1);
        CHECK_STR(v, "tld");
        free(v);
        CHECK_INT(maps_find_domain(m, "example.org", &v), 0);
        CHECK_INT(maps_find_domain(m, "net", &v), 0);
        maps_free(m);
}

TEST(maps_find_address_order)
{
        struct maps *m = NULL;
        char *err = NULL;
        CHECK_INT(maps_open("virtual_alias_maps",
                            "inline:{ joe@example.com=full, joe=bare, @example.com=catchall }", &m, &err),
                  0);
        char *v = NULL;
        CHECK_INT(maps_find_address(m, "joe@example.com", false, &v), 1);
        CHECK_STR(v, "full");
        free(v);
        CHECK_INT(maps_find_address(m, "joe@example.org", true, &v), 1);
        CHECK_STR(v, "bare");
        free(v);
        CHECK_INT(maps_find_address(m, "joe@example.org", false, &v), 0);
        CHECK_INT(maps_find_address(m, "ann@example.com", true, &v), 1);
        CHECK_STR(v, "catchall");
        free(v);
        CHECK_INT(maps_find_address(m, "joe", false, &v), 1);
        CHECK_STR(v, "bare");
        free(v);
        maps_free(m);
}
