/* smtp_reply.c: SMTP reply formatting (server); incremental reply and EHLO parsing (client). */
#include "smtp_reply.h"

#include <errno.h>
#include <stdarg.h>
#include <strings.h>

#include "alloc.h"

static void put_line(struct buf *out, int code, bool last, const char *enhanced, const char *p, size_t len)
{
        buf_printf(out, "%03d%c", code, last ? ' ' : '-');
        if (!isempty(enhanced)) {
                buf_puts(out, enhanced);
                if (len > 0)
                        buf_putc(out, ' ');
        }
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)p[i];
                buf_putc(out, c < 32 || c == 127 ? '?' : (char)c);
        }
        buf_append(out, "\r\n", 2);
}

void smtp_reply_format(struct buf *out, int code, const char *enhanced, const char *text)
{
        const char *p = text ? text : "";
        for (;;) {
                const char *nl = strchr(p, '\n');
                if (!nl) {
                        put_line(out, code, true, enhanced, p, strlen(p));
                        return;
                }
                put_line(out, code, false, enhanced, p, (size_t)(nl - p));
                p = nl + 1;
        }
}

void smtp_reply_printf(struct buf *out, int code, const char *enhanced, const char *fmt, ...)
{
        struct buf text = BUF_INIT;
        va_list ap;
        va_start(ap, fmt);
        buf_vprintf(&text, fmt, ap);
        va_end(ap);
        smtp_reply_format(out, code, enhanced, buf_str(&text));
        buf_done(&text);
}

void smtp_reply_done(struct smtp_reply *r)
{
        free(r->text);
        *r = (struct smtp_reply){0};
}

char *smtp_reply_to_string(const struct smtp_reply *r)
{
        struct buf b = BUF_INIT;
        buf_printf(&b, "%03d", r->code);
        if (!isempty(r->text))
                buf_putc(&b, ' ');
        for (const char *p = r->text ? r->text : ""; *p; p++)
                buf_putc(&b, *p == '\n' ? ' ' : *p);
        return buf_steal(&b);
}

bool smtp_enhanced_parse(const char *s, size_t *ret_len)
{
        size_t i = 0;
        if (s[0] != '2' && s[0] != '4' && s[0] != '5')
                return false;
        i = 1;
        for (int part = 0; part < 2; part++) {
                if (s[i] != '.')
                        return false;
                i++;
                size_t d = 0;
                while (d < 3 && s[i] >= '0' && s[i] <= '9') {
                        d++;
                        i++;
                }
                if (d == 0 || (s[i] >= '0' && s[i] <= '9'))
                        return false;
        }
        if (s[i] != '\0' && s[i] != ' ' && s[i] != '\t')
                return false;
        *ret_len = i;
        return true;
}

void smtp_reply_parser_init(struct smtp_reply_parser *p)
{
        *p = (struct smtp_reply_parser){0};
}

void smtp_reply_parser_done(struct smtp_reply_parser *p)
{
        buf_done(&p->line);
        buf_done(&p->text);
        *p = (struct smtp_reply_parser){0};
}

static void parser_reset(struct smtp_reply_parser *p)
{
        buf_truncate(&p->line, 0);
        buf_truncate(&p->text, 0);
        p->code = 0;
        p->n_lines = 0;
        p->enhanced[0] = '\0';
}

/* One complete line (CR stripped). Returns 1 when it was the last line of the reply. */
static int parser_line(struct smtp_reply_parser *p, const char *s, size_t len)
{
        if (memchr(s, '\0', len))
                return -EBADMSG;
        if (len < 3 || s[0] < '2' || s[0] > '5' || s[1] < '0' || s[1] > '5' || s[2] < '0' || s[2] > '9')
                return -EBADMSG;
        if (len > 3 && s[3] != ' ' && s[3] != '-')
                return -EBADMSG;
        int code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
        if (p->n_lines > 0 && code != p->code)
                return -EBADMSG;
        if (p->n_lines >= SMTP_REPLY_LINES_MAX)
                return -EMSGSIZE;
        const char *t = len > 4 ? s + 4 : "";
        size_t tlen = len > 4 ? len - 4 : 0;
        if (p->text.len + tlen + 1 > SMTP_REPLY_TEXT_MAX)
                return -EMSGSIZE;
        if (p->n_lines > 0)
                buf_putc(&p->text, '\n');
        buf_append(&p->text, t, tlen);
        if (p->n_lines == 0) {
                p->code = code;
                char tmp[SMTP_ENHANCED_MAX];
                size_t n = tlen < sizeof(tmp) - 1 ? tlen : sizeof(tmp) - 1, el;
                memcpy(tmp, t, n);
                tmp[n] = '\0';
                /* An enhanced code whose class differs from the reply's is not one (RFC 3463). */
                if (smtp_enhanced_parse(tmp, &el) && tmp[0] == s[0]) {
                        memcpy(p->enhanced, tmp, el);
                        p->enhanced[el] = '\0';
                }
        }
        p->n_lines++;
        return len > 3 && s[3] == '-' ? 0 : 1;
}

int smtp_reply_parser_feed(struct smtp_reply_parser *p, const char *in, size_t n, size_t *ret_consumed,
                           struct smtp_reply *ret)
{
        size_t i = 0;
        while (i < n) {
                const char *lf = memchr(in + i, '\n', n - i);
                size_t take = lf ? (size_t)(lf - (in + i)) : n - i;
                if (p->line.len + take > SMTP_REPLY_LINE_MAX + 1)
                        return -EMSGSIZE;
                buf_append(&p->line, in + i, take);
                i += take;
                if (!lf)
                        break;
                i++; /* the LF */
                size_t len = p->line.len;
                if (len > 0 && p->line.data[len - 1] == '\r')
                        len--;
                if (len > SMTP_REPLY_LINE_MAX)
                        return -EMSGSIZE;
                int r = parser_line(p, p->line.data ? p->line.data : "", len);
                buf_truncate(&p->line, 0);
                if (r < 0)
                        return r;
                if (r > 0) {
                        *ret = (struct smtp_reply){.code = p->code, .n_lines = p->n_lines};
                        memcpy(ret->enhanced, p->enhanced, sizeof(ret->enhanced));
                        ret->text = buf_steal(&p->text);
                        parser_reset(p);
                        *ret_consumed = i;
                        return 1;
                }
        }
        *ret_consumed = i;
        return 0;
}

static bool keyword_is(const char *p, size_t len, const char *kw)
{
        return strlen(kw) == len && strncasecmp(p, kw, len) == 0;
}

static void add_auth_mechs(struct smtp_ehlo_caps *c, const char *p, size_t len)
{
        size_t i = 0;
        while (i < len) {
                while (i < len && (p[i] == ' ' || p[i] == '\t'))
                        i++;
                size_t s = i;
                while (i < len && p[i] != ' ' && p[i] != '\t')
                        i++;
                if (i == s)
                        break;
                char *m = xstrndup(p + s, i - s);
                for (char *q = m; *q; q++)
                        if (*q >= 'a' && *q <= 'z')
                                *q = (char)(*q - 'a' + 'A');
                if (c->n_auth_mechs >= SMTP_EHLO_AUTH_MECHS_MAX || smtp_ehlo_has_auth(c, m)) {
                        free(m);
                        continue;
                }
                c->auth_mechs = xrealloc(c->auth_mechs, (c->n_auth_mechs + 2) * sizeof(char *));
                c->auth_mechs[c->n_auth_mechs++] = m;
                c->auth_mechs[c->n_auth_mechs] = NULL;
        }
}

int smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo_caps *ret)
{
        *ret = (struct smtp_ehlo_caps){0};
        if (r->code != 250)
                return -EINVAL;
        const char *p = r->text ? r->text : "";
        const char *nl = strchr(p, '\n');
        /* the first line is the server's greeting, not a capability */
        for (p = nl ? nl + 1 : NULL; p;) {
                nl = strchr(p, '\n');
                size_t len = nl ? (size_t)(nl - p) : strlen(p);
                size_t kl = 0;
                while (kl < len && p[kl] != ' ' && p[kl] != '\t' && p[kl] != '=')
                        kl++;
                const char *arg = p + kl + (kl < len ? 1 : 0);
                size_t alen = len - (size_t)(arg - p);
                if (keyword_is(p, kl, "PIPELINING"))
                        ret->pipelining = true;
                else if (keyword_is(p, kl, "STARTTLS"))
                        ret->starttls = true;
                else if (keyword_is(p, kl, "8BITMIME"))
                        ret->eightbitmime = true;
                else if (keyword_is(p, kl, "SMTPUTF8"))
                        ret->smtputf8 = true;
                else if (keyword_is(p, kl, "ENHANCEDSTATUSCODES"))
                        ret->enhancedstatuscodes = true;
                else if (keyword_is(p, kl, "DSN"))
                        ret->dsn = true;
                else if (keyword_is(p, kl, "CHUNKING"))
                        ret->chunking = true;
                else if (keyword_is(p, kl, "SIZE")) {
                        uint64_t v = 0;
                        bool ok = alen > 0 && alen <= 20;
                        for (size_t i = 0; ok && i < alen; i++) {
                                unsigned d = (unsigned)(arg[i] - '0');
                                if (arg[i] < '0' || arg[i] > '9' || v > (UINT64_MAX - d) / 10)
                                        ok = false;
                                else
                                        v = v * 10 + d;
                        }
                        ret->size = true;
                        ret->size_limit = ok ? v : 0;
                } else if (keyword_is(p, kl, "AUTH")) {
                        ret->auth = true;
                        add_auth_mechs(ret, arg, alen);
                }
                p = nl ? nl + 1 : NULL;
        }
        return 0;
}

bool smtp_ehlo_has_auth(const struct smtp_ehlo_caps *c, const char *mech)
{
        for (size_t i = 0; i < c->n_auth_mechs; i++)
                if (strcasecmp(c->auth_mechs[i], mech) == 0)
                        return true;
        return false;
}

void smtp_ehlo_caps_done(struct smtp_ehlo_caps *c)
{
        for (size_t i = 0; i < c->n_auth_mechs; i++)
                free(c->auth_mechs[i]);
        free(c->auth_mechs);
        *c = (struct smtp_ehlo_caps){0};
}
