/* echo-service.c: a test daemon on the service skeleton: answers each connection with its name and pid. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "service.h"

/*
 * Arguments (master.cf, after the command): "crash" makes every start fail (the throttling test);
 * "hold" keeps each connection open until the peer closes it, so tests can count busy processes.
 */
static bool hold;

static void on_connection(struct service *s, int fd)
{
        char line[256];
        int n = snprintf(line, sizeof line, "%s %d\n", service_name(s), (int)getpid());
        if (send(fd, line, (size_t)n, MSG_NOSIGNAL) < 0) {
                /* the client went away: nothing to do */
        }
        if (hold) {
                /* Blocking is fine here (one connection per process); 30 s bounds a forgotten client. */
                struct timeval tv = {30, 0};
                fcntl(fd, F_SETFL, 0);
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                char buf[64];
                while (recv(fd, buf, sizeof buf, 0) > 0)
                        ;
        }
        close(fd);
        service_connection_done(s);
}

static int init(struct service *s)
{
        int n = 0;
        char **args = service_args(s, &n);
        for (int i = 0; i < n; i++) {
                if (strcmp(args[i], "crash") == 0)
                        abort();
                if (strcmp(args[i], "hold") == 0)
                        hold = true;
        }
        return 0;
}

int main(int argc, char **argv)
{
        static const struct service_ops ops = {
                .init = init,
                .on_connection = on_connection,
                .max_connections = 1,
        };
        return service_main(argc, argv, &ops);
}
