/* main.c: discard, the delivery agent that accepts mail and throws it away ("status=sent (TEXT)"). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "service.h"

static struct queue *discard_queue;

/* The nexthop text is the reason in the log ("discard:silenced" -> "status=sent (silenced)"). */
static void decide(void *userdata, const char *nexthop, const char *transport, struct agent_verdict *ret)
{
        agent_verdict_from_text(nexthop, AGENT_SENT, '2', "discarded", ret);
}

static int discard_init(struct service *s)
{
        const char *queue_dir = config_get(service_config(s), "queue_directory");
        int r = queue_open(queue_dir, &discard_queue);
        if (r < 0) {
                msg_error("open queue directory %s: %s", queue_dir, strerror(-r));
                return r;
        }
        return 0;
}

static void on_connection(struct service *s, int fd)
{
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
                fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        agent_serve(discard_queue, fd, decide, NULL);
        close(fd);
        service_connection_done(s);
}

int main(int argc, char **argv)
{
        static const struct service_ops ops = {
                .init = discard_init,
                .on_connection = on_connection,
                .max_connections = 1,
        };
        return service_main(argc, argv, &ops);
}
