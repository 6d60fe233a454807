/* listen_fds.c: socket activation's $LISTEN_PID / $LISTEN_FDS / $LISTEN_FDNAMES, written from
 * sd_listen_fds(3). */
#include "listen_fds.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>

#include "alloc.h"
#include "buf.h"
#include "env_u64.h"
#include "macro.h"

/* How many descriptors are ours: 0 when the variables are absent or name another process. */
static int count_fds(void)
{
        uint64_t pid = 0, n = 0;
        int r = env_u64("LISTEN_PID", &pid);
        if (r <= 0)
                return r;
        if (pid == 0 || pid > INT_MAX)
                return -EINVAL;
        /* Set for a parent that did not unset them: they are not ours. */
        if ((pid_t)pid != getpid())
                return 0;
        r = env_u64("LISTEN_FDS", &n);
        if (r <= 0)
                return r;
        if (n > (uint64_t)(INT_MAX - LISTEN_FDS_START))
                return -ERANGE;
        return (int)n;
}

static int set_cloexec(int fd)
{
        int flags = fcntl(fd, F_GETFD);
        if (flags < 0)
                return -errno;
        if (!(flags & FD_CLOEXEC) && fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
                return -errno;
        return 0;
}

/* The n names of $LISTEN_FDNAMES (NULL: unset); empty fields count (a position each), so strv_split,
 * which skips them, would not do. */
static char **split_names(const char *text, size_t n)
{
        struct strv v = STRV_INIT;
        for (const char *p = text; p;) {
                const char *colon = strchr(p, ':');
                strv_push_take(&v, colon ? xstrndup(p, (size_t)(colon - p)) : xstrdup(p));
                p = colon ? colon + 1 : NULL;
        }
        if (v.n != n) {
                /* Names that do not match the descriptors one to one name none of them. */
                strv_done(&v);
                for (size_t i = 0; i < n; i++)
                        strv_push(&v, "unknown");
        }
        return v.v;
}

int listen_fds_take(char ***names)
{
        int n = count_fds();
        for (int i = 0; i < n; i++) {
                int r = set_cloexec(LISTEN_FDS_START + i);
                if (r < 0) {
                        n = r;
                        break;
                }
        }
        if (names && n >= 0)
                *names = n > 0 ? split_names(getenv("LISTEN_FDNAMES"), (size_t)n) : NULL;
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        return n;
}
