/* fuzz_smtp_cmd.c: libFuzzer target for command line splitting, command parsing and address quoting. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "smtp_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *in = (const char *)data;
        size_t off = 0;

        /* The first byte picks the session options, so every combination gets explored. */
        if (size == 0)
                return 0;
        struct smtp_cmd_options opts = {
                .smtputf8_txn = data[0] & 1,
                .strict_rfc821 = data[0] & 2,
                .smtputf8_disable = data[0] & 4,
        };
        off = 1;
        for (unsigned lines = 0; off < size && lines < 64; lines++) {
                size_t len = 0, used = 0;
                int r = smtp_cmd_line_split(in + off, size - off, &len, &used);
                if (r == 0 || r == -E2BIG) {
                        /* no more complete lines: parse the rest as one line anyway */
                        len = size - off;
                        used = len;
                } else if (r < 0) {
                        off += used;
                        continue;
                }
                struct smtp_cmd c;
                r = smtp_cmd_parse(in + off, len, &opts, &c);
                if (r < 0 && !c.reply)
                        abort();
                if (r == 0 && (c.verb == SMTP_VERB_MAIL || c.verb == SMTP_VERB_RCPT)) {
                        if (!c.addr.addr)
                                abort();
                        /* quoting for output must give a path that parses back to the same address */
                        char *ext = smtp_addr_quote(c.addr.addr);
                        size_t elen = strlen(ext), end = 0;
                        char *path = malloc(elen + 3);
                        if (!path)
                                abort();
                        path[0] = '<';
                        memcpy(path + 1, ext, elen);
                        path[elen + 1] = '>';
                        path[elen + 2] = '\0';
                        struct smtp_addr a;
                        unsigned fl = SMTP_ADDR_UTF8 | SMTP_ADDR_ALLOW_NULL | SMTP_ADDR_ALLOW_POSTMASTER;
                        /* MAIL FROM:<user> (no domain) is taken as Postfix does: it must round-trip too */
                        if (c.verb == SMTP_VERB_MAIL && !opts.strict_rfc821)
                                fl |= SMTP_ADDR_ALLOW_NO_DOMAIN;
                        int q = smtp_addr_parse(path, elen + 2, fl, &a, &end);
                        /* a re-quoted local part may exceed 64 octets once escaped; anything else must
                         * round-trip */
                        if (q == 0) {
                                if (strcmp(a.addr, c.addr.addr) != 0)
                                        abort();
                                smtp_addr_done(&a);
                        } else if (q != -ENAMETOOLONG)
                                abort();
                        free(path);
                        free(ext);
                }
                smtp_cmd_done(&c);
                off += used;
        }
        return 0;
}
