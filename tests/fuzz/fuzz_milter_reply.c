/* fuzz_milter_reply.c: libFuzzer target for the decoder of what a milter answers (framing and fields). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "milter_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        size_t off = 0;
        for (unsigned packets = 0; off < size && packets < 1024; packets++) {
                size_t n = 0;
                int r = milter_packet_complete(data + off, size - off, &n);
                if (r <= 0)
                        break;
                if (n > size - off || n < MILTER_HEADER_LEN + 1)
                        abort();
                struct milter_reply rep;
                if (milter_parse_reply(data + off, n, &rep) == 0) {
                        /* Every string the decoder hands out ends inside the packet. */
                        const char *strs[] = {rep.text, rep.value};
                        for (size_t i = 0; i < 2; i++)
                                if (strs[i] &&
                                    ((const uint8_t *)strs[i] < data + off ||
                                     (const uint8_t *)strs[i] + strlen(strs[i]) >= data + off + n))
                                        abort();
                        if (rep.data && (rep.data < data + off || rep.data + rep.len > data + off + n))
                                abort();
                }
                off += n;
        }
        return 0;
}
