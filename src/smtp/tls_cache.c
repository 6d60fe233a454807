/* tls_cache.c: the smtp client's TLS session cache, in process memory: Postfix keeps it in tlsmgr's
 * smtp_tls_session_cache_database; here each smtp process remembers the sessions it made itself. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "macro.h"
#include "smtp.h"

struct tls_cached {
        struct tls_cached *next;
        char *key; /* server, level and expected names: a session only resumes under the same policy */
        SSL_SESSION *sess;
        time_t expires;
};

static void cached_free(struct tls_cached *c)
{
        SSL_SESSION_free(c->sess);
        free(c->key);
        free(c);
}

/* Unlink and free the entry *p points at. */
static void drop(struct agent *a, struct tls_cached **p)
{
        struct tls_cached *c = *p;
        *p = c->next;
        cached_free(c);
        a->n_tls_cache--;
}

void tls_cache_put(struct agent *a, const char *key, SSL_SESSION *sess)
{
        if (a->set.tls_session_timeout == 0) {
                SSL_SESSION_free(sess);
                return;
        }
        for (struct tls_cached **p = &a->tls_cache; *p; p = &(*p)->next)
                if (streq((*p)->key, key)) {
                        drop(a, p);
                        break;
                }
        /* Our own limit wins over the server's ticket lifetime when shorter, as in Postfix. */
        long timeout = (long)a->set.tls_session_timeout;
        if (SSL_SESSION_get_timeout(sess) > timeout)
                SSL_SESSION_set_timeout(sess, timeout);
        struct tls_cached *c = xcalloc(1, sizeof *c);
        c->key = xstrdup(key);
        c->sess = sess;
        c->expires = time(NULL) + timeout;
        c->next = a->tls_cache;
        a->tls_cache = c;
        a->n_tls_cache++;
        if (a->n_tls_cache > SMTP_TLS_CACHE_MAX) {
                struct tls_cached **p = &a->tls_cache;
                while ((*p)->next)
                        p = &(*p)->next;
                drop(a, p);
        }
}

SSL_SESSION *tls_cache_get(struct agent *a, const char *key)
{
        time_t now = time(NULL);
        for (struct tls_cached **p = &a->tls_cache; *p; p = &(*p)->next) {
                if (!streq((*p)->key, key))
                        continue;
                if (now >= (*p)->expires || !SSL_SESSION_is_resumable((*p)->sess)) {
                        drop(a, p);
                        return NULL;
                }
                return (*p)->sess;
        }
        return NULL;
}

void tls_cache_flush(struct agent *a)
{
        while (a->tls_cache)
                drop(a, &a->tls_cache);
}
