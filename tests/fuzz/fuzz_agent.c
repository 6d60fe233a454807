/* fuzz_agent.c: libFuzzer target for the nexthop text -> DSN status and reason split of error/discard. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        /* A NUL-terminated exact-size copy: any read past the end is caught by ASan. */
        char *text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        static const char classes[] = {'2', '4', '5'};
        char cls = classes[size % 3];
        struct agent_verdict v;
        agent_verdict_from_text(text, AGENT_BOUNCED, cls, "fallback", &v);
        /* The status is always a well-formed code of the forced class; the reason is bounded and never
         * empty. */
        size_t dl = strnlen(v.dsn, sizeof v.dsn);
        if (dl == sizeof v.dsn || dl < 5 || v.dsn[0] != cls || v.dsn[1] != '.')
                abort();
        size_t rl = strnlen(v.reason, sizeof v.reason);
        if (rl == sizeof v.reason || rl == 0)
                abort();
        if (strchr(text, '\0') == text + size && rl > size && strcmp(v.reason, "fallback") != 0)
                abort();
        free(text);
        return 0;
}
