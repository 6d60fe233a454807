/* smtp_addr.h: RFC 5321 Path / Mailbox parsing, internal (unquoted) and external (quoted) address forms. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

/* RFC 5321 section 4.5.3.1: octet limits of the parts of a path. */
#define SMTP_LOCAL_PART_MAX 64
#define SMTP_DOMAIN_MAX     255
#define SMTP_LABEL_MAX      63
#define SMTP_PATH_MAX       256 /* including the angle brackets */

enum {
        SMTP_ADDR_ALLOW_NULL = 1 << 0,       /* "<>" is accepted (MAIL FROM, and DSN-ish use) */
        SMTP_ADDR_ALLOW_POSTMASTER = 1 << 1, /* "<postmaster>" without a domain (RCPT TO) */
        SMTP_ADDR_UTF8 = 1 << 2,             /* SMTPUTF8 was given: UTF-8 in local part and domain */
        SMTP_ADDR_ALLOW_BARE = 1 << 3, /* a mailbox without angle brackets (Postfix's default tolerance) */
        SMTP_ADDR_ALLOW_NO_DOMAIN = 1 << 4, /* "<user>": a local part alone; domain stays NULL (MAIL FROM) */
};

struct smtp_addr {
        char *addr;   /* internal form: unquoted local part "@" domain; "" for the null path */
        char *local;  /* unquoted local part; "" for the null path */
        char *domain; /* as written (case kept); NULL for "<>" and "<postmaster>" */
        bool null_path;
        bool utf8; /* contains non-ASCII (only possible with SMTP_ADDR_UTF8) */
};

/*
 * Parse a Path at the start of s (len bytes; s need not be NUL-terminated): "<" [A-d-l ":"] Mailbox ">",
 * "<>", "<postmaster>" or, with SMTP_ADDR_ALLOW_BARE, a Mailbox without brackets; with
 * SMTP_ADDR_ALLOW_NO_DOMAIN, a local part without "@domain" (addr is then the local part). A source route is
 * checked and dropped. *ret_end is the offset just past the path. Returns 0, -EINVAL on bad syntax,
 * -EILSEQ when non-ASCII appears without SMTP_ADDR_UTF8, -ENAMETOOLONG when a length limit is exceeded.
 */
int smtp_addr_parse(const char *s, size_t len, unsigned flags, struct smtp_addr *ret, size_t *ret_end);
void smtp_addr_done(struct smtp_addr *a);

/* Split an internal-form address at its last "@"; *ret_domain is NULL when there is none. */
void smtp_addr_split(const char *addr, char **ret_local, char **ret_domain);
/* Lower-case (ASCII) the domain part of an internal-form address, in place. */
void smtp_addr_lowercase_domain(char *addr);
/* True when the local part can be written without quotes (a dot-string). */
bool smtp_local_is_dot_string(const char *local, size_t len);
/* External form of an internal-form address: the local part quoted when needed ("a b"@example.com). */
char *smtp_addr_quote(const char *addr);
/* Length of the valid UTF-8 sequence (2-4 bytes) starting at p, or 0 when invalid or truncated. */
size_t smtp_utf8_seq_len(const unsigned char *p, size_t n);
/* True when the whole buffer is valid UTF-8 (ASCII included). */
bool smtp_utf8_valid(const char *p, size_t n);
/* A domain name (dot-separated LDH labels, or U-labels with utf8) or an address literal. */
bool smtp_domain_valid(const char *s, size_t len, bool utf8);
