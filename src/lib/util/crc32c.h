/* crc32c.h: CRC-32C (Castagnoli), the checksum of queue files, computed by the CPU where it can. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* crc is 0 to start; feed pieces in order. crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

/* The portable table-driven version (slicing by 8), for tests against the hardware path. */
uint32_t crc32c_portable(uint32_t crc, const void *data, size_t len);
