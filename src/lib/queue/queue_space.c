/* queue_space.c: the queue_minfree rule and the free space of the queue file system. */
#include "queue_space.h"

#include <errno.h>
#include <sys/statvfs.h>

/* x * 1.5 without floating point, saturating at UINT64_MAX. */
static uint64_t one_and_a_half(uint64_t x)
{
        uint64_t half = x / 2 + (x & 1);
        return x > UINT64_MAX - half ? UINT64_MAX : x + half;
}

uint64_t queue_space_minfree(uint64_t queue_minfree, uint64_t message_size_limit)
{
        uint64_t floor = one_and_a_half(message_size_limit);
        return queue_minfree > floor ? queue_minfree : floor;
}

bool queue_space_enough(uint64_t avail, uint64_t minfree, uint64_t size)
{
        if (avail < minfree)
                return false;
        return one_and_a_half(size) <= avail - minfree;
}

int queue_space_avail(const char *path, uint64_t *ret)
{
        struct statvfs st;
        if (statvfs(path, &st) < 0)
                return -errno;
        uint64_t unit = st.f_frsize ? st.f_frsize : st.f_bsize;
        *ret = unit && st.f_bavail > UINT64_MAX / unit ? UINT64_MAX : (uint64_t)st.f_bavail * unit;
        return 0;
}
