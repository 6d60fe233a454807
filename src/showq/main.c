/* main.c: showq, the queue listing for users other than root (postqueue -p / -j, mailq). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "log.h"
#include "service.h"
#include "showq.h"

/* A client that sends no request or reads no answer in this long is dropped. */
#define SHOWQ_CLIENT_TIMEOUT_USEC (60 * USEC_PER_SEC)

/* The request: one line, "list" or "json"; anything else gets the mailq layout. */
static bool read_request_json(int fd)
{
        char req[16];
        size_t len = 0;
        while (len < sizeof req - 1) {
                ssize_t n = read(fd, req + len, 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0 || req[len] == '\n')
                        break;
                len++;
        }
        req[len] = '\0';
        return strcmp(req, "json") == 0;
}

static void on_connection(struct service *s, int fd)
{
        /* One client at a time (max_connections 1): plain blocking I/O with timeouts is enough. */
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
                fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        struct timeval tv = {.tv_sec = USEC_TO_SEC(SHOWQ_CLIENT_TIMEOUT_USEC)};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        bool json = read_request_json(fd);
        FILE *out = fdopen(fd, "w");
        if (!out) {
                close(fd);
                service_connection_done(s);
                return;
        }
        const char *queue_dir = config_get(service_config(s), "queue_directory");
        int r = showq_list_queue(queue_dir, json, out);
        if (r < 0)
                msg_warn("open queue directory %s: %s", queue_dir, strerror(-r));
        fclose(out);
        service_connection_done(s);
}

int main(int argc, char **argv)
{
        static const struct service_ops ops = {
                .on_connection = on_connection,
                .max_connections = 1,
        };
        return service_main(argc, argv, &ops);
}
