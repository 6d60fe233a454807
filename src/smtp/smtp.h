/* smtp.h: the smtp delivery agent's shared state: settings, delivery requests, SMTP sessions. */
#pragma once

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include "event.h"

#include "buf.h"
#include "delivery_request.h"
#include "dns.h"
#include "own_addrs.h"
#include "ipc.h"
#include "maps.h"
#include "qfile.h"
#include "queue.h"
#include "service.h"
#include "smtp_reply.h"
#include "tls_policy.h"

#define SMTP_MAX_CONNECTIONS      50                /* delivery requests one process serves at once */
#define SMTP_CACHE_MAX            32                /* idle connections kept per process */
#define SMTP_DATA_CHUNK           (64u * 1024)      /* DATA bytes encoded per write */
#define SMTP_REQUEST_TIMEOUT_USEC (60ULL * 1000000) /* for qmgr to send its request */
#define SMTP_REASON_MAX           1024
#define SMTP_RELAY_MAX            (2 * DNS_HOST_MAX + 16) /* host[addr]:port, addr maybe a socket path */

#define SMTP_TLS_CACHE_MAX 64 /* TLS sessions kept per process for resumption */

struct smtp_settings {
        bool lmtp; /* LMTP mode (the lmtp agent): LHLO, one reply per recipient after DATA, unix sockets */
        char *helo_name;
        char *myhostname; /* a peer greeting with it is this instance: the mail would loop */
        char bind4[64], bind6[64];
        const char *bind4_param, *bind6_param;
        unsigned families; /* DNS_FAMILY_* from inet_protocols */
        enum dns_lookup_mode lookup_mode;
        bool dnssec;          /* smtp_dns_support_level = dnssec: answers carry their DNSSEC status (DANE) */
        struct own_addrs own; /* an MX-style next hop resolving to one of these loops back */
        uint64_t connect_timeout, helo_timeout, mail_timeout, rcpt_timeout, data_init_timeout,
                data_xfer_timeout, data_done_timeout, quit_timeout; /* microseconds */
        bool cache_on_demand;
        uint64_t cache_time_limit;
        struct strv fallback_relays;
        unsigned mx_address_limit;
        bool skip_5xx_greeting;
        enum tls_level tls_level;
        enum tls_level dane_insecure_mx; /* smtp_tls_dane_insecure_mx_policy: may, dane or encrypt */
        char *dane_insecure_mx_error;    /* its value is not understood: such deliveries are deferred */
        char *tls_level_error; /* the level setting is not understood: every delivery is deferred */
        int tls_loglevel;
        char *tls_verify_match, *tls_secure_match; /* smtp_tls_{verify,secure}_cert_match */
        const char *tls_verify_match_param, *tls_secure_match_param;
        char *tls_fingerprint_match, *tls_fingerprint_digest; /* smtp_tls_fingerprint_{cert_match,digest} */
        const char *tls_fingerprint_match_param, *tls_fingerprint_digest_param;
        struct maps *tls_policy_maps; /* smtp_tls_policy_maps, NULL when empty */
        uint64_t tls_session_timeout; /* seconds a cached TLS session is resumed; 0: no cache */
        bool sasl_enable;
        struct maps *sasl_maps;
        unsigned sasl_opts, sasl_tls_opts;
};

struct session;

struct agent {
        struct service *svc;
        struct event_loop *event;
        struct smtp_settings set;
        SSL_CTX *ssl_ctx;
        bool dane_ok; /* SSL_CTX_dane_enable succeeded: TLSA records can be checked */
        /* Protocols and ciphers of opportunistic ([0]: may) and mandatory ([1]: encrypt and up) TLS;
         * when unusable, why (naming the parameter) in tls_policy_error[i] instead. */
        struct tls_policy *tls_policy[2];
        char *tls_policy_error[2];
        struct tls_cached *tls_cache; /* TLS sessions to resume, most recent first (tls_cache.c) */
        unsigned n_tls_cache;
        struct queue *queue;
        char *queue_dir;       /* LMTP "unix:" next hops are relative to it */
        struct session *cache; /* idle connections, most recent first */
        unsigned n_cache;
};

enum rcpt_status { RCPT_PENDING, RCPT_ACCEPTED, RCPT_SENT, RCPT_DEFERRED, RCPT_BOUNCED };

struct rcpt {
        size_t index; /* in the queue file */
        struct qfile_rcpt *q;
        enum rcpt_status status;
        char dsn[SMTP_ENHANCED_MAX];
        char *reason;
};

/* One delivery request from qmgr: its connection, the message and the recipients' outcome. */
struct request {
        struct agent *agent;
        int fd;
        struct ipc_conn conn;
        struct event_source *io, *timer;
        bool replying;

        struct delivery_request dr; /* as qmgr sent it: rcpts[i] answers dr.rcpts[i] */
        char *queue_id;
        char *nexthop;
        uint64_t arrival_usec, active_usec, agent_usec, conn_usec;
        int qfd;
        char *qdata;
        size_t qlen;
        struct qfile_msg msg;
        struct rcpt *rcpts;
        size_t n_rcpts;

        /* Next-hop iteration: the primary next hop, then each fallback relay. */
        size_t hop;     /* 0 primary, i > 0 fallback_relays[i - 1] */
        char *hop_name; /* the next hop being tried, as written */
        struct dns_result *addrs;
        size_t addr_next;
        char last_dsn[SMTP_ENHANCED_MAX];
        char *last_reason; /* why the last address failed */
        bool last_permanent;
        struct session *session;
        bool no_reuse;
};

/* request.c */
void request_start(struct agent *a, int fd);

/*
 * What a session reports to the request it serves, and asks of it: request.c implements them
 * (request_session_ops), and session.c calls no request function by name.
 */
struct session_ops {
        /* The recipient's status changed (final ones are logged and marked). */
        void (*rcpt_final)(struct request *rq, struct rcpt *r, const char *relay, enum rcpt_status st,
                           const char *dsn, const char *reason);
        /* Every accepted recipient shares one answer (to DATA): marked together, one fdatasync for all. */
        void (*accepted_final)(struct request *rq, const char *relay, enum rcpt_status st, const char *dsn,
                               const char *reason);
        /* No delivery to this address before the transaction began: try the next. */
        void (*failed)(struct request *rq, const char *dsn, const char *reason, bool permanent);
        /* The transaction is over (every recipient the session was given is final). */
        void (*done)(struct request *rq);
        /* A cached connection turned out unusable before the transaction: connect afresh to the same hop. */
        void (*reuse_failed)(struct request *rq);
        /* The connection cache key of the request's next hop. */
        const char *(*cache_key)(const struct request *rq);
        /* The first recipient's domain (the next hop when none has one): what "mail for X" names. */
        const char *(*rcpt_domain)(const struct request *rq);
};

/* tls_cache.c: the in-process client TLS session cache (one per smtp process, no tlsmgr). */
struct tls_cached;
/* Take ownership of sess for key (replacing an older one); the oldest goes beyond SMTP_TLS_CACHE_MAX. */
void tls_cache_put(struct agent *a, const char *key, SSL_SESSION *sess);
/* A session to resume for key, still owned by the cache; NULL when none or expired. */
SSL_SESSION *tls_cache_get(struct agent *a, const char *key);
void tls_cache_flush(struct agent *a);

/* tls.c: the agent's TLS context and its protocol and cipher settings, from main.cf. 0 or a negative errno. */
int smtp_tls_init(struct agent *a);

/* session.c */
/* Start a new connection for rq to addr (host and port from addr); the session reports through ops. */
void session_connect(struct agent *a, struct request *rq, const struct session_ops *ops,
                     const struct dns_addr *addr);
/* Take an idle cached connection for key and run rq's transaction on it: true when one was found. */
bool session_reuse(struct agent *a, struct request *rq, const struct session_ops *ops, const char *key);
void session_cache_flush(struct agent *a);
