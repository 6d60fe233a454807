/* main.c: the cleanup daemon: canonicalises submitted messages and queues them durably (group commit). */
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "cleanup.h"
#include "log.h"
#include "mail_proto.h"

static struct cleanup cleanup;

/* Postfix 3.0 changed append_dot_mydomain's default to "no" behind compatibility_level >= 1. */
static bool append_dot_mydomain(struct config *cfg)
{
        if (config_is_set(cfg, "append_dot_mydomain"))
                return config_get_bool(cfg, "append_dot_mydomain");
        const char *level = config_get(cfg, "compatibility_level");
        return !level || strtol(level, NULL, 10) < 1;
}

static void read_settings(struct cleanup *c)
{
        struct config *cfg = c->config;
        c->myhostname = xstrdup(config_get(cfg, "myhostname"));
        c->myorigin = xstrdup(config_get(cfg, "myorigin"));
        c->mydomain = xstrdup(config_get(cfg, "mydomain"));
        c->rewrite = (struct rewrite_opts){
                .myorigin = c->myorigin,
                .mydomain = c->mydomain,
                .append_at_myorigin = config_get_bool(cfg, "append_at_myorigin"),
                .append_dot_mydomain = append_dot_mydomain(cfg),
        };
        long long v = config_get_int(cfg, "message_size_limit");
        c->message_size_limit = v > 0 ? (uint64_t)v : 0;
        v = config_get_int(cfg, "header_size_limit");
        c->header_size_limit = v > 0 ? (size_t)v : 0;
        v = config_get_int(cfg, "line_length_limit");
        c->line_length_limit = v > 0 ? (size_t)v : 0;
        v = config_get_time(cfg, "ipc_timeout");
        c->ipc_timeout_usec = (uint64_t)(v > 0 ? v : 3600) * 1000000u;
}

static int init(struct service *s)
{
        struct cleanup *c = &cleanup;
        c->service = s;
        c->config = service_config(s);
        read_settings(c);

        struct instance_paths paths;
        instance_paths_from_config(c->config, &paths);
        c->qmgr_socket = xasprintf("%s/%s", paths.queue_dir, MAIL_PROTO_QMGR_SOCKET);
        int r = queue_open(paths.queue_dir, &c->queue);
        if (r < 0)
                msg_error("open queue directory %s: %s; run \"postfix check\" to create it", paths.queue_dir,
                          strerror(-r));
        instance_paths_free(&paths);
        if (r < 0)
                return r;
        return commit_new(c, &c->commit);
}

static void on_connection(struct service *s, int fd)
{
        session_start(&cleanup, fd);
}

int main(int argc, char **argv)
{
        static const struct service_ops ops = {
                .init = init,
                .on_connection = on_connection,
                .max_connections = CLEANUP_MAX_CONNECTIONS,
        };
        return service_main(argc, argv, &ops);
}
