/* ipc.h: postd's internal protocol over unix stream sockets: length-framed lists of named attributes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "macro.h"

/*
 * Wire format of one message (all integers big-endian):
 *
 *   u32 body_length                       body_length <= IPC_BODY_MAX
 *   body_length bytes of attributes, each:
 *     u8  name_length                     1..IPC_NAME_MAX, name bytes are [A-Za-z0-9_.-]
 *     name_length bytes of name
 *     u32 value_length                    value bytes are opaque (may contain NULs)
 *     value_length bytes of value
 *
 * A message holds at most IPC_ATTRS_MAX attributes. Names may repeat (e.g. one "rcpt" per
 * recipient); lookups return the first. Anything that breaks these rules is -EBADMSG, a body
 * longer than IPC_BODY_MAX is -EMSGSIZE: a peer sending it is dropped, never trusted further.
 */
#define IPC_HEADER_SIZE 4u
#define IPC_BODY_MAX    (4u * 1024 * 1024) /* a queue file record set or a recipient list fits */
#define IPC_ATTRS_MAX   4096u
#define IPC_NAME_MAX    64u

struct ipc_attr {
        char *name;  /* NUL-terminated */
        char *value; /* value_len bytes plus a terminating NUL, so text values are C strings */
        size_t value_len;
};

/* A message being built or one that was decoded; owns its attributes. */
struct ipc_msg {
        struct ipc_attr *attrs;
        size_t n_attrs;
        size_t cap_attrs;
        size_t body_len; /* encoded size of the attributes: each add checks the limit in O(1) */
};

#define IPC_MSG_INIT          \
        {                     \
                NULL, 0, 0, 0 \
        }

void ipc_msg_done(struct ipc_msg *m);
#define _cleanup_ipc_msg_ _cleanup_(ipc_msg_done)
/*
 * Builders: -EINVAL for a bad name, -E2BIG when the message would exceed a limit (the message is then
 * unchanged). Every result must be checked: a message silently missing attributes (recipients!) is
 * worse than one that is not sent.
 */
_warn_unused_ int ipc_msg_add(struct ipc_msg *m, const char *name, const void *value, size_t len);
_warn_unused_ int ipc_msg_add_str(struct ipc_msg *m, const char *name, const char *value);
_warn_unused_ int ipc_msg_add_int(struct ipc_msg *m, const char *name, long long value);
/* Drop the attributes from position n_attrs on: undoes a group of adds of which one failed. */
void ipc_msg_truncate(struct ipc_msg *m, size_t n_attrs);

/* One attribute to add: a name and len bytes of value. */
struct ipc_kv {
        const char *name;
        const void *value;
        size_t len;
};

/* Add all n attributes or none: 0, or the first failure's -E2BIG/-EINVAL with the message unchanged. */
_warn_unused_ int ipc_msg_add_group(struct ipc_msg *m, const struct ipc_kv *kv, size_t n);

/*
 * A list too long for one message (a message's recipients), sent as several: every message starts with
 * the same head attributes (e.g. req=rcpt) and holds whole groups (e.g. rcpt, orcpt, notify of one
 * recipient); a group never straddles two messages. send is called with each full message and once more
 * by ipc_batch_finish; its negative result stops the batch and is returned.
 */
typedef int (*ipc_batch_send_fn)(const struct ipc_msg *m, void *userdata);
struct ipc_batch {
        struct ipc_msg msg; /* being filled */
        const struct ipc_kv *head;
        size_t n_head;
        ipc_batch_send_fn send;
        void *userdata;
        size_t n_sent; /* messages sent so far */
};
/* head (not copied: it must outlive the batch) is checked here: 0 or -EINVAL/-E2BIG. */
_warn_unused_ int ipc_batch_init(struct ipc_batch *b, const struct ipc_kv *head, size_t n_head,
                                 ipc_batch_send_fn send, void *userdata);
/* Add a group, sending the message first when the group does not fit any more. -E2BIG when it does not
 * fit even in an empty message, or send's error. */
_warn_unused_ int ipc_batch_add(struct ipc_batch *b, const struct ipc_kv *group, size_t n);
/* Send what is left (nothing when no group was added since the last send), then free. */
_warn_unused_ int ipc_batch_finish(struct ipc_batch *b);
/* Free without sending (after a failure). */
void ipc_batch_done(struct ipc_batch *b);

/* First attribute named name, or NULL. */
const struct ipc_attr *ipc_msg_find(const struct ipc_msg *m, const char *name);
/* Its value as a C string; NULL when absent or when the value contains a NUL byte. */
const char *ipc_msg_get_str(const struct ipc_msg *m, const char *name);
/* Its value as a decimal integer: 0, -ENOENT when absent, -EINVAL when not a number. */
int ipc_msg_get_int(const struct ipc_msg *m, const char *name, long long *ret);

bool ipc_valid_name(const char *name, size_t len);

/* Append the framed message (header included) to out. -E2BIG when it exceeds IPC_BODY_MAX. */
_warn_unused_ int ipc_encode(const struct ipc_msg *m, struct buf *out);

/*
 * Pure decoder of one frame at the start of data. Returns 1 and fills *ret and *ret_consumed when a
 * whole frame is there, 0 when more bytes are needed, -EMSGSIZE or -EBADMSG when the bytes can never
 * form a valid message. *ret is only touched on success (free it with ipc_msg_done).
 */
int ipc_decode_frame(const void *data, size_t len, struct ipc_msg *ret, size_t *ret_consumed);
/* Decode a body without its length header (exactly len bytes). 0, or -EBADMSG / -EMSGSIZE. */
int ipc_decode_body(const void *body, size_t len, struct ipc_msg *ret);

/*
 * Blocking helpers for simple clients (tools, pickup's handoff): each waits at most timeout_ms in
 * total (-ETIMEDOUT after). fd may be blocking or not.
 */
int ipc_connect_unix(const char *path, int timeout_ms, int *ret_fd);
int ipc_send(int fd, const struct ipc_msg *m, int timeout_ms);
/* -ECONNRESET when the peer closes before a whole message arrived (also at a clean EOF). */
int ipc_recv(int fd, struct ipc_msg *ret, int timeout_ms);
/* Send a request and wait for the reply in one call. */
int ipc_call(int fd, const struct ipc_msg *req, struct ipc_msg *reply, int timeout_ms);
/*
 * ipc_call for a request whose outcome must be known (cleanup's {req=end}): when no reply came within
 * timeout_ms, send abort and wait up to timeout_ms more for the reply, which then says whether the peer
 * cancelled the request or completed it. -ETIMEDOUT only when neither came: the outcome is unknown.
 */
int ipc_call_definite(int fd, const struct ipc_msg *req, const struct ipc_msg *abort, struct ipc_msg *reply,
                      int timeout_ms);

/*
 * Non-blocking buffered connection for event loops: the owner watches fd (EPOLLIN always, EPOLLOUT
 * while ipc_conn_want_write() is true) and calls ipc_conn_read / ipc_conn_flush when it fires.
 */
struct ipc_conn {
        int fd; /* not owned: the caller closes it */
        struct buf in;
        struct buf out;
        size_t out_off; /* bytes of out already written */
        bool eof;       /* the peer closed its side */
};

void ipc_conn_init(struct ipc_conn *c, int fd);
void ipc_conn_done(struct ipc_conn *c); /* frees buffers; does not close fd */
/* Read what is available: 0 (possibly nothing new, check c->eof), or a negative errno. */
int ipc_conn_read(struct ipc_conn *c);
/* Take the next complete message out of the input: 1 got one, 0 none yet, <0 protocol error. */
int ipc_conn_next(struct ipc_conn *c, struct ipc_msg *ret);
/* Queue a message for sending; call ipc_conn_flush to push it out. */
_warn_unused_ int ipc_conn_queue(struct ipc_conn *c, const struct ipc_msg *m);
/* Write what the socket accepts: 0 all sent, -EAGAIN more is pending, other negative errno. */
int ipc_conn_flush(struct ipc_conn *c);
bool ipc_conn_want_write(const struct ipc_conn *c);
