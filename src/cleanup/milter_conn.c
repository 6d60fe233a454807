/* milter_conn.c: a connection to one milter: connect with a deadline, send and read whole packets, every
 * wait bounded by the milter's timeouts (a stuck filter never holds cleanup longer than they say). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "fileio.h"
#include "milter.h"
#include "milter_proto.h"

/* "inet:host:port" (host may be [v6]) into node and service. */
static int split_inet(const char *rest, char **node, char **service)
{
        const char *colon = strrchr(rest, ':');
        if (!colon || colon == rest)
                return -EINVAL;
        const char *h = rest;
        size_t hl = (size_t)(colon - rest);
        if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
                h++;
                hl -= 2;
        }
        *node = xstrndup(h, hl);
        *service = xstrdup(colon + 1);
        return 0;
}

static int connect_addr(const struct sockaddr *sa, socklen_t len, int timeout_ms, int *ret_fd)
{
        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        int r = 0;
        if (connect(fd, sa, len) < 0) {
                if (errno != EINPROGRESS)
                        r = -errno;
                else if ((r = fd_wait(fd, POLLOUT, monotonic_ms() + timeout_ms)) == 0) {
                        int err = 0;
                        socklen_t el = sizeof err;
                        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
                                r = -errno;
                        else if (err)
                                r = -err;
                }
        }
        if (r < 0) {
                close(fd);
                return r;
        }
        /* Packets without an answer (SMFIP_NR_*) follow each other: Nagle would hold each one back until
         * the filter's (delayed) ACK of the last. */
        if (sa->sa_family != AF_UNIX)
                (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
        *ret_fd = fd;
        return 0;
}

static int connect_unix(const char *path, int timeout_ms, int *ret_fd)
{
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        if (strlen(path) >= sizeof sun.sun_path)
                return -ENAMETOOLONG;
        strcpy(sun.sun_path, path);
        return connect_addr((struct sockaddr *)&sun, sizeof sun, timeout_ms, ret_fd);
}

static int connect_inet(const char *rest, int family, int timeout_ms, int *ret_fd)
{
        _cleanup_free_ char *node = NULL, *service = NULL;
        if (split_inet(rest, &node, &service) < 0)
                return -EINVAL;
        struct addrinfo hints = {
                .ai_family = family, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
        struct addrinfo *ai = NULL;
        int g = getaddrinfo(node, service, &hints, &ai);
        if (g != 0)
                return g == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
        int r = -EHOSTUNREACH;
        for (struct addrinfo *p = ai; p && r < 0; p = p->ai_next)
                r = connect_addr(p->ai_addr, p->ai_addrlen, timeout_ms, ret_fd);
        freeaddrinfo(ai);
        return r;
}

int milter_connect(const struct milter_spec *sp, int *ret_fd)
{
        const char *e = sp->endpoint;
        int r;
        if (strncmp(e, "unix:", 5) == 0)
                r = connect_unix(e + 5, sp->connect_timeout_ms, ret_fd);
        else if (strncmp(e, "inet6:", 6) == 0)
                r = connect_inet(e + 6, AF_INET6, sp->connect_timeout_ms, ret_fd);
        else if (strncmp(e, "inet:", 5) == 0)
                r = connect_inet(e + 5, AF_UNSPEC, sp->connect_timeout_ms, ret_fd);
        else
                r = -EINVAL;
        if (r < 0)
                msg_warn("connect to Milter service %s: %s", e,
                         r == -ETIMEDOUT ? "Connection timed out" : strerror(-r));
        return r;
}

int milter_send_all(int fd, const struct buf *out, int timeout_ms)
{
        long long deadline = monotonic_ms() + timeout_ms;
        size_t off = 0;
        while (off < out->len) {
                ssize_t n = send(fd, out->data + off, out->len - off, MSG_NOSIGNAL);
                if (n > 0) {
                        off += (size_t)n;
                        continue;
                }
                if (n < 0 && errno != EAGAIN && errno != EINTR)
                        return -errno;
                int r = fd_wait(fd, POLLOUT, deadline);
                if (r < 0)
                        return r;
        }
        return 0;
}

int milter_read_packet(int fd, struct buf *in, int timeout_ms, size_t *ret_len)
{
        long long deadline = monotonic_ms() + timeout_ms;
        for (;;) {
                int c = milter_packet_complete((const uint8_t *)(in->data ? in->data : ""), in->len,
                                               ret_len);
                if (c != 0)
                        return c < 0 ? c : 0;
                /* At most one packet (its length field was checked above) and one read more is held. */
                char tmp[16384];
                ssize_t n = recv(fd, tmp, sizeof tmp, 0);
                if (n > 0) {
                        buf_append(in, tmp, (size_t)n);
                        continue;
                }
                if (n == 0)
                        return -ECONNRESET;
                if (errno != EAGAIN && errno != EINTR)
                        return -errno;
                /* A filter that writes its answer in pieces (libmilter: each modification request, then
                 * the final reply) waits under Nagle for our ACK of the first: send it at once, not after
                 * the 40 ms delayed-ACK timer. Not kept by the kernel, so set before each wait. */
                (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &(int){1}, sizeof(int));
                int r = fd_wait(fd, POLLIN, deadline);
                if (r < 0)
                        return r;
        }
}

void milter_consume(struct buf *in, size_t n)
{
        if (n >= in->len) {
                buf_truncate(in, 0);
                return;
        }
        memmove(in->data, in->data + n, in->len - n);
        buf_truncate(in, in->len - n);
}
