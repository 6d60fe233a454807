/* queue.h: the queue directory: layout, durable creation of queue files (group commit), state changes,
 * recovery. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "qfile.h"
#include "queue_id.h"

/* Postfix's subdirectories of queue_directory. */
enum queue_name {
        QUEUE_INCOMING,
        QUEUE_ACTIVE,
        QUEUE_DEFERRED,
        QUEUE_HOLD,
        QUEUE_CORRUPT,
        QUEUE_BOUNCE,
        QUEUE_DEFER,
        QUEUE_TRACE,
        QUEUE_MAILDROP,
        QUEUE_PUBLIC,
        QUEUE_PRIVATE,
        QUEUE_PID,
        QUEUE_SAVED,
        QUEUE_FLUSH,
        _QUEUE_MAX,
};

const char *queue_name_to_string(enum queue_name n);
/* The enum value, or -EINVAL. */
int queue_name_from_string(const char *s);

/* Largest queue file a reader loads into memory. */
#define QUEUE_MAX_FILE_SIZE ((uint64_t)QFILE_MAX_CONTENT_LEN + 64 * 1024 * 1024)

/* Prefix of the names of files still being written in incoming/; never a valid queue ID. */
#define QUEUE_TMP_PREFIX ".tmp."

/* Who owns what. Arguments rather than account lookups, so that tests can use any ids. */
struct queue_owners {
        uid_t mail_owner;   /* $mail_owner: every queue subdirectory */
        gid_t mail_group;   /* $mail_owner's group */
        gid_t setgid_group; /* $setgid_group: maildrop (1730) and public (710) */
        uid_t root_uid;     /* queue_directory itself and pid/ */
        gid_t root_gid;
};

/*
 * Create queue_dir (its parent must exist) and every subdirectory that is missing, then set owner, group
 * and mode of each as Postfix does, also on those that existed. Refuses to follow symbolic links.
 */
int queue_layout_create(const char *queue_dir, const struct queue_owners *o);

/*
 * Check an existing layout; each problem found is one line appended to problems, such as
 * "/var/spool/postfix/maildrop: mode 0755, expected 1730". Returns the number of problems, or a negative
 * errno when queue_dir itself cannot be opened.
 */
int queue_layout_check(const char *queue_dir, const struct queue_owners *o, struct strv *problems);

/* An open queue directory: one descriptor per message queue, so that every operation is *at() based. */
struct queue;

/* -ENOENT when a message queue directory is missing, -EXDEV when they are not on one file system. */
int queue_open(const char *queue_dir, struct queue **ret);
void queue_close(struct queue *q);
const char *queue_directory(const struct queue *q);
/* Descriptor of a message queue (incoming, active, deferred, hold, corrupt, maildrop, saved), else -1. */
int queue_dirfd(const struct queue *q, enum queue_name n);
/*
 * Path of message id in queue n, relative to queue_directory ("deferred/3F1A2B4C5D"). This module is the
 * one place that knows where a queue file lives (hash_queue_depth will change it, not its callers).
 */
char *queue_path(const struct queue *q, enum queue_name n, const char *id);

/* ---- writing: create, write + fsync, then commit (rename + one directory fsync for a batch) ---- */

enum {
        QUEUE_SYNC = 1 << 0, /* queue_move, queue_remove: fsync the directories involved before returning */
        QUEUE_NOSYNC = 1 << 1, /* queue_file_write: leave the file's fdatasync to queue_file_sync() */
};

struct queue_file;

/*
 * Create a new file in incoming/ under a temporary name (O_EXCL) and assign its queue ID from its inode.
 * The ID is known before the content is written (cleanup puts it in the Received: header).
 */
int queue_file_create(struct queue *q, struct queue_file **ret);
const char *queue_file_id(const struct queue_file *f);
int queue_file_fd(const struct queue_file *f);
/*
 * Encode m, write it with one writev() and fdatasync() the file. The file is not yet part of the queue.
 * With QUEUE_NOSYNC the fdatasync is left to queue_file_sync(), so that a caller holding several finished
 * files can write them all before syncing them (cheaper on ext4: the first sync's journal commit carries the
 * others' metadata).
 */
int queue_file_write(struct queue_file *f, const struct qfile_msg *m, unsigned flags);
int queue_file_sync(struct queue_file *f);
/* Start writing a finished file's data to the disk without waiting (sync_file_range): a batch whose files
 * all started before the first queue_file_sync() shares the disk's queue instead of one write after the
 * other. Makes nothing durable by itself; a failure is left for queue_file_sync() to report. */
void queue_file_start_write(struct queue_file *f);
/*
 * The same file written as the content arrives, so that a writer never holds a whole message: begin
 * writes everything before the content (m->content is ignored), append writes content at the end of
 * what is there, finish writes the content's length and the end record (then fdatasync unless
 * QUEUE_NOSYNC). Only a finished file can be committed; a failed append leaves the file unusable
 * (queue_file_free() removes it).
 */
int queue_file_begin(struct queue_file *f, const struct qfile_msg *m);
int queue_file_append(struct queue_file *f, const void *data, size_t len);
int queue_file_finish(struct queue_file *f, unsigned flags);
/*
 * Before queue_file_finish(): where the streamed content starts in the file and how long it is so far
 * (cleanup copies it aside when a milter edits the message).
 */
int queue_file_content_range(const struct queue_file *f, off_t *ret_off, uint64_t *ret_len);
/*
 * Before queue_file_finish(): drop everything written (the file keeps its inode, so its queue ID), so
 * that queue_file_begin() can start again with another envelope. The name is still temporary: no reader
 * and no recovery ever sees the emptied file as a message.
 */
int queue_file_restart(struct queue_file *f);
/*
 * Before the commit: set every recipient's status slot of a file written with queue_file_begin() (the
 * slots are outside the checksum), then fdatasync. cleanup uses it for local mail that content checks
 * reject: the message is queued with its recipients bounced, so that the sender is notified.
 */
int queue_file_mark_all(struct queue_file *f, enum qfile_rcpt_state state, uint64_t done_usec,
                        const char *dsn_status);
/* Result of this file in the last queue_commit_batch(): 0 once it is durably in the queue. */
int queue_file_result(const struct queue_file *f);
bool queue_file_committed(const struct queue_file *f);

/*
 * The group commit: rename each written file in incoming_fd from its temporary name to its queue ID, then
 * fsync the directory ONCE for all of them. Files not yet written and synced fail with -EINVAL. Each file's
 * own outcome is queue_file_result(); a file whose result is 0 is durable and may be acknowledged ("250").
 * Returns the number of committed files, or a negative errno when the directory fsync failed (then no file
 * is committed: each renamed file is removed again, best effort, and none may be acknowledged).
 */
int queue_commit_batch(int incoming_fd, struct queue_file *const *files, size_t n);
/* The commit puts f into hold/ instead of incoming/ (header_checks HOLD): qmgr never sees it. */
void queue_file_set_hold(struct queue *q, struct queue_file *f);
/* queue_commit_batch() of one file; 0 or the file's error. */
int queue_file_commit(struct queue *q, struct queue_file *f);
/* Close f; an uncommitted file is unlinked (never acknowledged, so nothing is lost). NULL is allowed. */
void queue_file_free(struct queue_file *f);

/* ---- state changes and readers ---- */

/* Move id from one queue to another by rename, never replacing an existing file (-EEXIST). */
int queue_move(struct queue *q, const char *id, enum queue_name from, enum queue_name to, unsigned flags);
/* Remove id from queue n (after the last recipient is done). */
int queue_remove(struct queue *q, const char *id, enum queue_name n, unsigned flags);
/* Open id in queue n (O_RDONLY or O_RDWR), never following a symbolic link. */
int queue_open_file(struct queue *q, const char *id, enum queue_name n, int flags, int *ret_fd);
/*
 * For a delivery agent: open id in queue n read-write, read and decode it, and lock (an OFD
 * write lock, held until the descriptor is closed) only the status slots of the recipients at positions
 * idx[0..n_idx) (positions past the end are ignored). Deliveries of other recipients of the same message
 * (another next hop, another batch) go on in parallel, in this process or another; a second delivery of
 * the same recipient (an old agent still finishing after a master restart) gets -EBUSY: defer and retry
 * later. The file is read again after the locks are taken, so a slot marked meanwhile is seen as done.
 * On success the caller owns *ret_fd, *ret_data and *ret_msg (which points into *ret_data).
 */
int queue_open_for_delivery(struct queue *q, const char *id, enum queue_name n, const size_t *idx,
                            size_t n_idx, int *ret_fd, char **ret_data, size_t *ret_len,
                            struct qfile_msg *ret_msg);
/* Read a whole queue file from fd (at most QUEUE_MAX_FILE_SIZE) into a malloc'd buffer. */
int queue_read_fd(int fd, char **ret_data, size_t *ret_len);

/*
 * Record in place that recipient r (as decoded from the file open on fd) is done: one pwrite() of its
 * status slot, then fdatasync() (not with QUEUE_NOSYNC: the caller syncs several marks at once). The rest of the file is untouched, so a partly delivered message needs
 * no rewrite and a crash leaves either the old or the new slot (the slot never spans a disk sector).
 */
int queue_mark_rcpt(int fd, const struct qfile_rcpt *r, enum qfile_rcpt_state state, uint64_t done_usec,
                    const char *dsn_status, unsigned flags);
/* Write r's status slot as r says (any state, the attempted one included: qfile_encode_rcpt_slot), in place
 * like queue_mark_rcpt(); fdatasync() only with sync, so that a caller can make several durable at once. */
int queue_write_rcpt_slot(int fd, const struct qfile_rcpt *r, bool sync);
/* Re-read recipient r's status slot from the file open on fd into r (state, done_usec, dsn_status):
 * what a delivery agent recorded before it died without reporting. -EBADMSG for a damaged slot. */
int queue_read_rcpt_state(int fd, struct qfile_rcpt *r);

/* ---- recovery at start ---- */

struct queue_recover_stats {
        unsigned removed;  /* half-written files (temporary names) removed from incoming */
        unsigned requeued; /* active -> incoming (active is the scheduler's memory; it restarts empty) */
        unsigned complete; /* complete files found in incoming (and moved on to complete_to) */
        unsigned corrupt;  /* undecodable files moved to corrupt/ */
        unsigned skipped;  /* foreign names or newer format versions, left alone with a warning */
};

/*
 * Run before any daemon touches the queue: move every message in active/ back to incoming/, remove the
 * half-written files in incoming/, check every other file there (whole decode, checksum) and move the
 * complete ones to complete_to (QUEUE_INCOMING leaves them in place) and the broken ones to corrupt/.
 * A file named by a queue ID was renamed only after it was written and fsync'd, so one that does not
 * decode was acknowledged: it is kept in corrupt/ for the operator, never deleted. Logs what it does.
 */
int queue_recover(struct queue *q, enum queue_name complete_to, struct queue_recover_stats *ret);
