/* dovecot_auth.c: Dovecot's authentication client protocol (auth-client 1.x): pure parsing and formatting.
 */
#include "dovecot_auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "buf.h"

/* Split line on tabs into at most max fields (in place, on a copy the caller owns). */
static size_t split_tabs(char *line, char **fields, size_t max)
{
        size_t n = 0;
        char *p = line;
        while (n < max) {
                fields[n++] = p;
                char *tab = strchr(p, '\t');
                if (!tab)
                        break;
                *tab = '\0';
                p = tab + 1;
        }
        return n;
}

/* Dovecot escapes a value's tab, CR, LF and \001 as \001 followed by t, r, n or 1. */
static char *tab_unescape(const char *s)
{
        struct buf b = BUF_INIT;
        for (; *s; s++) {
                if (*s != '\001' || !s[1]) {
                        buf_putc(&b, *s);
                        continue;
                }
                s++;
                switch (*s) {
                case 't': buf_putc(&b, '\t'); break;
                case 'r': buf_putc(&b, '\r'); break;
                case 'n': buf_putc(&b, '\n'); break;
                case '1': buf_putc(&b, '\001'); break;
                default: buf_putc(&b, *s); break;
                }
        }
        return buf_steal(&b);
}

static bool parse_ulong(const char *s, unsigned long *ret)
{
        if (*s < '0' || *s > '9')
                return false;
        char *end = NULL;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || *end)
                return false;
        *ret = v;
        return true;
}

static const struct {
        const char *name;
        unsigned flag;
} MECH_FLAGS[] = {
        {"anonymous", DOVECOT_MECH_ANONYMOUS},
        {"plaintext", DOVECOT_MECH_PLAINTEXT},
        {"dictionary", DOVECOT_MECH_DICTIONARY},
        {"active", DOVECOT_MECH_ACTIVE},
        {"forward-secrecy", DOVECOT_MECH_FORWARD_SECRECY},
        {"mutual-auth", DOVECOT_MECH_MUTUAL_AUTH},
        {"private", DOVECOT_MECH_PRIVATE},
};

static int mech_line(struct dovecot_auth_handshake *h, char **f, size_t n)
{
        size_t len = n >= 2 ? strlen(f[1]) : 0;
        if (len == 0 || len >= sizeof h->mechs[0].name)
                return -EPROTO;
        for (size_t i = 0; i < len; i++)
                if (f[1][i] == ' ' || (unsigned char)f[1][i] < 0x21 || (unsigned char)f[1][i] > 0x7e)
                        return -EPROTO;
        if (h->n_mechs >= DOVECOT_AUTH_MECHS_MAX)
                return 0; /* more than we keep: the rest are not offered */
        struct dovecot_mech *m = &h->mechs[h->n_mechs++];
        memcpy(m->name, f[1], len + 1);
        m->flags = 0;
        for (size_t i = 2; i < n; i++)
                for (size_t k = 0; k < sizeof MECH_FLAGS / sizeof MECH_FLAGS[0]; k++)
                        if (strcmp(f[i], MECH_FLAGS[k].name) == 0)
                                m->flags |= MECH_FLAGS[k].flag;
        return 0;
}

int dovecot_auth_handshake_line(struct dovecot_auth_handshake *h, const char *line)
{
        if (h->done)
                return 1;
        _cleanup_free_ char *copy = xstrdup(line);
        char *f[16];
        size_t n = split_tabs(copy, f, 16);
        if (strcmp(f[0], "VERSION") == 0) {
                unsigned long major = 0;
                if (n < 3 || !parse_ulong(f[1], &major) || major != 1)
                        return -EPROTO;
                h->have_version = true;
                return 0;
        }
        if (!h->have_version)
                return -EPROTO;
        if (strcmp(f[0], "MECH") == 0)
                return mech_line(h, f, n);
        if (strcmp(f[0], "DONE") == 0) {
                h->done = true;
                return 1;
        }
        return 0; /* SPID, CUID, COOKIE and later additions: not needed by a plain client */
}

void dovecot_auth_reply_done(struct dovecot_auth_reply *r)
{
        free(r->data);
        free(r->user);
        free(r->reason);
        *r = (struct dovecot_auth_reply){0};
}

int dovecot_auth_reply_parse(const char *line, struct dovecot_auth_reply *r)
{
        *r = (struct dovecot_auth_reply){0};
        _cleanup_free_ char *copy = xstrdup(line);
        char *f[64];
        size_t n = split_tabs(copy, f, 64);
        if (n < 2 || !parse_ulong(f[1], &r->id))
                return -EBADMSG;
        if (strcmp(f[0], "CONT") == 0) {
                /* The challenge is relayed to the SMTP client in a 334 line: base64 only. */
                if (n < 3 || !dovecot_auth_base64_valid(f[2]))
                        return -EBADMSG;
                r->type = DOVECOT_AUTH_CONT;
                r->data = xstrdup(f[2]);
                return 0;
        }
        if (strcmp(f[0], "OK") == 0)
                r->type = DOVECOT_AUTH_OK;
        else if (strcmp(f[0], "FAIL") == 0)
                r->type = DOVECOT_AUTH_FAIL;
        else
                return -EBADMSG;
        for (size_t i = 2; i < n; i++) {
                if (strncmp(f[i], "user=", 5) == 0) {
                        free(r->user);
                        r->user = tab_unescape(f[i] + 5);
                } else if (strncmp(f[i], "reason=", 7) == 0) {
                        free(r->reason);
                        r->reason = tab_unescape(f[i] + 7);
                } else if (strcmp(f[i], "temp") == 0)
                        r->temp = true;
        }
        return 0;
}

bool dovecot_auth_base64_valid(const char *s)
{
        size_t len = strlen(s), pad = 0;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
                if (c == '=')
                        pad++;
                else if (pad > 0 || !(alnum || c == '+' || c == '/'))
                        return false;
        }
        return pad <= 2 && (pad == 0 || len % 4 == 0);
}

char *dovecot_auth_client_hello(unsigned long pid)
{
        return xasprintf("VERSION\t1\t2\nCPID\t%lu\n", pid);
}

/* A value that goes into a field as it is: no tab, CR or LF (NUL cannot be in a C string). */
static bool field_ok(const char *s)
{
        return s && !strpbrk(s, "\t\r\n");
}

char *dovecot_auth_format_auth(const struct dovecot_auth_request *rq)
{
        if (!field_ok(rq->mech) || isempty(rq->mech) || !field_ok(rq->service) ||
            (rq->local_ip && !field_ok(rq->local_ip)) || (rq->remote_ip && !field_ok(rq->remote_ip)) ||
            (rq->initial && strcmp(rq->initial, "=") != 0 && !dovecot_auth_base64_valid(rq->initial)))
                return NULL;
        struct buf b = BUF_INIT;
        /* nologin: authenticate only; the SMTP server is not a login service that gets a session. */
        buf_printf(&b, "AUTH\t%lu\t%s\tservice=%s\tnologin", rq->id, rq->mech, rq->service);
        if (rq->local_ip)
                buf_printf(&b, "\tlip=%s", rq->local_ip);
        if (rq->remote_ip)
                buf_printf(&b, "\trip=%s", rq->remote_ip);
        if (rq->secured)
                buf_puts(&b, "\tsecured");
        if (rq->initial)
                /* RFC 4954's "=" (an empty initial response) is an empty resp= value. */
                buf_printf(&b, "\tresp=%s", strcmp(rq->initial, "=") == 0 ? "" : rq->initial);
        buf_putc(&b, '\n');
        return buf_steal(&b);
}

char *dovecot_auth_format_cont(unsigned long id, const char *response)
{
        if (!dovecot_auth_base64_valid(response))
                return NULL;
        return xasprintf("CONT\t%lu\t%s\n", id, response);
}

static const struct {
        const char *word;
        unsigned bit;
} SEC_WORDS[] = {
        {"noplaintext", SASL_SEC_NOPLAINTEXT},   {"noactive", SASL_SEC_NOACTIVE},
        {"nodictionary", SASL_SEC_NODICTIONARY}, {"noanonymous", SASL_SEC_NOANONYMOUS},
        {"mutual_auth", SASL_SEC_MUTUAL_AUTH},   {"forward_secrecy", SASL_SEC_FORWARD_SECRECY},
};

int dovecot_auth_security_options(const char *const *words, size_t n, unsigned *ret, const char **bad)
{
        unsigned opts = 0;
        for (size_t i = 0; i < n; i++) {
                bool found = false;
                for (size_t k = 0; k < sizeof SEC_WORDS / sizeof SEC_WORDS[0] && !found; k++)
                        if (strcasecmp(words[i], SEC_WORDS[k].word) == 0) {
                                opts |= SEC_WORDS[k].bit;
                                found = true;
                        }
                if (!found) {
                        *bad = words[i];
                        return -EINVAL;
                }
        }
        *ret = opts;
        return 0;
}

bool dovecot_auth_mech_allowed(unsigned f, unsigned o)
{
        if (f & DOVECOT_MECH_PRIVATE)
                return false; /* Dovecot's own hint: never advertise it */
        if (((o & SASL_SEC_NOPLAINTEXT) && (f & DOVECOT_MECH_PLAINTEXT)) ||
            ((o & SASL_SEC_NOACTIVE) && (f & DOVECOT_MECH_ACTIVE)) ||
            ((o & SASL_SEC_NODICTIONARY) && (f & DOVECOT_MECH_DICTIONARY)) ||
            ((o & SASL_SEC_NOANONYMOUS) && (f & DOVECOT_MECH_ANONYMOUS)))
                return false;
        if (((o & SASL_SEC_MUTUAL_AUTH) && !(f & DOVECOT_MECH_MUTUAL_AUTH)) ||
            ((o & SASL_SEC_FORWARD_SECRECY) && !(f & DOVECOT_MECH_FORWARD_SECRECY)))
                return false;
        return true;
}
