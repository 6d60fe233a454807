/* config.c: the configuration object: value resolution (override, main.cf, default), $name expansion,
 * checks. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <strings.h>
#include <unistd.h>

#include "alloc.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "postd-build.h"

#define CONFIG_BUCKETS_MIN 256u

struct centry {
        char *name;
        const struct param_def *def; /* NULL: unknown (user-defined) parameter */
        char *service_default;       /* "$base" for a per-service parameter */
        const char *maincf_value;    /* points into c->mcf; NULL when not in main.cf */
        unsigned line;
        char *override;
        char *dynamic_default; /* host-derived default, recomputed when caches are dropped */
        char *shown_default;   /* config_get_default() of a host-derived parameter */
        char *expanded;
        char *error; /* expansion error of the cached value */
        bool cached;
        bool expanding;
        struct centry *next;
};

struct config {
        char *dir;
        char *maincf_path;
        char *hostname;
        struct maincf mcf;
        struct centry **buckets;
        size_t n_buckets;
        size_t n_entries;
        struct strv services;
        struct strv references;
        size_t cache_bytes; /* sum of the cached expanded values: a few bytes of $a$a chains must not eat
                               memory */
};

/* ---- entries ---- */

static uint64_t hash_name(const char *s)
{
        uint64_t h = 1469598103934665603ull;
        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211ull;
        return h;
}

static struct centry *find_entry(const struct config *c, const char *name)
{
        for (struct centry *e = c->buckets[hash_name(name) & (c->n_buckets - 1)]; e; e = e->next)
                if (streq(e->name, name))
                        return e;
        return NULL;
}

static void grow_buckets(struct config *c)
{
        size_t n = c->n_buckets * 2;
        struct centry **b = xcalloc(n, sizeof *b);
        for (size_t i = 0; i < c->n_buckets; i++)
                for (struct centry *e = c->buckets[i], *next; e; e = next) {
                        next = e->next;
                        size_t k = hash_name(e->name) & (n - 1);
                        e->next = b[k];
                        b[k] = e;
                }
        free(c->buckets);
        c->buckets = b;
        c->n_buckets = n;
}

static const struct param_def *resolve_def(const char *name, bool *ret_service)
{
        const struct param_def *def = param_find(name);
        *ret_service = false;
        if (def)
                return def;
        size_t prefix;
        def = param_find_service(name, &prefix);
        if (def)
                *ret_service = true;
        return def;
}

/* The entry for name; created on demand for a known parameter (or always when force). */
static struct centry *get_entry(struct config *c, const char *name, bool force)
{
        struct centry *e = find_entry(c, name);
        if (e)
                return e;
        bool service;
        const struct param_def *def = resolve_def(name, &service);
        if (!def && !force)
                return NULL;
        if (c->n_entries >= c->n_buckets)
                grow_buckets(c);
        e = xcalloc(1, sizeof *e);
        e->name = xstrdup(name);
        e->def = def;
        if (service)
                e->service_default = xasprintf("$%s", def->name);
        size_t k = hash_name(name) & (c->n_buckets - 1);
        e->next = c->buckets[k];
        c->buckets[k] = e;
        c->n_entries++;
        return e;
}

static void drop_caches(struct config *c)
{
        for (size_t i = 0; i < c->n_buckets; i++)
                for (struct centry *e = c->buckets[i]; e; e = e->next) {
                        free(e->expanded);
                        free(e->error);
                        free(e->dynamic_default);
                        e->expanded = e->error = e->dynamic_default = NULL;
                        e->cached = false;
                }
        c->cache_bytes = 0;
}

static struct config *config_alloc(const char *dir)
{
        struct config *c = xcalloc(1, sizeof *c);
        c->dir = xstrdup(dir);
        c->maincf_path = xasprintf("%s/main.cf", dir);
        c->n_buckets = CONFIG_BUCKETS_MIN;
        c->buckets = xcalloc(c->n_buckets, sizeof *c->buckets);

        char host[256] = "";
        if (gethostname(host, sizeof host - 1) < 0 || !*host)
                snprintf(host, sizeof host, "localhost");
        c->hostname = xstrdup(host);
        return c;
}

struct config *config_new_defaults_for(const char *dir)
{
        return config_alloc(dir);
}

struct config *config_new_defaults(void)
{
        return config_alloc(POSTD_CONFIG_DIR);
}

int config_load_text(const char *config_dir, const char *text, size_t len, struct config **ret)
{
        struct config *c = config_alloc(config_dir);
        int r = maincf_parse(text, len, &c->mcf);
        if (r < 0) {
                config_free(c);
                return r;
        }
        for (size_t i = 0; i < c->mcf.n_entries; i++) {
                const struct maincf_entry *me = &c->mcf.entries[i];
                struct centry *e = get_entry(c, me->name, true);
                e->maincf_value = me->value;
                e->line = me->line;
        }
        *ret = c;
        return 0;
}

int config_load(const char *config_dir, struct config **ret)
{
        const char *dir = config_dir;
        if (!dir)
                dir = getenv("MAIL_CONFIG");
        if (isempty(dir))
                dir = POSTD_CONFIG_DIR;

        _cleanup_free_ char *path = xasprintf("%s/main.cf", dir);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = read_file(path, MAINCF_FILE_MAX, &text, &len);
        if (r < 0)
                return r;
        return config_load_text(dir, text, len, ret);
}

void config_free(struct config *c)
{
        if (!c)
                return;
        for (size_t i = 0; i < c->n_buckets; i++)
                for (struct centry *e = c->buckets[i], *next; e; e = next) {
                        next = e->next;
                        free(e->name);
                        free(e->service_default);
                        free(e->override);
                        free(e->dynamic_default);
                        free(e->shown_default);
                        free(e->expanded);
                        free(e->error);
                        free(e);
                }
        free(c->buckets);
        maincf_done(&c->mcf);
        strv_done(&c->services);
        strv_done(&c->references);
        free(c->dir);
        free(c->maincf_path);
        free(c->hostname);
        free(c);
}

const char *config_directory(const struct config *c)
{
        return c->dir;
}

const struct maincf *config_maincf(const struct config *c)
{
        return &c->mcf;
}

const char *config_maincf_path(const struct config *c)
{
        return c->maincf_path;
}

void config_set_hostname(struct config *c, const char *hostname)
{
        free(c->hostname);
        c->hostname = xstrdup(hostname);
        drop_caches(c);
}

void config_set(struct config *c, const char *name, const char *value)
{
        struct centry *e = get_entry(c, name, true);
        free(e->override);
        e->override = xstrdup(value ? value : "");
        drop_caches(c);
}

/* ---- values ---- */

static const char *lookup_expanded(struct config *c, struct centry *e, unsigned *depth, char **ret_error);

static bool entry_is_set(const struct centry *e)
{
        return e->override || e->maincf_value;
}

/*
 * Host-derived defaults. myhostname: the host name when it is fully qualified, else the short name
 * plus $mydomain (when mydomain is set) or ".localdomain". mydomain: $myhostname minus its first
 * label, or "localdomain" when that leaves nothing.
 */
static const char *dynamic_default(struct config *c, struct centry *e, unsigned *depth, char **ret_error)
{
        if (e->dynamic_default)
                return e->dynamic_default;
        const char *name = e->def->name;
        if (streq(name, "config_directory"))
                e->dynamic_default = xstrdup(c->dir);
        else if (streq(name, "myhostname")) {
                struct centry *dom = get_entry(c, "mydomain", false);
                if (strchr(c->hostname, '.'))
                        e->dynamic_default = xstrdup(c->hostname);
                else if (dom && entry_is_set(dom))
                        e->dynamic_default = xasprintf("%s.$mydomain", c->hostname);
                else
                        e->dynamic_default = xasprintf("%s.localdomain", c->hostname);
        } else if (streq(name, "mydomain")) {
                struct centry *host = get_entry(c, "myhostname", false);
                const char *h = host ? lookup_expanded(c, host, depth, ret_error) : "";
                const char *dot = strchr(h, '.');
                e->dynamic_default = xstrdup(dot && dot[1] ? dot + 1 : "localdomain");
        } else
                e->dynamic_default = xstrdup(e->def->def);
        return e->dynamic_default;
}

static const char *entry_raw(struct config *c, struct centry *e, unsigned *depth, char **ret_error)
{
        if (e->override)
                return e->override;
        if (e->maincf_value)
                return e->maincf_value;
        if (!e->def)
                return NULL;
        if (e->service_default)
                return e->service_default;
        if (e->def->flags & PARAM_F_DYNAMIC)
                return dynamic_default(c, e, depth, ret_error);
        return e->def->def;
}

/* ---- expansion ---- */

struct expander {
        struct config *c;
        const char *param; /* the parameter being expanded, for messages; NULL for free text */
        unsigned *depth;
        char **err; /* the first error wins */
};

_printf_(2, 3) static void set_error(struct expander *x, const char *fmt, ...)
{
        if (*x->err)
                return;
        va_list ap;
        va_start(ap, fmt);
        struct buf b = BUF_INIT;
        buf_vprintf(&b, fmt, ap);
        va_end(ap);
        _cleanup_free_ char *msg = buf_steal(&b);
        if (x->param)
                *x->err = xasprintf("parameter %s: %s", x->param, msg);
        else
                *x->err = TAKE_PTR(msg);
}

static void put(struct expander *x, struct buf *out, const char *s, size_t n)
{
        if (out->len + n > CONFIG_EXPAND_OUTPUT_MAX) {
                set_error(x, "value too long after expansion (more than %u bytes)",
                          CONFIG_EXPAND_OUTPUT_MAX);
                return;
        }
        if (x->c->cache_bytes + out->len + n > CONFIG_EXPAND_TOTAL_MAX) {
                set_error(x, "expanded values too large in total (more than %u bytes)",
                          CONFIG_EXPAND_TOTAL_MAX);
                return;
        }
        buf_append(out, s, n);
}

/* Position of the bracket that closes the one just before s (nesting counted), or NULL. */
static const char *find_close(const char *s, const char *end, char open, char close)
{
        unsigned level = 1;
        for (; s < end; s++) {
                if (*s == open)
                        level++;
                else if (*s == close && --level == 0)
                        return s;
        }
        return NULL;
}

static const char *skip_space(const char *s, const char *end)
{
        while (s < end && (*s == ' ' || *s == '\t'))
                s++;
        return s;
}

static void expand_text(struct expander *x, const char *s, size_t len, struct buf *out);

static const char *lookup_name(struct expander *x, const char *name, size_t len)
{
        char tmp[PARAM_NAME_MAX + 1];
        if (len > PARAM_NAME_MAX) {
                set_error(x, "parameter name too long in $reference: %.20s...", name);
                return "";
        }
        memcpy(tmp, name, len);
        tmp[len] = 0;
        struct centry *e = get_entry(x->c, tmp, false);
        if (!e)
                return "";
        return lookup_expanded(x->c, e, x->depth, x->err);
}

/* Expand sub-text one nesting level deeper. */
static void expand_nested(struct expander *x, const char *s, size_t len, struct buf *out)
{
        if (*x->depth >= CONFIG_EXPAND_DEPTH_MAX) {
                set_error(x, "%s", "too many nested expansions");
                return;
        }
        (*x->depth)++;
        expand_text(x, s, len, out);
        (*x->depth)--;
}

/* The inside of ${...} or $(...): name, optionally followed by ?value, :value or a braced form. */
static void expand_braced(struct expander *x, const char *s, const char *end, struct buf *out)
{
        const char *n = s;
        while (n < end && param_name_char(*n))
                n++;
        if (n == s) {
                set_error(x, "%s", "missing parameter name after '${'");
                return;
        }
        const char *value = lookup_name(x, s, (size_t)(n - s));
        if (n == end) {
                put(x, out, value, strlen(value));
                return;
        }
        char op = *n;
        if (op != '?' && op != ':') {
                set_error(x, "%s", "bad syntax in ${name...}: expected '}', '?' or ':' after the name");
                return;
        }
        const char *body = n + 1;
        const char *then_s = body, *then_e = end; /* the text for the chosen branch */
        const char *else_s = NULL, *else_e = NULL;
        const char *b = skip_space(body, end);
        if (b < end && *b == '{') {
                const char *close = find_close(b + 1, end, '{', '}');
                if (!close) {
                        set_error(x, "%s", "missing '}' in ${name?{value}}");
                        return;
                }
                then_s = b + 1;
                then_e = close;
                const char *rest = skip_space(close + 1, end);
                if (rest < end) {
                        if (op != '?' || *rest != ':') {
                                set_error(x, "%s", "bad syntax after ${name?{value}}");
                                return;
                        }
                        rest = skip_space(rest + 1, end);
                        if (rest >= end || *rest != '{') {
                                set_error(x, "%s", "expected '{' in ${name?{value1}:{value2}}");
                                return;
                        }
                        const char *close2 = find_close(rest + 1, end, '{', '}');
                        if (!close2 || skip_space(close2 + 1, end) != end) {
                                set_error(x, "%s", "bad syntax in ${name?{value1}:{value2}}");
                                return;
                        }
                        else_s = rest + 1;
                        else_e = close2;
                }
        }
        bool nonempty = *value != 0;
        if (op == ':') {
                if (!nonempty)
                        expand_nested(x, then_s, (size_t)(then_e - then_s), out);
        } else if (nonempty)
                expand_nested(x, then_s, (size_t)(then_e - then_s), out);
        else if (else_s)
                expand_nested(x, else_s, (size_t)(else_e - else_s), out);
}

static void expand_text(struct expander *x, const char *s, size_t len, struct buf *out)
{
        const char *end = s + len;
        while (s < end) {
                const char *dollar = memchr(s, '$', (size_t)(end - s));
                if (!dollar) {
                        put(x, out, s, (size_t)(end - s));
                        return;
                }
                put(x, out, s, (size_t)(dollar - s));
                s = dollar + 1;
                if (s == end) {
                        put(x, out, "$", 1);
                        return;
                }
                if (*s == '$') {
                        put(x, out, "$", 1);
                        s++;
                } else if (*s == '{' || *s == '(') {
                        char close_ch = *s == '{' ? '}' : ')';
                        const char *close = find_close(s + 1, end, *s, close_ch);
                        if (!close) {
                                if (*s == '{')
                                        set_error(x, "%s", "missing '}' after '${'");
                                else
                                        set_error(x, "%s", "missing ')' after '$('");
                                put(x, out, dollar, (size_t)(end - dollar));
                                return;
                        }
                        expand_braced(x, s + 1, close, out);
                        s = close + 1;
                } else if (param_name_char(*s)) {
                        const char *n = s;
                        while (n < end && param_name_char(*n))
                                n++;
                        const char *value = lookup_name(x, s, (size_t)(n - s));
                        put(x, out, value, strlen(value));
                        s = n;
                } else
                        put(x, out, "$", 1);
        }
}

/* The expanded value of an entry ("" when it has none), cached until the next config_set. */
static const char *lookup_expanded(struct config *c, struct centry *e, unsigned *depth, char **ret_error)
{
        if (e->cached) {
                if (e->error && !*ret_error)
                        *ret_error = xstrdup(e->error);
                return e->expanded;
        }
        if (e->expanding) {
                if (!*ret_error)
                        *ret_error = xasprintf("parameter %s: recursive expansion", e->name);
                return "";
        }
        if (*depth >= CONFIG_EXPAND_DEPTH_MAX) {
                if (!*ret_error)
                        *ret_error = xasprintf("parameter %s: too many nested expansions", e->name);
                return "";
        }
        e->expanding = true;
        (*depth)++;

        char *own_err = NULL;
        struct buf out = BUF_INIT;
        const char *raw = entry_raw(c, e, depth, &own_err);
        if (raw) {
                struct expander x = {c, e->name, depth, &own_err};
                expand_text(&x, raw, strlen(raw), &out);
        }
        (*depth)--;
        e->expanding = false;
        c->cache_bytes += out.len;
        e->expanded = buf_steal(&out);
        e->error = own_err;
        e->cached = true;
        if (own_err && !*ret_error)
                *ret_error = xstrdup(own_err);
        return e->expanded;
}

int config_expand(struct config *c, const char *text, char **ret, char **ret_error)
{
        char *e = NULL;
        unsigned depth = 0;
        struct buf out = BUF_INIT;
        struct expander x = {c, NULL, &depth, &e};
        expand_text(&x, text, strlen(text), &out);
        *ret = buf_steal(&out);
        if (!e)
                return 0;
        int r = strstr(e, "recursive") ? -ELOOP : (strstr(e, "too") ? -E2BIG : -EINVAL);
        if (ret_error)
                *ret_error = e;
        else
                free(e);
        return r;
}

const char *config_get(struct config *c, const char *name)
{
        struct centry *e = get_entry(c, name, false);
        if (!e || (!e->def && !entry_is_set(e)))
                return NULL;
        bool fresh = !e->cached;
        char *err = NULL;
        unsigned depth = 0;
        const char *v = lookup_expanded(c, e, &depth, &err);
        if (err && fresh)
                msg_warn("%s: %s", c->maincf_path, err);
        free(err);
        return v;
}

const char *config_get_raw(struct config *c, const char *name)
{
        struct centry *e = get_entry(c, name, false);
        if (!e)
                return NULL;
        char *err = NULL;
        unsigned depth = 0;
        const char *v = entry_raw(c, e, &depth, &err);
        free(err);
        return v;
}

bool config_is_set(struct config *c, const char *name)
{
        struct centry *e = find_entry(c, name);
        return e && entry_is_set(e);
}

const struct param_def *config_param_def(struct config *c, const char *name)
{
        bool service;
        return resolve_def(name, &service);
}

const char *config_get_default(struct config *c, const char *name)
{
        struct centry *e = get_entry(c, name, false);
        if (!e || !e->def)
                return NULL;
        if (e->service_default)
                return e->service_default;
        if (e->def->flags & PARAM_F_DYNAMIC) {
                /* What the default would be without main.cf: ask a defaults-only object. */
                struct config *d = config_alloc(c->dir);
                free(d->hostname);
                d->hostname = xstrdup(c->hostname);
                const char *v = config_get_raw(d, name);
                free(e->shown_default);
                e->shown_default = xstrdup(v ? v : "");
                config_free(d);
                return e->shown_default;
        }
        return e->def->def;
}

/* ---- typed getters ---- */

static const char *default_expanded(struct config *c, const struct param_def *def, char **buf)
{
        char *err = NULL;
        config_expand(c, def->def, buf, &err);
        free(err);
        return *buf;
}

long long config_get_int(struct config *c, const char *name)
{
        const char *v = config_get(c, name);
        long long n = 0;
        if (!v)
                return 0;
        const struct param_def *def = config_param_def(c, name);
        int r = def && def->type == PARAM_SIZE ? param_parse_size(v, &n) : param_parse_int(v, &n);
        if (r >= 0)
                return n;
        if (!def)
                return 0;
        _cleanup_free_ char *d = NULL;
        default_expanded(c, def, &d);
        msg_warn("%s: bad numerical value: %s = %s; using the default %s", c->maincf_path, name, v, d);
        if (param_parse_int(d, &n) < 0)
                n = 0;
        return n;
}

bool config_get_bool(struct config *c, const char *name)
{
        const char *v = config_get(c, name);
        bool b = false;
        if (!v)
                return false;
        if (param_parse_bool(v, &b) >= 0)
                return b;
        const struct param_def *def = config_param_def(c, name);
        if (!def)
                return false;
        _cleanup_free_ char *d = NULL;
        default_expanded(c, def, &d);
        msg_warn("%s: bad boolean value (use yes or no): %s = %s; using the default %s", c->maincf_path,
                 name, v, d);
        if (param_parse_bool(d, &b) < 0)
                b = false;
        return b;
}

long long config_get_time(struct config *c, const char *name)
{
        const char *v = config_get(c, name);
        const struct param_def *def = config_param_def(c, name);
        char unit = def && def->unit ? def->unit : 's';
        long long n = 0;
        if (!v)
                return 0;
        if (param_parse_time(v, unit, &n) >= 0)
                return n;
        if (!def)
                return 0;
        _cleanup_free_ char *d = NULL;
        default_expanded(c, def, &d);
        msg_warn("%s: bad time value: %s = %s; using the default %s", c->maincf_path, name, v, d);
        if (param_parse_time(d, unit, &n) < 0)
                n = 0;
        return n;
}

void config_split_list(const char *value, struct strv *ret)
{
        const char *p = value;
        while (*p) {
                p += strspn(p, ", \t\r\n");
                if (!*p)
                        break;
                const char *start = p;
                unsigned level = 0;
                /* Separators inside {...} belong to the element (inline:{a=b, c=d}). */
                for (; *p; p++) {
                        if (*p == '{')
                                level++;
                        else if (*p == '}' && level > 0)
                                level--;
                        else if (level == 0 && strchr(", \t\r\n", *p))
                                break;
                }
                strv_push_take(ret, xstrndup(start, (size_t)(p - start)));
        }
}

void config_get_list(struct config *c, const char *name, struct strv *ret)
{
        const char *v = config_get(c, name);
        if (v)
                config_split_list(v, ret);
}

/* ---- known, unused, listing ---- */

void config_add_service(struct config *c, const char *service)
{
        strv_push(&c->services, service);
}

void config_add_references(struct config *c, const char *text)
{
        strv_push(&c->references, text);
}

bool config_is_known(struct config *c, const char *name)
{
        if (param_find(name))
                return true;
        size_t prefix = 0;
        if (!param_find_service(name, &prefix))
                return false;
        for (size_t i = 0; i < c->services.n; i++)
                if (strlen(c->services.v[i]) == prefix && strncmp(c->services.v[i], name, prefix) == 0)
                        return true;
        return false;
}

/* Does text mention $name, ${name...} or $(name...)? */
static bool references_name(const char *text, const char *name)
{
        size_t n = strlen(name);
        for (const char *p = strchr(text, '$'); p; p = strchr(p + 1, '$')) {
                const char *q = p + 1;
                if (*q == '{' || *q == '(')
                        q++;
                if (strncmp(q, name, n) == 0 && !param_name_char(q[n]))
                        return true;
        }
        return false;
}

bool config_is_referenced(struct config *c, const char *name)
{
        for (size_t i = 0; i < c->mcf.n_entries; i++)
                if (references_name(c->mcf.entries[i].value, name))
                        return true;
        for (size_t i = 0; i < c->references.n; i++)
                if (references_name(c->references.v[i], name))
                        return true;
        /* smtpd_restriction_classes names user-defined restriction lists. */
        const struct maincf_entry *classes = maincf_find(&c->mcf, "smtpd_restriction_classes");
        if (classes) {
                struct strv v = STRV_INIT;
                config_split_list(classes->value, &v);
                bool found = false;
                for (size_t i = 0; i < v.n && !found; i++)
                        found = streq(v.v[i], name);
                strv_done(&v);
                if (found)
                        return true;
        }
        return false;
}

static int compare_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

void config_list_names(struct config *c, bool with_defaults, struct strv *ret)
{
        struct strv all = STRV_INIT;
        if (with_defaults) {
                size_t n;
                const struct param_def *t = param_table(&n);
                for (size_t i = 0; i < n; i++)
                        strv_push(&all, t[i].name);
        }
        for (size_t i = 0; i < c->mcf.n_entries; i++)
                strv_push(&all, c->mcf.entries[i].name);
        if (all.n > 0)
                qsort(all.v, all.n, sizeof *all.v, compare_str);
        for (size_t i = 0; i < all.n; i++)
                if (i == 0 || !streq(all.v[i], all.v[i - 1]))
                        strv_push(ret, all.v[i]);
        strv_done(&all);
}

void config_list_unused(struct config *c, struct strv *ret)
{
        struct strv names = STRV_INIT;
        config_list_names(c, false, &names);
        for (size_t i = 0; i < names.n; i++)
                if (!config_is_known(c, names.v[i]) && !config_is_referenced(c, names.v[i]))
                        strv_push(ret, names.v[i]);
        strv_done(&names);
}

bool config_setting_is_inert(struct config *c, const char *name, const char *value)
{
        const struct param_def *def = config_param_def(c, name);
        if (!def || !(def->flags & PARAM_F_INERT))
                return false;
        /* The default, or a value that turns the feature off, is what postd does anyway. */
        return value && !streq(value, def->def) && !streq(value, "") && !streq(value, "0") &&
               strcasecmp(value, "no") != 0;
}

void config_list_inert(struct config *c, struct strv *ret)
{
        struct strv names = STRV_INIT;
        config_list_names(c, false, &names);
        for (size_t i = 0; i < names.n; i++)
                if (config_setting_is_inert(c, names.v[i], config_get_raw(c, names.v[i])))
                        strv_push(ret, names.v[i]);
        strv_done(&names);
}

char *config_inert_warning(struct config *c, const char *name)
{
        return xasprintf("%s: parameter %s is not implemented by postd yet: the setting \"%s\" has no "
                         "effect",
                         config_maincf_path(c), name, config_get_raw(c, name));
}

/* ---- checks ---- */

static char *check_expanded(struct config *c, const char *name, const char *value, char **ret_err)
{
        char *expanded = NULL;
        config_expand(c, value, &expanded, ret_err);
        const struct param_def *def = config_param_def(c, name);
        char *problem = NULL;
        if (def && !*ret_err) {
                struct param_def named = *def;
                named.name = name;
                problem = param_check_value(&named, expanded);
        }
        free(expanded);
        return problem;
}

char *config_check_value(struct config *c, const char *name, const char *value)
{
        char *err = NULL;
        char *problem = check_expanded(c, name, value, &err);
        if (err) {
                free(problem);
                problem = xasprintf("parameter %s: %s", name, err);
                free(err);
        }
        return problem;
}

size_t config_check(struct config *c, struct strv *ret)
{
        size_t n = 0;
        for (size_t i = 0; i < c->mcf.n_diags; i++, n++)
                strv_push_take(ret, xasprintf("main.cf line %u: %s", c->mcf.diags[i].line,
                                              c->mcf.diags[i].message));
        for (size_t i = 0; i < c->mcf.n_entries; i++) {
                const struct maincf_entry *me = &c->mcf.entries[i];
                char *err = NULL;
                _cleanup_free_ char *problem = check_expanded(c, me->name, me->value, &err);
                if (err) {
                        /* Errors from deeper parameters already name them; say where this one is. */
                        if (strncmp(err, "parameter ", 10) == 0)
                                strv_push_take(ret, xasprintf("main.cf line %u: %s", me->line, err));
                        else
                                strv_push_take(ret, xasprintf("main.cf line %u: parameter %s: %s", me->line,
                                                              me->name, err));
                        free(err);
                        n++;
                } else if (problem) {
                        strv_push_take(ret, xasprintf("main.cf line %u: %s", me->line, problem));
                        n++;
                }
        }
        return n;
}
