/* own_addrs.c: the addresses this instance receives mail on (inet_interfaces, proxy_interfaces). */
#include "own_addrs.h"

#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <string.h>

#include "log.h"
#include "macro.h"

static bool from_sockaddr(const struct sockaddr *sa, struct netaddr *ret)
{
        *ret = (struct netaddr){.family = sa->sa_family};
        if (sa->sa_family == AF_INET)
                memcpy(ret->bytes, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        else if (sa->sa_family == AF_INET6)
                memcpy(ret->bytes, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        else
                return false;
        return true;
}

static void add(struct own_addrs *o, const struct netaddr *n)
{
        if (o->n < OWN_ADDRS_MAX && !own_addrs_contains(o, n))
                o->a[o->n++] = *n;
}

static void add_text(struct own_addrs *o, const char *text)
{
        struct netaddr n;
        if (netaddr_parse(text, &n) == 0)
                add(o, &n);
}

static void add_interfaces(struct own_addrs *o)
{
        struct ifaddrs *ifs = NULL;
        if (getifaddrs(&ifs) < 0) {
                msg_warn("cannot list the network interfaces: %s", strerror(errno));
                return;
        }
        for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
                struct netaddr n;
                if (i->ifa_addr && from_sockaddr(i->ifa_addr, &n))
                        add(o, &n);
        }
        freeifaddrs(ifs);
}

void own_addrs_init(struct own_addrs *o, struct config *c)
{
        struct strv v = STRV_INIT;
        o->n = 0;
        config_get_list(c, "inet_interfaces", &v);
        config_get_list(c, "proxy_interfaces", &v);
        for (size_t i = 0; i < v.n; i++) {
                if (streq(v.v[i], "all"))
                        add_interfaces(o);
                else if (streq(v.v[i], "loopback-only") || streq(v.v[i], "localhost")) {
                        add_text(o, "127.0.0.1");
                        add_text(o, "::1");
                } else
                        add_text(o, v.v[i]);
        }
        strv_done(&v);
}

bool own_addrs_contains(const struct own_addrs *o, const struct netaddr *n)
{
        for (size_t i = 0; i < o->n; i++)
                if (netaddr_equal(&o->a[i], n))
                        return true;
        return false;
}

bool own_addrs_contains_sockaddr(const struct own_addrs *o, const struct sockaddr *sa)
{
        struct netaddr n;
        return from_sockaddr(sa, &n) && own_addrs_contains(o, &n);
}
