/* generator.c: turns one instance's Postfix configuration into systemd drop-ins, without touching the
 * system. */
#include "generator.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "inet_listen.h"

static bool name_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
               c == '_' || c == '.';
}

/* Paths go into unit files verbatim: refuse what would need quoting or specifier escaping there. */
static bool path_ok(const char *p)
{
        if (isempty(p) || p[0] != '/' || strlen(p) > 1024)
                return false;
        for (const char *s = p; *s; s++)
                if (!name_char(*s) && *s != '/' && *s != '+' && *s != ',' && *s != ':' && *s != '@')
                        return false;
        return true;
}

char *gen_unit_instance(struct config *c, bool is_default)
{
        if (is_default)
                return xstrdup("-");
        const char *name = config_get(c, "multi_instance_name");
        if (isempty(name)) {
                const char *dir = config_directory(c);
                const char *slash = strrchr(dir, '/');
                name = slash ? slash + 1 : dir;
        }
        if (strncmp(name, "postfix-", 8) != 0 || strlen(name) > GEN_NAME_MAX || name[8] == '\0')
                return NULL;
        for (const char *s = name; *s; s++)
                if (!name_char(*s))
                        return NULL;
        return xstrdup(name + 8);
}

bool gen_instance_wanted(struct config *c, bool is_default)
{
        if (config_get_bool(c, "multi_instance_enable"))
                return true;
        /* A single-instance host never ran postmulti -e init: its one instance starts as plain Postfix does.
         */
        return is_default && isempty(config_get(c, "multi_instance_wrapper"));
}

static void add_file(struct gen_output *out, char *path, char *text, char *symlink)
{
        out->files = xrealloc(out->files, (out->n_files + 1) * sizeof *out->files);
        out->files[out->n_files++] = (struct gen_file){.path = path, .text = text, .symlink = symlink};
}

_printf_(2, 3) static void message(struct gen_output *out, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        struct buf b = BUF_INIT;
        buf_vprintf(&b, fmt, ap);
        va_end(ap);
        strv_push_take(&out->messages, buf_steal(&b));
}

/* systemd's unit name escaping for a master.cf service name ("[::1]:25" -> "\x5b::1\x5d:25"). */
static char *escape_unit_part(const char *s)
{
        struct buf b = BUF_INIT;
        for (; *s; s++) {
                if (name_char(*s) && !(*s == '-') && !(b.len == 0 && *s == '.'))
                        buf_putc(&b, *s);
                else if (*s == ':')
                        buf_putc(&b, ':');
                else
                        buf_printf(&b, "\\x%02x", (unsigned char)*s);
        }
        return buf_steal(&b);
}

/* FileDescriptorName= takes printable ASCII without ':' and spaces (LISTEN_FDNAMES is ':'-separated). */
static bool fdname_ok(const char *s)
{
        if (isempty(s) || strlen(s) > 255)
                return false;
        for (; *s; s++)
                if (*s <= ' ' || *s >= 127 || *s == ':')
                        return false;
        return true;
}

struct socket_unit {
        char *unit; /* "postfix@dept1.socket" or "postfix-dept1-submission.socket" */
        const struct mastercf_service *svc;
        struct inet_listen_set ls;
};

/* Whether a listener address exists only once the network is up: not the wildcard, not loopback. */
static bool needs_network(const struct inet_listen_set *ls)
{
        for (size_t i = 0; i < ls->n; i++) {
                const char *a = ls->v[i];
                if (strncmp(a, "0.0.0.0:", 8) != 0 && strncmp(a, "[::]:", 5) != 0 &&
                    strncmp(a, "127.", 4) != 0 && strncmp(a, "[::1]:", 6) != 0)
                        return true;
        }
        return false;
}

static void socket_text(struct buf *b, const char *inst, const char *svc_unit, const struct socket_unit *s,
                        bool full)
{
        buf_printf(b, "# Listeners of master.cf service \"%s\" (line %u).\n", s->svc->name, s->svc->line);
        bool net = needs_network(&s->ls);
        if (full || net)
                buf_puts(b, "[Unit]\n");
        if (full) {
                buf_printf(b, "Description=Postfix listener %s of instance %s (postd)\n", s->svc->name,
                           inst);
                /* As postfix@.socket: not PartOf the service, whose stop and restart leave it listening. */
                buf_puts(b, "PartOf=postfix.target\n");
        }
        if (net)
                /* No FreeBind=: the address must exist, so wait for the network (which comes after
                 * sockets.target: hence no default dependencies, the needed ones are spelt out). */
                buf_puts(b, "DefaultDependencies=no\nRequires=sysinit.target\nWants=network-online.target\n"
                            "After=sysinit.target network-online.target\nBefore=shutdown.target\n"
                            "Conflicts=shutdown.target\n");
        if (full || net)
                buf_puts(b, "\n");
        buf_puts(b, "[Socket]\n");
        if (full)
                buf_printf(b, "Service=%s\n", svc_unit);
        for (size_t i = 0; i < s->ls.n; i++)
                buf_printf(b, "ListenStream=%s\n", s->ls.v[i]);
        /* The master matches a socket to its service by this name; else by its address (getsockname). */
        if (fdname_ok(s->svc->name))
                buf_printf(b, "FileDescriptorName=%s\n", s->svc->name);
        buf_puts(b, "BindIPv6Only=ipv6-only\n");
}

int gen_instance(const struct gen_instance *in, struct gen_output *out)
{
        struct config *c = in->config;
        _cleanup_free_ char *inst = gen_unit_instance(c, in->is_default);
        const char *dir = config_directory(c);
        const char *label = in->is_default ? "postfix" : config_get(c, "multi_instance_name");
        if (!inst) {
                message(out,
                        "%s: skipped: multi_instance_name must be \"postfix-NAME\" (NAME of letters, "
                        "digits, '-', '_', '.')",
                        dir);
                return -EINVAL;
        }
        const char *queue = config_get(c, "queue_directory"), *data = config_get(c, "data_directory");
        const char *syslog_name = config_get(c, "syslog_name");
        if (!path_ok(dir) || !path_ok(queue) || !path_ok(data)) {
                message(out,
                        "%s: skipped: config, queue or data directory is not an absolute path of "
                        "letters, digits and /._-+,:@",
                        dir);
                return -EINVAL;
        }
        if (isempty(syslog_name) || !fdname_ok(syslog_name) || strchr(syslog_name, '%')) {
                message(out, "%s: skipped: bad syslog_name", dir);
                return -EINVAL;
        }

        _cleanup_free_ char *svc_unit = xasprintf("postfix@%s.service", inst);
        char *err = NULL;
        bool v4, v6;
        int r = inet_listen_protocols(c, in->have_ipv6, &v4, &v6, &err);
        struct socket_unit socks[GEN_INET_SERVICES_MAX];
        size_t n_socks = 0;
        struct strv disable = STRV_INIT;
        config_get_list(c, "master_service_disable", &disable);
        for (size_t i = 0; i < in->master->n_services && r >= 0; i++) {
                const struct mastercf_service *svc = &in->master->services[i];
                if (svc->type != MASTERCF_INET)
                        continue;
                const char *why = inet_listen_disabled_by(&disable, svc);
                if (why) {
                        message(out,
                                "%s: service \"%s/inet\" (master.cf line %u) is disabled by "
                                "master_service_disable = %s: no listener",
                                svc_unit, svc->name, svc->line, why);
                        continue;
                }
                if (n_socks >= GEN_INET_SERVICES_MAX) {
                        err = xasprintf("more than %d inet services", GEN_INET_SERVICES_MAX);
                        r = -E2BIG;
                        break;
                }
                struct socket_unit *s = &socks[n_socks++];
                *s = (struct socket_unit){.svc = svc};
                if (n_socks == 1)
                        s->unit = xasprintf("postfix@%s.socket", inst);
                else {
                        _cleanup_free_ char *e = escape_unit_part(svc->name);
                        s->unit = xasprintf("%s-%s.socket", label, e);
                }
                r = inet_listen_service(c, svc, v4, v6, &s->ls, &err);
                if (r >= 0 && in->check_local)
                        r = inet_listen_check_local(svc, &s->ls, config_maincf_path(c), &err);
                if (r >= 0 && s->ls.n == 0) {
                        err = xasprintf("master.cf line %u: service \"%s/inet\" has no address to listen on "
                                        "(inet_interfaces, inet_protocols)",
                                        svc->line, svc->name);
                        r = -EINVAL;
                }
        }
        strv_done(&disable);

        if (r >= 0) {
                struct buf b = BUF_INIT;
                buf_printf(&b,
                           "# Generated by postfix-generator from %s/main.cf and master.cf.\n"
                           "# Change those files, then run \"systemctl daemon-reload\".\n",
                           dir);
                if (n_socks > 0) {
                        /* Wants, not Requires: systemd refuses to start a socket while its service runs,
                         * so "systemctl start" of a running instance must not depend on that job; and a
                         * socket that cannot bind still lets the master start and say why (status). */
                        buf_puts(&b, "[Unit]\n");
                        /* PartOf: stopping a socket stops the master too (it holds copies of the
                         * listeners, the port would stay open); its restart restarts the master. */
                        for (size_t i = 0; i < n_socks; i++)
                                buf_printf(&b, "Wants=%s\nAfter=%s\nPartOf=%s\n", socks[i].unit,
                                           socks[i].unit, socks[i].unit);
                        buf_puts(&b, "\n");
                }
                buf_puts(&b, "[Service]\n");
                for (size_t i = 0; i < n_socks; i++)
                        buf_printf(&b, "Sockets=%s\n", socks[i].unit);
                buf_printf(&b, "Environment=MAIL_CONFIG=%s\nSyslogIdentifier=%s/master\n", dir, syslog_name);
                buf_printf(&b, "ReadWritePaths=-%s -%s\n", queue, data);
                /* Local delivery writes mailboxes: the spool, and home directories only when it must. */
                const char *spool = config_get(c, "mail_spool_directory");
                if (path_ok(spool))
                        buf_printf(&b, "ReadWritePaths=-%s\n", spool);
                if (!isempty(config_get(c, "home_mailbox")))
                        buf_puts(&b, "ProtectHome=no\nReadWritePaths=-/home\n");
                add_file(out, xasprintf("%s.d/50-postd-instance.conf", svc_unit), buf_steal(&b), NULL);

                for (size_t i = 0; i < n_socks; i++) {
                        buf_printf(&b, "# Generated by postfix-generator from %s/master.cf.\n", dir);
                        socket_text(&b, label, svc_unit, &socks[i], i > 0);
                        char *path = i == 0 ? xasprintf("%s.d/50-postd-listen.conf", socks[i].unit)
                                            : xstrdup(socks[i].unit);
                        add_file(out, path, buf_steal(&b), NULL);
                }
                if (gen_instance_wanted(c, in->is_default))
                        add_file(out, xasprintf("postfix.target.wants/%s", svc_unit), NULL,
                                 xstrdup(in->template_path));
        } else
                message(out, "%s: skipped: %s", svc_unit, err ? err : strerror(-r));
        free(err);
        for (size_t i = 0; i < n_socks; i++) {
                free(socks[i].unit);
                inet_listen_set_done(&socks[i].ls);
        }
        return r < 0 ? -EINVAL : 0;
}

void gen_output_done(struct gen_output *out)
{
        for (size_t i = 0; i < out->n_files; i++) {
                free(out->files[i].path);
                free(out->files[i].text);
                free(out->files[i].symlink);
        }
        free(out->files);
        strv_done(&out->messages);
        *out = (struct gen_output){0};
}

const struct gen_file *gen_output_find(const struct gen_output *out, const char *path)
{
        for (size_t i = 0; i < out->n_files; i++)
                if (streq(out->files[i].path, path))
                        return &out->files[i];
        return NULL;
}
