/* test_anvil.c: anvil's counting table: counts, rate intervals, expiry, the size cap, statistics. */
#include <errno.h>

#include "anvil.h"
#include "unit.h"

#define SEC 1000000ULL

TEST(counts_and_rates_per_ident)
{
        struct anvil_table *t = anvil_table_new(60 * SEC, 100);
        struct anvil_answer a;
        CHECK_INT(anvil_table_event(t, ANVIL_CONNECT, "smtp:192.0.2.1", 1 * SEC, &a), 0);
        CHECK_INT(a.count, 1);
        CHECK_INT(a.rate, 1);
        CHECK_INT(anvil_table_event(t, ANVIL_CONNECT, "smtp:192.0.2.1", 2 * SEC, &a), 0);
        CHECK_INT(a.count, 2);
        CHECK_INT(a.rate, 2);
        /* Another service or client is counted apart. */
        CHECK_INT(anvil_table_event(t, ANVIL_CONNECT, "submission:192.0.2.1", 2 * SEC, &a), 0);
        CHECK_INT(a.count, 1);
        CHECK_INT(anvil_table_event(t, ANVIL_MESSAGE, "smtp:192.0.2.1", 3 * SEC, &a), 0);
        CHECK_INT(a.rate, 1);
        CHECK_INT(a.count, 2);
        CHECK_INT(anvil_table_event(t, ANVIL_DISCONNECT, "smtp:192.0.2.1", 4 * SEC, &a), 0);
        CHECK_INT(a.count, 1);
        /* A new interval: rates start again, the open connection stays counted. */
        CHECK_INT(anvil_table_event(t, ANVIL_CONNECT, "smtp:192.0.2.1", 62 * SEC, &a), 0);
        CHECK_INT(a.count, 2);
        CHECK_INT(a.rate, 1);
        /* A disconnect never goes below zero, and one of an unknown ident creates nothing. */
        CHECK_INT(anvil_table_event(t, ANVIL_DISCONNECT, "smtp:192.0.2.9", 62 * SEC, &a), 0);
        CHECK_INT(a.count, 0);
        CHECK_INT(anvil_table_size(t), 2);
        CHECK_INT(anvil_table_event(t, ANVIL_CONNECT, "", 62 * SEC, &a), -EINVAL);
        anvil_table_free(t);
}

TEST(idle_entries_expire_open_ones_stay)
{
        struct anvil_table *t = anvil_table_new(10 * SEC, 100);
        struct anvil_answer a;
        CHECK_INT(anvil_table_event(t, ANVIL_CONNECT, "smtp:a", 0, &a), 0);
        CHECK_INT(anvil_table_event(t, ANVIL_RCPT, "smtp:b", 0, &a), 0);
        CHECK_INT(anvil_table_expire(t, 5 * SEC), 0);
        CHECK_INT(anvil_table_expire(t, 10 * SEC), 1); /* b: no connection, interval over */
        CHECK_INT(anvil_table_size(t), 1);
        CHECK_INT(anvil_table_event(t, ANVIL_DISCONNECT, "smtp:a", 11 * SEC, &a), 0);
        CHECK_INT(anvil_table_expire(t, 30 * SEC), 1);
        CHECK_INT(anvil_table_size(t), 0);
        anvil_table_free(t);
}

TEST(size_cap)
{
        struct anvil_table *t = anvil_table_new(10 * SEC, 2);
        struct anvil_answer a;
        CHECK_INT(anvil_table_event(t, ANVIL_CONNECT, "smtp:a", 0, &a), 0);
        CHECK_INT(anvil_table_event(t, ANVIL_MESSAGE, "smtp:b", 0, &a), 0);
        CHECK_INT(anvil_table_event(t, ANVIL_CONNECT, "smtp:c", 1 * SEC, &a), -ENOSPC);
        /* Known idents are still counted at the cap. */
        CHECK_INT(anvil_table_event(t, ANVIL_MESSAGE, "smtp:b", 1 * SEC, &a), 0);
        CHECK_INT(a.rate, 2);
        /* Once b's interval is over it makes room; a holds a connection and stays. */
        CHECK_INT(anvil_table_event(t, ANVIL_CONNECT, "smtp:c", 11 * SEC, &a), 0);
        CHECK_INT(anvil_table_size(t), 2);
        CHECK_INT(anvil_table_event(t, ANVIL_CONNECT, "smtp:a", 11 * SEC, &a), 0);
        CHECK_INT(a.count, 2);
        anvil_table_free(t);
}

TEST(statistics_keep_the_maxima)
{
        struct anvil_table *t = anvil_table_new(60 * SEC, 100);
        struct anvil_answer a;
        struct anvil_stats st;
        for (int i = 0; i < 3; i++)
                CHECK_INT(anvil_table_event(t, ANVIL_CONNECT, "smtp:x", (uint64_t)i * SEC, &a), 0);
        CHECK_INT(anvil_table_event(t, ANVIL_CONNECT, "smtp:y", 5 * SEC, &a), 0);
        anvil_table_take_stats(t, &st);
        CHECK_INT(st.count.value, 3);
        CHECK_STR(st.count.ident, "smtp:x");
        CHECK_INT(st.count.when, 2 * SEC);
        CHECK_INT(st.rate[ANVIL_CONNECT].value, 3);
        CHECK_INT(st.max_size, 2);
        anvil_table_take_stats(t, &st);
        CHECK_INT(st.count.value, 0);
        anvil_table_free(t);
}

TEST(event_names)
{
        CHECK_INT(anvil_event_from_name("connect"), ANVIL_CONNECT);
        CHECK_INT(anvil_event_from_name("auth"), ANVIL_AUTH);
        CHECK_INT(anvil_event_from_name("bogus"), -EINVAL);
        CHECK_INT(anvil_event_from_name(NULL), -EINVAL);
        CHECK_STR(anvil_event_name(ANVIL_RCPT), "rcpt");
}
