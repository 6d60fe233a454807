/* access_lists.c: the address and domain lists smtpd's decisions are made of, with tables in them. */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "access_lists.h"
#include "alloc.h"
#include "log.h"
#include "maps.h"
#include "netaddr.h"

void netlist_done(struct netlist *l)
{
        free(l->cidrs);
        for (size_t i = 0; i < l->n_tables; i++)
                dict_close(l->tables[i]);
        free(l->tables);
}

void domlist_done(struct domlist *l)
{
        strv_done(&l->names);
        for (size_t i = 0; i < l->n_tables; i++)
                dict_close(l->tables[i]);
        free(l->tables);
}

bool is_table_spec(const char *s)
{
        /* "type:name" where type is a word; "[::1]/128" and "2001:db8::/32" are not tables. */
        const char *colon = strchr(s, ':');
        if (!colon || colon == s)
                return false;
        for (const char *p = s; p < colon; p++)
                if (!isalnum((unsigned char)*p) && *p != '_')
                        return false;
        return !isdigit((unsigned char)s[0]);
}

static int open_table(const char *param, const char *spec, struct dict ***tables, size_t *n,
                      char **ret_error)
{
        struct dict *d = NULL;
        _cleanup_free_ char *why = NULL;
        int r = dict_open(spec, &d, &why);
        if (r < 0) {
                *ret_error = xasprintf("%s: %s: %s", param, spec, why);
                return r;
        }
        *tables = xrealloc(*tables, (*n + 1) * sizeof(**tables));
        (*tables)[(*n)++] = d;
        return 0;
}

int netlist_init(struct netlist *l, const char *param, const char *value, char **ret_error)
{
        struct strv items = STRV_INIT;
        int r = 0;
        maps_split_list(value, &items);
        if (items.n > ACCESS_LIST_MAX) {
                *ret_error = xasprintf("%s: more than %d entries", param, ACCESS_LIST_MAX);
                strv_done(&items);
                return -E2BIG;
        }
        l->cidrs = xcalloc(items.n ? items.n : 1, sizeof(*l->cidrs));
        for (size_t i = 0; i < items.n; i++) {
                const char *it = items.v[i];
                if (is_table_spec(it)) {
                        r = open_table(param, it, &l->tables, &l->n_tables, ret_error);
                        if (r < 0)
                                break;
                        continue;
                }
                struct netaddr_cidr c;
                int q = netaddr_parse_cidr(it, &c);
                if (q == -EDOM) {
                        char fixed[NETADDR_FORMAT_MAX];
                        msg_warn("%s: non-null host address bits in \"%s\", perhaps you should use \"%s\" "
                                 "instead",
                                 param, it, netaddr_cidr_format(&c, fixed, sizeof fixed));
                        q = 0;
                }
                if (q == 0)
                        l->cidrs[l->n_cidrs++] = c;
                else
                        /* Host names need DNS, which smtpd does not do in its event loop yet. */
                        msg_warn("%s: ignoring entry \"%s\": not an address, network or table", param, it);
        }
        strv_done(&items);
        return r;
}

int netlist_match(struct netlist *l, const char *addr_text)
{
        struct netaddr a;
        if (netaddr_parse(addr_text, &a) < 0)
                return 0;
        for (size_t i = 0; i < l->n_cidrs; i++)
                if (netaddr_cidr_match(&l->cidrs[i], &a))
                        return 1;
        for (size_t i = 0; i < l->n_tables; i++) {
                _cleanup_free_ char *v = NULL;
                int r = dict_get(l->tables[i], addr_text, &v);
                if (r != 0)
                        return r;
        }
        return 0;
}

int domlist_init(struct domlist *l, const char *param, const char *value, bool subdomains, char **ret_error)
{
        struct strv items = STRV_INIT;
        int r = 0;
        maps_split_list(value, &items);
        if (items.n > ACCESS_LIST_MAX) {
                *ret_error = xasprintf("%s: more than %d entries", param, ACCESS_LIST_MAX);
                strv_done(&items);
                return -E2BIG;
        }
        l->subdomains = subdomains;
        for (size_t i = 0; i < items.n; i++) {
                if (is_table_spec(items.v[i])) {
                        r = open_table(param, items.v[i], &l->tables, &l->n_tables, ret_error);
                        if (r < 0)
                                break;
                        continue;
                }
                char *name = xstrdup(items.v[i]);
                dict_fold_key(name);
                size_t len = strlen(name);
                if (len > 1 && name[len - 1] == '.')
                        name[len - 1] = '\0';
                strv_push_take(&l->names, name);
        }
        strv_done(&items);
        return r;
}

static bool name_matches(const char *pattern, const char *domain, bool subdomains)
{
        if (pattern[0] == '.') {
                size_t pl = strlen(pattern), dl = strlen(domain);
                return dl > pl && streq(domain + dl - pl, pattern);
        }
        if (streq(pattern, domain))
                return true;
        if (!subdomains)
                return false;
        size_t pl = strlen(pattern), dl = strlen(domain);
        return dl > pl && domain[dl - pl - 1] == '.' && streq(domain + dl - pl, pattern);
}

/* domain: lower case, no trailing dot. 1 listed, 0 not, <0 table failure. */
int domlist_match(struct domlist *l, const char *domain)
{
        for (size_t i = 0; i < l->names.n; i++) {
                const char *p = l->names.v[i];
                bool neg = p[0] == '!';
                if (name_matches(neg ? p + 1 : p, domain, l->subdomains))
                        return neg ? 0 : 1;
        }
        for (size_t i = 0; i < l->n_tables; i++) {
                const char *d = domain;
                for (size_t labels = 0; d && labels < ACCESS_DOMAIN_LABELS_MAX; labels++) {
                        _cleanup_free_ char *v = NULL;
                        int r = dict_get(l->tables[i], d, &v);
                        if (r != 0)
                                return r;
                        if (!l->subdomains)
                                break;
                        d = strchr(d, '.');
                        if (d)
                                d++;
                }
        }
        return 0;
}
