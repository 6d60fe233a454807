/* smtp_util.h: the SMTP client's pure helpers: DATA encoding, source address choice, SASL keys and options.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "dns.h"

#define SMTP_SASL_VALUE_MAX 1024 /* "user:password" from smtp_sasl_password_maps */
#define SMTP_SASL_KEYS_MAX  5

/*
 * Encode queue content (LF line ends) for DATA: CRLF line ends, a '.' doubled at the start of a
 * line. Consumes content from *off and appends to out until about max_out bytes were added or the
 * content ends. *bol tracks "at the start of a line" between calls (start with true). When the
 * content is used up, the terminating ".\r\n" is added (with a CRLF first when the last line had
 * none) and 1 is returned; else 0.
 */
int smtp_data_encode(const char *content, size_t len, size_t *off, bool *bol, struct buf *out,
                     size_t max_out);

/* Does content hold any byte with the high bit set (then MAIL FROM says BODY=8BITMIME)? */
bool smtp_content_is_8bit(const char *content, size_t len);

/*
 * Postfix's source address rule: smtp_bind_address when set; else, when inet_interfaces is exactly
 * one address that is not a loopback address, that address. family is AF_INET or AF_INET6 (bind6
 * and the IPv6 addresses of inet_interfaces for AF_INET6). Writes the address (or "") to out and
 * the name of the parameter it came from to *ret_param. Pure.
 */
void smtp_source_address(int family, const char *bind_address, const char *bind_param,
                         const char *inet_interfaces, char *out, size_t size, const char **ret_param);

/*
 * Keys for smtp_sasl_password_maps, most specific first: the next hop as written, then for the
 * remote host "[host]:port", "[host]", "host:port", "host" (duplicates dropped). Pure.
 */
void smtp_sasl_keys(const char *nexthop, const char *host, uint16_t port, struct strv *keys);

/* Split "user:password" (the password may contain ':'). -EINVAL when there is no user or no ':'. */
int smtp_sasl_split(const char *value, char **ret_user, char **ret_pass);

/* smtp_sasl_security_options words. */
enum {
        SMTP_SASL_NOPLAINTEXT = 1 << 0,
        SMTP_SASL_NOANONYMOUS = 1 << 1,
        SMTP_SASL_NOACTIVE = 1 << 2,
        SMTP_SASL_NODICTIONARY = 1 << 3,
        SMTP_SASL_MUTUAL_AUTH = 1 << 4,
};
/* Parse the words into SMTP_SASL_* flags: 0, or -EINVAL for an unknown word. */
int smtp_sasl_options_parse(const char *list, unsigned *ret);

/* Base64 (RFC 4648) of data, malloc'd. */
char *smtp_base64(const void *data, size_t len);
/* Decode base64 text into out (at most size bytes): length, or -EINVAL. */
int smtp_base64_decode(const char *text, void *out, size_t size);

/*
 * Does a greeting or EHLO reply text (the reply's lines joined by "\n", without codes) name
 * myhostname as its first word, compared case-insensitively and ignoring one trailing dot? Then the
 * client talks to its own instance: mail for the destination would loop. Pure.
 */
bool smtp_reply_names_myself(const char *text, const char *myhostname);

/*
 * The deferral reason for such a loop, malloc'd: "mail for NEXTHOP loops back to myself" and which
 * parameter to fix: mydestination when this host is the final destination for DOMAIN (the
 * recipient's domain), else the routing to NEXTHOP.
 */
char *smtp_loop_reason(const char *nexthop, const char *domain);

/* An LMTP next hop as Postfix writes it (default port 24, never an MX lookup, brackets optional). */
#define LMTP_DEFAULT_PORT 24
/*
 * "unix:PATH" (a socket path relative to queue_dir unless it starts with '/'), "inet:HOST[:PORT]",
 * "HOST[:PORT]" or "[HOST]:PORT". 1 for a unix socket (*ret_unix: sa is its sockaddr_un, host the
 * path as written, which the relay= field shows), 0 for TCP (*ret_inet, mx false), -EINVAL for a
 * bad form, -ENAMETOOLONG when the socket path does not fit a sockaddr_un. Pure.
 */
int lmtp_nexthop_parse(const char *nexthop, const char *queue_dir, struct dns_nexthop *ret_inet,
                       struct dns_addr *ret_unix);
