/* milter.h: cleanup's milter client (smtpd_milters, non_smtpd_milters): settings, connections, the
 * per-message conversation, and the changes the filters ask for (docs/CONTENT_INSPECTION.md, "Milters"). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "config.h"
#include "milter_spec.h"

/* The stages that carry macros, in protocol order. */
enum milter_stage {
        MILTER_STAGE_CONNECT,
        MILTER_STAGE_HELO,
        MILTER_STAGE_MAIL,
        MILTER_STAGE_RCPT,
        MILTER_STAGE_DATA,
        MILTER_STAGE_EOH,
        MILTER_STAGE_EOM,
        _MILTER_STAGE_MAX,
};

struct milter_conf {
        struct milter_spec *smtpd, *non_smtpd;
        size_t n_smtpd, n_non_smtpd;
        struct strv macros[_MILTER_STAGE_MAX]; /* milter_*_macros: the names each stage sends */
        char *daemon_name;                     /* milter_macro_daemon_name */
        char *v;                               /* milter_macro_v */
        struct milter_spec defaults;           /* milter_*_timeout, milter_default_action, milter_protocol */
        char *smtpd_text;                      /* smtpd_milters as cleanup's main.cf has it */
};

/* milter_conf.c: read every milter_* parameter. A bad milter is logged (naming the fix) and left out. */
void milter_conf_init(struct milter_conf *mc, struct config *cfg);
void milter_conf_done(struct milter_conf *mc);
/* Whether any filter is reached over TCP (cleanup then needs the "cleanup-milter" seccomp role): in
 * main.cf, or in a master.cf -o smtpd_milters / non_smtpd_milters of some service. */
bool milter_conf_needs_inet(const struct milter_conf *mc, struct config *cfg);
/* A milter list as a service's -o smtpd_milters gives it (smtpd passes its value with each message):
 * *ret is mc's own list when the text is main.cf's, else a new one for milter_specs_free(). */
void milter_specs_for(const struct milter_conf *mc, const char *text, struct milter_spec **ret,
                      size_t *ret_n, bool *ret_owned);
void milter_specs_free(struct milter_spec *v, size_t n);

/* milter_conn.c: one connection, every wait bounded. */
/* Connect as the spec says; a failure is logged as Postfix does ("connect to Milter service ..."). */
int milter_connect(const struct milter_spec *sp, int *ret_fd);
/* Send all of out within timeout_ms. 0, -ETIMEDOUT, or another negative errno. */
int milter_send_all(int fd, const struct buf *out, int timeout_ms);
/* Read one whole packet into in (from its start) within timeout_ms; *ret_len is its length.
 * -ETIMEDOUT, -ECONNRESET on EOF, -EMSGSIZE for an oversized one. */
int milter_read_packet(int fd, struct buf *in, int timeout_ms, size_t *ret_len);
/* Drop the first n bytes of in (the packet just handled). */
void milter_consume(struct buf *in, size_t n);

/* What the SMTP client (or the local submission) was, for the connect command and the macros. */
struct milter_facts {
        const char *queue_id;
        const char *myhostname; /* macro j */
        const char *daemon_name, *daemon_addr, *v;
        const char *client_name, *client_addr, *client_port, *client_ptr;
        const char *helo;
        const char *tls; /* the envelope's "tls" text: "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384" */
        const char *auth_type, *auth_authen;
        const char *sender;   /* as the client gave it; "" for <> */
        const char *rcpt;     /* the recipient of the RCPT stage */
        const char *protocol; /* SMTP, ESMTP, ... */
        bool local;           /* a local submission (non_smtpd_milters) */
};

/* milter_macros.c: a macro's value for these facts (malloc'd), or NULL when it has none (then it is not
 * sent). */
char *milter_macro_value(const struct milter_facts *f, const char *name);

/* The outcome of the conversation so far. */
struct milter_verdict {
        int status;   /* 0 go on; 4 or 5: the message is refused with dsn and text */
        int code;     /* the SMTP code: a replycode's own (554, 421...), else 550 or 451 */
        char dsn[16]; /* "5.7.1" */
        char *text;   /* the reply's text after code and dsn */
        bool discard; /* accepted, then dropped */
        bool hold;    /* quarantine: into hold/ */
        char *hold_reason;
        const char *stage; /* "CONNECT", "RCPT", "END-OF-MESSAGE", ... for the log */
};

/* A header change asked for at end of message, applied in order. */
struct milter_hdr_edit {
        char op; /* MILTER_REPLY_ADDHEADER, _INSHEADER, _CHGHEADER */
        uint32_t index;
        char *name, *value; /* value with LF line ends; CHGHEADER with "" deletes */
};

struct milter_edits {
        struct milter_hdr_edit *hdrs;
        size_t n_hdrs, cap_hdrs;
        struct strv add_rcpts, del_rcpts;
        char *new_sender; /* SMFIR_CHGFROM: without angle brackets */
        int body_fd;      /* -1, or an unlinked file with the replacement body (LF line ends) */
        bool body_cr;     /* the replacement's last byte was a CR (its LF may follow in the next piece) */
};

struct milter_run;

/* milter_run.c: the conversation of one message with every filter of its list. */
/* Connect to each filter and negotiate; dir_fd is where a replacement body's temporary file goes. */
struct milter_run *milter_run_new(const struct milter_conf *mc, const struct milter_spec *specs, size_t n,
                                  const struct milter_facts *facts, int dir_fd);
void milter_run_free(struct milter_run *r);
/* connect, helo, mail: 0 to go on, else the verdict says what happened. */
int milter_run_envelope(struct milter_run *r, const char *sender, const char *const *params,
                        size_t n_params);
/* One recipient as the client gave it. */
int milter_run_rcpt(struct milter_run *r, const char *rcpt);
/* RCPT asked about as the client gives it: *status 0, or 4/5 with dsn and *text (malloc'd). A refusal of
 * this recipient leaves the conversation going; a refusal at an earlier stage answers every recipient. */
void milter_run_rcpt_check(struct milter_run *r, const char *rcpt, int *status, int *code, char dsn[16],
                           char **text);
/* The message as written to the queue file (header block, blank line, body), in pieces. */
int milter_run_content(struct milter_run *r, const char *data, size_t len);
/* End of message: the final verdict and the edits. */
int milter_run_end(struct milter_run *r);
struct milter_verdict *milter_run_verdict(struct milter_run *r);
struct milter_edits *milter_run_edits(struct milter_run *r);
bool milter_edits_any(const struct milter_edits *e);

/* milter_edit.c: rewrite the content of a queue file as the edits say. src is the old content (header
 * block, blank line, body) at offset 0 of src_fd; each piece of the new content goes to emit. The header
 * block is held in memory (it is bounded by header_size_limit), the body streams across. */
typedef int (*milter_emit_fn)(void *userdata, const void *data, size_t len);
int milter_edit_content(int src_fd, const struct milter_edits *e, size_t header_max, milter_emit_fn emit,
                        void *userdata);
/* An unlinked scratch file in dir_fd (O_TMPFILE, or a temporary name removed at once). */
int milter_scratch_open(int dir_fd);
/* Copy len bytes at off of src to the end of dst. */
int milter_copy_range(int src, off_t off, uint64_t len, int dst);
