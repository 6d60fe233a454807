/* smtp_addr.c: RFC 5321 Path / Mailbox parsing, internal (unquoted) and external (quoted) address forms. */
#include "smtp_addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <strings.h>

#include "alloc.h"
#include "buf.h"

static bool is_alpha(unsigned char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
        return c >= '0' && c <= '9';
}

/* RFC 5322 atext, ASCII part. */
static bool is_atext(unsigned char c)
{
        return is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

size_t smtp_utf8_seq_len(const unsigned char *p, size_t n)
{
        if (n == 0)
                return 0;
        unsigned char c = p[0];
        size_t len;
        uint32_t cp;
        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf) {
                len = 2;
                cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
                len = 3;
                cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
                len = 4;
                cp = c & 0x07;
        } else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (p[i] & 0x3f);
        }
        /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8. */
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return len;
}

bool smtp_utf8_valid(const char *p, size_t n)
{
        const unsigned char *u = (const unsigned char *)p;
        size_t i = 0;
        while (i < n) {
                size_t l = smtp_utf8_seq_len(u + i, n - i);
                if (l == 0)
                        return false;
                i += l;
        }
        return true;
}

/* One LDH label, or with utf8 a label that may also contain UTF-8 sequences. */
static bool label_valid(const unsigned char *s, size_t len, bool utf8)
{
        if (len == 0 || len > SMTP_LABEL_MAX)
                return false;
        if (s[0] == '-' || s[len - 1] == '-')
                return false;
        for (size_t i = 0; i < len;) {
                if (s[i] >= 0x80) {
                        size_t l = utf8 ? smtp_utf8_seq_len(s + i, len - i) : 0;
                        if (l == 0)
                                return false;
                        i += l;
                        continue;
                }
                if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '-')
                        return false;
                i++;
        }
        return true;
}

static bool address_literal_valid(const char *s, size_t len)
{
        char tmp[64];
        unsigned char bin[16];
        if (len < 2 || s[0] != '[' || s[len - 1] != ']' || len - 2 >= sizeof(tmp))
                return false;
        memcpy(tmp, s + 1, len - 2);
        tmp[len - 2] = '\0';
        if (strncasecmp(tmp, "IPv6:", 5) == 0)
                return inet_pton(AF_INET6, tmp + 5, bin) == 1;
        /* inet_pton refuses leading zeros and shorthand forms, which is what RFC 5321 wants. */
        return inet_pton(AF_INET, tmp, bin) == 1;
}

bool smtp_domain_valid(const char *s, size_t len, bool utf8)
{
        if (len == 0 || len > SMTP_DOMAIN_MAX)
                return false;
        if (s[0] == '[')
                return address_literal_valid(s, len);
        size_t start = 0;
        for (size_t i = 0; i <= len; i++) {
                if (i == len || s[i] == '.') {
                        if (!label_valid((const unsigned char *)s + start, i - start, utf8))
                                return false;
                        start = i + 1;
                }
        }
        return true;
}

bool smtp_local_is_dot_string(const char *local, size_t len)
{
        const unsigned char *u = (const unsigned char *)local;
        if (len == 0 || u[0] == '.' || u[len - 1] == '.')
                return false;
        for (size_t i = 0; i < len;) {
                if (u[i] == '.') {
                        if (u[i + 1] == '.')
                                return false;
                        i++;
                } else if (u[i] >= 0x80) {
                        size_t l = smtp_utf8_seq_len(u + i, len - i);
                        if (l == 0)
                                return false;
                        i += l;
                } else if (is_atext(u[i]))
                        i++;
                else
                        return false;
        }
        return true;
}

/* Parses one UTF-8 sequence at s[*i]; -EILSEQ when not allowed, -EINVAL when malformed. */
static int take_utf8(const unsigned char *s, size_t len, size_t *i, unsigned flags, bool *utf8)
{
        if (!(flags & SMTP_ADDR_UTF8))
                return -EILSEQ;
        size_t l = smtp_utf8_seq_len(s + *i, len - *i);
        if (l == 0)
                return -EINVAL;
        *i += l;
        *utf8 = true;
        return 0;
}

/* Domain at s[*i]; stops at the first byte that cannot belong to it. */
static int parse_domain(const unsigned char *s, size_t len, size_t *i, unsigned flags, bool *utf8)
{
        size_t start = *i;
        if (*i < len && s[*i] == '[') {
                while (*i < len && s[*i] != ']') {
                        if (s[*i] <= ' ' || s[*i] >= 0x7f || (s[*i] == '[' && *i != start) || s[*i] == '\\')
                                return -EINVAL;
                        (*i)++;
                }
                if (*i >= len)
                        return -EINVAL;
                (*i)++;
        } else {
                while (*i < len) {
                        unsigned char c = s[*i];
                        if (c >= 0x80) {
                                int r = take_utf8(s, len, i, flags, utf8);
                                if (r < 0)
                                        return r;
                        } else if (is_alpha(c) || is_digit(c) || c == '-' || c == '.')
                                (*i)++;
                        else
                                break;
                }
        }
        if (*i - start > SMTP_DOMAIN_MAX)
                return -ENAMETOOLONG;
        if (!smtp_domain_valid((const char *)s + start, *i - start, flags & SMTP_ADDR_UTF8))
                return -EINVAL;
        return 0;
}

/* Local part at s[*i] (dot-string or quoted-string), unquoted into out. */
static int parse_local(const unsigned char *s, size_t len, size_t *i, unsigned flags, struct buf *out,
                       bool *utf8)
{
        size_t start = *i;
        if (*i < len && s[*i] == '"') {
                (*i)++;
                for (;;) {
                        if (*i >= len)
                                return -EINVAL;
                        unsigned char c = s[*i];
                        if (c == '"') {
                                (*i)++;
                                break;
                        }
                        if (c == '\\') {
                                /* quoted-pairSMTP: a backslash and one printable ASCII character. */
                                if (*i + 1 >= len || s[*i + 1] < 32 || s[*i + 1] > 126)
                                        return -EINVAL;
                                buf_putc(out, (char)s[*i + 1]);
                                *i += 2;
                        } else if (c >= 0x80) {
                                size_t at = *i;
                                int r = take_utf8(s, len, i, flags, utf8);
                                if (r < 0)
                                        return r;
                                buf_append(out, s + at, *i - at);
                        } else if (c >= 32 && c <= 126) {
                                buf_putc(out, (char)c);
                                (*i)++;
                        } else
                                return -EINVAL;
                }
        } else {
                while (*i < len) {
                        unsigned char c = s[*i];
                        if (c >= 0x80) {
                                size_t at = *i;
                                int r = take_utf8(s, len, i, flags, utf8);
                                if (r < 0)
                                        return r;
                                buf_append(out, s + at, *i - at);
                        } else if (is_atext(c) || c == '.') {
                                buf_putc(out, (char)c);
                                (*i)++;
                        } else
                                break;
                }
                if (!smtp_local_is_dot_string(buf_str(out), out->len))
                        return -EINVAL;
        }
        if (*i - start > SMTP_LOCAL_PART_MAX)
                return -ENAMETOOLONG;
        return 0;
}

/* A-d-l = At-domain *( "," At-domain ), followed by ":"; only checked, never used (RFC 5321 4.1.1.3). */
static int parse_source_route(const unsigned char *s, size_t len, size_t *i, unsigned flags)
{
        bool dummy = false;
        for (;;) {
                if (*i >= len || s[*i] != '@')
                        return -EINVAL;
                (*i)++;
                int r = parse_domain(s, len, i, flags, &dummy);
                if (r < 0)
                        return r;
                if (*i < len && s[*i] == ',') {
                        (*i)++;
                        continue;
                }
                if (*i < len && s[*i] == ':') {
                        (*i)++;
                        return 0;
                }
                return -EINVAL;
        }
}

/* "<user>" or a bare "user" (SMTP_ADDR_ALLOW_NO_DOMAIN): the same end checks as a whole path. */
static int finish_no_domain(const unsigned char *s, size_t len, size_t i, bool bracket, bool utf8,
                            struct buf *local, struct smtp_addr *ret, size_t *ret_end)
{
        int r = 0;
        /* A quoted local part with an "@" ("a@b" without a domain) would read as another address
         * once unquoted: refused, so that what is stored always parses back the same. */
        if (local->len == 0 || memchr(local->data, '@', local->len))
                r = -EINVAL;
        else if (bracket && (i >= len || s[i] != '>'))
                r = -EINVAL;
        else if (bracket && ++i > SMTP_PATH_MAX)
                r = -ENAMETOOLONG;
        else if (!bracket && i < len && s[i] != ' ' && s[i] != '\t')
                r = -EINVAL;
        if (r < 0) {
                buf_done(local);
                return r;
        }
        ret->local = buf_steal(local);
        ret->addr = xstrdup(ret->local);
        ret->utf8 = utf8;
        *ret_end = i;
        return 0;
}

int smtp_addr_parse(const char *str, size_t len, unsigned flags, struct smtp_addr *ret, size_t *ret_end)
{
        const unsigned char *s = (const unsigned char *)str;
        struct buf local = BUF_INIT;
        size_t i = 0, dstart, dend;
        bool bracket, utf8 = false;
        int r;

        *ret = (struct smtp_addr){0};
        if (len > 0 && s[0] == '<')
                bracket = true;
        else if (flags & SMTP_ADDR_ALLOW_BARE)
                bracket = false;
        else
                return -EINVAL;
        if (bracket) {
                i = 1;
                if (len > 1 && s[1] == '>') {
                        if (!(flags & SMTP_ADDR_ALLOW_NULL))
                                return -EINVAL;
                        ret->addr = xstrdup("");
                        ret->local = xstrdup("");
                        ret->null_path = true;
                        *ret_end = 2;
                        return 0;
                }
                if ((flags & SMTP_ADDR_ALLOW_POSTMASTER) && len >= 12 && s[11] == '>' &&
                    strncasecmp(str + 1, "postmaster", 10) == 0) {
                        ret->local = xstrndup(str + 1, 10);
                        ret->addr = xstrdup(ret->local);
                        *ret_end = 12;
                        return 0;
                }
                if (len > 1 && s[1] == '@') {
                        r = parse_source_route(s, len, &i, flags);
                        if (r < 0)
                                return r;
                }
        }
        r = parse_local(s, len, &i, flags, &local, &utf8);
        if (r < 0)
                goto fail;
        if ((flags & SMTP_ADDR_ALLOW_NO_DOMAIN) && (i >= len || s[i] != '@'))
                return finish_no_domain(s, len, i, bracket, utf8, &local, ret, ret_end);
        if (i >= len || s[i] != '@') {
                r = -EINVAL;
                goto fail;
        }
        i++;
        dstart = i;
        r = parse_domain(s, len, &i, flags, &utf8);
        if (r < 0)
                goto fail;
        dend = i;
        if (bracket) {
                if (i >= len || s[i] != '>') {
                        r = -EINVAL;
                        goto fail;
                }
                i++;
                if (i > SMTP_PATH_MAX) {
                        r = -ENAMETOOLONG;
                        goto fail;
                }
        } else {
                if (i < len && s[i] != ' ' && s[i] != '\t') {
                        r = -EINVAL;
                        goto fail;
                }
                if (i > SMTP_PATH_MAX - 2) {
                        r = -ENAMETOOLONG;
                        goto fail;
                }
        }
        /* An unquoted NUL cannot occur (not atext); a quoted one is refused by the quoted-pair rule. */
        ret->domain = xstrndup(str + dstart, dend - dstart);
        ret->local = buf_steal(&local);
        ret->addr = xasprintf("%s@%s", ret->local, ret->domain);
        ret->utf8 = utf8;
        *ret_end = i;
        return 0;
fail:
        buf_done(&local);
        return r;
}

void smtp_addr_done(struct smtp_addr *a)
{
        free(a->addr);
        free(a->local);
        free(a->domain);
        *a = (struct smtp_addr){0};
}

void smtp_addr_split(const char *addr, char **ret_local, char **ret_domain)
{
        const char *at = strrchr(addr, '@');
        if (!at) {
                *ret_local = xstrdup(addr);
                *ret_domain = NULL;
                return;
        }
        *ret_local = xstrndup(addr, (size_t)(at - addr));
        *ret_domain = xstrdup(at + 1);
}

void smtp_addr_lowercase_domain(char *addr)
{
        char *at = strrchr(addr, '@');
        if (!at)
                return;
        for (char *p = at + 1; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                        *p = (char)(*p - 'A' + 'a');
}

char *smtp_addr_quote(const char *addr)
{
        const char *at = strrchr(addr, '@');
        size_t llen = at ? (size_t)(at - addr) : strlen(addr);
        struct buf b = BUF_INIT;

        if (llen == 0 && !at)
                return xstrdup("");
        if (smtp_local_is_dot_string(addr, llen))
                buf_append(&b, addr, llen);
        else {
                buf_putc(&b, '"');
                for (size_t i = 0; i < llen; i++) {
                        if (addr[i] == '"' || addr[i] == '\\')
                                buf_putc(&b, '\\');
                        buf_putc(&b, addr[i]);
                }
                buf_putc(&b, '"');
        }
        if (at)
                buf_puts(&b, at);
        return buf_steal(&b);
}
