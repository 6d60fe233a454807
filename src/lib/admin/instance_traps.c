/* instance_traps.c: postfix check's warnings about the classic multi-instance traps (SCENARIOS A, B, G). */
#include "instance_check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "fileio.h"
#include "inet_listen.h"
#include "instance.h"
#include "macro.h"
#include "mastercf.h"
#include "sd_notify.h"

/* Every listener of the enabled inet services; the label of each in labels ("2525/inet"). */
static void instance_listeners(struct config *c, const struct mastercf *m, struct strv *addrs,
                               struct strv *labels)
{
        bool v4 = false, v6 = false;
        _cleanup_free_ char *err = NULL;
        if (inet_listen_protocols(c, true, &v4, &v6, &err) < 0)
                return;
        struct strv disable = STRV_INIT;
        config_get_list(c, "master_service_disable", &disable);
        for (size_t s = 0; s < m->n_services; s++) {
                const struct mastercf_service *svc = &m->services[s];
                if (svc->type != MASTERCF_INET || inet_listen_disabled_by(&disable, svc))
                        continue;
                struct inet_listen_set ls = {0};
                _cleanup_free_ char *e = NULL;
                if (inet_listen_service(c, svc, v4, v6, &ls, &e) >= 0)
                        for (size_t i = 0; i < ls.n; i++) {
                                strv_push(addrs, ls.v[i]);
                                strv_push_take(labels, xasprintf("%s/%s", svc->name, svc->type_name));
                        }
                inet_listen_set_done(&ls);
        }
        strv_done(&disable);
}

/* "0.0.0.0:25" takes every IPv4 address of port 25, "[::]:25" every IPv6 one. */
static bool listeners_clash(const char *a, const char *b)
{
        if (streq(a, b))
                return true;
        const char *pa = strrchr(a, ':'), *pb = strrchr(b, ':');
        if (!pa || !pb || !streq(pa, pb))
                return false;
        bool a6 = a[0] == '[', b6 = b[0] == '[';
        if (a6 != b6)
                return false;
        const char *any = a6 ? "[::]" : "0.0.0.0";
        size_t n = strlen(any);
        return (strncmp(a, any, n) == 0 && a[n] == ':') || (strncmp(b, any, n) == 0 && b[n] == ':');
}

static int load_instance(const char *dir, struct config **ret_c, struct mastercf *ret_m)
{
        int r = config_load(dir, ret_c);
        if (r < 0)
                return r;
        r = mastercf_load(dir, ret_m);
        if (r < 0) {
                config_free(*ret_c);
                *ret_c = NULL;
        }
        return r;
}

/* Two instances (enabled ones and the default) on one address:port: the second never gets it. */
static size_t check_shared_ports(struct config *c, const struct strv *addrs, const struct strv *labels,
                                 struct strv *warnings)
{
        const char *default_dir = instance_default_config_dir();
        struct config *dc = NULL;
        struct mastercf dm = {0};
        if (load_instance(default_dir, &dc, &dm) < 0)
                return 0;
        struct strv dirs = STRV_INIT;
        strv_push(&dirs, default_dir);
        config_get_list(dc, "multi_instance_directories", &dirs);
        size_t n = 0;
        for (size_t d = 0; d < dirs.n && d < 1000; d++) {
                if (same_directory(dirs.v[d], config_directory(c)))
                        continue;
                struct config *oc = NULL;
                struct mastercf om = {0};
                if (load_instance(dirs.v[d], &oc, &om) < 0)
                        continue;
                if (d == 0 || config_get_bool(oc, "multi_instance_enable")) {
                        struct strv oa = STRV_INIT, ol = STRV_INIT;
                        instance_listeners(oc, &om, &oa, &ol);
                        for (size_t i = 0; i < addrs->n; i++)
                                for (size_t j = 0; j < oa.n; j++)
                                        if (listeners_clash(addrs->v[i], oa.v[j])) {
                                                strv_push_take(
                                                        warnings,
                                                        xasprintf("master.cf service %s listens on %s, and "
                                                                  "so does service %s of the instance in "
                                                                  "%s (%s): only one of them can have it; "
                                                                  "give each instance its own port or "
                                                                  "address",
                                                                  labels->v[i], addrs->v[i], ol.v[j],
                                                                  dirs.v[d], oa.v[j]));
                                                n++;
                                        }
                        strv_done(&oa);
                        strv_done(&ol);
                }
                mastercf_done(&om);
                config_free(oc);
        }
        strv_done(&dirs);
        mastercf_done(&dm);
        config_free(dc);
        return n;
}

/* "127.0.0.1:2525" / "[::1]:25" -> a socket address; false when it is not one. */
static bool parse_listener(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
        const char *colon = strrchr(text, ':');
        if (!colon)
                return false;
        long port = strtol(colon + 1, NULL, 10);
        if (port <= 0 || port > 65535)
                return false;
        _cleanup_free_ char *host = xstrndup(text, (size_t)(colon - text));
        memset(ss, 0, sizeof *ss);
        if (host[0] == '[') {
                size_t hl = strlen(host);
                if (hl < 2 || host[hl - 1] != ']')
                        return false;
                host[hl - 1] = '\0';
                struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
                s6->sin6_family = AF_INET6;
                s6->sin6_port = htons((uint16_t)port);
                *len = sizeof *s6;
                return inet_pton(AF_INET6, host + 1, &s6->sin6_addr) == 1;
        }
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *len = sizeof *s4;
        return inet_pton(AF_INET, host, &s4->sin_addr) == 1;
}

/* Whether systemd is PID 1. POSTD_SYSTEMD_BOOTED=0 or 1 overrides it, so that the tests of both answers
 * run the same on every host. */
static bool host_runs_systemd(void)
{
        const char *force = getenv("POSTD_SYSTEMD_BOOTED");
        if (force && (streq(force, "0") || streq(force, "1")))
                return streq(force, "1");
        return systemd_booted();
}

/*
 * Another process on a listener's address:port (a system Postfix, another MTA): try to bind it.
 * Only while this instance is stopped and outside systemd, where the port would be our own.
 */
static size_t check_ports_free(struct config *c, const struct strv *addrs, const struct strv *labels,
                               struct strv *warnings)
{
        struct instance_paths p;
        instance_paths_from_config(c, &p);
        pid_t pid = 0;
        bool running = instance_master_pid(&p, &pid) == 0;
        instance_paths_done(&p);
        if (running || host_runs_systemd())
                return 0;
        size_t n = 0;
        for (size_t i = 0; i < addrs->n; i++) {
                struct sockaddr_storage ss;
                socklen_t len = 0;
                if (!parse_listener(addrs->v[i], &ss, &len))
                        continue;
                _cleanup_close_ int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
                int one = 1;
                if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
                        continue;
                /* (an address this host lacks is an error of instance_check_listen_addresses) */
                if (bind(fd, (struct sockaddr *)&ss, len) == 0 || errno != EADDRINUSE)
                        continue;
                strv_push_take(warnings,
                               xasprintf("master.cf service %s: %s is in use by another process "
                                         "(ss -ltnp shows which): the instance could not listen there",
                                         labels->v[i], addrs->v[i]));
                n++;
        }
        return n;
}

static bool is_loopback(const char *addr)
{
        unsigned char bin[16];
        if (streq(addr, "localhost") || streq(addr, "loopback-only"))
                return true;
        if (inet_pton(AF_INET, addr, bin) == 1)
                return bin[0] == 127;
        return streq(addr, "::1") || streq(addr, "[::1]");
}

size_t instance_check_traps(struct config *c, const struct mastercf *m, struct strv *warnings)
{
        size_t n = 0;
        struct strv disable = STRV_INIT, ifaces = STRV_INIT;
        config_get_list(c, "master_service_disable", &disable);
        for (size_t s = 0; m && s < m->n_services; s++) {
                const struct mastercf_service *svc = &m->services[s];
                const char *by = svc->type == MASTERCF_INET ? inet_listen_disabled_by(&disable, svc) : NULL;
                if (by) {
                        strv_push_take(
                                warnings,
                                xasprintf("master.cf line %u: service %s/inet is disabled by "
                                          "master_service_disable = %s in %s: nothing listens on it; "
                                          "remove \"%s\" there to enable it (postmulti -e create sets "
                                          "\"inet\" for new instances)",
                                          svc->line, svc->name, by, config_maincf_path(c), by));
                        n++;
                }
        }
        strv_done(&disable);

        /* Postfix's rule: a single non-loopback inet_interfaces address is also the smtp client's
         * source address; a relay that only accepts another address then times out (seed 000). */
        config_get_list(c, "inet_interfaces", &ifaces);
        const char *bind = config_get(c, "smtp_bind_address");
        if (ifaces.n == 1 && !streq(ifaces.v[0], "all") && !is_loopback(ifaces.v[0]) && isempty(bind)) {
                strv_push_take(
                        warnings,
                        xasprintf("inet_interfaces = %s is a single non-loopback address, so outbound SMTP "
                                  "also comes from %s; if a relay expects another source address, set "
                                  "smtp_bind_address",
                                  ifaces.v[0], ifaces.v[0]));
                n++;
        }
        strv_done(&ifaces);

        if (m) {
                struct strv addrs = STRV_INIT, labels = STRV_INIT;
                instance_listeners(c, m, &addrs, &labels);
                n += check_shared_ports(c, &addrs, &labels, warnings);
                n += check_ports_free(c, &addrs, &labels, warnings);
                strv_done(&addrs);
                strv_done(&labels);
        }
        return n;
}
