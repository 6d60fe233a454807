/* test_smtp_client.c: the SMTP client's pure parts: next-hop syntax, DATA encoding, source address, SASL. */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "alloc.h"
#include "buf.h"
#include "dns.h"
#include "smtp_util.h"

TEST(lmtp_nexthop_forms)
{
        struct dns_nexthop nh;
        struct dns_addr ua;
        CHECK_INT(lmtp_nexthop_parse("unix:private/dovecot-lmtp", "/var/spool/postfix", &nh, &ua), 1);
        CHECK_STR(ua.host, "private/dovecot-lmtp");
        const struct sockaddr_un *sun = (const struct sockaddr_un *)&ua.sa;
        CHECK_INT(sun->sun_family, AF_UNIX);
        CHECK_STR(sun->sun_path, "/var/spool/postfix/private/dovecot-lmtp");
        CHECK_INT(lmtp_nexthop_parse("unix:/run/dovecot/lmtp", "/var/spool/postfix", &nh, &ua), 1);
        CHECK_STR(((const struct sockaddr_un *)&ua.sa)->sun_path, "/run/dovecot/lmtp");
        CHECK_INT(lmtp_nexthop_parse("inet:mail.example.test:2424", "/q", &nh, &ua), 0);
        CHECK_STR(nh.host, "mail.example.test");
        CHECK_INT(nh.port, 2424);
        CHECK(!nh.mx);
        CHECK_INT(lmtp_nexthop_parse("[127.0.0.1]:24", "/q", &nh, &ua), 0);
        CHECK_STR(nh.host, "127.0.0.1");
        CHECK(!nh.mx);
        CHECK_INT(lmtp_nexthop_parse("inet:store.example.test", "/q", &nh, &ua), 0);
        CHECK_INT(nh.port, 24);
        CHECK(!nh.mx);
        CHECK_INT(lmtp_nexthop_parse("unix:", "/q", &nh, &ua), -EINVAL);
        char longpath[200];
        memset(longpath, 'a', sizeof longpath - 1);
        longpath[sizeof longpath - 1] = '\0';
        char hop[220];
        snprintf(hop, sizeof hop, "unix:%s", longpath);
        CHECK_INT(lmtp_nexthop_parse(hop, "/q", &nh, &ua), -ENAMETOOLONG);
}

TEST(nexthop_forms)
{
        struct dns_nexthop nh;
        CHECK_INT(dns_nexthop_parse("[mail.isp.example]:587", 25, &nh), 0);
        CHECK_STR(nh.host, "mail.isp.example");
        CHECK_INT(nh.port, 587);
        CHECK(!nh.mx);
        CHECK_INT(dns_nexthop_parse("[192.0.2.1]", 25, &nh), 0);
        CHECK_STR(nh.host, "192.0.2.1");
        CHECK_INT(nh.port, 25);
        CHECK(!nh.mx);
        CHECK_INT(dns_nexthop_parse("example.net:submission", 25, &nh), 0);
        CHECK_STR(nh.host, "example.net");
        CHECK_INT(nh.port, 587);
        CHECK(nh.mx);
        CHECK_INT(dns_nexthop_parse("Example.NET.", 25, &nh), 0);
        CHECK_STR(nh.host, "Example.NET");
        CHECK_INT(dns_nexthop_parse("[ipv6:2001:db8::1]:2525", 25, &nh), 0);
        CHECK_STR(nh.host, "2001:db8::1");
        CHECK_INT(nh.port, 2525);
}

TEST(nexthop_rejects)
{
        struct dns_nexthop nh;
        CHECK_INT(dns_nexthop_parse("", 25, &nh), -EINVAL);
        CHECK_INT(dns_nexthop_parse("[host", 25, &nh), -EINVAL);
        CHECK_INT(dns_nexthop_parse("[]:25", 25, &nh), -EINVAL);
        CHECK_INT(dns_nexthop_parse("host:0", 25, &nh), -EINVAL);
        CHECK_INT(dns_nexthop_parse("host:65536", 25, &nh), -EINVAL);
        CHECK_INT(dns_nexthop_parse("host:nosuchservice", 25, &nh), -EINVAL);
        CHECK_INT(dns_nexthop_parse("ho st", 25, &nh), -EINVAL);
        CHECK_INT(dns_nexthop_parse("[host]x", 25, &nh), -EINVAL);
}

TEST(literal_needs_no_lookup)
{
        struct dns_nexthop nh;
        struct dns_result *res = xmalloc(sizeof *res);
        CHECK_INT(dns_nexthop_parse("[127.0.0.1]:2525", 25, &nh), 0);
        CHECK_INT(dns_resolve_literal(&nh, res), 1);
        CHECK_INT(res->n, 1);
        CHECK_INT(res->addrs[0].sa.ss_family, AF_INET);
        CHECK_INT(dns_nexthop_parse("[mail.example]", 25, &nh), 0);
        CHECK_INT(dns_resolve_literal(&nh, res), 0);
        free(res);
}

/* The mode, with *warned telling whether a warning came with it. */
static enum dns_lookup_mode mode(const char *level, bool disable, const char *host_lookup, bool *warned)
{
        char *warning = NULL;
        enum dns_lookup_mode m = dns_lookup_mode_parse(level, disable, host_lookup, &warning);
        *warned = warning != NULL;
        free(warning);
        return m;
}

TEST(lookup_mode_settings)
{
        bool w;
        CHECK_INT(mode("", false, "dns", &w), DNS_LOOKUP_DNS);
        CHECK(!w);
        CHECK_INT(mode("", true, "dns", &w), DNS_LOOKUP_NATIVE);
        CHECK(!w);
        CHECK_INT(mode("disabled", false, "dns", &w), DNS_LOOKUP_NATIVE);
        CHECK(!w);
        /* smtp_dns_support_level, once set, wins over the old disable_dns_lookups */
        CHECK_INT(mode("enabled", true, "dns", &w), DNS_LOOKUP_DNS);
        CHECK(!w);
        CHECK_INT(mode("", false, "native", &w), DNS_LOOKUP_NATIVE);
        CHECK(!w);
        CHECK_INT(mode("", false, "dns, native", &w), DNS_LOOKUP_DNS_NATIVE);
        CHECK(!w);
        CHECK_INT(mode("", false, "NATIVE,dns", &w), DNS_LOOKUP_DNS_NATIVE);
        CHECK(!w);
        CHECK_INT(mode("dnssec", false, "dns", &w), DNS_LOOKUP_DNS);
        CHECK(!w); /* DNS, with the DNSSEC status of each answer (dns_support_dnssec) */
        CHECK(dns_support_dnssec("DNSSEC") && !dns_support_dnssec("enabled") && !dns_support_dnssec(""));
        CHECK_INT(mode("sometimes", false, "dns", &w), DNS_LOOKUP_DNS);
        CHECK(w);
        CHECK_INT(mode("", false, "nis", &w), DNS_LOOKUP_DNS);
        CHECK(w);
}

TEST(native_mode_skips_mx)
{
        /* "localhost" has no MX in any DNS; natively it is in /etc/hosts: found without DNS. */
        struct dns_nexthop nh;
        struct dns_result *res = xmalloc(sizeof *res);
        CHECK_INT(dns_nexthop_parse("localhost:2525", 25, &nh), 0);
        CHECK(nh.mx);
        nh.mode = DNS_LOOKUP_NATIVE;
        CHECK_INT(dns_resolve(&nh, DNS_FAMILY_IPV4, res), 0);
        CHECK(res->n >= 1);
        CHECK_INT(res->addrs[0].sa.ss_family, AF_INET);
        CHECK_STR(res->addrs[0].host, "localhost");
        free(res);
}

static char *encode_all(const char *content, size_t max_out)
{
        struct buf out = BUF_INIT;
        size_t off = 0;
        bool bol = true;
        for (int i = 0; i < 100000; i++)
                if (smtp_data_encode(content, strlen(content), &off, &bol, &out, max_out) == 1)
                        break;
        return buf_steal(&out);
}

TEST(data_encoding)
{
        char *s = encode_all("a\n.b\n..c\nd\r\nlast", 65536);
        CHECK_STR(s, "a\r\n..b\r\n...c\r\nd\r\nlast\r\n.\r\n");
        free(s);
        /* Tiny chunks must give the same bytes: lines split across calls keep their state. */
        s = encode_all("a\n.b\n..c\nd\r\nlast", 1);
        CHECK_STR(s, "a\r\n..b\r\n...c\r\nd\r\nlast\r\n.\r\n");
        free(s);
        s = encode_all("", 10);
        CHECK_STR(s, ".\r\n");
        free(s);
        s = encode_all(".\n", 10);
        CHECK_STR(s, "..\r\n.\r\n");
        free(s);
        CHECK(smtp_content_is_8bit("caf\xc3\xa9", 5));
        CHECK(!smtp_content_is_8bit("cafe", 4));
}

TEST(content_8bit_at_every_position)
{
        /* The word-at-a-time scan must see one high byte anywhere, and nothing past len. */
        enum { N = 200 };
        char text[N + 1];
        memset(text, 'a', sizeof text);
        text[N] = (char)0xe9; /* just outside */
        CHECK(!smtp_content_is_8bit(text, N));
        for (size_t pos = 0; pos < N; pos++) {
                text[pos] = (char)0x80;
                CHECK(smtp_content_is_8bit(text, N));
                CHECK(pos + 1 >= N || !smtp_content_is_8bit(text + pos + 1, N - pos - 1));
                text[pos] = 'a';
        }
}

TEST(source_address_rule)
{
        char out[64];
        const char *param;
        smtp_source_address(AF_INET, "127.0.0.5", "smtp_bind_address", "all", out, sizeof out, &param);
        CHECK_STR(out, "127.0.0.5");
        CHECK_STR(param, "smtp_bind_address");
        /* One non-loopback address in inet_interfaces: the seed 000 trap. */
        smtp_source_address(AF_INET, "", "smtp_bind_address", "192.0.2.10", out, sizeof out, &param);
        CHECK_STR(out, "192.0.2.10");
        CHECK_STR(param, "inet_interfaces");
        smtp_source_address(AF_INET, "", "smtp_bind_address", " 192.0.2.10 ", out, sizeof out, &param);
        CHECK_STR(out, "192.0.2.10");
        smtp_source_address(AF_INET, "", "smtp_bind_address", "127.0.0.1", out, sizeof out, &param);
        CHECK_STR(out, "");
        CHECK(param == NULL);
        smtp_source_address(AF_INET, "", "smtp_bind_address", "192.0.2.10, 192.0.2.11", out, sizeof out,
                            &param);
        CHECK_STR(out, "");
        smtp_source_address(AF_INET, "", "smtp_bind_address", "all", out, sizeof out, &param);
        CHECK_STR(out, "");
        smtp_source_address(AF_INET6, "", "smtp_bind_address6", "192.0.2.10", out, sizeof out, &param);
        CHECK_STR(out, "");
        smtp_source_address(AF_INET6, "", "smtp_bind_address6", "[2001:db8::5]", out, sizeof out, &param);
        CHECK_STR(out, "2001:db8::5");
        smtp_source_address(AF_INET6, "", "smtp_bind_address6", "::1", out, sizeof out, &param);
        CHECK_STR(out, "");
}

TEST(sasl_keys_and_values)
{
        struct strv keys = STRV_INIT;
        smtp_sasl_keys("[mail.isp.example]:587", "mail.isp.example", 587, &keys);
        CHECK_INT(keys.n, 4);
        CHECK_STR(keys.v[0], "[mail.isp.example]:587");
        CHECK_STR(keys.v[1], "[mail.isp.example]");
        CHECK_STR(keys.v[2], "mail.isp.example:587");
        CHECK_STR(keys.v[3], "mail.isp.example");
        strv_done(&keys);

        char *user = NULL, *pass = NULL;
        CHECK_INT(smtp_sasl_split("alice:pa:ss", &user, &pass), 0);
        CHECK_STR(user, "alice");
        CHECK_STR(pass, "pa:ss");
        free(user);
        free(pass);
        CHECK_INT(smtp_sasl_split(":x", &user, &pass), -EINVAL);
        CHECK_INT(smtp_sasl_split("nocolon", &user, &pass), -EINVAL);

        unsigned f = 0;
        CHECK_INT(smtp_sasl_options_parse("noplaintext, noanonymous", &f), 0);
        CHECK_INT(f, SMTP_SASL_NOPLAINTEXT | SMTP_SASL_NOANONYMOUS);
        CHECK_INT(smtp_sasl_options_parse("", &f), 0);
        CHECK_INT(f, 0);
        CHECK_INT(smtp_sasl_options_parse("noplaintext bogus", &f), -EINVAL);
}

TEST(base64_round_trip)
{
        char *b = smtp_base64("\0alice\0secret", 13);
        CHECK_STR(b, "AGFsaWNlAHNlY3JldA==");
        char out[32];
        CHECK_INT(smtp_base64_decode(b, out, sizeof out), 13);
        CHECK(memcmp(out, "\0alice\0secret", 13) == 0);
        free(b);
        b = smtp_base64("", 0);
        CHECK_STR(b, "");
        free(b);
        CHECK_INT(smtp_base64_decode("!!", out, sizeof out), -EINVAL);
        CHECK_INT(smtp_base64_decode("AAAAAAAA", out, 2), -EINVAL);
}

TEST(greeting_names_myself)
{
        CHECK(smtp_reply_names_myself("mx.example.test ESMTP Postfix", "mx.example.test"));
        CHECK(smtp_reply_names_myself("MX.Example.TEST", "mx.example.test"));
        CHECK(smtp_reply_names_myself("mx.example.test.\nPIPELINING", "mx.example.test"));
        CHECK(smtp_reply_names_myself("mx.example.test\tESMTP", "mx.example.test."));
        CHECK(!smtp_reply_names_myself("mx.example.testing ESMTP", "mx.example.test"));
        CHECK(!smtp_reply_names_myself("mx.example ESMTP", "mx.example.test"));
        CHECK(!smtp_reply_names_myself("other.example ESMTP mx.example.test", "mx.example.test"));
        CHECK(!smtp_reply_names_myself("", "mx.example.test"));
        CHECK(!smtp_reply_names_myself(" mx.example.test", "mx.example.test"));
        CHECK(!smtp_reply_names_myself("mx.example.test", ""));
        CHECK(!smtp_reply_names_myself(NULL, "mx.example.test"));

        char *r = smtp_loop_reason("example.net", "example.net");
        CHECK(strncmp(r, "mail for example.net loops back to myself (", 43) == 0);
        CHECK(strstr(r, "mydestination") && strstr(r, "transport_maps") && strstr(r, "relayhost"));
        free(r);
        r = smtp_loop_reason("localhost", "example.net");
        CHECK_STR(r, "mail for localhost loops back to myself (if this host is the final destination for "
                     "example.net, add it to mydestination; otherwise fix relayhost, transport_maps or the "
                     "MX records of localhost)");
        free(r);
}
