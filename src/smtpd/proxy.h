/* proxy.h: smtpd_proxy_filter: each mail transaction goes over SMTP to a before-queue filter, not to cleanup. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include "event.h"

#include "config.h"

/* The one reply a client sees for any trouble with the filter: details go to the log only. */
#define PROXY_FAILED_REPLY "451 4.3.0 Error: queue file write error"
/* XFORWARD command lines stay within this length (RFC 5321's 512, as Postfix does). */
#define PROXY_XFORWARD_LINE_MAX 512
/* Content queued for the filter but not yet written; reading the client pauses above this. */
#define PROXY_BACKLOG_MAX (256u * 1024)

struct session;

/* smtpd_proxy_filter and friends, read once at start; shared by every session of the process. */
struct smtpd_proxy_cfg {
        char *name; /* the endpoint as configured, for logs: "127.0.0.1:10024" */
        struct sockaddr_storage addr;
        socklen_t addr_len;
        char *ehlo;            /* smtpd_proxy_ehlo */
        long long timeout_sec; /* smtpd_proxy_timeout */
        bool speed_adjust;     /* smtpd_proxy_options: connect only once the message is complete */
};

/*
 * Parse smtpd_proxy_filter: "host:port", "inet:host:port", "[host]:port", ":port" or "port" (the local
 * host), "unix:path" (relative to queue_dir). Names are resolved here, once, before the sandbox. *ret stays
 * NULL when the parameter is empty; *err (malloc'd) names the parameter, the value and the fix.
 */
int smtpd_proxy_cfg_new(struct config *c, const char *queue_dir, struct smtpd_proxy_cfg **ret,
                        char **ret_error);
void smtpd_proxy_cfg_free(struct smtpd_proxy_cfg *cfg);
/* The filter is reached over TCP (smtpd then needs the "connect" call group). */
bool smtpd_proxy_cfg_inet(const struct smtpd_proxy_cfg *cfg);

/* What the session knows of its client: XFORWARD's attributes and the Received: header's fields. */
struct proxy_client {
        const char *name; /* "unknown" when not known */
        const char *addr; /* "unknown" when not known */
        int port;
        const char *helo;        /* NULL before HELO/EHLO */
        const char *proto;       /* "ESMTP", "SMTP", "ESMTPSA"... */
        const char *tls;         /* NULL without TLS */
        const char *auth_sender; /* NULL: no "(Authenticated sender: ...)" line */
        const char *myhostname;
};

struct proxy_ops {
        /* The filter's reply to the pending step, as "NNN text" (lines joined by "\n"), or PROXY_FAILED_REPLY
         * once the filter failed (already logged). */
        void (*replied)(struct session *s, const char *reply);
        /* Content backlog drained below PROXY_BACKLOG_MAX: the session may read again. */
        void (*drained)(struct session *s);
};

struct proxy;

/*
 * Connect (non-blocking) to the filter, take its greeting, send EHLO and XFORWARD (the attributes it
 * announces), then mail_cmd ("MAIL FROM:<x> ..."), with mail_dsn (" RET=FULL ENVID=...", or "") appended
 * when the filter announces DSN; the reply to that comes through ops->replied. <0 (a warning logged naming
 * the filter and the error) when no connection could even be started.
 */
int proxy_open(struct event_loop *e, const struct smtpd_proxy_cfg *cfg, const struct proxy_client *cl,
               const char *mail_cmd, const char *mail_dsn, const struct proxy_ops *ops,
               struct session *owner, struct proxy **ret);
/* The filter announced this EHLO keyword ("DSN"); only valid once the MAIL reply came. */
bool proxy_has_ext(const struct proxy *p, const char *keyword);
/* Send one command ("RCPT TO:<x>", "DATA"); its reply comes through ops->replied. <0: the filter failed. */
int proxy_command(struct proxy *p, const char *cmd);
/* Append the Received: header smtpd writes for a message it does not queue itself. */
void proxy_received_header(struct proxy *p, const struct proxy_client *cl, const char *single_rcpt);
/* Message content: one line or a part of it (partial: no line end yet); dot-stuffed, CRLF line ends. */
void proxy_content(struct proxy *p, const char *line, size_t len, bool partial);
/* The final dot; the filter's reply comes through ops->replied. <0: the filter failed. */
int proxy_end(struct proxy *p);
bool proxy_backlogged(const struct proxy *p);
/* End the transaction: QUIT when the connection is sound, then close. NULL is fine. */
void proxy_close(struct proxy *p);
/* "MAIL FROM", "RCPT TO", "DATA", "END-OF-MESSAGE"... for the log. */
const char *proxy_filter_name(const struct proxy *p);

/*
 * smtpd_proxy_options = speed_adjust: smtpd answers MAIL, RCPT and DATA itself (after its own checks) and
 * keeps the transaction, the content in a memory file bounded by message_size_limit; at the final dot it
 * connects and replays it all. The filter's first refusal, or its reply to the final dot, is the client's.
 */
struct proxy_replay;
/* <0 (logged) when no memory file can be had. */
int proxy_replay_new(const char *mail_cmd, const char *mail_dsn, struct proxy_replay **ret);
void proxy_replay_free(struct proxy_replay *r);
/* One accepted recipient: the command, and its DSN parameters for a filter that announces DSN. */
void proxy_replay_rcpt(struct proxy_replay *r, const char *cmd, const char *dsn);
void proxy_replay_received_header(struct proxy_replay *r, const struct proxy_client *cl,
                                  const char *single_rcpt);
void proxy_replay_content(struct proxy_replay *r, const char *line, size_t len, bool partial);
/*
 * The final dot: connect and replay; r is the proxy's from now on (freed with it, or here on failure). The
 * outcome comes through ops->replied once. <0 (logged) when nothing could be started.
 */
int proxy_open_replay(struct event_loop *e, const struct smtpd_proxy_cfg *cfg, const struct proxy_client *cl,
                      struct proxy_replay *r, const struct proxy_ops *ops, struct session *owner,
                      struct proxy **ret);
