/* local.h: the local delivery agent: aliases, .forward, :include:, mbox/Maildir/file/command delivery as the
 * recipient, forwarding to other hosts through cleanup. */
#pragma once

#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "delivery.h"
#include "delivery_request.h"
#include "mailbox_format.h"
#include "maps.h"
#include "qfile.h"
#include "queue.h"
#include "resolve.h"

/* Alias expansion: nesting depth and the number of final destinations of one recipient. */
#define ALIAS_DEPTH_MAX   20
#define ALIAS_TARGETS_MAX 1000
/* Members of one alias value ("a, b, /file, |cmd"). */
#define ALIAS_MEMBERS_MAX 10000
/* Received: headers counted at most (beyond hopcount_limit it is a loop anyway). */
#define LOCAL_HEADERS_SCAN_MAX 100000
/* Dotlock: attempts, pause between them, and the age after which a lock file is stale. */
#define LOCAL_DOTLOCK_ATTEMPTS    20
#define LOCAL_DOTLOCK_DELAY_USEC  (250 * USEC_PER_MSEC)
#define LOCAL_DOTLOCK_STALE_USEC  (500 * USEC_PER_SEC)
#define LOCAL_FCNTL_LOCK_ATTEMPTS 20
/* Longest reason text passed from a delivery child to its parent. */
#define LOCAL_REASON_MAX 480
/* Output of a command kept for the reason (the rest is read and dropped). */
#define LOCAL_COMMAND_OUTPUT_MAX 200
/* Largest .forward or :include: file read. */
#define LOCAL_LIST_FILE_MAX (256u * 1024)
/* Steps of cleanup's conversation when forwarding (the final one waits mail_proto_cleanup_timeout_ms). */
#define LOCAL_CLEANUP_STEP_USEC (30 * USEC_PER_SEC)

/* Where a destination was found: allow_mail_to_commands / allow_mail_to_files name these classes. */
enum local_class {
        LOCAL_CLASS_ALIAS = 1 << 0,
        LOCAL_CLASS_FORWARD = 1 << 1,
        LOCAL_CLASS_INCLUDE = 1 << 2,
};

struct local {
        struct config *cfg;
        struct queue *queue;
        struct maps *aliases; /* NULL when alias_maps could not be opened (then: defer) */
        uid_t alias_uid;      /* who file deliveries from aliases run as */
        gid_t alias_gid;
        struct resolve *resolve;
        char *myorigin, *home_mailbox, *spool_dir, *recipient_delimiter, *hostname;
        char *queue_dir, *mailbox_command, *luser_relay, *command_shell;
        struct strv forward_path;
        struct strv export_env; /* NAME=VALUE pairs from export_environment */
        long long hopcount_limit;
        long long command_time_limit; /* seconds */
        uint64_t mailbox_size_limit;  /* bytes; 0: none */
        int cleanup_timeout_ms;
        unsigned files_allowed, commands_allowed; /* enum local_class bits */
        uid_t default_uid;                        /* default_privs: deliveries on behalf of root */
        gid_t default_gid;
        int spawner_fd; /* spawn.c: the process that starts commands for us */
        pid_t spawner_pid;
        bool dotlock;
};

/* The same values as enum delivery_status: an outcome is recorded and reported as it is. */
enum local_result {
        LOCAL_SENT = DELIVERY_SENT,
        LOCAL_DEFERRED = DELIVERY_DEFERRED,
        LOCAL_BOUNCED = DELIVERY_BOUNCED
};

struct local_status {
        int result; /* enum local_result */
        char dsn[QFILE_MAX_DSN_STATUS_LEN + 1];
        char reason[LOCAL_REASON_MAX];
};

/* status.c */
void local_status_set(struct local_status *st, enum local_result result, const char *dsn, const char *fmt,
                      ...) _printf_(4, 5);
/* Fold one destination's outcome into a recipient's total: deferred over bounced over sent. */
void local_status_merge(struct local_status *total, const struct local_status *one, bool *first);

/* ---- alias.c ---- */

enum alias_kind { ALIAS_USER, ALIAS_FILE, ALIAS_COMMAND, ALIAS_INCLUDE, ALIAS_REMOTE };

struct alias_target {
        enum alias_kind kind;
        char *value; /* user name (folded), file path, command, include path, or address */
};

struct alias_list {
        struct alias_target *v;
        size_t n;
};

/* 1 found (*ret malloc'd), 0 not found, <0 table failure. */
typedef int (*alias_lookup_fn)(void *userdata, const char *key, char **ret);
/* 1 when the domain is delivered locally. */
typedef int (*alias_local_fn)(void *userdata, const char *domain);

/* Split an alias value into members: commas outside quotes, blanks trimmed, quotes removed. Pure. */
int alias_split(const char *value, struct strv *ret);

/*
 * Expand localpart (already folded) through lookup: recursion bounded by ALIAS_DEPTH_MAX, each name
 * expanded once, duplicates dropped, a name listed in its own alias delivered to as a user. A name
 * with no alias is itself the final user. Pure apart from the callbacks. 0, -ELOOP (too deep),
 * -E2BIG (too many destinations), or the lookup's error.
 */
int alias_expand(const char *localpart, const char *delimiter, alias_lookup_fn lookup,
                 alias_local_fn is_local, void *userdata, struct alias_list *ret);
void alias_list_done(struct alias_list *l);

/* The part before the first recipient_delimiter character ("user+ext" -> "user"); malloc'd. */
char *local_strip_extension(const char *localpart, const char *delimiter);

/* ---- mailbox.c: each runs in a child process with the recipient's (or default_privs') ids ---- */

/*
 * This recipient's attempt as the queue file records it (docs/QUEUE_FORMAT.md, "attempted"): what lets a
 * retry after a crash find the copy an earlier attempt wrote instead of writing it a second time.
 */
struct local_attempt {
        int qfd;                 /* the queue file, open read-write */
        struct qfile_rcpt *rcpt; /* its slot says QFILE_RCPT_ATTEMPTED with attempt_usec */
        size_t index;            /* the recipient's position in the file: part of the Maildir name */
        bool retry;              /* it was attempted before this request: look for that attempt's copy */
        bool *unsynced; /* the request's: slots written but not yet fdatasync'd (done before any copy) */
};

struct local_message {
        struct local_attempt *attempt; /* NULL when not recorded (a version 1 file): at least once */
        const char *queue_id;
        const char *sender; /* "" for <> */
        const char *rcpt;   /* Delivered-To: value */
        const char *content;
        size_t content_len;
        uint64_t arrival_usec;
};

/* Deliver to pw's mailbox (Maildir, home mbox or spool mbox per home_mailbox); *how is the log text. */
void mailbox_deliver_user(struct local *l, const struct local_message *m, const struct passwd *pw,
                          struct local_status *st, const char **how);
/* Append to a file (alias "/path") as uid/gid. */
void mailbox_deliver_file(struct local *l, const struct local_message *m, const char *path, uid_t uid,
                          gid_t gid, struct local_status *st);

/* ---- command.c ---- */

/* Who a command or file delivery runs as, and the account it describes. */
struct local_privs {
        uid_t uid;
        gid_t gid;
        const char *user; /* initgroups() with it; NULL: gid only */
        const char *home; /* the command's directory and HOME */
        const char *shell;
};

/*
 * Pipe the message to command (run by local_command_shell or /bin/sh -c) as p, with env (NAME=VALUE)
 * and its own process group, killed at command_time_limit. Exit status as sysexits: 0 sent, EX_TEMPFAIL
 * and EX_OSERR deferred, other sysexits and other statuses bounced, a signal or the time limit deferred;
 * the reason carries the command's output (bounded).
 */
void command_deliver(struct local *l, const struct local_message *m, const char *command,
                     const struct local_privs *p, char *const *env, struct local_status *st);

/* mailbox_size_limit (0: none): the largest file a delivery as the recipient may write or grow. */
void mailbox_set_size_limit(uint64_t bytes);
/* In a child about to write as the recipient (or run a command): RLIMIT_FSIZE, SIGXFSZ ignored. */
void local_limit_file_size(uint64_t bytes);

/* ---- spawn.c ---- */

/* Largest request to the spawner (command, account, environment) and its number of strings. */
#define SPAWN_MSG_MAX     (64u * 1024)
#define SPAWN_STRINGS_MAX 1024
/* How long a killed command's end is waited for. */
#define SPAWN_EXIT_WAIT_USEC (10 * USEC_PER_SEC)

/* Fork the spawner (from init, before the allow-list without execve is installed). -errno. */
int spawn_start(struct local *l);
/* Start "shell -c command" as p (never root: -EPERM) with env, stdin in and stdout/stderr out, in its own
 * process group. 0 with *ret_pid, or -errno (-E2BIG: the request is too large). */
int spawn_command(struct local *l, const char *shell, const char *command, const struct local_privs *p,
                  char *const *env, int in, int out, pid_t *ret_pid);
/* The descriptor that becomes readable when the command's end is reported. */
int spawn_fd(const struct local *l);
/* 1 with *ret_status (a wait status) once the command ended, 0 not yet, -errno when the spawner failed. */
int spawn_read_exit(struct local *l, int *ret_status);
/* After spawn_kill(): wait (bounded) for the end of the command; its wait status. */
int spawn_wait_exit(struct local *l);
/* Kill the last command's process group (its time limit). */
void spawn_kill(struct local *l);

/* The sysexits.h status's DSN code, text and whether it is a temporary failure. Pure. */
bool command_exit_status(int status, const char **ret_dsn, const char **ret_text);

/* ---- forward.c ---- */

/*
 * Read a .forward or :include: file as uid/gid (in a child, so that only what that user may read is
 * read). 0 with *ret_content (malloc'd) and the file's owner and mode; -ENOENT when there is none;
 * another negative errno when it cannot be read (*ret_why says why, malloc'd).
 */
int forward_read_file(const char *path, const struct local_privs *p, char **ret_content, uid_t *ret_owner,
                      mode_t *ret_mode, char **ret_why);

/* Look a macro name up: its value, or NULL when it has none. */
typedef const char *(*macro_lookup_fn)(void *userdata, const char *name);

/*
 * Expand $name, ${name} and $(name) in tmpl, and Postfix's ${name?text} (text when name has a value) and
 * ${name:text} (text when it has none). NULL when a plain macro has no value or an empty one (a
 * forward_path element such as .forward${recipient_delimiter}${extension} then does not apply). Pure.
 */
char *local_expand(const char *tmpl, macro_lookup_fn lookup, void *userdata);

/*
 * Queue a copy of the message to the addresses rcpts through cleanup: the original envelope sender,
 * "Delivered-To: delivered_to" before the original content, notify/orcpt of the original recipient.
 * 0 with *ret_id (malloc'd) once cleanup answered that it is durably queued; else a negative errno and
 * *ret_why (malloc'd).
 */
int forward_submit(struct local *l, const struct local_message *m, const struct qfile_rcpt *orig,
                   const struct strv *rcpts, const char *delivered_to, char **ret_id, char **ret_why);

/* ---- request.c ---- */

/* Serve one delivery request on fd (blocking), reply, and return. */
void local_serve(struct local *l, int fd);
