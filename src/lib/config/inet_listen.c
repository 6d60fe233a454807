/* inet_listen.c: the addresses an instance's inet services listen on (see inet_listen.h). */
#include "inet_listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "macro.h"

static int add_listen(struct inet_listen_set *ls, char *addr)
{
        for (size_t i = 0; i < ls->n; i++)
                if (streq(ls->v[i], addr)) {
                        free(addr);
                        return 0;
                }
        if (ls->n >= INET_LISTEN_MAX) {
                free(addr);
                return -E2BIG;
        }
        ls->v[ls->n++] = addr;
        return 0;
}

void inet_listen_set_done(struct inet_listen_set *ls)
{
        for (size_t i = 0; i < ls->n; i++)
                free(ls->v[i]);
        ls->n = 0;
}

/* One address as written (numeric only: the generator runs before the network and must not resolve). */
static int add_host(struct inet_listen_set *ls, const char *host, uint16_t port, bool v4, bool v6,
                    char **ret_error)
{
        _cleanup_free_ char *h = xstrdup(host);
        size_t hl = strlen(h);
        if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
                memmove(h, h + 1, hl - 2);
                h[hl - 2] = '\0';
        }
        unsigned char bin[16];
        if (inet_pton(AF_INET, h, bin) == 1)
                return v4 ? add_listen(ls, xasprintf("%s:%u", h, port)) : 0;
        if (inet_pton(AF_INET6, h, bin) == 1)
                return v6 ? add_listen(ls, xasprintf("[%s]:%u", h, port)) : 0;
        *ret_error =
                xasprintf("address \"%s\" is not numeric (listeners are computed before name service is up; "
                          "write the IP address)",
                          host);
        return -EINVAL;
}

int inet_listen_service(struct config *c, const struct mastercf_service *svc, bool v4, bool v6,
                        struct inet_listen_set *ls, char **ret_error)
{
        uint16_t port = 0;
        int r = mastercf_port_number(svc->port, &port);
        if (r < 0) {
                *ret_error = xasprintf("master.cf line %u: unknown port \"%s\"", svc->line, svc->port);
                return r;
        }
        if (svc->host)
                return add_host(ls, svc->host, port, v4, v6, ret_error);

        struct strv ifaces = STRV_INIT;
        config_get_list(c, "inet_interfaces", &ifaces);
        for (size_t i = 0; i < ifaces.n && r >= 0; i++) {
                const char *f = ifaces.v[i];
                if (streq(f, "all")) {
                        if (v4)
                                r = add_listen(ls, xasprintf("0.0.0.0:%u", port));
                        if (v6 && r >= 0)
                                r = add_listen(ls, xasprintf("[::]:%u", port));
                } else if (streq(f, "loopback-only") || streq(f, "localhost")) {
                        if (v4)
                                r = add_listen(ls, xasprintf("127.0.0.1:%u", port));
                        if (v6 && r >= 0)
                                r = add_listen(ls, xasprintf("[::1]:%u", port));
                } else
                        r = add_host(ls, f, port, v4, v6, ret_error);
        }
        strv_done(&ifaces);
        if (r == -E2BIG && !*ret_error)
                *ret_error = xasprintf("more than %d listening addresses", INET_LISTEN_MAX);
        return r;
}

int inet_listen_protocols(struct config *c, bool have_ipv6, bool *v4, bool *v6, char **ret_error)
{
        struct strv protos = STRV_INIT;
        int r = 0;
        *v4 = *v6 = false;
        config_get_list(c, "inet_protocols", &protos);
        for (size_t i = 0; i < protos.n; i++) {
                if (streq(protos.v[i], "all"))
                        *v4 = *v6 = true;
                else if (streq(protos.v[i], "ipv4"))
                        *v4 = true;
                else if (streq(protos.v[i], "ipv6"))
                        *v6 = true;
                else {
                        *ret_error = xasprintf("bad inet_protocols value \"%s\" (expected all, ipv4, ipv6)",
                                               protos.v[i]);
                        r = -EINVAL;
                }
        }
        strv_done(&protos);
        /* As the master: a host without IPv6 listens on IPv4 only. */
        if (!have_ipv6)
                *v6 = false;
        return r;
}

const char *inet_listen_disabled_by(struct strv *disable, const struct mastercf_service *svc)
{
        _cleanup_free_ char *label = xasprintf("%s/%s", svc->name, svc->type_name);
        for (size_t i = 0; i < disable->n; i++)
                if (streq(disable->v[i], label) || streq(disable->v[i], svc->type_name))
                        return disable->v[i];
        return NULL;
}

/* "127.0.0.1:2525" / "[::1]:25" -> a socket address with port 0; false when it is not one. */
static bool listener_address(const char *listener, struct sockaddr_storage *ss, socklen_t *len, char **host)
{
        const char *colon = strrchr(listener, ':');
        if (!colon)
                return false;
        *host = xstrndup(listener, (size_t)(colon - listener));
        memset(ss, 0, sizeof *ss);
        size_t hl = strlen(*host);
        if (hl >= 2 && (*host)[0] == '[' && (*host)[hl - 1] == ']') {
                memmove(*host, *host + 1, hl - 2);
                (*host)[hl - 2] = '\0';
                struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
                s6->sin6_family = AF_INET6;
                *len = sizeof *s6;
                return inet_pton(AF_INET6, *host, &s6->sin6_addr) == 1;
        }
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        *len = sizeof *s4;
        return inet_pton(AF_INET, *host, &s4->sin_addr) == 1;
}

/*
 * The kernel decides, as it will for the real listener: a bind to port 0 of the address fails with
 * EADDRNOTAVAIL when no interface has it (unless the operator allowed it with ip_nonlocal_bind).
 * Nothing is sent: the socket never listens nor connects.
 */
static int address_local(const struct sockaddr_storage *ss, socklen_t len)
{
        int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return 0; /* no such protocol here: inet_protocols handles that, not this check */
        int r = bind(fd, (const struct sockaddr *)ss, len) < 0 && errno == EADDRNOTAVAIL ? -EADDRNOTAVAIL
                                                                                         : 0;
        close(fd);
        return r;
}

int inet_listen_check_local(const struct mastercf_service *svc, const struct inet_listen_set *ls,
                            const char *maincf, char **ret_error)
{
        for (size_t i = 0; i < ls->n; i++) {
                struct sockaddr_storage ss;
                socklen_t len = 0;
                _cleanup_free_ char *host = NULL;
                if (!listener_address(ls->v[i], &ss, &len, &host) || address_local(&ss, len) >= 0)
                        continue;
                if (svc->host)
                        *ret_error = xasprintf(
                                "master.cf line %u: service \"%s/inet\" listens on %s, an address no "
                                "network interface of this host has (bind: %s): add the address to "
                                "an interface, or fix the service name in master.cf",
                                svc->line, svc->name, host, strerror(EADDRNOTAVAIL));
                else
                        *ret_error = xasprintf(
                                "inet_interfaces names %s, an address no network interface of this "
                                "host has (bind: %s): add the address to an interface, or fix "
                                "inet_interfaces in %s",
                                host, strerror(EADDRNOTAVAIL), maincf);
                return -EADDRNOTAVAIL;
        }
        return 0;
}
