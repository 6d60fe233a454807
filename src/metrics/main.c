/* main.c: metrics, the service that answers each connection with the instance's OpenMetrics text
 * (master.cf: "127.0.0.1:9154 inet n - n - - metrics" for Prometheus, or a unix socket). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "metrics_instance.h"
#include "service.h"

/* How long a client may take to send its request, and its largest size. */
#define METRICS_REQUEST_TIMEOUT_USEC (2000 * USEC_PER_MSEC)
#define METRICS_REQUEST_MAX          8192

/* The request's first bytes, up to the end of its header block: enough to tell HTTP from a bare reader. */
static size_t read_request(int fd, char *req, size_t size)
{
        size_t len = 0;
        while (len + 1 < size) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, USEC_TO_MS(METRICS_REQUEST_TIMEOUT_USEC)) <= 0)
                        break;
                ssize_t k = read(fd, req + len, size - 1 - len);
                if (k <= 0)
                        break;
                len += (size_t)k;
                req[len] = '\0';
                if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
                        break;
        }
        req[len] = '\0';
        return len;
}

static void write_all(int fd, const char *p, size_t n)
{
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return;
                p += k;
                n -= (size_t)k;
        }
}

static void on_connection(struct service *s, int fd)
{
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
                fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        char req[METRICS_REQUEST_MAX];
        size_t len = read_request(fd, req, sizeof req);
        struct buf body = BUF_INIT, out = BUF_INIT;
        metrics_instance_text(service_config(s), metrics_attached(), &body);
        if (len == 0)
                /* A bare reader (socat, nc): the text alone. */
                buf_append(&out, body.data, body.len);
        else if (strncmp(req, "GET ", 4) == 0)
                buf_printf(&out,
                           "HTTP/1.0 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; "
                           "charset=utf-8\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%.*s",
                           body.len, (int)body.len, body.data);
        else
                buf_puts(&out, "HTTP/1.0 405 Method Not Allowed\r\nAllow: GET\r\nContent-Length: 0\r\n\r\n");
        write_all(fd, out.data, out.len);
        buf_done(&body);
        buf_done(&out);
        close(fd);
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
