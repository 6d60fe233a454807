/* crc32c.c: CRC-32C with SSE4.2's crc32 instruction on x86-64, slicing by 8 elsewhere.
 * A byte-at-a-time loop cost a fifth of all CPU time with 100 KiB messages (bench/README.md). */
#include "crc32c.h"

#include <stdbool.h>
#include <string.h>

#define CRC32C_POLY 0x82F63B78u /* reversed Castagnoli polynomial */

static uint32_t table[8][256];

__attribute__((constructor)) static void table_init(void)
{
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;
                for (int k = 0; k < 8; k++)
                        c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
                table[0][i] = c;
        }
        for (uint32_t i = 0; i < 256; i++)
                for (int t = 1; t < 8; t++)
                        table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

uint32_t crc32c_portable(uint32_t crc, const void *data, size_t len)
{
        const uint8_t *p = data;
        crc = ~crc;
        while (len >= 8) {
                uint64_t v;
                memcpy(&v, p, 8);
                /* Little-endian layout: the first byte is the lowest. */
                uint32_t lo = (uint32_t)v ^ crc, hi = (uint32_t)(v >> 32);
                crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
                      table[4][lo >> 24] ^ table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
                      table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
                p += 8;
                len -= 8;
        }
        while (len--)
                crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
        __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const void *data, size_t len)
{
        const uint8_t *p = data;
        uint64_t c = ~crc;
        while (len >= 8) {
                uint64_t v;
                memcpy(&v, p, 8);
                c = __builtin_ia32_crc32di(c, v);
                p += 8;
                len -= 8;
        }
        uint32_t c32 = (uint32_t)c;
        while (len--)
                c32 = __builtin_ia32_crc32qi(c32, *p++);
        return ~c32;
}

uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
        static int have_sse42 = -1;
        if (have_sse42 < 0)
                have_sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
        return have_sse42 ? crc32c_sse42(crc, data, len) : crc32c_portable(crc, data, len);
}
#else
uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
        return crc32c_portable(crc, data, len);
}
#endif
