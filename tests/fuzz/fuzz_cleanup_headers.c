/* fuzz_cleanup_headers.c: libFuzzer target for cleanup's header processing and header address rewriting. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/cleanup/headers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 3)
                return 0;
        /* byte 0: flags; byte 1: header_size_limit / 8; byte 2: line_length_limit - 80 */
        bool local = data[0] & 1, one_rcpt = data[0] & 2, dot = data[0] & 4;
        size_t header_limit = (size_t)data[1] * 8;
        size_t line_limit = HEADERS_LINE_LENGTH_MIN + data[2];
        const char *msg = (const char *)data + 3;
        size_t len = size - 3;

        struct rewrite_opts rw = {"origin.example", "example.com", true, dot};
        struct headers_opts o = {
                .queue_id = "3F1A2B4C5D",
                .myhostname = "mx.example.com",
                .local = local,
                .uid = local ? 0 : -1,
                .helo_name = "helo",
                .client_name = "client",
                .client_address = "192.0.2.1",
                .protocol = "ESMTP",
                .single_rcpt = one_rcpt ? "rcpt@example.com" : NULL,
                .sender = "sender@example.com",
                .rewrite = &rw,
                .now = 1700000000,
                .header_size_limit = header_limit,
                .line_length_limit = line_limit,
        };
        struct buf out = BUF_INIT;
        struct headers_result r;
        headers_build(&o, msg, len, &out, &r);

        if (!r.message_id || strncmp(buf_str(&out), "Received: ", 10) != 0 || r.header_len > out.len)
                abort();
        /* After the generated Received: header (its own fields are bounded separately), no physical line is
         * longer than the limit; a hard fold's continuation adds one tab. */
        size_t col = 0, start = 0;
        while (start + 1 < out.len && !(out.data[start] == '\n' && out.data[start + 1] != '\t'))
                start++;
        for (size_t i = start; i < out.len; i++) {
                if (out.data[i] == '\n')
                        col = 0;
                else if (++col > line_limit + 1)
                        abort();
        }
        /* Only line breaks (and fold tabs) are ever added to what was received: the received bytes come
         * back in order as a subsequence of the output unless addresses were rewritten. */
        if (!local) {
                size_t j = 0;
                for (size_t i = 0; i < out.len && j < len; i++)
                        if (out.data[i] == msg[j])
                                j++;
                if (j != len)
                        abort();
        }
        headers_result_done(&r);
        buf_done(&out);

        free(rewrite_header_value(&rw, msg, len));
        return 0;
}
