/* test_crc32c.c: the CPU and the table versions of CRC-32C agree with the standard check value and each
 * other. */
#include "unit.h"

#include <stdlib.h>

#include "crc32c.h"

TEST(check_value)
{
        CHECK_INT(crc32c(0, "123456789", 9), 0xE3069283u);
        CHECK_INT(crc32c_portable(0, "123456789", 9), 0xE3069283u);
        CHECK_INT(crc32c(0, "", 0), 0);
}

TEST(pieces_equal_whole_and_paths_agree)
{
        enum { N = 4099 };
        unsigned char *buf = malloc(N);
        CHECK(buf != NULL);
        unsigned seed = 12345;
        for (size_t i = 0; i < N; i++) {
                seed = seed * 1103515245u + 12345u;
                buf[i] = (unsigned char)(seed >> 16);
        }
        /* every length and alignment up to 64, and the whole buffer */
        for (size_t off = 0; off < 8; off++)
                for (size_t len = 0; len <= 64; len++)
                        CHECK_INT(crc32c(0, buf + off, len), crc32c_portable(0, buf + off, len));
        uint32_t whole = crc32c(0, buf, N);
        CHECK_INT(whole, crc32c_portable(0, buf, N));
        uint32_t c = crc32c(0, buf, 1000);
        c = crc32c(c, buf + 1000, 7);
        c = crc32c(c, buf + 1007, N - 1007);
        CHECK_INT(c, whole);
        free(buf);
}
