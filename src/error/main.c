/* main.c: error (and retry), the delivery agent that returns or defers mail as transport_maps say. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "delivery_request.h"
#include "log.h"
#include "macro.h"
#include "service.h"

struct error_agent {
        struct queue *queue;
        bool retry; /* master.cf "retry unix ... error": defer instead of bounce (Postfix 2.x and later) */
};

static struct error_agent error_state;

/* "error:5.1.1 no such user" bounces with 5.1.1; "retry:4.4.1 text" defers (any class is forced). */
static void decide(void *userdata, const char *nexthop, const char *transport, struct agent_verdict *ret)
{
        const struct error_agent *e = userdata;
        if (e->retry)
                agent_verdict_from_text(nexthop, AGENT_DEFERRED, '4', "delivery temporarily suspended", ret);
        else
                agent_verdict_from_text(nexthop, AGENT_BOUNCED, '5', "mail delivery disabled", ret);
}

static int error_init(struct service *s)
{
        struct error_agent *e = service_userdata(s);
        const char *queue_dir = config_get(service_config(s), "queue_directory");
        int r = queue_open(queue_dir, &e->queue);
        if (r < 0) {
                msg_error("open queue directory %s: %s", queue_dir, strerror(-r));
                return r;
        }
        e->retry = streq(service_name(s), "retry");
        delivery_set_soft_bounce(config_get_bool(service_config(s), "soft_bounce"));
        return 0;
}

static void on_connection(struct service *s, int fd)
{
        struct error_agent *e = service_userdata(s);
        /* One short request per connection: blocking I/O with timeouts keeps this straight. */
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
                fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        agent_serve(e->queue, fd, decide, e);
        close(fd);
        service_connection_done(s);
}

int main(int argc, char **argv)
{
        static const struct service_ops ops = {
                .init = error_init,
                .on_connection = on_connection,
                .max_connections = 1,
                .userdata = &error_state,
        };
        return service_main(argc, argv, &ops);
}
