/* ipc.c: encoder, pure decoder, blocking and event-loop transports of postd's internal message protocol. */
#include "fileio.h"
#include "ipc.h"
#include "netaddr.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "alloc.h"

/* Least free input space per recv; the buffer doubles as content streams in, so large frames need few. */
#define IPC_READ_CHUNK (16u * 1024)
/* Bytes one attribute costs on the wire besides its name and value. */
#define ATTR_OVERHEAD (1u + 4u)

static uint32_t get_be32(const unsigned char *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_be32(unsigned char *p, uint32_t v)
{
        p[0] = (unsigned char)(v >> 24);
        p[1] = (unsigned char)(v >> 16);
        p[2] = (unsigned char)(v >> 8);
        p[3] = (unsigned char)v;
}

bool ipc_valid_name(const char *name, size_t len)
{
        if (len == 0 || len > IPC_NAME_MAX)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = name[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '-' || c == '.'))
                        return false;
        }
        return true;
}

void ipc_msg_done(struct ipc_msg *m)
{
        for (size_t i = 0; i < m->n_attrs; i++) {
                free(m->attrs[i].name);
                free(m->attrs[i].value);
        }
        free(m->attrs);
        *m = (struct ipc_msg)IPC_MSG_INIT;
}

static size_t attr_size(const struct ipc_attr *a)
{
        return ATTR_OVERHEAD + strlen(a->name) + a->value_len;
}

static void push_attr(struct ipc_msg *m, char *name, char *value, size_t len)
{
        if (m->n_attrs == m->cap_attrs) {
                m->cap_attrs = m->cap_attrs ? m->cap_attrs * 2 : 8;
                m->attrs = xrealloc(m->attrs, m->cap_attrs * sizeof *m->attrs);
        }
        m->attrs[m->n_attrs] = (struct ipc_attr){name, value, len};
        m->body_len += attr_size(&m->attrs[m->n_attrs]);
        m->n_attrs++;
}

void ipc_msg_truncate(struct ipc_msg *m, size_t n_attrs)
{
        while (m->n_attrs > n_attrs) {
                struct ipc_attr *a = &m->attrs[--m->n_attrs];
                m->body_len -= attr_size(a);
                free(a->name);
                free(a->value);
        }
}

static char *copy_value(const void *value, size_t len)
{
        char *v = xmalloc(len + 1);
        if (len)
                memcpy(v, value, len);
        v[len] = '\0';
        return v;
}

int ipc_msg_add(struct ipc_msg *m, const char *name, const void *value, size_t len)
{
        size_t name_len = strlen(name);
        if (!ipc_valid_name(name, name_len))
                return -EINVAL;
        if (m->n_attrs >= IPC_ATTRS_MAX || len > IPC_BODY_MAX ||
            m->body_len + ATTR_OVERHEAD + name_len + len > IPC_BODY_MAX)
                return -E2BIG;
        push_attr(m, xstrdup(name), copy_value(value, len), len);
        return 0;
}

int ipc_msg_add_str(struct ipc_msg *m, const char *name, const char *value)
{
        return ipc_msg_add(m, name, value, strlen(value));
}

int ipc_msg_add_int(struct ipc_msg *m, const char *name, long long value)
{
        char text[32];
        int n = snprintf(text, sizeof text, "%lld", value);
        return ipc_msg_add(m, name, text, (size_t)n);
}

int ipc_msg_add_group(struct ipc_msg *m, const struct ipc_kv *kv, size_t n)
{
        size_t mark = m->n_attrs;
        for (size_t i = 0; i < n; i++) {
                int r = ipc_msg_add(m, kv[i].name, kv[i].value, kv[i].len);
                if (r < 0) {
                        ipc_msg_truncate(m, mark);
                        return r;
                }
        }
        return 0;
}

int ipc_batch_init(struct ipc_batch *b, const struct ipc_kv *head, size_t n_head, ipc_batch_send_fn send,
                   void *userdata)
{
        *b = (struct ipc_batch){IPC_MSG_INIT, head, n_head, send, userdata, 0};
        int r = ipc_msg_add_group(&b->msg, head, n_head);
        if (r < 0)
                ipc_msg_done(&b->msg);
        return r;
}

static int batch_send(struct ipc_batch *b)
{
        int r = b->send(&b->msg, b->userdata);
        ipc_msg_truncate(&b->msg, b->n_head);
        if (r >= 0)
                b->n_sent++;
        return r;
}

int ipc_batch_add(struct ipc_batch *b, const struct ipc_kv *group, size_t n)
{
        int r = ipc_msg_add_group(&b->msg, group, n);
        if (r != -E2BIG || b->msg.n_attrs == b->n_head)
                return r;
        r = batch_send(b);
        if (r < 0)
                return r;
        return ipc_msg_add_group(&b->msg, group, n);
}

int ipc_batch_finish(struct ipc_batch *b)
{
        int r = b->msg.n_attrs > b->n_head ? batch_send(b) : 0;
        ipc_batch_done(b);
        return r;
}

void ipc_batch_done(struct ipc_batch *b)
{
        ipc_msg_done(&b->msg);
}

const struct ipc_attr *ipc_msg_find(const struct ipc_msg *m, const char *name)
{
        for (size_t i = 0; i < m->n_attrs; i++)
                if (streq(m->attrs[i].name, name))
                        return &m->attrs[i];
        return NULL;
}

const char *ipc_msg_get_str(const struct ipc_msg *m, const char *name)
{
        const struct ipc_attr *a = ipc_msg_find(m, name);
        if (!a || memchr(a->value, '\0', a->value_len))
                return NULL;
        return a->value;
}

int ipc_msg_get_int(const struct ipc_msg *m, const char *name, long long *ret)
{
        const char *s = ipc_msg_get_str(m, name);
        if (!s)
                return ipc_msg_find(m, name) ? -EINVAL : -ENOENT;
        if (*s == '\0' || strlen(s) > 20)
                return -EINVAL;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno != 0 || *end != '\0')
                return -EINVAL;
        *ret = v;
        return 0;
}

int ipc_encode(const struct ipc_msg *m, struct buf *out)
{
        size_t total = m->body_len;
        if (total > IPC_BODY_MAX)
                return -E2BIG;
        unsigned char hdr[IPC_HEADER_SIZE];
        put_be32(hdr, (uint32_t)total);
        buf_reserve(out, IPC_HEADER_SIZE + total);
        buf_append(out, hdr, sizeof hdr);
        for (size_t i = 0; i < m->n_attrs; i++) {
                const struct ipc_attr *a = &m->attrs[i];
                unsigned char len8 = (unsigned char)strlen(a->name), len32[4];
                buf_append(out, &len8, 1);
                buf_append(out, a->name, len8);
                put_be32(len32, (uint32_t)a->value_len);
                buf_append(out, len32, sizeof len32);
                buf_append(out, a->value, a->value_len);
        }
        return 0;
}

int ipc_decode_body(const void *body, size_t len, struct ipc_msg *ret)
{
        const unsigned char *p = body;
        struct ipc_msg m = IPC_MSG_INIT;
        size_t off = 0;

        if (len > IPC_BODY_MAX)
                return -EMSGSIZE;
        while (off < len) {
                if (m.n_attrs >= IPC_ATTRS_MAX)
                        goto bad;
                size_t name_len = p[off++];
                if (name_len > len - off || !ipc_valid_name((const char *)p + off, name_len))
                        goto bad;
                const unsigned char *name = p + off;
                off += name_len;
                if (len - off < 4)
                        goto bad;
                size_t value_len = get_be32(p + off);
                off += 4;
                if (value_len > len - off)
                        goto bad;
                push_attr(&m, xstrndup((const char *)name, name_len), copy_value(p + off, value_len),
                          value_len);
                off += value_len;
        }
        *ret = m;
        return 0;
bad:
        ipc_msg_done(&m);
        return -EBADMSG;
}

int ipc_decode_frame(const void *data, size_t len, struct ipc_msg *ret, size_t *ret_consumed)
{
        if (len < IPC_HEADER_SIZE)
                return 0;
        uint32_t body_len = get_be32(data);
        if (body_len > IPC_BODY_MAX)
                return -EMSGSIZE;
        if (len - IPC_HEADER_SIZE < body_len)
                return 0;
        int r = ipc_decode_body((const unsigned char *)data + IPC_HEADER_SIZE, body_len, ret);
        if (r < 0)
                return r;
        *ret_consumed = IPC_HEADER_SIZE + body_len;
        return 1;
}

int ipc_connect_unix(const char *path, int timeout_ms, int *ret_fd)
{
        struct sockaddr_un sa;
        socklen_t sa_len;
        int r = unix_address(path, &sa, &sa_len);
        if (r < 0)
                return r;

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sa_len) < 0) {
                if (errno != EINPROGRESS && errno != EAGAIN)
                        return -errno;
                r = fd_wait(fd, POLLOUT, monotonic_ms() + timeout_ms);
                if (r < 0)
                        return r;
                int err = 0;
                socklen_t elen = sizeof err;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
                        return -errno;
                if (err)
                        return -err;
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int send_until(int fd, const char *p, size_t n, long long deadline)
{
        while (n > 0) {
                ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                return -errno;
                        int r = fd_wait(fd, POLLOUT, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                p += w;
                n -= (size_t)w;
        }
        return 0;
}

int ipc_send(int fd, const struct ipc_msg *m, int timeout_ms)
{
        struct buf b = BUF_INIT;
        int r = ipc_encode(m, &b);
        if (r >= 0)
                r = send_until(fd, b.data, b.len, monotonic_ms() + timeout_ms);
        buf_done(&b);
        return r;
}

/* Read exactly n bytes; -ECONNRESET on EOF. */
static int recv_until(int fd, void *p, size_t n, long long deadline)
{
        char *q = p;
        while (n > 0) {
                ssize_t got = recv(fd, q, n, MSG_DONTWAIT);
                if (got == 0)
                        return -ECONNRESET;
                if (got < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                return -errno;
                        int r = fd_wait(fd, POLLIN, deadline);
                        if (r < 0)
                                return r;
                        continue;
                }
                q += got;
                n -= (size_t)got;
        }
        return 0;
}

int ipc_recv(int fd, struct ipc_msg *ret, int timeout_ms)
{
        long long deadline = monotonic_ms() + timeout_ms;
        unsigned char hdr[IPC_HEADER_SIZE];
        int r = recv_until(fd, hdr, sizeof hdr, deadline);
        if (r < 0)
                return r;
        uint32_t len = get_be32(hdr);
        if (len > IPC_BODY_MAX)
                return -EMSGSIZE;
        _cleanup_free_ char *body = xmalloc(len ? len : 1);
        r = recv_until(fd, body, len, deadline);
        if (r < 0)
                return r;
        return ipc_decode_body(body, len, ret);
}

int ipc_call(int fd, const struct ipc_msg *req, struct ipc_msg *reply, int timeout_ms)
{
        long long deadline = monotonic_ms() + timeout_ms;
        int r = ipc_send(fd, req, timeout_ms);
        if (r < 0)
                return r;
        long long left = deadline - monotonic_ms();
        if (left <= 0)
                return -ETIMEDOUT;
        return ipc_recv(fd, reply, (int)left);
}

int ipc_call_definite(int fd, const struct ipc_msg *req, const struct ipc_msg *abort, struct ipc_msg *reply,
                      int timeout_ms)
{
        int r = ipc_send(fd, req, timeout_ms);
        if (r < 0)
                return r;
        /* Wait for the first byte without reading, so that a timeout never leaves half a reply read. */
        r = fd_wait(fd, POLLIN, monotonic_ms() + timeout_ms);
        if (r == -ETIMEDOUT) {
                r = ipc_send(fd, abort, timeout_ms);
                if (r < 0)
                        return r;
        } else if (r < 0)
                return r;
        return ipc_recv(fd, reply, timeout_ms);
}

void ipc_conn_init(struct ipc_conn *c, int fd)
{
        *c = (struct ipc_conn){.fd = fd, .in = BUF_INIT, .out = BUF_INIT};
}

void ipc_conn_done(struct ipc_conn *c)
{
        buf_done(&c->in);
        buf_done(&c->out);
        c->out_off = 0;
}

int ipc_conn_read(struct ipc_conn *c)
{
        /* Bounded per call so one chatty peer cannot starve the other connections of the loop. */
        for (int i = 0; i < 16; i++) {
                if (c->in.len > IPC_HEADER_SIZE + IPC_BODY_MAX)
                        return 0; /* a whole frame is there or the peer is broken: let ipc_conn_next decide
                                   */
                /* Straight into the input buffer: message content passes through here. */
                buf_reserve(&c->in, IPC_READ_CHUNK);
                ssize_t n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1, MSG_DONTWAIT);
                if (n == 0) {
                        c->eof = true;
                        return 0;
                }
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return -errno;
                }
                c->in.len += (size_t)n;
                c->in.data[c->in.len] = '\0';
        }
        return 0;
}

int ipc_conn_next(struct ipc_conn *c, struct ipc_msg *ret)
{
        size_t used = 0;
        int r = ipc_decode_frame(c->in.data, c->in.len, ret, &used);
        if (r <= 0)
                return r;
        memmove(c->in.data, c->in.data + used, c->in.len - used);
        buf_truncate(&c->in, c->in.len - used);
        return 1;
}

int ipc_conn_queue(struct ipc_conn *c, const struct ipc_msg *m)
{
        return ipc_encode(m, &c->out);
}

int ipc_conn_flush(struct ipc_conn *c)
{
        while (c->out_off < c->out.len) {
                ssize_t w = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno == EAGAIN ? -EAGAIN : -errno;
                }
                c->out_off += (size_t)w;
        }
        buf_truncate(&c->out, 0);
        c->out_off = 0;
        return 0;
}

bool ipc_conn_want_write(const struct ipc_conn *c)
{
        return c->out_off < c->out.len;
}
