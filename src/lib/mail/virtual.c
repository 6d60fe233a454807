/* virtual.c: virtual alias expansion and canonical mapping over a lookup callback; lazily opened tables. */
#include "virtual.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "log.h"
#include "macro.h"
#include "maps.h"

static bool value_separator(char c)
{
        return c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void virtual_split_value(const char *value, struct strv *ret)
{
        const char *p = value;
        while (*p) {
                while (*p && value_separator(*p))
                        p++;
                if (!*p)
                        break;
                const char *start = p;
                bool quoted = false;
                for (; *p; p++) {
                        if (*p == '\\' && p[1])
                                p++;
                        else if (*p == '"')
                                quoted = !quoted;
                        else if (!quoted && value_separator(*p))
                                break;
                }
                strv_push_take(ret, xstrndup(start, (size_t)(p - start)));
        }
}

char *virtual_apply_item(const char *address, const char *item)
{
        if (item[0] != '@')
                return xstrdup(item);
        const char *at = strrchr(address, '@');
        size_t user_len = at ? (size_t)(at - address) : strlen(address);
        return xasprintf("%.*s%s", (int)user_len, address, item);
}

static char *canonical_item(const struct virtual_ops *ops, const char *address, const char *item)
{
        char *applied = virtual_apply_item(address, item);
        if (!ops->canon)
                return applied;
        char *canon = ops->canon(ops->userdata, applied);
        free(applied);
        return canon;
}

const char *virtual_status_limit_name(enum virtual_status s)
{
        switch (s) {
        case VIRTUAL_RECURSION_LIMIT: return "virtual_alias_recursion_limit";
        case VIRTUAL_EXPANSION_LIMIT: return "virtual_alias_expansion_limit";
        case VIRTUAL_ADDRESS_LENGTH: return "virtual_alias_address_length_limit";
        case VIRTUAL_LOOKUPS_LIMIT: return "VIRTUAL_LOOKUPS_MAX";
        default: return NULL;
        }
}

struct pending {
        char *address;
        size_t depth; /* rewrites that led here */
        bool final;   /* found in its own expansion: kept as it is */
};

static bool strv_has_nocase(const struct strv *v, const char *s)
{
        for (size_t i = 0; i < v->n; i++)
                if (strcasecmp(v->v[i], s) == 0)
                        return true;
        return false;
}

static int fail(struct virtual_result *ret, enum virtual_status status, const char *where, int r)
{
        strv_done(&ret->addresses);
        ret->status = status;
        ret->where = xstrdup(where);
        return r;
}

int virtual_expand(const struct virtual_ops *ops, const char *address, struct virtual_result *ret)
{
        *ret = (struct virtual_result){.addresses = STRV_INIT};
        /* Depth first with an explicit stack: the recursion limit is the operator's, not the C stack's. */
        struct pending *stack = xmalloc(sizeof *stack);
        size_t n = 0, cap = 1, lookups = 0;
        stack[n++] = (struct pending){xstrdup(address), 0, false};
        int r = 0;

        while (n > 0 && r == 0) {
                struct pending e = stack[--n];
                if (e.final || strv_has_nocase(&ret->addresses, e.address)) {
                        if (!strv_has_nocase(&ret->addresses, e.address))
                                strv_push(&ret->addresses, e.address);
                        free(e.address);
                        continue;
                }
                if (e.depth >= ops->recursion_limit)
                        r = fail(ret, VIRTUAL_RECURSION_LIMIT, e.address, -ELOOP);
                else if (++lookups > VIRTUAL_LOOKUPS_MAX)
                        r = fail(ret, VIRTUAL_LOOKUPS_LIMIT, e.address, -E2BIG);
                if (r < 0) {
                        free(e.address);
                        break;
                }
                _cleanup_free_ char *value = NULL;
                int found = ops->lookup(ops->userdata, e.address, &value);
                struct strv items = STRV_INIT;
                if (found > 0)
                        virtual_split_value(value, &items);
                if (found < 0) {
                        ret->lookup_error = found;
                        r = fail(ret, VIRTUAL_LOOKUP_FAILED, e.address, -EIO);
                } else if (items.n == 0) {
                        /* Not in the table (or an empty value, which must not lose the recipient). */
                        strv_push(&ret->addresses, e.address);
                } else {
                        if (n + items.n > cap) {
                                cap = 2 * (n + items.n);
                                stack = xrealloc(stack, cap * sizeof *stack);
                        }
                        /* Reversed, so that the first item of the value is expanded first. */
                        for (size_t i = items.n; i-- > 0;) {
                                char *next = canonical_item(ops, e.address, items.v[i]);
                                bool self = strcasecmp(next, e.address) == 0;
                                stack[n++] = (struct pending){next, e.depth + 1, self};
                                if (ops->address_length_limit && strlen(next) > ops->address_length_limit &&
                                    r == 0)
                                        r = fail(ret, VIRTUAL_ADDRESS_LENGTH, e.address, -ENAMETOOLONG);
                        }
                }
                /* What is expanded plus what waits: Postfix's bound on the recipient list it builds. */
                if (r == 0 && ret->addresses.n + n > ops->expansion_limit)
                        r = fail(ret, VIRTUAL_EXPANSION_LIMIT, e.address, -E2BIG);
                strv_done(&items);
                free(e.address);
        }
        for (size_t i = 0; i < n; i++)
                free(stack[i].address);
        free(stack);
        return r;
}

void virtual_result_done(struct virtual_result *r)
{
        strv_done(&r->addresses);
        free(r->where);
        r->where = NULL;
}

int virtual_map_one(const struct virtual_ops *ops, const char *address, char **ret,
                    bool *ret_nesting_exceeded)
{
        char *current = xstrdup(address);
        *ret_nesting_exceeded = false;
        for (size_t count = 0;; count++) {
                if (count >= VIRTUAL_CANONICAL_NESTING_MAX) {
                        *ret_nesting_exceeded = true;
                        break;
                }
                _cleanup_free_ char *value = NULL;
                int found = ops->lookup(ops->userdata, current, &value);
                if (found < 0) {
                        free(current);
                        *ret = NULL;
                        return found;
                }
                struct strv items = STRV_INIT;
                if (found > 0)
                        virtual_split_value(value, &items);
                if (items.n == 0) {
                        strv_done(&items);
                        break;
                }
                char *next = canonical_item(ops, current, items.v[0]);
                strv_done(&items);
                bool same = strcasecmp(next, current) == 0;
                free(current);
                current = next;
                if (same)
                        break;
        }
        *ret = current;
        return 0;
}

void table_param_init(struct table_param *t, const char *param, const char *value)
{
        *t = (struct table_param){.param = xstrdup(param), .value = xstrdup(value ? value : "")};
}

bool table_param_empty(const struct table_param *t)
{
        for (const char *p = t->value; *p; p++)
                if (!value_separator(*p))
                        return false;
        return true;
}

int table_param_get(struct table_param *t, struct maps **ret, const char **ret_error)
{
        if (!t->maps) {
                char *err = NULL;
                int r = maps_open(t->param, t->value, &t->maps, &err);
                if (r < 0) {
                        t->maps = NULL;
                        if (!err)
                                err = xasprintf("%s: %s", t->param, strerror(-r));
                        if (!t->last_error || !streq(t->last_error, err))
                                msg_warn("%s; mail that needs %s is deferred until the table can be opened",
                                         err, t->param);
                        free(t->last_error);
                        t->last_error = err;
                        if (ret_error)
                                *ret_error = t->last_error;
                        return r;
                }
        }
        *ret = t->maps;
        return 0;
}

void table_param_done(struct table_param *t)
{
        maps_free(t->maps);
        free(t->param);
        free(t->value);
        free(t->last_error);
        *t = (struct table_param){0};
}
