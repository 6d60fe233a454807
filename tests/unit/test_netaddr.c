/* test_netaddr.c: IPv4/IPv6 address and CIDR parsing and matching. */
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>

#include "netaddr.h"

static bool match(const char *cidr, const char *addr)
{
        struct netaddr_cidr c;
        struct netaddr a;
        if (netaddr_parse_cidr(cidr, &c) < 0 || netaddr_parse(addr, &a) < 0)
                return false;
        return netaddr_cidr_match(&c, &a);
}

TEST(parse_addresses)
{
        struct netaddr a;
        char buf[NETADDR_FORMAT_MAX];
        CHECK_INT(netaddr_parse("192.0.2.1", &a), 0);
        CHECK_INT(a.family, AF_INET);
        CHECK_STR(netaddr_format(&a, buf, sizeof buf), "192.0.2.1");
        CHECK_INT(netaddr_parse("[2001:db8::1]", &a), 0);
        CHECK_INT(a.family, AF_INET6);
        CHECK_STR(netaddr_format(&a, buf, sizeof buf), "2001:db8::1");
        CHECK_INT(netaddr_parse("::1", &a), 0);

        const char *bad[] = {"",           "1.2.3",          "1.2.3.256",   "01.2.3.4", "[1.2.3.4", "::1]",
                             "1.2.3.4/32", "2001:db8::1::2", "example.com", " 1.2.3.4", "[]"};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                CHECK_INT(netaddr_parse(bad[i], &a), -EINVAL);
}

TEST(parse_cidr_forms)
{
        struct netaddr_cidr c;
        char buf[NETADDR_FORMAT_MAX];
        CHECK_INT(netaddr_parse_cidr("192.0.2.0/24", &c), 0);
        CHECK_INT(c.prefix, 24);
        CHECK_INT(netaddr_parse_cidr("10.1.2.3", &c), 0);
        CHECK_INT(c.prefix, 32);
        CHECK_INT(netaddr_parse_cidr("[::1]/128", &c), 0);
        CHECK_INT(c.prefix, 128);
        CHECK_INT(netaddr_parse_cidr("2001:db8::/32", &c), 0);
        CHECK_STR(netaddr_cidr_format(&c, buf, sizeof buf), "2001:db8::/32");
        CHECK_INT(netaddr_parse_cidr("0.0.0.0/0", &c), 0);
        CHECK_INT(c.prefix, 0);

        CHECK_INT(netaddr_parse_cidr("192.0.2.1/24", &c), -EDOM);
        CHECK_STR(netaddr_cidr_format(&c, buf, sizeof buf), "192.0.2.0/24");

        const char *bad[] = {"1.2.3.0/33",   "::/129",    "1.2.3.0/",     "1.2.3.0/-1", "1.2.3.0/+8",
                             "1.2.3.0/0008", "[::1/128]", "1.2.3.0/24/1", "/24",        "1.2.3.0/ 24"};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                CHECK_INT(netaddr_parse_cidr(bad[i], &c), -EINVAL);
}

TEST(cidr_matching)
{
        CHECK(match("192.0.2.0/24", "192.0.2.200"));
        CHECK(!match("192.0.2.0/24", "192.0.3.1"));
        CHECK(match("172.16.0.0/12", "172.31.255.255"));
        CHECK(!match("172.16.0.0/12", "172.32.0.0"));
        CHECK(match("0.0.0.0/0", "8.8.8.8"));
        CHECK(!match("0.0.0.0/0", "::1"));
        CHECK(match("10.0.0.1", "10.0.0.1"));
        CHECK(!match("10.0.0.1", "10.0.0.2"));
        CHECK(match("[::1]/128", "::1"));
        CHECK(!match("[::1]/128", "::2"));
        CHECK(match("2001:db8::/32", "2001:db8:ffff::1"));
        CHECK(!match("2001:db8::/32", "2001:db9::1"));
        CHECK(match("2001:db8::/33", "2001:db8:7fff::1"));
        CHECK(!match("2001:db8::/33", "2001:db8:8000::1"));
        /* a dual-stack socket's view of an IPv4 client */
        CHECK(match("127.0.0.0/8", "::ffff:127.0.0.1"));
        CHECK(!match("127.0.0.0/8", "::ffff:128.0.0.1"));
        CHECK(!match("::ffff:0:0/96", "127.0.0.1"));
}

TEST(unix_addresses)
{
        struct sockaddr_un sa;
        socklen_t len = 0;
        CHECK_INT(unix_address("/run/x.sock", &sa, &len), 0);
        CHECK_STR(sa.sun_path, "/run/x.sock");
        CHECK_INT(len, offsetof(struct sockaddr_un, sun_path) + strlen("/run/x.sock") + 1);
        CHECK_INT(unix_address("@name", &sa, &len), 0);
        CHECK(sa.sun_path[0] == '\0' && memcmp(sa.sun_path + 1, "name", 4) == 0);
        CHECK_INT(len, offsetof(struct sockaddr_un, sun_path) + 5); /* no NUL counted */
        CHECK_INT(unix_address("", &sa, &len), -EINVAL);
        CHECK_INT(unix_address("@", &sa, &len), -EINVAL);
        char name[sizeof sa.sun_path + 1];
        memset(name, 'x', sizeof name - 1);
        name[0] = '/';
        name[sizeof sa.sun_path - 1] = '\0'; /* 107 bytes and its NUL: fits */
        CHECK_INT(unix_address(name, &sa, &len), 0);
        name[sizeof sa.sun_path - 1] = 'x';
        name[sizeof sa.sun_path] = '\0'; /* 108 bytes: the NUL does not fit */
        CHECK_INT(unix_address(name, &sa, &len), -ENAMETOOLONG);
        name[0] = '@'; /* an abstract name of 108 bytes fits: no NUL */
        CHECK_INT(unix_address(name, &sa, &len), 0);
}
