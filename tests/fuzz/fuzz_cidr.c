/* fuzz_cidr.c: CIDR and address parsing (cidr: tables, mynetworks) and matching on arbitrary text. */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "netaddr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size > 256)
                return 0;
        /* first line: a network; second line: an address to match against it */
        char text[257];
        memcpy(text, data, size);
        text[size] = '\0';
        char *addr_text = strchr(text, '\n');
        if (addr_text)
                *addr_text++ = '\0';

        struct netaddr_cidr c;
        int r = netaddr_parse_cidr(text, &c);
        if (r == 0 || r == -EDOM) {
                if (c.prefix > (c.addr.family == AF_INET ? 32u : 128u))
                        abort();
                /* the canonical form must parse back to the same network */
                char buf[NETADDR_FORMAT_MAX];
                struct netaddr_cidr again;
                if (netaddr_parse_cidr(netaddr_cidr_format(&c, buf, sizeof buf), &again) != 0 ||
                    again.prefix != c.prefix || !netaddr_equal(&again.addr, &c.addr))
                        abort();
                /* a network always contains its own address */
                if (!netaddr_cidr_match(&c, &c.addr))
                        abort();
        }
        struct netaddr a;
        if (addr_text && netaddr_parse(addr_text, &a) == 0 && r == 0)
                (void)netaddr_cidr_match(&c, &a);
        return 0;
}
