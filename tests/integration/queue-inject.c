/* queue-inject.c: test tool: write a complete queue file into incoming/ (no cleanup daemon) and wake qmgr.
 */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "inject.h"
#include "ipc.h"
#include "log.h"
#include "mail_proto.h"
#include "qfile.h"
#include "queue.h"

static void usage(void)
{
        fprintf(stderr,
                "usage: queue-inject -c config_dir [-f sender] [-a age_seconds] [-n] rcpt... < message\n"
                "  -a  arrival time that many seconds in the past\n"
                "  -n  do not notify qmgr (it finds the file on its next scan)\n");
        exit(2);
}

int main(int argc, char **argv)
{
        const char *config_dir = NULL, *sender = "sender@example.test";
        long long age = 0;
        bool notify = true;
        int opt;

        log_setup_command("queue-inject");
        while ((opt = getopt(argc, argv, "c:f:a:n")) != -1) {
                switch (opt) {
                case 'c': config_dir = optarg; break;
                case 'f': sender = optarg; break;
                case 'a': age = strtoll(optarg, NULL, 10); break;
                case 'n': notify = false; break;
                default: usage();
                }
        }
        if (optind >= argc)
                usage();

        struct config *c = NULL;
        int r = config_load(config_dir, &c);
        if (r < 0)
                msg_fatal("load config: %s", strerror(-r));
        const char *queue_dir = config_get(c, "queue_directory");

        struct buf content = BUF_INIT;
        inject_read_stdin(&content);

        struct queue *q = NULL;
        r = queue_open(queue_dir, &q);
        if (r < 0)
                msg_fatal("open queue %s: %s", queue_dir, strerror(-r));
        _cleanup_free_ char *id =
                inject_queue_message(q, c, sender, argv + optind, (size_t)(argc - optind), &content,
                                     inject_now_usec() - (uint64_t)age * 1000000ULL);
        printf("%s\n", id);
        fflush(stdout);

        if (notify) {
                /* The master's public/qmgr listener: a connection there also starts qmgr if needed. */
                _cleanup_free_ char *path = xasprintf("%s/%s", queue_dir, MAIL_PROTO_QMGR_SOCKET);
                int fd = -1;
                if (ipc_connect_unix(path, 2000, &fd) == 0) {
                        struct ipc_msg req = IPC_MSG_INIT;
                        if (ipc_msg_add_str(&req, "req", "new") < 0 ||
                            ipc_msg_add_str(&req, "queue_id", id) < 0 || ipc_send(fd, &req, 2000) < 0)
                                msg_warn("notify qmgr: send failed");
                        ipc_msg_done(&req);
                        close(fd);
                } else
                        msg_warn("notify qmgr: cannot connect to %s (it will scan incoming/)", path);
        }
        queue_close(q);
        buf_done(&content);
        config_free(c);
        return 0;
}
