/* submit.h: shared rules of the local submission and queue tools: who may submit, which config dirs count.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "buf.h"

struct config;

/* sysexits.h values the tools exit with, as Postfix's do. */
#define SUBMIT_EX_USAGE    64
#define SUBMIT_EX_DATAERR  65
#define SUBMIT_EX_NOINPUT  66
#define SUBMIT_EX_NOUSER   67
#define SUBMIT_EX_SOFTWARE 70
#define SUBMIT_EX_OSERR    71
#define SUBMIT_EX_IOERR    74
#define SUBMIT_EX_TEMPFAIL 75
#define SUBMIT_EX_NOPERM   77
#define SUBMIT_EX_CONFIG   78

/* Elements of one access list (authorized_submit_users, ...), including those read from /file elements. */
#define SUBMIT_LIST_MAX 1024
/* A "/file" element of such a list is read up to this size. */
#define SUBMIT_LIST_FILE_MAX (1024u * 1024)

/* Look name up in the table "type:name" spec: 1 found, 0 not found, <0 the table failed. */
typedef int (*submit_lookup_fn)(const char *spec, const char *name, void *userdata);

/*
 * Postfix's list semantics for a user name: elements in order, the first one that matches decides; "!elem"
 * negates (a match denies); "type:table" matches when the table has the name as a key; any other element
 * is a user name compared without regard to case. No match, or an empty list, denies. Pure apart from
 * lookup. 1 allowed, 0 denied, <0 a table failed (*ret_failed names the element).
 */
int submit_list_match(char *const *elems, size_t n, const char *user, submit_lookup_fn lookup,
                      void *userdata, const char **ret_failed);

/*
 * submit_list_match over a parameter value (list syntax), with real tables (dict_open) and /file
 * elements read from disk. Same returns; *ret_err (malloc'd) says what failed.
 */
int submit_access_check(const char *list_value, const char *user, char **ret_err);

/* The login name of uid, or "unknown" when it has none; malloc'd. */
char *submit_user_name(uid_t uid);

/*
 * sendmail's and postdrop's gate: exit with EX_TEMPFAIL unless user (uid) is in cfg's
 * authorized_submit_users, logging "User NAME(UID) is not allowed to submit mail" as Postfix does.
 */
void submit_require_authorized(struct config *cfg, const char *user, uid_t uid);

/*
 * The default configuration directory: POSTD_CONFIG_DIR, or $POSTD_DEFAULT_CONFIG_DIR for tests. The
 * variable is read with secure_getenv(), so a set-gid postdrop never honours it.
 */
const char *submit_default_config_dir(void);

/* "DIR/main.cf" and "DIR/" name DIR; anything else is returned as given. malloc'd. */
char *submit_config_dir_from_arg(const char *arg);

/*
 * May an unprivileged process use config_dir? True for the default directory and for one listed in the
 * default main.cf's alternate_config_directories or multi_instance_directories. 1 yes, 0 no, <0 the
 * default main.cf could not be read.
 */
int submit_config_dir_allowed(const char *config_dir);

/*
 * The config of a set-gid tool (postdrop, postqueue): -c DIR (dir_arg, may be NULL), else
 * $MAIL_CONFIG, else the default; a non-root caller's directory must be listed in the default
 * main.cf (submit_config_dir_allowed). Every failure is fatal with Postfix's wording.
 */
struct config *submit_load_config(const char *dir_arg);
/*
 * First thing in main() of sendmail, postdrop and postqueue: fds 0-2 that the caller closed are opened
 * on /dev/null, and the environment keeps only TZ, MAIL_CONFIG and the locale (plus postd's own
 * POSTD_LOG and POSTD_DEFAULT_CONFIG_DIR when not running set-gid).
 */
void submit_harden_process(void);
/* For a caller other than root: the config directory and its main.cf must be no symbolic link and not
 * world-writable (exits with the reason otherwise). */
void submit_check_config_paths(const char *config_dir);

/* Connect to the unix socket at path and write one byte (a wakeup); 0 or a negative errno. */
int submit_trigger(const char *path, int timeout_ms);

/* Log "prog: fatal: ..." (log.h) and exit with status (msg_fatal always exits 1). */
_noreturn_ void submit_fatal(int status, const char *fmt, ...) _printf_(2, 3);

/*
 * Addresses kept from one header value or argument: one more than a message may have
 * (MAILDROP_MAX_RECIPIENTS), so that a longer list is refused by the caller's count, never cut short.
 */
#define SUBMIT_ADDRS_MAX 10001
#define SUBMIT_ADDR_MAX  2048

/*
 * Extract the addresses of an RFC 5322 address list ("A <a@x>, b@y (Bob), grp: c@z;"): route-addrs in
 * angle brackets win over the surrounding phrase, comments and quoted phrases are skipped, group names are
 * dropped. Each address (without its angle brackets) is appended to out. Pure and bounded: at most
 * SUBMIT_ADDRS_MAX addresses, longer ones than SUBMIT_ADDR_MAX are skipped. Returns how many were added.
 */
size_t submit_extract_addresses(const char *text, size_t len, struct strv *ret);

/*
 * sendmail -t: walk the header section of msg (LF line ends), append the addresses of To:, Cc: and Bcc:
 * (Resent-To/Cc/Bcc instead when any Resent- header is there) to rcpts, and write the message to out with
 * every Bcc: / Resent-Bcc: header (continuation lines included) removed. Pure.
 */
void submit_extract_header_rcpts(const char *msg, size_t len, struct strv *rcpts, struct buf *out);
