/* fuzz_qfile.c: libFuzzer target for the queue file decoder; what it accepts must re-encode. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *copy, size_t size, unsigned flags)
{
        struct qfile_msg m;
        struct qfile_error err;
        int r = qfile_decode_flags(copy, size, flags, &m, &err);
        if (r < 0) {
                if (!err.reason || err.offset > size)
                        abort();
                return;
        }
        /* Whatever the decoder accepts the encoder writes back, to the same size (only the order of
         * attributes may differ), and that decodes again, checksum and all. */
        struct buf b = BUF_INIT;
        if (qfile_encode_all(&m, &b) < 0 || b.len != size)
                abort();
        struct qfile_msg again;
        if (qfile_decode(b.data, b.len, &again, NULL) < 0 || again.n_rcpts != m.n_rcpts ||
            again.content_len != m.content_len)
                abort();
        qfile_msg_done(&again);
        buf_done(&b);
        qfile_msg_done(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        /* An exact-size copy, so that any read past the end is caught. */
        uint8_t *copy = malloc(size ? size : 1);
        if (!copy)
                return 0;
        memcpy(copy, data, size);
        /* Both with the checksum (the real path) and without it, so that mutations reach past the end record
         * check into the encoder round trip. */
        for (unsigned flags = 0; flags <= QFILE_DECODE_IGNORE_CHECKSUM;
             flags += QFILE_DECODE_IGNORE_CHECKSUM)
                check(copy, size, flags);
        free(copy);
        return 0;
}
