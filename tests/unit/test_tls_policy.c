/* test_tls_policy.c: Postfix's TLS protocol syntax (exclusions, ranges, holes) and cipher grades. */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>

#include "tls_policy.h"

#define HIGH   "aNULL:-aNULL:HIGH:@STRENGTH"
#define MEDIUM "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH"

struct range {
        int r, min, max;
        char *warning, *error;
};

static struct range protocols(const char *value)
{
        struct range x = {0};
        x.r = tls_protocols_parse("smtpd_tls_protocols", value, &x.min, &x.max, &x.warning, &x.error);
        return x;
}

static void range_free(struct range *x)
{
        free(x->warning);
        free(x->error);
}

TEST(protocols_default_and_empty_mean_tls1_and_up)
{
        const char *values[] = {">=TLSv1", "", "!SSLv2, !SSLv3"};
        for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
                struct range x = protocols(values[i]);
                CHECK_INT(x.r, 0);
                CHECK_INT(x.min, TLS_POLICY_TLSV1);
                CHECK_INT(x.max, 0); /* open: newer protocols than this table still negotiate */
                CHECK(!x.warning && !x.error);
                range_free(&x);
        }
}

TEST(protocols_exclusions_of_a_hardening_guide)
{
        struct range x = protocols("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1");
        CHECK_INT(x.r, 0);
        CHECK_INT(x.min, TLS_POLICY_TLSV1_2);
        CHECK_INT(x.max, 0);
        CHECK(!x.warning);
        range_free(&x);
        /* Spaces or colons as separators, names in any case. */
        x = protocols("!sslv2 !SSLV3:!tlsv1 !TLSv1.1");
        CHECK_INT(x.r, 0);
        CHECK_INT(x.min, TLS_POLICY_TLSV1_2);
        range_free(&x);
}

TEST(protocols_ranges)
{
        struct range x = protocols(">=TLSv1.2");
        CHECK_INT(x.r, 0);
        CHECK_INT(x.min, TLS_POLICY_TLSV1_2);
        CHECK_INT(x.max, 0);
        range_free(&x);

        x = protocols(">=TLSv1.3");
        CHECK_INT(x.min, TLS_POLICY_TLSV1_3);
        range_free(&x);

        x = protocols("<=TLSv1.2");
        CHECK_INT(x.r, 0);
        CHECK_INT(x.min, TLS_POLICY_TLSV1);
        CHECK_INT(x.max, TLS_POLICY_TLSV1_2);
        range_free(&x);

        /* An explicit ceiling at the newest known protocol stays a ceiling. */
        x = protocols(">=TLSv1.2, <=TLSv1.3");
        CHECK_INT(x.min, TLS_POLICY_TLSV1_2);
        CHECK_INT(x.max, TLS_POLICY_TLSV1_3);
        range_free(&x);

        /* The operator may stand apart from its name. */
        x = protocols(">= TLSv1.1, ! TLSv1.3");
        CHECK_INT(x.r, 0);
        CHECK_INT(x.min, TLS_POLICY_TLSV1_1);
        CHECK_INT(x.max, TLS_POLICY_TLSV1_2);
        range_free(&x);
}

TEST(protocols_range_combined_with_exclusions)
{
        struct range x = protocols(">=TLSv1, !TLSv1, !TLSv1.1");
        CHECK_INT(x.r, 0);
        CHECK_INT(x.min, TLS_POLICY_TLSV1_2);
        CHECK_INT(x.max, 0);
        range_free(&x);
        x = protocols("<=TLSv1.3 !TLSv1.3 >=TLSv1.1");
        CHECK_INT(x.min, TLS_POLICY_TLSV1_1);
        CHECK_INT(x.max, TLS_POLICY_TLSV1_2);
        range_free(&x);
}

TEST(protocols_bare_names_enable_only_those)
{
        struct range x = protocols("TLSv1.2, TLSv1.3");
        CHECK_INT(x.r, 0);
        CHECK_INT(x.min, TLS_POLICY_TLSV1_2);
        CHECK_INT(x.max, TLS_POLICY_TLSV1_3);
        range_free(&x);
        x = protocols("TLSv1.2");
        CHECK_INT(x.min, TLS_POLICY_TLSV1_2);
        CHECK_INT(x.max, TLS_POLICY_TLSV1_2);
        range_free(&x);
}

TEST(protocols_ssl_is_never_enabled)
{
        struct range x = protocols(">=SSLv2");
        CHECK_INT(x.r, 0);
        CHECK_INT(x.min, TLS_POLICY_TLSV1);
        range_free(&x);
        x = protocols("SSLv3, TLSv1");
        CHECK_INT(x.r, 0);
        CHECK_INT(x.min, TLS_POLICY_TLSV1);
        CHECK_INT(x.max, TLS_POLICY_TLSV1);
        range_free(&x);
        x = protocols("SSLv2, SSLv3");
        CHECK_INT(x.r, -EINVAL);
        CHECK(strstr(x.error, "smtpd_tls_protocols") && strstr(x.error, "no TLS protocol"));
        range_free(&x);
}

TEST(protocols_hole_keeps_the_highest_range)
{
        struct range x = protocols("!TLSv1.2");
        CHECK_INT(x.r, 0);
        CHECK_INT(x.min, TLS_POLICY_TLSV1_3);
        CHECK_INT(x.max, 0);
        CHECK(x.warning && strstr(x.warning, "smtpd_tls_protocols") &&
              strstr(x.warning, "using TLSv1.3 only"));
        range_free(&x);
        x = protocols(">=TLSv1.1, !TLSv1.2");
        CHECK_INT(x.min, TLS_POLICY_TLSV1_3);
        CHECK(x.warning);
        range_free(&x);
        x = protocols("TLSv1, TLSv1.2, TLSv1.3");
        CHECK_INT(x.min, TLS_POLICY_TLSV1_2);
        CHECK_INT(x.max, TLS_POLICY_TLSV1_3);
        CHECK(x.warning && strstr(x.warning, "TLSv1.2 to TLSv1.3"));
        range_free(&x);
}

TEST(protocols_errors_name_parameter_and_token)
{
        struct range x = protocols("!SSLv2, !TLSv9");
        CHECK_INT(x.r, -EINVAL);
        CHECK(x.error && strstr(x.error, "smtpd_tls_protocols") && strstr(x.error, "\"TLSv9\""));
        range_free(&x);
        x = protocols(">=TLSv1.4");
        CHECK_INT(x.r, -EINVAL);
        CHECK(strstr(x.error, "\"TLSv1.4\""));
        range_free(&x);
        x = protocols("=>TLSv1.2");
        CHECK_INT(x.r, -EINVAL);
        range_free(&x);
        x = protocols("!");
        CHECK_INT(x.r, -EINVAL);
        CHECK(strstr(x.error, "\"!\""));
        range_free(&x);
        x = protocols(">=TLSv1.3, <=TLSv1.2");
        CHECK_INT(x.r, -EINVAL);
        CHECK(strstr(x.error, "no TLS protocol"));
        range_free(&x);
        x = protocols("!TLSv1 !TLSv1.1 !TLSv1.2 !TLSv1.3");
        CHECK_INT(x.r, -EINVAL);
        range_free(&x);
        char *long_value = malloc(TLS_POLICY_VALUE_MAX + 2);
        memset(long_value, 'x', TLS_POLICY_VALUE_MAX + 1);
        long_value[TLS_POLICY_VALUE_MAX + 1] = 0;
        x = protocols(long_value);
        CHECK_INT(x.r, -EINVAL);
        range_free(&x);
        free(long_value);
}

static int ciphers(const char *grade, const char *exclude, char **list, char **error)
{
        return tls_ciphers_build("smtpd_tls_mandatory_ciphers", grade, HIGH, MEDIUM,
                                 "smtpd_tls_exclude_ciphers", exclude, list, error);
}

TEST(ciphers_grades)
{
        char *list, *error;
        CHECK_INT(ciphers("high", "", &list, &error), 0);
        CHECK_STR(list, HIGH);
        free(list);
        CHECK_INT(ciphers(" Medium ", "", &list, &error), 0);
        CHECK_STR(list, MEDIUM);
        free(list);
        CHECK(error == NULL);
}

TEST(ciphers_exclusions_are_appended)
{
        char *list, *error;
        CHECK_INT(ciphers("high", "aNULL, MD5 DES:RC4, !3DES", &list, &error), 0);
        CHECK_STR(list, HIGH ":!aNULL:!MD5:!DES:!RC4:!3DES");
        free(list);
        CHECK_INT(ciphers("high", "bad;name", &list, &error), -EINVAL);
        CHECK(list == NULL);
        CHECK(strstr(error, "smtpd_tls_exclude_ciphers") && strstr(error, "bad;name"));
        free(error);
}

TEST(ciphers_insecure_grades_are_refused)
{
        const char *grades[] = {"low", "export", "NULL"};
        for (size_t i = 0; i < sizeof grades / sizeof grades[0]; i++) {
                char *list, *error;
                CHECK_INT(ciphers(grades[i], "", &list, &error), -EINVAL);
                CHECK(list == NULL);
                CHECK(strstr(error, "smtpd_tls_mandatory_ciphers") && strstr(error, "insecure"));
                free(error);
        }
}

TEST(ciphers_errors)
{
        char *list, *error;
        CHECK_INT(ciphers("strong", "", &list, &error), -EINVAL);
        CHECK(strstr(error, "smtpd_tls_mandatory_ciphers") && strstr(error, "\"strong\""));
        free(error);
        CHECK_INT(ciphers("", "", &list, &error), -EINVAL);
        free(error);
        CHECK_INT(tls_ciphers_build("smtp_tls_ciphers", "high", "", MEDIUM, "smtp_tls_exclude_ciphers", "",
                                    &list, &error),
                  -EINVAL);
        CHECK(strstr(error, "tls_high_cipherlist is empty"));
        free(error);
}

TEST(policy_build_from_settings)
{
        const struct tls_policy_settings s = {
                .protocols_param = "smtp_tls_mandatory_protocols",
                .protocols = ">=TLSv1.2",
                .ciphers_param = "smtp_tls_mandatory_ciphers",
                .ciphers = "high",
                .exclude_param = "smtp_tls_exclude_ciphers",
                .exclude = "RC4",
                .high_cipherlist = HIGH,
                .medium_cipherlist = MEDIUM,
        };
        struct tls_policy p;
        char *warning = NULL, *error = NULL;
        CHECK_INT(tls_policy_build(&s, &p, &warning, &error), 0);
        CHECK_INT(p.min_version, TLS_POLICY_TLSV1_2);
        CHECK_INT(p.max_version, 0);
        CHECK_STR(p.cipher_list, HIGH ":!RC4");
        CHECK(strstr(p.cipher_origin, "smtp_tls_mandatory_ciphers = high"));
        tls_policy_done(&p);
        CHECK(p.cipher_list == NULL);

        struct tls_policy_settings bad = s;
        bad.ciphers = "export";
        bad.protocols = "!TLSv1.2"; /* a warning that must not leak when the ciphers fail */
        CHECK_INT(tls_policy_build(&bad, &p, &warning, &error), -EINVAL);
        CHECK(warning == NULL);
        CHECK(strstr(error, "smtp_tls_mandatory_ciphers"));
        free(error);
        bad = s;
        bad.protocols = "TLSv2";
        CHECK_INT(tls_policy_build(&bad, &p, &warning, &error), -EINVAL);
        CHECK(strstr(error, "smtp_tls_mandatory_protocols") && strstr(error, "TLSv2"));
        free(error);
}

TEST(levels_by_name_and_rank)
{
        CHECK_INT(tls_level_parse("secure"), TLS_SECURE);
        CHECK_INT(tls_level_parse("Dane-Only"), TLS_DANE_ONLY);
        CHECK_INT(tls_level_parse(""), -EINVAL);
        CHECK_INT(tls_level_parse("secur"), -EINVAL);
        /* Postfix's order: dane (opportunistic) below encrypt, dane-only and fingerprint above it. */
        CHECK(TLS_DANE < TLS_ENCRYPT && TLS_ENCRYPT < TLS_DANE_ONLY && TLS_FINGERPRINT < TLS_VERIFY);
        CHECK_STR(tls_level_name(TLS_VERIFY), "verify");
}

TEST(policy_entries_as_postfix_writes_them)
{
        struct tls_dest_policy p;
        char *error = NULL;
        CHECK_INT(tls_dest_policy_parse("encrypt", &p, &error), 0);
        CHECK_INT(p.level, TLS_ENCRYPT);
        CHECK(!p.match && !p.ciphers && !p.protocols && !p.exclude && !error);
        tls_dest_policy_done(&p);

        CHECK_INT(tls_dest_policy_parse("  secure match=nexthop:.example.com ciphers=high "
                                        "protocols=!SSLv2:!SSLv3:!TLSv1 exclude=3DES:RC4\n",
                                        &p, &error),
                  0);
        CHECK_INT(p.level, TLS_SECURE);
        CHECK_STR(p.match, "nexthop:.example.com");
        CHECK_STR(p.ciphers, "high");
        CHECK_STR(p.protocols, "!SSLv2:!SSLv3:!TLSv1");
        CHECK_STR(p.exclude, "3DES:RC4");
        tls_dest_policy_done(&p);
        CHECK(p.match == NULL);

        CHECK_INT(tls_dest_policy_parse("NONE", &p, &error), 0);
        CHECK_INT(p.level, TLS_NONE);
        tls_dest_policy_done(&p);
}

TEST(policy_entries_refused_with_the_cause)
{
        static const struct {
                const char *value, *cause;
        } bad[] = {
                {"", "empty policy"},
                {"  \t", "empty policy"},
                {"secur", "unknown security level \"secur\""},
                {"secure tafile=/etc/ta.pem", "unknown attribute \"tafile\""},
                {"secure match", "\"match\" is not an attribute"},
                {"secure =x", "\"=x\" is not an attribute"},
                {"secure match=a match=b", "given twice"},
                {"verify ciphers=", "has no value"},
                {"encrypt match=nexthop", "match= applies to the verify, secure and fingerprint levels"},
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct tls_dest_policy p;
                char *error = NULL;
                CHECK_INT(tls_dest_policy_parse(bad[i].value, &p, &error), -EINVAL);
                CHECK(error && strstr(error, bad[i].cause));
                CHECK(p.match == NULL && p.ciphers == NULL);
                free(error);
        }
}

static char *expand(const char *list, const char *hostname, const char *nexthop, int *ret)
{
        struct strv names = STRV_INIT;
        char *error = NULL;
        *ret = tls_match_expand("smtp_tls_secure_cert_match", list, ", \t:", hostname, nexthop, &names,
                                &error);
        struct buf b = BUF_INIT;
        for (size_t i = 0; i < names.n; i++)
                buf_printf(&b, "%s%s", i ? " " : "", names.v[i]);
        strv_done(&names);
        if (*ret < 0) {
                buf_done(&b);
                return error;
        }
        free(error);
        return buf_steal(&b);
}

TEST(match_strategies_expand_to_names)
{
        int r;
        char *v = expand("nexthop, dot-nexthop", "mx1.Example.NET", "Example.COM", &r);
        CHECK_INT(r, 0);
        CHECK_STR(v, "example.com .example.com");
        free(v);
        v = expand("hostname", "mx1.example.net", "example.com", &r);
        CHECK_STR(v, "mx1.example.net");
        free(v);
        v = expand("nexthop:.example.org:mail.example.org", "mx", "example.com", &r);
        CHECK_INT(r, 0);
        CHECK_STR(v, "example.com .example.org mail.example.org");
        free(v);
        /* An address has no subdomains: dot-nexthop adds nothing for [192.0.2.1]. */
        v = expand("nexthop dot-nexthop", "192.0.2.1", "192.0.2.1", &r);
        CHECK_STR(v, "192.0.2.1");
        free(v);
}

TEST(match_lists_refused_with_the_cause)
{
        int r;
        char *e = expand("nexthop, bad/name", "mx", "example.com", &r);
        CHECK_INT(r, -EINVAL);
        CHECK(strstr(e, "smtp_tls_secure_cert_match") && strstr(e, "\"bad/name\""));
        free(e);
        e = expand("", "mx", "example.com", &r);
        CHECK_INT(r, -EINVAL);
        CHECK(strstr(e, "names no certificate name"));
        free(e);
        e = expand("dot-nexthop", "192.0.2.1", "192.0.2.1", &r);
        CHECK_INT(r, -EINVAL);
        free(e);
}

TEST(fingerprints_in_one_form)
{
        struct strv fps = STRV_INIT;
        char *error = NULL;
        CHECK_INT(tls_fingerprints_parse("smtp_tls_fingerprint_cert_match", "ab:cd:0F, 0102ff", ", \t", &fps,
                                         &error),
                  0);
        CHECK_INT((int)fps.n, 2);
        CHECK_STR(fps.v[0], "AB:CD:0F");
        CHECK_STR(fps.v[1], "01:02:FF");
        strv_done(&fps);
        CHECK_INT(tls_fingerprints_parse("smtp_tls_policy_maps match", "AB:CD|12:34", "|", &fps, &error), 0);
        CHECK_INT((int)fps.n, 2);
        strv_done(&fps);

        static const char *const bad[] = {"AB:C", "XY:12", "", " , ", "nexthop"};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                CHECK_INT(tls_fingerprints_parse("smtp_tls_fingerprint_cert_match", bad[i], ", ", &fps, &error),
                          -EINVAL);
                CHECK(error && strstr(error, "smtp_tls_fingerprint_cert_match"));
                free(error);
                strv_done(&fps);
        }
        /* Longer than any digest (SHA-512 has 64 bytes). */
        char big[2 * TLS_FINGERPRINT_MAX + 3];
        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        CHECK_INT(tls_fingerprints_parse("p", big, ", ", &fps, &error), -EINVAL);
        free(error);
        strv_done(&fps);
}
