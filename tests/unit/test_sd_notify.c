/* test_sd_notify.c: notification datagrams to a real socket ($NOTIFY_SOCKET path and abstract forms), the
 * watchdog variables, and the booted test in a mount namespace of its own. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "alloc.h"
#include "dgram.h"
#include "sd_notify.h"

/* Receives one datagram and compares it byte for byte (its length included) with expect. */
static int received_is(int fd, const char *expect)
{
        char buf[512];
        int passed;
        ssize_t n = dgram_recv(fd, buf, sizeof buf, &passed, 5000);
        if (n < 0 || passed >= 0)
                return 0;
        return (size_t)n == strlen(expect) && memcmp(buf, expect, (size_t)n) == 0;
}

TEST(notify_without_socket_sends_nothing)
{
        unsetenv("NOTIFY_SOCKET");
        CHECK_INT(notify_send("READY=1"), 0);
        setenv("NOTIFY_SOCKET", "", 1);
        CHECK_INT(notify_sendf("STATUS=%d", 1), 0);
        unsetenv("NOTIFY_SOCKET");
}

TEST(notify_path_socket_gets_the_state_verbatim)
{
        _cleanup_free_ char *path = xasprintf("%s/notify", unit_tmpdir());
        _cleanup_close_ int fd = dgram_bind(path);
        CHECK(fd >= 0);
        setenv("NOTIFY_SOCKET", path, 1);
        CHECK(notify_send("READY=1\nSTATUS=accepting mail") > 0);
        CHECK(received_is(fd, "READY=1\nSTATUS=accepting mail"));
        CHECK(notify_sendf("EXTEND_TIMEOUT_USEC=%llu\nSTATUS=%s", 90000000ULL, "recovering") > 0);
        CHECK(received_is(fd, "EXTEND_TIMEOUT_USEC=90000000\nSTATUS=recovering"));
        /* The variable stays for the next call (the master notifies on every state change). */
        CHECK_STR(getenv("NOTIFY_SOCKET"), path);
        CHECK(notify_send("WATCHDOG=1") > 0);
        CHECK(received_is(fd, "WATCHDOG=1"));
        unsetenv("NOTIFY_SOCKET");
}

TEST(notify_abstract_socket)
{
        /* Abstract names are machine-wide: the pid keeps parallel runs apart. */
        _cleanup_free_ char *name = xasprintf("@postd-unit-notify-%d", (int)getpid());
        _cleanup_close_ int fd = dgram_bind(name);
        CHECK(fd >= 0);
        setenv("NOTIFY_SOCKET", name, 1);
        CHECK(notify_send("STOPPING=1") > 0);
        CHECK(received_is(fd, "STOPPING=1"));
        unsetenv("NOTIFY_SOCKET");
}

TEST(notify_bad_addresses_are_errors)
{
        CHECK_INT(notify_send(""), -EINVAL);
        CHECK_INT(notify_send(NULL), -EINVAL);
        setenv("NOTIFY_SOCKET", "relative/path", 1);
        CHECK_INT(notify_send("READY=1"), -EAFNOSUPPORT);
        setenv("NOTIFY_SOCKET", "@", 1);
        CHECK_INT(notify_send("READY=1"), -EINVAL);
        char long_path[200];
        memset(long_path, 'x', sizeof long_path - 1);
        long_path[0] = '/';
        long_path[sizeof long_path - 1] = '\0';
        setenv("NOTIFY_SOCKET", long_path, 1);
        CHECK_INT(notify_send("READY=1"), -EINVAL);
        _cleanup_free_ char *missing = xasprintf("%s/no-such-socket", unit_tmpdir());
        setenv("NOTIFY_SOCKET", missing, 1);
        CHECK_INT(notify_send("READY=1"), -ENOENT);
        unsetenv("NOTIFY_SOCKET");
}

TEST(watchdog_interval_and_pid)
{
        _cleanup_free_ char *me = xasprintf("%d", (int)getpid());
        _cleanup_free_ char *other = xasprintf("%d", (int)getppid());
        uint64_t usec = 7;
        unsetenv("WATCHDOG_USEC");
        unsetenv("WATCHDOG_PID");
        CHECK_INT(notify_watchdog_usec(&usec), 0);
        CHECK_INT(usec, 0);

        setenv("WATCHDOG_USEC", "30000000", 1);
        CHECK_INT(notify_watchdog_usec(&usec), 1);
        CHECK_INT(usec, 30000000);
        setenv("WATCHDOG_PID", me, 1);
        usec = 0;
        CHECK_INT(notify_watchdog_usec(&usec), 1);
        CHECK_INT(usec, 30000000);
        /* Meant for another process (our parent, watched by systemd): off for us. */
        setenv("WATCHDOG_PID", other, 1);
        usec = 7;
        CHECK_INT(notify_watchdog_usec(&usec), 0);
        CHECK_INT(usec, 0);
        unsetenv("WATCHDOG_USEC");
        unsetenv("WATCHDOG_PID");
}

TEST(watchdog_malformed_values)
{
        static const char *const bad[] = {"", "abc", "-5", "+5", " 5", "12x", "0", "18446744073709551615"};
        uint64_t usec = 7;
        unsetenv("WATCHDOG_PID");
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                setenv("WATCHDOG_USEC", bad[i], 1);
                if (notify_watchdog_usec(&usec) != -EINVAL)
                        unit_fail(__FILE__, __LINE__, "WATCHDOG_USEC=\"%s\" not refused", bad[i]);
        }
        CHECK_INT(usec, 7);
        setenv("WATCHDOG_USEC", "99999999999999999999999", 1);
        CHECK_INT(notify_watchdog_usec(&usec), -ERANGE);
        setenv("WATCHDOG_USEC", "1000000", 1);
        setenv("WATCHDOG_PID", "12ab", 1);
        CHECK_INT(notify_watchdog_usec(&usec), -EINVAL);
        setenv("WATCHDOG_PID", "0", 1);
        CHECK_INT(notify_watchdog_usec(&usec), -EINVAL);
        CHECK_INT(usec, 7);
        unsetenv("WATCHDOG_USEC");
        unsetenv("WATCHDOG_PID");
}

/*
 * In a child with a mount namespace of its own and a fresh tmpfs on /run: what systemd_booted() says
 * with no /run/systemd/system, with a directory there, and with a plain file there. Exit status: 0 when
 * all three are right, 10+step at the first wrong one, 2 when the namespace cannot be had.
 */
static int booted_in_private_run(void)
{
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") < 0)
                return 2;
        if (systemd_booted())
                return 10;
        if (mkdir("/run/systemd", 0755) < 0 || mkdir("/run/systemd/system", 0755) < 0)
                return 2;
        if (!systemd_booted())
                return 11;
        if (rmdir("/run/systemd/system") < 0)
                return 2;
        int fd = open("/run/systemd/system", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
                return 2;
        close(fd);
        return systemd_booted() ? 12 : 0;
}

TEST(booted_means_run_systemd_system_is_a_directory)
{
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0)
                _exit(booted_in_private_run());
        int status = 0;
        CHECK_INT(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status));
        if (WEXITSTATUS(status) == 2)
                unit_fail(__FILE__, __LINE__, "no private mount namespace (run the unit tests as root)");
        CHECK_INT(WEXITSTATUS(status), 0);
}
