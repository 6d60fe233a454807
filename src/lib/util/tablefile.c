/* tablefile.c: pure parsers of Postfix's table source formats (postmap, aliases, inline:{...}). */
#include "tablefile.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include "alloc.h"
#include "buf.h"
#include "macro.h"

static bool is_blank(char c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

_printf_(3, 4) static void add_diag(struct tablefile *t, unsigned line, const char *fmt, ...)
{
        if (t->n_diags >= TABLEFILE_DIAGS_MAX) {
                t->n_diags_dropped++;
                return;
        }
        if (t->n_diags == t->cap_diags) {
                t->cap_diags = t->cap_diags ? t->cap_diags * 2 : 8;
                t->diags = xrealloc(t->diags, t->cap_diags * sizeof(*t->diags));
        }
        struct buf b = BUF_INIT;
        va_list ap;
        va_start(ap, fmt);
        buf_vprintf(&b, fmt, ap);
        va_end(ap);
        t->diags[t->n_diags++] = (struct tablefile_diag){.line = line, .message = buf_steal(&b)};
}

static void add_entry(struct tablefile *t, char *key, char *value, unsigned line)
{
        if (t->n_entries == t->cap_entries) {
                t->cap_entries = t->cap_entries ? t->cap_entries * 2 : 16;
                t->entries = xrealloc(t->entries, t->cap_entries * sizeof(*t->entries));
        }
        t->entries[t->n_entries++] = (struct tablefile_entry){.key = key, .value = value, .line = line};
}

void tablefile_done(struct tablefile *t)
{
        for (size_t i = 0; i < t->n_entries; i++) {
                free(t->entries[i].key);
                free(t->entries[i].value);
        }
        free(t->entries);
        for (size_t i = 0; i < t->n_diags; i++)
                free(t->diags[i].message);
        free(t->diags);
        *t = (struct tablefile)TABLEFILE_INIT;
}

/* Called once per logical line with its text (trailing blanks removed, NUL-free). */
typedef void (*line_fn)(struct tablefile *t, char *text, unsigned line);

struct logical {
        struct buf text;
        unsigned line;
        bool active;  /* a logical line is being collected */
        bool discard; /* it became too long or holds a NUL byte: reported, then dropped */
};

static int flush_logical(struct tablefile *t, struct logical *l, line_fn fn, size_t *count)
{
        if (!l->active)
                return 0;
        l->active = false;
        if (l->discard) {
                buf_done(&l->text);
                return 0;
        }
        size_t n = l->text.len;
        while (n > 0 && is_blank(l->text.data[n - 1]))
                n--;
        buf_truncate(&l->text, n);
        if (++*count > TABLEFILE_LINES_MAX) {
                buf_done(&l->text);
                add_diag(t, l->line, "more than %d lines", TABLEFILE_LINES_MAX);
                return -E2BIG;
        }
        fn(t, buf_steal(&l->text), l->line);
        return 0;
}

static void logical_add(struct tablefile *t, struct logical *l, const char *p, size_t n)
{
        if (l->discard)
                return;
        if (memchr(p, '\0', n)) {
                add_diag(t, l->line, "line contains a NUL byte; skipping it");
                l->discard = true;
        } else if (l->text.len + n > TABLEFILE_LINE_MAX) {
                add_diag(t, l->line, "line longer than %d bytes; skipping it", TABLEFILE_LINE_MAX);
                l->discard = true;
        } else {
                buf_append(&l->text, p, n);
        }
}

static int for_each_logical_line(const char *text, size_t len, struct tablefile *t, line_fn fn)
{
        struct logical l = {.text = BUF_INIT};
        size_t count = 0;
        unsigned lineno = 0;
        size_t pos = 0;
        int r = 0;

        while (pos < len) {
                const char *p = text + pos;
                const char *nl = memchr(p, '\n', len - pos);
                size_t n = nl ? (size_t)(nl - p) : len - pos;
                pos += n + (nl ? 1 : 0);
                if (n > 0 && p[n - 1] == '\r')
                        n--;
                if (lineno < UINT_MAX)
                        lineno++;

                size_t skip = 0;
                while (skip < n && is_blank(p[skip]))
                        skip++;
                if (skip == n || p[skip] == '#')
                        continue;
                if (skip > 0) {
                        if (!l.active) {
                                add_diag(t, lineno,
                                         "continuation line without a preceding line; skipping it");
                                continue;
                        }
                        logical_add(t, &l, p, n);
                        continue;
                }
                r = flush_logical(t, &l, fn, &count);
                if (r < 0)
                        break;
                l = (struct logical){.text = BUF_INIT, .line = lineno, .active = true};
                logical_add(t, &l, p, n);
        }
        if (r == 0)
                r = flush_logical(t, &l, fn, &count);
        buf_done(&l.text);
        return r;
}

static void line_as_entry(struct tablefile *t, char *text, unsigned line)
{
        add_entry(t, text, NULL, line);
}

int tablefile_parse_lines(const char *text, size_t len, struct tablefile *ret)
{
        return for_each_logical_line(text, len, ret, line_as_entry);
}

static void map_line(struct tablefile *t, char *text, unsigned line)
{
        char *p = text;
        while (*p && !is_blank(*p))
                p++;
        char *v = p;
        while (*v && is_blank(*v))
                v++;
        if (*v == '\0') {
                add_diag(t, line, "expected format: key whitespace value");
                free(text);
                return;
        }
        add_entry(t, xstrndup(text, (size_t)(p - text)), xstrdup(v), line);
        free(text);
}

int tablefile_parse_map(const char *text, size_t len, struct tablefile *ret)
{
        return for_each_logical_line(text, len, ret, map_line);
}

/* A double-quoted string starting at p ('"'); returns the end (after the closing quote) or NULL. */
static const char *quoted_end(const char *p)
{
        for (p++; *p; p++) {
                if (*p == '\\' && p[1])
                        p++;
                else if (*p == '"')
                        return p + 1;
        }
        return NULL;
}

static char *unquote(const char *p, size_t n)
{
        struct buf b = BUF_INIT;
        /* buf_reserve alone leaves no terminator; an empty append adds one */
        buf_reserve(&b, n);
        buf_append(&b, "", 0);
        for (size_t i = 0; i < n; i++) {
                if (p[i] == '"')
                        continue;
                if (p[i] == '\\' && i + 1 < n)
                        i++;
                buf_putc(&b, p[i]);
        }
        return buf_steal(&b);
}

static void alias_line(struct tablefile *t, char *text, unsigned line)
{
        const char *p = text, *name_end, *colon;
        char *name;

        if (*p == '"') {
                name_end = quoted_end(p);
                if (!name_end) {
                        add_diag(t, line, "unbalanced quote in alias name");
                        free(text);
                        return;
                }
                colon = name_end;
                while (*colon && is_blank(*colon))
                        colon++;
                if (*colon != ':') {
                        add_diag(t, line, "need name:value pair");
                        free(text);
                        return;
                }
                name = unquote(p + 1, (size_t)(name_end - p - 2));
        } else {
                colon = strchr(p, ':');
                if (!colon) {
                        add_diag(t, line, "need name:value pair");
                        free(text);
                        return;
                }
                name_end = colon;
                while (name_end > p && is_blank(name_end[-1]))
                        name_end--;
                name = xstrndup(p, (size_t)(name_end - p));
        }
        const char *v = colon + 1;
        while (*v && is_blank(*v))
                v++;
        if (*name == '\0' || *v == '\0') {
                add_diag(t, line, "need name:value pair");
                free(name);
                free(text);
                return;
        }
        add_entry(t, name, xstrdup(v), line);
        free(text);
}

int tablefile_parse_aliases(const char *text, size_t len, struct tablefile *ret)
{
        return for_each_logical_line(text, len, ret, alias_line);
}

static char *trimmed(const char *p, size_t n)
{
        while (n > 0 && is_blank(*p)) {
                p++;
                n--;
        }
        while (n > 0 && is_blank(p[n - 1]))
                n--;
        return xstrndup(p, n);
}

/* One "key=value" or "{ key = value }" element of an inline table. */
static int inline_element(struct tablefile *t, const char *p, size_t n, bool braced)
{
        const char *eq = memchr(p, '=', n);
        if (!eq) {
                add_diag(t, 0, "missing '=' after attribute name in \"%.*s\"", (int)(n > 200 ? 200 : n), p);
                return -EINVAL;
        }
        char *key = braced ? trimmed(p, (size_t)(eq - p)) : xstrndup(p, (size_t)(eq - p));
        if (*key == '\0') {
                free(key);
                add_diag(t, 0, "missing key before '=' in \"%.*s\"", (int)(n > 200 ? 200 : n), p);
                return -EINVAL;
        }
        size_t rest = n - (size_t)(eq + 1 - p);
        add_entry(t, key, braced ? trimmed(eq + 1, rest) : xstrndup(eq + 1, rest), 0);
        return 0;
}

int tablefile_parse_inline(const char *text, size_t len, struct tablefile *ret)
{
        if (memchr(text, '\0', len)) {
                add_diag(ret, 0, "NUL byte in table text");
                return -EINVAL;
        }
        while (len > 0 && is_blank(*text)) {
                text++;
                len--;
        }
        while (len > 0 && is_blank(text[len - 1]))
                len--;
        if (len < 2 || text[0] != '{' || text[len - 1] != '}') {
                add_diag(ret, 0, "syntax error: expected \"{ key=value, ... }\"");
                return -EINVAL;
        }
        const char *p = text + 1, *end = text + len - 1;
        while (p < end) {
                if (is_blank(*p) || *p == ',') {
                        p++;
                        continue;
                }
                if (*p == '{') {
                        int depth = 0;
                        const char *q = p;
                        for (; q < end; q++) {
                                if (*q == '{' && ++depth > TABLEFILE_INLINE_DEPTH_MAX) {
                                        add_diag(ret, 0, "braces nested too deeply");
                                        return -EINVAL;
                                }
                                if (*q == '}' && --depth == 0)
                                        break;
                        }
                        if (q >= end) {
                                add_diag(ret, 0, "missing '}' in inline table");
                                return -EINVAL;
                        }
                        int r = inline_element(ret, p + 1, (size_t)(q - p - 1), true);
                        if (r < 0)
                                return r;
                        p = q + 1;
                        continue;
                }
                const char *q = p;
                while (q < end && !is_blank(*q) && *q != ',' && *q != '{' && *q != '}')
                        q++;
                if (q < end && (*q == '{' || *q == '}')) {
                        add_diag(ret, 0, "unexpected '%c' in inline table", *q);
                        return -EINVAL;
                }
                int r = inline_element(ret, p, (size_t)(q - p), false);
                if (r < 0)
                        return r;
                p = q;
        }
        return 0;
}

int tablefile_split_alias_targets(const char *value, struct strv *ret)
{
        const char *p = value;
        size_t count = 0;
        while (*p) {
                const char *start = p;
                while (*p && *p != ',') {
                        if (*p == '"') {
                                const char *e = quoted_end(p);
                                p = e ? e : p + strlen(p);
                        } else
                                p++;
                }
                char *t = trimmed(start, (size_t)(p - start));
                if (*t) {
                        if (++count > TABLEFILE_ALIAS_TARGETS_MAX) {
                                free(t);
                                return -E2BIG;
                        }
                        strv_push_take(ret, t);
                } else
                        free(t);
                if (*p == ',')
                        p++;
        }
        return 0;
}

enum alias_target_kind tablefile_alias_target_kind(const char *target, char **ret_arg)
{
        size_t n = strlen(target);
        _cleanup_free_ char *plain = NULL;

        /* "|cmd args" and "/path with space" are quoted as a whole to protect their blanks. */
        if (n >= 2 && target[0] == '"' && target[n - 1] == '"')
                plain = unquote(target + 1, n - 2);
        else
                plain = xstrdup(target);

        if (strncasecmp(plain, ":include:", 9) == 0) {
                const char *path = plain + 9;
                while (is_blank(*path))
                        path++;
                *ret_arg = xstrdup(path);
                return ALIAS_TARGET_INCLUDE;
        }
        if (plain[0] == '|') {
                *ret_arg = xstrdup(plain + 1);
                return ALIAS_TARGET_COMMAND;
        }
        if (plain[0] == '/') {
                *ret_arg = xstrdup(plain);
                return ALIAS_TARGET_FILE;
        }
        *ret_arg = TAKE_PTR(plain);
        return ALIAS_TARGET_ADDRESS;
}
