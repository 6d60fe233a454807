/* resolve.c: the next-hop resolver shared by qmgr and the delivery agents (Postfix's address classes). */
#include "resolve.h"

#include <ctype.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "alloc.h"
#include "catalog.h"
#include "buf.h"
#include "log.h"
#include "maps.h"
#include "netaddr.h"
#include "virtual.h"

struct domain_pattern {
        char *pattern;     /* folded; NULL for a table */
        struct maps *maps; /* "type:name" entries */
        bool negate;       /* "!pattern" */
};

struct domain_list {
        struct domain_pattern *v;
        size_t n;
        bool parent_matches; /* "example.com" also matches "sub.example.com" (relay_domains) */
};

/* A domain list parameter opened on first use and again after a failure (a missing table defers the mail
 * that needs it; each new failure is logged once). */
struct lazy_domains {
        const char *param;
        char *value;
        bool open;
        char *error;
        struct domain_list list;
};

struct resolve {
        struct domain_list mydestination, relay_domains;
        struct maps *transport_maps;
        struct netaddr local_addrs[RESOLVE_LOCAL_ADDRS_MAX];
        size_t n_local_addrs;
        /* Opened on first use: a missing table defers the mail that needs it, it stops no daemon. */
        struct table_param virtual_alias_maps;
        bool virtual_alias_domains_default; /* "$virtual_alias_maps": the domains the table has keys for */
        struct lazy_domains virtual_alias_domains, virtual_mailbox_domains;
        struct table_param virtual_mailbox_maps;
        /* mailbox_transport: local users without an alias go there (local never sees them). */
        struct table_param alias_maps;
        char *mailbox_transport, *recipient_delimiter;
        char *myorigin;
        char *myhostname, *local_transport, *relay_transport, *default_transport, *relayhost,
                *virtual_transport;
};

static void fold(char *s)
{
        for (; *s; s++)
                *s = (char)tolower((unsigned char)*s);
}

static void domain_list_done(struct domain_list *l)
{
        for (size_t i = 0; i < l->n; i++) {
                free(l->v[i].pattern);
                maps_free(l->v[i].maps);
        }
        free(l->v);
        l->v = NULL;
        l->n = 0;
}

static int domain_list_open_value(const char *param, const char *value, bool parent_matches,
                                  struct domain_list *ret, char **ret_error)
{
        struct strv items = STRV_INIT;
        config_split_list(value, &items);
        ret->parent_matches = parent_matches;
        if (items.n > RESOLVE_LIST_MAX) {
                *ret_error = xasprintf("%s: more than %d entries", param, RESOLVE_LIST_MAX);
                strv_done(&items);
                return -E2BIG;
        }
        ret->v = xcalloc(items.n ? items.n : 1, sizeof *ret->v);
        for (size_t i = 0; i < items.n; i++) {
                const char *item = items.v[i];
                struct domain_pattern *p = &ret->v[ret->n];
                p->negate = item[0] == '!';
                if (p->negate)
                        item++;
                /* A "type:name" table (a domain never contains ':' outside [IPv6:...] literals). */
                if (item[0] != '[' && strchr(item, ':')) {
                        int r = maps_open(param, item, &p->maps, ret_error);
                        if (r < 0) {
                                strv_done(&items);
                                return r;
                        }
                } else {
                        p->pattern = xstrdup(item);
                        fold(p->pattern);
                        size_t len = strlen(p->pattern);
                        if (len > 1 && p->pattern[len - 1] == '.')
                                p->pattern[len - 1] = '\0';
                }
                ret->n++;
        }
        strv_done(&items);
        return 0;
}

static int domain_list_open(struct config *c, const char *param, bool parent_matches,
                            struct domain_list *ret, char **ret_error)
{
        return domain_list_open_value(param, config_get(c, param), parent_matches, ret, ret_error);
}

/* 1 when domain (folded) matches one entry, honouring "!" and order; <0 when a table failed. */
static int domain_list_match(const struct domain_list *l, const char *domain)
{
        for (size_t i = 0; i < l->n; i++) {
                const struct domain_pattern *p = &l->v[i];
                bool hit = false;
                if (p->maps) {
                        _cleanup_free_ char *value = NULL;
                        int r = maps_find_domain(p->maps, domain, &value);
                        if (r < 0)
                                return r;
                        hit = r > 0;
                } else if (p->pattern[0] == '.') {
                        size_t dl = strlen(domain), pl = strlen(p->pattern);
                        hit = dl > pl && streq(domain + dl - pl, p->pattern);
                } else {
                        size_t dl = strlen(domain), pl = strlen(p->pattern);
                        hit = streq(domain, p->pattern) ||
                              (l->parent_matches && dl > pl && domain[dl - pl - 1] == '.' &&
                               streq(domain + dl - pl, p->pattern));
                }
                if (hit)
                        return p->negate ? 0 : 1;
        }
        return 0;
}

static void add_local_addr(struct resolve *r, const struct netaddr *a)
{
        if (r->n_local_addrs < RESOLVE_LOCAL_ADDRS_MAX)
                r->local_addrs[r->n_local_addrs++] = *a;
}

static void add_loopback(struct resolve *r)
{
        struct netaddr a;
        if (netaddr_parse("127.0.0.1", &a) == 0)
                add_local_addr(r, &a);
        if (netaddr_parse("::1", &a) == 0)
                add_local_addr(r, &a);
}

/* "all" means every address of the host: the only non-pure step, done once at start. */
static void add_host_addrs(struct resolve *r)
{
        struct ifaddrs *ifa = NULL;
        if (getifaddrs(&ifa) < 0) {
                add_loopback(r);
                return;
        }
        for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
                if (!i->ifa_addr)
                        continue;
                struct netaddr a = {0};
                if (i->ifa_addr->sa_family == AF_INET) {
                        a.family = AF_INET;
                        memcpy(a.bytes, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, 4);
                } else if (i->ifa_addr->sa_family == AF_INET6) {
                        a.family = AF_INET6;
                        memcpy(a.bytes, &((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr, 16);
                } else
                        continue;
                add_local_addr(r, &a);
        }
        freeifaddrs(ifa);
}

static void load_interfaces(struct resolve *r, struct config *c, const char *param)
{
        struct strv items = STRV_INIT;
        config_get_list(c, param, &items);
        for (size_t i = 0; i < items.n; i++) {
                const char *it = items.v[i];
                struct netaddr a;
                if (streq(it, "all"))
                        add_host_addrs(r);
                else if (streq(it, "loopback-only") || streq(it, "localhost"))
                        add_loopback(r);
                else if (netaddr_parse(it, &a) == 0)
                        add_local_addr(r, &a);
                /* Host names (proxy_interfaces may hold them) would need DNS: not local by literal. */
        }
        strv_done(&items);
}

/* Is virtual_alias_domains Postfix's default, a reference to virtual_alias_maps and nothing else? */
static bool is_virtual_alias_maps_reference(struct config *c)
{
        if (!config_is_set(c, "virtual_alias_domains"))
                return true;
        _cleanup_free_ char *raw = xstrdup(config_get_raw(c, "virtual_alias_domains"));
        char *p = raw;
        while (*p == ' ' || *p == '\t')
                p++;
        size_t len = strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
                p[--len] = '\0';
        return streq(p, "$virtual_alias_maps") || streq(p, "${virtual_alias_maps}") ||
               streq(p, "$(virtual_alias_maps)");
}

int resolve_new(struct config *c, struct resolve **ret, char **ret_error)
{
        struct resolve *r = xcalloc(1, sizeof *r);
        *ret_error = NULL;
        int e = domain_list_open(c, "mydestination", false, &r->mydestination, ret_error);
        if (e >= 0)
                e = domain_list_open(c, "relay_domains", true, &r->relay_domains, ret_error);
        if (e >= 0)
                e = maps_open("transport_maps", config_get(c, "transport_maps"), &r->transport_maps,
                              ret_error);
        if (e < 0) {
                resolve_free(r);
                return e;
        }
        load_interfaces(r, c, "inet_interfaces");
        load_interfaces(r, c, "proxy_interfaces");
        r->myhostname = xstrdup(config_get(c, "myhostname"));
        fold(r->myhostname);
        r->local_transport = xstrdup(config_get(c, "local_transport"));
        r->relay_transport = xstrdup(config_get(c, "relay_transport"));
        r->default_transport = xstrdup(config_get(c, "default_transport"));
        r->relayhost = xstrdup(config_get(c, "relayhost"));
        r->myorigin = xstrdup(config_get(c, "myorigin"));
        fold(r->myorigin);
        table_param_init(&r->virtual_alias_maps, "virtual_alias_maps", config_get(c, "virtual_alias_maps"));
        r->virtual_alias_domains = (struct lazy_domains){
                .param = "virtual_alias_domains", .value = xstrdup(config_get(c, "virtual_alias_domains"))};
        r->virtual_alias_domains_default = is_virtual_alias_maps_reference(c);
        r->virtual_mailbox_domains =
                (struct lazy_domains){.param = "virtual_mailbox_domains",
                                      .value = xstrdup(config_get(c, "virtual_mailbox_domains"))};
        table_param_init(&r->virtual_mailbox_maps, "virtual_mailbox_maps",
                         config_get(c, "virtual_mailbox_maps"));
        r->virtual_transport = xstrdup(config_get(c, "virtual_transport"));
        r->mailbox_transport = xstrdup(config_get(c, "mailbox_transport"));
        r->recipient_delimiter = xstrdup(config_get(c, "recipient_delimiter"));
        table_param_init(&r->alias_maps, "alias_maps", config_get(c, "alias_maps"));
        *ret = r;
        return 0;
}

int resolve_open_logged(struct config *c, struct resolve **ret)
{
        char *err = NULL;
        int r = resolve_new(c, ret, &err);
        if (r < 0) {
                msg_fields(LOG_LEVEL_ERROR,
                           &(struct log_fields){
                                   .catalog_id = r == -EPROTONOSUPPORT ? CATALOG_UNSUPPORTED_TABLE : NULL},
                           "%s", err ? err : strerror(-r));
                free(err);
        }
        return r;
}

static void lazy_domains_done(struct lazy_domains *l)
{
        free(l->value);
        free(l->error);
        domain_list_done(&l->list);
}

/* 1 when domain (folded) is in the list, 0, or <0 when it cannot be opened (logged once per reason). */
static int lazy_domains_match(struct lazy_domains *l, const char *domain)
{
        if (!l->open) {
                _cleanup_free_ char *err = NULL;
                domain_list_done(&l->list);
                int e = domain_list_open_value(l->param, l->value, false, &l->list, &err);
                if (e < 0) {
                        domain_list_done(&l->list);
                        _cleanup_free_ char *fallback = xasprintf("%s: cannot open", l->param);
                        const char *why = err ? err : fallback;
                        if (!l->error || !streq(l->error, why))
                                msg_warn(
                                        "%s; mail to domains that are not local is deferred until it can be "
                                        "opened",
                                        why);
                        free(l->error);
                        l->error = xstrdup(why);
                        return e;
                }
                l->open = true;
        }
        return domain_list_match(&l->list, domain);
}

void resolve_free(struct resolve *r)
{
        if (!r)
                return;
        domain_list_done(&r->mydestination);
        domain_list_done(&r->relay_domains);
        maps_free(r->transport_maps);
        table_param_done(&r->virtual_alias_maps);
        lazy_domains_done(&r->virtual_alias_domains);
        lazy_domains_done(&r->virtual_mailbox_domains);
        table_param_done(&r->virtual_mailbox_maps);
        table_param_done(&r->alias_maps);
        free(r->virtual_transport);
        free(r->mailbox_transport);
        free(r->recipient_delimiter);
        free(r->myorigin);
        free(r->myhostname);
        free(r->local_transport);
        free(r->relay_transport);
        free(r->default_transport);
        free(r->relayhost);
        free(r);
}

void resolve_result_done(struct resolve_result *res)
{
        free(res->transport);
        free(res->nexthop);
        res->transport = res->nexthop = NULL;
}

char *resolve_domain_of(const char *address)
{
        const char *at = strrchr(address, '@');
        if (!at || !at[1])
                return NULL;
        char *d = xstrdup(at + 1);
        fold(d);
        size_t len = strlen(d);
        if (len > 1 && d[len - 1] == '.')
                d[len - 1] = '\0';
        return d;
}

static bool valid_transport_name(const char *s, size_t len)
{
        for (size_t i = 0; i < len; i++)
                if (!isalnum((unsigned char)s[i]) && !strchr("-_.", s[i]))
                        return false;
        return true;
}

int resolve_split_transport(const char *value, const char *def_transport, const char *def_nexthop,
                            struct resolve_result *ret)
{
        while (*value == ' ' || *value == '\t')
                value++;
        const char *colon = strchr(value, ':');
        size_t tlen = colon ? (size_t)(colon - value) : strlen(value);
        const char *nh = colon ? colon + 1 : "";
        size_t nlen = strlen(nh);
        while (nlen > 0 && (nh[nlen - 1] == ' ' || nh[nlen - 1] == '\t'))
                nlen--;
        while (!colon && tlen > 0 && (value[tlen - 1] == ' ' || value[tlen - 1] == '\t'))
                tlen--;
        if (tlen > RESOLVE_TRANSPORT_MAX || nlen > RESOLVE_NEXTHOP_MAX || !valid_transport_name(value, tlen))
                return -EINVAL;
        ret->transport = tlen ? xstrndup(value, tlen) : xstrdup(def_transport ? def_transport : "");
        ret->nexthop = nlen ? xstrndup(nh, nlen) : xstrdup(def_nexthop ? def_nexthop : "");
        return 0;
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]" is ours when the address is one of our interfaces. */
static bool literal_is_local(const struct resolve *r, const char *domain)
{
        size_t len = strlen(domain);
        if (len < 3 || domain[0] != '[' || domain[len - 1] != ']' || len > NETADDR_TEXT_MAX)
                return false;
        char text[NETADDR_TEXT_MAX + 1];
        memcpy(text, domain + 1, len - 2);
        text[len - 2] = '\0';
        const char *addr = strncmp(text, "ipv6:", 5) == 0 ? text + 5 : text;
        struct netaddr a;
        if (netaddr_parse(addr, &a) < 0)
                return false;
        for (size_t i = 0; i < r->n_local_addrs; i++)
                if (netaddr_equal(&r->local_addrs[i], &a))
                        return true;
        return false;
}

int resolve_domain_is_local(struct resolve *r, const char *domain)
{
        _cleanup_free_ char *d = xstrdup(domain);
        fold(d);
        size_t len = strlen(d);
        if (len > 1 && d[len - 1] == '.')
                d[len - 1] = '\0';
        if (d[0] == '[')
                return literal_is_local(r, d);
        return domain_list_match(&r->mydestination, d);
}

/* domain folded, without its trailing dot (malloc'd). */
static char *folded_domain(const char *domain)
{
        char *d = xstrdup(domain);
        fold(d);
        size_t len = strlen(d);
        if (len > 1 && d[len - 1] == '.')
                d[len - 1] = '\0';
        return d;
}

int resolve_domain_is_ours(struct resolve *r, const char *domain)
{
        _cleanup_free_ char *d = folded_domain(domain);
        if (!isempty(r->myorigin) && streq(d, r->myorigin))
                return 1;
        return resolve_domain_is_local(r, d);
}

int resolve_virtual_alias_find(struct resolve *r, const char *address, char **ret_value)
{
        *ret_value = NULL;
        if (table_param_empty(&r->virtual_alias_maps))
                return 0;
        struct maps *m = NULL;
        int e = table_param_get(&r->virtual_alias_maps, &m, NULL);
        if (e < 0)
                return e;
        _cleanup_free_ char *domain = resolve_domain_of(address);
        int ours = domain ? resolve_domain_is_ours(r, domain) : 1;
        if (ours < 0)
                return ours;
        return maps_find_address(m, address, ours > 0, ret_value);
}

int resolve_domain_is_virtual_alias(struct resolve *r, const char *domain)
{
        _cleanup_free_ char *d = folded_domain(domain);
        if (d[0] == '[' || d[0] == '\0')
                return 0;
        if (r->virtual_alias_domains_default) {
                if (table_param_empty(&r->virtual_alias_maps))
                        return 0;
                struct maps *m = NULL;
                int e = table_param_get(&r->virtual_alias_maps, &m, NULL);
                if (e < 0)
                        return e;
                _cleanup_free_ char *value = NULL;
                e = maps_find(m, d, &value);
                if (e != 0)
                        return e;
                _cleanup_free_ char *catch_all = xasprintf("@%s", d);
                return maps_find(m, catch_all, &value);
        }
        return lazy_domains_match(&r->virtual_alias_domains, d);
}

int resolve_domain_is_virtual_mailbox(struct resolve *r, const char *domain)
{
        _cleanup_free_ char *d = folded_domain(domain);
        if (d[0] == '[' || d[0] == '\0')
                return 0;
        return lazy_domains_match(&r->virtual_mailbox_domains, d);
}

int resolve_virtual_mailbox_find(struct resolve *r, const char *address, char **ret_value)
{
        *ret_value = NULL;
        if (table_param_empty(&r->virtual_mailbox_maps))
                return 0;
        struct maps *m = NULL;
        int e = table_param_get(&r->virtual_mailbox_maps, &m, NULL);
        if (e < 0)
                return e;
        _cleanup_free_ char *folded = xstrdup(address);
        fold(folded);
        return maps_find_address(m, folded, false, ret_value);
}

/* Does the local part of address (or, with recipient_delimiter, its base "user" of "user+ext") have an
 * entry in alias_maps? Then local expands it, and mailbox_transport does not take the recipient. */
static int local_has_alias(struct resolve *r, const char *address)
{
        if (table_param_empty(&r->alias_maps))
                return 0;
        struct maps *m = NULL;
        int e = table_param_get(&r->alias_maps, &m, NULL);
        if (e < 0)
                return e;
        const char *at = strrchr(address, '@');
        _cleanup_free_ char *local = at ? xstrndup(address, (size_t)(at - address)) : xstrdup(address);
        fold(local);
        _cleanup_free_ char *value = NULL;
        e = maps_find(m, local, &value);
        if (e != 0 || isempty(r->recipient_delimiter))
                return e;
        size_t base = strcspn(local, r->recipient_delimiter);
        if (base == 0 || local[base] == '\0')
                return 0;
        local[base] = '\0';
        return maps_find(m, local, &value);
}

/* The local class resolved to local: mailbox_transport instead for a user local would only deliver to the
 * mailbox of. 0, or <0 when alias_maps failed (the caller defers rather than bypass an alias). */
static int apply_mailbox_transport(struct resolve *r, const char *address, struct resolve_result *ret)
{
        if (isempty(r->mailbox_transport) || !streq(ret->transport, "local"))
                return 0;
        int alias = local_has_alias(r, address);
        if (alias != 0)
                return alias < 0 ? alias : 0;
        struct resolve_result mt = {0};
        if (resolve_split_transport(r->mailbox_transport, "local", r->myhostname, &mt) < 0) {
                msg_warn("mailbox_transport: bad value \"%s\": local delivers to the mailbox itself",
                         r->mailbox_transport);
                resolve_result_done(&mt);
                return 0;
        }
        resolve_result_done(ret);
        *ret = mt;
        return 0;
}

int resolve_address(struct resolve *r, const char *address, struct resolve_result *ret)
{
        *ret = (struct resolve_result){0};
        _cleanup_free_ char *domain = resolve_domain_of(address);
        struct resolve_result cls = {0};
        int e;

        int local = domain ? resolve_domain_is_local(r, domain) : 1;
        if (local < 0)
                return local;
        if (local) {
                e = resolve_split_transport(r->local_transport, "local", r->myhostname, &cls);
                int m = e == 0 ? apply_mailbox_transport(r, address, &cls) : 0;
                if (m < 0) {
                        resolve_result_done(&cls);
                        return m;
                }
        } else {
                /* Cleanup rewrites every address of a virtual alias domain that has an alias: what
                 * still reaches the resolver has none, and no transport_maps entry changes that. */
                int virtual_alias = resolve_domain_is_virtual_alias(r, domain);
                if (virtual_alias < 0)
                        return virtual_alias;
                if (virtual_alias) {
                        ret->transport = xstrdup("error");
                        ret->nexthop = xasprintf("5.1.1 <%s>: User unknown in virtual alias table", address);
                        return 0;
                }
                int vmailbox = resolve_domain_is_virtual_mailbox(r, domain);
                if (vmailbox < 0)
                        return vmailbox;
                int relay = vmailbox ? 0 : domain_list_match(&r->relay_domains, domain);
                if (relay < 0)
                        return relay;
                const char *nh = !isempty(r->relayhost) ? r->relayhost : domain;
                if (vmailbox)
                        e = resolve_split_transport(r->virtual_transport, "virtual", domain, &cls);
                else
                        e = resolve_split_transport(relay ? r->relay_transport : r->default_transport,
                                                    relay ? "relay" : "smtp", nh, &cls);
        }
        if (e < 0) {
                /* A broken *_transport parameter: fall back to the built-in names rather than lose mail. */
                resolve_result_done(&cls);
                cls.transport = xstrdup(local ? "local" : "smtp");
                cls.nexthop = xstrdup(local ? r->myhostname : domain);
        }
        cls.local = local;

        /* transport_maps override the class: the full address, the domain and its parents, then "*". */
        _cleanup_free_ char *value = NULL;
        _cleanup_free_ char *folded = xstrdup(address);
        fold(folded);
        e = domain ? maps_find(r->transport_maps, folded, &value) : 0;
        if (e == 0 && domain)
                e = maps_find_domain(r->transport_maps, domain, &value);
        if (e == 0)
                e = maps_find(r->transport_maps, "*", &value);
        if (e < 0) {
                resolve_result_done(&cls);
                return e;
        }
        if (e > 0) {
                struct resolve_result t = {0};
                if (resolve_split_transport(value, cls.transport, cls.nexthop, &t) == 0) {
                        t.local = cls.local;
                        resolve_result_done(&cls);
                        *ret = t;
                        return 0;
                }
                msg_warn("transport_maps: bad value for %s: \"%s\": ignored", address, value);
                resolve_result_done(&t);
        }
        *ret = cls;
        return 0;
}
