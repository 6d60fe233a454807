/* milter_hooks.c: what smtpd tells cleanup for the milters (cleanup/milter.h): the facts of the session
 * that cleanup cannot see itself, such as the server address the client connected to ({daemon_addr}). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "smtpd.h"

int smtpd_server_address(int fd, char *out, size_t size)
{
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
                return -errno;
        const void *a = NULL;
        if (ss.ss_family == AF_INET)
                a = &((struct sockaddr_in *)&ss)->sin_addr;
        else if (ss.ss_family == AF_INET6)
                a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        if (!a || !inet_ntop(ss.ss_family, a, out, (socklen_t)size))
                return -EAFNOSUPPORT;
        return 0;
}

const char *smtpd_milters_value(struct config *c)
{
        const char *v = config_get(c, "smtpd_milters");
        return v ? v : "";
}

bool smtpd_milters_judge_rcpt(struct config *c, const char *receive_override)
{
        if (isempty(config_get(c, "smtpd_milters")))
                return false;
        for (const char *p = receive_override; p && *p;) {
                p += strspn(p, ", \t");
                size_t w = strcspn(p, ", \t");
                if (w == strlen("no_milters") && strncmp(p, "no_milters", w) == 0)
                        return false;
                p += w;
        }
        return true;
}
