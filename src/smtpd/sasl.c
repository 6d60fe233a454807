/* sasl.c: smtpd's AUTH backend: Dovecot's auth service (smtpd_sasl_type = dovecot), one connection a
 * session.
 *
 * Why worker threads (src/lib/util/worker.h) and blocking I/O rather than io sources on the loop: an AUTH
 * conversation is a handful of strictly alternating request/answer lines on a connection that only one
 * session uses, once per session at most; each step ("connect and read the handshake", "send AUTH,
 * read the answer", "send CONT, read the answer") is one short blocking function with its own
 * timeout, run in a thread while the session waits and every other session keeps being served. The
 * connection's fd is handed to the thread for the step and back, so only one thread ever touches it.
 * Dovecot holds failed attempts for auth_failure_delay: with a thread that costs nothing on the loop.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "alloc.h"
#include "dovecot_auth.h"
#include "instance.h"
#include "log.h"
#include "maps.h"
#include "smtpd.h"
#include "worker.h"

/* Time allowed for connecting, for the handshake and for each answer of Dovecot. */
#define SASL_TIMEOUT_USEC (30 * USEC_PER_SEC)

struct smtpd_sasl {
        char *path;    /* unix socket path, or NULL */
        char *inet;    /* "host:port" of inet:host:port, or NULL */
        char *display; /* smtpd_sasl_path as written, for log lines */
        unsigned opts, tls_opts;
        bool tls_auth_only;
};

struct sasl_job;

struct sasl_conv {
        struct smtpd_sasl *sasl;
        struct session *owner;
        sasl_event_fn cb;
        int fd; /* -1: not connected; while a job runs the job owns it */
        struct dovecot_auth_handshake hs;
        bool have_mechs;
        unsigned long next_id, id;
        struct sasl_job *job; /* the running step, or NULL */
};

struct sasl_job {
        struct sasl_conv *conv; /* NULL once the session is gone: the answer goes nowhere */
        struct smtpd_sasl *sasl;
        int fd;
        bool connect; /* no connection yet: connect and read the handshake first */
        struct dovecot_auth_handshake hs;
        char *send; /* line(s) to send, or NULL */
        int status; /* 0, or -errno; -EPROTO: Dovecot said something we do not understand */
        struct dovecot_auth_reply reply;
        bool have_reply;
};

static int split_inet(const char *hostport, char **host, char **port)
{
        const char *colon = strrchr(hostport, ':');
        if (!colon || colon == hostport || !colon[1])
                return -EINVAL;
        const char *h = hostport;
        size_t hlen = (size_t)(colon - hostport);
        if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
                h++;
                hlen -= 2;
        }
        *host = xstrndup(h, hlen);
        *port = xstrdup(colon + 1);
        return 0;
}

static int parse_options(struct config *c, const char *param, unsigned *ret, char **ret_error)
{
        struct strv words = STRV_INIT;
        config_get_list(c, param, &words);
        const char *bad = NULL;
        int r = dovecot_auth_security_options((const char *const *)words.v, words.n, ret, &bad);
        if (r < 0)
                *ret_error =
                        xasprintf("%s: unknown option \"%s\" (valid: noanonymous, noplaintext, noactive, "
                                  "nodictionary, mutual_auth, forward_secrecy)",
                                  param, bad);
        strv_done(&words);
        return r;
}

int smtpd_sasl_new(struct config *c, const char *queue_dir, struct smtpd_sasl **ret, char **ret_error)
{
        *ret = NULL;
        if (!config_get_bool(c, "smtpd_sasl_auth_enable"))
                return 0;
        const char *type = config_get(c, "smtpd_sasl_type");
        if (!type || strcasecmp(type, "dovecot") != 0) {
                *ret_error = xasprintf("smtpd_sasl_type = %s is not supported: postd authenticates through "
                                       "Dovecot only; set smtpd_sasl_type = dovecot and smtpd_sasl_path to "
                                       "Dovecot's auth socket (e.g. private/auth)",
                                       type ? type : "");
                return -EPROTONOSUPPORT;
        }
        const char *path = config_get(c, "smtpd_sasl_path");
        if (isempty(path)) {
                *ret_error = xstrdup(
                        "smtpd_sasl_path is empty: set it to Dovecot's auth socket, e.g. private/auth "
                        "(under queue_directory) or inet:127.0.0.1:12345");
                return -EINVAL;
        }
        struct smtpd_sasl *s = xcalloc(1, sizeof *s);
        s->display = xstrdup(path);
        if (strncmp(path, "inet:", 5) == 0) {
                _cleanup_free_ char *h = NULL, *p = NULL;
                if (split_inet(path + 5, &h, &p) < 0) {
                        *ret_error = xasprintf("smtpd_sasl_path = %s: expected inet:host:port", path);
                        smtpd_sasl_free(s);
                        return -EINVAL;
                }
                s->inet = xstrdup(path + 5);
        } else {
                const char *p = strncmp(path, "unix:", 5) == 0 ? path + 5 : path;
                s->path = p[0] == '/' ? xstrdup(p) : xasprintf("%s/%s", queue_dir, p);
        }
        int r = parse_options(c, "smtpd_sasl_security_options", &s->opts, ret_error);
        if (r >= 0)
                r = parse_options(c, "smtpd_sasl_tls_security_options", &s->tls_opts, ret_error);
        if (r < 0) {
                smtpd_sasl_free(s);
                return r;
        }
        s->tls_auth_only = config_get_bool(c, "smtpd_tls_auth_only");
        *ret = s;
        return 0;
}

void smtpd_sasl_free(struct smtpd_sasl *s)
{
        if (!s)
                return;
        free(s->path);
        free(s->inet);
        free(s->display);
        free(s);
}

bool smtpd_sasl_uses_inet(const struct smtpd_sasl *s)
{
        return s->inet != NULL;
}

bool smtpd_sasl_tls_auth_only(const struct smtpd_sasl *s)
{
        return s->tls_auth_only;
}

/* ---- the blocking steps, run in a worker thread ---- */

static int set_timeouts(int fd)
{
        struct timeval tv = {.tv_sec = USEC_TO_SEC(SASL_TIMEOUT_USEC)};
        if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
                return -errno;
        return 0;
}

static int connect_unix(const char *path)
{
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        if (strlen(path) >= sizeof sun.sun_path)
                return -ENAMETOOLONG;
        memcpy(sun.sun_path, path, strlen(path) + 1);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* SO_SNDTIMEO also bounds a connect to a listener whose backlog is full. */
        if (set_timeouts(fd) < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
                int e = -errno;
                close(fd);
                return e;
        }
        return fd;
}

static int connect_inet(const char *hostport)
{
        _cleanup_free_ char *host = NULL, *port = NULL;
        if (split_inet(hostport, &host, &port) < 0)
                return -EINVAL;
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
        if (getaddrinfo(host, port, &hints, &res) != 0)
                return -EHOSTUNREACH;
        int r = -ECONNREFUSED;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0) {
                        r = -errno;
                        continue;
                }
                /* SO_SNDTIMEO bounds a TCP connect on Linux. */
                if (set_timeouts(fd) == 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                        r = fd;
                        break;
                }
                r = -errno;
                close(fd);
        }
        freeaddrinfo(res);
        return r;
}

static int write_all(int fd, const char *p, size_t n)
{
        while (n > 0) {
                ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0)
                        return errno == EAGAIN ? -ETIMEDOUT : -errno;
                p += w;
                n -= (size_t)w;
        }
        return 0;
}

/* One line (no LF; malloc'd) read a byte at a time, so nothing past it is taken off the socket. */
static int read_line(int fd, char **ret)
{
        struct buf b = BUF_INIT;
        for (;;) {
                char c;
                ssize_t n = recv(fd, &c, 1, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        int e = n == 0 ? -ECONNRESET : errno == EAGAIN ? -ETIMEDOUT : -errno;
                        buf_done(&b);
                        return e;
                }
                if (c == '\n')
                        break;
                if (b.len >= DOVECOT_AUTH_LINE_MAX) {
                        buf_done(&b);
                        return -EPROTO;
                }
                buf_putc(&b, c);
        }
        *ret = buf_steal(&b);
        return 0;
}

static int job_handshake(struct sasl_job *j)
{
        int fd = j->sasl->path ? connect_unix(j->sasl->path) : connect_inet(j->sasl->inet);
        if (fd < 0)
                return fd;
        j->fd = fd;
        int r = set_timeouts(fd);
        _cleanup_free_ char *hello = dovecot_auth_client_hello((unsigned long)getpid());
        if (r >= 0)
                r = write_all(fd, hello, strlen(hello));
        /* Bounded: each line counts against the timeout, and Dovecot's handshake ends with DONE. */
        for (unsigned lines = 0; r >= 0 && !j->hs.done; lines++) {
                if (lines > 4 * DOVECOT_AUTH_MECHS_MAX + 64)
                        return -EPROTO;
                _cleanup_free_ char *line = NULL;
                r = read_line(fd, &line);
                if (r >= 0)
                        r = dovecot_auth_handshake_line(&j->hs, line);
        }
        return r < 0 ? r : 0;
}

static void job_work(void *userdata)
{
        struct sasl_job *j = userdata;
        int r = 0;
        if (j->connect)
                r = job_handshake(j);
        if (r >= 0 && j->send) {
                r = write_all(j->fd, j->send, strlen(j->send));
                _cleanup_free_ char *line = NULL;
                if (r >= 0)
                        r = read_line(j->fd, &line);
                if (r >= 0) {
                        r = dovecot_auth_reply_parse(line, &j->reply) < 0 ? -EPROTO : 0;
                        j->have_reply = r == 0;
                }
        }
        j->status = r;
}

/* ---- the session's side, on the loop ---- */

static void job_free(struct sasl_job *j)
{
        if (j->fd >= 0)
                close(j->fd);
        free(j->send);
        dovecot_auth_reply_done(&j->reply);
        free(j);
}

static const char *failure_text(int status)
{
        return status == -EPROTO ? "unexpected answer from the auth server" : strerror(-status);
}

static void job_done(void *userdata)
{
        struct sasl_job *j = userdata;
        struct sasl_conv *v = j->conv;
        if (!v) {
                job_free(j);
                return;
        }
        v->job = NULL;
        struct sasl_event ev = {.outcome = SASL_TEMPFAIL};
        if (j->status < 0) {
                msg_warn("SASL: %s %s: %s", j->connect ? "connect to" : "conversation with",
                         v->sasl->display, failure_text(j->status));
        } else if (j->connect && !j->send) {
                v->hs = j->hs;
                v->have_mechs = true;
                ev.outcome = SASL_MECHS;
        } else if (j->reply.id != v->id) {
                msg_warn("SASL: %s answered request %lu, expected %lu", v->sasl->display, j->reply.id,
                         v->id);
                j->status = -EPROTO;
        } else {
                ev.user = j->reply.user;
                ev.data = j->reply.data;
                ev.reason = j->reply.reason;
                if (j->reply.type == DOVECOT_AUTH_FAIL && j->reply.temp)
                        msg_warn("SASL: %s: temporary failure: %s", v->sasl->display,
                                 j->reply.reason ? j->reply.reason : "no reason given");
                ev.outcome = j->reply.type == DOVECOT_AUTH_OK     ? SASL_OK
                             : j->reply.type == DOVECOT_AUTH_CONT ? SASL_CONT
                             : j->reply.temp                      ? SASL_TEMPFAIL
                                                                  : SASL_FAIL;
        }
        if (j->connect && j->status >= 0) {
                v->hs = j->hs;
                v->have_mechs = true;
        }
        /* A broken or finished conversation is not reused: the next AUTH connects again. */
        if (j->status >= 0 && ev.outcome != SASL_TEMPFAIL) {
                v->fd = j->fd;
                j->fd = -1;
        }
        v->cb(v->owner, &ev);
        job_free(j);
}

static int start_job(struct sasl_conv *v, struct event_loop *e, char *send)
{
        struct sasl_job *j = xcalloc(1, sizeof *j);
        j->conv = v;
        j->sasl = v->sasl;
        j->fd = v->fd;
        j->connect = v->fd < 0;
        j->send = send;
        v->fd = -1;
        int r = worker_run(e, job_work, job_done, j);
        if (r < 0) {
                msg_warn("SASL: cannot start a worker: %s", strerror(-r));
                job_free(j);
                return r;
        }
        v->job = j;
        return 0;
}

struct sasl_conv *sasl_conv_new(struct smtpd_sasl *sasl, struct session *owner, sasl_event_fn cb)
{
        struct sasl_conv *v = xcalloc(1, sizeof *v);
        v->sasl = sasl;
        v->owner = owner;
        v->cb = cb;
        v->fd = -1;
        return v;
}

void sasl_conv_free(struct sasl_conv *v)
{
        if (!v)
                return;
        if (v->job)
                v->job->conv = NULL; /* the thread still runs: job_done frees the job */
        if (v->fd >= 0)
                close(v->fd);
        free(v);
}

bool sasl_conv_have_mechs(const struct sasl_conv *v)
{
        return v->have_mechs;
}

int sasl_conv_fetch_mechs(struct sasl_conv *v, struct event_loop *e)
{
        if (v->job)
                return -EBUSY;
        return start_job(v, e, NULL);
}

static unsigned options_for(const struct sasl_conv *v, bool tls)
{
        return tls ? v->sasl->tls_opts : v->sasl->opts;
}

char *sasl_conv_mech_list(const struct sasl_conv *v, bool tls)
{
        struct buf b = BUF_INIT;
        for (size_t i = 0; i < v->hs.n_mechs; i++) {
                if (!dovecot_auth_mech_allowed(v->hs.mechs[i].flags, options_for(v, tls)))
                        continue;
                if (b.len)
                        buf_putc(&b, ' ');
                buf_puts(&b, v->hs.mechs[i].name);
        }
        if (b.len == 0) {
                buf_done(&b);
                return NULL;
        }
        return buf_steal(&b);
}

bool sasl_conv_mech_offered(const struct sasl_conv *v, const char *mech, bool tls)
{
        for (size_t i = 0; i < v->hs.n_mechs; i++)
                if (strcasecmp(v->hs.mechs[i].name, mech) == 0)
                        return dovecot_auth_mech_allowed(v->hs.mechs[i].flags, options_for(v, tls));
        return false;
}

int sasl_conv_start(struct sasl_conv *v, struct event_loop *e, const struct sasl_start *st)
{
        if (v->job)
                return -EBUSY;
        v->id = ++v->next_id;
        struct dovecot_auth_request rq = {
                .id = v->id,
                .mech = st->mech,
                .service = "smtp",
                .local_ip = st->local_ip,
                .remote_ip = st->remote_ip,
                .secured = st->tls,
                .initial = st->initial,
        };
        char *line = dovecot_auth_format_auth(&rq);
        if (!line)
                return -EINVAL;
        return start_job(v, e, line);
}

int sasl_conv_continue(struct sasl_conv *v, struct event_loop *e, const char *response)
{
        if (v->job)
                return -EBUSY;
        char *line = dovecot_auth_format_cont(v->id, response);
        if (!line)
                return -EINVAL;
        return start_job(v, e, line);
}

void sasl_conv_abort(struct sasl_conv *v)
{
        /* Dovecot has no "cancel": closing the connection ends the request. */
        if (v->fd >= 0)
                close(v->fd);
        v->fd = -1;
}
