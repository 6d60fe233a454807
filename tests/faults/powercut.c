/* powercut.c: LD_PRELOAD shim for the power-cut test: records what each fsync made durable (test-only).
 *
 * Active when POSTD_POWERCUT_DIR (the shadow directory) and POSTD_POWERCUT_ROOT (the tree to watch)
 * are set; see shadow.c for the model. fsync() and fdatasync() are the only calls postd makes durable
 * data with (no O_SYNC, O_DSYNC, msync or sync_file_range; grep src/ before adding one). syncfs() and
 * sync() would make everything durable, which the model does not follow: they are recorded as
 * unsupported, and the test fails on that rather than counting with a wrong model.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shadow.h"

static void note(int fd, const char *call)
{
        const char *shadow = getenv("POSTD_POWERCUT_DIR"), *root = getenv("POSTD_POWERCUT_ROOT");
        if (!shadow || !root)
                return;
        int saved = errno;
        int r = shadow_record_fd(shadow, root, fd);
        if (r < 0) {
                /* A sync the model failed to record would make the restored state harsher than the truth. */
                char what[256];
                snprintf(what, sizeof what, "cannot record %s of fd %d: %s", call, fd, strerror(-r));
                shadow_unsupported(shadow, what);
        }
        errno = saved;
}

#define REAL(name, type) ((type)dlsym(RTLD_NEXT, name))

int fsync(int fd)
{
        int r = REAL("fsync", int (*)(int))(fd);
        if (r == 0)
                note(fd, "fsync");
        return r;
}

int fdatasync(int fd)
{
        int r = REAL("fdatasync", int (*)(int))(fd);
        if (r == 0)
                note(fd, "fdatasync");
        return r;
}

int syncfs(int fd)
{
        const char *shadow = getenv("POSTD_POWERCUT_DIR");
        if (shadow)
                shadow_unsupported(shadow, "syncfs");
        return REAL("syncfs", int (*)(int))(fd);
}

void sync(void)
{
        const char *shadow = getenv("POSTD_POWERCUT_DIR");
        if (shadow)
                shadow_unsupported(shadow, "sync");
        REAL("sync", void (*)(void))();
}
