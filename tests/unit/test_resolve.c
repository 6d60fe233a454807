/* test_resolve.c: unit tests of the next-hop resolver and the delivery log formatting. */
#include <errno.h>
#include <string.h>

#include "config.h"
#include "delivery.h"
#include "resolve.h"
#include "unit.h"

static struct config *conf(const char *text)
{
        struct config *c = NULL;
        if (config_load_text("/nonexistent", text, strlen(text), &c) < 0)
                return NULL;
        config_set_hostname(c, "mx.example.test");
        return c;
}

static struct resolve *open_resolver(const char *text, struct config **ret_c)
{
        struct config *c = conf(text);
        if (!c)
                return NULL;
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

/* Resolve addr and compare; "transport:nexthop:L" (L = 1 local, 0 not). Returns 1 on match. */
static int check_resolve(struct resolve *r, const char *addr, const char *transport, const char *nexthop,
                         bool local)
{
        struct resolve_result res;
        if (resolve_address(r, addr, &res) < 0)
                return 0;
        int ok = streq(res.transport, transport) && streq(res.nexthop, nexthop) && res.local == local;
        if (!ok)
                fprintf(stderr, "  %s -> %s:%s local=%d, expected %s:%s local=%d\n", addr, res.transport,
                        res.nexthop, res.local, transport, nexthop, local);
        resolve_result_done(&res);
        return ok;
}

#define BASE \
        "myhostname = mx.example.test\nmydomain = example.test\ninet_interfaces = 127.0.0.1, 192.0.2.7\n"

TEST(local_domains)
{
        struct config *c = NULL;
        struct resolve *r =
                open_resolver(BASE "mydestination = $myhostname, localhost, .sub.example.test\n", &c);
        CHECK(r);
        CHECK(check_resolve(r, "user@mx.example.test", "local", "mx.example.test", true));
        CHECK(check_resolve(r, "User@MX.Example.Test.", "local", "mx.example.test", true));
        CHECK(check_resolve(r, "user@localhost", "local", "mx.example.test", true));
        /* no domain: local (cleanup normally appends myorigin) */
        CHECK(check_resolve(r, "user", "local", "mx.example.test", true));
        /* ".sub.example.test" matches subdomains only */
        CHECK(check_resolve(r, "a@x.sub.example.test", "local", "mx.example.test", true));
        CHECK(check_resolve(r, "a@sub.example.test", "smtp", "sub.example.test", false));
        /* mydestination does not match subdomains of a plain entry */
        CHECK(check_resolve(r, "a@x.mx.example.test", "smtp", "x.mx.example.test", false));
        /* address literals of our interfaces */
        CHECK(check_resolve(r, "a@[127.0.0.1]", "local", "mx.example.test", true));
        CHECK(check_resolve(r, "a@[192.0.2.7]", "local", "mx.example.test", true));
        CHECK(check_resolve(r, "a@[192.0.2.8]", "smtp", "[192.0.2.8]", false));
        CHECK_INT(resolve_domain_is_local(r, "LOCALHOST"), 1);
        CHECK_INT(resolve_domain_is_local(r, "example.org"), 0);
        resolve_free(r);
        config_free(c);
}

TEST(negation_and_table)
{
        struct config *c = NULL;
        struct resolve *r = open_resolver(BASE "mydestination = !bad.example.test, inline:{ "
                                               "{bad.example.test=1}, {good.example.test=1} }\n",
                                          &c);
        CHECK(r);
        CHECK(check_resolve(r, "a@good.example.test", "local", "mx.example.test", true));
        CHECK(check_resolve(r, "a@bad.example.test", "smtp", "bad.example.test", false));
        resolve_free(r);
        config_free(c);
}

TEST(default_and_relayhost)
{
        struct config *c = NULL;
        struct resolve *r = open_resolver(BASE "mydestination = $myhostname\n", &c);
        CHECK(r);
        CHECK(check_resolve(r, "a@example.org", "smtp", "example.org", false));
        resolve_free(r);
        config_free(c);

        r = open_resolver(BASE "mydestination = $myhostname\nrelayhost = [smart.example.net]:587\n", &c);
        CHECK(r);
        CHECK(check_resolve(r, "a@example.org", "smtp", "[smart.example.net]:587", false));
        /* relayhost never applies to local mail */
        CHECK(check_resolve(r, "a@mx.example.test", "local", "mx.example.test", true));
        resolve_free(r);
        config_free(c);

        r = open_resolver(BASE "default_transport = error:no outbound mail\n", &c);
        CHECK(r);
        CHECK(check_resolve(r, "a@example.org", "error", "no outbound mail", false));
        resolve_free(r);
        config_free(c);
}

TEST(relay_domains)
{
        struct config *c = NULL;
        struct resolve *r =
                open_resolver(BASE "relay_domains = example.net\nrelayhost = gw.example.test\n", &c);
        CHECK(r);
        CHECK(check_resolve(r, "a@example.net", "relay", "gw.example.test", false));
        /* relay_domains matches subdomains (parent_domain_matches_subdomains) */
        CHECK(check_resolve(r, "a@deep.example.net", "relay", "gw.example.test", false));
        CHECK(check_resolve(r, "a@example.com", "smtp", "gw.example.test", false));
        resolve_free(r);
        config_free(c);

        r = open_resolver(BASE "relay_domains = example.net\nrelay_transport = relay:[in.example.test]\n",
                          &c);
        CHECK(r);
        CHECK(check_resolve(r, "a@example.net", "relay", "[in.example.test]", false));
        resolve_free(r);
        config_free(c);
}

TEST(transport_maps_order)
{
        struct config *c = NULL;
        struct resolve *r =
                open_resolver(BASE "mydestination = $myhostname\n"
                                   "transport_maps = inline:{ {special@example.org=slow:[10.0.0.1]}, "
                                   "{example.org=fast:}, {.example.org=:[parent.example.org]}, "
                                   "{boss@mx.example.test=lmtp:unix:/run/lmtp} }\n",
                              &c);
        CHECK(r);
        /* full address first */
        CHECK(check_resolve(r, "special@example.org", "slow", "[10.0.0.1]", false));
        /* then the domain: empty nexthop keeps the default nexthop (the domain) */
        CHECK(check_resolve(r, "other@example.org", "fast", "example.org", false));
        /* then .parent: empty transport keeps the class transport */
        CHECK(check_resolve(r, "x@a.b.example.org", "smtp", "[parent.example.org]", false));
        /* the map overrides local delivery too; the address stays local */
        CHECK(check_resolve(r, "boss@mx.example.test", "lmtp", "unix:/run/lmtp", true));
        CHECK(check_resolve(r, "someone@mx.example.test", "local", "mx.example.test", true));
        CHECK(check_resolve(r, "x@example.com", "smtp", "example.com", false));
        resolve_free(r);
        config_free(c);

        r = open_resolver(BASE "transport_maps = inline:{ {*=catchall:[hub]} }\n", &c);
        CHECK(r);
        CHECK(check_resolve(r, "x@example.com", "catchall", "[hub]", false));
        resolve_free(r);
        config_free(c);
}

TEST(virtual_mailbox_domains)
{
        struct config *c = NULL;
        /* The default virtual_mailbox_domains ($virtual_mailbox_maps): the domains the table has as keys. */
        struct resolve *r = open_resolver(BASE "virtual_mailbox_maps = inline:{ {vbox.test=x}, "
                                               "{ann@vbox.test=vbox.test/ann/}, {@catch.test=catch/} }\n",
                                          &c);
        CHECK(r);
        CHECK(check_resolve(r, "ann@vbox.test", "virtual", "vbox.test", false));
        CHECK(check_resolve(r, "nobody@vbox.test", "virtual", "vbox.test", false));
        CHECK(check_resolve(r, "a@other.test", "smtp", "other.test", false));
        CHECK_INT(resolve_domain_is_virtual_mailbox(r, "VBox.Test."), 1);
        CHECK_INT(resolve_domain_is_virtual_mailbox(r, "catch.test"), 0);
        char *v = NULL;
        CHECK_INT(resolve_virtual_mailbox_find(r, "Ann@vbox.test", &v), 1);
        CHECK_STR(v, "vbox.test/ann/");
        free(v);
        CHECK_INT(resolve_virtual_mailbox_find(r, "bob@catch.test", &v), 1);
        CHECK_STR(v, "catch/");
        free(v);
        CHECK_INT(resolve_virtual_mailbox_find(r, "bob@vbox.test", &v), 0);
        resolve_free(r);
        config_free(c);

        r = open_resolver(BASE "virtual_mailbox_domains = vbox.test, v2.test\n"
                               "virtual_transport = lmtp:unix:private/dovecot-lmtp\n",
                          &c);
        CHECK(r);
        CHECK(check_resolve(r, "ann@v2.test", "lmtp", "unix:private/dovecot-lmtp", false));
        resolve_free(r);
        config_free(c);
}

TEST(mailbox_transport)
{
        struct config *c = NULL;
        struct resolve *r = open_resolver(BASE "mydestination = $myhostname\nrecipient_delimiter = +\n"
                                               "alias_maps = inline:{ {postmaster=root}, {list=a, b} }\n"
                                               "mailbox_transport = lmtp:unix:private/dovecot-lmtp\n",
                                          &c);
        CHECK(r);
        /* A user local would deliver to its mailbox goes to mailbox_transport... */
        CHECK(check_resolve(r, "ann@mx.example.test", "lmtp", "unix:private/dovecot-lmtp", true));
        CHECK(check_resolve(r, "ann", "lmtp", "unix:private/dovecot-lmtp", true));
        /* ...an alias (with or without an extension) stays with local, which expands it. */
        CHECK(check_resolve(r, "List@mx.example.test", "local", "mx.example.test", true));
        CHECK(check_resolve(r, "list+x@mx.example.test", "local", "mx.example.test", true));
        CHECK(check_resolve(r, "postmaster@mx.example.test", "local", "mx.example.test", true));
        CHECK(check_resolve(r, "a@example.org", "smtp", "example.org", false));
        resolve_free(r);
        config_free(c);

        /* A local_transport other than local: mailbox_transport is local's parameter, it does not apply. */
        r = open_resolver(BASE "mydestination = $myhostname\nalias_maps =\nlocal_transport = other\n"
                               "mailbox_transport = lmtp:unix:private/dovecot-lmtp\n",
                          &c);
        CHECK(r);
        CHECK(check_resolve(r, "ann@mx.example.test", "other", "mx.example.test", true));
        resolve_free(r);
        config_free(c);
}

TEST(bad_table)
{
        struct config *c = conf(BASE "transport_maps = nosuchtype:/x\n");
        CHECK(c);
        struct resolve *r = NULL;
        char *err = NULL;
        CHECK(resolve_new(c, &r, &err) < 0);
        CHECK(err && strstr(err, "transport_maps"));
        free(err);
        config_free(c);
}

TEST(split_transport)
{
        struct resolve_result res;
        CHECK_INT(resolve_split_transport("smtp:[mail.example.com]:25", "d", "n", &res), 0);
        CHECK_STR(res.transport, "smtp");
        CHECK_STR(res.nexthop, "[mail.example.com]:25");
        resolve_result_done(&res);
        CHECK_INT(resolve_split_transport("relay", "d", "n", &res), 0);
        CHECK_STR(res.transport, "relay");
        CHECK_STR(res.nexthop, "n");
        resolve_result_done(&res);
        CHECK_INT(resolve_split_transport(":", "d", "n", &res), 0);
        CHECK_STR(res.transport, "d");
        CHECK_STR(res.nexthop, "n");
        resolve_result_done(&res);
        CHECK_INT(resolve_split_transport("bad/name:x", "d", "n", &res), -EINVAL);
        char longname[RESOLVE_TRANSPORT_MAX + 10];
        memset(longname, 'a', sizeof longname - 1);
        longname[sizeof longname - 1] = '\0';
        CHECK_INT(resolve_split_transport(longname, "d", "n", &res), -EINVAL);
}

TEST(domain_of)
{
        char *d = resolve_domain_of("\"a@b\"@Example.ORG.");
        CHECK_STR(d, "example.org");
        free(d);
        CHECK(resolve_domain_of("nodomain") == NULL);
        CHECK(resolve_domain_of("trailing@") == NULL);
}

TEST(delay_format)
{
        char b[DELIVERY_DELAY_BUF];
        delivery_format_delay(0, b);
        CHECK_STR(b, "0");
        delivery_format_delay(4000, b); /* rounds to 0 */
        CHECK_STR(b, "0");
        delivery_format_delay(5000, b);
        CHECK_STR(b, "0.01");
        delivery_format_delay(500000, b);
        CHECK_STR(b, "0.5");
        delivery_format_delay(1250000, b);
        CHECK_STR(b, "1.25");
        delivery_format_delay(4061000000ULL, b);
        CHECK_STR(b, "4061");
        delivery_format_delay(UINT64_MAX / 2, b);
        CHECK_STR(b, "99999999");

        struct delivery_times t = {.arrival_usec = 1000000,
                                   .active_usec = 1100000,
                                   .agent_usec = 1120000,
                                   .conn_usec = 0,
                                   .done_usec = 1500000};
        char line[160];
        delivery_format_delays(&t, line, sizeof line);
        CHECK_STR(line, "delay=0.5, delays=0.1/0.02/0/0.38");
}
