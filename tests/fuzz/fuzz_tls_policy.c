/* fuzz_tls_policy.c: libFuzzer target for the TLS protocol and cipher-grade parsers (operator-written
 * main.cf values). Input: protocols value, then a newline, the cipher grade, a newline, the exclusions. */
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
        free(text);
        return 0;
}
