/* test_selabel.c: selabel_restore is a harmless no-op where SELinux is not enabled. */
#include "unit.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "postd-build.h"
#include "selabel.h"

#if HAVE_SELINUX
#include <selinux/selinux.h>
#endif

static bool selinux_on(void)
{
#if HAVE_SELINUX
        return is_selinux_enabled() > 0;
#else
        return false;
#endif
}

TEST(noop_without_selinux)
{
        if (selinux_on()) {
                printf("  (SELinux is enabled here: the no-op case does not apply)\n");
                return;
        }
        char dir[512], sub[600];
        snprintf(dir, sizeof dir, "%s/spool", unit_tmpdir());
        snprintf(sub, sizeof sub, "%s/public", dir);
        CHECK(mkdir(dir, 0755) == 0);
        CHECK(mkdir(sub, 0710) == 0);
        CHECK_INT(selabel_restore(dir, true), 0);
        CHECK_INT(selabel_restore(sub, false), 0);
        /* A real restorecon would fail on a missing path; the no-op must not even look. */
        CHECK_INT(selabel_restore("/nonexistent/postd-selabel-test", true), 0);
        /* And it wrote no label. */
        char buf[256];
        CHECK(getxattr(sub, "security.selinux", buf, sizeof buf) < 0);
        struct stat st;
        CHECK(stat(sub, &st) == 0);
        CHECK_INT(st.st_mode & 07777, 0710);
}
