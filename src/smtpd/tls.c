/* tls.c: smtpd's OpenSSL 3 glue: the server context and non-blocking TLS on a client socket. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>

#include "alloc.h"
#include "log.h"
#include "smtpd.h"
#include "tls_policy.h"

struct smtpd_tls {
        SSL_CTX *ctx;
};

struct tls_conn {
        SSL *ssl;
};

const char *tls_last_error(void)
{
        static char text[256];
        unsigned long e = ERR_peek_last_error();
        if (!e)
                return "unknown TLS error";
        ERR_error_string_n(e, text, sizeof text);
        ERR_clear_error();
        return text;
}

/* Protocol range and cipher list from main.cf onto ctx: 0, or -EINVAL and *ret_error naming the setting. */
static int apply_policy(SSL_CTX *ctx, struct config *c, bool mandatory, char **ret_error)
{
        const struct tls_policy_settings settings = {
                .protocols_param = mandatory ? "smtpd_tls_mandatory_protocols" : "smtpd_tls_protocols",
                .protocols =
                        config_get(c, mandatory ? "smtpd_tls_mandatory_protocols" : "smtpd_tls_protocols"),
                .ciphers_param = mandatory ? "smtpd_tls_mandatory_ciphers" : "smtpd_tls_ciphers",
                .ciphers = config_get(c, mandatory ? "smtpd_tls_mandatory_ciphers" : "smtpd_tls_ciphers"),
                .exclude_param = "smtpd_tls_exclude_ciphers",
                .exclude = config_get(c, "smtpd_tls_exclude_ciphers"),
                .high_cipherlist = config_get(c, "tls_high_cipherlist"),
                .medium_cipherlist = config_get(c, "tls_medium_cipherlist"),
        };
        struct tls_policy policy;
        _cleanup_free_ char *warning = NULL;
        int r = tls_policy_build(&settings, &policy, &warning, ret_error);
        if (r < 0)
                return r;
        if (warning)
                msg_warn("%s", warning);
        if (SSL_CTX_set_min_proto_version(ctx, policy.min_version) != 1 ||
            SSL_CTX_set_max_proto_version(ctx, policy.max_version) != 1) {
                *ret_error = xasprintf("%s = %s: OpenSSL refuses that protocol range: %s",
                                       settings.protocols_param, settings.protocols, tls_last_error());
                r = -EINVAL;
        } else if (SSL_CTX_set_cipher_list(ctx, policy.cipher_list) != 1) {
                *ret_error = xasprintf("%s: the cipher list \"%s\" matches no cipher: %s",
                                       policy.cipher_origin, policy.cipher_list, tls_last_error());
                r = -EINVAL;
        }
        tls_policy_done(&policy);
        return r;
}

struct smtpd_tls *smtpd_tls_new(struct config *c, bool mandatory)
{
        const char *cert = config_get(c, "smtpd_tls_cert_file");
        const char *key = config_get(c, "smtpd_tls_key_file");
        if (isempty(cert)) {
                msg_warn("TLS is enabled but smtpd_tls_cert_file is empty: STARTTLS support is disabled");
                return NULL;
        }
        if (isempty(key))
                key = cert;
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        if (!ctx) {
                msg_warn("cannot create the TLS context: %s: STARTTLS support is disabled",
                         tls_last_error());
                return NULL;
        }
        _cleanup_free_ char *policy_error = NULL;
        if (apply_policy(ctx, c, mandatory, &policy_error) < 0) {
                SSL_CTX_free(ctx);
                /* Mandatory TLS without TLS refuses every message: stop here, where the cause is clear. */
                if (mandatory)
                        msg_fatal("%s: mandatory TLS (smtpd_tls_security_level = encrypt or wrapper "
                                  "mode) cannot work without a valid setting",
                                  policy_error);
                msg_warn("%s: STARTTLS support is disabled", policy_error);
                return NULL;
        }
        /* SMTP clients never resume across servers; a fresh handshake per session is simpler and safe. */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
        SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
                msg_warn("cannot load certificate from %s: %s: STARTTLS support is disabled", cert,
                         tls_last_error());
                SSL_CTX_free(ctx);
                return NULL;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
                msg_warn("cannot load private key from %s: %s: STARTTLS support is disabled", key,
                         tls_last_error());
                SSL_CTX_free(ctx);
                return NULL;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
                msg_warn("private key in %s does not match the certificate in %s: STARTTLS support is "
                         "disabled",
                         key, cert);
                SSL_CTX_free(ctx);
                return NULL;
        }
        struct smtpd_tls *t = xcalloc(1, sizeof(*t));
        t->ctx = ctx;
        return t;
}

void smtpd_tls_free(struct smtpd_tls *t)
{
        if (!t)
                return;
        SSL_CTX_free(t->ctx);
        free(t);
}

struct tls_conn *tls_conn_new(struct smtpd_tls *t, int fd)
{
        SSL *ssl = SSL_new(t->ctx);
        if (!ssl)
                return NULL;
        if (SSL_set_fd(ssl, fd) != 1) {
                SSL_free(ssl);
                return NULL;
        }
        SSL_set_accept_state(ssl);
        struct tls_conn *c = xcalloc(1, sizeof(*c));
        c->ssl = ssl;
        return c;
}

void tls_conn_free(struct tls_conn *c)
{
        if (!c)
                return;
        /* Best effort close_notify; a peer that is gone does not matter. */
        if (SSL_is_init_finished(c->ssl))
                SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
        ERR_clear_error();
        free(c);
}

static int map_error(struct tls_conn *c, int ret)
{
        switch (SSL_get_error(c->ssl, ret)) {
        case SSL_ERROR_WANT_READ: return TLS_WANT_READ;
        case SSL_ERROR_WANT_WRITE: return TLS_WANT_WRITE;
        case SSL_ERROR_ZERO_RETURN: return 0;
        case SSL_ERROR_SYSCALL:
                /* EOF without close_notify: the client just went away. */
                if (ERR_peek_error() == 0)
                        return 0;
                return TLS_FAILED;
        default: return TLS_FAILED;
        }
}

int tls_conn_handshake(struct tls_conn *c)
{
        int r = SSL_do_handshake(c->ssl);
        if (r == 1)
                return 1;
        r = map_error(c, r);
        return r == 0 ? TLS_FAILED : r;
}

int tls_conn_read(struct tls_conn *c, void *p, size_t n)
{
        size_t got = 0;
        int r = SSL_read_ex(c->ssl, p, n, &got);
        if (r == 1)
                return (int)got;
        return map_error(c, r);
}

int tls_conn_write(struct tls_conn *c, const void *p, size_t n)
{
        size_t done = 0;
        int r = SSL_write_ex(c->ssl, p, n, &done);
        if (r == 1)
                return (int)done;
        r = map_error(c, r);
        return r == 0 ? TLS_FAILED : r;
}

bool tls_conn_pending(struct tls_conn *c)
{
        return SSL_pending(c->ssl) > 0;
}

char *tls_conn_describe(struct tls_conn *c)
{
        const SSL_CIPHER *cipher = SSL_get_current_cipher(c->ssl);
        int alg_bits = 0;
        int bits = cipher ? SSL_CIPHER_get_bits(cipher, &alg_bits) : 0;
        return xasprintf("%s with cipher %s (%d/%d bits)", SSL_get_version(c->ssl),
                         cipher ? SSL_CIPHER_get_name(cipher) : "unknown", bits, alg_bits);
}
