/* anvil_client.c: smtpd's side of the anvil protocol (src/anvil/anvil.h): one connection per process. */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "access_lists.h"
#include "alloc.h"
#include "instance.h"
#include "ipc.h"
#include "log.h"
#include "smtpd.h"

/*
 * anvil answers from memory in microseconds; this bounds the wait for one that is started on demand by
 * the master (the first request) or stuck. Each session waits at most this long per event.
 */
#define ANVIL_CALL_TIMEOUT_USEC (5000 * USEC_PER_MSEC)
/* After a failure smtpd serves without limits and asks again only after this long. */
#define ANVIL_RETRY_USEC (10 * USEC_PER_SEC)

struct smtpd_anvil {
        char *path; /* private/anvil */
        char *service;
        int fd;           /* -1: not connected */
        unsigned gen;     /* connections made so far: a disconnect goes only to the one that counted */
        time_t retry_at;  /* no attempt before this after a failure */
        bool down_warned; /* one warning per outage */
        struct netlist exceptions;
        struct smtpd_anvil_limits limits;
};

static const char *const event_req[SMTPD_ANVIL_N] = {"connect", "disconnect", "message", "rcpt", "auth"};

int smtpd_anvil_new(struct config *c, const char *service, struct smtpd_anvil **ret, char **ret_error)
{
        struct smtpd_anvil *a = xcalloc(1, sizeof *a);
        struct smtpd_anvil_limits *l = &a->limits;
        l->count = config_get_int(c, "smtpd_client_connection_count_limit");
        l->conn_rate = config_get_int(c, "smtpd_client_connection_rate_limit");
        l->message = config_get_int(c, "smtpd_client_message_rate_limit");
        l->rcpt = config_get_int(c, "smtpd_client_recipient_rate_limit");
        l->auth = config_get_int(c, "smtpd_client_auth_rate_limit");
        bool any = l->count > 0 || l->conn_rate > 0 || l->message > 0 || l->rcpt > 0 || l->auth > 0;
        /* As Postfix: without any limit smtpd never talks to anvil. */
        if (!any) {
                free(a);
                *ret = NULL;
                return 0;
        }
        int r = netlist_init(&a->exceptions, "smtpd_client_event_limit_exceptions",
                             config_get(c, "smtpd_client_event_limit_exceptions"), ret_error);
        if (r < 0) {
                free(a);
                return r;
        }
        struct instance_paths paths;
        instance_paths_from_config(c, &paths);
        a->path = instance_socket_path(&paths, "anvil", true);
        instance_paths_done(&paths);
        a->service = xstrdup(service);
        a->fd = -1;
        *ret = a;
        return 0;
}

void smtpd_anvil_free(struct smtpd_anvil *a)
{
        if (!a)
                return;
        if (a->fd >= 0)
                close(a->fd);
        netlist_done(&a->exceptions);
        free(a->path);
        free(a->service);
        free(a);
}

const struct smtpd_anvil_limits *smtpd_anvil_limits(const struct smtpd_anvil *a)
{
        static const struct smtpd_anvil_limits none = {0};
        return a ? &a->limits : &none;
}

bool smtpd_anvil_exempt(struct smtpd_anvil *a, const char *addr)
{
        /* A table that fails exempts nobody: limits stay on (the failure is logged by the table). */
        return !a || netlist_match(&a->exceptions, addr) > 0;
}

static void went_down(struct smtpd_anvil *a, const char *why)
{
        if (a->fd >= 0)
                close(a->fd);
        a->fd = -1;
        a->retry_at = time(NULL) + USEC_TO_SEC(ANVIL_RETRY_USEC);
        if (!a->down_warned)
                msg_warn("problem talking to service %s: %s; client connection and rate limits are off "
                         "until it "
                         "answers (master.cf needs \"anvil unix - - n - 1 anvil\")",
                         a->path, why);
        a->down_warned = true;
}

static int ensure_connected(struct smtpd_anvil *a)
{
        if (a->fd >= 0)
                return 0;
        if (time(NULL) < a->retry_at)
                return -EAGAIN;
        int r = ipc_connect_unix(a->path, USEC_TO_MS(ANVIL_CALL_TIMEOUT_USEC), &a->fd);
        if (r < 0) {
                a->fd = -1;
                went_down(a, strerror(-r));
                return r;
        }
        a->gen++;
        return 0;
}

/* One request and its answer; a connection anvil closed (it was restarted) is made again once. */
static int call(struct smtpd_anvil *a, enum smtpd_anvil_event e, const char *ident, unsigned *gen,
                struct ipc_msg *reply)
{
        struct ipc_msg req = IPC_MSG_INIT;
        int r = ipc_msg_add_str(&req, "req", event_req[e]);
        if (r >= 0)
                r = ipc_msg_add_str(&req, "ident", ident);
        for (int attempt = 0; r >= 0 && attempt < 2; attempt++) {
                bool fresh = a->fd < 0;
                r = ensure_connected(a);
                if (r < 0)
                        break;
                /* A disconnect for a connect counted on an earlier connection: anvil undid that one. */
                if (e == SMTPD_ANVIL_DISCONNECT && gen && *gen != a->gen) {
                        r = -ESTALE;
                        break;
                }
                r = ipc_call(a->fd, &req, reply, USEC_TO_MS(ANVIL_CALL_TIMEOUT_USEC));
                if (r >= 0 || fresh || r == -ETIMEDOUT)
                        break;
                close(a->fd);
                a->fd = -1;
        }
        ipc_msg_done(&req);
        return r;
}

int smtpd_anvil_event(struct smtpd_anvil *a, enum smtpd_anvil_event e, const char *addr, unsigned *gen,
                      struct smtpd_anvil_answer *ret)
{
        if (!a || e >= SMTPD_ANVIL_N)
                return -EINVAL;
        _cleanup_free_ char *ident = xasprintf("%s:%s", a->service, addr);
        struct ipc_msg reply = IPC_MSG_INIT;
        int r = call(a, e, ident, gen, &reply);
        if (r < 0) {
                if (r != -EAGAIN && r != -ESTALE && a->fd >= 0)
                        went_down(a, strerror(-r));
                ipc_msg_done(&reply);
                return r;
        }
        if (a->down_warned)
                msg_info("service %s answers again: client connection and rate limits are on", a->path);
        a->down_warned = false;
        long long status = -EPROTO, count = 0, rate = 0;
        (void)ipc_msg_get_int(&reply, "status", &status);
        (void)ipc_msg_get_int(&reply, "count", &count);
        (void)ipc_msg_get_int(&reply, "rate", &rate);
        ipc_msg_done(&reply);
        if (status != 0)
                return status < 0 ? (int)status : -EPROTO; /* not counted (anvil's table is full) */
        if (e == SMTPD_ANVIL_CONNECT && gen)
                *gen = a->gen;
        *ret = (struct smtpd_anvil_answer){count, rate};
        return 0;
}
