/* main.c: virtual, the delivery agent for virtual mailbox domains on hosts without Dovecot (runs as root).
 */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "catalog.h"
#include "config.h"
#include "delivery_request.h"
#include "log.h"
#include "service.h"
#include "virtual_agent.h"

static struct virtual_agent agent;

/* A table that cannot be opened stops nothing: deliveries that need it are deferred (NULL maps). */
static struct maps *open_ids(struct config *c, const char *param)
{
        struct maps *m = NULL;
        char *err = NULL;
        int r = maps_open(param, config_get(c, param), &m, &err);
        if (r < 0) {
                msg_fields(LOG_LEVEL_WARNING,
                           &(struct log_fields){
                                   .catalog_id = r == -EPROTONOSUPPORT ? CATALOG_UNSUPPORTED_TABLE : NULL},
                           "%s; deliveries are deferred until it is fixed", err ? err : param);
                free(err);
                return NULL;
        }
        return m;
}

static int init(struct service *s)
{
        struct virtual_agent *v = service_userdata(s);
        struct config *c = service_config(s);
        delivery_set_soft_bounce(config_get_bool(c, "soft_bounce"));
        const char *queue_dir = config_get(c, "queue_directory");
        int r = queue_open(queue_dir, &v->queue);
        if (r < 0) {
                msg_error("open queue directory %s: %s", queue_dir, strerror(-r));
                return r;
        }
        r = resolve_open_logged(c, &v->resolve);
        if (r < 0)
                return r;
        v->uid_maps = open_ids(c, "virtual_uid_maps");
        v->gid_maps = open_ids(c, "virtual_gid_maps");
        v->base = xstrdup(config_get(c, "virtual_mailbox_base"));
        v->hostname = xstrdup(config_get(c, "myhostname"));
        v->minimum_uid = config_get_int(c, "virtual_minimum_uid");
        v->mailbox_limit = (uint64_t)config_get_int(c, "virtual_mailbox_limit");
        /* A write past virtual_mailbox_limit fails with EFBIG instead of killing the agent. */
        signal(SIGXFSZ, SIG_IGN);
        if (geteuid() != 0)
                msg_warn("not running as root: deliveries as other users will be deferred (master.cf: the "
                         "unpriv column of \"virtual\" must be n)");
        return 0;
}

static void on_connection(struct service *s, int fd)
{
        /* One request at a time with blocking I/O: the effective ids change around each delivery. */
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
                fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        struct virtual_agent *v = service_userdata(s);
        agent_serve_each(v->queue, fd, "virtual", virtual_deliver, v);
        close(fd);
        service_connection_done(s);
}

int main(int argc, char **argv)
{
        static const struct service_ops ops = {
                .init = init,
                .on_connection = on_connection,
                .max_connections = 1,
                .userdata = &agent,
        };
        return service_main(argc, argv, &ops);
}
