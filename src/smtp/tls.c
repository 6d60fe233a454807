/* tls.c: the smtp client's TLS: the context, each connection's level and SSL object, and the checks a
 * server's certificate must pass at fingerprint, verify and secure before anything is sent. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "macro.h"
#include "session.h"
#include "tls_policy.h"

static int apply_tls_policy(SSL *ssl, const struct tls_policy *p, char **ret_error);
static int dane_enable(struct session *s, char **ret_reason);

static char *join_names(const struct strv *names)
{
        struct buf b = BUF_INIT;
        for (size_t i = 0; i < names->n; i++)
                buf_printf(&b, "%s%s", i ? ", " : "", names->v[i]);
        return buf_steal(&b);
}

/* Does cert name one of s->match? An address literal is compared as an address, a name as RFC 6125 says
 * (".example.com": any subdomain). An OpenSSL error counts as no match: never verified by accident. */
static bool cert_matches(X509 *cert, const struct strv *names)
{
        for (size_t i = 0; i < names->n; i++) {
                const char *name = names->v[i];
                struct in6_addr tmp;
                bool literal = inet_pton(AF_INET, name, &tmp) == 1 || inet_pton(AF_INET6, name, &tmp) == 1;
                int r = literal ? X509_check_ip_asc(cert, name, 0)
                                : X509_check_host(cert, name, strlen(name),
                                                  X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL);
                if (r == 1)
                        return true;
        }
        ERR_clear_error();
        return false;
}

/* Digest of the public key as Postfix takes it: the DER SubjectPublicKeyInfo ("openssl x509 -pubkey |
 * openssl pkey -pubin -outform DER | openssl dgst"). 1 done, else OpenSSL failed. */
static int pubkey_digest(X509 *cert, const EVP_MD *md, unsigned char *d, unsigned *n)
{
        unsigned char *der = NULL;
        int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
        if (len <= 0)
                return 0;
        int r = EVP_Digest(der, (size_t)len, d, n, md, NULL);
        OPENSSL_free(der);
        return r;
}

/* "AB:CD:..." of the certificate (pubkey false) or of its public key; NULL when OpenSSL cannot. */
static char *cert_fingerprint(X509 *cert, const EVP_MD *md, bool pubkey)
{
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        if (!md || (pubkey ? pubkey_digest(cert, md, d, &n) : X509_digest(cert, md, d, &n)) != 1) {
                ERR_clear_error();
                return NULL;
        }
        struct buf out = BUF_INIT;
        for (unsigned i = 0; i < n; i++)
                buf_printf(&out, "%s%02X", i ? ":" : "", d[i]);
        return buf_steal(&out);
}

/* The fingerprint level: the certificate's or its public key's digest is one of s->match; no CA needed. */
static bool fingerprint_matches(struct session *s, X509 *cert)
{
        const EVP_MD *md = EVP_get_digestbyname(s->a->set.tls_fingerprint_digest);
        _cleanup_free_ char *of_cert = cert ? cert_fingerprint(cert, md, false) : NULL;
        _cleanup_free_ char *of_key = cert ? cert_fingerprint(cert, md, true) : NULL;
        for (size_t i = 0; i < s->match.n; i++)
                if ((of_cert && streq(s->match.v[i], of_cert)) || (of_key && streq(s->match.v[i], of_key)))
                        return true;
        return false;
}

/* With DANE the chain must have matched one of the TLSA records (OpenSSL checked it, and at DANE-TA(2) the
 * host name too). The record that matched is logged. */
static bool dane_verified(struct session *s, X509 *cert, long vr, char **ret_reason)
{
        X509 *mcert = NULL;
        EVP_PKEY *mspki = NULL;
        int depth = cert && vr == X509_V_OK ? SSL_get0_dane_authority(s->ssl, &mcert, &mspki) : -1;
        if (depth < 0) {
                *ret_reason =
                        xasprintf("Server certificate not verified: %s[%s]: %s (DANE, %zu TLSA record%s "
                                  "of %s)",
                                  s->host, s->addr,
                                  !cert             ? "no certificate presented"
                                  : vr != X509_V_OK ? X509_verify_cert_error_string(vr)
                                                    : "no TLSA record matched",
                                  s->tlsa->n, s->tlsa->n == 1 ? "" : "s", s->tlsa->qname);
                ERR_clear_error();
                return false;
        }
        uint8_t usage = 0, selector = 0, mtype = 0;
        if (SSL_get0_dane_tlsa(s->ssl, &usage, &selector, &mtype, NULL, NULL) < 0) {
                *ret_reason = xasprintf("Server certificate not verified: %s[%s]: OpenSSL reports no "
                                        "matching TLSA record",
                                        s->host, s->addr);
                return false;
        }
        if (s->a->set.tls_loglevel >= 1)
                msg_info("%s: DANE TLSA %u %u %u of %s matched the %s at depth %d", s->relay, usage,
                         selector, mtype, s->tlsa->qname,
                         usage == 3 ? "end entity certificate" : "trust anchor", depth);
        return true;
}

/* At fingerprint, verify and secure the certificate must be the one expected: its fingerprint, or a chain
 * to a trusted CA and a name the level expects. Otherwise nothing is sent: the recipients are deferred
 * (4.7.5) with Postfix's wording. */
static bool tls_verified(struct session *s, bool *ret_trusted, char **ret_reason)
{
        X509 *cert = SSL_get0_peer_certificate(s->ssl);
        long vr = SSL_get_verify_result(s->ssl);
        bool trusted = cert && vr == X509_V_OK;
        *ret_trusted = trusted;
        if (s->dane)
                return dane_verified(s, cert, vr, ret_reason);
        if (s->level == TLS_FINGERPRINT) {
                if (fingerprint_matches(s, cert))
                        return true;
                *ret_reason =
                        xasprintf("Server certificate not verified: %s of %s[%s] matches none of the %zu %s "
                                  "fingerprint%s (fingerprint level)",
                                  cert ? "the certificate" : "no certificate", s->host, s->addr, s->match.n,
                                  s->a->set.tls_fingerprint_digest, s->match.n == 1 ? "" : "s");
                return false;
        }
        if (s->level < TLS_VERIFY)
                return true;
        if (!trusted) {
                *ret_reason =
                        xasprintf("Server certificate not trusted: %s[%s]: %s", s->host, s->addr,
                                  cert ? X509_verify_cert_error_string(vr) : "no certificate presented");
                return false;
        }
        if (!cert_matches(cert, &s->match)) {
                _cleanup_free_ char *names = join_names(&s->match);
                *ret_reason = limit_reason(
                        xasprintf("Server certificate not verified: the certificate of %s[%s] names none of "
                                  "%s (%s level)",
                                  s->host, s->addr, names, tls_level_name(s->level)));
                return false;
        }
        return true;
}

/* The handshake is done: check the peer as the level wants and log the connection. */
static int tls_established(struct session *s, char **ret_reason)
{
        struct agent *a = s->a;
        bool trusted;
        if (!tls_verified(s, &trusted, ret_reason))
                return -EPERM;
        /* A fingerprint match verifies the very certificate, trusted chain or not. */
        const char *trust = s->dane || s->level == TLS_FINGERPRINT || (trusted && s->level >= TLS_VERIFY)
                                    ? "Verified"
                            : trusted ? "Trusted"
                                      : "Untrusted";
        s->tls = true;
        if (a->set.tls_loglevel >= 1) {
                int alg_bits = 0;
                const SSL_CIPHER *c = SSL_get_current_cipher(s->ssl);
                int bits = SSL_CIPHER_get_bits(c, &alg_bits);
                if (SSL_session_reused(s->ssl))
                        msg_info("%s: Reusing old session", s->relay);
                msg_info("%s TLS connection established to %s: %s with cipher %s (%d/%d bits)", trust,
                         s->relay, SSL_get_version(s->ssl), SSL_CIPHER_get_name(c), bits, alg_bits);
        }
        return 1;
}

int smtp_tls_handshake(struct session *s, char **ret_reason)
{
        ERR_clear_error();
        int r = SSL_connect(s->ssl);
        if (r == 1)
                return tls_established(s, ret_reason);
        int e = SSL_get_error(s->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                s->tls_wants_write = e == SSL_ERROR_WANT_WRITE;
                return 0;
        }
        char err[256];
        ERR_error_string_n(ERR_peek_last_error(), err, sizeof err);
        *ret_reason = xasprintf("TLS handshake with %s[%s] failed: %s", s->host, s->addr,
                                ERR_peek_last_error() ? err : "connection closed");
        ERR_clear_error();
        return -EPROTO;
}

/* Per connection rather than on the shared context, so that a per-destination level can pick its own. */
static int apply_tls_policy(SSL *ssl, const struct tls_policy *p, char **ret_error)
{
        if (SSL_set_min_proto_version(ssl, p->min_version) != 1 ||
            SSL_set_max_proto_version(ssl, p->max_version) != 1) {
                *ret_error = xasprintf("OpenSSL refuses the TLS protocol range 0x%04x..0x%04x",
                                       p->min_version, p->max_version);
                return -EINVAL;
        }
        if (SSL_set_cipher_list(ssl, p->cipher_list) != 1) {
                *ret_error = xasprintf("%s: the cipher list \"%s\" matches no cipher", p->cipher_origin,
                                       p->cipher_list);
                return -EINVAL;
        }
        return 0;
}

int smtp_tls_start(struct session *s, char **ret_reason)
{
        struct agent *a = s->a;
        s->ssl = SSL_new(a->ssl_ctx);
        if (!s->ssl || SSL_set_fd(s->ssl, s->fd) != 1 || SSL_set_app_data(s->ssl, s) != 1) {
                ERR_clear_error();
                *ret_reason = xstrdup("cannot set up TLS (out of memory?)");
                return -ENOMEM;
        }
        const struct tls_policy *policy =
                s->own_policy ? s->own_policy : a->tls_policy[smtp_tls_mandatory(s)];
        _cleanup_free_ char *policy_error = NULL;
        if (!policy || apply_tls_policy(s->ssl, policy, &policy_error) < 0) {
                ERR_clear_error();
                *ret_reason =
                        xasprintf("TLS is unavailable: %s", policy_error ? policy_error : "no TLS settings");
                return -EINVAL;
        }
        struct in6_addr tmp;
        bool literal = inet_pton(AF_INET, s->host, &tmp) == 1 || inet_pton(AF_INET6, s->host, &tmp) == 1;
        if (!literal && SSL_set_tlsext_host_name(s->ssl, s->host) != 1) {
                ERR_clear_error();
                *ret_reason = xasprintf("TLS is unavailable: OpenSSL refuses the server name %s", s->host);
                return -EINVAL;
        }
        if (s->dane && dane_enable(s, ret_reason) < 0)
                return -EINVAL;
        SSL_SESSION *cached = s->tls_cache_key ? tls_cache_get(a, s->tls_cache_key) : NULL;
        if (cached && SSL_set_session(s->ssl, cached) != 1)
                ERR_clear_error(); /* not resumable here: a full handshake instead */
        return 0;
}

/* The policy table's entry for this next hop, in Postfix's order: the next hop as written ("[host]:port"),
 * then for a domain the domain and each ".parent". 1 found, 0 not, <0 the table failed. */
static int lookup_dest_policy(struct maps *m, const char *hop, const struct dns_nexthop *nh,
                              char **ret_value)
{
        int r = maps_find(m, hop, ret_value);
        if (r != 0 || hop[0] == '[')
                return r;
        return maps_find_domain(m, nh->host, ret_value);
}

/* Protocols and ciphers from a policy entry's attributes over main.cf's settings for its level. */
static int build_own_policy(struct session *s, const struct tls_dest_policy *dp, char **ret_error)
{
        struct config *c = service_config(s->a->svc);
        bool mandatory = smtp_tls_mandatory(s);
        const char *protocols_param = mandatory ? "smtp_tls_mandatory_protocols" : "smtp_tls_protocols";
        const char *ciphers_param = mandatory ? "smtp_tls_mandatory_ciphers" : "smtp_tls_ciphers";
        _cleanup_free_ char *exclude = xasprintf("%s, %s", config_get(c, "smtp_tls_exclude_ciphers"),
                                                 dp->exclude ? dp->exclude : "");
        const struct tls_policy_settings settings = {
                .protocols_param = dp->protocols ? "smtp_tls_policy_maps protocols" : protocols_param,
                .protocols = dp->protocols ? dp->protocols : config_get(c, protocols_param),
                .ciphers_param = dp->ciphers ? "smtp_tls_policy_maps ciphers" : ciphers_param,
                .ciphers = dp->ciphers ? dp->ciphers : config_get(c, ciphers_param),
                .exclude_param = dp->exclude ? "smtp_tls_policy_maps exclude" : "smtp_tls_exclude_ciphers",
                .exclude = exclude,
                .high_cipherlist = config_get(c, "tls_high_cipherlist"),
                .medium_cipherlist = config_get(c, "tls_medium_cipherlist"),
        };
        s->own_policy = xcalloc(1, sizeof *s->own_policy);
        _cleanup_free_ char *warning = NULL;
        int r = tls_policy_build(&settings, s->own_policy, &warning, ret_error);
        if (warning)
                msg_warn("%s", warning);
        if (r < 0) {
                free(s->own_policy);
                s->own_policy = NULL;
        }
        return r;
}

/* The level this destination gets: its smtp_tls_policy_maps entry, else main.cf's. A level postd cannot
 * provide, or a broken entry, defers: a policy never silently means less protection. Returns 0, or the
 * reason (*ret_reason, with *ret_dsn) to defer with. */
static int tls_choose_level(struct session *s, const char *hop, const struct dns_nexthop *nh,
                            struct tls_dest_policy *dp, const char **ret_dsn, char **ret_reason)
{
        struct agent *a = s->a;
        s->level = a->set.tls_level;
        *ret_dsn = "4.7.5";
        if (a->set.tls_level_error) {
                *ret_reason = xstrdup(a->set.tls_level_error);
                return -EINVAL;
        }
        if (a->set.tls_policy_maps) {
                _cleanup_free_ char *value = NULL, *error = NULL;
                int r = lookup_dest_policy(a->set.tls_policy_maps, hop, nh, &value);
                if (r < 0) {
                        *ret_dsn = "4.3.0";
                        *ret_reason = xasprintf(
                                "TLS policy lookup for %s: smtp_tls_policy_maps is unavailable", hop);
                        return r;
                }
                if (r > 0 && tls_dest_policy_parse(value, dp, &error) < 0) {
                        *ret_reason = xasprintf("smtp_tls_policy_maps: invalid policy \"%s\" for %s: %s; "
                                                "deliveries there are deferred until the entry is fixed",
                                                value, hop, error);
                        return -EINVAL;
                }
                if (r > 0)
                        s->level = dp->level;
        }
        if (s->level != TLS_NONE && !a->ssl_ctx) {
                *ret_reason = xstrdup("TLS is unavailable: no TLS client context");
                return -EINVAL;
        }
        return 0;
}

/* dane and dane-only before the TLSA lookup, RFC 7672 section 2.2: 1 when the TLSA records decide (the
 * caller looks them up), 0 when the level became may or encrypt without them, <0 to defer. */
static int dane_precheck(struct session *s, char **ret_reason)
{
        struct agent *a = s->a;
        bool only = s->level == TLS_DANE_ONLY;
        const char *why = NULL;
        if (a->set.dnssec && s->dest.addr_error) {
                /* Not "insecure": the answer may have been made to fail; never less than DANE then. */
                *ret_reason = xasprintf("address lookup error for %s (DNSSEC status of its A/AAAA records)",
                                        s->host);
                return -EAGAIN;
        }
        if (!a->set.dnssec)
                why = "smtp_dns_support_level is not dnssec: no DNSSEC-validated lookups";
        else if (!s->dest.addr_secure)
                why = "the host's address records are not DNSSEC-validated";
        if (why) {
                if (only) {
                        *ret_reason = xasprintf("TLS level dane-only for %s: %s (%s); dane-only needs "
                                                "smtp_dns_support_level = dnssec and a signed destination",
                                                s->relay, "no DANE", why);
                        return -EPERM;
                }
                if (!a->set.dnssec)
                        msg_warn("%s: TLS level dane: %s; using may", s->relay, why);
                else if (a->set.tls_loglevel >= 1)
                        msg_info("%s: TLS level dane: %s; using may", s->relay, why);
                s->level = TLS_MAY;
                return 0;
        }
        if (!a->dane_ok) {
                *ret_reason = xstrdup("TLS is unavailable: OpenSSL's DANE support could not be enabled");
                return -EINVAL;
        }
        if (!s->dest.mx_secure && !only) {
                /* An MX host from an unsigned zone may still publish TLSA records in a signed one. */
                if (a->set.dane_insecure_mx_error) {
                        *ret_reason = xstrdup(a->set.dane_insecure_mx_error);
                        return -EINVAL;
                }
                if (a->set.dane_insecure_mx != TLS_DANE) {
                        s->level = a->set.dane_insecure_mx;
                        if (a->set.tls_loglevel >= 1)
                                msg_info("%s: MX record not DNSSEC-validated: TLS level %s "
                                         "(smtp_tls_dane_insecure_mx_policy)",
                                         s->relay, tls_level_name(s->level));
                        return 0;
                }
        }
        return 1;
}

/* Usable for SMTP (RFC 7672 3.1): DANE-TA(2) and DANE-EE(3); a certificate or public key; the whole
 * thing, SHA2-256 or SHA2-512 of the right length. PKIX-TA(0) and PKIX-EE(1) are not. */
static bool tlsa_usable(const struct dns_tlsa_rr *rr)
{
        if ((rr->usage != 2 && rr->usage != 3) || rr->selector > 1)
                return false;
        return (rr->mtype == 0 && rr->len > 0) || (rr->mtype == 1 && rr->len == 32) ||
               (rr->mtype == 2 && rr->len == 64);
}

/* The TLSA lookup decides, RFC 7672 section 2.2: 0 (the level is set) or <0 with the reason to defer. */
static int dane_decide(struct session *s, const struct dns_tlsa *t, char **ret_reason)
{
        bool only = s->level == TLS_DANE_ONLY;
        if (t->status == DNS_TLSA_ERROR) {
                /* Never in clear: an attacker may be hiding the records. */
                *ret_reason = xasprintf("TLSA lookup error for %s:%u", s->host, s->port);
                return -EAGAIN;
        }
        if (t->status == DNS_TLSA_NONE || t->status == DNS_TLSA_INSECURE) {
                const char *what =
                        t->status == DNS_TLSA_NONE ? "no TLSA records" : "TLSA records not validated";
                if (only) {
                        *ret_reason = xasprintf("TLS level dane-only for %s: %s (%s); the destination "
                                                "offers no DANE",
                                                s->relay, what, t->qname);
                        return -EPERM;
                }
                if (s->a->set.tls_loglevel >= 1)
                        msg_info("%s: %s (%s): TLS level may", s->relay, what, t->qname);
                s->level = TLS_MAY;
                return 0;
        }
        struct dns_tlsa *usable = xcalloc(1, sizeof *usable);
        snprintf(usable->qname, sizeof usable->qname, "%s", t->qname);
        usable->status = DNS_TLSA_FOUND;
        for (size_t i = 0; i < t->n; i++)
                if (tlsa_usable(&t->rr[i]))
                        usable->rr[usable->n++] = t->rr[i];
        if (usable->n == 0) {
                free(usable);
                if (only) {
                        *ret_reason = xasprintf("TLS level dane-only for %s: the %zu TLSA records of %s "
                                                "are all unusable for SMTP",
                                                s->relay, t->n + t->skipped, t->qname);
                        return -EPERM;
                }
                /* Published but unusable: the server promised TLS, not a way to check it. */
                msg_info("%s: the %zu TLSA records of %s are all unusable: TLS level encrypt", s->relay,
                         t->n + t->skipped, t->qname);
                s->level = TLS_ENCRYPT;
                return 0;
        }
        s->tlsa = usable;
        s->dane = true;
        return 0;
}

/* The connection authenticates its server with TLSA records (RFC 7671, 7672) through OpenSSL's DANE. */
static int dane_enable(struct session *s, char **ret_reason)
{
        /* The base domain is the name DANE-TA(2) chains are checked against; DANE-EE(3) is the key. */
        if (SSL_dane_enable(s->ssl, s->host) <= 0) {
                ERR_clear_error();
                *ret_reason = xasprintf("TLS is unavailable: OpenSSL refuses DANE for %s", s->host);
                return -EINVAL;
        }
        /* Returns the previous flags; it cannot fail. A DANE-EE(3) match is the key itself: names and
         * dates of that certificate do not matter (RFC 7672 3.1.1). */
        (void)SSL_dane_set_flags(s->ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
        size_t added = 0;
        for (size_t i = 0; i < s->tlsa->n; i++) {
                const struct dns_tlsa_rr *rr = &s->tlsa->rr[i];
                int r = SSL_dane_tlsa_add(s->ssl, rr->usage, rr->selector, rr->mtype, rr->data, rr->len);
                if (r < 0) {
                        ERR_clear_error();
                        *ret_reason = xasprintf("TLS is unavailable: OpenSSL failed to take the TLSA "
                                                "record %u %u %u of %s",
                                                rr->usage, rr->selector, rr->mtype, s->tlsa->qname);
                        return -EINVAL;
                }
                added += r > 0;
        }
        ERR_clear_error();
        if (added == 0) { /* all refused: authentication cannot succeed; fail closed */
                *ret_reason = xasprintf("TLS is unavailable: OpenSSL can use none of the TLSA records of %s",
                                        s->tlsa->qname);
                return -EINVAL;
        }
        return 0;
}

static void drop_dest_policy(struct session *s)
{
        if (s->dp) {
                tls_dest_policy_done(s->dp);
                free(s->dp);
                s->dp = NULL;
        }
}

/* The rest of the plan once the level is final. */
static int plan_finish(struct session *s, const char **ret_dsn, char **ret_reason)
{
        struct agent *a = s->a;
        const char *hop = s->rq->hop_name;
        struct dns_nexthop nh = {0};
        if (dns_nexthop_parse(hop, 25, &nh) < 0)
                snprintf(nh.host, sizeof nh.host, "%s", s->host);
        const struct tls_dest_policy dp = *s->dp;
        if (s->level == TLS_NONE)
                return 0;
        *ret_dsn = "4.7.5";
        bool mandatory = smtp_tls_mandatory(s);
        char *error = NULL;
        if (dp.ciphers || dp.protocols || dp.exclude) {
                if (build_own_policy(s, &dp, &error) < 0) {
                        s->tls_error = error; /* deferred when TLS would be used */
                        error = NULL;
                }
        } else if (a->tls_policy_error[mandatory])
                s->tls_error = xstrdup(a->tls_policy_error[mandatory]);
        if (s->level == TLS_FINGERPRINT) {
                const char *param =
                        dp.match ? "smtp_tls_policy_maps match" : a->set.tls_fingerprint_match_param;
                if (!EVP_get_digestbyname(a->set.tls_fingerprint_digest))
                        error = xasprintf("%s = %s: OpenSSL knows no such digest (use sha256)",
                                          a->set.tls_fingerprint_digest_param,
                                          a->set.tls_fingerprint_digest);
                else
                        (void)tls_fingerprints_parse(param,
                                                     dp.match ? dp.match : a->set.tls_fingerprint_match,
                                                     dp.match ? "|" : ", \t\r\n|", &s->match, &error);
                if (error) {
                        *ret_reason = error;
                        return -EINVAL;
                }
        } else if (s->level >= TLS_VERIFY) {
                bool secure = s->level == TLS_SECURE;
                const char *param = dp.match ? "smtp_tls_policy_maps match"
                                    : secure ? a->set.tls_secure_match_param
                                             : a->set.tls_verify_match_param;
                const char *list = dp.match ? dp.match
                                   : secure ? a->set.tls_secure_match
                                            : a->set.tls_verify_match;
                /* hostname: the server's name (the MX host); nexthop: the destination as configured. */
                if (tls_match_expand(param, list, ", \t\r\n:", s->host, nh.host, &s->match, &error) < 0) {
                        *ret_reason = error;
                        return -EINVAL;
                }
        }
        if (s->dane)
                return 0; /* not resumed: a resumed session is not checked against the TLSA records again */
        _cleanup_free_ char *names = join_names(&s->match);
        const struct tls_policy *p = s->own_policy ? s->own_policy : a->tls_policy[mandatory];
        s->tls_cache_key =
                xasprintf("%s&%s&%s&%x-%x&%s", s->relay, tls_level_name(s->level), names,
                          p ? p->min_version : 0, p ? p->max_version : 0, p ? p->cipher_list : "");
        return 0;
}

int smtp_tls_plan(struct session *s, const char **ret_dsn, char **ret_reason)
{
        const char *hop = s->rq->hop_name;
        struct dns_nexthop nh = {0};
        if (dns_nexthop_parse(hop, 25, &nh) < 0)
                snprintf(nh.host, sizeof nh.host, "%s", s->host);
        drop_dest_policy(s);
        s->dp = xcalloc(1, sizeof *s->dp);
        int r = tls_choose_level(s, hop, &nh, s->dp, ret_dsn, ret_reason);
        if (r >= 0 && (s->level == TLS_DANE || s->level == TLS_DANE_ONLY)) {
                *ret_dsn = "4.7.5";
                r = dane_precheck(s, ret_reason);
                if (r > 0)
                        return 1; /* s->dp stays for smtp_tls_plan_dane */
        }
        if (r >= 0)
                r = plan_finish(s, ret_dsn, ret_reason);
        drop_dest_policy(s);
        return r;
}

int smtp_tls_plan_dane(struct session *s, const struct dns_tlsa *t, const char **ret_dsn, char **ret_reason)
{
        *ret_dsn = "4.7.5";
        int r = dane_decide(s, t, ret_reason);
        if (r >= 0)
                r = plan_finish(s, ret_dsn, ret_reason);
        drop_dest_policy(s);
        return r;
}

/* Protocols and ciphers of opportunistic (may) or mandatory (encrypt and up) TLS. Unusable settings are
 * logged once here; each delivery that would use them is then deferred with the reason. */
static void load_tls_policy(struct agent *a, struct config *c, bool mandatory)
{
        const char *protocols_param = mandatory ? "smtp_tls_mandatory_protocols" : "smtp_tls_protocols";
        const char *ciphers_param = mandatory ? "smtp_tls_mandatory_ciphers" : "smtp_tls_ciphers";
        const struct tls_policy_settings settings = {
                .protocols_param = protocols_param,
                .protocols = config_get(c, protocols_param),
                .ciphers_param = ciphers_param,
                .ciphers = config_get(c, ciphers_param),
                .exclude_param = "smtp_tls_exclude_ciphers",
                .exclude = config_get(c, "smtp_tls_exclude_ciphers"),
                .high_cipherlist = config_get(c, "tls_high_cipherlist"),
                .medium_cipherlist = config_get(c, "tls_medium_cipherlist"),
        };
        struct tls_policy *policy = xcalloc(1, sizeof(*policy));
        _cleanup_free_ char *warning = NULL;
        char *error = NULL;
        if (tls_policy_build(&settings, policy, &warning, &error) == 0) {
                if (warning)
                        msg_warn("%s", warning);
                /* Try it on a throw-away connection: a cipher list OpenSSL rejects is found at start. */
                SSL *probe = SSL_new(a->ssl_ctx);
                if (!probe)
                        error = xstrdup("cannot create a TLS connection object (out of memory?)");
                else
                        (void)apply_tls_policy(probe, policy, &error);
                SSL_free(probe);
                ERR_clear_error();
        }
        if (error) {
                /* Only the settings of the main.cf level are worth a message at start; the other set
                 * matters to policy-table destinations, which are deferred with the reason. */
                if (mandatory == (a->set.tls_level >= TLS_ENCRYPT))
                        msg_error("%s: deliveries that would use TLS are deferred", error);
                tls_policy_done(policy);
                free(policy);
                a->tls_policy_error[mandatory] = error;
                return;
        }
        a->tls_policy[mandatory] = policy;
}

/* OpenSSL has a new session for a connection (after the handshake; in TLS 1.3 when a ticket arrives):
 * keep it for the next connection under the same key. 1: the cache took it. */
static int on_new_tls_session(SSL *ssl, SSL_SESSION *sess)
{
        struct session *s = SSL_get_app_data(ssl);
        if (!s || !s->tls_cache_key || s->a->set.tls_session_timeout == 0)
                return 0;
        tls_cache_put(s->a, s->tls_cache_key, sess);
        return 1;
}

int smtp_tls_init(struct agent *a)
{
        if (a->set.tls_level == TLS_NONE && !a->set.tls_policy_maps)
                return 0;
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx) {
                msg_error("cannot create the TLS client context");
                return -ENOMEM;
        }
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        /* The result is judged after the handshake, so "may" and "encrypt" go on with any certificate. */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        /* Sessions live in this process's own cache (tls_cache.c), keyed by server and policy. */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, on_new_tls_session);
        struct config *c = service_config(a->svc);
        const char *file = config_get(c, "smtp_tls_CAfile"), *path = config_get(c, "smtp_tls_CApath");
        if (!isempty(file) || !isempty(path)) {
                if (SSL_CTX_load_verify_locations(ctx, isempty(file) ? NULL : file,
                                                  isempty(path) ? NULL : path) != 1) {
                        /* Nothing is trusted then: verify and secure defer, may and encrypt go on. */
                        msg_warn("cannot load the trusted CA certificates (smtp_tls_CAfile=%s, "
                                 "smtp_tls_CApath=%s): check that they exist and are readable",
                                 file, path);
                }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1)
                msg_warn("cannot load the system's trusted CA certificates: verify and secure will defer");
        ERR_clear_error();
        /* The TLSA checks of dane and dane-only (smtp_tls_plan_dane); those deliveries defer without. */
        a->dane_ok = SSL_CTX_dane_enable(ctx) > 0;
        if (!a->dane_ok) {
                ERR_clear_error();
                msg_error("OpenSSL cannot enable DANE on the TLS client context: deliveries at TLS level "
                          "dane or dane-only with TLSA records are deferred");
        }
        a->ssl_ctx = ctx;
        load_tls_policy(a, c, false);
        load_tls_policy(a, c, true);
        return 0;
}

void smtp_tls_done(struct session *s)
{
        if (s->ssl) {
                /* close_notify keeps the session resumable. A connection that never passed the checks
                 * (s->tls false) goes without it, and OpenSSL then refuses to resume its session. */
                if (s->tls) {
                        ERR_clear_error();
                        (void)SSL_shutdown(s->ssl);
                        ERR_clear_error();
                }
                SSL_free(s->ssl);
                s->ssl = NULL;
        }
        strv_done(&s->match);
        if (s->own_policy) {
                tls_policy_done(s->own_policy);
                free(s->own_policy);
                s->own_policy = NULL;
        }
        free(s->tls_error);
        s->tls_error = NULL;
        free(s->tls_cache_key);
        s->tls_cache_key = NULL;
        drop_dest_policy(s);
        free(s->tlsa);
        s->tlsa = NULL;
}
