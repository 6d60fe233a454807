/* smtp_reply.h: SMTP reply formatting (server); incremental reply and EHLO parsing (client). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "macro.h"

/* Longest reply line accepted by the client, without CRLF (Postfix's line_length_limit). */
#define SMTP_REPLY_LINE_MAX  2048
#define SMTP_REPLY_LINES_MAX 128         /* lines of one multi-line reply */
#define SMTP_REPLY_TEXT_MAX  (64 * 1024) /* text of one reply, all lines */
#define SMTP_ENHANCED_MAX    16          /* "5.123.456" plus NUL, with room */

/*
 * Server side: append a reply. text may hold several lines separated by "\n"; each becomes a reply line
 * ("250-..." then "250 ..."), and each line gets the enhanced status code when one is given. Control
 * characters in text are replaced by "?" so that a reply can never carry a line break of its own.
 */
void smtp_reply_format(struct buf *out, int code, const char *enhanced, const char *text);
void smtp_reply_printf(struct buf *out, int code, const char *enhanced, const char *fmt, ...) _printf_(4, 5);

/* A parsed reply (client side). */
struct smtp_reply {
        int code;                         /* 200..599 (first digit 2-5) */
        char enhanced[SMTP_ENHANCED_MAX]; /* "2.0.0" from the first line, "" when absent */
        char *text;                       /* the lines' text after "NNN-"/"NNN ", joined with "\n" */
        size_t n_lines;
};
void smtp_reply_done(struct smtp_reply *r);
/* "250 2.0.0 Ok" style single-line rendering for logs: code, then each line's text joined with " ". */
char *smtp_reply_to_string(const struct smtp_reply *r);

struct smtp_reply_parser {
        struct buf line; /* the incomplete current line */
        struct buf text;
        int code;
        size_t n_lines;
        char enhanced[SMTP_ENHANCED_MAX];
};
void smtp_reply_parser_init(struct smtp_reply_parser *p);
void smtp_reply_parser_done(struct smtp_reply_parser *p);
/*
 * Feed received bytes. Returns 1 when a complete reply is in *ret (the caller owns it, see
 * smtp_reply_done) and *ret_consumed bytes were used (pipelined replies may follow); 0 when more input
 * is needed (all bytes consumed); -EBADMSG on a malformed reply (bad code, codes that differ between
 * lines, NUL), -EMSGSIZE when a line, the line count or the text exceed their limits. After an error
 * the parser must be reset with smtp_reply_parser_done + init (the connection is not usable anyway).
 * Lines may end in <CR><LF> or, leniently, a bare <LF>.
 */
int smtp_reply_parser_feed(struct smtp_reply_parser *p, const char *in, size_t n, size_t *ret_consumed,
                           struct smtp_reply *ret);

/* Parse "X.Y.Z" at the start of s (X 2, 4 or 5; Y and Z up to 3 digits) followed by a blank or the end. */
bool smtp_enhanced_parse(const char *s, size_t *ret_len);

/* EHLO response capabilities (RFC 5321 4.1.1.1: the first line is the greeting, the rest keywords). */
struct smtp_ehlo_caps {
        bool pipelining, starttls, eightbitmime, smtputf8, enhancedstatuscodes, dsn, chunking;
        bool size;           /* SIZE advertised */
        uint64_t size_limit; /* 0: no fixed limit given */
        bool auth;
        char **auth_mechs; /* upper-cased, NULL-terminated; NULL when none */
        size_t n_auth_mechs;
};
#define SMTP_EHLO_AUTH_MECHS_MAX 32
int smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo_caps *ret);
bool smtp_ehlo_has_auth(const struct smtp_ehlo_caps *c, const char *mech);
void smtp_ehlo_caps_done(struct smtp_ehlo_caps *c);
