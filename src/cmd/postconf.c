/* postconf.c: show and edit main.cf parameters and master.cf services, with Postfix's options and output. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "dict.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "maincf.h"
#include "mastercf.h"
#include "postd-build.h"

enum mode {
        MODE_SHOW,
        MODE_EDIT,        /* -e */
        MODE_REMOVE,      /* -X */
        MODE_COMMENT,     /* -# */
        MODE_SERVICES,    /* -M */
        MODE_FIELDS,      /* -F */
        MODE_PARAMS,      /* -P */
        MODE_TABLES,      /* -m */
        MODE_LOCKS,       /* -l */
        MODE_SASL_SERVER, /* -a */
        MODE_SASL_CLIENT, /* -A */
};

struct options {
        const char *dir;
        enum mode mode;
        bool defaults, only_set, values_only, expand;
        struct strv overrides; /* -o name=value */
};

_noreturn_ static void usage(void)
{
        fprintf(stderr, "usage: postconf [-dhnx] [-c config_dir] [-o name=value] [parameter ...]\n"
                        "       postconf [-c config_dir] -e name=value ...\n"
                        "       postconf [-c config_dir] -X name ...\n"
                        "       postconf [-c config_dir] -# name ...\n"
                        "       postconf [-c config_dir] -M|-F|-P [service[/type[/field]] ...]\n"
                        "       postconf -m|-l|-a|-A\n");
        exit(2);
}

static void set_mode(struct options *o, enum mode m)
{
        if (o->mode != MODE_SHOW && o->mode != m)
                msg_fatal("specify only one of -e, -X, -#, -M, -F, -P, -m, -l, -a or -A");
        o->mode = m;
}

/* ---- main.cf editing ---- */

static void edit_maincf(const struct options *o, char **args, int n_args)
{
        _cleanup_free_ char *path = xasprintf("%s/main.cf", o->dir);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = read_file(path, MAINCF_FILE_MAX, &text, &len);
        if (r < 0)
                msg_fatal("open %s: %s", path, strerror(-r));
        struct stat st;
        mode_t file_mode = stat(path, &st) == 0 ? st.st_mode & 07777 : 0644;

        if (n_args == 0)
                msg_fatal("%s requires at least one parameter", o->mode == MODE_EDIT     ? "-e"
                                                                : o->mode == MODE_REMOVE ? "-X"
                                                                                         : "-#");
        struct maincf_edit *edits = xcalloc((size_t)n_args, sizeof *edits);
        struct strv owned = STRV_INIT;
        for (int i = 0; i < n_args; i++) {
                if (o->mode == MODE_EDIT) {
                        char *name, *value;
                        if (maincf_split_assignment(args[i], &name, &value) < 0)
                                msg_fatal("bad parameter assignment (expected name=value): %s", args[i]);
                        if (strpbrk(value, "\r\n"))
                                msg_fatal("parameter %s: the value must not contain a newline", name);
                        strv_push_take(&owned, name);
                        strv_push_take(&owned, value);
                        edits[i] = (struct maincf_edit){name, value, MAINCF_EDIT_SET};
                } else {
                        if (!param_valid_name(args[i], strlen(args[i])))
                                msg_fatal("bad parameter name: %s", args[i]);
                        edits[i] = (struct maincf_edit){args[i], NULL,
                                                        o->mode == MODE_REMOVE ? MAINCF_EDIT_REMOVE
                                                                               : MAINCF_EDIT_COMMENT};
                }
        }

        _cleanup_free_ char *out = NULL;
        size_t out_len = 0;
        r = maincf_edit(text, len, edits, (size_t)n_args, &out, &out_len);
        if (r < 0)
                msg_fatal("edit %s: %s", path, strerror(-r));
        if (out_len != len || memcmp(out, text, len) != 0) {
                r = write_file_atomic(path, out, out_len, file_mode);
                if (r < 0)
                        msg_fatal("write %s: %s", path, strerror(-r));
        }
        free(edits);
        strv_done(&owned);
}

/* ---- master.cf ---- */

/* master.cf parsed, or fatal when it cannot be read; diagnostics are warnings. */
static void load_mastercf(const char *dir, bool required, struct mastercf *ret, bool *ret_found)
{
        _cleanup_free_ char *path = mastercf_path(dir);
        *ret_found = false;
        int r = mastercf_load(dir, ret);
        if (r == -ENOENT && !required)
                return;
        if (r < 0)
                msg_fatal("open %s: %s", path, strerror(-r));
        for (size_t i = 0; i < ret->n_diags; i++)
                msg_warn("%s: line %u: %s", path, ret->diags[i].line, ret->diags[i].message);
        *ret_found = true;
}

static bool has_space(const char *s)
{
        return strpbrk(s, " \t") != NULL;
}

/* The command column with its arguments, -o overrides first (they must precede pipe's argv=). */
static char *service_command(const struct mastercf_service *s)
{
        struct buf b = BUF_INIT;
        buf_puts(&b, s->command ? s->command : "");
        for (size_t i = 0; i < s->n_overrides; i++) {
                const struct mastercf_override *ov = &s->overrides[i];
                if (has_space(ov->value) || isempty(ov->value))
                        buf_printf(&b, " -o { %s = %s }", ov->name, ov->value);
                else
                        buf_printf(&b, " -o %s=%s", ov->name, ov->value);
        }
        for (size_t i = 0; i < s->args.n; i++)
                buf_printf(&b, " %s", s->args.v[i]);
        return buf_steal(&b);
}

/* Does "name", "name/type" or "name/type/field" select this service (and field, when given)? */
static bool selected(const struct mastercf_service *s, char **filters, int n, const char *field)
{
        if (n == 0)
                return true;
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *f = xstrdup(filters[i]);
                char *type = strchr(f, '/');
                char *fld = NULL;
                if (type) {
                        *type++ = 0;
                        fld = strchr(type, '/');
                        if (fld)
                                *fld++ = 0;
                }
                if (!streq(f, s->name))
                        continue;
                if (type && *type && !streq(type, s->type_name))
                        continue;
                if (fld && *fld && (!field || !streq(fld, field)))
                        continue;
                return true;
        }
        return false;
}

static void show_services(const struct options *o, char **args, int n_args)
{
        struct mastercf m;
        bool found;
        load_mastercf(o->dir, true, &m, &found);
        static const char *const field_names[] = {"service", "type",   "private",      "unprivileged",
                                                  "chroot",  "wakeup", "process_limit"};
        for (size_t i = 0; i < m.n_services; i++) {
                const struct mastercf_service *s = &m.services[i];
                _cleanup_free_ char *cmd = service_command(s);
                const char *col[7];
                for (int k = 0; k < 7; k++)
                        col[k] = s->column[k] ? s->column[k] : "-";

                switch (o->mode) {
                case MODE_SERVICES:
                        if (selected(s, args, n_args, NULL))
                                printf("%-10s %-5s %-7s %-7s %-7s %-7s %-7s %s\n", col[0], col[1], col[2],
                                       col[3], col[4], col[5], col[6], cmd);
                        break;
                case MODE_FIELDS:
                        for (int k = 0; k < 8; k++) {
                                const char *fname = k < 7 ? field_names[k] : "command";
                                if (selected(s, args, n_args, fname))
                                        printf("%s/%s/%s = %s\n", s->name, s->type_name, fname,
                                               k < 7 ? col[k] : cmd);
                        }
                        break;
                case MODE_PARAMS:
                        for (size_t k = 0; k < s->n_overrides; k++)
                                if (selected(s, args, n_args, s->overrides[k].name))
                                        printf("%s/%s/%s = %s\n", s->name, s->type_name,
                                               s->overrides[k].name, s->overrides[k].value);
                        break;
                default: break;
                }
        }
        mastercf_done(&m);
}

/* ---- parameters ---- */

static void print_param(const struct options *o, const char *name, const char *value)
{
        if (o->values_only)
                printf("%s\n", value);
        else
                printf("%s = %s\n", name, value);
}

static void show_params(const struct options *o, char **args, int n_args)
{
        struct config *c = NULL;
        if (o->defaults)
                c = config_new_defaults_for(o->dir);
        else {
                int r = config_load(o->dir, &c);
                if (r < 0)
                        msg_fatal("open %s/main.cf: %s", o->dir, strerror(-r));
        }
        const struct maincf *mcf = config_maincf(c);
        for (size_t i = 0; i < mcf->n_diags; i++)
                msg_warn("%s, line %u: %s", config_maincf_path(c), mcf->diags[i].line,
                         mcf->diags[i].message);

        /* master.cf service names make per-service parameters known; its -o values may use $names. */
        struct mastercf m;
        bool found;
        if (!o->defaults) {
                load_mastercf(o->dir, false, &m, &found);
                for (size_t i = 0; found && i < m.n_services; i++) {
                        config_add_service(c, m.services[i].name);
                        for (size_t k = 0; k < m.services[i].n_overrides; k++)
                                config_add_references(c, m.services[i].overrides[k].value);
                }
                if (found)
                        mastercf_done(&m);
        }
        for (size_t i = 0; i < o->overrides.n; i++) {
                _cleanup_free_ char *name = NULL, *value = NULL;
                if (maincf_split_assignment(o->overrides.v[i], &name, &value) < 0)
                        msg_fatal("-o: bad parameter assignment (expected name=value): %s",
                                  o->overrides.v[i]);
                config_set(c, name, value);
        }

        if (!o->defaults) {
                struct strv unused = STRV_INIT;
                config_list_unused(c, &unused);
                for (size_t i = 0; i < unused.n; i++)
                        msg_warn("%s: unused parameter: %s=%s", config_maincf_path(c), unused.v[i],
                                 config_get_raw(c, unused.v[i]));
                strv_done(&unused);
        }

        struct strv names = STRV_INIT;
        if (n_args > 0)
                for (int i = 0; i < n_args; i++)
                        strv_push(&names, args[i]);
        else
                config_list_names(c, !o->only_set, &names);

        for (size_t i = 0; i < names.n; i++) {
                const char *name = names.v[i];
                if (o->only_set && !config_is_set(c, name))
                        continue;
                const char *value = o->expand ? config_get(c, name) : config_get_raw(c, name);
                if (!value) {
                        msg_warn("%s: unknown parameter", name);
                        continue;
                }
                print_param(o, name, value);
        }
        strv_done(&names);
        config_free(c);
}

/* ---- what this build supports (-m, -l, -a, -A) ---- */

static void show_supported(enum mode m)
{
        switch (m) {
        case MODE_TABLES:
                for (size_t i = 0; i < dict_type_count(); i++)
                        puts(dict_type_nth(i));
                break;
        case MODE_LOCKS:
                /* local always takes an fcntl lock; mailbox_delivery_lock adds dotlock. */
                puts("fcntl");
                puts("dotlock");
                break;
        case MODE_SASL_SERVER:
                msg_info("smtpd offers no SASL authentication yet: there is no server plug-in type");
                break;
        case MODE_SASL_CLIENT:
                msg_info("the smtp client authenticates with its built-in PLAIN and LOGIN: no plug-in type");
                break;
        default: break;
        }
}

int main(int argc, char **argv)
{
        struct options o = {.mode = MODE_SHOW, .overrides = STRV_INIT};
        int opt;

        log_setup_command(argv[0]);
        while ((opt = getopt(argc, argv, "c:dehno:xaAlmFMPX#")) != -1) {
                switch (opt) {
                case 'c': o.dir = optarg; break;
                case 'd': o.defaults = true; break;
                case 'e': set_mode(&o, MODE_EDIT); break;
                case 'h': o.values_only = true; break;
                case 'n': o.only_set = true; break;
                case 'o': strv_push(&o.overrides, optarg); break;
                case 'x': o.expand = true; break;
                case 'a': set_mode(&o, MODE_SASL_SERVER); break;
                case 'A': set_mode(&o, MODE_SASL_CLIENT); break;
                case 'l': set_mode(&o, MODE_LOCKS); break;
                case 'm': set_mode(&o, MODE_TABLES); break;
                case 'F': set_mode(&o, MODE_FIELDS); break;
                case 'M': set_mode(&o, MODE_SERVICES); break;
                case 'P': set_mode(&o, MODE_PARAMS); break;
                case 'X': set_mode(&o, MODE_REMOVE); break;
                case '#': set_mode(&o, MODE_COMMENT); break;
                default: usage();
                }
        }
        if (!o.dir)
                o.dir = getenv("MAIL_CONFIG");
        if (isempty(o.dir))
                o.dir = POSTD_CONFIG_DIR;
        if (o.defaults && o.only_set)
                msg_fatal("specify only one of -d and -n");

        char **args = argv + optind;
        int n_args = argc - optind;
        switch (o.mode) {
        case MODE_EDIT:
        case MODE_REMOVE:
        case MODE_COMMENT: edit_maincf(&o, args, n_args); break;
        case MODE_SERVICES:
        case MODE_FIELDS:
        case MODE_PARAMS: show_services(&o, args, n_args); break;
        case MODE_SHOW: show_params(&o, args, n_args); break;
        case MODE_TABLES:
        case MODE_LOCKS:
        case MODE_SASL_SERVER:
        case MODE_SASL_CLIENT: show_supported(o.mode); break;
        }
        strv_done(&o.overrides);
        if (fflush(stdout) != 0)
                msg_fatal("write to standard output: %s", strerror(errno));
        return 0;
}
