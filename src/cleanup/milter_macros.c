/* milter_macros.c: the values of the Sendmail macros a milter may ask for (milter_*_macros), from what
 * cleanup knows of the client and the message. */
#include <string.h>

#include "alloc.h"
#include "milter.h"

static char *dup_or_null(const char *v)
{
        return isempty(v) ? NULL : xstrdup(v);
}

static char *domain_of(const char *address)
{
        const char *at = address ? strrchr(address, '@') : NULL;
        return at && at[1] ? xstrdup(at + 1) : NULL;
}

/* The envelope's tls text is "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)": its version,
 * its cipher, or the cipher's bits in use (the number before the slash). */
static char *tls_part(const char *tls, const char *which)
{
        if (isempty(tls))
                return NULL;
        const char *with = strstr(tls, " with cipher ");
        if (streq(which, "version"))
                return xstrndup(tls, with ? (size_t)(with - tls) : strcspn(tls, " "));
        if (!with)
                return NULL;
        const char *cipher = with + strlen(" with cipher ");
        if (streq(which, "cipher"))
                return *cipher ? xstrndup(cipher, strcspn(cipher, " ")) : NULL;
        const char *bits = strstr(cipher, " (");
        size_t n = bits ? strspn(bits + 2, "0123456789") : 0;
        return n ? xstrndup(bits + 2, n) : NULL;
}

/* The client's macros, which a local submission has as localhost [127.0.0.1] like Postfix's. */
static char *client_value(const struct milter_facts *f, const char *name)
{
        if (streq(name, "_"))
                return xasprintf("%s [%s]", f->client_name ? f->client_name : "unknown",
                                 f->client_addr ? f->client_addr : "unknown");
        if (streq(name, "{client_addr}"))
                return dup_or_null(f->client_addr);
        if (streq(name, "{client_port}"))
                return dup_or_null(f->client_port);
        if (streq(name, "{client_name}"))
                return dup_or_null(f->client_name);
        if (streq(name, "{client_ptr}"))
                return dup_or_null(f->client_ptr ? f->client_ptr : f->client_name);
        return NULL;
}

char *milter_macro_value(const struct milter_facts *f, const char *name)
{
        if (streq(name, "j"))
                return dup_or_null(f->myhostname);
        if (streq(name, "i"))
                return dup_or_null(f->queue_id);
        if (streq(name, "v"))
                return dup_or_null(f->v);
        if (streq(name, "{daemon_name}") || streq(name, "{if_name}"))
                return dup_or_null(f->daemon_name);
        if (streq(name, "{daemon_addr}") || streq(name, "{if_addr}"))
                return dup_or_null(f->daemon_addr);
        if (streq(name, "{tls_version}"))
                return tls_part(f->tls, "version");
        if (streq(name, "{cipher}"))
                return tls_part(f->tls, "cipher");
        if (streq(name, "{cipher_bits}"))
                return tls_part(f->tls, "bits");
        if (streq(name, "{auth_type}"))
                return dup_or_null(f->auth_type);
        if (streq(name, "{auth_authen}"))
                return dup_or_null(f->auth_authen);
        if (streq(name, "{mail_addr}"))
                return f->sender ? xstrdup(f->sender) : NULL;
        if (streq(name, "{mail_host}"))
                return domain_of(f->sender);
        if (streq(name, "{rcpt_addr}"))
                return dup_or_null(f->rcpt);
        if (streq(name, "{rcpt_host}"))
                return domain_of(f->rcpt);
        if (streq(name, "{mail_mailer}") || streq(name, "{rcpt_mailer}"))
                return xstrdup(f->local ? "local" : "smtp");
        return client_value(f, name);
}
