/* postmulti.c: Postfix's multi-instance manager: list, iterate over and create/enable/destroy instances. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "fileio.h"
#include "instance.h"
#include "instance_dirs.h"
#include "log.h"
#include "maincf.h"
#include "postd-build.h"
#include "sd_notify.h"
#include "selabel.h"

#define POSTMULTI_INSTANCES_MAX 1000 /* entries of multi_instance_directories */
#define POSTMULTI_ARGS_MAX      256  /* param=value arguments of create/import */

struct inst {
        char *name;  /* "-" for the default instance */
        char *group; /* "-" when none */
        bool enabled;
        char *dir;
};

struct opts {
        const char *action; /* -e */
        const char *new_name, *new_group;
        const char *sel_name, *sel_group;
        bool all, list, run_postfix, run_cmd;
};

static const char *default_dir;

static void load_instances(struct inst **ret, size_t *n)
{
        struct config *c = NULL;
        int r = config_load(default_dir, &c);
        if (r < 0)
                msg_fatal("open %s/main.cf: %s", default_dir, strerror(-r));
        struct strv dirs = STRV_INIT;
        config_get_list(c, "multi_instance_directories", &dirs);
        if (dirs.n > POSTMULTI_INSTANCES_MAX)
                msg_fatal("more than %d multi_instance_directories", POSTMULTI_INSTANCES_MAX);
        struct inst *v = xcalloc(dirs.n + 1, sizeof *v);
        const char *g = config_get(c, "multi_instance_group");
        v[0] = (struct inst){.name = xstrdup("-"),
                             .group = xstrdup(isempty(g) ? "-" : g),
                             .enabled = config_get_bool(c, "multi_instance_enable"),
                             .dir = xstrdup(default_dir)};
        config_free(c);
        size_t k = 1;
        for (size_t i = 0; i < dirs.n; i++) {
                r = config_load(dirs.v[i], &c);
                if (r < 0) {
                        msg_warn("instance %s: open main.cf: %s", dirs.v[i], strerror(-r));
                        continue;
                }
                const char *name = config_get(c, "multi_instance_name");
                g = config_get(c, "multi_instance_group");
                v[k++] = (struct inst){.name = xstrdup(isempty(name) ? "-" : name),
                                       .group = xstrdup(isempty(g) ? "-" : g),
                                       .enabled = config_get_bool(c, "multi_instance_enable"),
                                       .dir = xstrdup(dirs.v[i])};
                config_free(c);
        }
        strv_done(&dirs);
        *ret = v;
        *n = k;
}

static void free_instances(struct inst *v, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(v[i].name);
                free(v[i].group);
                free(v[i].dir);
        }
        free(v);
}

static bool selected(const struct inst *in, const struct opts *o)
{
        if (o->sel_name)
                return streq(in->name, o->sel_name) || streq(in->dir, o->sel_name);
        if (o->sel_group)
                return streq(in->group, o->sel_group);
        return true; /* -a is the default */
}

static const struct inst *find_one(const struct inst *v, size_t n, const char *name)
{
        for (size_t i = 0; i < n; i++)
                if (streq(v[i].name, name) || streq(v[i].dir, name))
                        return &v[i];
        return NULL;
}

/* Apply main.cf edits in dir, keeping every other line as it is (postconf -e semantics). */
static void edit_maincf(const char *dir, const struct maincf_edit *edits, size_t n)
{
        _cleanup_free_ char *path = xasprintf("%s/main.cf", dir);
        _cleanup_free_ char *text = NULL, *out = NULL;
        size_t len = 0, out_len = 0;
        int r = read_file(path, MAINCF_FILE_MAX, &text, &len);
        if (r == -ENOENT) {
                text = xstrdup("");
                len = 0;
        } else if (r < 0)
                msg_fatal("open %s: %s", path, strerror(-r));
        r = maincf_edit(text, len, edits, n, &out, &out_len);
        if (r < 0)
                msg_fatal("edit %s: %s", path, strerror(-r));
        r = write_file_atomic(path, out, out_len, 0644);
        if (r < 0)
                msg_fatal("write %s: %s", path, strerror(-r));
}

static void set_param(const char *dir, const char *name, const char *value)
{
        struct maincf_edit e = {.name = name, .value = value, .op = MAINCF_EDIT_SET};
        edit_maincf(dir, &e, 1);
}

/* multi_instance_directories of the default instance, with dir added or removed. */
static void update_directories(const char *dir, bool add)
{
        struct config *c = NULL;
        int r = config_load(default_dir, &c);
        if (r < 0)
                msg_fatal("open %s/main.cf: %s", default_dir, strerror(-r));
        struct strv dirs = STRV_INIT;
        config_split_list(config_get_raw(c, "multi_instance_directories")
                                  ? config_get_raw(c, "multi_instance_directories")
                                  : "",
                          &dirs);
        struct buf b = BUF_INIT;
        bool present = false;
        for (size_t i = 0; i < dirs.n; i++) {
                if (streq(dirs.v[i], dir)) {
                        present = true;
                        if (!add)
                                continue;
                }
                buf_printf(&b, "%s%s", b.len ? " " : "", dirs.v[i]);
        }
        if (add && !present)
                buf_printf(&b, "%s%s", b.len ? " " : "", dir);
        set_param(default_dir, "multi_instance_directories", buf_str(&b));
        buf_done(&b);
        strv_done(&dirs);
        config_free(c);
}

/* Postfix derives a new instance's directories from the default's: /etc/postfix -> /etc/postfix-NAME. */
static char *sibling(const char *path, const char *name)
{
        _cleanup_free_ char *copy = xstrdup(path);
        return xasprintf("%s/%s", dirname(copy), name);
}

static void make_dirs(struct config *c)
{
        _cleanup_free_ char *err = NULL;
        if (instance_create_dirs(c, INSTANCE_DIRS_QUEUE | INSTANCE_DIRS_DATA, &err) < 0)
                msg_fatal("%s", err);
}

/* Gives the new instance's trees the SELinux types the policy module names (no-op without SELinux). */
static void label_instance(const char *config_dir, const char *queue_dir, const char *data_dir)
{
        const char *dirs[] = {config_dir, queue_dir, data_dir};
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                int r = selabel_restore(dirs[i], true);
                if (r < 0)
                        msg_warn("%s: cannot restore its SELinux labels: %s (run restorecon -R %s before "
                                 "starting the instance)",
                                 dirs[i], strerror(-r), dirs[i]);
        }
}

/* Under systemd the generator turns the instance list into units: let it run again. */
static void systemd_reload(void)
{
        if (!systemd_booted() || getenv("POSTD_DEFAULT_CONFIG_DIR"))
                return;
        pid_t pid = fork();
        if (pid == 0) {
                execlp("systemctl", "systemctl", "daemon-reload", (char *)NULL);
                _exit(127);
        }
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                msg_warn("systemctl daemon-reload failed: run it before starting the instance");
}

static void check_name(const char *name)
{
        if (strncmp(name, "postfix-", 8) != 0 || name[8] == '\0')
                msg_fatal("instance name \"%s\" must start with \"postfix-\" and have a suffix", name);
        for (const char *s = name; *s; s++)
                if (!(isalnum((unsigned char)*s) || *s == '-' || *s == '_' || *s == '.'))
                        msg_fatal("instance name \"%s\": only letters, digits, '-', '_' and '.' are allowed",
                                  name);
}

static void action_create(const struct opts *o, int argc, char **argv)
{
        if (!o->new_name)
                msg_fatal("-e create requires -I postfix-NAME");
        check_name(o->new_name);
        struct inst *v;
        size_t n;
        load_instances(&v, &n);
        if (find_one(v, n, o->new_name))
                msg_fatal("instance %s already exists", o->new_name);
        free_instances(v, n);

        struct config *def = NULL;
        if (config_load(default_dir, &def) < 0)
                msg_fatal("open %s/main.cf", default_dir);
        _cleanup_free_ char *dir = sibling(default_dir, o->new_name);
        _cleanup_free_ char *queue = sibling(config_get(def, "queue_directory"), o->new_name);
        _cleanup_free_ char *data = sibling(config_get(def, "data_directory"), o->new_name);
        struct maincf_edit extra[POSTMULTI_ARGS_MAX];
        size_t n_extra = 0;
        for (int i = 0; i < argc; i++) {
                char *name = NULL, *value = NULL;
                if (maincf_split_assignment(argv[i], &name, &value) < 0)
                        msg_fatal("bad parameter setting: %s (expected name=value)", argv[i]);
                if (streq(name, "config_directory"))
                        free(dir), dir = value, value = NULL;
                else if (streq(name, "queue_directory"))
                        free(queue), queue = xstrdup(value);
                else if (streq(name, "data_directory"))
                        free(data), data = xstrdup(value);
                if (n_extra >= POSTMULTI_ARGS_MAX)
                        msg_fatal("more than %d parameter settings", POSTMULTI_ARGS_MAX);
                if (value && !streq(name, "config_directory"))
                        extra[n_extra++] =
                                (struct maincf_edit){.name = name, .value = value, .op = MAINCF_EDIT_SET};
                else {
                        free(name);
                        free(value);
                }
        }
        struct stat st;
        _cleanup_free_ char *maincf = xasprintf("%s/main.cf", dir);
        if (stat(maincf, &st) == 0)
                msg_fatal("%s already exists: use -e import to add an existing instance", maincf);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                msg_fatal("create %s: %s", dir, strerror(errno));

        /* A new instance is a safe null client: no inet listeners, no local submission, not started. */
        struct maincf_edit edits[6];
        size_t n_edits = 0;
        edits[n_edits++] = (struct maincf_edit){.name = "queue_directory", .value = queue};
        edits[n_edits++] = (struct maincf_edit){.name = "data_directory", .value = data};
        if (o->new_group)
                edits[n_edits++] =
                        (struct maincf_edit){.name = "multi_instance_group", .value = o->new_group};
        edits[n_edits++] = (struct maincf_edit){.name = "multi_instance_name", .value = o->new_name};
        edits[n_edits++] = (struct maincf_edit){.name = "master_service_disable", .value = "inet"};
        edits[n_edits++] = (struct maincf_edit){.name = "authorized_submit_users", .value = ""};
        _cleanup_free_ char *header = xasprintf(
                "# main.cf of Postfix instance %s, created by postmulti -e create.\n", o->new_name);
        int w = write_file_atomic(maincf, header, strlen(header), 0644);
        if (w < 0)
                msg_fatal("write %s: %s", maincf, strerror(-w));
        edit_maincf(dir, edits, n_edits);
        if (n_extra)
                edit_maincf(dir, extra, n_extra);
        for (size_t i = 0; i < n_extra; i++) {
                free((char *)extra[i].name);
                free((char *)extra[i].value);
        }

        /* master.cf: the default instance's services (disabled above until the operator edits them). */
        _cleanup_free_ char *src = xasprintf("%s/master.cf", default_dir),
                            *dst = xasprintf("%s/master.cf", dir);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        if (read_file(src, 16 * 1024 * 1024, &text, &len) < 0) {
                free(text);
                text = xstrdup("");
                len = 0;
        }
        int r = write_file_atomic(dst, text, len, 0644);
        if (r < 0)
                msg_fatal("write %s: %s", dst, strerror(-r));

        struct config *c = NULL;
        if (config_load(dir, &c) < 0)
                msg_fatal("open %s", maincf);
        make_dirs(c);
        label_instance(dir, config_get(c, "queue_directory"), config_get(c, "data_directory"));
        config_free(c);
        config_free(def);
        update_directories(dir, true);
        systemd_reload();
}

static void action_import(const struct opts *o, int argc, char **argv)
{
        const char *dir = NULL;
        _cleanup_free_ char *derived = NULL;
        for (int i = 0; i < argc; i++)
                if (strncmp(argv[i], "config_directory=", 17) == 0)
                        dir = argv[i] + 17;
        if (!dir && o->new_name)
                dir = derived = sibling(default_dir, o->new_name);
        if (!dir)
                msg_fatal("-e import requires config_directory=/path or -I postfix-NAME");
        struct config *c = NULL;
        if (config_load(dir, &c) < 0)
                msg_fatal("open %s/main.cf: no instance to import", dir);
        config_free(c);
        if (o->new_name) {
                check_name(o->new_name);
                set_param(dir, "multi_instance_name", o->new_name);
        }
        if (o->new_group)
                set_param(dir, "multi_instance_group", o->new_group);
        update_directories(dir, true);
        systemd_reload();
}

static const struct inst *need_instance(const struct inst *v, size_t n, const struct opts *o)
{
        if (!o->sel_name)
                msg_fatal("-e %s requires -i NAME", o->action);
        const struct inst *in = find_one(v, n, o->sel_name);
        if (!in)
                msg_fatal("no instance named %s", o->sel_name);
        return in;
}

static bool instance_running(const char *dir)
{
        struct config *c = NULL;
        if (config_load(dir, &c) < 0)
                return false;
        struct instance_paths p;
        instance_paths_from_config(c, &p);
        pid_t pid;
        bool running = instance_master_pid(&p, &pid) == 0;
        instance_paths_done(&p);
        config_free(c);
        return running;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT)
                msg_warn("remove %s: %s", path, strerror(errno));
        return 0;
}

static bool has_messages(const char *queue_dir)
{
        static const char *const queues[] = {"maildrop", "incoming", "active",
                                             "deferred", "hold",     "corrupt"};
        for (size_t i = 0; i < ELEMENTSOF(queues); i++) {
                _cleanup_free_ char *q = xasprintf("%s/%s", queue_dir, queues[i]);
                /* Bounded walk: queue_directory itself, one level of hashed subdirectories. */
                DIR *d = opendir(q);
                if (!d)
                        continue;
                bool found = false;
                struct dirent *e;
                while (!found && (e = readdir(d))) {
                        if (e->d_name[0] == '.')
                                continue;
                        if (e->d_type != DT_DIR)
                                found = true;
                        else {
                                _cleanup_free_ char *sub = xasprintf("%s/%s", q, e->d_name);
                                DIR *s = opendir(sub);
                                struct dirent *f;
                                while (s && !found && (f = readdir(s)))
                                        found = f->d_name[0] != '.';
                                if (s)
                                        closedir(s);
                        }
                }
                closedir(d);
                if (found)
                        return true;
        }
        return false;
}

static void action_remove(const struct opts *o, bool destroy)
{
        struct inst *v;
        size_t n;
        load_instances(&v, &n);
        const struct inst *in = need_instance(v, n, o);
        if (streq(in->name, "-") && streq(in->dir, default_dir))
                msg_fatal("the default instance cannot be %s", destroy ? "destroyed" : "deported");
        if (in->enabled)
                msg_fatal("instance %s is enabled: run postmulti -i %s -e disable first", in->name,
                          in->name);
        if (instance_running(in->dir))
                msg_fatal("instance %s is running: stop it first (postmulti -i %s -p stop)", in->name,
                          in->name);
        if (destroy) {
                struct config *c = NULL;
                if (config_load(in->dir, &c) < 0)
                        msg_fatal("open %s/main.cf", in->dir);
                _cleanup_free_ char *queue = xstrdup(config_get(c, "queue_directory"));
                _cleanup_free_ char *data = xstrdup(config_get(c, "data_directory"));
                config_free(c);
                if (has_messages(queue))
                        msg_fatal("instance %s still has mail in %s: deliver or remove it first (postqueue, "
                                  "postsuper)",
                                  in->name, queue);
                nftw(queue, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
                nftw(data, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
                const char *files[] = {"main.cf", "master.cf"};
                for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                        _cleanup_free_ char *p = xasprintf("%s/%s", in->dir, files[i]);
                        if (unlink(p) < 0 && errno != ENOENT)
                                msg_warn("remove %s: %s", p, strerror(errno));
                }
                if (rmdir(in->dir) < 0 && errno != ENOENT)
                        msg_warn("%s: %s: other files are left in place", in->dir, strerror(errno));
        }
        update_directories(in->dir, false);
        free_instances(v, n);
        systemd_reload();
}

static void action_simple(const struct opts *o)
{
        struct inst *v;
        size_t n;
        load_instances(&v, &n);
        const struct inst *in = need_instance(v, n, o);
        if (streq(o->action, "enable") || streq(o->action, "disable"))
                set_param(in->dir, "multi_instance_enable", streq(o->action, "enable") ? "yes" : "no");
        else { /* assign */
                if (o->new_name) {
                        if (streq(in->dir, default_dir))
                                msg_fatal("the default instance has no name to assign");
                        check_name(o->new_name);
                        if (find_one(v, n, o->new_name))
                                msg_fatal("instance %s already exists", o->new_name);
                        set_param(in->dir, "multi_instance_name", o->new_name);
                }
                if (o->new_group) {
                        struct maincf_edit e = {.name = "multi_instance_group",
                                                .value = o->new_group,
                                                .op = streq(o->new_group, "-") ? MAINCF_EDIT_REMOVE
                                                                               : MAINCF_EDIT_SET};
                        edit_maincf(in->dir, &e, 1);
                }
        }
        free_instances(v, n);
        systemd_reload();
}

static void action_init(void)
{
        struct maincf_edit e[] = {
                {.name = "multi_instance_wrapper", .value = "${command_directory}/postmulti -p --"},
                {.name = "multi_instance_enable", .value = "yes"},
        };
        edit_maincf(default_dir, e, ELEMENTSOF(e));
        systemd_reload();
}

/* postfix commands that act only on enabled instances, as Postfix's postmulti does. */
static bool needs_enabled(const char *cmd)
{
        return streq(cmd, "start") || streq(cmd, "start-fg") || streq(cmd, "reload") || streq(cmd, "flush");
}

static int run_child(const char *dir, char **cmd, bool postfix)
{
        pid_t pid = fork();
        if (pid < 0)
                msg_fatal("fork: %s", strerror(errno));
        if (pid == 0) {
                setenv("MAIL_CONFIG", dir, 1);
                if (postfix) {
                        _cleanup_free_ char *path = xasprintf("%s/postfix", POSTD_COMMAND_DIR);
                        /* Next to us first: a build tree or a non-standard prefix. */
                        _cleanup_free_ char *self = realpath("/proc/self/exe", NULL);
                        if (self) {
                                char *slash = strrchr(self, '/');
                                *slash = '\0';
                                free(path);
                                path = xasprintf("%s/postfix", self);
                        }
                        size_t n = 0;
                        while (cmd[n])
                                n++;
                        char **args = xcalloc(n + 4, sizeof *args);
                        args[0] = path;
                        args[1] = (char *)"-c";
                        args[2] = (char *)dir;
                        memcpy(args + 3, cmd, n * sizeof *cmd);
                        execv(path, args);
                        msg_fatal("execute %s: %s", path, strerror(errno));
                }
                execvp(cmd[0], cmd);
                msg_fatal("execute %s: %s", cmd[0], strerror(errno));
        }
        int status = 0;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        msg_fatal("waitpid: %s", strerror(errno));
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

_noreturn_ static void usage(void)
{
        fprintf(stderr, "usage: postmulti -l [-aR] [-g group] [-i name]\n"
                        "       postmulti -p [-a] [-g group] [-i name] command...\n"
                        "       postmulti -x [-aR] [-g group] [-i name] command...\n"
                        "       postmulti -e init|create|import|destroy|deport|enable|disable|assign "
                        "[-i name] [-I name] [-G group] [param=value ...]\n");
        exit(1);
}

int main(int argc, char **argv)
{
        struct opts o = {0};
        bool reverse = false;
        int opt;
        log_setup_command("postmulti");
        while ((opt = getopt(argc, argv, "+ae:g:G:i:I:lpRvx")) != -1) {
                switch (opt) {
                case 'a': o.all = true; break;
                case 'e': o.action = optarg; break;
                case 'g': o.sel_group = optarg; break;
                case 'G': o.new_group = optarg; break;
                case 'i': o.sel_name = optarg; break;
                case 'I': o.new_name = optarg; break;
                case 'l': o.list = true; break;
                case 'p': o.run_postfix = true; break;
                case 'R': reverse = true; break;
                case 'v': break;
                case 'x': o.run_cmd = true; break;
                default: usage();
                }
        }
        if ((o.action != NULL) + o.list + o.run_postfix + o.run_cmd != 1)
                usage();
        default_dir = instance_default_config_dir();
        /* As Postfix: only the default instance can be the primary one. */
        const char *mc = getenv("MAIL_CONFIG");
        if (!isempty(mc) && !streq(mc, default_dir))
                msg_fatal("MAIL_CONFIG=%s: postmulti manages the instances of %s only; unset MAIL_CONFIG",
                          mc, default_dir);

        if (o.action) {
                if (streq(o.action, "init"))
                        action_init();
                else if (streq(o.action, "create"))
                        action_create(&o, argc - optind, argv + optind);
                else if (streq(o.action, "import"))
                        action_import(&o, argc - optind, argv + optind);
                else if (streq(o.action, "destroy") || streq(o.action, "deport"))
                        action_remove(&o, streq(o.action, "destroy"));
                else if (streq(o.action, "enable") || streq(o.action, "disable") ||
                         streq(o.action, "assign"))
                        action_simple(&o);
                else
                        msg_fatal("unknown -e action: %s", o.action);
                return 0;
        }

        struct inst *v;
        size_t n;
        load_instances(&v, &n);
        if (o.sel_name && !find_one(v, n, o.sel_name))
                msg_fatal("no instance named %s", o.sel_name);
        if ((o.run_postfix || o.run_cmd) && optind >= argc)
                usage();
        int rc = 0;
        for (size_t k = 0; k < n; k++) {
                const struct inst *in = &v[reverse ? n - 1 - k : k];
                if (!selected(in, &o))
                        continue;
                if (o.list)
                        printf("%-15s %-15s %-9s %s\n", in->name, in->group, in->enabled ? "y" : "n",
                               in->dir);
                else if (o.run_postfix) {
                        if (!in->enabled && needs_enabled(argv[optind]))
                                continue;
                        if (run_child(in->dir, argv + optind, true) != 0)
                                rc = 1;
                } else if (run_child(in->dir, argv + optind, false) != 0)
                        rc = 1;
        }
        free_instances(v, n);
        fflush(stdout);
        return rc;
}
