/* postfix_install.c: postfix set-permissions and post-install: the idempotent step packaging runs after
 * installing files (directories, set-gid programs, the alias file and its database). */
#include "postfix_install.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "dict.h"
#include "fileio.h"
#include "instance_dirs.h"
#include "log.h"

/* Local submission and queue listing need the setgid group for maildrop/ and public/ (Postfix's modes). */
static const char *const setgid_programs[] = {"postdrop", "postqueue"};

/* A new system's alias file: mail for system accounts and the RFC 2142 role names reaches root. */
static const char default_aliases[] =
        "# aliases: local aliases of the mail system, in aliases(5) format. After editing, run\n"
        "# \"newaliases\" to rebuild the database that local delivery reads (alias_database).\n"
        "#\n"
        "# Every address below ends at root; send root's mail to a person who reads it, e.g.\n"
        "#root:\t\talice\n"
        "\n"
        "postmaster:\troot\n"
        "MAILER-DAEMON:\tpostmaster\n"
        "abuse:\t\tpostmaster\n"
        "hostmaster:\troot\n"
        "webmaster:\troot\n"
        "security:\troot\n"
        "\n"
        "# System accounts that never read mail.\n"
        "bin:\t\troot\n"
        "daemon:\t\troot\n"
        "nobody:\t\troot\n"
        "postfix:\troot\n";

/* chown resets the set-gid bit, so the mode comes after the owner; through the descriptor, never a link. */
static int make_setgid(const char *path, gid_t gid)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        if (fchown(fd, 0, gid) < 0 || fchmod(fd, 02755) < 0)
                return -errno;
        return 0;
}

static int fix_programs(struct config *c, gid_t setgid_group)
{
        int rc = 0;
        const char *dir = config_get(c, "command_directory");
        for (size_t i = 0; i < ELEMENTSOF(setgid_programs); i++) {
                _cleanup_free_ char *path = xasprintf("%s/%s", dir, setgid_programs[i]);
                int r = make_setgid(path, setgid_group);
                if (r < 0) {
                        msg_error("set-gid %s: %s (is command_directory = %s right?)", path, strerror(-r),
                                  dir);
                        rc = 1;
                }
        }
        return rc;
}

/* The source file of each hash:/btree: alias database; a missing one gets the default aliases. */
static int create_alias_files(struct config *c, bool *ret_any)
{
        const char *t = config_get(c, "default_database_type");
        struct strv specs = STRV_INIT;
        config_get_list(c, "alias_database", &specs);
        int rc = 0;
        *ret_any = false;
        for (size_t i = 0; i < specs.n; i++) {
                _cleanup_free_ char *spec =
                        strchr(specs.v[i], ':') ? xstrdup(specs.v[i])
                                                : xasprintf("%s:%s", isempty(t) ? "hash" : t, specs.v[i]);
                _cleanup_free_ char *type = NULL, *name = NULL, *err = NULL;
                if (dict_split_spec(spec, &type, &name, &err) < 0 || !dict_type_is_db(type))
                        continue; /* newaliases names what it cannot build */
                *ret_any = true;
                if (access(name, F_OK) == 0)
                        continue;
                int r = write_file_atomic(name, default_aliases, sizeof default_aliases - 1, 0644);
                if (r < 0) {
                        msg_error("create %s: %s", name, strerror(-r));
                        rc = 1;
                } else
                        msg_info("created %s with the default aliases (postmaster: root)", name);
        }
        strv_done(&specs);
        return rc;
}

static int run_newaliases(struct config *c)
{
        /* postalias called "newaliases": packages rename newaliases itself for alternatives(8). */
        _cleanup_free_ char *prog = xasprintf("%s/postalias", config_get(c, "command_directory"));
        pid_t pid = fork();
        if (pid < 0) {
                msg_error("fork: %s", strerror(errno));
                return 1;
        }
        if (pid == 0) {
                execl(prog, "newaliases", "-C", config_directory(c), (char *)NULL);
                fprintf(stderr, "postfix: fatal: execute %s: %s\n", prog, strerror(errno));
                _exit(127);
        }
        int status = 0;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR) {
                        msg_error("waitpid: %s", strerror(errno));
                        return 1;
                }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                msg_error("newaliases (%s) -C %s failed", prog, config_directory(c));
                return 1;
        }
        return 0;
}

/* Postfix's post-install takes these keywords; postd always does the whole (idempotent) job. */
static bool known_keyword(const char *arg)
{
        return streq(arg, "create-missing") || streq(arg, "set-permissions") ||
               streq(arg, "upgrade-configuration") || streq(arg, "upgrade-permissions") ||
               streq(arg, "upgrade-source") || streq(arg, "upgrade-package") || strchr(arg, '=');
}

int postfix_set_permissions(struct config *c, int argc, char **argv)
{
        for (int i = 1; i < argc; i++)
                if (!known_keyword(argv[i]))
                        msg_fatal("%s: unknown argument \"%s\" (expected create-missing, set-permissions or "
                                  "upgrade-configuration)",
                                  argv[0], argv[i]);
        if (geteuid() != 0)
                msg_fatal("%s: must run as root (it sets owners and modes under %s)", argv[0],
                          config_get(c, "queue_directory"));

        _cleanup_free_ char *err = NULL;
        struct queue_owners o;
        if (instance_owners(c, &o, &err) < 0 ||
            instance_create_dirs(c, INSTANCE_DIRS_QUEUE | INSTANCE_DIRS_DATA, &err) < 0)
                msg_fatal("%s", err);
        int rc = fix_programs(c, o.setgid_group);
        bool any = false;
        rc |= create_alias_files(c, &any);
        if (any)
                rc |= run_newaliases(c);
        return rc;
}
