/* maincf.c: main.cf parser and editor; pure functions over bytes so they can be unit-tested and fuzzed. */
#include "maincf.h"

#include <errno.h>

#include "alloc.h"
#include "buf.h"
#include "macro.h"
#include "params.h"

/* Diagnostics quote at most this much of the offending line. */
#define MAINCF_QUOTE_MAX 80

static bool is_space(char c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

struct parser {
        struct maincf *m;
        size_t cap_entries;
        size_t cap_diags;
        size_t dropped_diags;
        /* The logical line being collected. */
        struct buf cur;
        bool have_cur;
        bool cur_too_long;
        unsigned cur_line, cur_last;
        size_t cur_start, cur_end;
        /* Continuations of a rejected line belong to it, not to the entry before. */
        bool swallow;
};

static void add_diag(struct parser *p, unsigned line, char *message)
{
        struct maincf *m = p->m;
        if (m->n_diags >= MAINCF_DIAGS_MAX - 1) {
                p->dropped_diags++;
                free(message);
                return;
        }
        if (m->n_diags == p->cap_diags) {
                p->cap_diags = p->cap_diags ? p->cap_diags * 2 : 8;
                m->diags = xrealloc(m->diags, p->cap_diags * sizeof *m->diags);
        }
        m->diags[m->n_diags++] = (struct maincf_diag){line, message};
}

/* A short, printable quote of the start of s. */
static char *quote(const char *s, size_t len)
{
        struct buf b = BUF_INIT;
        for (size_t i = 0; i < len && i < MAINCF_QUOTE_MAX; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c < 0x20 || c == 0x7f)
                        buf_putc(&b, '?');
                else
                        buf_putc(&b, (char)c);
        }
        if (len > MAINCF_QUOTE_MAX)
                buf_puts(&b, "...");
        return buf_steal(&b);
}

static void finish_logical_line(struct parser *p)
{
        if (!p->have_cur)
                return;
        p->have_cur = false;

        const char *s = p->cur.data ? p->cur.data : "";
        size_t len = p->cur.len;

        if (p->cur_too_long) {
                add_diag(p, p->cur_line, xasprintf("line too long (more than %u bytes)", MAINCF_LINE_MAX));
                goto out;
        }
        const char *eq = memchr(s, '=', len);
        if (!eq) {
                _cleanup_free_ char *q = quote(s, len);
                add_diag(p, p->cur_line, xasprintf("missing '=' after parameter name: \"%s\"", q));
                goto out;
        }
        size_t name_len = (size_t)(eq - s);
        while (name_len > 0 && is_space(s[name_len - 1]))
                name_len--;
        if (name_len == 0) {
                add_diag(p, p->cur_line, xstrdup("missing parameter name before '='"));
                goto out;
        }
        if (!param_valid_name(s, name_len)) {
                _cleanup_free_ char *q = quote(s, name_len);
                add_diag(p, p->cur_line, xasprintf("bad parameter name: \"%s\"", q));
                goto out;
        }
        if (p->m->n_entries >= MAINCF_ENTRIES_MAX) {
                add_diag(p, p->cur_line,
                         xasprintf("too many parameters (more than %u)", MAINCF_ENTRIES_MAX));
                goto out;
        }
        const char *v = eq + 1;
        while (v < s + len && is_space(*v))
                v++;

        struct maincf *m = p->m;
        if (m->n_entries == p->cap_entries) {
                p->cap_entries = p->cap_entries ? p->cap_entries * 2 : 16;
                m->entries = xrealloc(m->entries, p->cap_entries * sizeof *m->entries);
        }
        m->entries[m->n_entries++] = (struct maincf_entry){
                .name = xstrndup(s, name_len),
                .value = xstrndup(v, (size_t)(s + len - v)),
                .line = p->cur_line,
                .last_line = p->cur_last,
                .start = p->cur_start,
                .end = p->cur_end,
        };
out:
        buf_truncate(&p->cur, 0);
}

/* Append a (trimmed) piece of a logical line, joining continuations with one space. */
static void collect(struct parser *p, const char *s, size_t n)
{
        if (p->cur_too_long)
                return;
        size_t extra = n + (p->cur.len ? 1 : 0);
        if (p->cur.len + extra > MAINCF_LINE_MAX) {
                p->cur_too_long = true;
                return;
        }
        if (p->cur.len)
                buf_putc(&p->cur, ' ');
        buf_append(&p->cur, s, n);
}

int maincf_parse(const char *text, size_t len, struct maincf *ret)
{
        *ret = (struct maincf){0};
        if (len > MAINCF_FILE_MAX)
                return -EFBIG;

        struct parser p = {.m = ret, .cur = BUF_INIT};
        unsigned lineno = 0;
        size_t pos = 0;

        while (pos < len) {
                const char *ls = text + pos;
                const char *nl = memchr(ls, '\n', len - pos);
                size_t line_len = nl ? (size_t)(nl - ls) : len - pos;
                size_t next = nl ? pos + line_len + 1 : len;
                lineno++;

                size_t b = 0, e = line_len;
                while (b < e && is_space(ls[b]))
                        b++;
                while (e > b && is_space(ls[e - 1]))
                        e--;

                if (b == e || ls[b] == '#') {
                        /* Blank and comment lines neither start nor end an entry. */
                } else if (ls[0] == ' ' || ls[0] == '\t') {
                        if (p.have_cur) {
                                collect(&p, ls + b, e - b);
                                p.cur_last = lineno;
                                p.cur_end = next;
                        } else if (!p.swallow) {
                                add_diag(&p, lineno, xstrdup("continuation line before any parameter"));
                                p.swallow = true;
                        }
                } else {
                        finish_logical_line(&p);
                        p.have_cur = true;
                        p.cur_too_long = false;
                        p.swallow = true;
                        p.cur_line = p.cur_last = lineno;
                        p.cur_start = pos;
                        p.cur_end = next;
                        collect(&p, ls + b, e - b);
                }
                pos = next;
        }
        finish_logical_line(&p);
        buf_done(&p.cur);

        if (p.dropped_diags > 0) {
                /* add_diag keeps one slot free for this summary. */
                ret->diags = xrealloc(ret->diags, (ret->n_diags + 1) * sizeof *ret->diags);
                ret->diags[ret->n_diags++] = (struct maincf_diag){
                        lineno, xasprintf("too many errors (%zu more not shown)", p.dropped_diags)};
        }
        return 0;
}

void maincf_done(struct maincf *m)
{
        for (size_t i = 0; i < m->n_entries; i++) {
                free(m->entries[i].name);
                free(m->entries[i].value);
        }
        free(m->entries);
        for (size_t i = 0; i < m->n_diags; i++)
                free(m->diags[i].message);
        free(m->diags);
        *m = (struct maincf){0};
}

const struct maincf_entry *maincf_find(const struct maincf *m, const char *name)
{
        for (size_t i = m->n_entries; i > 0; i--)
                if (streq(m->entries[i - 1].name, name))
                        return &m->entries[i - 1];
        return NULL;
}

/* The edit that applies to name: the last one given for it. */
static const struct maincf_edit *find_edit(const struct maincf_edit *edits, size_t n_edits, const char *name)
{
        for (size_t i = n_edits; i > 0; i--)
                if (streq(edits[i - 1].name, name))
                        return &edits[i - 1];
        return NULL;
}

static void put_assignment(struct buf *out, const struct maincf_edit *e)
{
        if (isempty(e->value))
                buf_printf(out, "%s =\n", e->name);
        else
                buf_printf(out, "%s = %s\n", e->name, e->value);
}

int maincf_edit(const char *text, size_t len, const struct maincf_edit *edits, size_t n_edits, char **ret,
                size_t *ret_len)
{
        for (size_t i = 0; i < n_edits; i++) {
                if (!edits[i].name || !param_valid_name(edits[i].name, strlen(edits[i].name)))
                        return -EINVAL;
                if (edits[i].op == MAINCF_EDIT_SET && edits[i].value && strpbrk(edits[i].value, "\r\n"))
                        return -EINVAL;
        }

        struct maincf m;
        int r = maincf_parse(text, len, &m);
        if (r < 0)
                return r;

        struct buf out = BUF_INIT;
        buf_reserve(&out, len + 64);
        buf_append(&out, "", 0); /* buf_reserve alone leaves the data unterminated */
        bool *done = xcalloc(n_edits ? n_edits : 1, sizeof(bool));
        size_t pos = 0;

        for (size_t i = 0; i < m.n_entries; i++) {
                const struct maincf_entry *en = &m.entries[i];
                const struct maincf_edit *e = find_edit(edits, n_edits, en->name);
                if (!e)
                        continue;
                buf_append(&out, text + pos, en->start - pos);
                pos = en->end;

                size_t idx = (size_t)(e - edits);
                switch (e->op) {
                case MAINCF_EDIT_SET:
                        if (!done[idx])
                                put_assignment(&out, e);
                        done[idx] = true;
                        break;
                case MAINCF_EDIT_REMOVE: break;
                case MAINCF_EDIT_COMMENT:
                        for (size_t s = en->start; s < en->end;) {
                                const char *nl = memchr(text + s, '\n', en->end - s);
                                size_t e_line = nl ? (size_t)(nl - text) + 1 : en->end;
                                /* Blank and comment lines inside a multi-line entry stay as they are. */
                                size_t k = s;
                                while (k < e_line && is_space(text[k]))
                                        k++;
                                if (k < e_line && text[k] != '#')
                                        buf_putc(&out, '#');
                                buf_append(&out, text + s, e_line - s);
                                s = e_line;
                        }
                        if (out.len && out.data[out.len - 1] != '\n')
                                buf_putc(&out, '\n');
                        break;
                }
        }
        buf_append(&out, text + pos, len - pos);

        for (size_t i = 0; i < n_edits; i++) {
                const struct maincf_edit *e = &edits[i];
                if (e->op != MAINCF_EDIT_SET || done[i] || find_edit(edits, n_edits, e->name) != e)
                        continue;
                if (out.len && out.data[out.len - 1] != '\n')
                        buf_putc(&out, '\n');
                put_assignment(&out, e);
        }
        free(done);
        maincf_done(&m);

        if (out.len > MAINCF_FILE_MAX) {
                buf_done(&out);
                return -EFBIG;
        }
        if (ret_len)
                *ret_len = out.len;
        *ret = buf_steal(&out);
        return 0;
}

int maincf_split_assignment(const char *arg, char **ret_name, char **ret_value)
{
        const char *eq = strchr(arg, '=');
        if (!eq)
                return -EINVAL;
        const char *b = arg, *e = eq;
        while (b < e && is_space(*b))
                b++;
        while (e > b && is_space(e[-1]))
                e--;
        if (!param_valid_name(b, (size_t)(e - b)))
                return -EINVAL;
        const char *v = eq + 1;
        while (is_space(*v))
                v++;
        size_t vlen = strlen(v);
        while (vlen > 0 && is_space(v[vlen - 1]))
                vlen--;
        *ret_name = xstrndup(b, (size_t)(e - b));
        *ret_value = xstrndup(v, vlen);
        return 0;
}
