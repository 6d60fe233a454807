/* journal_send.c: systemd's Native Journal Protocol (a datagram of fields, or a sealed memfd for a large
 * entry), written from its public description. */
#include "journal_send.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "alloc.h"
#include "fileio.h"
#include "macro.h"
#include "netaddr.h"

#define JOURNAL_SOCKET_PATH "/run/systemd/journal/socket"
/* Asked for so that most entries fit one datagram; the kernel caps it at net.core.wmem_max. */
#define JOURNAL_SNDBUF (8u << 20)
/* Pieces per field at most: "NAME" "\n" length value "\n" (a plain field uses two: itself and "\n"). */
#define PIECES_PER_FIELD 5

/*
 * The cached socket. Threads log at once, so the lock guards it; the fork handlers take the lock
 * around fork() so that a child never inherits it held. A child may close descriptors it inherits
 * (the local spawner's close_range): its first send checks that fd is still the socket it was.
 */
static struct {
        pthread_mutex_t lock;
        int fd;
        dev_t dev;
        ino_t ino;
        bool forked;
        char *path; /* tests only; NULL: JOURNAL_SOCKET_PATH */
} journal = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void)
{
        pthread_mutex_lock(&journal.lock);
}

static void atfork_parent(void)
{
        pthread_mutex_unlock(&journal.lock);
}

static void atfork_child(void)
{
        journal.forked = true;
        pthread_mutex_unlock(&journal.lock);
}

static void register_atfork(void)
{
        (void)pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* Is journal.fd still the socket we opened? Compared by identity, since its number may be reused. */
static bool cached_fd_is_ours(void)
{
        struct stat st;
        return fstat(journal.fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == journal.dev &&
               st.st_ino == journal.ino;
}

static int open_socket(void)
{
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        int size = (int)JOURNAL_SNDBUF;
        /* Capped, or refused: then more entries take the memfd way, nothing worse. */
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int e = errno;
                close(fd);
                return -e;
        }
        journal.fd = fd;
        journal.dev = st.st_dev;
        journal.ino = st.st_ino;
        return fd;
}

/* The cached socket, opened on first use; stale (true) drops a descriptor a send found wrong. */
static int journal_fd(bool stale)
{
        pthread_once(&atfork_once, register_atfork);
        pthread_mutex_lock(&journal.lock);
        if (journal.fd >= 0 && (stale || journal.forked) && !cached_fd_is_ours())
                journal.fd = -1; /* no longer ours: another part of the program owns that number now */
        journal.forked = false;
        int fd = journal.fd >= 0 ? journal.fd : open_socket();
        pthread_mutex_unlock(&journal.lock);
        return fd;
}

void journal_send_set_socket_path(const char *path)
{
        pthread_mutex_lock(&journal.lock);
        free(journal.path);
        journal.path = path ? xstrdup(path) : NULL;
        if (journal.fd >= 0)
                close(journal.fd);
        journal.fd = -1;
        pthread_mutex_unlock(&journal.lock);
}

static int journal_address(struct sockaddr_un *sa, socklen_t *ret_len)
{
        pthread_mutex_lock(&journal.lock);
        int r = unix_address(journal.path ? journal.path : JOURNAL_SOCKET_PATH, sa, ret_len);
        pthread_mutex_unlock(&journal.lock);
        return r;
}

/* Fields of an entry that need no allocation (log.c sends at most 13). */
#define ENTRY_FIELDS_INLINE 16

/* One entry's pieces for sendmsg, pointing into the fields (no copy) except for the binary lengths. */
struct entry {
        struct iovec *pieces;
        size_t n_pieces;
        uint64_t *lengths; /* little-endian, one per field (used by those with a '\n') */
        struct iovec inline_pieces[ENTRY_FIELDS_INLINE * PIECES_PER_FIELD];
        uint64_t inline_lengths[ENTRY_FIELDS_INLINE];
};

static void entry_done(struct entry *e)
{
        if (e->pieces != e->inline_pieces)
                free(e->pieces);
        if (e->lengths != e->inline_lengths)
                free(e->lengths);
}

static void add_piece(struct entry *e, const void *p, size_t len)
{
        e->pieces[e->n_pieces++] = (struct iovec){.iov_base = (void *)p, .iov_len = len};
}

/* "NAME=value\n" when the value has no '\n'; else "NAME\n", its length as 64-bit LE, the value, "\n". */
static int add_field(struct entry *e, const struct iovec *f, uint64_t *length)
{
        static const char newline = '\n';
        const char *s = f->iov_base;
        const char *eq = f->iov_len ? memchr(s, '=', f->iov_len) : NULL;
        if (!eq || eq == s || memchr(s, '\n', (size_t)(eq - s)))
                return -EINVAL;
        const char *value = eq + 1;
        size_t value_len = f->iov_len - (size_t)(value - s);
        if (!memchr(value, '\n', value_len)) {
                add_piece(e, s, f->iov_len);
                add_piece(e, &newline, 1);
                return 0;
        }
        *length = htole64(value_len);
        add_piece(e, s, (size_t)(eq - s));
        add_piece(e, &newline, 1);
        add_piece(e, length, sizeof *length);
        add_piece(e, value, value_len);
        add_piece(e, &newline, 1);
        return 0;
}

static int build_entry(const struct iovec *iov, size_t n, struct entry *e)
{
        if (n <= ENTRY_FIELDS_INLINE) {
                e->pieces = e->inline_pieces;
                e->lengths = e->inline_lengths;
        } else {
                if (n > SIZE_MAX / (PIECES_PER_FIELD * sizeof *e->pieces))
                        return -E2BIG;
                /* Plain malloc: running out of memory while logging must not abort the daemon. */
                e->pieces = malloc(n * PIECES_PER_FIELD * sizeof *e->pieces);
                e->lengths = malloc(n * sizeof *e->lengths);
                if (!e->pieces || !e->lengths)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                int r = add_field(e, &iov[i], &e->lengths[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int send_retrying(int fd, const struct msghdr *mh)
{
        ssize_t n;
        do
                n = sendmsg(fd, mh, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : 0;
}

/* The protocol's way for an entry larger than a datagram: the same bytes in a sealed memfd, passed alone. */
static int send_as_memfd(int fd, const struct entry *e, const struct sockaddr_un *sa, socklen_t sa_len)
{
        _cleanup_close_ int mfd = memfd_create("journal-entry", MFD_ALLOW_SEALING | MFD_CLOEXEC);
        if (mfd < 0)
                return -errno;
        for (size_t i = 0; i < e->n_pieces; i++) {
                int r = write_full(mfd, e->pieces[i].iov_base, e->pieces[i].iov_len);
                if (r < 0)
                        return r;
        }
        /* journald reads only a memfd nobody can change any more. */
        if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return -errno;
        union {
                struct cmsghdr h;
                char space[CMSG_SPACE(sizeof(int))];
        } control = {0};
        struct msghdr mh = {.msg_name = (void *)sa,
                            .msg_namelen = sa_len,
                            .msg_control = &control,
                            .msg_controllen = sizeof control};
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &mfd, sizeof(int));
        return send_retrying(fd, &mh);
}

int journal_sendv(const struct iovec *iov, size_t n)
{
        if (!iov || n == 0)
                return -EINVAL;
        _cleanup_(entry_done) struct entry e = {.pieces = NULL};
        int r = build_entry(iov, n, &e);
        if (r < 0)
                return r;
        struct sockaddr_un sa;
        socklen_t sa_len;
        r = journal_address(&sa, &sa_len);
        if (r < 0)
                return r;
        struct msghdr mh = {
                .msg_name = &sa, .msg_namelen = sa_len, .msg_iov = e.pieces, .msg_iovlen = e.n_pieces};
        int fd = journal_fd(false);
        if (fd < 0)
                return fd;
        r = send_retrying(fd, &mh);
        if (r == -EBADF || r == -ENOTSOCK) {
                /* Closed behind our back (not through a fork we saw): one more try on a fresh socket. */
                fd = journal_fd(true);
                if (fd < 0)
                        return fd;
                r = send_retrying(fd, &mh);
        }
        /* Larger than the socket buffer, or more pieces than IOV_MAX: both say EMSGSIZE. */
        if (r == -EMSGSIZE || r == -ENOBUFS)
                r = send_as_memfd(fd, &e, &sa, sa_len);
        return r;
}
