/* queue_id.c: Postfix-style short queue IDs (microseconds + inode, uppercase hex) and their validation. */
#include "queue_id.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void queue_id_format(uint32_t usec, uint64_t inode, char buf[static QUEUE_ID_BUF_SIZE])
{
        /* Out-of-range input would widen the fixed-width part and break parsing: clamp rather than trust. */
        snprintf(buf, QUEUE_ID_BUF_SIZE, "%05X%llX", (unsigned)(usec % 1000000), (unsigned long long)inode);
}

void queue_id_make(uint64_t inode, char buf[static QUEUE_ID_BUF_SIZE])
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        queue_id_format((uint32_t)(ts.tv_nsec / 1000), inode, buf);
}

static bool is_upper_hex(char c)
{
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

bool queue_id_valid(const char *s)
{
        if (!s)
                return false;
        size_t n = strnlen(s, QUEUE_ID_MAX_LEN + 1);
        if (n < QUEUE_ID_MIN_LEN || n > QUEUE_ID_MAX_LEN)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!is_upper_hex(s[i]))
                        return false;
        /* The microseconds part never exceeds 999999 (0xF423F) and the inode part has no leading zero. */
        unsigned usec = 0;
        for (size_t i = 0; i < QUEUE_ID_USEC_DIGITS; i++)
                usec = usec * 16 + (unsigned)(s[i] <= '9' ? s[i] - '0' : s[i] - 'A' + 10);
        if (usec > 999999)
                return false;
        if (s[QUEUE_ID_USEC_DIGITS] == '0' && n > QUEUE_ID_MIN_LEN)
                return false;
        return true;
}

int queue_id_inode(const char *s, uint64_t *ret)
{
        if (!queue_id_valid(s))
                return -EINVAL;
        uint64_t v = 0;
        for (const char *p = s + QUEUE_ID_USEC_DIGITS; *p; p++)
                v = v * 16 + (uint64_t)(*p <= '9' ? *p - '0' : *p - 'A' + 10);
        *ret = v;
        return 0;
}
