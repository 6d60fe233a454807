/* queue.c: the open queue: durable creation of queue files (group commit), state changes, recovery (the
 * directories' layout is queue_layout_table.c; creating and checking them, queue_layout.c). */
#include "queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>

#include "alloc.h"
#include "log.h"
#include "macro.h"
#include "queue_layout.h"

static const char *const queue_names[_QUEUE_MAX] = {
        [QUEUE_INCOMING] = "incoming", [QUEUE_ACTIVE] = "active",   [QUEUE_DEFERRED] = "deferred",
        [QUEUE_HOLD] = "hold",         [QUEUE_CORRUPT] = "corrupt", [QUEUE_BOUNCE] = "bounce",
        [QUEUE_DEFER] = "defer",       [QUEUE_TRACE] = "trace",     [QUEUE_MAILDROP] = "maildrop",
        [QUEUE_PUBLIC] = "public",     [QUEUE_PRIVATE] = "private", [QUEUE_PID] = "pid",
        [QUEUE_SAVED] = "saved",       [QUEUE_FLUSH] = "flush",
};

const char *queue_name_to_string(enum queue_name n)
{
        return (unsigned)n < _QUEUE_MAX ? queue_names[n] : NULL;
}

int queue_name_from_string(const char *s)
{
        for (int i = 0; i < _QUEUE_MAX; i++)
                if (streq_ptr(s, queue_names[i]))
                        return i;
        return -EINVAL;
}

/* ---- open queue ---- */

static int open_dir_at(int dirfd, const char *name)
{
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

struct queue {
        char *dir;
        int dirfd;
        int fds[_QUEUE_MAX];
};

int queue_open(const char *queue_dir, struct queue **ret)
{
        struct queue *q = xcalloc(1, sizeof *q);
        q->dir = xstrdup(queue_dir);
        q->dirfd = -1;
        for (int i = 0; i < _QUEUE_MAX; i++)
                q->fds[i] = -1;
        int r = open_dir_at(AT_FDCWD, queue_dir);
        if (r < 0)
                goto fail;
        q->dirfd = r;
        struct stat qst;
        if (fstat(q->dirfd, &qst) < 0) {
                r = -errno;
                goto fail;
        }
        for (size_t i = 0; i < queue_layout_n; i++) {
                if (!queue_layout[i].message_queue)
                        continue;
                enum queue_name n = queue_layout[i].name;
                r = open_dir_at(q->dirfd, queue_names[n]);
                if (r < 0)
                        goto fail;
                q->fds[n] = r;
                struct stat st;
                if (fstat(q->fds[n], &st) < 0) {
                        r = -errno;
                        goto fail;
                }
                if (st.st_dev != qst.st_dev) {
                        r = -EXDEV;
                        goto fail;
                }
        }
        *ret = q;
        return 0;
fail:
        queue_close(q);
        return r;
}

void queue_close(struct queue *q)
{
        if (!q)
                return;
        for (int i = 0; i < _QUEUE_MAX; i++)
                if (q->fds[i] >= 0)
                        close(q->fds[i]);
        if (q->dirfd >= 0)
                close(q->dirfd);
        free(q->dir);
        free(q);
}

const char *queue_directory(const struct queue *q)
{
        return q->dir;
}

int queue_dirfd(const struct queue *q, enum queue_name n)
{
        return (unsigned)n < _QUEUE_MAX ? q->fds[n] : -1;
}

/* Where id lives in queue n: the directory descriptor and the name in it. The single place that knows. */
static int queue_locate(const struct queue *q, enum queue_name n, const char *id, int *ret_dirfd)
{
        if (!queue_id_valid(id))
                return -EINVAL;
        int fd = queue_dirfd(q, n);
        if (fd < 0)
                return -EINVAL;
        *ret_dirfd = fd;
        return 0;
}

char *queue_path(const struct queue *q, enum queue_name n, const char *id)
{
        return xasprintf("%s/%s", queue_name_to_string(n), id);
}

/* ---- writing ---- */

struct queue_file {
        int fd;
        int dirfd;    /* borrowed from the queue */
        int targetfd; /* where the commit renames it: incoming/, or hold/ (queue_file_set_hold) */
        char tmp_name[64];
        char id[QUEUE_ID_BUF_SIZE];
        int result;
        bool written;
        bool synced;
        bool committed;
        bool streaming; /* queue_file_begin() wrote the head; content and end record follow */
        struct qfile_stream stream;
        off_t write_off; /* where the next content byte goes */
};

#define TMP_NAME_ATTEMPTS 100

int queue_file_create(struct queue *q, struct queue_file **ret)
{
        static atomic_uint counter;
        int dirfd = q->fds[QUEUE_INCOMING];
        struct queue_file *f = xcalloc(1, sizeof *f);
        f->fd = -1;
        f->dirfd = dirfd;
        f->targetfd = dirfd;
        f->result = -EINPROGRESS;
        for (int attempt = 0; attempt < TMP_NAME_ATTEMPTS; attempt++) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                snprintf(f->tmp_name, sizeof f->tmp_name, QUEUE_TMP_PREFIX "%d.%u.%ld", (int)getpid(),
                         atomic_fetch_add(&counter, 1), (long)ts.tv_nsec);
                f->fd = openat(dirfd, f->tmp_name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (f->fd >= 0 || errno != EEXIST)
                        break;
        }
        if (f->fd < 0) {
                int r = -errno;
                free(f);
                return r;
        }
        struct stat st;
        if (fstat(f->fd, &st) < 0) {
                int r = -errno;
                unlinkat(dirfd, f->tmp_name, 0);
                close(f->fd);
                free(f);
                return r;
        }
        queue_id_make((uint64_t)st.st_ino, f->id);
        *ret = f;
        return 0;
}

const char *queue_file_id(const struct queue_file *f)
{
        return f->id;
}

int queue_file_fd(const struct queue_file *f)
{
        return f->fd;
}

int queue_file_result(const struct queue_file *f)
{
        return f->result;
}

bool queue_file_committed(const struct queue_file *f)
{
        return f->committed;
}

static int write_all(int fd, struct iovec *iov, int n)
{
        while (n > 0) {
                ssize_t w = writev(fd, iov, n);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                size_t done = (size_t)w;
                while (n > 0 && done >= iov->iov_len) {
                        done -= iov->iov_len;
                        iov++;
                        n--;
                }
                if (n > 0) {
                        iov->iov_base = (char *)iov->iov_base + done;
                        iov->iov_len -= done;
                }
        }
        return 0;
}

int queue_file_write(struct queue_file *f, const struct qfile_msg *m, unsigned flags)
{
        if (f->written || f->committed || f->streaming)
                return -EALREADY;
        struct buf head = BUF_INIT, tail = BUF_INIT;
        int r = qfile_encode(m, &head, &tail);
        if (r >= 0) {
                struct iovec iov[3] = {
                        {head.data, head.len},
                        {(void *)m->content, m->content_len},
                        {tail.data, tail.len},
                };
                r = write_all(f->fd, iov, 3);
        }
        buf_done(&head);
        buf_done(&tail);
        if (r < 0)
                return r;
        f->written = true;
        return (flags & QUEUE_NOSYNC) ? 0 : queue_file_sync(f);
}

/* pwrite() all of data at off; a short write (disk full) is -ENOSPC rather than a retry loop forever. */
static int pwrite_all(int fd, const void *data, size_t len, off_t off)
{
        const char *p = data;
        while (len > 0) {
                ssize_t w = pwrite(fd, p, len, off);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (w == 0)
                        return -ENOSPC;
                p += w;
                len -= (size_t)w;
                off += w;
        }
        return 0;
}

int queue_file_begin(struct queue_file *f, const struct qfile_msg *m)
{
        if (f->written || f->committed || f->streaming)
                return -EALREADY;
        struct buf head = BUF_INIT;
        int r = qfile_stream_begin(m, &head, &f->stream);
        if (r >= 0)
                r = pwrite_all(f->fd, head.data, head.len, 0);
        buf_done(&head);
        if (r < 0)
                return r;
        f->streaming = true;
        f->write_off = (off_t)f->stream.head_len;
        return 0;
}

static uint32_t le32_at(const char *p);

int queue_file_mark_all(struct queue_file *f, enum qfile_rcpt_state state, uint64_t done_usec,
                        const char *dsn_status)
{
        if (f->stream.head_len <= QFILE_HEADER_LEN || f->committed)
                return -EINVAL; /* only a file written with queue_file_begin(), before its commit */
        uint8_t slot[QFILE_STATUS_SLOT_LEN];
        int r = qfile_encode_slot(state, done_usec, dsn_status, slot);
        if (r < 0)
                return r;
        /* Walk the records written by queue_file_begin() (our own encoder's output) up to the content. */
        size_t len = (size_t)f->stream.head_len;
        char *head = xmalloc(len ? len : 1);
        ssize_t k = pread(f->fd, head, len, 0);
        r = k < 0 ? -errno : (size_t)k != len ? -EIO : 0;
        for (size_t off = QFILE_HEADER_LEN; r == 0 && off + QFILE_REC_HDR_LEN <= len;) {
                uint32_t plen = le32_at(head + off + 1);
                if (head[off] == QFILE_REC_CONTENT || plen > len - off - QFILE_REC_HDR_LEN)
                        break;
                if (head[off] == QFILE_REC_RCPT && plen > 0) {
                        size_t at = off + QFILE_REC_HDR_LEN + 1 + (uint8_t)head[off + QFILE_REC_HDR_LEN];
                        if (pwrite(f->fd, slot, sizeof slot, (off_t)at) != (ssize_t)sizeof slot)
                                r = -EIO;
                }
                off += QFILE_REC_HDR_LEN + plen;
        }
        free(head);
        if (r == 0 && fdatasync(f->fd) < 0)
                r = -errno;
        return r;
}

int queue_file_append(struct queue_file *f, const void *data, size_t len)
{
        if (!f->streaming)
                return -EINVAL;
        int r = qfile_stream_content(&f->stream, data, len);
        if (r < 0)
                return r;
        r = pwrite_all(f->fd, data, len, f->write_off);
        if (r < 0) {
                f->streaming = false; /* the content on disk no longer matches the checksum: unusable */
                return r;
        }
        f->write_off += (off_t)len;
        return 0;
}

int queue_file_content_range(const struct queue_file *f, off_t *ret_off, uint64_t *ret_len)
{
        if (!f->streaming)
                return -EINVAL;
        *ret_off = (off_t)f->stream.head_len;
        *ret_len = (uint64_t)(f->write_off - (off_t)f->stream.head_len);
        return 0;
}

int queue_file_restart(struct queue_file *f)
{
        if (!f->streaming || f->written || f->committed)
                return -EINVAL;
        if (ftruncate(f->fd, 0) < 0)
                return -errno;
        f->streaming = false;
        f->write_off = 0;
        return 0;
}

int queue_file_finish(struct queue_file *f, unsigned flags)
{
        if (!f->streaming)
                return -EINVAL;
        uint8_t len_field[4];
        struct buf tail = BUF_INIT;
        qfile_stream_finish(&f->stream, len_field, &tail);
        /* Patching the length in place is safe: the file has its temporary name until the group commit,
         * which renames it only after the fdatasync below (or queue_file_sync()) covered every byte. */
        int r = pwrite_all(f->fd, len_field, sizeof len_field, (off_t)f->stream.head_len - 4);
        if (r >= 0)
                r = pwrite_all(f->fd, tail.data, tail.len, f->write_off);
        buf_done(&tail);
        f->streaming = false;
        if (r < 0)
                return r;
        f->written = true;
        return (flags & QUEUE_NOSYNC) ? 0 : queue_file_sync(f);
}

int queue_file_sync(struct queue_file *f)
{
        if (!f->written)
                return -EINVAL;
        /* fdatasync covers the new size too; the inode times it skips do not matter to recovery. */
        if (fdatasync(f->fd) < 0)
                return -errno;
        f->synced = true;
        return 0;
}

void queue_file_start_write(struct queue_file *f)
{
        if (f->written)
                (void)sync_file_range(f->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

/* rename without ever replacing: a name collision is a bug or a foreign file, never to be overwritten. */
static int rename_noreplace(int olddirfd, const char *oldname, int newdirfd, const char *newname)
{
        if (renameat2(olddirfd, oldname, newdirfd, newname, RENAME_NOREPLACE) == 0)
                return 0;
        if (errno != EINVAL && errno != ENOSYS)
                return -errno;
        /* A file system without RENAME_NOREPLACE: link() refuses to replace too. */
        if (linkat(olddirfd, oldname, newdirfd, newname, 0) < 0)
                return -errno;
        if (unlinkat(olddirfd, oldname, 0) < 0)
                return -errno;
        return 0;
}

void queue_file_set_hold(struct queue *q, struct queue_file *f)
{
        f->targetfd = q->fds[QUEUE_HOLD];
}

/* fsync incoming_fd and the other directories the batch renamed into (hold/); 0 or -errno. */
static int sync_batch_dirs(int incoming_fd, struct queue_file *const *files, size_t n)
{
        if (fsync(incoming_fd) < 0)
                return -errno;
        for (size_t i = 0; i < n; i++) {
                int fd = files[i]->targetfd;
                if (files[i]->result != 0 || fd == incoming_fd)
                        continue;
                bool seen = false; /* one fsync per directory */
                for (size_t k = 0; k < i && !seen; k++)
                        seen = files[k]->result == 0 && files[k]->targetfd == fd;
                if (!seen && fsync(fd) < 0)
                        return -errno;
        }
        return 0;
}

int queue_commit_batch(int incoming_fd, struct queue_file *const *files, size_t n)
{
        size_t renamed = 0;
        for (size_t i = 0; i < n; i++) {
                struct queue_file *f = files[i];
                if (f->committed) {
                        f->result = -EALREADY;
                        continue;
                }
                if (!f->synced) {
                        f->result = -EINVAL;
                        continue;
                }
                f->result = rename_noreplace(incoming_fd, f->tmp_name, f->targetfd, f->id);
                if (f->result == 0)
                        renamed++;
        }
        if (renamed == 0)
                return 0;
        int r = sync_batch_dirs(incoming_fd, files, n);
        if (r < 0) {
                /* Not durable, so not acknowledged: take the files back out rather than deliver mail the
                 * client will send again. */
                for (size_t i = 0; i < n; i++)
                        if (files[i]->result == 0) {
                                unlinkat(files[i]->targetfd, files[i]->id, 0);
                                files[i]->result = r;
                                files[i]->tmp_name[0] = '\0';
                        }
                /* The unlinks must be durable too, or a crash could bring back files the clients were told
                 * to send again. Best effort: a directory that cannot be synced cannot be helped here. */
                (void)fsync(incoming_fd);
                for (size_t i = 0; i < n; i++)
                        if (files[i]->targetfd != incoming_fd)
                                (void)fsync(files[i]->targetfd);
                return r;
        }
        for (size_t i = 0; i < n; i++)
                if (files[i]->result == 0)
                        files[i]->committed = true;
        return (int)renamed;
}

int queue_file_commit(struct queue *q, struct queue_file *f)
{
        int r = queue_commit_batch(q->fds[QUEUE_INCOMING], &f, 1);
        return r < 0 ? r : f->result;
}

void queue_file_free(struct queue_file *f)
{
        if (!f)
                return;
        if (!f->committed && f->tmp_name[0])
                unlinkat(f->dirfd, f->tmp_name, 0);
        if (f->fd >= 0)
                close(f->fd);
        free(f);
}

/* ---- state changes and readers ---- */

int queue_move(struct queue *q, const char *id, enum queue_name from, enum queue_name to, unsigned flags)
{
        int from_fd, to_fd;
        int r = queue_locate(q, from, id, &from_fd);
        if (r < 0)
                return r;
        r = queue_locate(q, to, id, &to_fd);
        if (r < 0)
                return r;
        r = rename_noreplace(from_fd, id, to_fd, id);
        if (r < 0)
                return r;
        if (flags & QUEUE_SYNC) {
                /* The new name first: if only that reaches the disk, the file is in two queues and recovery
                 * sees one inode twice, which it handles; the reverse order could lose the file. */
                if (fsync(to_fd) < 0 || (from_fd != to_fd && fsync(from_fd) < 0))
                        return -errno;
        }
        return 0;
}

int queue_remove(struct queue *q, const char *id, enum queue_name n, unsigned flags)
{
        int fd;
        int r = queue_locate(q, n, id, &fd);
        if (r < 0)
                return r;
        if (unlinkat(fd, id, 0) < 0)
                return -errno;
        if ((flags & QUEUE_SYNC) && fsync(fd) < 0)
                return -errno;
        return 0;
}

int queue_open_file(struct queue *q, const char *id, enum queue_name n, int flags, int *ret_fd)
{
        int dfd;
        int r = queue_locate(q, n, id, &dfd);
        if (r < 0)
                return r;
        int fd = openat(dfd, id, (flags & O_ACCMODE) | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        *ret_fd = fd;
        return 0;
}

static int read_decode(int fd, char **ret_data, size_t *ret_len, struct qfile_msg *ret_msg)
{
        int r = queue_read_fd(fd, ret_data, ret_len);
        if (r < 0)
                return r;
        r = qfile_decode(*ret_data, *ret_len, ret_msg, NULL);
        if (r < 0) {
                free(*ret_data);
                *ret_data = NULL;
        }
        return r;
}

int queue_open_for_delivery(struct queue *q, const char *id, enum queue_name n, const size_t *idx,
                            size_t n_idx, int *ret_fd, char **ret_data, size_t *ret_len,
                            struct qfile_msg *ret_msg)
{
        int fd = -1;
        int r = queue_open_file(q, id, n, O_RDWR, &fd);
        if (r < 0)
                return r;
        char *data = NULL;
        size_t len = 0;
        struct qfile_msg m = {0};
        r = read_decode(fd, &data, &len, &m);
        for (size_t i = 0; r >= 0 && i < n_idx; i++) {
                if (idx[i] >= m.n_rcpts)
                        continue;
                struct flock fl = {.l_type = F_WRLCK,
                                   .l_whence = SEEK_SET,
                                   .l_start = (off_t)m.rcpts[idx[i]].slot_offset,
                                   .l_len = QFILE_STATUS_SLOT_LEN};
                if (fcntl(fd, F_OFD_SETLK, &fl) < 0)
                        r = errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
        }
        if (r >= 0 && n_idx > 0) {
                /* Another agent may have marked a slot between our read and our lock. */
                qfile_msg_done(&m);
                free(data);
                data = NULL;
                r = read_decode(fd, &data, &len, &m);
        }
        if (r < 0) {
                qfile_msg_done(&m);
                free(data);
                close(fd);
                return r;
        }
        *ret_fd = fd;
        *ret_data = data;
        *ret_len = len;
        *ret_msg = m;
        return 0;
}

int queue_read_fd(int fd, char **ret_data, size_t *ret_len)
{
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADF;
        if ((uint64_t)st.st_size > QUEUE_MAX_FILE_SIZE)
                return -EFBIG;
        size_t size = (size_t)st.st_size;
        char *data = xmalloc(size + 1);
        size_t have = 0;
        while (have < size) {
                ssize_t n = pread(fd, data + have, size - have, (off_t)have);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        int r = -errno;
                        free(data);
                        return r;
                }
                if (n == 0)
                        break; /* shrank while we read: the decoder will call it truncated */
                have += (size_t)n;
        }
        data[have] = '\0';
        *ret_data = data;
        *ret_len = have;
        return 0;
}

static bool slot_offset_ok(const struct qfile_rcpt *r)
{
        return r->slot_offset >= QFILE_HEADER_LEN && r->slot_offset % QFILE_STATUS_SLOT_LEN == 0;
}

/* One pwrite() of an encoded slot at r's offset, then (sync) fdatasync(). */
static int write_slot(int fd, const struct qfile_rcpt *r, const uint8_t slot[static QFILE_STATUS_SLOT_LEN],
                      bool sync)
{
        ssize_t w = pwrite(fd, slot, QFILE_STATUS_SLOT_LEN, (off_t)r->slot_offset);
        if (w < 0)
                return -errno;
        if (w != (ssize_t)QFILE_STATUS_SLOT_LEN)
                return -EIO;
        if (sync && fdatasync(fd) < 0)
                return -errno;
        return 0;
}

int queue_mark_rcpt(int fd, const struct qfile_rcpt *r, enum qfile_rcpt_state state, uint64_t done_usec,
                    const char *dsn_status, unsigned flags)
{
        if (!slot_offset_ok(r))
                return -EINVAL;
        uint8_t slot[QFILE_STATUS_SLOT_LEN];
        int k = qfile_encode_slot(state, done_usec, dsn_status, slot);
        return k < 0 ? k : write_slot(fd, r, slot, !(flags & QUEUE_NOSYNC));
}

int queue_write_rcpt_slot(int fd, const struct qfile_rcpt *r, bool sync)
{
        if (!slot_offset_ok(r))
                return -EINVAL;
        uint8_t slot[QFILE_STATUS_SLOT_LEN];
        int k = qfile_encode_rcpt_slot(r, slot);
        return k < 0 ? k : write_slot(fd, r, slot, sync);
}

int queue_read_rcpt_state(int fd, struct qfile_rcpt *r)
{
        if (!slot_offset_ok(r))
                return -EINVAL;
        uint8_t slot[QFILE_STATUS_SLOT_LEN];
        ssize_t k = pread(fd, slot, sizeof slot, (off_t)r->slot_offset);
        if (k < 0)
                return -errno;
        if (k != (ssize_t)sizeof slot)
                return -EIO;
        return qfile_decode_slot(slot, r, NULL, NULL);
}

/* ---- recovery ---- */

/* Files up to this size are checked by reading them whole; larger ones in chunks of QUEUE_CHECK_CHUNK. */
#define QUEUE_CHECK_WHOLE_MAX (1024u * 1024)
#define QUEUE_CHECK_CHUNK     (256u * 1024)

static bool is_tmp_name(const char *name)
{
        return strncmp(name, QUEUE_TMP_PREFIX, strlen(QUEUE_TMP_PREFIX)) == 0;
}

/* Read from fd at offset b->len until b holds want bytes or the file's size; -errno on a read error. */
static int read_prefix(int fd, struct buf *b, uint64_t want, uint64_t size)
{
        if (want > size)
                want = size;
        while (b->len < want) {
                size_t n = want - b->len < QUEUE_CHECK_CHUNK ? (size_t)(want - b->len) : QUEUE_CHECK_CHUNK;
                buf_reserve(b, n);
                ssize_t k = pread(fd, b->data + b->len, n, (off_t)b->len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break; /* shrank: the decoder calls it truncated */
                b->len += (size_t)k;
        }
        return 0;
}

/* The CRC-32C of len bytes at off, read in chunks; -EBADMSG when the file ends first. */
static int crc_range(int fd, uint64_t off, uint64_t len, uint32_t *ret)
{
        _cleanup_free_ char *chunk = xmalloc(QUEUE_CHECK_CHUNK);
        uint32_t crc = 0;
        while (len > 0) {
                size_t n = len < QUEUE_CHECK_CHUNK ? (size_t)len : QUEUE_CHECK_CHUNK;
                ssize_t k = pread(fd, chunk, n, (off_t)off);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -EBADMSG;
                crc = qfile_crc32c(crc, chunk, (size_t)k);
                off += (uint64_t)k;
                len -= (uint64_t)k;
        }
        *ret = crc;
        return 0;
}

static uint32_t le32_at(const char *p)
{
        const uint8_t *u = (const uint8_t *)p;
        return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

static int decode_buf(const struct buf *b, struct qfile_error *err)
{
        struct qfile_msg m;
        int r = qfile_decode(b->data ? b->data : "", b->len, &m, err);
        if (r >= 0)
                qfile_msg_done(&m);
        return r;
}

/*
 * Verify a file too large to read whole: read the records before the content, checksum the content in
 * chunks, read the end record, and let qfile_decode_split() apply every check of the decoder. Memory:
 * the envelope plus one chunk, whatever the message's size.
 */
static int check_streaming(int fd, uint64_t size, struct qfile_error *err)
{
        _cleanup_(buf_done) struct buf head = BUF_INIT;
        int r = read_prefix(fd, &head, QFILE_HEADER_LEN, size);
        if (r < 0)
                return r;
        if (head.len == QFILE_HEADER_LEN && memcmp(head.data, QFILE_MAGIC, QFILE_MAGIC_LEN) == 0 &&
            (le32_at(head.data + QFILE_MAGIC_LEN) < QFILE_VERSION_MIN ||
             le32_at(head.data + QFILE_MAGIC_LEN) > QFILE_VERSION))
                return decode_buf(&head, err); /* -EPROTONOSUPPORT: the layout below may not apply */
        /* Walk the record headers up to the content record, as the decoder will. */
        uint64_t pos = QFILE_HEADER_LEN;
        for (;;) {
                r = read_prefix(fd, &head, pos + QFILE_REC_HDR_LEN, size);
                if (r < 0)
                        return r;
                if (head.len < pos + QFILE_REC_HDR_LEN)
                        return decode_buf(&head, err); /* ends before its content: says why */
                uint8_t type = (uint8_t)head.data[pos];
                uint64_t plen = le32_at(head.data + pos + 1);
                if (type == QFILE_REC_CONTENT)
                        break;
                if (type == QFILE_REC_END || plen > QFILE_MAX_RECORD_LEN) {
                        r = read_prefix(fd, &head, pos + QFILE_REC_HDR_LEN + plen, size);
                        if (r < 0)
                                return r;
                        r = decode_buf(&head, err); /* malformed before the content: says why */
                        return r < 0 ? r : -EBADMSG;
                }
                pos += QFILE_REC_HDR_LEN + plen;
        }
        uint64_t content_at = pos + QFILE_REC_HDR_LEN;
        uint64_t content_len = le32_at(head.data + pos + 1);
        uint32_t crc = 0;
        if (content_at + content_len > size)
                r = -EBADMSG;
        else
                r = crc_range(fd, content_at, content_len, &crc);
        if (r == -EBADMSG) {
                err->reason = "truncated record";
                err->offset = pos;
                return r;
        }
        if (r < 0)
                return r;
        /* The end record and, to be refused, a little of whatever follows it. */
        char tail[QFILE_REC_HDR_LEN + QFILE_END_PAYLOAD_LEN + 16];
        uint64_t tail_len = size - content_at - content_len;
        if (tail_len > sizeof tail)
                tail_len = sizeof tail;
        ssize_t k = pread(fd, tail, (size_t)tail_len, (off_t)(content_at + content_len));
        if (k < 0)
                return -errno;
        struct qfile_msg m;
        r = qfile_decode_split(head.data, (size_t)content_at, content_len, crc, tail, (size_t)k, &m, err);
        if (r >= 0)
                qfile_msg_done(&m);
        return r;
}

/*
 * Check a file completely (structure and checksum): 0 complete, -EBADMSG broken, -EPROTONOSUPPORT newer
 * format, other errno. Small files are read whole; larger ones are streamed (recovery with a big backlog
 * must not need the largest message's size in memory).
 */
static int check_file(int dirfd, const char *name, struct qfile_error *err)
{
        _cleanup_close_ int fd =
                openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return errno == ELOOP ? -EBADMSG : -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > QUEUE_MAX_FILE_SIZE) {
                err->reason = !S_ISREG(st.st_mode) ? "not a regular file" : "file too large";
                err->offset = 0;
                return -EBADMSG;
        }
        if ((uint64_t)st.st_size > QUEUE_CHECK_WHOLE_MAX)
                return check_streaming(fd, (uint64_t)st.st_size, err);
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        int r = queue_read_fd(fd, &data, &len);
        if (r < 0)
                return r;
        struct qfile_msg m;
        r = qfile_decode(data, len, &m, err);
        if (r >= 0)
                qfile_msg_done(&m);
        return r;
}

/* The file is in both queues after a move whose source removal did not reach the disk. */
static int same_inode(int dfd1, int dfd2, const char *name)
{
        struct stat a, b;
        if (fstatat(dfd1, name, &a, AT_SYMLINK_NOFOLLOW) < 0 ||
            fstatat(dfd2, name, &b, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* The entry names of dirfd: a snapshot, so that the caller may rename and unlink while walking it. */
static int list_entries(int dirfd, struct strv *names)
{
        int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        DIR *d = fdopendir(fd);
        if (!d) {
                int r = -errno;
                close(fd);
                return r;
        }
        struct dirent *de;
        errno = 0;
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        strv_push(names, de->d_name);
        int r = errno ? -errno : 0;
        closedir(d);
        return r;
}

static int recover_active(struct queue *q, struct queue_recover_stats *s)
{
        int afd = q->fds[QUEUE_ACTIVE], ifd = q->fds[QUEUE_INCOMING];
        struct strv names = STRV_INIT;
        int r = list_entries(afd, &names);
        for (size_t i = 0; r >= 0 && i < names.n; i++) {
                const char *id = names.v[i];
                if (!queue_id_valid(id)) {
                        msg_warn("%s/active/%s: not a queue file name, left alone", q->dir, id);
                        s->skipped++;
                        continue;
                }
                int k = rename_noreplace(afd, id, ifd, id);
                if (k == -EEXIST && same_inode(afd, ifd, id) > 0)
                        k = unlinkat(afd, id, 0) < 0 ? -errno : 0;
                if (k < 0) {
                        msg_warn("%s/active/%s: cannot move to incoming: %s", q->dir, id, strerror(-k));
                        s->skipped++;
                        continue;
                }
                s->requeued++;
        }
        strv_done(&names);
        return r;
}

static int recover_incoming(struct queue *q, enum queue_name complete_to, struct queue_recover_stats *s)
{
        int ifd = q->fds[QUEUE_INCOMING];
        struct strv names = STRV_INIT;
        int r = list_entries(ifd, &names);
        for (size_t i = 0; r >= 0 && i < names.n; i++) {
                const char *name = names.v[i];
                if (is_tmp_name(name)) {
                        /* Never renamed to its ID, so never acknowledged: removing it loses nothing. */
                        if (unlinkat(ifd, name, 0) < 0 && errno != ENOENT) {
                                msg_warn("%s/incoming/%s: cannot remove: %m", q->dir, name);
                                s->skipped++;
                        } else
                                s->removed++;
                        continue;
                }
                if (!queue_id_valid(name)) {
                        msg_warn("%s/incoming/%s: not a queue file name, left alone", q->dir, name);
                        s->skipped++;
                        continue;
                }
                struct qfile_error err = {0};
                int k = check_file(ifd, name, &err);
                if (k == -EBADMSG) {
                        msg_warn("%s: corrupt queue file in incoming (%s at offset %llu), moved to corrupt",
                                 name, err.reason ? err.reason : "unreadable",
                                 (unsigned long long)err.offset);
                        k = queue_move(q, name, QUEUE_INCOMING, QUEUE_CORRUPT, 0);
                        if (k < 0) {
                                msg_warn("%s/incoming/%s: cannot move to corrupt: %s", q->dir, name,
                                         strerror(-k));
                                s->skipped++;
                        } else
                                s->corrupt++;
                        continue;
                }
                if (k < 0) {
                        msg_warn("%s/incoming/%s: %s, left alone", q->dir, name,
                                 k == -EPROTONOSUPPORT ? "written by a newer postd" : strerror(-k));
                        s->skipped++;
                        continue;
                }
                if (complete_to != QUEUE_INCOMING) {
                        k = queue_move(q, name, QUEUE_INCOMING, complete_to, 0);
                        if (k < 0) {
                                msg_warn("%s/incoming/%s: cannot move to %s: %s", q->dir, name,
                                         queue_name_to_string(complete_to), strerror(-k));
                                s->skipped++;
                                continue;
                        }
                }
                s->complete++;
        }
        strv_done(&names);
        return r;
}

int queue_recover(struct queue *q, enum queue_name complete_to, struct queue_recover_stats *ret)
{
        struct queue_recover_stats s = {0};
        if (queue_dirfd(q, complete_to) < 0 || complete_to == QUEUE_CORRUPT)
                return -EINVAL;
        int r = recover_active(q, &s);
        if (r < 0)
                return r;
        r = recover_incoming(q, complete_to, &s);
        if (r < 0)
                return r;
        /* One fsync per directory touched, after all the renames. */
        const enum queue_name touched[] = {QUEUE_ACTIVE, QUEUE_INCOMING, QUEUE_CORRUPT, complete_to};
        for (size_t i = 0; i < ELEMENTSOF(touched); i++)
                if (fsync(q->fds[touched[i]]) < 0)
                        return -errno;
        if (ret)
                *ret = s;
        return 0;
}
