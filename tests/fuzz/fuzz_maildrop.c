/* fuzz_maildrop.c: libFuzzer target for maildrop_parse, the gate for files written by local users. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maildrop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What maildrop_parse accepts, postdrop rebuilds, and the rebuilt file is accepted again unchanged. */
static void check(const uint8_t *buf, size_t size, uint64_t max_content)
{
        struct qfile_msg m;
        struct maildrop_error err = {0};
        int r = maildrop_parse(buf, size, max_content, &m, &err);
        if (r < 0) {
                if (!err.reason || err.offset > size)
                        abort();
                return;
        }
        if (max_content && m.content_len > max_content)
                abort();
        size_t pending = 0;
        for (size_t i = 0; i < m.n_rcpts; i++)
                pending += qfile_rcpt_state_pending(m.rcpts[i].state);
        if (pending == 0)
                abort();
        struct buf out = BUF_INIT;
        if (maildrop_build(&m, 1, &out) < 0)
                abort();
        struct qfile_msg again;
        if (maildrop_parse(out.data, out.len, max_content, &again, &err) < 0 || again.n_rcpts != pending ||
            again.content_len != m.content_len || memcmp(again.content, m.content, m.content_len) != 0 ||
            strcmp(again.sender, m.sender) != 0)
                abort();
        const char *a = maildrop_full_name(&m), *b = maildrop_full_name(&again);
        if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
                abort();
        qfile_msg_done(&again);
        qfile_msg_done(&m);
        buf_done(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        /* An exact-size copy, so that ASan catches any read past the end. */
        uint8_t *copy = malloc(size ? size : 1);
        if (!copy)
                return 0;
        memcpy(copy, data, size);
        uint64_t max_content = size > 0 ? data[0] * 4u : 0;
        check(copy, size, 0);
        check(copy, size, max_content);

        /* Mutations rarely keep the checksum right: repair it so that they reach maildrop's own rules. */
        struct qfile_msg m;
        if (qfile_decode_flags(copy, size, QFILE_DECODE_IGNORE_CHECKSUM, &m, NULL) == 0) {
                struct buf fixed = BUF_INIT;
                if (qfile_encode_all(&m, &fixed) == 0) {
                        uint8_t *f = malloc(fixed.len);
                        if (f) {
                                memcpy(f, fixed.data, fixed.len);
                                check(f, fixed.len, 0);
                                check(f, fixed.len, max_content);
                                free(f);
                        }
                }
                buf_done(&fixed);
                qfile_msg_done(&m);
        }
        free(copy);
        return 0;
}
