/* fuzz_delivery_request.c: libFuzzer target for qmgr's delivery request as every delivery agent parses it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delivery_request.h"
#include "ipc.h"
#include "queue_id.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        /* The bytes arrive as one ipc frame, as on the agent's socket. */
        struct ipc_msg m = IPC_MSG_INIT;
        size_t used = 0;
        if (ipc_decode_frame(data, size, &m, &used) <= 0)
                return 0;
        struct delivery_request r;
        const char *why = NULL;
        int e = delivery_request_parse(&m, &r, &why);
        if ((e < 0) != (why != NULL) || r.n_rcpts > DELIVERY_REQUEST_RCPTS_MAX)
                __builtin_trap();
        if (e == 0 && !queue_id_valid(r.queue_id))
                __builtin_trap();
        /* A valid index is digits only, and each one is answerable by its text. */
        for (size_t i = 0; i < r.n_rcpts; i++)
                if (!r.rcpts[i].text ||
                    (r.rcpts[i].valid && strspn(r.rcpts[i].text, "0123456789") != strlen(r.rcpts[i].text)))
                        __builtin_trap();
        size_t n = 0;
        free(delivery_request_indexes(&r, &n));
        if (n > r.n_rcpts)
                __builtin_trap();
        delivery_request_done(&r);
        ipc_msg_done(&m);
        return 0;
}
