/* test_smtpd_restrictions.c: smtpd's relay control, local recipient and access table decisions. */
#include <stdio.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "../../src/smtpd/smtpd.h"
#include "unit.h"

#include <errno.h>

/* A config from main.cf text: local destinations localhost and mx.example.test, no passwd lookups. */
static struct smtpd_access *access_from(const char *extra, struct config **ret_c)
{
        _cleanup_free_ char *text = xasprintf("myhostname = mx.example.test\n"
                                              "mydestination = localhost, $myhostname\n"
                                              "mynetworks = 127.0.0.1/32, [::1]/128, 10.1.0.0/16\n"
                                              "inet_interfaces = 127.0.0.1\n"
                                              "local_recipient_maps = inline:{postmaster=x, alice=x}\n"
                                              "%s",
                                              extra);
        struct config *c = NULL;
        if (config_load_text(unit_tmpdir(), text, strlen(text), &c) < 0)
                unit_fail(__FILE__, __LINE__, "config_load_text failed"), exit(1);
        struct smtpd_access *a = NULL;
        char *err = NULL;
        int r = smtpd_access_new(c, &a, &err);
        if (r < 0)
                unit_fail(__FILE__, __LINE__, "smtpd_access_new: %s", err), exit(1);
        free(err);
        *ret_c = c;
        return a;
}

/* The reply for rcpt from addr, or "" when accepted. */
static char *decide(struct smtpd_access *a, const char *addr, const char *rcpt)
{
        struct access_client cl = {"unknown", addr, false, NULL, NULL};
        struct access_request rq = {&cl, "client.example.org", "sender@example.org", rcpt, NULL};
        struct access_decision d;
        smtpd_access_check(a, ACCESS_STAGE_RCPT, &rq, &d);
        char *out = xstrdup(d.result == ACCESS_REJECT ? d.reply : "");
        if (d.result != ACCESS_REJECT && d.reply)
                unit_fail(__FILE__, __LINE__, "a reply without a rejection: %s", d.reply);
        access_decision_done(&d);
        return out;
}

#define CHECK_DECISION(a, addr, rcpt, expected)                    \
        do {                                                       \
                _cleanup_free_ char *got_ = decide(a, addr, rcpt); \
                CHECK_STR(got_, expected);                         \
        } while (0)

TEST(mynetworks_cidr_and_v6)
{
        struct config *c;
        struct smtpd_access *a = access_from("", &c);
        CHECK_INT(smtpd_access_mynetworks(a, "127.0.0.1"), 1);
        CHECK_INT(smtpd_access_mynetworks(a, "127.0.0.9"), 0);
        CHECK_INT(smtpd_access_mynetworks(a, "10.1.255.3"), 1);
        CHECK_INT(smtpd_access_mynetworks(a, "10.2.0.1"), 0);
        CHECK_INT(smtpd_access_mynetworks(a, "::1"), 1);
        CHECK_INT(smtpd_access_mynetworks(a, "::2"), 0);
        CHECK_INT(smtpd_access_mynetworks(a, "not an address"), 0);
        smtpd_access_free(a);
        config_free(c);
}

TEST(mynetworks_table)
{
        struct config *c;
        struct smtpd_access *a = access_from("mynetworks = inline:{192.0.2.7=ok}\n", &c);
        CHECK_INT(smtpd_access_mynetworks(a, "192.0.2.7"), 1);
        CHECK_INT(smtpd_access_mynetworks(a, "192.0.2.8"), 0);
        smtpd_access_free(a);
        config_free(c);
}

TEST(local_domains_and_literals)
{
        struct config *c;
        struct smtpd_access *a = access_from("", &c);
        CHECK_INT(smtpd_access_domain_is_local(a, "localhost"), 1);
        CHECK_INT(smtpd_access_domain_is_local(a, "mx.example.test"), 1);
        CHECK_INT(smtpd_access_domain_is_local(a, "sub.mx.example.test"), 0); /* no parent matching here */
        CHECK_INT(smtpd_access_domain_is_local(a, "example.test"), 0);
        CHECK_INT(smtpd_access_domain_is_local(a, "[127.0.0.1]"), 1);
        CHECK_INT(smtpd_access_domain_is_local(a, "[127.0.0.2]"), 0);
        CHECK_INT(smtpd_access_domain_is_local(a, "[garbage]"), 0);
        CHECK_INT(smtpd_access_domain_is_local(a, NULL), 1);
        smtpd_access_free(a);
        config_free(c);
}

TEST(default_relay_restrictions)
{
        struct config *c;
        struct smtpd_access *a = access_from("", &c);
        /* Inside mynetworks anything goes (relaying is what mynetworks is for). */
        CHECK_DECISION(a, "127.0.0.1", "bob@remote.example", "");
        /* Outside: defer_unauth_destination, Postfix's default, is a 4xx. */
        CHECK_DECISION(a, "192.0.2.1", "bob@remote.example",
                       "454 4.7.1 <bob@remote.example>: Relay access denied");
        /* Local destinations are no relaying; local users must exist. */
        CHECK_DECISION(a, "192.0.2.1", "alice@localhost", "");
        CHECK_DECISION(a, "192.0.2.1", "Alice@LOCALHOST", "");
        CHECK_DECISION(a, "192.0.2.1", "postmaster@[127.0.0.1]", "");
        CHECK_DECISION(a, "192.0.2.1", "nosuch@localhost",
                       "550 5.1.1 <nosuch@localhost>: Recipient address rejected: User unknown in local "
                       "recipient table");
        /* smtpd_reject_unlisted_recipient applies even to clients in mynetworks. */
        CHECK_DECISION(
                a, "127.0.0.1", "nosuch@mx.example.test",
                "550 5.1.1 <nosuch@mx.example.test>: Recipient address rejected: User unknown in local "
                "recipient table");
        smtpd_access_free(a);
        config_free(c);
}

TEST(reject_unauth_destination_and_relay_domains)
{
        struct config *c;
        struct smtpd_access *a =
                access_from("smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n"
                            "relay_domains = example.net, inline:{relay.example=x}\n",
                            &c);
        CHECK_DECISION(a, "192.0.2.1", "bob@remote.example",
                       "554 5.7.1 <bob@remote.example>: Relay access denied");
        CHECK_DECISION(a, "192.0.2.1", "bob@example.net", "");
        CHECK_DECISION(a, "192.0.2.1", "bob@sub.example.net", ""); /* parent_domain_matches_subdomains */
        CHECK_DECISION(a, "192.0.2.1", "bob@notexample.net",
                       "554 5.7.1 <bob@notexample.net>: Relay access denied");
        CHECK_DECISION(a, "192.0.2.1", "bob@relay.example", "");
        smtpd_access_free(a);
        config_free(c);
}

TEST(empty_local_recipient_maps_accepts_all)
{
        struct config *c;
        struct smtpd_access *a = access_from("local_recipient_maps =\n", &c);
        CHECK_DECISION(a, "192.0.2.1", "anyone@localhost", "");
        smtpd_access_free(a);
        config_free(c);
}

TEST(access_tables)
{
        struct config *c;
        struct smtpd_access *a =
                access_from("smtpd_recipient_restrictions = check_client_access inline:{192.0.2.66=REJECT, "
                            "{198.51.100=550 5.7.9 "
                            "go away}}, check_recipient_access inline:{alice@localhost=OK, "
                            "{spam.example=REJECT no spam}, "
                            "{x@remote.example=450 later}}, permit_mynetworks, reject_unauth_destination\n"
                            "smtpd_relay_restrictions =\n",
                            &c);
        CHECK_DECISION(a, "192.0.2.66", "alice@localhost",
                       "554 5.7.1 <unknown[192.0.2.66]>: Client host rejected: Access denied");
        CHECK_DECISION(a, "198.51.100.4", "alice@localhost",
                       "550 5.7.9 <unknown[198.51.100.4]>: Client host rejected: go away");
        CHECK_DECISION(a, "192.0.2.1", "alice@localhost", "");
        CHECK_DECISION(a, "127.0.0.1", "bob@spam.example",
                       "554 5.7.1 <bob@spam.example>: Recipient address rejected: no spam");
        CHECK_DECISION(a, "127.0.0.1", "bob@a.spam.example",
                       "554 5.7.1 <bob@a.spam.example>: Recipient address rejected: no spam");
        CHECK_DECISION(a, "127.0.0.1", "x@remote.example",
                       "450 4.7.1 <x@remote.example>: Recipient address rejected: later");
        CHECK_DECISION(a, "127.0.0.1", "y@remote.example", "");
        CHECK_DECISION(a, "192.0.2.1", "y@remote.example",
                       "554 5.7.1 <y@remote.example>: Relay access denied");
        smtpd_access_free(a);
        config_free(c);
}

/* The reply at a stage for a request with these HELO name, sender and recipient, or "" when accepted. */
static char *decide_at(struct smtpd_access *a, enum access_stage stage, const char *addr, const char *helo,
                       const char *sender, const char *rcpt)
{
        struct access_client cl = {"unknown", addr, false, NULL, NULL};
        struct access_request rq = {&cl, helo, sender, rcpt, NULL};
        struct access_decision d;
        smtpd_access_check(a, stage, &rq, &d);
        char *out = xstrdup(d.result == ACCESS_REJECT ? d.reply : "");
        access_decision_done(&d);
        return out;
}

#define CHECK_AT(a, stage, addr, helo, sender, rcpt, expected)                             \
        do {                                                                               \
                _cleanup_free_ char *got_ = decide_at(a, stage, addr, helo, sender, rcpt); \
                CHECK_STR(got_, expected);                                                 \
        } while (0)

TEST(helo_and_sender_restrictions_wait_for_rcpt)
{
        struct config *c;
        struct smtpd_access *a = access_from(
                "smtpd_helo_restrictions = permit_mynetworks, reject_invalid_helo_hostname, "
                "reject_non_fqdn_helo_hostname, check_helo_access inline:{{bad.example=REJECT go away}}\n"
                "smtpd_sender_restrictions = reject_non_fqdn_sender, "
                "check_sender_access inline:{<>=OK, {spammer@example.net=REJECT}, {junk.example=450 4.7.2 "
                "slow down}}\n",
                &c);
        /* smtpd_delay_reject = yes (the default): nothing is decided before RCPT TO. */
        CHECK_AT(a, ACCESS_STAGE_HELO, "192.0.2.1", "bad.example", NULL, NULL, "");
        CHECK_AT(a, ACCESS_STAGE_MAIL, "192.0.2.1", "ok.example", "spammer@example.net", NULL, "");
        CHECK_AT(a, ACCESS_STAGE_RCPT, "192.0.2.1", "bad.example", "a@example.org", "alice@localhost",
                 "554 5.7.1 <bad.example>: Helo command rejected: go away");
        CHECK_AT(a, ACCESS_STAGE_RCPT, "192.0.2.1", "localhost", "a@example.org", "alice@localhost",
                 "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname");
        CHECK_AT(a, ACCESS_STAGE_RCPT, "192.0.2.1", "bad..name", "a@example.org", "alice@localhost",
                 "501 5.5.2 <bad..name>: Helo command rejected: Invalid name");
        CHECK_AT(a, ACCESS_STAGE_RCPT, "192.0.2.1", "12345", "a@example.org", "alice@localhost",
                 "501 5.5.2 <12345>: Helo command rejected: Invalid name");
        CHECK_AT(a, ACCESS_STAGE_RCPT, "192.0.2.1", "[192.0.2.1]", "a@example.org", "alice@localhost", "");
        /* A permit ends its own list only: the sender list still runs for a client in mynetworks. */
        CHECK_AT(a, ACCESS_STAGE_RCPT, "127.0.0.1", "localhost", "spammer@example.net", "alice@localhost",
                 "554 5.7.1 <spammer@example.net>: Sender address rejected: Access denied");
        CHECK_AT(a, ACCESS_STAGE_RCPT, "192.0.2.1", "ok.example", "who@sub.junk.example", "alice@localhost",
                 "450 4.7.2 <who@sub.junk.example>: Sender address rejected: slow down");
        CHECK_AT(a, ACCESS_STAGE_RCPT, "192.0.2.1", "ok.example", "nodomain", "alice@localhost",
                 "504 5.5.2 <nodomain>: Sender address rejected: need fully-qualified address");
        CHECK_AT(a, ACCESS_STAGE_RCPT, "192.0.2.1", "ok.example", "", "alice@localhost", "");
        smtpd_access_free(a);
        config_free(c);
}

TEST(no_delay_reject_decides_at_each_command)
{
        struct config *c;
        struct smtpd_access *a =
                access_from("smtpd_delay_reject = no\n"
                            "smtpd_client_restrictions = check_client_access inline:{192.0.2.66=REJECT}\n"
                            "smtpd_helo_restrictions = reject_non_fqdn_helo_hostname\n"
                            "smtpd_sender_restrictions = reject_unlisted_sender\n"
                            "smtpd_data_restrictions = reject\n",
                            &c);
        CHECK_AT(a, ACCESS_STAGE_CONNECT, "192.0.2.66", NULL, NULL, NULL,
                 "554 5.7.1 <unknown[192.0.2.66]>: Client host rejected: Access denied");
        CHECK_AT(a, ACCESS_STAGE_CONNECT, "192.0.2.1", NULL, NULL, NULL, "");
        CHECK_AT(a, ACCESS_STAGE_HELO, "192.0.2.1", "box", NULL, NULL,
                 "504 5.5.2 <box>: Helo command rejected: need fully-qualified hostname");
        CHECK_AT(a, ACCESS_STAGE_MAIL, "192.0.2.1", "box.example", "nosuch@localhost", NULL,
                 "550 5.1.0 <nosuch@localhost>: Sender address rejected: User unknown in local recipient "
                 "table");
        CHECK_AT(a, ACCESS_STAGE_MAIL, "192.0.2.1", "box.example", "alice@localhost", NULL, "");
        /* Already decided at their own commands: RCPT TO runs only the relay and recipient lists. */
        CHECK_AT(a, ACCESS_STAGE_RCPT, "192.0.2.66", "box", "nosuch@localhost", "alice@localhost", "");
        CHECK_AT(a, ACCESS_STAGE_DATA, "192.0.2.1", "box.example", "alice@localhost", NULL,
                 "554 5.7.1 <DATA>: Data command rejected: Access denied");
        smtpd_access_free(a);
        config_free(c);
}

TEST(smtpd_reject_unlisted_sender)
{
        struct config *c;
        struct smtpd_access *a = access_from("smtpd_reject_unlisted_sender = yes\n", &c);
        CHECK_AT(a, ACCESS_STAGE_RCPT, "127.0.0.1", "ok.example", "nosuch@localhost", "alice@localhost",
                 "550 5.1.0 <nosuch@localhost>: Sender address rejected: User unknown in local recipient "
                 "table");
        CHECK_AT(a, ACCESS_STAGE_RCPT, "127.0.0.1", "ok.example", "alice@localhost", "alice@localhost", "");
        CHECK_AT(a, ACCESS_STAGE_RCPT, "127.0.0.1", "ok.example", "", "alice@localhost", "");
        CHECK_AT(a, ACCESS_STAGE_RCPT, "127.0.0.1", "ok.example", "x@remote.example", "alice@localhost", "");
        smtpd_access_free(a);
        config_free(c);
}

TEST(soft_bounce_turns_rejections_into_deferrals)
{
        struct config *c;
        struct smtpd_access *a =
                access_from("soft_bounce = yes\n"
                            "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n",
                            &c);
        CHECK_DECISION(a, "192.0.2.1", "nosuch@localhost",
                       "450 4.1.1 <nosuch@localhost>: Recipient address rejected: User unknown in local "
                       "recipient table");
        CHECK_DECISION(a, "192.0.2.1", "bob@remote.example",
                       "454 4.7.1 <bob@remote.example>: Relay access denied");
        smtpd_access_free(a);
        config_free(c);
}

TEST(virtual_alias_domains_and_users)
{
        struct config *c;
        struct smtpd_access *a =
                access_from("virtual_alias_maps = inline:{{info@virt.example=alice@localhost}, "
                            "{alias@localhost=alice@localhost}}\n"
                            "virtual_alias_domains = virt.example\n",
                            &c);
        /* A virtual alias domain is a destination of ours: no relaying, from anywhere. */
        CHECK_DECISION(a, "192.0.2.1", "info@virt.example", "");
        CHECK_DECISION(
                a, "192.0.2.1", "nobody@virt.example",
                "550 5.1.1 <nobody@virt.example>: Recipient address rejected: User unknown in virtual "
                "alias table");
        /* A virtual alias makes a local address known, whatever local_recipient_maps says. */
        CHECK_DECISION(a, "192.0.2.1", "alias@localhost", "");
        CHECK_DECISION(a, "192.0.2.1", "bob@remote.example",
                       "454 4.7.1 <bob@remote.example>: Relay access denied");
        smtpd_access_free(a);
        config_free(c);
}

TEST(warn_if_reject_and_defer_if_permit)
{
        struct config *c;
        /* warn_if_reject turns the next rejection into a log line. */
        struct smtpd_access *a =
                access_from("smtpd_sender_restrictions = warn_if_reject reject_non_fqdn_sender\n", &c);
        CHECK_AT(a, ACCESS_STAGE_RCPT, "192.0.2.1", "ok.example", "nodomain", "alice@localhost", "");
        /* defer_if_permit becomes a deferral only when nothing rejects later. */
        smtpd_access_free(a);
        config_free(c);
        a = access_from("smtpd_client_restrictions = defer_if_permit\n", &c);
        CHECK_AT(a, ACCESS_STAGE_RCPT, "192.0.2.1", "ok.example", "a@example.org", "alice@localhost",
                 "450 4.7.1 <alice@localhost>: Recipient address rejected: Access denied");
        CHECK_AT(a, ACCESS_STAGE_RCPT, "192.0.2.1", "ok.example", "a@example.org", "bob@remote.example",
                 "454 4.7.1 <bob@remote.example>: Relay access denied");
        smtpd_access_free(a);
        config_free(c);
}

TEST(unknown_restriction_is_a_config_error)
{
        struct config *c;
        struct smtpd_access *a = access_from("smtpd_recipient_restrictions = reject_bogus_thing\n", &c);
        CHECK_DECISION(a, "192.0.2.1", "alice@localhost", "451 4.3.5 Server configuration error");
        smtpd_access_free(a);
        config_free(c);
}

TEST(open_relay_refused)
{
        const char *text =
                "smtpd_relay_restrictions = permit\nsmtpd_recipient_restrictions = permit_mynetworks\n"
                "local_recipient_maps =\n";
        struct config *c = NULL;
        CHECK_INT(config_load_text(unit_tmpdir(), text, strlen(text), &c), 0);
        struct smtpd_access *a = NULL;
        char *err = NULL;
        CHECK(smtpd_access_new(c, &a, &err) < 0);
        CHECK(err && strstr(err, "reject_unauth_destination"));
        free(err);
        config_free(c);
}

TEST(missing_table_argument)
{
        const char *text = "smtpd_recipient_restrictions = reject_unauth_destination, check_client_access\n"
                           "local_recipient_maps =\n";
        struct config *c = NULL;
        CHECK_INT(config_load_text(unit_tmpdir(), text, strlen(text), &c), 0);
        struct smtpd_access *a = NULL;
        char *err = NULL;
        CHECK(smtpd_access_new(c, &a, &err) < 0);
        CHECK(err && strstr(err, "requires a type:table argument"));
        free(err);
        config_free(c);
}

/* The reply at RCPT TO for a client whose DNS facts are dns (NULL: never looked up), or "". */
static char *decide_dns(struct smtpd_access *a, const struct smtpd_client_dns *dns)
{
        struct access_client cl = {dns && dns->name_status == 0 ? dns->name : "unknown", "192.0.2.5", false,
                                   dns, NULL};
        struct access_request rq = {&cl, "client.example.org", "sender@example.org", "alice@localhost",
                                    NULL};
        struct access_decision d;
        smtpd_access_check(a, ACCESS_STAGE_RCPT, &rq, &d);
        char *out = xstrdup(d.result == ACCESS_REJECT ? d.reply : "");
        access_decision_done(&d);
        return out;
}

#define CHECK_DNS_DECISION(a, dns, expected)                    \
        do {                                                    \
                _cleanup_free_ char *got_ = decide_dns(a, dns); \
                CHECK_STR(got_, expected);                      \
        } while (0)

TEST(unknown_client_hostname)
{
        struct config *c;
        struct smtpd_access *a =
                access_from("smtpd_client_restrictions = reject_unknown_client_hostname\n", &c);
        struct smtpd_client_dns dns = {.name = "mail.example.org", .reverse_name = "mail.example.org"};
        CHECK_DNS_DECISION(a, &dns, "");
        dns.name_status = -ENOENT; /* the PTR name does not point back */
        CHECK_DNS_DECISION(a, &dns,
                           "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.5]");
        dns.name_status = -EAGAIN;
        CHECK_DNS_DECISION(a, &dns,
                           "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.5]");
        CHECK_DNS_DECISION(a, NULL,
                           "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.5]");
        smtpd_access_free(a);
        config_free(c);

        a = access_from("smtpd_client_restrictions = reject_unknown_reverse_client_hostname\n"
                        "unknown_client_reject_code = 550\n",
                        &c);
        dns = (struct smtpd_client_dns){.name_status = -ENOENT, .reverse_status = 0};
        CHECK_DNS_DECISION(a, &dns, ""); /* a PTR name is enough here */
        dns.reverse_status = -ENOENT;
        CHECK_DNS_DECISION(
                a, &dns, "550 5.7.25 Client host rejected: cannot find your reverse hostname, [192.0.2.5]");
        dns.reverse_status = -EAGAIN; /* a temporary failure never rejects for good */
        CHECK_DNS_DECISION(
                a, &dns, "450 4.7.25 Client host rejected: cannot find your reverse hostname, [192.0.2.5]");
        smtpd_access_free(a);
        config_free(c);
}

TEST(rbl_client)
{
        struct config *c;
        struct smtpd_access *a = access_from("smtpd_client_restrictions = reject_rbl_client bl.example, "
                                             "reject_rbl_client strict.example=127.0.0.4\n",
                                             &c);
        struct strv zones = STRV_INIT;
        smtpd_access_rbl_zones(a, &zones);
        CHECK_INT(zones.n, 2);
        CHECK_STR(zones.v[0], "bl.example");
        CHECK_STR(zones.v[1], "strict.example");
        strv_done(&zones);

        struct smtpd_client_dns dns = {.n_rbl = 2};
        snprintf(dns.rbl[0].zone, sizeof dns.rbl[0].zone, "bl.example");
        snprintf(dns.rbl[1].zone, sizeof dns.rbl[1].zone, "strict.example");
        CHECK_DNS_DECISION(a, &dns, "");
        dns.rbl[1].status = 1; /* listed, but with another code than the one asked for */
        snprintf(dns.rbl[1].addr, sizeof dns.rbl[1].addr, "127.0.0.2");
        CHECK_DNS_DECISION(a, &dns, "");
        snprintf(dns.rbl[1].addr, sizeof dns.rbl[1].addr, "127.0.0.4");
        CHECK_DNS_DECISION(a, &dns,
                           "554 5.7.1 Service unavailable; Client host [192.0.2.5] blocked using "
                           "strict.example");
        dns.rbl[0].status = 1;
        snprintf(dns.rbl[0].addr, sizeof dns.rbl[0].addr, "127.0.0.2");
        snprintf(dns.rbl[0].txt, sizeof dns.rbl[0].txt, "see https://bl.example/192.0.2.5");
        CHECK_DNS_DECISION(a, &dns,
                           "554 5.7.1 Service unavailable; Client host [192.0.2.5] blocked using "
                           "bl.example; see https://bl.example/192.0.2.5");
        dns.rbl[0].status = -EAGAIN; /* a failed lookup is no listing */
        dns.rbl[1].status = 0;
        CHECK_DNS_DECISION(a, &dns, "");
        smtpd_access_free(a);
        config_free(c);
}

TEST(rbl_client_needs_a_zone)
{
        const char *text = "smtpd_client_restrictions = reject_rbl_client\nlocal_recipient_maps =\n";
        struct config *c = NULL;
        CHECK_INT(config_load_text(unit_tmpdir(), text, strlen(text), &c), 0);
        struct smtpd_access *a = NULL;
        char *err = NULL;
        CHECK(smtpd_access_new(c, &a, &err) < 0);
        CHECK(err && strstr(err, "requires a DNS zone argument"));
        free(err);
        config_free(c);
}

/* The reply at RCPT TO with these DNS facts, "LOOKUP k1 k2" when the restrictions asked for more, or "". */
static char *decide_facts(struct smtpd_access *a, const struct smtpd_dns_facts *facts, const char *helo,
                          const char *sender, const char *rcpt)
{
        struct access_client cl = {"mail.example.org", "192.0.2.5", false, NULL, NULL};
        struct access_request rq = {&cl, helo, sender, rcpt, facts};
        struct access_decision d;
        smtpd_access_check(a, ACCESS_STAGE_RCPT, &rq, &d);
        struct buf b = BUF_INIT;
        if (d.result == ACCESS_LOOKUP) {
                buf_puts(&b, "LOOKUP");
                for (size_t i = 0; i < d.lookups.n; i++)
                        buf_printf(&b, " %s", d.lookups.v[i]);
        } else if (d.result == ACCESS_REJECT)
                buf_puts(&b, d.reply);
        access_decision_done(&d);
        return buf_steal(&b) ?: xstrdup("");
}

static void add_fact(struct smtpd_dns_facts *f, const char *key, int status, const char *addr)
{
        struct smtpd_dns_fact x = {.status = status};
        snprintf(x.key, sizeof x.key, "%s", key);
        snprintf(x.addr, sizeof x.addr, "%s", addr ? addr : "");
        smtpd_dns_facts_add(f, &x);
}

TEST(unknown_domains_ask_then_decide)
{
        struct config *c;
        struct smtpd_access *a = access_from("smtpd_sender_restrictions = reject_unknown_sender_domain\n"
                                             "smtpd_relay_restrictions = reject_unknown_recipient_domain, "
                                             "permit_mynetworks, reject_unauth_destination\n"
                                             "smtpd_recipient_restrictions = reject_unknown_helo_hostname\n",
                                             &c);
        struct smtpd_dns_facts *f = xcalloc(1, sizeof *f);
        char *r = decide_facts(a, f, "helo.example", "s@gone.example", "alice@localhost");
        CHECK_STR(r, "LOOKUP exists:gone.example"); /* evaluation stops at the first unanswered key */
        free(r);
        add_fact(f, "exists:gone.example", -ENOENT, NULL);
        r = decide_facts(a, f, "helo.example", "s@gone.example", "alice@localhost");
        CHECK_STR(r, "450 4.1.8 <s@gone.example>: Sender address rejected: Domain not found");
        free(r);
        /* A local recipient needs no lookup; the HELO name does. */
        r = decide_facts(a, f, "helo.example", "", "alice@localhost");
        CHECK_STR(r, "LOOKUP exists:helo.example");
        free(r);
        add_fact(f, "exists:helo.example", 0, NULL);
        r = decide_facts(a, f, "helo.example", "", "alice@localhost");
        CHECK_STR(r, "");
        free(r);
        add_fact(f, "exists:nowhere.example", -EAGAIN, NULL);
        r = decide_facts(a, f, "[192.0.2.9]", "", "bob@nowhere.example");
        CHECK_STR(r, "450 4.1.2 <bob@nowhere.example>: Recipient address rejected: Domain not found");
        free(r);
        free(f);
        smtpd_access_free(a);
        config_free(c);
}

TEST(rhsbl_sender_and_client)
{
        struct config *c;
        struct smtpd_access *a = access_from("smtpd_client_restrictions = reject_rhsbl_client dbl.example, "
                                             "reject_rhsbl_sender dbl.example=127.0.1.2\n",
                                             &c);
        struct smtpd_dns_facts *f = xcalloc(1, sizeof *f);
        char *r = decide_facts(a, f, "h.example", "s@spam.example", "alice@localhost");
        CHECK_STR(r, "LOOKUP listed:mail.example.org.dbl.example");
        free(r);
        add_fact(f, "listed:mail.example.org.dbl.example", 0, NULL);
        add_fact(f, "listed:spam.example.dbl.example", 1, "127.0.1.3"); /* another code than asked for */
        r = decide_facts(a, f, "h.example", "s@spam.example", "alice@localhost");
        CHECK_STR(r, "");
        free(r);
        add_fact(f, "listed:spam.example.dbl.example", 1, "127.0.1.2");
        r = decide_facts(a, f, "h.example", "s@spam.example", "alice@localhost");
        CHECK_STR(r,
                  "554 5.7.1 Service unavailable; Sender address [spam.example] blocked using dbl.example");
        free(r);
        free(f);
        smtpd_access_free(a);
        config_free(c);
}

/* The MAIL FROM decision for a client that logged in as login (NULL: did not authenticate). */
static char *decide_login(struct smtpd_access *a, const char *login, const char *sender)
{
        struct access_client cl = {"unknown", "192.0.2.9", login != NULL, NULL, login};
        struct access_request rq = {&cl, "client.example.org", sender, NULL, NULL};
        struct access_decision d;
        smtpd_access_check(a, ACCESS_STAGE_MAIL, &rq, &d);
        char *out = xstrdup(d.result == ACCESS_REJECT ? d.reply : "");
        access_decision_done(&d);
        return out;
}

#define CHECK_LOGIN(a, login, sender, expected)                             \
        do {                                                                \
                _cleanup_free_ char *got_ = decide_login(a, login, sender); \
                CHECK_STR(got_, expected);                                  \
        } while (0)

TEST(sender_login_mismatch)
{
        struct config *c;
        struct smtpd_access *a = access_from(
                "smtpd_delay_reject = no\n"
                "smtpd_sender_login_maps = inline:{alice@example.org=alice, {shared@example.org=alice, bob},"
                " @team.example=carol}\n"
                "smtpd_sender_restrictions = reject_sender_login_mismatch\n",
                &c);
        CHECK_LOGIN(a, "alice", "alice@example.org", "");
        CHECK_LOGIN(a, "bob", "shared@example.org", "");
        CHECK_LOGIN(a, "alice", "shared@example.org", "");
        CHECK_LOGIN(a, "carol", "anyone@team.example", "");
        CHECK_LOGIN(a, "bob", "alice@example.org",
                    "553 5.7.1 <alice@example.org>: Sender address rejected: not owned by user bob");
        /* an address nobody owns is refused to a logged-in user too */
        CHECK_LOGIN(
                a, "alice", "nobody@elsewhere.example",
                "553 5.7.1 <nobody@elsewhere.example>: Sender address rejected: not owned by user alice");
        CHECK_LOGIN(a, NULL, "alice@example.org",
                    "553 5.7.1 <alice@example.org>: Sender address rejected: not logged in");
        CHECK_LOGIN(a, NULL, "nobody@elsewhere.example", "");
        CHECK_LOGIN(a, NULL, "", "");
        smtpd_access_free(a);
        config_free(c);

        a = access_from("smtpd_delay_reject = no\n"
                        "smtpd_sender_login_maps = inline:{alice@example.org=alice}\n"
                        "smtpd_sender_restrictions = reject_authenticated_sender_login_mismatch\n",
                        &c);
        CHECK_LOGIN(a, NULL, "alice@example.org", "");
        CHECK_LOGIN(a, "bob", "alice@example.org",
                    "553 5.7.1 <alice@example.org>: Sender address rejected: not owned by user bob");
        smtpd_access_free(a);
        config_free(c);

        a = access_from("smtpd_delay_reject = no\n"
                        "smtpd_sender_login_maps = inline:{alice@example.org=alice}\n"
                        "smtpd_sender_restrictions = reject_unauthenticated_sender_login_mismatch\n",
                        &c);
        CHECK_LOGIN(a, "bob", "alice@example.org", "");
        CHECK_LOGIN(a, NULL, "alice@example.org",
                    "553 5.7.1 <alice@example.org>: Sender address rejected: not logged in");
        smtpd_access_free(a);
        config_free(c);
}
