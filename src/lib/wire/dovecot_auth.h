/* dovecot_auth.h: Dovecot's authentication client protocol (auth-client 1.x): pure parsing and formatting.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Mechanisms kept from one handshake; Dovecot announces about a dozen at most. */
#define DOVECOT_AUTH_MECHS_MAX 32
/* Longest line accepted from the server (a CONT challenge or an OK with its fields). */
#define DOVECOT_AUTH_LINE_MAX 16384

/* MECH flags as Dovecot names them. */
enum {
        DOVECOT_MECH_ANONYMOUS = 1u << 0,
        DOVECOT_MECH_PLAINTEXT = 1u << 1,
        DOVECOT_MECH_DICTIONARY = 1u << 2,
        DOVECOT_MECH_ACTIVE = 1u << 3,
        DOVECOT_MECH_FORWARD_SECRECY = 1u << 4,
        DOVECOT_MECH_MUTUAL_AUTH = 1u << 5,
        DOVECOT_MECH_PRIVATE = 1u << 6,
};

/* smtpd_sasl_security_options words: a mechanism with a matching flag is not offered. */
enum {
        SASL_SEC_NOPLAINTEXT = 1u << 0,
        SASL_SEC_NOACTIVE = 1u << 1,
        SASL_SEC_NODICTIONARY = 1u << 2,
        SASL_SEC_NOANONYMOUS = 1u << 3,
        SASL_SEC_MUTUAL_AUTH = 1u << 4,
        SASL_SEC_FORWARD_SECRECY = 1u << 5,
};

struct dovecot_mech {
        char name[64];
        unsigned flags;
};

/* The server's half of the handshake: VERSION, MECH..., (SPID, CUID, COOKIE ignored), DONE. */
struct dovecot_auth_handshake {
        bool have_version, done;
        struct dovecot_mech mechs[DOVECOT_AUTH_MECHS_MAX];
        size_t n_mechs;
};

/*
 * Feed one server line (no LF). 1: DONE seen (the handshake is complete), 0: more lines wanted,
 * -EPROTO: a major version other than 1, a line before VERSION, or a malformed VERSION/MECH line.
 */
int dovecot_auth_handshake_line(struct dovecot_auth_handshake *h, const char *line);

enum dovecot_auth_reply_type { DOVECOT_AUTH_OK, DOVECOT_AUTH_CONT, DOVECOT_AUTH_FAIL };

/* One answer to AUTH or CONT. Strings are malloc'd (tab-unescaped); free with dovecot_auth_reply_done. */
struct dovecot_auth_reply {
        enum dovecot_auth_reply_type type;
        unsigned long id;
        char *data;   /* CONT: the base64 challenge ("" for an empty one) */
        char *user;   /* OK, FAIL: user=, or NULL */
        char *reason; /* FAIL: reason=, or NULL */
        bool temp;    /* FAIL: "temp": the failure is the server's, not the client's */
};

/* Parse an OK/CONT/FAIL line (no LF). 0, or -EBADMSG (*r left empty). */
int dovecot_auth_reply_parse(const char *line, struct dovecot_auth_reply *r);
void dovecot_auth_reply_done(struct dovecot_auth_reply *r);

/* Base64 as a client may send it: [A-Za-z0-9+/] then at most two '=' (empty is valid). */
bool dovecot_auth_base64_valid(const char *s);

/*
 * The client's handshake: "VERSION\t1\t2\nCPID\t<pid>\n" (malloc'd).
 */
char *dovecot_auth_client_hello(unsigned long pid);

/* What one AUTH request says about the SMTP session. */
struct dovecot_auth_request {
        unsigned long id;
        const char *mech;
        const char *service;   /* "smtp" */
        const char *local_ip;  /* NULL: unknown */
        const char *remote_ip; /* NULL: unknown */
        bool secured;          /* TLS is active */
        const char *initial;   /* base64 initial response ("" = an empty one, "="), or NULL for none */
};

/*
 * Format "AUTH\t<id>\t<mech>\tservice=...\t...\n" (malloc'd). NULL when a value could break the line
 * (a tab, LF or NUL in mech/service/IPs, or an initial response that is not base64).
 */
char *dovecot_auth_format_auth(const struct dovecot_auth_request *rq);
/* "CONT\t<id>\t<base64>\n" (malloc'd), NULL when the response is not base64. */
char *dovecot_auth_format_cont(unsigned long id, const char *response);

/* Parse smtpd_sasl_security_options words into SASL_SEC_* bits; -EINVAL names the bad word in *bad. */
int dovecot_auth_security_options(const char *const *words, size_t n, unsigned *ret, const char **bad);
/* May a mechanism with these MECH flags be offered under these SASL_SEC_* options? */
bool dovecot_auth_mech_allowed(unsigned mech_flags, unsigned sec_opts);
