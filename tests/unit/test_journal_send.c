/* test_journal_send.c: journal entries as a real AF_UNIX receiver gets them: the plain and the binary field
 * framing decoded byte for byte, an entry too large for a datagram as a sealed memfd, a forked child whose
 * inherited socket number was reused, and the calls under a role's seccomp allow-list. */
#include "unit.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "alloc.h"
#include "buf.h"
#include "dgram.h"
#include "fileio.h"
#include "journal_send.h"
#include "sandbox.h"
#include "sd_notify.h"

#define FIELD(s)                                              \
        (struct iovec)                                        \
        {                                                     \
                .iov_base = (void *)(s), .iov_len = strlen(s) \
        }

/* A receiver bound in the scratch directory, and the module pointed at it. */
static int journal_receiver(const char *name)
{
        _cleanup_free_ char *path = xasprintf("%s/%s", unit_tmpdir(), name);
        unlink(path);
        int fd = dgram_bind(path);
        if (fd >= 0)
                journal_send_set_socket_path(path);
        return fd;
}

/*
 * Decode an entry in the native format back into "NAME=value" strings, each followed by a NUL in out
 * (values may hold any byte, so out.len is what counts): the number of fields, or -1 when the framing
 * is broken anywhere.
 */
static int decode_entry(const char *p, size_t len, struct buf *out)
{
        int n = 0;
        size_t i = 0;
        while (i < len) {
                size_t name_end = i;
                while (name_end < len && p[name_end] != '=' && p[name_end] != '\n')
                        name_end++;
                if (name_end == len || name_end == i)
                        return -1;
                buf_append(out, p + i, name_end - i);
                buf_putc(out, '=');
                if (p[name_end] == '=') {
                        const char *nl = memchr(p + name_end, '\n', len - name_end);
                        if (!nl)
                                return -1;
                        buf_append(out, p + name_end + 1, (size_t)(nl - p) - name_end - 1);
                        i = (size_t)(nl - p) + 1;
                } else {
                        uint64_t le;
                        if (len - name_end - 1 < sizeof le)
                                return -1;
                        memcpy(&le, p + name_end + 1, sizeof le);
                        uint64_t vlen = le64toh(le);
                        size_t v = name_end + 1 + sizeof le;
                        if (vlen >= len - v || p[v + vlen] != '\n')
                                return -1;
                        buf_append(out, p + v, (size_t)vlen);
                        i = v + (size_t)vlen + 1;
                }
                buf_append(out, "", 1);
                n++;
        }
        return n;
}

/* Whether the decoded fields are exactly these, in this order. */
static bool decoded_is(const struct buf *got, const struct iovec *iov, size_t n)
{
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
                if (off + iov[i].iov_len + 1 > got->len ||
                    memcmp(got->data + off, iov[i].iov_base, iov[i].iov_len) ||
                    got->data[off + iov[i].iov_len] != '\0')
                        return false;
                off += iov[i].iov_len + 1;
        }
        return off == got->len;
}

TEST(plain_fields_are_one_line_each)
{
        _cleanup_close_ int fd = journal_receiver("journal-plain");
        CHECK(fd >= 0);
        struct iovec iov[] = {FIELD("MESSAGE=connect from localhost[127.0.0.1]"), FIELD("PRIORITY=6"),
                              FIELD("SYSLOG_IDENTIFIER=postfix/smtpd"), FIELD("EMPTY=")};
        CHECK_INT(journal_sendv(iov, 4), 0);
        char buf[1024];
        int passed;
        ssize_t n = dgram_recv(fd, buf, sizeof buf, &passed, 5000);
        static const char expect[] = "MESSAGE=connect from localhost[127.0.0.1]\nPRIORITY=6\n"
                                     "SYSLOG_IDENTIFIER=postfix/smtpd\nEMPTY=\n";
        CHECK_INT(n, sizeof expect - 1);
        CHECK_INT(passed, -1);
        CHECK(memcmp(buf, expect, sizeof expect - 1) == 0);
        journal_send_set_socket_path(NULL);
}

TEST(value_with_newline_gets_the_binary_framing)
{
        _cleanup_close_ int fd = journal_receiver("journal-binary");
        CHECK(fd >= 0);
        /* A NUL and a '=' inside the value too: the length alone delimits it. */
        static const char multi[] = "MESSAGE=line one\nline=two\0end\n";
        struct iovec iov[] = {FIELD("PRIORITY=3"),
                              {.iov_base = (void *)multi, .iov_len = sizeof multi - 1},
                              FIELD("POSTFIX_QUEUE_ID=3F1A2B4C5D")};
        CHECK_INT(journal_sendv(iov, 3), 0);
        char buf[1024];
        int passed;
        ssize_t n = dgram_recv(fd, buf, sizeof buf, &passed, 5000);
        CHECK(n > 0);
        CHECK_INT(passed, -1);
        /* Byte for byte: "MESSAGE\n", 64-bit little-endian 22, the value, "\n". */
        static const char binary[] = "MESSAGE\n\x16\0\0\0\0\0\0\0line one\nline=two\0end\n\n";
        CHECK(memmem(buf, (size_t)n, binary, sizeof binary - 1) != NULL);
        _cleanup_buf_ struct buf got = BUF_INIT;
        CHECK_INT(decode_entry(buf, (size_t)n, &got), 3);
        CHECK(decoded_is(&got, iov, 3));
        journal_send_set_socket_path(NULL);
}

TEST(bad_fields_are_refused_and_missing_journal_reported)
{
        struct iovec no_eq[] = {FIELD("MESSAGE")}, no_name[] = {FIELD("=value")},
                     nl_name[] = {FIELD("MES\nSAGE=x")};
        CHECK_INT(journal_sendv(no_eq, 1), -EINVAL);
        CHECK_INT(journal_sendv(no_name, 1), -EINVAL);
        CHECK_INT(journal_sendv(nl_name, 1), -EINVAL);
        CHECK_INT(journal_sendv(no_eq, 0), -EINVAL);
        _cleanup_free_ char *missing = xasprintf("%s/no-journal-here", unit_tmpdir());
        journal_send_set_socket_path(missing);
        struct iovec ok[] = {FIELD("MESSAGE=hello")};
        CHECK_INT(journal_sendv(ok, 1), -ENOENT);
        journal_send_set_socket_path(NULL);
}

/* The largest datagram the module's socket can send: twice its SO_SNDBUF request capped at wmem_max. */
static size_t datagram_limit(size_t *ret_default)
{
        char *text = NULL;
        size_t max = 212992, def = 212992;
        if (read_file("/proc/sys/net/core/wmem_max", 64, &text, NULL) == 0)
                max = strtoull(text, NULL, 10);
        free(text);
        text = NULL;
        if (read_file("/proc/sys/net/core/wmem_default", 64, &text, NULL) == 0)
                def = strtoull(text, NULL, 10);
        free(text);
        *ret_default = 2 * def;
        return 2 * (max < (8u << 20) ? max : (8u << 20));
}

/* An entry of a message field of size bytes (with newlines: binary framing) and a plain field. */
static void big_entry(size_t size, char **ret_msg, struct iovec iov[2])
{
        char *msg = xmalloc(size);
        memcpy(msg, "MESSAGE=", 8);
        for (size_t i = 8; i < size; i++)
                msg[i] = (char)('a' + i % 26);
        for (size_t i = 100; i < size; i += 4096)
                msg[i] = '\n';
        iov[0] = (struct iovec){.iov_base = msg, .iov_len = size};
        iov[1] = FIELD("PRIORITY=6");
        *ret_msg = msg;
}

TEST(entry_beyond_a_datagram_goes_as_sealed_memfd)
{
        _cleanup_close_ int fd = journal_receiver("journal-big");
        CHECK(fd >= 0);
        size_t def_limit, limit = datagram_limit(&def_limit);
        _cleanup_free_ char *msg = NULL;
        struct iovec iov[2];
        big_entry(limit + 65536, &msg, iov);
        CHECK_INT(journal_sendv(iov, 2), 0);
        char small[64];
        _cleanup_close_ int passed = -1;
        /* The datagram is empty: all of the entry is in the memfd. */
        CHECK_INT(dgram_recv(fd, small, sizeof small, &passed, 5000), 0);
        CHECK(passed >= 0);
        int seals = fcntl(passed, F_GET_SEALS);
        CHECK_INT(seals, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
        struct stat st;
        CHECK_INT(fstat(passed, &st), 0);
        _cleanup_free_ char *content = xmalloc((size_t)st.st_size);
        CHECK_INT(pread(passed, content, (size_t)st.st_size, 0), st.st_size);
        _cleanup_buf_ struct buf got = BUF_INIT;
        CHECK_INT(decode_entry(content, (size_t)st.st_size, &got), 2);
        CHECK(decoded_is(&got, iov, 2));
        journal_send_set_socket_path(NULL);
}

TEST(entry_above_the_default_buffer_still_fits_a_datagram)
{
        size_t def_limit, limit = datagram_limit(&def_limit);
        /* Only where the raised SO_SNDBUF makes a difference (wmem_max above the default). */
        if (limit <= def_limit + 131072)
                return;
        _cleanup_close_ int fd = journal_receiver("journal-medium");
        CHECK(fd >= 0);
        size_t size = def_limit + 65536;
        _cleanup_free_ char *msg = NULL;
        struct iovec iov[2];
        big_entry(size, &msg, iov);
        CHECK_INT(journal_sendv(iov, 2), 0);
        _cleanup_free_ char *buf = xmalloc(size + 1024);
        int passed;
        ssize_t n = dgram_recv(fd, buf, size + 1024, &passed, 5000);
        CHECK_INT(passed, -1);
        CHECK(n > (ssize_t)size);
        _cleanup_buf_ struct buf got = BUF_INIT;
        CHECK_INT(decode_entry(buf, (size_t)n, &got), 2);
        CHECK(decoded_is(&got, iov, 2));
        journal_send_set_socket_path(NULL);
}

/* A child that closes what it inherited and reuses the numbers for stream sockets (which refuse a
 * sendmsg with an address), then logs: the cached number is no longer the journal socket. */
static int child_reusing_numbers(void)
{
        syscall(SYS_close_range, 3u, ~0u, 0u);
        for (int i = 0; i < 32; i++) {
                int sv[2];
                if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
                        return 2;
        }
        struct iovec iov[] = {FIELD("MESSAGE=from the child")};
        return journal_sendv(iov, 1) == 0 ? 0 : 1;
}

static int child_inheriting(void)
{
        struct iovec iov[] = {FIELD("MESSAGE=inherited")};
        return journal_sendv(iov, 1) == 0 ? 0 : 1;
}

static int run_child(int (*fn)(void))
{
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0)
                _exit(fn());
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) != pid)
                return -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

static bool received_is(int fd, const char *expect)
{
        char buf[256];
        int passed;
        ssize_t n = dgram_recv(fd, buf, sizeof buf, &passed, 5000);
        return n == (ssize_t)strlen(expect) && passed < 0 && memcmp(buf, expect, (size_t)n) == 0;
}

TEST(forked_children_keep_logging)
{
        _cleanup_close_ int fd = journal_receiver("journal-fork");
        CHECK(fd >= 0);
        /* The parent opens (and caches) its socket first, so that the children inherit it. */
        struct iovec iov[] = {FIELD("MESSAGE=parent")};
        CHECK_INT(journal_sendv(iov, 1), 0);
        CHECK(received_is(fd, "MESSAGE=parent\n"));
        CHECK_INT(run_child(child_inheriting), 0);
        CHECK(received_is(fd, "MESSAGE=inherited\n"));
        CHECK_INT(run_child(child_reusing_numbers), 0);
        CHECK(received_is(fd, "MESSAGE=from the child\n"));
        /* The parent's own socket was not disturbed. */
        CHECK_INT(journal_sendv(iov, 1), 0);
        CHECK(received_is(fd, "MESSAGE=parent\n"));
        journal_send_set_socket_path(NULL);
}

/* Under the allow-list of a role with the common group only: a notification, a plain entry and a memfd
 * entry. A call outside the list kills the child with SIGSYS. */
static int child_in_role(void)
{
        if (sandbox_apply_baseline() < 0 || sandbox_apply_role("anvil", false) < 0)
                return 2;
        if (notify_send("READY=1") <= 0)
                return 3;
        struct iovec iov[] = {FIELD("MESSAGE=sandboxed")};
        if (journal_sendv(iov, 1) < 0)
                return 4;
        size_t def_limit, limit = datagram_limit(&def_limit);
        _cleanup_free_ char *msg = NULL;
        struct iovec big[2];
        big_entry(limit + 4096, &msg, big);
        return journal_sendv(big, 2) < 0 ? 5 : 0;
}

TEST(protocols_run_under_the_common_allow_list)
{
        _cleanup_close_ int fd = journal_receiver("journal-sandbox");
        CHECK(fd >= 0);
        _cleanup_free_ char *notify = xasprintf("%s/notify-sandbox", unit_tmpdir());
        _cleanup_close_ int nfd = dgram_bind(notify);
        CHECK(nfd >= 0);
        setenv("NOTIFY_SOCKET", notify, 1);
        /* Not cached before the fork: the child opens its own socket under the filter. */
        CHECK_INT(run_child(child_in_role), 0);
        unsetenv("NOTIFY_SOCKET");
        CHECK(received_is(nfd, "READY=1"));
        CHECK(received_is(fd, "MESSAGE=sandboxed\n"));
        char small[16];
        _cleanup_close_ int passed = -1;
        CHECK_INT(dgram_recv(fd, small, sizeof small, &passed, 5000), 0);
        CHECK(passed >= 0);
        journal_send_set_socket_path(NULL);
}

/* Send n fields "F<i>=value <i>", every third with a newline (binary framing); owned keeps them. */
static int send_many(size_t n, struct iovec *iov, struct strv *owned)
{
        for (size_t i = 0; i < n; i++) {
                strv_push_take(owned, xasprintf("F%zu=value%s%zu", i, i % 3 ? " " : "\n", i));
                iov[i] = FIELD(owned->v[i]);
        }
        return journal_sendv(iov, n);
}

TEST(many_fields_in_a_datagram_or_beyond_iov_max_in_a_memfd)
{
        _cleanup_close_ int fd = journal_receiver("journal-many");
        CHECK(fd >= 0);
        /* More fields than fit the module's inline arrays: still one datagram. */
        struct iovec iov[600];
        _cleanup_strv_ struct strv owned = STRV_INIT;
        CHECK_INT(send_many(40, iov, &owned), 0);
        char buf[65536];
        int passed;
        ssize_t n = dgram_recv(fd, buf, sizeof buf, &passed, 5000);
        CHECK(n > 0);
        CHECK_INT(passed, -1);
        _cleanup_buf_ struct buf got = BUF_INIT;
        CHECK_INT(decode_entry(buf, (size_t)n, &got), 40);
        CHECK(decoded_is(&got, iov, 40));
        /* Two or five pieces per field: 1800 exceed IOV_MAX (1024), which sendmsg refuses as too long. */
        strv_done(&owned);
        CHECK_INT(send_many(600, iov, &owned), 0);
        _cleanup_close_ int mfd = -1;
        CHECK_INT(dgram_recv(fd, buf, sizeof buf, &mfd, 5000), 0);
        CHECK(mfd >= 0);
        struct stat st;
        CHECK_INT(fstat(mfd, &st), 0);
        _cleanup_free_ char *content = xmalloc((size_t)st.st_size);
        CHECK_INT(pread(mfd, content, (size_t)st.st_size, 0), st.st_size);
        buf_truncate(&got, 0);
        CHECK_INT(decode_entry(content, (size_t)st.st_size, &got), 600);
        CHECK(decoded_is(&got, iov, 600));
        journal_send_set_socket_path(NULL);
}

/* The module's cached socket, found from outside: the one unbound AF_UNIX datagram socket of this test. */
static int find_cached_socket(void)
{
        for (int fd = 3; fd < 1024; fd++) {
                struct sockaddr_un sa;
                socklen_t len = sizeof sa;
                int type = 0;
                socklen_t tlen = sizeof type;
                if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0 && sa.sun_family == AF_UNIX &&
                    len == sizeof(sa_family_t) && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 &&
                    type == SOCK_DGRAM)
                        return fd;
        }
        return -1;
}

TEST(socket_closed_behind_its_back_is_replaced)
{
        _cleanup_close_ int fd = journal_receiver("journal-reopen");
        CHECK(fd >= 0);
        struct iovec iov[] = {FIELD("MESSAGE=before")};
        CHECK_INT(journal_sendv(iov, 1), 0);
        CHECK(received_is(fd, "MESSAGE=before\n"));
        int cached = find_cached_socket();
        CHECK(cached >= 0);
        /* Another part of the program closed it and got the number for a file. */
        _cleanup_close_ int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        CHECK(null >= 0);
        CHECK_INT(dup2(null, cached), cached);
        iov[0] = FIELD("MESSAGE=after");
        CHECK_INT(journal_sendv(iov, 1), 0);
        CHECK(received_is(fd, "MESSAGE=after\n"));
        /* The file at that number is still the program's: not closed by the module. */
        CHECK(fcntl(cached, F_GETFD) >= 0);
        close(cached);
        journal_send_set_socket_path(NULL);
}
