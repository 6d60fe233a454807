/* smtp_cmd.c: server-side SMTP command parsing (verbs, MAIL/RCPT paths, ESMTP parameters, replies). */
#include "smtp_cmd.h"

#include "dsn_notify.h"

#include <errno.h>
#include <strings.h>

#include "alloc.h"
#include "macro.h"
#include "buf.h"

static const struct {
        const char *name;
        enum smtp_verb verb;
} verbs[] = {
        {"EHLO", SMTP_VERB_EHLO},         {"HELO", SMTP_VERB_HELO}, {"MAIL", SMTP_VERB_MAIL},
        {"RCPT", SMTP_VERB_RCPT},         {"DATA", SMTP_VERB_DATA}, {"RSET", SMTP_VERB_RSET},
        {"NOOP", SMTP_VERB_NOOP},         {"QUIT", SMTP_VERB_QUIT}, {"VRFY", SMTP_VERB_VRFY},
        {"STARTTLS", SMTP_VERB_STARTTLS}, {"AUTH", SMTP_VERB_AUTH}, {"BDAT", SMTP_VERB_BDAT},
        {"ETRN", SMTP_VERB_ETRN},
};

const char *smtp_verb_to_string(enum smtp_verb v)
{
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (verbs[i].verb == v)
                        return verbs[i].name;
        return "UNKNOWN";
}

static bool is_blank(char c)
{
        return c == ' ' || c == '\t';
}

static int fail(struct smtp_cmd *c, const char *reply)
{
        free(c->reply);
        c->reply = xstrdup(reply);
        return -EINVAL;
}

int smtp_xtext_decode(const char *s, size_t len, size_t max, char **ret)
{
        struct buf b = BUF_INIT;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c == '+') {
                        int hi = i + 2 < len ? unhexchar(s[i + 1]) : -1;
                        int lo = i + 2 < len ? unhexchar(s[i + 2]) : -1;
                        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                                goto bad;
                        buf_putc(&b, (char)(hi * 16 + lo));
                        i += 2;
                } else if (c >= 33 && c <= 126 && c != '=')
                        buf_putc(&b, (char)c);
                else
                        goto bad;
                if (b.len > max)
                        goto bad;
        }
        *ret = buf_steal(&b);
        return 0;
bad:
        buf_done(&b);
        return -EINVAL;
}

char *smtp_xtext_encode(const char *s, size_t len)
{
        struct buf b = BUF_INIT;
        buf_reserve(&b, len);
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c >= 33 && c <= 126 && c != '+' && c != '=')
                        buf_putc(&b, (char)c);
                else
                        buf_printf(&b, "+%02X", c);
        }
        return buf_steal(&b);
}

static bool keyword_valid(const char *k, size_t len)
{
        if (len == 0)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = k[i];
                bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
                if (!alnum && (i == 0 || c != '-'))
                        return false;
        }
        return true;
}

static bool word_is(const char *p, size_t len, const char *word)
{
        return strlen(word) == len && strncasecmp(p, word, len) == 0;
}

static int parse_size(const char *v, size_t len, uint64_t *ret)
{
        uint64_t n = 0;
        if (len == 0 || len > 20)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (v[i] < '0' || v[i] > '9')
                        return -EINVAL;
                unsigned d = (unsigned)(v[i] - '0');
                if (n > (UINT64_MAX - d) / 10)
                        return -EINVAL;
                n = n * 10 + d;
        }
        *ret = n;
        return 0;
}

/* One "KEYWORD[=value]" of a MAIL (mail == true) or RCPT command. */
static int parse_param(struct smtp_cmd *c, bool mail, const struct smtp_cmd_options *opts, const char *p,
                       size_t len)
{
        struct smtp_cmd_params *pr = &c->params;
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        const char *v = eq ? eq + 1 : NULL;
        size_t vlen = eq ? len - klen - 1 : 0;

        if (keyword_valid(p, klen) && (!v || vlen > 0)) {
                if (mail && word_is(p, klen, "SIZE")) {
                        if (pr->size_given)
                                return fail(c, "501 5.5.4 Error: duplicate SIZE parameter");
                        if (!v || parse_size(v, vlen, &pr->size) < 0)
                                return fail(c, "501 5.5.4 Bad message size syntax");
                        pr->size_given = true;
                        return 0;
                }
                if (mail && word_is(p, klen, "BODY")) {
                        if (pr->body != SMTP_BODY_NONE)
                                return fail(c, "501 5.5.4 Error: duplicate BODY parameter");
                        if (v && word_is(v, vlen, "7BIT"))
                                pr->body = SMTP_BODY_7BIT;
                        else if (v && word_is(v, vlen, "8BITMIME"))
                                pr->body = SMTP_BODY_8BITMIME;
                        else
                                return fail(c, "501 5.5.4 Bad BODY keyword syntax");
                        return 0;
                }
                if (mail && word_is(p, klen, "SMTPUTF8") && !opts->smtputf8_disable) {
                        if (v)
                                return fail(c, "501 5.5.4 Bad SMTPUTF8 parameter syntax");
                        if (pr->smtputf8)
                                return fail(c, "501 5.5.4 Error: duplicate SMTPUTF8 parameter");
                        pr->smtputf8 = true;
                        return 0;
                }
                if (mail && word_is(p, klen, "RET")) {
                        if (pr->ret != SMTP_RET_NONE)
                                return fail(c, "501 5.5.4 Error: duplicate RET parameter");
                        if (v && word_is(v, vlen, "FULL"))
                                pr->ret = SMTP_RET_FULL;
                        else if (v && word_is(v, vlen, "HDRS"))
                                pr->ret = SMTP_RET_HDRS;
                        else
                                return fail(c, "501 5.5.4 Bad RET parameter syntax");
                        return 0;
                }
                if (mail && word_is(p, klen, "ENVID")) {
                        if (pr->envid)
                                return fail(c, "501 5.5.4 Error: duplicate ENVID parameter");
                        if (!v || smtp_xtext_decode(v, vlen, SMTP_ENVID_MAX, &pr->envid) < 0)
                                return fail(c, "501 5.5.4 Bad ENVID parameter syntax");
                        return 0;
                }
                if (mail && word_is(p, klen, "AUTH")) {
                        if (pr->auth)
                                return fail(c, "501 5.5.4 Error: duplicate AUTH parameter");
                        if (v && word_is(v, vlen, "<>"))
                                pr->auth = xstrdup("<>");
                        else if (!v || smtp_xtext_decode(v, vlen, SMTP_AUTH_PARAM_MAX, &pr->auth) < 0)
                                return fail(c, "501 5.5.4 Bad AUTH parameter syntax");
                        return 0;
                }
                if (!mail && word_is(p, klen, "NOTIFY")) {
                        if (pr->notify)
                                return fail(c, "501 5.5.4 Error: duplicate NOTIFY parameter");
                        if (!v || dsn_notify_parse(v, vlen, &pr->notify) < 0)
                                return fail(c, "501 5.5.4 Error: Bad NOTIFY parameter syntax");
                        return 0;
                }
                if (!mail && word_is(p, klen, "ORCPT")) {
                        if (pr->orcpt)
                                return fail(c, "501 5.5.4 Error: duplicate ORCPT parameter");
                        const char *semi = v ? memchr(v, ';', vlen) : NULL;
                        if (!semi || vlen > SMTP_ORCPT_MAX || !word_is(v, (size_t)(semi - v), "rfc822") ||
                            smtp_xtext_decode(semi + 1, vlen - (size_t)(semi - v) - 1, SMTP_ORCPT_MAX,
                                              &pr->orcpt) < 0 ||
                            !*pr->orcpt) {
                                free(pr->orcpt);
                                pr->orcpt = NULL;
                                return fail(c, "501 5.5.4 Error: Bad ORCPT parameter syntax");
                        }
                        pr->orcpt_type = xstrdup("rfc822");
                        return 0;
                }
        }
        _cleanup_free_ char *msg = xasprintf("555 5.5.4 Unsupported option: %.*s", (int)len, p);
        return fail(c, msg);
}

static int parse_mail_rcpt(struct smtp_cmd *c, const struct smtp_cmd_options *opts)
{
        bool mail = c->verb == SMTP_VERB_MAIL;
        const char *kw = mail ? "FROM:" : "TO:";
        const char *syntax =
                mail ? "501 5.5.4 Syntax: MAIL FROM:<address>" : "501 5.5.4 Syntax: RCPT TO:<address>";
        const char *bad =
                mail ? "501 5.1.7 Bad sender address syntax" : "501 5.1.3 Bad recipient address syntax";
        const char *a = c->arg;
        size_t alen = strlen(a), klen = strlen(kw), end = 0, i;
        unsigned flags = SMTP_ADDR_UTF8;
        int r;

        if (alen < klen || strncasecmp(a, kw, klen) != 0)
                return fail(c, syntax);
        i = klen;
        if (!opts->strict_rfc821) {
                while (i < alen && is_blank(a[i]))
                        i++;
                /* Postfix takes MAIL FROM:<user> and qualifies it with $myorigin (smtpd does that). */
                flags |= SMTP_ADDR_ALLOW_BARE | (mail ? SMTP_ADDR_ALLOW_NO_DOMAIN : 0);
        }
        if (i >= alen)
                return fail(c, syntax);
        flags |= mail ? SMTP_ADDR_ALLOW_NULL : SMTP_ADDR_ALLOW_POSTMASTER;
        r = smtp_addr_parse(a + i, alen - i, flags, &c->addr, &end);
        if (r < 0)
                return fail(c, bad);
        i += end;
        if (i < alen && !is_blank(a[i]))
                return fail(c, bad);

        for (unsigned n = 0;; n++) {
                while (i < alen && is_blank(a[i]))
                        i++;
                if (i >= alen)
                        break;
                if (n >= SMTP_CMD_PARAMS_MAX)
                        return fail(c, "501 5.5.4 Error: too many parameters");
                size_t s = i;
                while (i < alen && !is_blank(a[i]))
                        i++;
                r = parse_param(c, mail, opts, a + s, i - s);
                if (r < 0)
                        return r;
        }
        if (c->addr.utf8 && !(mail ? c->params.smtputf8 : opts->smtputf8_txn))
                return fail(c, "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
        return 0;
}

int smtp_cmd_parse(const char *line, size_t len, const struct smtp_cmd_options *opts, struct smtp_cmd *ret)
{
        static const struct smtp_cmd_options defaults = {0};
        size_t vlen = 0, i;

        *ret = (struct smtp_cmd){.verb = SMTP_VERB_UNKNOWN};
        if (!opts)
                opts = &defaults;
        if (len > SMTP_CMD_LINE_MAX)
                return fail(ret, "500 5.5.0 Error: line too long");
        /* NUL, CR or LF inside a command line means the client is not speaking SMTP (or smuggling). */
        for (i = 0; i < len; i++)
                if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n')
                        return fail(ret, "500 5.5.2 Error: bad syntax");
        if (!smtp_utf8_valid(line, len))
                return fail(ret, "500 5.5.2 Error: bad UTF-8 syntax");

        i = 0;
        while (i < len && is_blank(line[i]))
                i++;
        while (i + vlen < len && !is_blank(line[i + vlen]))
                vlen++;
        if (vlen == 0)
                return fail(ret, "500 5.5.2 Error: bad syntax");
        ret->verb_name = xstrndup(line + i, vlen);
        for (char *p = ret->verb_name; *p; p++)
                if (*p >= 'a' && *p <= 'z')
                        *p = (char)(*p - 'a' + 'A');
        for (size_t k = 0; k < ELEMENTSOF(verbs); k++)
                if (streq(ret->verb_name, verbs[k].name))
                        ret->verb = verbs[k].verb;
        i += vlen;
        while (i < len && is_blank(line[i]))
                i++;
        size_t end = len;
        while (end > i && is_blank(line[end - 1]))
                end--;
        ret->arg = xstrndup(line + i, end - i);
        bool has_arg = end > i;

        switch (ret->verb) {
        case SMTP_VERB_UNKNOWN: return fail(ret, "500 5.5.2 Error: command not recognized");
        case SMTP_VERB_BDAT:
        case SMTP_VERB_ETRN: return fail(ret, "502 5.5.2 Error: command not implemented");
        case SMTP_VERB_EHLO: return has_arg ? 0 : fail(ret, "501 Syntax: EHLO hostname");
        case SMTP_VERB_HELO: return has_arg ? 0 : fail(ret, "501 Syntax: HELO hostname");
        case SMTP_VERB_MAIL:
        case SMTP_VERB_RCPT: return parse_mail_rcpt(ret, opts);
        case SMTP_VERB_DATA: return has_arg ? fail(ret, "501 5.5.4 Syntax: DATA") : 0;
        case SMTP_VERB_RSET: return has_arg ? fail(ret, "501 5.5.4 Syntax: RSET") : 0;
        case SMTP_VERB_QUIT: return has_arg ? fail(ret, "501 5.5.4 Syntax: QUIT") : 0;
        case SMTP_VERB_STARTTLS: return has_arg ? fail(ret, "501 5.5.4 Syntax: STARTTLS") : 0;
        case SMTP_VERB_VRFY: return has_arg ? 0 : fail(ret, "501 5.5.4 Syntax: VRFY address");
        case SMTP_VERB_AUTH: return has_arg ? 0 : fail(ret, "501 5.5.4 Syntax: AUTH mechanism");
        case SMTP_VERB_NOOP: return 0;
        }
        return fail(ret, "500 5.5.2 Error: command not recognized");
}

void smtp_cmd_done(struct smtp_cmd *c)
{
        free(c->verb_name);
        free(c->arg);
        free(c->reply);
        smtp_addr_done(&c->addr);
        free(c->params.envid);
        free(c->params.orcpt_type);
        free(c->params.orcpt);
        free(c->params.auth);
        *c = (struct smtp_cmd){0};
}

int smtp_cmd_line_split(const char *in, size_t n, size_t *ret_line_len, size_t *ret_consumed)
{
        size_t scan = n < SMTP_CMD_LINE_MAX + 2 ? n : SMTP_CMD_LINE_MAX + 2;
        const char *lf = memchr(in, '\n', scan);
        if (!lf)
                return n >= SMTP_CMD_LINE_MAX + 2 ? -E2BIG : 0;
        size_t k = (size_t)(lf - in);
        *ret_consumed = k + 1;
        if (k == 0 || in[k - 1] != '\r')
                return -EBADMSG;
        *ret_line_len = k - 1;
        return 1;
}
