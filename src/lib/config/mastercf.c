/* mastercf.c: parse master.cf text into services, keeping per-line diagnostics instead of failing. */
#include "mastercf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>

#include "alloc.h"

/* Column 1 may become a socket path under private/ or public/, so keep it well below sun_path. */
#define MASTERCF_NAME_MAX  90
#define MASTERCF_QUOTE_MAX 64 /* bytes of input echoed in one diagnostic */
#define MASTERCF_COLUMNS   8

struct token {
        char *text;
        bool braced; /* written as { ... }; text holds the inside, trimmed */
};

struct parser {
        struct mastercf *m;
        size_t services_cap;
        size_t diags_cap;
        size_t suppressed;
        bool services_full;
};

static bool is_blank(char c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Echo input in a diagnostic safely: control and non-ASCII bytes escaped, long text cut. */
static char *quote(const char *s)
{
        struct buf b = BUF_INIT;
        size_t i;
        buf_putc(&b, '"');
        for (i = 0; s[i] && i < MASTERCF_QUOTE_MAX; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c == '"' || c == '\\')
                        buf_printf(&b, "\\%c", c);
                else if (c < 0x20 || c >= 0x7f)
                        buf_printf(&b, "\\x%02x", c);
                else
                        buf_putc(&b, (char)c);
        }
        buf_putc(&b, '"');
        if (s[i])
                buf_puts(&b, "...");
        return buf_steal(&b);
}

_printf_(3, 4) static void diag(struct parser *p, unsigned line, const char *fmt, ...)
{
        struct mastercf *m = p->m;
        va_list ap;

        if (m->n_diags >= MASTERCF_DIAGS_MAX) {
                p->suppressed++;
                return;
        }
        if (m->n_diags == p->diags_cap) {
                p->diags_cap = p->diags_cap ? p->diags_cap * 2 : 8;
                m->diags = xrealloc(m->diags, p->diags_cap * sizeof(*m->diags));
        }
        struct buf b = BUF_INIT;
        va_start(ap, fmt);
        buf_vprintf(&b, fmt, ap);
        va_end(ap);
        m->diags[m->n_diags++] = (struct mastercf_diag){.line = line, .message = buf_steal(&b)};
}

static void service_clear(struct mastercf_service *s)
{
        free(s->name);
        free(s->type_name);
        for (size_t i = 0; i < ELEMENTSOF(s->column); i++)
                free(s->column[i]);
        free(s->command);
        strv_done(&s->args);
        for (size_t i = 0; i < s->n_overrides; i++) {
                free(s->overrides[i].name);
                free(s->overrides[i].value);
        }
        free(s->overrides);
        free(s->host);
        free(s->port);
        *s = (struct mastercf_service){0};
}

void mastercf_done(struct mastercf *m)
{
        if (!m)
                return;
        for (size_t i = 0; i < m->n_services; i++)
                service_clear(&m->services[i]);
        free(m->services);
        for (size_t i = 0; i < m->n_diags; i++)
                free(m->diags[i].message);
        free(m->diags);
        *m = (struct mastercf){0};
}

static const char *const type_names[] = {
        [MASTERCF_INET] = "inet", [MASTERCF_UNIX] = "unix", [MASTERCF_UNIX_DGRAM] = "unix-dgram",
        [MASTERCF_FIFO] = "fifo", [MASTERCF_PASS] = "pass",
};

const char *mastercf_type_to_string(enum mastercf_type t)
{
        if ((size_t)t < ELEMENTSOF(type_names))
                return type_names[t];
        return NULL;
}

int mastercf_type_from_string(const char *s, enum mastercf_type *ret)
{
        for (size_t i = 0; i < ELEMENTSOF(type_names); i++)
                if (streq(s, type_names[i])) {
                        *ret = (enum mastercf_type)i;
                        return 0;
                }
        return -EINVAL;
}

const struct mastercf_service *mastercf_find(const struct mastercf *m, const char *name,
                                             enum mastercf_type type)
{
        for (size_t i = 0; i < m->n_services; i++)
                if (m->services[i].type == type && streq(m->services[i].name, name))
                        return &m->services[i];
        return NULL;
}

/* Digits only, no sign, at most max; -EINVAL otherwise. */
static int parse_uint(const char *s, size_t n, long max, long *ret)
{
        long v = 0;
        if (n == 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (s[i] - '0');
                if (v > max)
                        return -ERANGE;
        }
        *ret = v;
        return 0;
}

static const struct {
        const char *name;
        uint16_t port;
} well_known_ports[] = {
        {"smtp", 25}, {"submission", 587}, {"smtps", 465}, {"submissions", 465}, {"lmtp", 24},
};

/* A port name as /etc/services spells them: a letter first, then letters, digits, '-' or '_'. */
static bool port_name_valid(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 32 || !isalpha((unsigned char)s[0]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
                        return false;
        return true;
}

static bool port_syntax_valid(const char *s)
{
        long v;
        if (isdigit((unsigned char)s[0]))
                return parse_uint(s, strlen(s), 65535, &v) == 0 && v > 0;
        return port_name_valid(s);
}

int mastercf_port_number(const char *port, uint16_t *ret)
{
        long v;

        if (isempty(port))
                return -EINVAL;
        if (isdigit((unsigned char)port[0])) {
                if (parse_uint(port, strlen(port), 65535, &v) < 0 || v == 0)
                        return -EINVAL;
                *ret = (uint16_t)v;
                return 0;
        }
        if (!port_name_valid(port))
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(well_known_ports); i++)
                if (streq(port, well_known_ports[i].name)) {
                        *ret = well_known_ports[i].port;
                        return 0;
                }
        /* The one lookup outside the pure parser: names a site added to /etc/services. */
        struct servent *se = getservbyname(port, "tcp");
        if (!se)
                return -ENOENT;
        *ret = ntohs((uint16_t)se->s_port);
        return 0;
}

static bool hostname_valid(const char *s)
{
        size_t n = strlen(s), label = 0;
        if (n == 0 || n > 253)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c == '.') {
                        if (label == 0)
                                return false;
                        label = 0;
                        continue;
                }
                if (!isalnum((unsigned char)c) && c != '-' && c != '_')
                        return false;
                if (++label > 63)
                        return false;
        }
        return label > 0;
}

/*
 * Split an inet column 1 into host and port: "port", "host:port", "[v6addr]:port" (also "[v4addr]:port").
 * On error returns -EINVAL and *why says what is wrong.
 */
static int split_endpoint(const char *name, char **ret_host, char **ret_port, const char **ret_why)
{
        _cleanup_free_ char *host = NULL;
        const char *port;

        if (name[0] == '[') {
                const char *close = strchr(name, ']');
                if (!close) {
                        *ret_why = "missing ']'";
                        return -EINVAL;
                }
                host = xstrndup(name + 1, (size_t)(close - name - 1));
                unsigned char addr[16];
                if (inet_pton(AF_INET6, host, addr) != 1 && inet_pton(AF_INET, host, addr) != 1) {
                        *ret_why = "not an IP address inside []";
                        return -EINVAL;
                }
                if (close[1] != ':') {
                        *ret_why = "expected ':port' after ']'";
                        return -EINVAL;
                }
                port = close + 2;
        } else {
                const char *colon = strrchr(name, ':');
                if (colon) {
                        host = xstrndup(name, (size_t)(colon - name));
                        if (strchr(host, ':')) {
                                *ret_why = "an IPv6 address must be written in [], as [::1]:25";
                                return -EINVAL;
                        }
                        if (!hostname_valid(host)) {
                                *ret_why = "bad host name or address";
                                return -EINVAL;
                        }
                        port = colon + 1;
                } else
                        port = name;
        }
        if (!port_syntax_valid(port)) {
                *ret_why = isdigit((unsigned char)port[0]) ? "port number not in 1..65535"
                                                           : "bad port or service name";
                return -EINVAL;
        }
        *ret_host = TAKE_PTR(host);
        *ret_port = xstrdup(port);
        return 0;
}

static void tokens_free(struct token *t, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(t[i].text);
        free(t);
}

/*
 * Split one logical entry into words: whitespace separates words except inside { }, which nest. A word that
 * starts with '{' ends at its matching '}' and stands for the text inside, without surrounding whitespace.
 * Returns 0, or -EINVAL with a diagnostic already recorded.
 */
static int tokenize(struct parser *p, unsigned line, const char *s, struct token **ret, size_t *ret_n)
{
        struct token *t = NULL;
        size_t n = 0, cap = 0;

        for (;;) {
                while (is_blank(*s))
                        s++;
                if (!*s)
                        break;
                if (n >= MASTERCF_FIELDS_MAX) {
                        diag(p, line, "more than %d fields in one entry", MASTERCF_FIELDS_MAX);
                        goto fail;
                }
                const char *start = s;
                bool braced = *s == '{';
                size_t depth = 0;
                for (; *s; s++) {
                        if (*s == '{')
                                depth++;
                        else if (*s == '}') {
                                if (depth == 0) {
                                        diag(p, line, "unbalanced '}'");
                                        goto fail;
                                }
                                if (--depth == 0 && braced) {
                                        s++;
                                        break;
                                }
                        } else if (depth == 0 && is_blank(*s))
                                break;
                }
                if (depth > 0) {
                        diag(p, line, "missing '}'");
                        goto fail;
                }
                const char *a = start, *e = s;
                if (braced) {
                        if (*s && !is_blank(*s)) {
                                _cleanup_free_ char *q = xstrndup(s, strcspn(s, " \t\r\f\v"));
                                _cleanup_free_ char *qq = quote(q);
                                diag(p, line, "text %s after '}'", qq);
                                goto fail;
                        }
                        a++, e--;
                        while (a < e && is_blank(*a))
                                a++;
                        while (e > a && is_blank(e[-1]))
                                e--;
                }
                if (n == cap) {
                        cap = cap ? cap * 2 : 16;
                        t = xrealloc(t, cap * sizeof(*t));
                }
                t[n++] = (struct token){.text = xstrndup(a, (size_t)(e - a)), .braced = braced};
        }
        *ret = t;
        *ret_n = n;
        return 0;
fail:
        tokens_free(t, n);
        return -EINVAL;
}

static bool param_name_valid(const char *s, size_t n)
{
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '_')
                        return false;
        return true;
}

static int parse_flag(struct parser *p, unsigned line, const char *what, const char *s, bool dflt, bool *ret)
{
        if (streq(s, "y"))
                *ret = true;
        else if (streq(s, "n"))
                *ret = false;
        else if (streq(s, "-"))
                *ret = dflt;
        else {
                _cleanup_free_ char *q = quote(s);
                diag(p, line, "bad %s field %s: expected y, n or -", what, q);
                return -EINVAL;
        }
        return 0;
}

static void add_override(struct mastercf_service *svc, char *name, char *value)
{
        svc->overrides = xrealloc(svc->overrides, (svc->n_overrides + 1) * sizeof(*svc->overrides));
        svc->overrides[svc->n_overrides++] = (struct mastercf_override){.name = name, .value = value};
}

/* "-o name=value" or "-o { name = value }"; the spaces around '=' only matter in the braced form. */
static int parse_override(struct parser *p, unsigned line, const struct token *tok,
                          struct mastercf_service *svc)
{
        const char *s = tok->text, *eq = strchr(s, '=');
        _cleanup_free_ char *q = quote(s);

        if (!eq) {
                diag(p, line, "-o %s: expected name=value", q);
                return -EINVAL;
        }
        const char *ne = eq, *v = eq + 1;
        if (tok->braced) {
                while (ne > s && is_blank(ne[-1]))
                        ne--;
                while (is_blank(*v))
                        v++;
        }
        if (!param_name_valid(s, (size_t)(ne - s))) {
                diag(p, line, "-o %s: bad parameter name", q);
                return -EINVAL;
        }
        add_override(svc, xstrndup(s, (size_t)(ne - s)), xstrdup(v));
        return 0;
}

static void add_service(struct parser *p, struct mastercf_service *svc)
{
        struct mastercf *m = p->m;
        if (m->n_services == p->services_cap) {
                p->services_cap = p->services_cap ? p->services_cap * 2 : 16;
                m->services = xrealloc(m->services, p->services_cap * sizeof(*m->services));
        }
        m->services[m->n_services++] = *svc;
        *svc = (struct mastercf_service){0};
}

static void parse_entry(struct parser *p, unsigned line, const char *text)
{
        struct token *t = NULL;
        size_t n = 0;
        struct mastercf_service svc = {.line = line};
        bool bad = false;
        long v;

        if (tokenize(p, line, text, &t, &n) < 0)
                return;
        if (n < MASTERCF_COLUMNS) {
                if (n == MASTERCF_COLUMNS - 1)
                        diag(p, line, "missing command");
                else
                        diag(p, line,
                             "too few fields (%zu): expected service, type, private, unpriv, chroot, "
                             "wakeup, maxproc and command",
                             n);
                goto out;
        }
        for (size_t i = 0; i < MASTERCF_COLUMNS; i++)
                if (t[i].braced) {
                        diag(p, line, "field %zu must not be written in { }", i + 1);
                        goto out;
                }
        if (p->services_full) {
                p->suppressed++;
                goto out;
        }
        if (p->m->n_services >= MASTERCF_SERVICES_MAX) {
                diag(p, line, "more than %d services; this and later entries are ignored",
                     MASTERCF_SERVICES_MAX);
                p->services_full = true;
                goto out;
        }

        for (size_t i = 0; i < ELEMENTSOF(svc.column); i++)
                svc.column[i] = xstrdup(t[i].text);
        svc.name = xstrdup(t[0].text);
        svc.type_name = xstrdup(t[1].text);
        svc.command = xstrdup(t[7].text);

        if (mastercf_type_from_string(svc.type_name, &svc.type) < 0) {
                _cleanup_free_ char *q = quote(svc.type_name);
                diag(p, line, "unknown service type %s (expected inet, unix, unix-dgram, fifo or pass)", q);
                goto out;
        }

        if (strlen(svc.name) > MASTERCF_NAME_MAX) {
                diag(p, line, "service name longer than %d bytes", MASTERCF_NAME_MAX);
                bad = true;
        } else if (svc.type == MASTERCF_INET) {
                const char *why = NULL;
                if (split_endpoint(svc.name, &svc.host, &svc.port, &why) < 0) {
                        _cleanup_free_ char *q = quote(svc.name);
                        diag(p, line, "bad inet endpoint %s: %s", q, why);
                        bad = true;
                }
        } else if (strchr(svc.name, '/') || streq(svc.name, ".") || streq(svc.name, "..")) {
                /* The name becomes a file under private/ or public/: it must stay there. */
                _cleanup_free_ char *q = quote(svc.name);
                diag(p, line, "bad service name %s: must not contain '/'", q);
                bad = true;
        }

        if (svc.type == MASTERCF_INET && streq(t[2].text, "y")) {
                diag(p, line, "an inet service cannot be private (field 3 must be n or -)");
                bad = true;
        } else if (parse_flag(p, line, "private", t[2].text, svc.type != MASTERCF_INET, &svc.private_) < 0)
                bad = true;
        if (parse_flag(p, line, "unpriv", t[3].text, true, &svc.unpriv) < 0)
                bad = true;
        if (parse_flag(p, line, "chroot", t[4].text, false, &svc.chroot) < 0)
                bad = true;

        const char *w = t[5].text;
        if (!streq(w, "-")) {
                size_t wl = strlen(w);
                if (wl > 0 && w[wl - 1] == '?') {
                        svc.wakeup_conditional = true;
                        wl--;
                }
                if (parse_uint(w, wl, MASTERCF_WAKEUP_MAX, &v) < 0) {
                        _cleanup_free_ char *q = quote(w);
                        diag(p, line,
                             "bad wakeup time %s: expected seconds (at most %d), optionally followed by "
                             "'?', or -",
                             q, MASTERCF_WAKEUP_MAX);
                        bad = true;
                } else
                        svc.wakeup = (int)v;
        }

        if (svc.command[0] == '-') {
                /* Usually a column missing before an "-o": the option slid into the command column. */
                _cleanup_free_ char *q = quote(svc.command);
                diag(p, line, "bad command %s: a command name cannot start with '-'", q);
                bad = true;
        }

        const char *mp = t[6].text;
        if (streq(mp, "-"))
                svc.maxproc = -1;
        else if (parse_uint(mp, strlen(mp), MASTERCF_MAXPROC_MAX, &v) < 0) {
                _cleanup_free_ char *q = quote(mp);
                diag(p, line, "bad process limit %s: expected a number (at most %d) or -", q,
                     MASTERCF_MAXPROC_MAX);
                bad = true;
        } else
                svc.maxproc = (int)v;

        for (size_t i = MASTERCF_COLUMNS; i < n; i++) {
                if (!t[i].braced && streq(t[i].text, "-o")) {
                        if (i + 1 >= n) {
                                diag(p, line, "-o without name=value");
                                bad = true;
                                break;
                        }
                        if (parse_override(p, line, &t[++i], &svc) < 0)
                                bad = true;
                        continue;
                }
                strv_push(&svc.args, t[i].text);
        }

        if (bad)
                goto out;
        const struct mastercf_service *dup = mastercf_find(p->m, svc.name, svc.type);
        if (dup) {
                _cleanup_free_ char *q = quote(svc.name);
                diag(p, line, "duplicate service %s type %s (first defined on line %u)", q, svc.type_name,
                     dup->line);
                goto out;
        }
        add_service(p, &svc);
out:
        service_clear(&svc);
        tokens_free(t, n);
}

int mastercf_parse(const char *text, size_t len, struct mastercf *ret)
{
        struct mastercf m = {0};
        struct parser p = {.m = &m};
        struct buf entry = BUF_INIT;
        bool have_entry = false, too_long = false, has_nul = false;
        unsigned entry_line = 0, line = 0;
        size_t pos = 0;

        if (len > MASTERCF_TEXT_MAX)
                return -EFBIG;

        /* One pass over physical lines; an entry is complete when the next non-continuation line starts. */
        for (;;) {
                bool eof = pos >= len;
                const char *l = text + pos;
                size_t ll = 0;
                if (!eof) {
                        const char *nl = memchr(l, '\n', len - pos);
                        ll = nl ? (size_t)(nl - l) : len - pos;
                        pos += ll + (nl ? 1 : 0);
                        if (line < UINT_MAX)
                                line++;
                }

                size_t i = 0;
                while (i < ll && is_blank(l[i]))
                        i++;
                bool skip = !eof && (i == ll || l[i] == '#');
                if (skip)
                        continue;
                bool continuation = !eof && i > 0;

                if (continuation && !have_entry) {
                        diag(&p, line, "continuation line without a preceding entry");
                        continue;
                }
                if (continuation) {
                        if (!too_long) {
                                if (entry.len + 1 + ll > MASTERCF_LINE_MAX)
                                        too_long = true;
                                else {
                                        buf_putc(&entry, ' ');
                                        buf_append(&entry, l, ll);
                                }
                        }
                        if (memchr(l, '\0', ll))
                                has_nul = true;
                        continue;
                }

                if (have_entry) {
                        if (too_long)
                                diag(&p, entry_line, "entry longer than %d bytes", MASTERCF_LINE_MAX);
                        else if (has_nul)
                                diag(&p, entry_line, "entry contains a NUL byte");
                        else
                                parse_entry(&p, entry_line, buf_str(&entry));
                }
                if (eof)
                        break;

                buf_truncate(&entry, 0);
                have_entry = true;
                entry_line = line;
                has_nul = memchr(l, '\0', ll) != NULL;
                too_long = ll > MASTERCF_LINE_MAX;
                if (!too_long)
                        buf_append(&entry, l, ll);
        }
        buf_done(&entry);

        if (p.suppressed > 0) {
                /* Room for this one line is kept by going one past the cap on purpose. */
                m.diags = xrealloc(m.diags, (m.n_diags + 1) * sizeof(*m.diags));
                m.diags[m.n_diags++] = (struct mastercf_diag){
                        .line = line,
                        .message = xasprintf("%zu further problems not reported", p.suppressed)};
        }
        *ret = m;
        return 0;
}
