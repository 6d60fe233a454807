/* fuzz_smtp_client.c: the SMTP client's pure helpers: next hops, DATA encoding, SASL, the loop check. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "buf.h"
#include "dns.h"
#include "smtp_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *s = malloc(size + 1);
        memcpy(s, data, size);
        s[size] = '\0';

        struct dns_nexthop nh;
        if (dns_nexthop_parse(s, 25, &nh) == 0) {
                struct dns_result *res = malloc(sizeof *res);
                dns_resolve_literal(&nh, res);
                free(res);
        }

        /* The DATA encoder over the raw bytes, in small chunks; the output ends in the final dot. */
        struct buf out = BUF_INIT;
        size_t off = 0;
        bool bol = true;
        for (int i = 0; i < 100000; i++)
                if (smtp_data_encode((const char *)data, size, &off, &bol, &out, 1 + size % 7) == 1)
                        break;
        if (out.len < 3 || memcmp(out.data + out.len - 3, ".\r\n", 3) != 0)
                abort();
        buf_done(&out);

        char *user = NULL, *pass = NULL;
        if (smtp_sasl_split(s, &user, &pass) == 0) {
                free(user);
                free(pass);
        }
        unsigned f;
        smtp_sasl_options_parse(s, &f);
        char ip[64];
        const char *param;
        smtp_source_address(AF_INET, "", "smtp_bind_address", s, ip, sizeof ip, &param);
        smtp_source_address(AF_INET6, "", "smtp_bind_address6", s, ip, sizeof ip, &param);
        char dec[256];
        smtp_base64_decode(s, dec, sizeof dec);
        char *b = smtp_base64(data, size);
        free(b);

        /* The loop check: a greeting always names the host that is its own first word. */
        smtp_reply_names_myself(s, "mx.example.test");
        size_t w = strcspn(s, " \t\r\n");
        if (w > 0 && w < 256 && !(w == 1 && s[0] == '.')) {
                char name[256];
                memcpy(name, s, w);
                name[w] = '\0';
                if (!smtp_reply_names_myself(s, name))
                        abort();
        }
        free(s);
        return 0;
}
