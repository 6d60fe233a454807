/* test_listen_fds.c: socket activation's variables and descriptors, each case in a child that puts real
 * sockets at 3.. as systemd does. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "alloc.h"
#include "listen_fds.h"

/* In the child: report the first failed expectation on stderr, exit with 1. */
#define EXPECT(cond)                                                                         \
        do {                                                                                 \
                if (!(cond)) {                                                               \
                        fprintf(stderr, "  %s:%d: EXPECT(%s)\n", __FILE__, __LINE__, #cond); \
                        _exit(1);                                                            \
                }                                                                            \
        } while (0)

/* Open sockets without FD_CLOEXEC at LISTEN_FDS_START.. LISTEN_FDS_START+n-1 (fds 0-2 stay). */
static void put_sockets(int n)
{
        for (int i = 0; i < n; i++) {
                int sv[2];
                EXPECT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
                int want = LISTEN_FDS_START + i;
                /* socketpair takes the lowest free numbers, maybe want itself: park the end above. */
                int moved = fcntl(sv[0], F_DUPFD, 100);
                EXPECT(moved >= 0);
                close(sv[0]);
                close(sv[1]);
                EXPECT(dup2(moved, want) == want);
                close(moved);
        }
}

static bool cloexec(int fd)
{
        int flags = fcntl(fd, F_GETFD);
        return flags >= 0 && (flags & FD_CLOEXEC);
}

static void set_env(const char *pid, const char *fds, const char *names)
{
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        if (pid)
                setenv("LISTEN_PID", pid, 1);
        if (fds)
                setenv("LISTEN_FDS", fds, 1);
        if (names)
                setenv("LISTEN_FDNAMES", names, 1);
}

static void expect_env_gone(void)
{
        EXPECT(!getenv("LISTEN_PID"));
        EXPECT(!getenv("LISTEN_FDS"));
        EXPECT(!getenv("LISTEN_FDNAMES"));
}

static bool names_are(char **names, const char *const *expect, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (!names || !names[i] || strcmp(names[i], expect[i]) != 0)
                        return false;
        return names[n] == NULL;
}

static void free_names(char **names)
{
        for (size_t i = 0; names && names[i]; i++)
                free(names[i]);
        free(names);
}

/* Runs case_fn in a child; CHECKs it exited 0. */
#define IN_CHILD(case_fn)                                    \
        do {                                                 \
                fflush(NULL);                                \
                pid_t pid_ = fork();                         \
                CHECK(pid_ >= 0);                            \
                if (pid_ == 0) {                             \
                        case_fn();                           \
                        _exit(0);                            \
                }                                            \
                int status_ = 0;                             \
                CHECK_INT(waitpid(pid_, &status_, 0), pid_); \
                CHECK(WIFEXITED(status_));                   \
                CHECK_INT(WEXITSTATUS(status_), 0);          \
        } while (0)

static char *my_pid(void)
{
        return xasprintf("%d", (int)getpid());
}

static void case_named(void)
{
        put_sockets(3);
        /* One more without FD_CLOEXEC right after them: not passed, so not to be touched. */
        EXPECT(dup2(LISTEN_FDS_START, LISTEN_FDS_START + 3) == LISTEN_FDS_START + 3);
        set_env(my_pid(), "3", "smtp:submission:metrics");
        char **names = NULL;
        EXPECT(listen_fds_take(&names) == 3);
        static const char *const expect[] = {"smtp", "submission", "metrics"};
        EXPECT(names_are(names, expect, 3));
        for (int i = 0; i < 3; i++)
                EXPECT(cloexec(LISTEN_FDS_START + i));
        EXPECT(!cloexec(LISTEN_FDS_START + 3));
        expect_env_gone();
        free_names(names);
        /* A second call finds nothing: the variables are gone. */
        EXPECT(listen_fds_take(&names) == 0 && names == NULL);
}

TEST(named_sockets_are_taken_and_marked_cloexec)
{
        IN_CHILD(case_named);
}

static void case_unnamed(void)
{
        put_sockets(2);
        set_env(my_pid(), "2", NULL);
        char **names = NULL;
        EXPECT(listen_fds_take(&names) == 2);
        static const char *const expect[] = {"unknown", "unknown"};
        EXPECT(names_are(names, expect, 2));
        EXPECT(cloexec(LISTEN_FDS_START) && cloexec(LISTEN_FDS_START + 1));
        expect_env_gone();
        free_names(names);
}

TEST(names_absent_are_unknown)
{
        IN_CHILD(case_unnamed);
}

static void case_count_mismatch(void)
{
        put_sockets(2);
        set_env(my_pid(), "2", "smtp:submission:metrics");
        char **names = NULL;
        EXPECT(listen_fds_take(&names) == 2);
        static const char *const expect[] = {"unknown", "unknown"};
        EXPECT(names_are(names, expect, 2));
        free_names(names);
        expect_env_gone();

        /* An empty name holds its position. */
        put_sockets(3);
        set_env(my_pid(), "3", "a::c");
        EXPECT(listen_fds_take(&names) == 3);
        static const char *const expect2[] = {"a", "", "c"};
        EXPECT(names_are(names, expect2, 3));
        free_names(names);

        /* The names are optional for the caller. */
        put_sockets(1);
        set_env(my_pid(), "1", "smtp");
        EXPECT(listen_fds_take(NULL) == 1);
        EXPECT(cloexec(LISTEN_FDS_START));
        expect_env_gone();
}

TEST(names_of_another_count_are_unknown)
{
        IN_CHILD(case_count_mismatch);
}

static void case_not_ours(void)
{
        put_sockets(2);
        static char *untouched[] = {NULL};
        char **names = untouched;
        set_env(NULL, NULL, NULL);
        EXPECT(listen_fds_take(&names) == 0 && names == NULL);

        /* Left by a parent that did not unset them: not ours, but unset all the same. */
        char *parent = xasprintf("%d", (int)getppid());
        set_env(parent, "2", "smtp:submission");
        names = untouched;
        EXPECT(listen_fds_take(&names) == 0 && names == NULL);
        EXPECT(!cloexec(LISTEN_FDS_START) && !cloexec(LISTEN_FDS_START + 1));
        expect_env_gone();
        free(parent);

        set_env(my_pid(), "0", NULL);
        EXPECT(listen_fds_take(&names) == 0 && names == NULL);
        expect_env_gone();
}

TEST(no_activation_or_another_pid_gives_zero)
{
        IN_CHILD(case_not_ours);
}

static void case_malformed(void)
{
        put_sockets(1);
        char **names = NULL;
        set_env("12ab", "1", NULL);
        EXPECT(listen_fds_take(&names) == -EINVAL && names == NULL);
        expect_env_gone();
        set_env(my_pid(), "one", NULL);
        EXPECT(listen_fds_take(&names) == -EINVAL && names == NULL);
        expect_env_gone();
        set_env(my_pid(), "-1", NULL);
        EXPECT(listen_fds_take(&names) == -EINVAL);
        set_env(my_pid(), "4294967296", NULL);
        EXPECT(listen_fds_take(&names) == -ERANGE);
        set_env("0", "1", NULL);
        EXPECT(listen_fds_take(&names) == -EINVAL);
        EXPECT(!cloexec(LISTEN_FDS_START));
        /* Announced but not open. */
        close(LISTEN_FDS_START + 1);
        set_env(my_pid(), "2", NULL);
        EXPECT(listen_fds_take(&names) == -EBADF && names == NULL);
        expect_env_gone();
}

TEST(malformed_variables_are_errors)
{
        IN_CHILD(case_malformed);
}
