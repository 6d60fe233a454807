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

static bool list_has(struct config *cfg, const char *param, const char *word)
{
        struct strv v = STRV_INIT;
        config_get_list(cfg, param, &v);
        bool found = false;
        for (size_t i = 0; i < v.n && !found; i++)
                found = streq(v.v[i], word);
        strv_done(&v);
        return found;
}

/* A limit below 1 would refuse every expansion: Postfix requires positive values too. */
static size_t positive(struct config *cfg, const char *param)
{
        long long v = config_get_int(cfg, param);
        if (v < 1) {
                msg_warn("%s = %lld: must be at least 1; using 1", param, v);
                v = 1;
        }
        return (size_t)v;
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
        c->hopcount_limit = config_get_int(cfg, "hopcount_limit");
        v = config_get_int(cfg, "line_length_limit");
        c->line_length_limit = v > 0 ? (size_t)v : 0;
        v = config_get_time(cfg, "ipc_timeout");
        c->ipc_timeout_usec = (uint64_t)(v > 0 ? v : 3600) * 1000000u;

        const char *checks[4] = {
                [CHECKS_CLASS_HEADER] = config_get(cfg, "header_checks"),
                [CHECKS_CLASS_MIME] = config_get(cfg, "mime_header_checks"),
                [CHECKS_CLASS_NESTED] = config_get(cfg, "nested_header_checks"),
                [CHECKS_CLASS_BODY] = config_get(cfg, "body_checks"),
        };
        v = config_get_int(cfg, "body_checks_size_limit");
        checks_conf_init(&c->checks, checks, v > 0 ? (uint64_t)v : 0,
                         !config_get_bool(cfg, "disable_mime_input_processing"), c->header_size_limit);
        c->checks.bounce = list_has(cfg, "internal_mail_filter_classes", "bounce");
        table_param_init(&c->sender_canonical_maps, "sender_canonical_maps",
                         config_get(cfg, "sender_canonical_maps"));
        table_param_init(&c->recipient_canonical_maps, "recipient_canonical_maps",
                         config_get(cfg, "recipient_canonical_maps"));
        table_param_init(&c->canonical_maps, "canonical_maps", config_get(cfg, "canonical_maps"));
        c->sender_canonical_envelope = list_has(cfg, "sender_canonical_classes", "envelope_sender");
        c->recipient_canonical_envelope = list_has(cfg, "recipient_canonical_classes", "envelope_recipient");
        c->canonical_envelope_sender = list_has(cfg, "canonical_classes", "envelope_sender");
        c->canonical_envelope_recipient = list_has(cfg, "canonical_classes", "envelope_recipient");
        c->virtual_recursion_limit = positive(cfg, "virtual_alias_recursion_limit");
        c->virtual_expansion_limit = positive(cfg, "virtual_alias_expansion_limit");
        c->virtual_address_length_limit = positive(cfg, "virtual_alias_address_length_limit");
        milter_conf_init(&c->milters, cfg);
        c->address_maps = !table_param_empty(&c->sender_canonical_maps) ||
                          !table_param_empty(&c->recipient_canonical_maps) ||
                          !table_param_empty(&c->canonical_maps) ||
                          !isempty(config_get(cfg, "virtual_alias_maps"));
}

struct resolve *cleanup_resolver(struct cleanup *c)
{
        if (!c->resolve && resolve_open_logged(c->config, &c->resolve) < 0)
                c->resolve = NULL;
        return c->resolve;
}

static int init(struct service *s)
{
        struct cleanup *c = &cleanup;
        c->service = s;
        c->config = service_config(s);
        read_settings(c);
        /* An inet: milter needs TCP sockets, which cleanup's own allow-list refuses. */
        if (milter_conf_needs_inet(&c->milters, c->config))
                service_set_sandbox_role(s, "cleanup-milter");

        struct instance_paths paths;
        instance_paths_from_config(c->config, &paths);
        c->qmgr_socket = xasprintf("%s/%s", paths.queue_dir, MAIL_PROTO_QMGR_SOCKET);
        int r = queue_open(paths.queue_dir, &c->queue);
        if (r < 0)
                msg_error("open queue directory %s: %s; run \"postfix check\" to create it", paths.queue_dir,
                          strerror(-r));
        instance_paths_done(&paths);
        if (r < 0)
                return r;
        /* Without the resolver, mail that needs the address maps is deferred, not the daemon stopped. */
        if (c->address_maps) {
                cleanup_resolver(c);
                struct table_param *maps[] = {&c->sender_canonical_maps, &c->recipient_canonical_maps,
                                              &c->canonical_maps};
                for (size_t i = 0; i < ELEMENTSOF(maps); i++) {
                        struct maps *m;
                        if (!table_param_empty(maps[i]))
                                (void)table_param_get(maps[i], &m, NULL); /* a failure is logged now */
                }
        }
        /* A broken table is reported at start; mail then waits (4.3.0) until it is fixed. */
        for (size_t i = 0; i < ELEMENTSOF(c->checks.tables); i++) {
                struct maps *m;
                if (!table_param_empty(&c->checks.tables[i]))
                        (void)table_param_get(&c->checks.tables[i], &m, NULL);
        }
        r = notice_new(service_event(c->service), c->qmgr_socket, &c->notice);
        if (r < 0) {
                msg_error("qmgr notice event source: %s", strerror(-r));
                return r;
        }
        return commit_new(service_event(c->service), c->queue, &c->commit);
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
