/* postfix_systemd.c: the systemctl side of postfix start/stop/reload/status (see postfix_systemd.h). */
#include "postfix_systemd.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "fileio.h"
#include "instance.h"
#include "log.h"
#include "macro.h"

#define SYSTEMCTL "systemctl"

static const char *const unit_dirs[] = {"/etc/systemd/system", "/run/systemd/system",
                                        "/usr/lib/systemd/system", "/lib/systemd/system"};

static bool template_installed(void)
{
        for (size_t i = 0; i < ELEMENTSOF(unit_dirs); i++) {
                _cleanup_free_ char *p = xasprintf("%s/postfix@.service", unit_dirs[i]);
                if (access(p, F_OK) == 0)
                        return true;
        }
        return false;
}

char *postfix_systemd_unit(struct config *c)
{
        const char *off = getenv("POSTD_NO_SYSTEMCTL");
        if ((off && streq(off, "1")) || access("/run/systemd/system", F_OK) < 0 || !template_installed())
                return NULL;
        const char *dir = config_directory(c);
        if (same_directory(dir, instance_default_config_dir()))
                return xstrdup("postfix@-.service");
        /* postfix-NAME is postfix@NAME, as postmulti names instances and the generator names units. */
        const char *name = config_get(c, "multi_instance_name");
        if (isempty(name)) {
                const char *slash = strrchr(dir, '/');
                name = slash ? slash + 1 : dir;
        }
        if (strncmp(name, "postfix-", 8) != 0 || name[8] == '\0') {
                msg_warn("%s: multi_instance_name \"%s\" is not postfix-NAME: running the master outside "
                         "systemd",
                         dir, name);
                return NULL;
        }
        return xasprintf("postfix@%s.service", name + 8);
}

/* Runs systemctl with args; with out, its stdout (bounded) is returned in *out. */
static int run_systemctl(char *const args[], char *out, size_t out_size)
{
        int pipefd[2] = {-1, -1};
        if (out && pipe(pipefd) < 0)
                return 1;
        pid_t pid = fork();
        if (pid < 0)
                return 1;
        if (pid == 0) {
                if (out) {
                        dup2(pipefd[1], STDOUT_FILENO);
                        close(pipefd[0]);
                        close(pipefd[1]);
                }
                execvp(SYSTEMCTL, args);
                msg_error("execute %s: %m", SYSTEMCTL);
                _exit(127);
        }
        if (out) {
                close(pipefd[1]);
                size_t len = 0;
                ssize_t n;
                while (len + 1 < out_size && (n = read(pipefd[0], out + len, out_size - 1 - len)) > 0)
                        len += (size_t)n;
                out[len] = '\0';
                close(pipefd[0]);
        }
        int status = 0;
        while (waitpid(pid, &status, 0) < 0)
                ;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int postfix_systemctl(const char *verb, const char *unit)
{
        char *args[] = {(char *)SYSTEMCTL, (char *)verb, (char *)unit, NULL};
        return run_systemctl(args, NULL, 0);
}

pid_t postfix_systemd_main_pid(const char *unit)
{
        char out[64];
        char *args[] = {(char *)SYSTEMCTL, (char *)"show", (char *)"-p", (char *)"MainPID",
                        (char *)"--value", (char *)unit,   NULL};
        if (run_systemctl(args, out, sizeof out) != 0)
                return 0;
        return (pid_t)strtol(out, NULL, 10);
}

/* The socket units that hand unit its listeners (TriggeredBy=), in *ret. */
static void trigger_sockets(const char *unit, struct strv *ret)
{
        char out[4096];
        char *args[] = {(char *)SYSTEMCTL, (char *)"show", (char *)"-p", (char *)"TriggeredBy",
                        (char *)"--value", (char *)unit,   NULL};
        if (run_systemctl(args, out, sizeof out) != 0)
                return;
        for (char *save = NULL, *w = strtok_r(out, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save))
                if (strlen(w) > 7 && streq(w + strlen(w) - 7, ".socket"))
                        strv_push(ret, w);
}

bool postfix_systemd_instance_units(const char *unit, struct strv *ret)
{
        strv_push(ret, unit);
        trigger_sockets(unit, ret);
        /* Running: the master is, or a socket of the instance listens and would start it. */
        struct strv argv = STRV_INIT;
        strv_push(&argv, SYSTEMCTL);
        strv_push(&argv, "is-active");
        strv_push(&argv, "--quiet");
        for (size_t i = 0; i < ret->n; i++)
                strv_push(&argv, ret->v[i]);
        bool running = postfix_systemd_main_pid(unit) > 0 || run_systemctl(argv.v, NULL, 0) == 0;
        strv_done(&argv);
        return running;
}

char *postfix_systemd_listen_state(const char *unit, bool *all_active)
{
        struct strv socks = STRV_INIT;
        struct buf b = BUF_INIT;
        trigger_sockets(unit, &socks);
        *all_active = true;
        for (size_t i = 0; i < socks.n; i++) {
                char out[4096];
                char *args[] = {(char *)SYSTEMCTL, (char *)"show",
                                (char *)"-p",      (char *)"Listen,ActiveState",
                                socks.v[i],        NULL};
                if (run_systemctl(args, out, sizeof out) != 0)
                        out[0] = '\0';
                /* (systemctl prints the properties in its own order: one line each) */
                for (char *save = NULL, *l = strtok_r(out, "\n", &save); l;
                     l = strtok_r(NULL, "\n", &save)) {
                        if (strncmp(l, "ActiveState=", 12) == 0)
                                *all_active = *all_active && streq(l + 12, "active");
                        else
                                buf_printf(&b, "%s %s\n", socks.v[i], l);
                }
        }
        strv_done(&socks);
        return buf_steal(&b);
}

int postfix_systemctl_units(const char *verb, const struct strv *units)
{
        struct strv argv = STRV_INIT;
        strv_push(&argv, SYSTEMCTL);
        strv_push(&argv, verb);
        for (size_t i = 0; i < units->n; i++)
                strv_push(&argv, units->v[i]);
        int r = run_systemctl(argv.v, NULL, 0);
        strv_done(&argv);
        return r;
}

static long long mtime_of(const char *path)
{
        struct stat st;
        return stat(path, &st) == 0 ? (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec : -1;
}

void postfix_systemd_refresh(struct config *c, const char *unit)
{
        _cleanup_free_ char *main_cf = xasprintf("%s/main.cf", config_directory(c));
        _cleanup_free_ char *master_cf = xasprintf("%s/master.cf", config_directory(c));
        _cleanup_free_ char *generated = xasprintf("/run/systemd/generator/%s.d", unit);
        long long made = mtime_of(generated);
        if (made >= 0 && mtime_of(main_cf) <= made && mtime_of(master_cf) <= made)
                return;
        char *args[] = {(char *)SYSTEMCTL, (char *)"daemon-reload", NULL};
        if (run_systemctl(args, NULL, 0) != 0)
                msg_warn("systemctl daemon-reload failed: %s may not match main.cf/master.cf", unit);
}
