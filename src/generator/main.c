/* main.c: postfix-generator: writes each Postfix instance's listeners and postfix.target wants at boot. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "fileio.h"
#include "generator.h"
#include "instance.h"
#include "instance_check.h"
#include "journal_send.h"
#include "postd-build.h"

#ifndef POSTD_UNIT_DIR
#define POSTD_UNIT_DIR "/usr/lib/systemd/system"
#endif

/*
 * At boot the generator runs before the network is configured, so an address that no interface has
 * yet may well come with it: only a later run (a daemon-reload on the running host) skips an
 * instance for such an address; at boot a missing one makes the socket unit fail with the bind error.
 * This stamp in /run (a tmpfs, empty at every boot) tells the runs apart.
 */
#define GEN_BOOT_STAMP "/run/postd-generator.stamp"

static int kmsg_fd = -1;
static bool under_systemd;

/*
 * Under systemd the generator's stderr may go nowhere. The kernel log reaches the journal at boot; in a
 * container there is no /dev/kmsg, but at a daemon-reload journald is up and takes the line directly.
 */
static int journal_say(int prio, const char *text)
{
        _cleanup_free_ char *message = xasprintf("MESSAGE=postfix-generator: %s", text);
        _cleanup_free_ char *priority = xasprintf("PRIORITY=%d", prio);
        static const char ident[] = "SYSLOG_IDENTIFIER=postfix-generator";
        struct iovec iov[] = {
                {message, strlen(message)},
                {priority, strlen(priority)},
                {(void *)ident, sizeof ident - 1},
        };
        return journal_sendv(iov, ELEMENTSOF(iov));
}

_printf_(2, 3) static void say(int prio, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        struct buf b = BUF_INIT;
        buf_vprintf(&b, fmt, ap);
        va_end(ap);
        if (under_systemd && kmsg_fd < 0 && journal_say(prio, buf_str(&b)) >= 0) {
                buf_done(&b);
                return;
        }
        struct buf line = BUF_INIT;
        if (kmsg_fd >= 0)
                buf_printf(&line, "<%d>", prio);
        buf_printf(&line, "postfix-generator: %s\n", buf_str(&b));
        if (write(kmsg_fd >= 0 ? kmsg_fd : STDERR_FILENO, buf_str(&line), line.len) < 0) {
                /* nowhere left to say it */
        }
        buf_done(&line);
        buf_done(&b);
}

static int mkdir_parents(const char *dir, const char *rel)
{
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, rel);
        for (char *s = p + strlen(dir) + 1; (s = strchr(s, '/')); s++) {
                *s = '\0';
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        return 0;
}

static int write_files(const char *dir, const struct gen_output *out)
{
        for (size_t i = 0; i < out->n_files; i++) {
                const struct gen_file *f = &out->files[i];
                int r = mkdir_parents(dir, f->path);
                _cleanup_free_ char *path = xasprintf("%s/%s", dir, f->path);
                if (r >= 0 && f->symlink) {
                        (void)unlink(path);
                        r = symlink(f->symlink, path) < 0 ? -errno : 0;
                } else if (r >= 0) {
                        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                        size_t len = strlen(f->text);
                        if (fd < 0 || write(fd, f->text, len) != (ssize_t)len)
                                r = -errno;
                }
                if (r < 0) {
                        say(3, "write %s: %s", path, strerror(-r));
                        return r;
                }
        }
        return 0;
}

/* Whether listener addresses are checked against the interfaces now (see GEN_BOOT_STAMP). */
static bool network_settled(void)
{
        if (!under_systemd)
                return true; /* run by hand on a running host */
        const char *initrd = getenv("SYSTEMD_IN_INITRD");
        if (initrd && streq(initrd, "1"))
                return false;
        if (access(GEN_BOOT_STAMP, F_OK) == 0)
                return true;
        int fd = open(GEN_BOOT_STAMP, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd >= 0)
                close(fd);
        return false;
}

static bool have_ipv6(void)
{
        int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return false;
        close(fd);
        return true;
}

/* One instance: loads its two files and adds its units to out; a broken one is skipped, never fatal. */
static void one_instance(const char *dir, bool is_default, bool ipv6, bool check_local, struct strv *seen,
                         struct gen_output *out)
{
        struct config *c = NULL;
        int r = config_load(dir, &c);
        if (r < 0) {
                strv_push_take(&out->messages, xasprintf("%s: skipped: main.cf: %s", dir, strerror(-r)));
                return;
        }
        _cleanup_free_ char *path = mastercf_path(dir);
        struct mastercf m = {0};
        r = mastercf_load(dir, &m);
        if (r < 0) {
                strv_push_take(&out->messages, xasprintf("%s: skipped: %s", path, strerror(-r)));
                config_free(c);
                return;
        }
        /* What would stop the master anyway (a bad main.cf line, an unsupported table type) skips the
         * instance here, so that postfix.target starts the others and the reason is in the boot log. */
        struct strv problems = STRV_INIT;
        if (config_check(c, &problems) == 0)
                instance_check_table_types(c, &m, &problems);
        if (problems.n > 0) {
                strv_push_take(&out->messages,
                               xasprintf("%s: skipped: %s%s", dir, problems.v[0],
                                         problems.n > 1 ? " (postfix check lists all problems)" : ""));
                strv_done(&problems);
                mastercf_done(&m);
                config_free(c);
                return;
        }
        _cleanup_free_ char *inst = gen_unit_instance(c, is_default);
        bool dup = false;
        for (size_t i = 0; inst && i < seen->n; i++)
                dup = dup || streq(seen->v[i], inst);
        if (dup)
                strv_push_take(&out->messages,
                               xasprintf("%s: skipped: another instance already is postfix@%s", dir, inst));
        else {
                struct gen_instance in = {.config = c,
                                          .master = &m,
                                          .is_default = is_default,
                                          .have_ipv6 = ipv6,
                                          .check_local = check_local,
                                          .template_path = POSTD_UNIT_DIR "/postfix@.service"};
                if (gen_instance(&in, out) >= 0)
                        strv_push(seen, inst);
        }
        mastercf_done(&m);
        config_free(c);
}

int main(int argc, char **argv)
{
        if (argc != 2 && argc != 4) {
                fprintf(stderr, "usage: postfix-generator NORMAL_DIR [EARLY_DIR LATE_DIR]\n");
                return 1;
        }
        under_systemd = getenv("SYSTEMD_SCOPE") != NULL;
        /* First of all: the boot's run leaves the stamp even when nothing is configured yet. */
        bool check_local = network_settled();
        if (under_systemd)
                kmsg_fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC | O_NOCTTY);
        const char *dir = argv[1];
        const char *def = instance_default_config_dir();
        struct config *c = NULL;
        int r = config_load(def, &c);
        if (r == -ENOENT)
                return 0; /* not configured yet: nothing to start */
        if (r < 0) {
                say(3, "%s/main.cf: %s: no Postfix instance is started", def, strerror(-r));
                return 0;
        }
        bool ipv6 = have_ipv6();
        struct gen_output out = {0};
        struct strv seen = STRV_INIT, dirs = STRV_INIT;
        config_get_list(c, "multi_instance_directories", &dirs);
        one_instance(def, true, ipv6, check_local, &seen, &out);
        for (size_t i = 0; i < dirs.n; i++) {
                if (i >= GEN_INSTANCES_MAX) {
                        say(4, "more than %d multi_instance_directories: the rest are ignored",
                            GEN_INSTANCES_MAX);
                        break;
                }
                one_instance(dirs.v[i], false, ipv6, check_local, &seen, &out);
        }
        for (size_t i = 0; i < out.messages.n; i++)
                say(strstr(out.messages.v[i], "skipped") ? 3 : 5, "%s", out.messages.v[i]);
        r = write_files(dir, &out);
        gen_output_done(&out);
        strv_done(&seen);
        strv_done(&dirs);
        config_free(c);
        /* Never fail the boot: a write error is logged, the other units of the system still load. */
        return 0;
}
