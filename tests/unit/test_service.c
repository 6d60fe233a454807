/* test_service.c: how many connections a daemon process takes before the master replaces it (max_use). */
#include "unit.h"

#include "service.h"

TEST(one_client_daemons_count_connections)
{
        CHECK_INT(service_use_limit(100, 1, false), 100);
        CHECK_INT(service_use_limit(100, 0, false), 100); /* 0 means 1 */
        CHECK_INT(service_use_limit(2, 1, false), 2);
}

TEST(event_driven_daemons_get_max_use_per_client_slot)
{
        CHECK_INT(service_use_limit(100, 100, false), 10000);
        CHECK_INT(service_use_limit(2, 50, false), 100);
}

TEST(no_limit)
{
        CHECK_INT(service_use_limit(0, 100, false), 0);
        CHECK_INT(service_use_limit(-5, 1, false), 0);
        CHECK_INT(service_use_limit(100, 1, true), 0); /* long-lived singletons like qmgr */
}

TEST(huge_values_saturate)
{
        CHECK(service_use_limit(1LL << 62, 200, false) == SERVICE_USE_LIMIT_MAX);
        CHECK(service_use_limit(SERVICE_USE_LIMIT_MAX, 1, false) == SERVICE_USE_LIMIT_MAX);
}
