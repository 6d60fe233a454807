/* env_u64.c: strict parsing of numeric environment variables set by the service manager. */
#include "env_u64.h"

#include <errno.h>
#include <stdlib.h>

int env_u64(const char *name, uint64_t *ret)
{
        const char *s = getenv(name);
        if (!s)
                return 0;
        /* strtoull would accept "-1", " 5" and "5x": a value systemd never writes is a sign of a mix-up. */
        if (!*s)
                return -EINVAL;
        uint64_t v = 0;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                unsigned d = (unsigned)(*p - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        *ret = v;
        return 1;
}
