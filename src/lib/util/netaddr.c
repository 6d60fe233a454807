/* netaddr.c: pure IPv4/IPv6 address and CIDR parsing and matching (cidr: tables, mynetworks), unix socket
 * addresses. */
#include "netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"

static unsigned family_bits(int family)
{
        return family == AF_INET ? 32 : 128;
}

/* Parse exactly n bytes of text as an address, without brackets. */
static int parse_plain(const char *text, size_t n, struct netaddr *ret)
{
        char tmp[NETADDR_TEXT_MAX];
        if (n == 0 || n >= sizeof tmp || memchr(text, '\0', n))
                return -EINVAL;
        memcpy(tmp, text, n);
        tmp[n] = '\0';

        struct netaddr a = {0};
        if (strchr(tmp, ':')) {
                if (inet_pton(AF_INET6, tmp, a.bytes) != 1)
                        return -EINVAL;
                a.family = AF_INET6;
        } else {
                if (inet_pton(AF_INET, tmp, a.bytes) != 1)
                        return -EINVAL;
                a.family = AF_INET;
        }
        *ret = a;
        return 0;
}

/* Address part of text[0..n): optional brackets around it. */
static int parse_maybe_bracketed(const char *text, size_t n, struct netaddr *ret)
{
        if (n >= 2 && text[0] == '[' && text[n - 1] == ']')
                return parse_plain(text + 1, n - 2, ret);
        if (memchr(text, '[', n) || memchr(text, ']', n))
                return -EINVAL;
        return parse_plain(text, n, ret);
}

int netaddr_parse(const char *text, struct netaddr *ret)
{
        size_t n = strnlen(text, NETADDR_TEXT_MAX);
        if (n >= NETADDR_TEXT_MAX)
                return -EINVAL;
        return parse_maybe_bracketed(text, n, ret);
}

int netaddr_parse_cidr(const char *text, struct netaddr_cidr *ret)
{
        size_t n = strnlen(text, NETADDR_TEXT_MAX);
        if (n >= NETADDR_TEXT_MAX)
                return -EINVAL;

        struct netaddr_cidr c = {0};
        const char *slash = memchr(text, '/', n);
        size_t addr_len = slash ? (size_t)(slash - text) : n;
        int r = parse_maybe_bracketed(text, addr_len, &c.addr);
        if (r < 0)
                return r;

        unsigned max = family_bits(c.addr.family);
        if (slash) {
                const char *d = slash + 1;
                size_t digits = n - addr_len - 1;
                /* At most three digits keeps the value far from overflow; no signs or blanks. */
                if (digits == 0 || digits > 3)
                        return -EINVAL;
                unsigned v = 0;
                for (size_t i = 0; i < digits; i++) {
                        if (d[i] < '0' || d[i] > '9')
                                return -EINVAL;
                        v = v * 10 + (unsigned)(d[i] - '0');
                }
                if (v > max)
                        return -EINVAL;
                c.prefix = v;
        } else
                c.prefix = max;

        bool host_bits = false;
        for (unsigned bit = c.prefix; bit < max; bit++) {
                uint8_t mask = (uint8_t)(0x80u >> (bit % 8));
                if (c.addr.bytes[bit / 8] & mask) {
                        host_bits = true;
                        c.addr.bytes[bit / 8] &= (uint8_t)~mask;
                }
        }
        *ret = c;
        return host_bits ? -EDOM : 0;
}

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool netaddr_cidr_match(const struct netaddr_cidr *c, const struct netaddr *a)
{
        struct netaddr v4;
        /* A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; IPv4 rules must still apply. */
        if (c->addr.family == AF_INET && a->family == AF_INET6 &&
            memcmp(a->bytes, v4mapped_prefix, sizeof v4mapped_prefix) == 0) {
                v4 = (struct netaddr){.family = AF_INET};
                memcpy(v4.bytes, a->bytes + 12, 4);
                a = &v4;
        }
        if (c->addr.family != a->family || c->prefix > family_bits(a->family))
                return false;
        unsigned full = c->prefix / 8, rest = c->prefix % 8;
        if (memcmp(c->addr.bytes, a->bytes, full) != 0)
                return false;
        if (rest == 0)
                return true;
        uint8_t mask = (uint8_t)(0xffu << (8 - rest));
        return (c->addr.bytes[full] & mask) == (a->bytes[full] & mask);
}

bool netaddr_equal(const struct netaddr *a, const struct netaddr *b)
{
        return a->family == b->family && memcmp(a->bytes, b->bytes, a->family == AF_INET ? 4 : 16) == 0;
}

const char *netaddr_format(const struct netaddr *a, char *buf, size_t size)
{
        if (!inet_ntop(a->family, a->bytes, buf, (socklen_t)size))
                snprintf(buf, size, "?");
        return buf;
}

const char *netaddr_cidr_format(const struct netaddr_cidr *c, char *buf, size_t size)
{
        char addr[NETADDR_FORMAT_MAX];
        snprintf(buf, size, "%s/%u", netaddr_format(&c->addr, addr, sizeof addr), c->prefix);
        return buf;
}

int unix_address(const char *name, struct sockaddr_un *sa, socklen_t *ret_len)
{
        bool abstract = name[0] == '@';
        size_t n = strlen(name);
        if (n == 0 || (abstract && n == 1))
                return -EINVAL;
        /* A path needs its NUL inside sun_path; an abstract name is counted by the length alone. */
        if (n > sizeof sa->sun_path - !abstract)
                return -ENAMETOOLONG;
        *sa = (struct sockaddr_un){.sun_family = AF_UNIX};
        memcpy(sa->sun_path, name, n);
        if (abstract)
                sa->sun_path[0] = '\0';
        *ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + !abstract);
        return 0;
}
