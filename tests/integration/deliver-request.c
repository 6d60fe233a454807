/* deliver-request.c: test tool: queue a message in active/ and send qmgr's delivery request to an agent. */
#include <errno.h>
#include <fcntl.h>
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
#include "instance.h"
#include "inject.h"
#include "ipc.h"
#include "log.h"
#include "qfile.h"
#include "queue.h"

#define DR_TIMEOUT_USEC (120 * USEC_PER_SEC)

static void usage(void)
{
        fprintf(stderr,
                "usage: deliver-request -c config_dir [-s service] [-n nexthop] [-f sender] rcpt... < "
                "message\n"
                "       deliver-request -c config_dir -S queue_id   (show the recipients' status)\n");
        exit(2);
}

static int show(struct queue *q, const char *id)
{
        int fd = -1;
        char *data = NULL;
        size_t len = 0;
        struct qfile_msg m = {0};
        int r = queue_open_file(q, id, QUEUE_ACTIVE, O_RDONLY, &fd);
        if (r >= 0)
                r = queue_read_fd(fd, &data, &len);
        if (r >= 0)
                r = qfile_decode(data, len, &m, NULL);
        if (r < 0)
                msg_fatal("read active/%s: %s", id, strerror(-r));
        for (size_t i = 0; i < m.n_rcpts; i++)
                printf("%s %s %s\n", m.rcpts[i].address, qfile_rcpt_state_to_string(m.rcpts[i].state),
                       m.rcpts[i].dsn_status[0] ? m.rcpts[i].dsn_status : "-");
        qfile_msg_done(&m);
        free(data);
        close(fd);
        return 0;
}

int main(int argc, char **argv)
{
        const char *config_dir = NULL, *service = "smtp", *nexthop = "", *sender = "sender@example.test";
        const char *show_id = NULL;
        int opt;

        log_setup_command("deliver-request");
        while ((opt = getopt(argc, argv, "c:s:n:f:S:")) != -1) {
                switch (opt) {
                case 'c': config_dir = optarg; break;
                case 's': service = optarg; break;
                case 'n': nexthop = optarg; break;
                case 'f': sender = optarg; break;
                case 'S': show_id = optarg; break;
                default: usage();
                }
        }
        struct config *c = NULL;
        int r = config_load(config_dir, &c);
        if (r < 0)
                msg_fatal("load config: %s", strerror(-r));
        struct queue *q = NULL;
        r = queue_open(config_get(c, "queue_directory"), &q);
        if (r < 0)
                msg_fatal("open queue: %s", strerror(-r));
        if (show_id)
                return show(q, show_id);
        if (optind >= argc)
                usage();

        struct buf content = BUF_INIT;
        inject_read_stdin(&content);
        uint64_t arrival_usec = inject_now_usec();
        size_t n_rcpts = (size_t)(argc - optind);
        char *id = inject_queue_message(q, c, sender, argv + optind, n_rcpts, &content, arrival_usec);
        r = queue_move(q, id, QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_SYNC);
        if (r < 0)
                msg_fatal("move %s to active: %s", id, strerror(-r));
        printf("queue_id=%s\n", id);
        fflush(stdout);

        struct instance_paths paths;
        instance_paths_from_config(c, &paths);
        char *sock = instance_socket_path(&paths, service, true);
        int fd = -1;
        r = ipc_connect_unix(sock, 10000, &fd);
        if (r < 0)
                msg_fatal("connect %s: %s", sock, strerror(-r));
        struct ipc_msg req = IPC_MSG_INIT, reply = IPC_MSG_INIT;
        const struct ipc_kv kv[] = {{"req", "deliver", 7},
                                    {"queue_id", id, strlen(id)},
                                    {"queue", "active", 6},
                                    {"nexthop", nexthop, strlen(nexthop)},
                                    {"transport", service, strlen(service)}};
        r = ipc_msg_add_group(&req, kv, ELEMENTSOF(kv));
        if (r == 0)
                r = ipc_msg_add_int(&req, "arrival_usec", (long long)arrival_usec);
        if (r == 0)
                r = ipc_msg_add_int(&req, "active_usec", (long long)inject_now_usec());
        for (size_t i = 0; r == 0 && i < n_rcpts; i++)
                r = ipc_msg_add_int(&req, "rcpt_index", (long long)i);
        if (r < 0)
                msg_fatal("delivery request: %s", strerror(-r));
        r = ipc_call(fd, &req, &reply, USEC_TO_MS(DR_TIMEOUT_USEC));
        if (r < 0)
                msg_fatal("delivery request to %s: %s", sock, strerror(-r));
        for (size_t i = 0; i + 3 < reply.n_attrs; i += 4)
                printf("%s=%s %s=%s %s=%s %s=%s\n", reply.attrs[i].name, reply.attrs[i].value,
                       reply.attrs[i + 1].name, reply.attrs[i + 1].value, reply.attrs[i + 2].name,
                       reply.attrs[i + 2].value, reply.attrs[i + 3].name, reply.attrs[i + 3].value);
        ipc_msg_done(&req);
        ipc_msg_done(&reply);
        close(fd);
        free(sock);
        instance_paths_done(&paths);
        free(id);
        buf_done(&content);
        queue_close(q);
        config_free(c);
        return 0;
}
