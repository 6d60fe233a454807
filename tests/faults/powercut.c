/* powercut.c: LD_PRELOAD shim for the fault tests: records what each fsync made durable, or dies after one.
 *
 * Power cut: active when POSTD_POWERCUT_DIR (the shadow directory) and POSTD_POWERCUT_ROOT (the tree to
 * watch) are set; see shadow.c for the model. fsync() and fdatasync() are the only calls postd makes durable
 * data with (no O_SYNC, O_DSYNC or msync; grep src/ before adding one; cleanup's sync_file_range(WRITE)
 * only starts a batch's writes early and guarantees nothing, so the model rightly ignores it). syncfs() and
 * sync() would make everything durable, which the model does not follow: they are recorded as
 * unsupported, and the test fails on that rather than counting with a wrong model.
 *
 * Kill at a chosen point: POSTD_FAULTS_KILL_AFTER_FSYNC="PROGRAM:SUFFIX" makes a process whose argv[0]
 * ends in "/PROGRAM" SIGKILL itself right after a successful fsync of a directory whose path ends in
 * SUFFIX (e.g. "cleanup:/incoming": after the commit, before the answer).
 * POSTD_FAULTS_KILL_AFTER_MARK="PROGRAM" makes it SIGKILL itself right after a successful fdatasync of a
 * file in the active queue whose last status slot write (a 32-byte pwrite) recorded a final outcome
 * (delivered or bounced): a delivery agent's record of a recipient's outcome, before it logs and reports;
 * not local's record of an attempt, which comes before the delivery.
 * POSTD_FAULTS_KILL_AFTER_APPEND="PROGRAM:PREFIX" makes a process of PROGRAM SIGKILL itself right after a
 * successful fsync of a file or directory whose path starts with PREFIX: local's mailbox child after the
 * mbox append's fsync (PREFIX the mbox) or after the Maildir rename's fsync (PREFIX ".../Maildir/new").
 * That child runs as the recipient and may not signal local, its parent: so a process of PROGRAM whose
 * waitpid() reports a child killed by SIGKILL kills itself too, before it logs or marks anything.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shadow.h"

static void note(int fd, const char *call)
{
        const char *shadow = getenv("POSTD_POWERCUT_DIR"), *root = getenv("POSTD_POWERCUT_ROOT");
        if (!shadow || !root)
                return;
        int saved = errno;
        int r = shadow_record_fd(shadow, root, fd);
        if (r < 0) {
                /* A sync the model failed to record would make the restored state harsher than the truth. */
                char what[256];
                snprintf(what, sizeof what, "cannot record %s of fd %d: %s", call, fd, strerror(-r));
                shadow_unsupported(shadow, what);
        }
        errno = saved;
}

static bool ends_with(const char *s, const char *suffix)
{
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && strcmp(s + a - b, suffix) == 0;
}

static bool is_program(const char *name)
{
        char argv0[4096] = "";
        int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        ssize_t n = read(fd, argv0, sizeof argv0 - 1);
        close(fd);
        if (n <= 0)
                return false;
        argv0[n] = 0;
        const char *base = strrchr(argv0, '/');
        return strcmp(base ? base + 1 : argv0, name) == 0;
}

/* The path fd is open on (via /proc/self/fd); false when it cannot be read. */
static bool fd_path(int fd, char path[static 4096])
{
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(proc, path, 4095);
        if (n < 0)
                return false;
        path[n] = 0;
        return true;
}

static void maybe_die(int fd)
{
        const char *spec = getenv("POSTD_FAULTS_KILL_AFTER_FSYNC");
        const char *colon = spec ? strchr(spec, ':') : NULL;
        if (!colon)
                return;
        char program[256], path[4096];
        snprintf(program, sizeof program, "%.*s", (int)(colon - spec), spec);
        struct stat st;
        if (!fd_path(fd, path) || fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode))
                return;
        if (ends_with(path, colon + 1) && is_program(program))
                raise(SIGKILL);
}

/* The state byte of this process's last status slot write (see POSTD_FAULTS_KILL_AFTER_MARK), -1 none. */
static int last_slot_state = -1;

static void note_pwrite(const void *buf, size_t count, ssize_t written)
{
        if (count == 32 && written == 32) /* QFILE_STATUS_SLOT_LEN: nothing else postd writes is that size */
                last_slot_state = ((const unsigned char *)buf)[0];
}

static void maybe_die_after_mark(int fd)
{
        const char *program = getenv("POSTD_FAULTS_KILL_AFTER_MARK");
        char path[4096];
        struct stat st;
        /* 1 delivered, 2 bounced (qfile.h): a final mark, not an attempt (3). */
        if (!program || (last_slot_state != 1 && last_slot_state != 2))
                return;
        if (!fd_path(fd, path) || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return;
        if (strstr(path, "/active/") && is_program(program))
                raise(SIGKILL);
}

static void maybe_die_after_append(int fd)
{
        const char *spec = getenv("POSTD_FAULTS_KILL_AFTER_APPEND");
        const char *colon = spec ? strchr(spec, ':') : NULL;
        if (!colon)
                return;
        char program[256], path[4096];
        snprintf(program, sizeof program, "%.*s", (int)(colon - spec), spec);
        if (!fd_path(fd, path))
                return;
        if (strncmp(path, colon + 1, strlen(colon + 1)) != 0 || !is_program(program))
                return;
        raise(SIGKILL);
}

#define REAL(name, type) ((type)dlsym(RTLD_NEXT, name))

/* Built, like postd, with _FILE_OFFSET_BITS=64: the headers make this pwrite64, the symbol postd calls. */
ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset)
{
        ssize_t r = REAL("pwrite64", ssize_t(*)(int, const void *, size_t, off_t))(fd, buf, count, offset);
        note_pwrite(buf, count, r);
        return r;
}

pid_t waitpid(pid_t pid, int *status, int options)
{
        int st = 0;
        pid_t r = REAL("waitpid", pid_t(*)(pid_t, int *, int))(pid, &st, options);
        const char *spec = getenv("POSTD_FAULTS_KILL_AFTER_APPEND");
        const char *colon = spec ? strchr(spec, ':') : NULL;
        if (r > 0 && colon && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
                char program[256];
                snprintf(program, sizeof program, "%.*s", (int)(colon - spec), spec);
                if (is_program(program))
                        raise(SIGKILL);
        }
        if (status)
                *status = st;
        return r;
}

int fsync(int fd)
{
        int r = REAL("fsync", int (*)(int))(fd);
        if (r == 0) {
                note(fd, "fsync");
                maybe_die(fd);
                maybe_die_after_append(fd);
        }
        return r;
}

int fdatasync(int fd)
{
        int r = REAL("fdatasync", int (*)(int))(fd);
        if (r == 0) {
                note(fd, "fdatasync");
                maybe_die_after_mark(fd);
        }
        return r;
}

int syncfs(int fd)
{
        const char *shadow = getenv("POSTD_POWERCUT_DIR");
        if (shadow)
                shadow_unsupported(shadow, "syncfs");
        return REAL("syncfs", int (*)(int))(fd);
}

void sync(void)
{
        const char *shadow = getenv("POSTD_POWERCUT_DIR");
        if (shadow)
                shadow_unsupported(shadow, "sync");
        REAL("sync", void (*)(void))();
}
