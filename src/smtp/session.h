/* session.h: one outbound connection's state, shared by the protocol (session.c) and its TLS (tls.c). */
#pragma once

#include <stdbool.h>
#include <string.h>

#include "alloc.h"
#include "smtp.h"

enum sstate {
        S_CONNECT,
        S_GREETING,
        S_EHLO,
        S_HELO,
        S_STARTTLS,
        S_TLS_HANDSHAKE,
        S_AUTH,
        S_AUTH_LOGIN_USER,
        S_AUTH_LOGIN_PASS,
        S_RSET,
        S_MAIL,
        S_RCPT,
        S_DATA,
        S_DATA_XFER,
        S_DATA_DONE,
        S_IDLE,
        S_QUIT,
};

struct session {
        struct agent *a;
        struct request *rq;            /* NULL while idle in the cache */
        const struct session_ops *ops; /* rq's: what the session reports to it */
        struct session *next;
        bool cached;
        int fd;
        SSL *ssl;
        struct event_source *io, *timer;
        enum sstate state;
        bool in_callback, dead, reused;
        char host[DNS_HOST_MAX + 1];
        char addr[DNS_HOST_MAX + 1]; /* an IP address, or an LMTP socket path as written */
        uint16_t port;
        char relay[SMTP_RELAY_MAX];
        char *key;
        char bind_addr[64];
        const char *bind_param;
        struct buf out;
        size_t out_off;
        struct smtp_reply_parser parser;
        struct smtp_ehlo_caps caps;
        bool tls, tls_wants_write;
        enum tls_level level;          /* this destination's: smtp_tls_policy_maps, else main.cf */
        bool dane;                     /* level dane or dane-only with usable TLSA records: authenticate */
        struct dns_addr dest;          /* the address to connect to (kept while TLSA are looked up) */
        struct tls_dest_policy *dp;    /* the policy entry, while the plan waits for the TLSA lookup */
        struct dns_tlsa *tlsa;         /* the usable TLSA records when dane */
        struct strv match;             /* names the certificate must show at verify and secure */
        struct tls_policy *own_policy; /* protocols and ciphers of a policy entry; NULL: the agent's */
        char *tls_error;               /* TLS would be used but cannot be: why (deferred with it) */
        char *tls_cache_key;           /* TLS sessions resume only under the same key */
        char *auth_user, *auth_pass;
        size_t rcpt_cur; /* RCPT TO being answered; in LMTP also the recipient of each reply after DATA */
        size_t n_accepted;
        size_t data_off;
        bool data_bol, data_end;
};
/* Reasons go to the queue file and the log: keep them bounded. */
static inline char *limit_reason(char *reason)
{
        if (strlen(reason) > SMTP_REASON_MAX)
                reason[SMTP_REASON_MAX] = '\0';
        return reason;
}

/* The server must do TLS, and the delivery is deferred otherwise. */
static inline bool smtp_tls_mandatory(const struct session *s)
{
        return s->level >= TLS_ENCRYPT || s->dane;
}

/* tls.c: the client side of STARTTLS. Errors come back as a reason (and DSN); session.c defers with them. */

/* Decide this connection's TLS before connecting: level, protocols and ciphers, the names a certificate
 * must show, and the session cache key. 0, or <0 with *ret_dsn and *ret_reason (free it) to defer with. */
int smtp_tls_plan(struct session *s, const char **ret_dsn, char **ret_reason);
/* smtp_tls_plan returns 1 at dane and dane-only when the host's TLSA records decide: the caller looks them
 * up (dns_tlsa_async) and hands them here. 0, or <0 with *ret_dsn and *ret_reason as above. */
int smtp_tls_plan_dane(struct session *s, const struct dns_tlsa *t, const char **ret_dsn, char **ret_reason);
/* After the server's 220 to STARTTLS: the connection's SSL object. 0, or <0 with *ret_reason. */
int smtp_tls_start(struct session *s, char **ret_reason);
/* One step of the handshake: 1 established and the peer passed the level's checks (logged), 0 waiting
 * for I/O (s->tls_wants_write says which), <0 failed with *ret_reason (DSN 4.7.5). */
int smtp_tls_handshake(struct session *s, char **ret_reason);
/* Free the connection's TLS state, with close_notify when it was established. */
void smtp_tls_done(struct session *s);
