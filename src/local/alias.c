/* alias.c: alias expansion for local delivery: bounded, loop-safe, duplicates removed; pure but for lookups.
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "local.h"

int alias_split(const char *value, struct strv *ret)
{
        const char *p = value;
        while (*p) {
                while (*p == ',' || isspace((unsigned char)*p))
                        p++;
                if (!*p)
                        break;
                if (ret->n >= ALIAS_MEMBERS_MAX)
                        return -E2BIG;
                struct buf item = BUF_INIT;
                bool quoted = false;
                for (; *p && (quoted || *p != ','); p++) {
                        if (*p == '"') {
                                quoted = !quoted;
                                continue;
                        }
                        if (*p == '\\' && quoted && p[1]) {
                                buf_putc(&item, *++p);
                                continue;
                        }
                        buf_putc(&item, *p);
                }
                /* Trailing blanks of an unquoted member. */
                while (item.len > 0 && isspace((unsigned char)item.data[item.len - 1]))
                        buf_truncate(&item, item.len - 1);
                if (item.len > 0)
                        strv_push_take(ret, buf_steal(&item));
                buf_done(&item);
        }
        return 0;
}

char *local_strip_extension(const char *localpart, const char *delimiter)
{
        size_t n = isempty(delimiter) ? strlen(localpart) : strcspn(localpart, delimiter);
        /* A delimiter first ("+foo") is no extension: there would be no user left. */
        return xstrndup(localpart, n ? n : strlen(localpart));
}

static void fold(char *s)
{
        for (; *s; s++)
                *s = (char)tolower((unsigned char)*s);
}

struct expand {
        alias_lookup_fn lookup;
        alias_local_fn is_local;
        void *userdata;
        const char *delimiter;
        struct strv expanded; /* names already looked up: each is expanded once */
        struct alias_list *out;
};

static int add_target(struct expand *e, enum alias_kind kind, const char *value)
{
        for (size_t i = 0; i < e->out->n; i++)
                if (e->out->v[i].kind == kind && streq(e->out->v[i].value, value))
                        return 0;
        if (e->out->n >= ALIAS_TARGETS_MAX)
                return -E2BIG;
        e->out->v = xrealloc(e->out->v, (e->out->n + 1) * sizeof *e->out->v);
        e->out->v[e->out->n].kind = kind;
        e->out->v[e->out->n].value = xstrdup(value);
        e->out->n++;
        return 0;
}

static bool already_expanded(struct expand *e, const char *name)
{
        for (size_t i = 0; i < e->expanded.n; i++)
                if (streq(e->expanded.v[i], name))
                        return true;
        return false;
}

/* Look up name, then its extension-less form. */
static int lookup_name(struct expand *e, const char *name, char **ret)
{
        int r = e->lookup(e->userdata, name, ret);
        if (r != 0)
                return r;
        _cleanup_free_ char *base = local_strip_extension(name, e->delimiter);
        if (streq(base, name))
                return 0;
        return e->lookup(e->userdata, base, ret);
}

static int expand_name(struct expand *e, const char *name, unsigned depth);

static int expand_member(struct expand *e, const char *parent, const char *member, unsigned depth)
{
        if (member[0] == '|')
                return add_target(e, ALIAS_COMMAND, member + 1);
        if (member[0] == '/')
                return add_target(e, ALIAS_FILE, member);
        if (strncasecmp(member, ":include:", 9) == 0)
                return add_target(e, ALIAS_INCLUDE, member + 9);
        _cleanup_free_ char *name = xstrdup(member);
        char *at = strrchr(name, '@');
        if (at) {
                int local = e->is_local(e->userdata, at + 1);
                if (local < 0)
                        return local;
                if (!local)
                        return add_target(e, ALIAS_REMOTE, member);
                *at = '\0';
        }
        fold(name);
        if (!*name)
                return 0;
        /* "user: user, /archive": the name itself is the user's mailbox, not another expansion. */
        if (streq(name, parent) || already_expanded(e, name))
                return streq(name, parent) ? add_target(e, ALIAS_USER, name) : 0;
        return expand_name(e, name, depth + 1);
}

static int expand_name(struct expand *e, const char *name, unsigned depth)
{
        if (depth > ALIAS_DEPTH_MAX)
                return -ELOOP;
        strv_push(&e->expanded, name);
        _cleanup_free_ char *value = NULL;
        int r = lookup_name(e, name, &value);
        if (r < 0)
                return r;
        if (r == 0)
                return add_target(e, ALIAS_USER, name);
        struct strv members = STRV_INIT;
        r = alias_split(value, &members);
        for (size_t i = 0; r >= 0 && i < members.n; i++)
                r = expand_member(e, name, members.v[i], depth);
        strv_done(&members);
        return r;
}

int alias_expand(const char *localpart, const char *delimiter, alias_lookup_fn lookup,
                 alias_local_fn is_local, void *userdata, struct alias_list *ret)
{
        struct expand e = {.lookup = lookup,
                           .is_local = is_local,
                           .userdata = userdata,
                           .delimiter = delimiter,
                           .out = ret};
        *ret = (struct alias_list){0};
        _cleanup_free_ char *name = xstrdup(localpart);
        fold(name);
        int r = expand_name(&e, name, 0);
        strv_done(&e.expanded);
        if (r < 0)
                alias_list_done(ret);
        return r;
}

void alias_list_done(struct alias_list *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i].value);
        free(l->v);
        *l = (struct alias_list){0};
}
