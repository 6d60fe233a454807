/* instance.c: run-time paths of an instance and the master.pid lock that says whether it runs. */
#include "instance.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "alloc.h"
#include "postd-build.h"

static char *get_copy(struct config *c, const char *name, const char *fallback)
{
        const char *v = config_get(c, name);
        return xstrdup(isempty(v) ? fallback : v);
}

const char *instance_default_config_dir(void)
{
        const char *d = getenv("POSTD_DEFAULT_CONFIG_DIR");
        return isempty(d) ? POSTD_CONFIG_DIR : d;
}

void instance_paths_from_config(struct config *c, struct instance_paths *ret)
{
        struct instance_paths p = {0};
        p.config_dir = xstrdup(config_directory(c));
        p.queue_dir = get_copy(c, "queue_directory", "/var/spool/postfix");
        p.daemon_dir = get_copy(c, "daemon_directory", "/usr/libexec/postfix");
        p.syslog_name = get_copy(c, "syslog_name", "postfix");
        const char *pid = config_get(c, "process_id_directory");
        if (isempty(pid))
                pid = "pid";
        p.pid_dir = pid[0] == '/' ? xstrdup(pid) : xasprintf("%s/%s", p.queue_dir, pid);
        p.pid_file = xasprintf("%s/master.pid", p.pid_dir);
        p.private_dir = xasprintf("%s/private", p.queue_dir);
        p.public_dir = xasprintf("%s/public", p.queue_dir);
        *ret = p;
}

void instance_paths_done(struct instance_paths *p)
{
        free(p->config_dir);
        free(p->queue_dir);
        free(p->daemon_dir);
        free(p->syslog_name);
        free(p->pid_dir);
        free(p->pid_file);
        free(p->private_dir);
        free(p->public_dir);
        *p = (struct instance_paths){0};
}

char *instance_socket_path(const struct instance_paths *p, const char *service, bool private_)
{
        return xasprintf("%s/%s", private_ ? p->private_dir : p->public_dir, service);
}

int instance_master_pid(const struct instance_paths *p, pid_t *ret)
{
        _cleanup_close_ int fd = open(p->pid_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        /* F_GETLK needs a lock type compatible with the open mode only for setting; asking is fine. */
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (fcntl(fd, F_GETLK, &fl) < 0)
                return -errno;
        if (fl.l_type == F_UNLCK)
                return -ESRCH;
        *ret = fl.l_pid;
        return 0;
}

int instance_lock_pid_file(const struct instance_paths *p, int *ret_fd, pid_t *ret_pid)
{
        if (mkdir(p->pid_dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        _cleanup_close_ int fd = open(p->pid_file, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return -errno;
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (fcntl(fd, F_SETLK, &fl) < 0) {
                if (errno != EAGAIN && errno != EACCES)
                        return -errno;
                struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
                if (ret_pid && fcntl(fd, F_GETLK, &q) == 0)
                        *ret_pid = q.l_type == F_UNLCK ? 0 : q.l_pid;
                return -EBUSY;
        }
        char text[32];
        int n = snprintf(text, sizeof text, "%10d\n", (int)getpid());
        if (ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t)n, 0) != n)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}
