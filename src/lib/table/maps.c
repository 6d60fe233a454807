/* maps.c: a list of lookup tables searched in order, with Postfix's key orders for domains and addresses. */
#include "maps.h"

#include <errno.h>
#include <stdio.h>

#include "alloc.h"
#include "dict.h"
#include "macro.h"

struct maps {
        char *param_name;
        struct dict **dicts;
        size_t n;
};

static bool separator(char c)
{
        return c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void maps_split_list(const char *list, struct strv *ret)
{
        const char *p = list;
        while (*p) {
                while (*p && separator(*p))
                        p++;
                if (!*p)
                        break;
                const char *start = p;
                size_t depth = 0;
                for (; *p; p++) {
                        if (*p == '{')
                                depth++;
                        else if (*p == '}' && depth > 0)
                                depth--;
                        else if (depth == 0 && separator(*p))
                                break;
                }
                strv_push_take(ret, xstrndup(start, (size_t)(p - start)));
        }
}

int maps_open(const char *param_name, const char *list, struct maps **ret, char **ret_error)
{
        struct strv specs = STRV_INIT;
        maps_split_list(list, &specs);
        if (specs.n > MAPS_TABLES_MAX) {
                *ret_error = xasprintf("%s: more than %d tables", param_name, MAPS_TABLES_MAX);
                strv_done(&specs);
                return -E2BIG;
        }

        struct maps *m = xcalloc(1, sizeof(*m));
        m->param_name = xstrdup(param_name);
        m->dicts = xcalloc(specs.n ? specs.n : 1, sizeof(*m->dicts));
        for (size_t i = 0; i < specs.n; i++) {
                _cleanup_free_ char *why = NULL;
                int r = dict_open(specs.v[i], &m->dicts[m->n], &why);
                if (r < 0) {
                        /* dict messages about files already name them; the spec adds the type. */
                        *ret_error = xasprintf("%s: %s: %s", param_name, specs.v[i], why);
                        strv_done(&specs);
                        maps_free(m);
                        return r;
                }
                m->n++;
        }
        strv_done(&specs);
        *ret = m;
        return 0;
}

void maps_free(struct maps *m)
{
        if (!m)
                return;
        for (size_t i = 0; i < m->n; i++)
                dict_close(m->dicts[i]);
        free(m->dicts);
        free(m->param_name);
        free(m);
}

const char *maps_param_name(const struct maps *m)
{
        return m->param_name;
}

size_t maps_count(const struct maps *m)
{
        return m->n;
}

int maps_find(struct maps *m, const char *key, char **ret_value)
{
        for (size_t i = 0; i < m->n; i++) {
                int r = dict_get(m->dicts[i], key, ret_value);
                if (r != 0)
                        return r;
        }
        return 0;
}

int maps_find_domain(struct maps *m, const char *domain, char **ret_value)
{
        int r = maps_find(m, domain, ret_value);
        if (r != 0)
                return r;
        /* Each parent as ".parent": one dot per step, the key starting at the dot. */
        const char *p = domain;
        for (size_t labels = 0; labels < MAPS_DOMAIN_LABELS_MAX; labels++) {
                const char *dot = strchr(p + (*p == '.' ? 1 : 0), '.');
                if (!dot || dot[1] == '\0')
                        return 0;
                r = maps_find(m, dot, ret_value);
                if (r != 0)
                        return r;
                p = dot;
        }
        return 0;
}

int maps_find_address(struct maps *m, const char *address, bool domain_is_local, char **ret_value)
{
        int r = maps_find(m, address, ret_value);
        if (r != 0)
                return r;
        const char *at = strrchr(address, '@');
        if (!at)
                return 0;
        if (domain_is_local && at > address) {
                _cleanup_free_ char *user = xstrndup(address, (size_t)(at - address));
                r = maps_find(m, user, ret_value);
                if (r != 0)
                        return r;
        }
        if (at[1] == '\0')
                return 0;
        return maps_find(m, at, ret_value);
}
