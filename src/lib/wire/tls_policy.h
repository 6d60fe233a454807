/* tls_policy.h: Postfix's TLS protocol and cipher-grade settings (smtpd_tls_protocols, smtp_tls_ciphers,
 * ...) turned into the protocol range and cipher list a role hands to OpenSSL
 * (SSL_CTX_set_min_proto_version, SSL_set_cipher_list, ...). Pure: no OpenSSL here, so unit tests and the
 * fuzzer drive it directly. */
#pragma once

#include "buf.h"

/* Protocol versions as they appear on the wire, which are also OpenSSL's SSL3_VERSION ... TLS1_3_VERSION. */
enum {
        TLS_POLICY_SSLV2 = 0x0002,
        TLS_POLICY_SSLV3 = 0x0300,
        TLS_POLICY_TLSV1 = 0x0301,
        TLS_POLICY_TLSV1_1 = 0x0302,
        TLS_POLICY_TLSV1_2 = 0x0303,
        TLS_POLICY_TLSV1_3 = 0x0304,
};

/* Longest protocol or cipher-exclusion value accepted, and longest single name in it. */
#define TLS_POLICY_VALUE_MAX 4096
#define TLS_POLICY_NAME_MAX  64

struct tls_policy {
        int min_version;     /* TLS_POLICY_TLSV1 .. TLS_POLICY_TLSV1_3 */
        int max_version;     /* 0: no upper bound (the newest OpenSSL knows), else a TLS_POLICY_* version */
        char *cipher_list;   /* OpenSSL cipher string for TLS 1.2 and below; TLS 1.3 suites stay default */
        char *cipher_origin; /* "smtpd_tls_ciphers = high, smtpd_tls_exclude_ciphers": for messages */
};

/*
 * Pure parser of a protocols parameter (param names it in messages): exclusions "!TLSv1", bounds
 * ">=TLSv1.2" / "<=TLSv1.3", and bare names (only those protocols), separated by commas, spaces or
 * colons, names case-insensitive. SSLv2 and SSLv3 are never enabled. An excluded protocol between two
 * enabled ones leaves a hole OpenSSL cannot express: the highest contiguous range is kept and
 * *ret_warning says so (free it; NULL when there is nothing to say). Returns 0, or -EINVAL with
 * *ret_error naming the parameter and the offending token.
 */
int tls_protocols_parse(const char *param, const char *value, int *ret_min, int *ret_max, char **ret_warning,
                        char **ret_error);

/*
 * Pure builder of the cipher list for a grade ("high" or "medium": grade_param names the setting) from
 * the grade's list (tls_high_cipherlist / tls_medium_cipherlist) and the exclusions of exclude_param
 * ("aNULL, MD5, RC4": appended as ":!NAME"). "low", "export" and "null" are refused as insecure.
 * Returns 0 and *ret_list, or -EINVAL with *ret_error naming the parameter.
 */
int tls_ciphers_build(const char *grade_param, const char *grade, const char *high_list,
                      const char *medium_list, const char *exclude_param, const char *exclude,
                      char **ret_list, char **ret_error);

/* What a role reads from main.cf for one TLS level: each value with the name of its parameter. */
struct tls_policy_settings {
        const char *protocols_param, *protocols;         /* smtpd_tls_mandatory_protocols, ... */
        const char *ciphers_param, *ciphers;             /* smtpd_tls_mandatory_ciphers, ... */
        const char *exclude_param, *exclude;             /* smtpd_tls_exclude_ciphers, ... */
        const char *high_cipherlist, *medium_cipherlist; /* tls_high_cipherlist, tls_medium_cipherlist */
};

/* Both parsers above. 0 (then *ret_warning may say the protocols had a hole; free it), or -EINVAL with
 * *ret_error naming the parameter. Free the result with tls_policy_done. */
int tls_policy_build(const struct tls_policy_settings *s, struct tls_policy *ret, char **ret_warning,
                     char **ret_error);
void tls_policy_done(struct tls_policy *p);

/* Postfix's client security levels, weakest first. "dane" is opportunistic: without usable (DNSSEC
 * validated) TLSA records it is "may". dane-only and fingerprint rank above encrypt as in Postfix. */
enum tls_level {
        TLS_NONE,
        TLS_MAY,
        TLS_DANE,
        TLS_ENCRYPT,
        TLS_DANE_ONLY,
        TLS_FINGERPRINT,
        TLS_VERIFY,
        TLS_SECURE,
};

/* "none", "may", ... (case-insensitive) -> the level, or -EINVAL for anything else, "" included. */
int tls_level_parse(const char *name);
const char *tls_level_name(enum tls_level level);

/* One smtp_tls_policy_maps value: "secure match=nexthop:.example.com ciphers=high protocols=>=TLSv1.2".
 * An attribute not given stays NULL: the main.cf parameter applies. */
struct tls_dest_policy {
        enum tls_level level;
        char *match;     /* names (colon-separated) or, at fingerprint, digests ("|"), as written */
        char *ciphers;   /* cipher grade replacing smtp_tls_mandatory_ciphers */
        char *protocols; /* replacing smtp_tls_mandatory_protocols (colon- or comma-separated) */
        char *exclude;   /* ciphers excluded in addition to smtp_tls_exclude_ciphers */
};

/*
 * Pure parser of a policy table value: a level, then attributes name=value separated by blanks. An
 * unknown level or attribute, a repeated or empty attribute, or match= with a level that checks no
 * names or fingerprints is refused: -EINVAL with *ret_error saying what and how to fix it (the caller defers
 * the delivery: a broken policy never means less protection). Free the result with tls_dest_policy_done.
 */
int tls_dest_policy_parse(const char *value, struct tls_dest_policy *ret, char **ret_error);
void tls_dest_policy_done(struct tls_dest_policy *p);

/* Longest certificate name accepted in a match list (a DNS name). */
#define TLS_MATCH_NAME_MAX 253

/*
 * Pure: the names a server certificate must show, from a match list (smtp_tls_secure_cert_match
 * "nexthop, dot-nexthop", smtp_tls_verify_cert_match "hostname", or a policy's match= value split on
 * colons): "hostname" is the server's host name (the MX host), "nexthop" the next-hop domain,
 * "dot-nexthop" any subdomain of it (".domain"), anything else an explicit name (".example.com": any
 * subdomain). Names are lowercased; param names the setting in messages. 0 with at least one name in
 * *ret (appended), or -EINVAL and *ret_error.
 */
int tls_match_expand(const char *param, const char *list, const char *separators, const char *hostname,
                     const char *nexthop, struct strv *ret, char **ret_error);

/* Longest digest a fingerprint may have, in bytes (SHA-512). */
#define TLS_FINGERPRINT_MAX 64

/*
 * Pure: the fingerprint level's list (smtp_tls_fingerprint_cert_match, or a policy's match= value split
 * on "|"): digests as "openssl x509 -fingerprint" prints them, "AB:CD:...", colons optional, any case.
 * Appended to *ret in one form, uppercase hex pairs joined by colons, for comparison with what the
 * client computes. 0 with at least one, or -EINVAL and *ret_error naming param and the bad entry.
 */
int tls_fingerprints_parse(const char *param, const char *list, const char *separators, struct strv *ret,
                           char **ret_error);
