/* fuzz_tls_policy.c: libFuzzer target for the TLS protocol and cipher-grade parsers (operator-written
 * main.cf values) and the smtp_tls_policy_maps entry and certificate match-list parsers. Input, one per
 * line: protocols value, cipher grade, exclusions, a policy table value, a match list (also read as a
 * fingerprint list). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "tls_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *next_field(char **rest)
{
        char *field = *rest, *nl = strchr(field, '\n');
        if (nl) {
                *nl = 0;
                *rest = nl + 1;
        } else
                *rest = field + strlen(field);
        return field;
}

/* A policy entry either parses to a known level with its attributes, or fails with a reason and nothing. */
static void check_dest_policy(const char *value)
{
        struct tls_dest_policy p;
        char *error = NULL;
        int r = tls_dest_policy_parse(value, &p, &error);
        if (r == 0) {
                if (error || (int)p.level < TLS_NONE || p.level > TLS_SECURE ||
                    (p.match && p.level != TLS_VERIFY && p.level != TLS_SECURE) || (p.match && !*p.match))
                        abort();
                tls_dest_policy_done(&p);
        } else if (!error || p.match || p.ciphers || p.protocols || p.exclude)
                abort();
        free(error);
}

/* Expanded names are never empty, never hold a separator, and success always names something. */
static void check_match(const char *list)
{
        struct strv names = STRV_INIT;
        char *error = NULL;
        int r = tls_match_expand("smtp_tls_secure_cert_match", list, ", \t\r\n:", "mx.example.net",
                                 "example.com", &names, &error);
        if (r == 0 && (error || names.n == 0))
                abort();
        if (r < 0 && !error)
                abort();
        for (size_t i = 0; i < names.n; i++)
                if (!*names.v[i] || strpbrk(names.v[i], ", \t\r\n") || strlen(names.v[i]) > 254)
                        abort();
        strv_done(&names);
        free(error);
        /* The same text as fingerprints: each result is uppercase hex pairs joined by colons. */
        error = NULL;
        r = tls_fingerprints_parse("smtp_tls_fingerprint_cert_match", list, ", \t|", &names, &error);
        if ((r == 0) == (error != NULL) || (r == 0 && names.n == 0))
                abort();
        for (size_t i = 0; i < names.n; i++) {
                size_t len = strlen(names.v[i]);
                if (len % 3 != 2 || len > 3 * TLS_FINGERPRINT_MAX - 1 ||
                    strspn(names.v[i], "0123456789ABCDEF:") != len)
                        abort();
        }
        strv_done(&names);
        free(error);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *text = xstrndup((const char *)data, size), *rest = text;
        const struct tls_policy_settings s = {
                .protocols_param = "smtpd_tls_protocols",
                .protocols = next_field(&rest),
                .ciphers_param = "smtpd_tls_ciphers",
                .ciphers = next_field(&rest),
                .exclude_param = "smtpd_tls_exclude_ciphers",
                .exclude = next_field(&rest),
                .high_cipherlist = "aNULL:-aNULL:HIGH:@STRENGTH",
                .medium_cipherlist = "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH",
        };
        struct tls_policy p;
        char *warning = NULL, *error = NULL;
        int r = tls_policy_build(&s, &p, &warning, &error);
        if (r == 0) {
                /* Never SSL, never an inverted range, and the grade's list always comes first. */
                if (error || p.min_version < TLS_POLICY_TLSV1 || p.min_version > TLS_POLICY_TLSV1_3 ||
                    (p.max_version != 0 && p.max_version < p.min_version) ||
                    strncmp(p.cipher_list, "aNULL:-aNULL:HIGH:", 18) != 0 || strpbrk(p.cipher_list, " ,;"))
                        abort();
                tls_policy_done(&p);
        } else if (!error || warning)
                abort();
        free(warning);
        free(error);
        check_dest_policy(next_field(&rest));
        check_match(next_field(&rest));
        free(text);
        return 0;
}
