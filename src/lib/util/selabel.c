/* selabel.c: restorecon of the directories postd creates, so instances match the policy module. */
#include "selabel.h"

#include <errno.h>

#include "postd-build.h"

#if HAVE_SELINUX
#include <selinux/restorecon.h>
#include <selinux/selinux.h>

int selabel_restore(const char *path, bool recursive)
{
        /* Nothing to do without an SELinux kernel: files then carry no label at all. */
        if (is_selinux_enabled() <= 0)
                return 0;
        /* Always compare labels (no digest shortcut), and never store a digest: that needs
         * CAP_SYS_ADMIN and only speeds up repeated runs over big trees. */
        unsigned int flags = SELINUX_RESTORECON_IGNORE_DIGEST;
#ifdef SELINUX_RESTORECON_SKIP_DIGEST
        flags |= SELINUX_RESTORECON_SKIP_DIGEST;
#endif
        if (recursive)
                flags |= SELINUX_RESTORECON_RECURSE;
        if (selinux_restorecon(path, flags) < 0)
                return errno > 0 ? -errno : -EIO;
        return 0;
}
#else
int selabel_restore(const char *path, bool recursive)
{
        (void)path;
        (void)recursive;
        return 0;
}
#endif
