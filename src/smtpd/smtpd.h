/* smtpd.h: the SMTP server role's shared types: server-wide settings, sessions, access, TLS, submission. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include "event.h"

#include "buf.h"
#include "cleanup_submit.h"
#include "config.h"
#include "ipc.h"
#include "netaddr.h"
#include "service.h"

/* Sessions one smtpd process serves at once on its event loop. */
#define SMTPD_SESSIONS_MAX 100
/* Unprocessed client bytes kept per session; reading pauses while the buffer is this full. */
#define SMTPD_INPUT_MAX (64u * 1024)
/* Replies waiting for the client; a client that does not read them stops being read from. */
#define SMTPD_OUTPUT_MAX (64u * 1024)
/* Bytes of pipelined input quoted in the "improper command pipelining" log line. */
#define SMTPD_PIPELINING_LOG_MAX 100
/* Length of a HELO/EHLO argument kept for logs and the envelope. */
#define SMTPD_HELO_MAX 255

enum smtpd_bare_newline { SMTPD_BARE_NEWLINE_NO, SMTPD_BARE_NEWLINE_NORMALIZE, SMTPD_BARE_NEWLINE_REJECT };
enum smtpd_tls_level { SMTPD_TLS_NONE, SMTPD_TLS_MAY, SMTPD_TLS_ENCRYPT };

struct smtpd_access;
struct smtpd_tls;
struct smtpd_anvil;
struct smtpd_proxy_cfg;
struct session;

/* Settings read once at start; shared read-only by every session of the process. */
struct smtpd {
        struct service *service;
        struct config *config;
        char *myhostname;
        char *myorigin;         /* qualifies MAIL FROM:<user> when append_at_myorigin is set */
        char *content_filter;   /* "transport:destination" for cleanup's queue file; "" none */
        char *receive_override; /* receive_override_options, for cleanup; "" none */
        bool append_at_myorigin;
        char *banner;
        uint64_t message_size_limit; /* 0: none */
        uint64_t queue_minfree;      /* queue_space_minfree(): free space MAIL FROM requires */
        int cleanup_timeout_ms;      /* mail_proto_cleanup_timeout_ms() */
        char *queue_dir;
        long long recipient_limit;
        long long timeout_sec;
        long long hard_error_limit, soft_error_limit;
        long long error_sleep_sec;
        bool disable_vrfy;
        bool helo_required;
        bool forbid_unauth_pipelining;
        bool strict_rfc821;
        bool smtputf8_enable;
        bool wrappermode;
        bool peername_lookup; /* smtpd_peername_lookup */
        enum smtpd_bare_newline bare_newline;
        enum smtpd_tls_level tls_level;
        struct smtpd_access *access;
        struct smtpd_tls *tls;      /* NULL: no TLS (none, or setup failed) */
        char *cleanup_path;         /* MAIL_PROTO_CLEANUP_SOCKET */
        char *cleanup_private_path; /* private/cleanup: a master.cf with cleanup's "private" column "-" */
        struct session *sessions;   /* every open session, for on_stop */
        struct smtpd_sasl *sasl;    /* NULL: smtpd_sasl_auth_enable = no */
        bool sasl_auth_header;      /* smtpd_sasl_authenticated_header */
        bool broken_sasl_clients;   /* broken_sasl_auth_clients: also "AUTH=mechanisms" */
        struct smtpd_anvil *anvil;  /* NULL: every smtpd_client_*_limit is 0 */
        long long junk_command_limit;
        long long session_deadline_sec; /* postd_smtpd_session_deadline; 0: none */
        struct smtpd_proxy_cfg *proxy;  /* smtpd_proxy_filter (proxy.h); NULL: mail goes to cleanup */
};

/* session.c */
void session_start(struct smtpd *srv, int fd);
/* SIGTERM: idle sessions are told 421 and closed; others finish their transaction. */
void session_stop_all(struct smtpd *srv);

/* ---- restrictions.c: access decisions ---- */

/* An access decision: PASS (DUNNO: the next restriction decides), or a final PERMIT / reply. */
/* ACCESS_LOOKUP: a restriction needs DNS answers the session does not have yet (see lookups). */
enum access_result { ACCESS_PASS, ACCESS_PERMIT, ACCESS_REJECT, ACCESS_LOOKUP };

/* ---- client_dns.c: the client's DNS facts, looked up before the greeting ---- */

/* reject_rbl_client zones looked up per client. */
#define SMTPD_RBL_ZONES_MAX 16

struct smtpd_rbl_answer {
        char zone[256];
        int status;    /* 1 listed, 0 not listed, -EAGAIN the lookup failed */
        char addr[16]; /* the A record of a listing: "127.0.0.2" */
        char txt[256]; /* its TXT record, the list's reason ("" when none) */
};

struct smtpd_client_dns {
        char name[256];         /* forward-confirmed name, or "unknown" */
        char reverse_name[256]; /* the PTR name, confirmed or not, or "unknown" */
        int name_status;        /* 0, -ENOENT (no such name, or it does not point back), -EAGAIN */
        int reverse_status;     /* 0, -ENOENT (no PTR), -EAGAIN */
        struct smtpd_rbl_answer rbl[SMTPD_RBL_ZONES_MAX];
        size_t n_rbl;
};

/*
 * Blocking (run it in a worker thread): with names, the PTR name of addr and whether its address
 * records point back; for each zone, addr's listing. Fills *ret.
 */
void smtpd_client_dns_lookup(const char *addr, bool names, const struct strv *zones,
                             struct smtpd_client_dns *ret);

/*
 * DNS answers a session's restrictions asked for (reject_unknown_*_domain, reject_unknown_helo_hostname,
 * reject_rhsbl_*), each under its key: "exists:DOMAIN" (has MX, A or AAAA records) or "listed:NAME" (a
 * blocklist A record for NAME). Filled by the session between two evaluations of a command.
 */
#define SMTPD_DNS_FACTS_MAX 32
#define SMTPD_DNS_KEY_MAX   600

struct smtpd_dns_fact {
        char key[SMTPD_DNS_KEY_MAX];
        int status;    /* exists: 0 yes, -ENOENT no; listed: 1 listed, 0 not; -EAGAIN: no answer */
        char addr[16]; /* listed: the A record ("127.0.0.2") */
        char txt[256]; /* listed: the TXT record, "" when none */
};

struct smtpd_dns_facts {
        struct smtpd_dns_fact f[SMTPD_DNS_FACTS_MAX];
        size_t n; /* the oldest are replaced beyond SMTPD_DNS_FACTS_MAX */
};

/* Blocking (a worker thread): answer one key. */
void smtpd_dns_fact_lookup(const char *key, struct smtpd_dns_fact *ret);
const struct smtpd_dns_fact *smtpd_dns_facts_find(const struct smtpd_dns_facts *facts, const char *key);
void smtpd_dns_facts_add(struct smtpd_dns_facts *facts, const struct smtpd_dns_fact *fact);

struct access_client {
        const char *name; /* forward-confirmed name, "unknown" without one */
        const char *addr; /* printable address, no brackets */
        bool sasl_authenticated;
        const struct smtpd_client_dns *dns; /* NULL: not looked up (smtpd_peername_lookup = no) */
        const char *sasl_username;          /* the AUTH login, NULL when not authenticated */
};

struct access_decision {
        enum access_result result;
        char *reply;         /* ACCESS_REJECT: the whole reply, "554 5.7.1 <x@y>: Relay access denied" */
        struct strv lookups; /* ACCESS_LOOKUP: the DNS keys to answer before asking again */
};

/*
 * Open every table the restrictions use (mynetworks, mydestination, relay_domains,
 * local_recipient_maps and the TYPE:TABLE arguments of the restriction lists). *err (malloc'd) names
 * the parameter and the problem.
 */
int smtpd_access_new(struct config *c, struct smtpd_access **ret, char **ret_error);
void smtpd_access_free(struct smtpd_access *a);
/* The zones of every reject_rbl_client in the restriction lists ("zone" of "zone=127.0.0.2"). */
void smtpd_access_rbl_zones(const struct smtpd_access *a, struct strv *ret);
/* Client in mynetworks: 1, 0, or <0 when a table failed. */
int smtpd_access_mynetworks(struct smtpd_access *a, const char *addr);
/* Client in smtpd_forbid_bare_newline_exclusions: 1, 0, or <0 when a table failed. */
int smtpd_access_bare_newline_excluded(struct smtpd_access *a, const char *addr);
/* Is this domain ("[192.0.2.1]" literals too; NULL = no domain) delivered here? 1, 0 or <0. */
int smtpd_access_domain_is_local(struct smtpd_access *a, const char *domain);
/* When restrictions are evaluated; which lists each stage runs depends on smtpd_delay_reject. */
enum access_stage {
        ACCESS_STAGE_CONNECT,
        ACCESS_STAGE_HELO,
        ACCESS_STAGE_MAIL,
        ACCESS_STAGE_RCPT,
        ACCESS_STAGE_DATA
};

/* What is known of the session at that stage; NULL fields are not known yet (sender "" is <>). */
struct access_request {
        const struct access_client *client;
        const char *helo;
        const char *sender;
        const char *rcpt;
        const struct smtpd_dns_facts *facts; /* NULL: none yet (every DNS restriction asks) */
};

/*
 * Run the restriction lists of a stage: client, HELO and sender lists (at their own command, or all
 * at RCPT TO with smtpd_delay_reject), then relay and recipient lists and the unlisted-recipient
 * check at RCPT TO, the data list at DATA. Fills *ret (free with access_decision_done).
 */
void smtpd_access_check(struct smtpd_access *a, enum access_stage stage, const struct access_request *rq,
                        struct access_decision *ret);
/* Unknown local users (local_recipient_maps): 1 known or not checkable, 0 unknown, <0 table error. */
int smtpd_access_local_user_known(struct smtpd_access *a, const char *rcpt);
void access_decision_done(struct access_decision *d);
/*
 * Pure: the decision for one access table result ("OK", "REJECT text", "450 4.7.1 text", ...) about what
 * ("x@y" or "name[addr]"), label "Recipient address" / "Client host". Unsupported results pass (warned).
 */
void smtpd_access_table_result(struct smtpd_access *a, const char *table, const char *value,
                               const char *what, const char *label, struct access_decision *d);

/* ---- anvil_client.c: per-client limits counted by the anvil service (src/anvil/anvil.h) ---- */

enum smtpd_anvil_event {
        SMTPD_ANVIL_CONNECT,
        SMTPD_ANVIL_DISCONNECT,
        SMTPD_ANVIL_MESSAGE,
        SMTPD_ANVIL_RCPT,
        SMTPD_ANVIL_AUTH,
        SMTPD_ANVIL_N
};
/* The smtpd_client_*_limit settings; 0 means no limit. */
struct smtpd_anvil_limits {
        long long count, conn_rate, message, rcpt, auth;
};
struct smtpd_anvil_answer {
        long long count, rate;
};

/* *ret stays NULL when every limit is 0 (smtpd then never asks anvil). *err (malloc'd) names the problem. */
int smtpd_anvil_new(struct config *c, const char *service, struct smtpd_anvil **ret, char **ret_error);
void smtpd_anvil_free(struct smtpd_anvil *a);
const struct smtpd_anvil_limits *smtpd_anvil_limits(const struct smtpd_anvil *a);
/* In smtpd_client_event_limit_exceptions (or no anvil at all): no event of this client is counted. */
bool smtpd_anvil_exempt(struct smtpd_anvil *a, const char *addr);
/*
 * Count one event of client addr for this service. 0 and *ret filled; <0 when anvil did not count it
 * (down: one warning per outage, then no limits). gen: a connect stores which anvil connection counted
 * it, the matching disconnect passes it back (NULL for other events).
 */
int smtpd_anvil_event(struct smtpd_anvil *a, enum smtpd_anvil_event e, const char *addr, unsigned *gen,
                      struct smtpd_anvil_answer *ret);

/* ---- tls.c: OpenSSL glue ---- */

/*
 * Build the server context from smtpd_tls_cert_file/key_file and the protocol and cipher settings
 * (the *_mandatory_* ones when TLS is mandatory: encrypt or wrapper mode). NULL (warning logged)
 * when unusable; a bad protocol or cipher setting with mandatory TLS is fatal.
 */
struct smtpd_tls *smtpd_tls_new(struct config *c, bool mandatory);
void smtpd_tls_free(struct smtpd_tls *t);

struct tls_conn;
/* Start a server-side TLS connection on fd (the handshake runs in tls_conn_handshake). */
struct tls_conn *tls_conn_new(struct smtpd_tls *t, int fd);
void tls_conn_free(struct tls_conn *c);
/*
 * Results of the I/O calls: >0 bytes moved (handshake: 1 = done), 0 peer closed, or one of
 * TLS_WANT_READ / TLS_WANT_WRITE (wait for the fd and call again), or TLS_FAILED.
 */
enum { TLS_WANT_READ = -1, TLS_WANT_WRITE = -2, TLS_FAILED = -3 };
int tls_conn_handshake(struct tls_conn *c);
int tls_conn_read(struct tls_conn *c, void *p, size_t n);
int tls_conn_write(struct tls_conn *c, const void *p, size_t n);
bool tls_conn_pending(struct tls_conn *c);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" (malloc'd). */
char *tls_conn_describe(struct tls_conn *c);
/* The last OpenSSL error for a log line (static storage). */
const char *tls_last_error(void);

/* ---- sasl.c: AUTH through Dovecot's auth service (smtpd_sasl_type = dovecot) ---- */

struct smtpd_sasl;
/*
 * smtpd_sasl_* settings; *ret stays NULL when smtpd_sasl_auth_enable = no. Relative smtpd_sasl_path
 * names are under queue_dir. *err (malloc'd) names the parameter and the fix.
 */
int smtpd_sasl_new(struct config *c, const char *queue_dir, struct smtpd_sasl **ret, char **ret_error);
void smtpd_sasl_free(struct smtpd_sasl *s);
bool smtpd_sasl_tls_auth_only(const struct smtpd_sasl *s);
/* smtpd_sasl_path is inet:host:port (TCP), not a unix socket. */
bool smtpd_sasl_uses_inet(const struct smtpd_sasl *s);

/* What one step of a conversation with Dovecot ended with. */
enum sasl_outcome {
        SASL_MECHS,    /* the handshake is done: the mechanism list is known */
        SASL_CONT,     /* data: the base64 challenge for a 334 reply */
        SASL_OK,       /* user: the authenticated name */
        SASL_FAIL,     /* the client's credentials were refused (reason, user may be set) */
        SASL_TEMPFAIL, /* Dovecot is unreachable or failed (logged) */
};
struct sasl_event {
        enum sasl_outcome outcome;
        const char *data, *user, *reason;
};
typedef void (*sasl_event_fn)(struct session *s, const struct sasl_event *ev);

/* One session's connection to Dovecot; each step runs in a worker thread and ends in cb on the loop. */
struct sasl_conv;
struct sasl_conv *sasl_conv_new(struct smtpd_sasl *sasl, struct session *owner, sasl_event_fn cb);
/* A step still running is detached: its answer is dropped. NULL is fine. */
void sasl_conv_free(struct sasl_conv *v);
bool sasl_conv_have_mechs(const struct sasl_conv *v);
int sasl_conv_fetch_mechs(struct sasl_conv *v, struct event_loop *e);
/* The mechanisms to advertise with or without TLS ("PLAIN LOGIN", malloc'd), NULL when none. */
char *sasl_conv_mech_list(const struct sasl_conv *v, bool tls);
bool sasl_conv_mech_offered(const struct sasl_conv *v, const char *mech, bool tls);

struct sasl_start {
        const char *mech;
        const char *initial; /* base64, "=" for an empty one, NULL for none */
        const char *local_ip, *remote_ip;
        bool tls;
};
/* -EINVAL: the client's mechanism name or response cannot be sent (not base64). */
int sasl_conv_start(struct sasl_conv *v, struct event_loop *e, const struct sasl_start *st);
int sasl_conv_continue(struct sasl_conv *v, struct event_loop *e, const char *response);
/* The client said "*": the request is dropped with the connection. */
void sasl_conv_abort(struct sasl_conv *v);

/* milter_hooks.c: the local address of the client's connection fd ("192.0.2.1", "::1") for cleanup's
 * milters ({daemon_addr}); -EAFNOSUPPORT for a unix socket. */
int smtpd_server_address(int fd, char *out, size_t size);
/* This service's smtpd_milters (a listener's -o included), passed to cleanup with every message: "" none. */
const char *smtpd_milters_value(struct config *c);
/* Whether cleanup's milters judge each RCPT: smtpd_milters set and receive_override_options without
 * no_milters. */
bool smtpd_milters_judge_rcpt(struct config *c, const char *receive_override);
