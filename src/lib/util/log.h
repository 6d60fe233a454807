/* log.h: the one logging module of postd; Postfix's wording, to the journal, a file or stderr. */
#pragma once

#include <stdarg.h>

#include "macro.h"

/*
 * Where log lines go. Daemons pick the backend once at start (log_setup_daemon), command-line tools
 * print "prog: warning: text" on stderr (log_setup_command). Lines keep Postfix's wording:
 * info lines carry no prefix, the others "warning: ", "error: ", "fatal: ", "panic: ".
 */
enum log_backend {
        LOG_BACKEND_COMMAND, /* stderr, "prog: level: text" */
        LOG_BACKEND_STREAM,  /* stderr, "Mon DD HH:MM:SS host tag[pid]: text" */
        LOG_BACKEND_FILE,    /* maillog_file, same format as STREAM */
        LOG_BACKEND_JOURNAL, /* the native journal protocol (journal_send.c) with SYSLOG_IDENTIFIER=tag and POSTFIX_* fields */
};

enum log_level { LOG_LEVEL_INFO, LOG_LEVEL_WARNING, LOG_LEVEL_ERROR, LOG_LEVEL_FATAL, LOG_LEVEL_PANIC };

/* Optional structured fields of one line; NULL members are left out. */
struct log_fields {
        const char *queue_id;   /* POSTFIX_QUEUE_ID */
        const char *status;     /* POSTFIX_STATUS (sent, deferred, bounced...) */
        const char *dsn;        /* POSTFIX_DSN */
        const char *relay;      /* POSTFIX_RELAY */
        const char *catalog_id; /* MESSAGE_ID: a 128-bit id from the shipped journal catalog */
};

/* For a command-line tool: "postconf: fatal: ..." on stderr. */
void log_setup_command(const char *progname);

/*
 * For a daemon of instance syslog_name (e.g. "postfix-dept1") running service (e.g. "smtpd"):
 * tag "postfix-dept1/smtpd". The backend comes from $POSTD_LOG ("journal", "stderr",
 * "file:/path"); without it: the journal when systemd started us ($JOURNAL_STREAM or
 * $INVOCATION_ID set), else maillog_file when non-empty, else stderr.
 */
void log_setup_daemon(const char *syslog_name, const char *service, const char *maillog_file);

/*
 * For a command-line tool once its configuration is known (sendmail, postdrop): besides stderr, send
 * each line tagged "<syslog_name>/<prog>" to the system log as Postfix's commands do, so that refusals
 * show up in the journal and the maillog next to the daemons' lines. The destination follows
 * $POSTD_LOG (read with secure_getenv: ignored by set-gid programs), else the journal when its socket
 * exists, else maillog_file when it already exists and is writable. Without any, stderr only.
 */
void log_command_to_system(const char *syslog_name, const char *maillog_file);

enum log_backend log_get_backend(void);
const char *log_tag(void);
const char *log_instance(void);

void msg_info(const char *fmt, ...) _printf_(1, 2);
void msg_warn(const char *fmt, ...) _printf_(1, 2);
void msg_error(const char *fmt, ...) _printf_(1, 2);
_noreturn_ void msg_fatal(const char *fmt, ...) _printf_(1, 2);
_noreturn_ void msg_panic(const char *fmt, ...) _printf_(1, 2);
void msg_fields(enum log_level level, const struct log_fields *f, const char *fmt, ...) _printf_(3, 4);
void msg_vlog(enum log_level level, const struct log_fields *f, const char *fmt, va_list ap) _printf_(3, 0);
