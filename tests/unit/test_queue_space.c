/* test_queue_space.c: the queue_minfree rule (Postfix's 1.5 x message_size_limit floor) and free space. */
#include <errno.h>
#include <stdint.h>

#include "queue_space.h"
#include "unit.h"

TEST(minfree_floor_is_one_and_a_half_size_limit)
{
        CHECK_INT(queue_space_minfree(0, 0), 0);
        CHECK_INT(queue_space_minfree(5000, 0), 5000);
        CHECK_INT(queue_space_minfree(0, 10240000), 15360000);
        CHECK_INT(queue_space_minfree(100, 1001), 1502); /* rounded up */
        CHECK_INT(queue_space_minfree(20000000, 10240000), 20000000);
        CHECK(queue_space_minfree(0, UINT64_MAX) == UINT64_MAX);
}

TEST(enough_space)
{
        CHECK(queue_space_enough(1000, 1000, 0));
        CHECK(!queue_space_enough(999, 1000, 0));
        /* SIZE: 1.5 x the announced size must fit above the minimum. */
        CHECK(queue_space_enough(2500, 1000, 1000));
        CHECK(!queue_space_enough(2499, 1000, 1000));
        CHECK(!queue_space_enough(100, 0, UINT64_MAX));
        CHECK(queue_space_enough(UINT64_MAX, 0, 0));
}

TEST(avail_of_a_real_file_system)
{
        uint64_t avail = 0;
        CHECK_INT(queue_space_avail(unit_tmpdir(), &avail), 0);
        CHECK(avail > 0);
        CHECK_INT(queue_space_avail("/nonexistent/postd", &avail), -ENOENT);
}
