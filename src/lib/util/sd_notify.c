/* sd_notify.c: the notification socket, the watchdog variables and the booted test of sd_notify(3),
 * sd_watchdog_enabled(3) and sd_booted(3), written from those public descriptions. */
#include "sd_notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "buf.h"
#include "env_u64.h"
#include "netaddr.h"

/* $NOTIFY_SOCKET as a socket address: "/path", or "@name" for the abstract namespace. */
static int notify_address(const char *value, struct sockaddr_un *sa, socklen_t *ret_len)
{
        if (value[0] != '/' && value[0] != '@')
                return -EAFNOSUPPORT;
        if (streq(value, "/"))
                return -EINVAL;
        int r = unix_address(value, sa, ret_len);
        return r == -ENAMETOOLONG ? -EINVAL : r; /* sd_notify.h: a malformed address is -EINVAL */
}

int notify_send(const char *state)
{
        if (isempty(state))
                return -EINVAL;
        const char *env = getenv("NOTIFY_SOCKET");
        if (isempty(env))
                return 0;
        struct sockaddr_un sa;
        socklen_t len;
        int r = notify_address(env, &sa, &len);
        if (r < 0)
                return r;
        /* A socket per call: the master notifies a handful of times per state change, and a cached
         * descriptor would be one more thing for its children to inherit and close. */
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        ssize_t n;
        do
                n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : 1;
}

int notify_sendf(const char *fmt, ...)
{
        _cleanup_buf_ struct buf b = BUF_INIT;
        va_list ap;
        va_start(ap, fmt);
        buf_vprintf(&b, fmt, ap);
        va_end(ap);
        return notify_send(buf_str(&b));
}

int notify_watchdog_usec(uint64_t *usec)
{
        uint64_t interval = 0, pid = 0;
        int r = env_u64("WATCHDOG_USEC", &interval);
        if (r <= 0) {
                if (r == 0)
                        *usec = 0;
                return r;
        }
        /* 0 and "infinity" (all ones) are no intervals systemd would set. */
        if (interval == 0 || interval == UINT64_MAX)
                return -EINVAL;
        r = env_u64("WATCHDOG_PID", &pid);
        if (r < 0)
                return r;
        if (r > 0 && (pid == 0 || pid > INT32_MAX))
                return -EINVAL;
        /* Inherited from a parent that was the one watched: not ours to keep alive. */
        if (r > 0 && (pid_t)pid != getpid()) {
                *usec = 0;
                return 0;
        }
        *usec = interval;
        return 1;
}

bool systemd_booted(void)
{
        struct stat st;
        return stat("/run/systemd/system/", &st) == 0 && S_ISDIR(st.st_mode);
}
