/* instance_dirs.c: the one place that creates an instance's directories (postmulti create, postfix start,
 * postfix set-permissions). */
#include "instance_dirs.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "macro.h"
#include "selabel.h"

int instance_owners(struct config *c, struct queue_owners *ret, char **ret_error)
{
        const char *owner = config_get(c, "mail_owner"), *group = config_get(c, "setgid_group");
        struct passwd *pw = getpwnam(owner);
        if (!pw) {
                *ret_error =
                        xasprintf("unknown mail_owner account: %s (create it, e.g. with systemd-sysusers, "
                                  "or set mail_owner in %s)",
                                  owner, config_maincf_path(c));
                return -ENOENT;
        }
        struct group *gr = getgrnam(group);
        if (!gr) {
                *ret_error = xasprintf("unknown setgid_group: %s (create it, e.g. with systemd-sysusers, or "
                                       "set setgid_group in %s)",
                                       group, config_maincf_path(c));
                return -ENOENT;
        }
        *ret = (struct queue_owners){.mail_owner = pw->pw_uid,
                                     .mail_group = pw->pw_gid,
                                     .setgid_group = gr->gr_gid,
                                     .root_uid = 0,
                                     .root_gid = 0};
        return 0;
}

/* mkdir, then owner and mode through the descriptor, never through a symbolic link planted in between. */
static int make_owned_dir(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
                return -errno;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0)
                return -errno;
        return 0;
}

int instance_create_dirs(struct config *c, unsigned what, char **ret_error)
{
        struct queue_owners o;
        int r = instance_owners(c, &o, ret_error);
        if (r < 0)
                return r;
        if (what & INSTANCE_DIRS_QUEUE) {
                const char *queue_dir = config_get(c, "queue_directory");
                r = queue_layout_create(queue_dir, &o);
                if (r < 0) {
                        *ret_error = xasprintf("create queue directory %s: %s", queue_dir, strerror(-r));
                        return r;
                }
        }
        if (what & INSTANCE_DIRS_DATA) {
                const char *data_dir = config_get(c, "data_directory");
                r = make_owned_dir(data_dir, 0700, o.mail_owner, o.mail_group);
                if (r < 0) {
                        *ret_error = xasprintf("create data directory %s: %s", data_dir, strerror(-r));
                        return r;
                }
                /* The queue layout labels its own directories; the data directory gets its type here. */
                r = selabel_restore(data_dir, false);
                if (r < 0)
                        msg_warn("%s: cannot restore its SELinux label: %s (run restorecon -R %s)", data_dir,
                                 strerror(-r), data_dir);
        }
        return 0;
}
