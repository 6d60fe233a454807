/* fuzz_smtp_reply.c: libFuzzer target for the client-side reply parser and EHLO capability parsing. */
#include <stdint.h>
#include <stdlib.h>

#include "smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *in = (const char *)data;
        struct smtp_reply_parser p;
        size_t off = 0;
        smtp_reply_parser_init(&p);
        for (unsigned replies = 0; off < size && replies < 256; replies++) {
                struct smtp_reply r;
                size_t used = 0;
                int ret = smtp_reply_parser_feed(&p, in + off, size - off, &used, &r);
                if (ret < 0)
                        break;
                if (used > size - off)
                        abort();
                off += used;
                if (ret == 0)
                        break;
                if (r.code < 200 || r.code > 559 || !r.text || r.n_lines == 0 ||
                    r.n_lines > SMTP_REPLY_LINES_MAX)
                        abort();
                struct smtp_ehlo_caps c;
                if (smtp_ehlo_parse(&r, &c) == 0 && c.n_auth_mechs > SMTP_EHLO_AUTH_MECHS_MAX)
                        abort();
                smtp_ehlo_caps_done(&c);
                /* formatting the parsed text again yields a reply that parses to the same code and text
                 * (control characters other than the line separator are replaced when formatting) */
                bool plain = true;
                for (const char *q = r.text; *q; q++)
                        if ((*q > 0 && *q < 32 && *q != '\n') || *q == 127)
                                plain = false;
                struct buf b = BUF_INIT;
                smtp_reply_format(&b, r.code, NULL, r.text);
                struct smtp_reply_parser p2;
                struct smtp_reply r2;
                size_t used2 = 0;
                smtp_reply_parser_init(&p2);
                if (smtp_reply_parser_feed(&p2, b.data, b.len, &used2, &r2) != 1 || r2.code != r.code ||
                    (plain && strcmp(r2.text, r.text) != 0))
                        abort();
                smtp_reply_done(&r2);
                smtp_reply_parser_done(&p2);
                buf_done(&b);
                char *s = smtp_reply_to_string(&r);
                free(s);
                smtp_reply_done(&r);
        }
        smtp_reply_parser_done(&p);
        return 0;
}
