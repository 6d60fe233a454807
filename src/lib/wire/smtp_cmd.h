/* smtp_cmd.h: server-side SMTP command parsing (verbs, MAIL/RCPT paths, ESMTP parameters, replies). */
#pragma once

#include "dsn_notify.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp_addr.h"

/* Longest command line accepted, without CRLF (Postfix's line_length_limit default). */
#define SMTP_CMD_LINE_MAX   2048
#define SMTP_CMD_PARAMS_MAX 16  /* ESMTP parameters on one MAIL or RCPT command */
#define SMTP_ENVID_MAX      100 /* RFC 3461 4.4: ENVID, decoded */
#define SMTP_ORCPT_MAX      500 /* RFC 3461 4.2: the whole ORCPT value */
#define SMTP_AUTH_PARAM_MAX 500 /* AUTH=<mailbox> value as written */

enum smtp_verb {
        SMTP_VERB_UNKNOWN,
        SMTP_VERB_EHLO,
        SMTP_VERB_HELO,
        SMTP_VERB_MAIL,
        SMTP_VERB_RCPT,
        SMTP_VERB_DATA,
        SMTP_VERB_RSET,
        SMTP_VERB_NOOP,
        SMTP_VERB_QUIT,
        SMTP_VERB_VRFY,
        SMTP_VERB_STARTTLS,
        SMTP_VERB_AUTH,
        SMTP_VERB_BDAT, /* recognised, not implemented */
        SMTP_VERB_ETRN, /* recognised, not implemented */
};

enum smtp_body { SMTP_BODY_NONE, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };
enum smtp_ret { SMTP_RET_NONE, SMTP_RET_FULL, SMTP_RET_HDRS };
enum {
        SMTP_NOTIFY_NEVER = DSN_NOTIFY_NEVER,
        SMTP_NOTIFY_SUCCESS = DSN_NOTIFY_SUCCESS,
        SMTP_NOTIFY_FAILURE = DSN_NOTIFY_FAILURE,
        SMTP_NOTIFY_DELAY = DSN_NOTIFY_DELAY,
};

struct smtp_cmd_params {
        bool size_given;
        uint64_t size;
        enum smtp_body body;
        bool smtputf8;
        enum smtp_ret ret;
        char *envid;      /* xtext-decoded; NULL when absent */
        unsigned notify;  /* SMTP_NOTIFY_* bits; 0 when absent */
        char *orcpt_type; /* "rfc822" (lower-cased); NULL when absent */
        char *orcpt;      /* xtext-decoded address */
        char *auth;       /* xtext-decoded; "<>" kept as "<>"; NULL when absent */
};

struct smtp_cmd {
        enum smtp_verb verb;
        char *verb_name;               /* upper-cased, as received (for logs and "unknown command" counts) */
        char *arg;                     /* the text after the verb and its separating blanks; "" when none */
        struct smtp_addr addr;         /* MAIL and RCPT */
        struct smtp_cmd_params params; /* MAIL and RCPT */
        char *reply;                   /* after a failed parse: the complete reply, e.g. "501 5.1.7 ..." */
};

struct smtp_cmd_options {
        bool smtputf8_txn;     /* RCPT: the transaction's MAIL FROM carried SMTPUTF8 */
        bool strict_rfc821;    /* strict_rfc821_envelopes: "<path>" right after the colon, nothing else */
        bool smtputf8_disable; /* smtputf8_enable = no: SMTPUTF8 is an unsupported option */
};

/*
 * Parse one command line (without its CRLF; len bytes, may contain anything). Returns 0 with *ret
 * filled, or -EINVAL with ret->verb/verb_name set as far as known and ret->reply the reply to send.
 * Either way the caller calls smtp_cmd_done().
 */
int smtp_cmd_parse(const char *line, size_t len, const struct smtp_cmd_options *opts, struct smtp_cmd *ret);
void smtp_cmd_done(struct smtp_cmd *c);
const char *smtp_verb_to_string(enum smtp_verb v);

/*
 * Find the next command line in the received bytes. Returns 1 with *ret_line_len (without CRLF) and
 * *ret_consumed (with CRLF) when a CRLF-terminated line is complete; 0 when more input is needed;
 * -EBADMSG when a bare LF ends the line (smuggling defence: "550 5.5.2 Error: bare <LF> received"),
 * -E2BIG when no CRLF arrives within SMTP_CMD_LINE_MAX bytes ("500 5.5.0 Error: line too long").
 */
int smtp_cmd_line_split(const char *in, size_t n, size_t *ret_line_len, size_t *ret_consumed);

/* Decode RFC 3461 xtext ("+2B" hex escapes); -EINVAL on bad syntax, a decoded NUL, or past max bytes. */
int smtp_xtext_decode(const char *s, size_t len, size_t max, char **ret);
/* Encode bytes as xtext (for the client side: ENVID, ORCPT). */
char *smtp_xtext_encode(const char *s, size_t len);
