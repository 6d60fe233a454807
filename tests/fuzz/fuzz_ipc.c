/* fuzz_ipc.c: libFuzzer target for the ipc frame decoder (bytes a local peer sends over a postd socket). */
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        size_t off = 0;
        /* Decode frames back to back as a connection would; re-encode each and check it is identical. */
        for (int i = 0; i < 64 && off < size; i++) {
                struct ipc_msg m = IPC_MSG_INIT;
                size_t used = 0;
                int r = ipc_decode_frame(data + off, size - off, &m, &used);
                if (r <= 0)
                        break;
                struct buf b = BUF_INIT;
                if (ipc_encode(&m, &b) < 0 || b.len != used || memcmp(b.data, data + off, used) != 0)
                        __builtin_trap();
                for (size_t j = 0; j < m.n_attrs; j++)
                        (void)ipc_msg_get_str(&m, m.attrs[j].name);
                buf_done(&b);
                ipc_msg_done(&m);
                off += used;
        }
        return 0;
}
