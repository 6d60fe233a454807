/* test_virtual_agent.c: the virtual delivery agent's pure parts: mailbox paths and the loop check. */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include "virtual_agent.h"

static bool path_is(const char *base, const char *value, const char *want)
{
        char *p = virtual_mailbox_path(base, value);
        bool ok = want ? p && streq(p, want) : !p;
        if (!ok)
                fprintf(stderr, "  %s + %s -> %s, expected %s\n", base, value, p ? p : "NULL",
                        want ? want : "NULL");
        free(p);
        return ok;
}

TEST(mailbox_paths)
{
        CHECK(path_is("/var/mail/vhosts", "example.com/alice/", "/var/mail/vhosts/example.com/alice/"));
        CHECK(path_is("/var/mail/vhosts/", "example.com/bob", "/var/mail/vhosts/example.com/bob"));
        /* Without a base only absolute paths; with one, the base prefixes every value; never "..". */
        CHECK(path_is("", "/srv/mail/alice/", "/srv/mail/alice/"));
        CHECK(path_is("", "alice/", NULL));
        CHECK(path_is("/base", "/example.com/carol/", "/base/example.com/carol/"));
        CHECK(path_is("/base", "/", NULL));
        CHECK(path_is("/base", "../etc/", NULL));
        CHECK(path_is("/base", "a/../../etc", NULL));
        CHECK(path_is("/base", "a/..", NULL));
        CHECK(path_is("/base", "a/..b/c", "/base/a/..b/c"));
        CHECK(path_is("/base", "", NULL));
}

TEST(delivered_to_loop)
{
        const char *msg = "Received: x\nDelivered-To: Alice@Example.COM \nSubject: s\n\n"
                          "Delivered-To: bob@example.com\n";
        CHECK(virtual_delivered_to(msg, strlen(msg), "alice@example.com"));
        /* Only the header section counts. */
        CHECK(!virtual_delivered_to(msg, strlen(msg), "bob@example.com"));
        CHECK(!virtual_delivered_to(msg, strlen(msg), "alice@example.co"));
        CHECK(!virtual_delivered_to("", 0, "alice@example.com"));
}
