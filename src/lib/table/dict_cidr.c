/* dict_cidr.c: cidr: tables, "network/prefix  result" lines matched in order, IPv4 and IPv6. */
#include <errno.h>
#include <stdio.h>

#include "alloc.h"
#include "dict.h"
#include "log.h"
#include "macro.h"
#include "netaddr.h"

struct cidr_rule {
        struct netaddr_cidr net;
        char *result;
};

struct dict_cidr {
        struct dict d;
        struct cidr_rule *rules;
        size_t n_rules;
};

static int cidr_open(const char *name, struct dict **ret, char **ret_error)
{
        struct tablefile t = TABLEFILE_INIT;
        int r = dict_load_source(name, "cidr map", tablefile_parse_map, &t, ret_error);
        if (r < 0)
                return r;

        struct dict_cidr *c = xcalloc(1, sizeof(*c));
        c->rules = xcalloc(t.n_entries ? t.n_entries : 1, sizeof(*c->rules));
        for (size_t i = 0; i < t.n_entries; i++) {
                struct tablefile_entry *e = &t.entries[i];
                struct netaddr_cidr net;
                r = netaddr_parse_cidr(e->key, &net);
                if (r == -EDOM) {
                        char fixed[NETADDR_FORMAT_MAX];
                        msg_warn("cidr map %s, line %u: non-null host address bits in \"%s\", perhaps you "
                                 "should use \"%s\" instead: skipping this rule",
                                 name, e->line, e->key, netaddr_cidr_format(&net, fixed, sizeof fixed));
                        continue;
                }
                if (r < 0) {
                        msg_warn("cidr map %s, line %u: bad net/mask pattern: \"%s\": skipping this rule",
                                 name, e->line, e->key);
                        continue;
                }
                c->rules[c->n_rules++] = (struct cidr_rule){.net = net, .result = TAKE_PTR(e->value)};
        }
        tablefile_done(&t);
        *ret = &c->d;
        return 0;
}

static int cidr_get(struct dict *d, const char *key, char **ret_value)
{
        struct dict_cidr *c = (struct dict_cidr *)d;
        struct netaddr a;
        if (netaddr_parse(key, &a) < 0)
                return 0;
        for (size_t i = 0; i < c->n_rules; i++)
                if (netaddr_cidr_match(&c->rules[i].net, &a)) {
                        *ret_value = xstrdup(c->rules[i].result);
                        return 1;
                }
        return 0;
}

static void cidr_close(struct dict *d)
{
        struct dict_cidr *c = (struct dict_cidr *)d;
        for (size_t i = 0; i < c->n_rules; i++)
                free(c->rules[i].result);
        free(c->rules);
        free(c);
}

const struct dict_type dict_type_cidr = {
        .name = "cidr",
        .fold = false,
        .open = cidr_open,
        .get = cidr_get,
        .close = cidr_close,
};
