/* postfix.c: the postfix command: loads one instance's config and runs a subcommand on it. */
#include "postfix.h"
#include "postfix_control.h"
#include "postfix_install.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>

#include "log.h"
#include "postd-build.h"

static const struct {
        const char *name;
        postfix_command_fn fn;
} commands[] = {
        {"check", postfix_check},
        {"start", postfix_start},
        {"start-fg", postfix_start_fg},
        {"stop", postfix_stop},
        {"abort", postfix_abort},
        {"reload", postfix_reload},
        {"status", postfix_status},
        {"flush", postfix_flush},
        {"metrics", postfix_metrics},
        {"set-permissions", postfix_set_permissions},
        {"post-install", postfix_set_permissions},
};

_noreturn_ static void usage(void)
{
        fprintf(stderr, "usage: postfix [-c config_dir] [-Dv] command\n"
                        "commands:");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                fprintf(stderr, " %s", commands[i].name);
        fputc('\n', stderr);
        exit(1);
}

int main(int argc, char **argv)
{
        const char *config_dir = NULL;
        int opt;

        log_setup_command("postfix");
        while ((opt = getopt(argc, argv, "+c:Dv")) != -1) {
                switch (opt) {
                case 'c': config_dir = optarg; break;
                case 'D':
                case 'v': break; /* accepted for compatibility; postd logs enough without them */
                default: usage();
                }
        }
        if (optind >= argc)
                usage();

        const char *name = argv[optind];
        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                if (!streq(commands[i].name, name))
                        continue;
                struct config *c = NULL;
                int r = config_load(config_dir, &c);
                if (r < 0) {
                        const char *dir = config_dir ? config_dir : getenv("MAIL_CONFIG");
                        msg_fatal("open %s/main.cf: %s", dir ? dir : POSTD_CONFIG_DIR, strerror(-r));
                }
                r = commands[i].fn(c, argc - optind, argv + optind);
                config_free(c);
                return r;
        }
        msg_fatal(
                "unknown command: '%s'. Usage: postfix start (or stop, reload, abort, flush, check, status, "
                "set-permissions, post-install, start-fg, metrics)",
                name);
}
