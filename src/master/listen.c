/* listen.c: the master's services: master.cf, master_service_disable, listeners, systemd sockets. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "alloc.h"
#include "inet_listen.h"
#include "catalog.h"
#include "instance_check.h"
#include "fileio.h"
#include "listen_fds.h"
#include "log.h"
#include "master.h"
#include "netaddr.h"

int master_load_config(struct master *m, const char *config_dir, struct mastercf *ret)
{
        struct config *c = NULL;
        int r = config_load(config_dir, &c);
        if (r < 0) {
                msg_error("open %s/main.cf: %s", config_dir ? config_dir : "(default)", strerror(-r));
                return r;
        }
        _cleanup_free_ char *path = mastercf_path(config_directory(c));
        r = mastercf_load(config_directory(c), ret);
        if (r < 0) {
                msg_error("open %s: %s", path, strerror(-r));
                config_free(c);
                return r;
        }
        for (size_t i = 0; i < ret->n_diags; i++)
                msg_warn("%s: line %u: %s", path, ret->diags[i].line, ret->diags[i].message);
        struct strv errors = STRV_INIT;
        if (instance_check_chroot(c, ret, &errors) > 0) {
                for (size_t i = 0; i < errors.n; i++)
                        msg_error("%s", errors.v[i]);
                msg_error("not using this configuration: postd runs no service in a chroot jail");
                strv_done(&errors);
                mastercf_done(ret);
                config_free(c);
                return -EINVAL;
        }
        if (instance_check_table_types(c, ret, &errors) > 0) {
                for (size_t i = 0; i < errors.n; i++)
                        msg_fields(LOG_LEVEL_ERROR,
                                   &(struct log_fields){.catalog_id = CATALOG_UNSUPPORTED_TABLE}, "%s",
                                   errors.v[i]);
                msg_error("not using this configuration: fix the table types above (postfix check lists "
                          "every problem)");
                strv_done(&errors);
                mastercf_done(ret);
                config_free(c);
                return -EINVAL;
        }
        strv_done(&errors);
        if (m->config)
                config_free(m->config);
        m->config = c;
        instance_paths_done(&m->paths);
        instance_paths_from_config(c, &m->paths);
        return 0;
}

void master_warn_inert(struct master *m, const struct mastercf *cf)
{
        struct strv warnings = STRV_INIT;
        config_list_inert(m->config, &warnings);
        for (size_t i = 0; i < warnings.n; i++) {
                _cleanup_free_ char *w = config_inert_warning(m->config, warnings.v[i]);
                msg_warn("%s", w);
        }
        strv_done(&warnings);
        instance_register_mastercf(m->config, cf);
        instance_check_overrides(m->config, cf, &warnings);
        for (size_t i = 0; i < warnings.n; i++)
                msg_warn("%s", warnings.v[i]);
        strv_done(&warnings);
}

static char *addr_string(const struct sockaddr *sa)
{
        char host[INET6_ADDRSTRLEN] = "?";
        if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, host, sizeof host);
        else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof host);
        return xstrdup(host);
}

static uint16_t addr_port(const struct sockaddr *sa)
{
        if (sa->sa_family == AF_INET)
                return ntohs(((const struct sockaddr_in *)sa)->sin_port);
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
}

static char *inet_key(const struct sockaddr *sa)
{
        _cleanup_free_ char *host = addr_string(sa);
        return xasprintf("inet %s %u", host, addr_port(sa));
}

struct endpoint {
        struct sockaddr_storage sa;
        socklen_t len;
};

static void add_endpoint(struct endpoint *eps, size_t *n, const struct sockaddr *sa, socklen_t len,
                         const char *label)
{
        for (size_t i = 0; i < *n; i++)
                if (eps[i].len == len && memcmp(&eps[i].sa, sa, len) == 0)
                        return;
        if (*n >= MASTER_ENDPOINTS_MAX)
                msg_fatal("service %s: more than %d listening addresses", label, MASTER_ENDPOINTS_MAX);
        memcpy(&eps[*n].sa, sa, len);
        eps[*n].len = len;
        (*n)++;
}

static void add_host(struct endpoint *eps, size_t *n, const char *host, uint16_t port, bool v4, bool v6,
                     const char *label)
{
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_ADDRCONFIG};
        hints.ai_family = v4 && v6 ? AF_UNSPEC : v4 ? AF_INET : AF_INET6;
        struct addrinfo *res = NULL;
        _cleanup_free_ char *h = xstrdup(host);
        size_t hl = strlen(h);
        if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
                memmove(h, h + 1, hl - 2);
                h[hl - 2] = '\0';
        }
        char portstr[16];
        snprintf(portstr, sizeof portstr, "%u", port);
        /* A literal address needs no AI_ADDRCONFIG: with only loopback up (a container, early boot) it
         * would make even "127.0.0.1" unknown. */
        hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
        int r = getaddrinfo(h, portstr, &hints, &res);
        if (r == EAI_NONAME) {
                hints.ai_flags = AI_PASSIVE | AI_ADDRCONFIG;
                r = getaddrinfo(h, portstr, &hints, &res);
        }
        if (r != 0)
                msg_fatal("service %s: host %s: %s", label, h, gai_strerror(r));
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
                add_endpoint(eps, n, ai->ai_addr, ai->ai_addrlen, label);
        freeaddrinfo(res);
}

/* Every address an inet service listens on: its own host, else each inet_interfaces entry, per
 * inet_protocols. */
static size_t inet_endpoints(struct master *m, const struct mastercf_service *svc, const char *label,
                             struct endpoint *eps)
{
        size_t n = 0;
        uint16_t port = 0;
        int r = mastercf_port_number(svc->port, &port);
        if (r < 0)
                msg_fatal("master.cf line %u: service %s: bad port %s", svc->line, label, svc->port);

        struct strv protos = STRV_INIT, ifaces = STRV_INIT;
        bool v4 = false, v6 = false;
        config_get_list(m->config, "inet_protocols", &protos);
        for (size_t i = 0; i < protos.n; i++) {
                if (streq(protos.v[i], "all"))
                        v4 = v6 = true;
                else if (streq(protos.v[i], "ipv4"))
                        v4 = true;
                else if (streq(protos.v[i], "ipv6"))
                        v6 = true;
                else
                        msg_fatal("bad inet_protocols value: %s (expected all, ipv4, ipv6)", protos.v[i]);
        }
        strv_done(&protos);
        if (v6) {
                /* A host without IPv6 ("all" is the default) listens on IPv4 only, as Postfix does. */
                int probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe < 0)
                        v6 = false;
                else
                        close(probe);
        }
        if (!v4 && !v6)
                msg_fatal("inet_protocols: no usable protocol for service %s", label);

        if (svc->host) {
                add_host(eps, &n, svc->host, port, v4, v6, label);
                return n;
        }
        config_get_list(m->config, "inet_interfaces", &ifaces);
        for (size_t i = 0; i < ifaces.n; i++) {
                const char *f = ifaces.v[i];
                if (streq(f, "all")) {
                        if (v6) {
                                struct sockaddr_in6 sa = {.sin6_family = AF_INET6,
                                                          .sin6_port = htons(port),
                                                          .sin6_addr = IN6ADDR_ANY_INIT};
                                add_endpoint(eps, &n, (struct sockaddr *)&sa, sizeof sa, label);
                        }
                        if (v4) {
                                struct sockaddr_in sa = {.sin_family = AF_INET,
                                                         .sin_port = htons(port),
                                                         .sin_addr.s_addr = htonl(INADDR_ANY)};
                                add_endpoint(eps, &n, (struct sockaddr *)&sa, sizeof sa, label);
                        }
                } else if (streq(f, "loopback-only") || streq(f, "localhost")) {
                        if (v6) {
                                struct sockaddr_in6 sa = {.sin6_family = AF_INET6,
                                                          .sin6_port = htons(port),
                                                          .sin6_addr = IN6ADDR_LOOPBACK_INIT};
                                add_endpoint(eps, &n, (struct sockaddr *)&sa, sizeof sa, label);
                        }
                        if (v4) {
                                struct sockaddr_in sa = {.sin_family = AF_INET,
                                                         .sin_port = htons(port),
                                                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
                                add_endpoint(eps, &n, (struct sockaddr *)&sa, sizeof sa, label);
                        }
                } else
                        add_host(eps, &n, f, port, v4, v6, label);
        }
        strv_done(&ifaces);
        if (n == 0)
                msg_fatal("service %s: inet_interfaces gives no address to listen on", label);
        return n;
}

static int bind_inet(const struct endpoint *ep, const struct mastercf_service *svc, const char *label)
{
        int fd = socket(ep->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                msg_fatal("socket for service %s: %s", label, strerror(errno));
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ep->sa.ss_family == AF_INET6)
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(fd, (const struct sockaddr *)&ep->sa, ep->len) < 0) {
                int e = errno;
                _cleanup_free_ char *host = addr_string((const struct sockaddr *)&ep->sa);
                /* Postfix's wording first, then where the operator finds the service. */
                msg_fields(
                        LOG_LEVEL_FATAL,
                        &(struct log_fields){.catalog_id = e == EADDRINUSE ? CATALOG_ADDRESS_IN_USE : NULL},
                        "bind %s port %u: %s (service \"%s\", master.cf line %u)%s", host,
                        addr_port((const struct sockaddr *)&ep->sa), strerror(e), label, svc->line,
                        e == EADDRNOTAVAIL ? ": no network interface of this host has this address; fix "
                                             "inet_interfaces (or the service's address) or add the address"
                                           : "");
                exit(1);
        }
        if (listen(fd, MASTER_LISTEN_BACKLOG) < 0)
                msg_fatal("listen on service %s: %s", label, strerror(errno));
        return fd;
}

/*
 * private/ and public/ belong to the mail owner, so a compromised role holding that uid may put
 * anything there at any moment. Nothing below acts on a name after creating it: bind() and mkfifo()
 * never follow a symbolic link, the mode comes from the umask at creation (not a chmod by name that
 * a link swapped in meanwhile would redirect to a root-owned file), and the fifo is opened with
 * O_NOFOLLOW and checked to be the one root just made before its mode is set through the descriptor.
 */
static int bind_unix(const char *path, const char *label)
{
        struct sockaddr_un sa;
        socklen_t sa_len;
        if (unix_address(path, &sa, &sa_len) < 0)
                msg_fatal("service %s: socket path too long: %s", label, path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                msg_fatal("socket for service %s: %s", label, strerror(errno));
        if (unlink(path) < 0 && errno != ENOENT)
                msg_fatal("remove %s: %s", path, strerror(errno));
        /* Access is decided by the directory: private/ is the mail owner's, public/ the setgid group's. */
        mode_t old = umask(0111);
        int r = bind(fd, (struct sockaddr *)&sa, sa_len);
        int e = errno;
        umask(old);
        if (r < 0)
                msg_fatal("bind %s: %s (service \"%s\")", path, strerror(e), label);
        if (listen(fd, MASTER_LISTEN_BACKLOG) < 0)
                msg_fatal("listen on %s: %s", path, strerror(errno));
        return fd;
}

static int open_fifo(const char *path, const char *label)
{
        /* Always a fresh fifo: one left there (or planted) by the mail owner's uid is not reused. */
        if (unlink(path) < 0 && errno != ENOENT)
                msg_fatal("remove %s: %s", path, strerror(errno));
        mode_t old = umask(0);
        int r = mkfifo(path, 0622);
        int e = errno;
        umask(old);
        if (r < 0)
                msg_fatal("create fifo %s: %s (service \"%s\")", path, strerror(e), label);
        /* Read-write so the fifo never reports EOF while no writer is around. */
        int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                msg_fatal("open fifo %s: %s (service \"%s\")", path, strerror(errno), label);
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode) || st.st_uid != geteuid())
                msg_fatal("fifo %s was replaced while the master created it (service \"%s\"): "
                          "something else writes to %s",
                          path, label, path);
        if (fchmod(fd, 0622) < 0)
                msg_fatal("chmod fifo %s: %s", path, strerror(errno));
        return fd;
}

/* Take the listener with that key from the previous generation, if there is one. */
static bool reuse_listener(struct master_service *old, size_t n_old, const char *label, const char *key,
                           struct master_listener *ret)
{
        for (size_t i = 0; i < n_old; i++) {
                if (!streq(old[i].label, label))
                        continue;
                for (size_t j = 0; j < old[i].n_listeners; j++) {
                        struct master_listener *l = &old[i].listeners[j];
                        if (l->fd >= 0 && streq(l->key, key)) {
                                *ret = (struct master_listener){
                                        .fd = l->fd, .owned = l->owned, .key = xstrdup(key)};
                                l->fd = -1; /* moved */
                                return true;
                        }
                }
        }
        return false;
}

static void add_listener(struct master_service *s, int fd, bool owned, char *key)
{
        s->listeners = xrealloc(s->listeners, (s->n_listeners + 1) * sizeof *s->listeners);
        s->listeners[s->n_listeners++] =
                (struct master_listener){.fd = fd, .owned = owned, .key = key, .svc = s};
}

/* systemd's descriptor for this service: by FileDescriptorName= = service name, else by address. */
static void systemd_listeners(struct master *m, struct master_service *s, const struct endpoint *eps,
                              size_t n_eps)
{
        for (size_t i = 0; i < m->n_sd_fds; i++) {
                if (m->sd_fds[i] < 0)
                        continue;
                bool match = m->sd_names && m->sd_names[i] && streq(m->sd_names[i], s->name);
                struct sockaddr_storage ss;
                socklen_t len = sizeof ss;
                if (!match && getsockname(m->sd_fds[i], (struct sockaddr *)&ss, &len) == 0) {
                        for (size_t j = 0; j < n_eps && !match; j++)
                                match = eps[j].len == len && memcmp(&eps[j].sa, &ss, len) == 0;
                }
                if (match) {
                        len = sizeof ss;
                        char *key = getsockname(m->sd_fds[i], (struct sockaddr *)&ss, &len) == 0
                                            ? inet_key((struct sockaddr *)&ss)
                                            : xasprintf("systemd %zu", i);
                        add_listener(s, m->sd_fds[i], false, key);
                }
        }
}

void master_setup_services(struct master *m, const struct mastercf *cf, struct master_service *old,
                           size_t n_old)
{
        struct strv disable = STRV_INIT;
        config_get_list(m->config, "master_service_disable", &disable);
        long long default_limit = config_get_int(m->config, "default_process_limit");

        m->services = xcalloc(cf->n_services ? cf->n_services : 1, sizeof *m->services);
        m->n_services = 0;
        for (size_t i = 0; i < cf->n_services; i++) {
                const struct mastercf_service *svc = &cf->services[i];
                _cleanup_free_ char *label = xasprintf("%s/%s", svc->name, svc->type_name);
                const char *why = inet_listen_disabled_by(&disable, svc);
                if (why) {
                        /* A classic trap (a leftover "master_service_disable = inet"): say it loudly. */
                        msg_fields(LOG_LEVEL_WARNING,
                                   &(struct log_fields){.catalog_id = svc->type == MASTERCF_INET
                                                                              ? CATALOG_INET_DISABLED
                                                                              : NULL},
                                   "service \"%s\" (master.cf line %u) is disabled by "
                                   "master_service_disable = %s",
                                   label, svc->line, why);
                        continue;
                }
                if (svc->type == MASTERCF_UNIX_DGRAM || svc->type == MASTERCF_PASS) {
                        msg_warn("service \"%s\" (master.cf line %u): type %s is not supported; skipped",
                                 label, svc->line, svc->type_name);
                        continue;
                }
                struct master_service *s = &m->services[m->n_services++];
                s->m = m;
                s->label = TAKE_PTR(label);
                s->name = xstrdup(svc->name);
                s->type = svc->type;
                s->line = svc->line;
                s->maxproc = svc->maxproc < 0 ? (int)default_limit : svc->maxproc;
                s->wakeup = svc->wakeup;
                s->wakeup_conditional = svc->wakeup_conditional;
                s->path = svc->command[0] == '/' ? xstrdup(svc->command)
                                                 : xasprintf("%s/%s", m->paths.daemon_dir, svc->command);
                strv_push(&s->argv, s->path);
                strv_push(&s->argv, "-c");
                strv_push(&s->argv, m->paths.config_dir);
                strv_push(&s->argv, "-n");
                strv_push(&s->argv, svc->name);
                strv_push(&s->argv, "-t");
                strv_push(&s->argv, svc->type_name);
                if (svc->unpriv)
                        strv_push(&s->argv, "-u");
                for (size_t j = 0; j < svc->n_overrides; j++) {
                        strv_push(&s->argv, "-o");
                        strv_push_take(&s->argv,
                                       xasprintf("%s=%s", svc->overrides[j].name, svc->overrides[j].value));
                }
                for (size_t j = 0; j < svc->args.n; j++)
                        strv_push(&s->argv, svc->args.v[j]);

                if (svc->type == MASTERCF_INET) {
                        struct endpoint eps[MASTER_ENDPOINTS_MAX];
                        size_t n = inet_endpoints(m, svc, s->label, eps);
                        if (m->n_sd_fds > 0 || m->unit) {
                                systemd_listeners(m, s, eps, n);
                                if (s->n_listeners == 0 && !old)
                                        msg_fatal(
                                                "service \"%s\" (master.cf line %u) has no listening socket "
                                                "from systemd: its socket unit did not start (systemctl "
                                                "status %s says why) or does not list it (run systemctl "
                                                "daemon-reload)",
                                                s->label, s->line, m->unit ? m->unit : "the unit");
                                if (s->n_listeners == 0) {
                                        /* Binding it here would keep the socket unit from ever starting. */
                                        msg_warn("service \"%s\" (master.cf line %u) is new or listens "
                                                 "elsewhere since the start: not started until its socket "
                                                 "unit listens; run \"postfix reload\" (it restarts the "
                                                 "unit for new listeners) or systemctl restart %s",
                                                 s->label, s->line, m->unit ? m->unit : "the unit");
                                        master_service_done(s);
                                        m->n_services--;
                                }
                                continue;
                        }
                        for (size_t j = 0; j < n; j++) {
                                char *key = inet_key((struct sockaddr *)&eps[j].sa);
                                struct master_listener l;
                                if (reuse_listener(old, n_old, s->label, key, &l)) {
                                        add_listener(s, l.fd, l.owned, l.key);
                                        free(key);
                                } else
                                        add_listener(s, bind_inet(&eps[j], svc, s->label), true, key);
                        }
                } else {
                        s->socket_path = instance_socket_path(&m->paths, svc->name, svc->private_);
                        char *key = xasprintf("%s %s", svc->type_name, s->socket_path);
                        struct master_listener l;
                        if (reuse_listener(old, n_old, s->label, key, &l)) {
                                add_listener(s, l.fd, l.owned, l.key);
                                free(key);
                        } else if (svc->type == MASTERCF_FIFO)
                                add_listener(s, open_fifo(s->socket_path, s->label), true, key);
                        else
                                add_listener(s, bind_unix(s->socket_path, s->label), true, key);
                }
        }
        strv_done(&disable);

        /* A socket systemd listens on that no service takes would accept connections nobody answers. */
        for (size_t i = 0; i < m->n_sd_fds; i++) {
                bool used = false;
                for (size_t j = 0; j < m->n_services && !used; j++)
                        for (size_t k = 0; k < m->services[j].n_listeners && !used; k++)
                                used = m->services[j].listeners[k].fd == m->sd_fds[i];
                if (!used)
                        msg_warn("socket from systemd (FileDescriptorName=%s) matches no enabled inet "
                                 "service",
                                 m->sd_names && m->sd_names[i] ? m->sd_names[i] : "?");
        }
}

void master_service_done(struct master_service *s)
{
        for (size_t i = 0; i < s->n_listeners; i++) {
                struct master_listener *l = &s->listeners[i];
                event_source_disable_unref(l->src);
                if (l->fd >= 0 && l->owned)
                        close(l->fd);
                free(l->key);
        }
        free(s->listeners);
        event_source_disable_unref(s->throttle_timer);
        event_source_disable_unref(s->wakeup_timer);
        free(s->label);
        free(s->name);
        free(s->path);
        free(s->socket_path);
        strv_done(&s->argv);
        *s = (struct master_service){0};
}

void master_take_systemd_fds(struct master *m)
{
        char **names = NULL;
        int n = listen_fds_take(&names);
        if (n <= 0)
                return;
        m->n_sd_fds = (size_t)n;
        m->sd_fds = xcalloc((size_t)n, sizeof *m->sd_fds);
        m->sd_names = names;
        for (int i = 0; i < n; i++) {
                int fd = LISTEN_FDS_START + i;
                /* Move them above the range children get theirs in, and keep them from leaking into
                 * children. */
                int moved = fcntl(fd, F_DUPFD_CLOEXEC, LISTEN_FDS_START + SERVICE_LISTEN_FDS_MAX + 8);
                if (moved < 0)
                        msg_fatal("systemd socket %d: %s", fd, strerror(errno));
                close(fd);
                fcntl(moved, F_SETFL, fcntl(moved, F_GETFL) | O_NONBLOCK);
                m->sd_fds[i] = moved;
        }
}
