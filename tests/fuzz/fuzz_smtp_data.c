/* fuzz_smtp_data.c: libFuzzer target for the DATA decoder: chunking equivalence and smuggling invariants. */
#include <stdint.h>
#include <stdlib.h>

#include "smtp_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
        struct buf out;
        size_t consumed;
        int ret;
        enum smtp_data_error error;
};

static void run(const char *in, size_t n, size_t chunk, const struct smtp_data_options *o, struct run *r)
{
        struct smtp_data d;
        size_t off = 0;
        r->out = (struct buf)BUF_INIT;
        r->ret = 0;
        smtp_data_init(&d, o, smtp_data_line_to_buf, &r->out);
        while (off < n) {
                size_t take = n - off < chunk ? n - off : chunk, used = 0;
                r->ret = smtp_data_feed(&d, in + off, take, &used);
                off += used;
                if (r->ret != 0)
                        break;
                if (used != take)
                        abort();
        }
        r->consumed = off;
        r->error = d.error;
        smtp_data_done(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 2)
                return 0;
        struct smtp_data_options o = {
                .max_size = data[0] & 1 ? 0 : 300,
                .max_line = (size_t)(data[1] % 64) + 1,
                .max_header = 100,
                .bare_newline = data[0] & 2 ? SMTP_BARE_NEWLINE_NORMALIZE : SMTP_BARE_NEWLINE_REJECT,
                .allow_bare_cr = data[0] & 4,
        };
        const char *in = (const char *)data + 2;
        size_t n = size - 2;
        struct run whole, bytes;
        run(in, n, n ? n : 1, &o, &whole);
        run(in, n, 1, &o, &bytes);
        /* feeding one byte at a time must not change anything */
        if (whole.ret != bytes.ret || whole.consumed != bytes.consumed || whole.error != bytes.error ||
            whole.out.len != bytes.out.len ||
            (whole.out.len && memcmp(whole.out.data, bytes.out.data, whole.out.len)))
                abort();
        /* DATA can only end on <CR><LF>.<CR><LF> (or ".<CR><LF>" at the very start) */
        if (whole.ret == 1) {
                size_t c = whole.consumed;
                if (c < 3 || memcmp(in + c - 3, ".\r\n", 3) != 0 ||
                    (c > 3 && (c < 5 || memcmp(in + c - 5, "\r\n", 2))))
                        abort();
        }
        /* in reject mode, accepted content never holds a bare CR or LF */
        if (whole.ret == 1 && whole.error == SMTP_DATA_OK && !o.allow_bare_cr) {
                for (size_t i = 0; i < whole.out.len; i++) {
                        char ch = whole.out.data[i];
                        if (ch == '\r' && (i + 1 >= whole.out.len || whole.out.data[i + 1] != '\n'))
                                abort();
                        if (ch == '\n' && (i == 0 || whole.out.data[i - 1] != '\r'))
                                abort();
                }
        }
        /* re-encoding accepted content and decoding it again gives the same content */
        if (whole.ret == 1 && whole.error == SMTP_DATA_OK && !o.allow_bare_cr) {
                struct smtp_dot_encoder e = {0};
                struct buf wire = BUF_INIT;
                struct smtp_data_options o2 = {.max_line = o.max_line};
                struct run again;
                smtp_dot_encode(&e, whole.out.data ? whole.out.data : "", whole.out.len, &wire);
                smtp_dot_encoder_finish(&e, &wire);
                run(wire.data, wire.len, wire.len, &o2, &again);
                if (again.ret != 1 || again.consumed != wire.len || again.error != SMTP_DATA_OK ||
                    again.out.len != whole.out.len ||
                    (whole.out.len && memcmp(again.out.data, whole.out.data, whole.out.len)))
                        abort();
                buf_done(&again.out);
                buf_done(&wire);
        }
        buf_done(&whole.out);
        buf_done(&bytes.out);
        return 0;
}
