/* main.c: local, the delivery agent for local recipients: aliases, .forward, mailboxes, files, commands
 * (runs as root). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "catalog.h"
#include "dict.h"
#include "local.h"
#include "delivery_request.h"
#include "log.h"
#include "mail_proto.h"
#include "service.h"

static struct local local_state;

/*
 * Deliveries to files named in aliases run as the owner of the first alias table, or as
 * default_privs when root owns it (as Postfix does): an alias file never gives root's rights away.
 */
static void alias_owner(struct local *l)
{
        struct passwd *pw = getpwnam(config_get(l->cfg, "default_privs"));
        l->default_uid = l->alias_uid = pw ? pw->pw_uid : 65534;
        l->default_gid = l->alias_gid = pw ? pw->pw_gid : 65534;
        struct strv tables = STRV_INIT;
        maps_split_list(config_get(l->cfg, "alias_maps"), &tables);
        char *type = NULL, *name = NULL, *err = NULL;
        if (tables.n > 0 && dict_split_spec(tables.v[0], &type, &name, &err) == 0 && name[0] == '/') {
                struct stat st;
                _cleanup_free_ char *db = dict_type_is_db(type) ? dict_db_file(type, name) : xstrdup(name);
                if (stat(db, &st) == 0 && st.st_uid != 0) {
                        l->alias_uid = st.st_uid;
                        l->alias_gid = st.st_gid;
                }
        }
        free(type);
        free(name);
        free(err);
        strv_done(&tables);
}

/* allow_mail_to_files / allow_mail_to_commands: which of alias, forward, include. */
static unsigned classes(struct config *cfg, const char *param)
{
        struct strv v = STRV_INIT;
        config_get_list(cfg, param, &v);
        unsigned bits = 0;
        for (size_t i = 0; i < v.n; i++) {
                if (strcasecmp(v.v[i], "alias") == 0)
                        bits |= LOCAL_CLASS_ALIAS;
                else if (strcasecmp(v.v[i], "forward") == 0)
                        bits |= LOCAL_CLASS_FORWARD;
                else if (strcasecmp(v.v[i], "include") == 0)
                        bits |= LOCAL_CLASS_INCLUDE;
                else
                        msg_warn("%s: unknown class \"%s\" ignored (use alias, forward, include)", param,
                                 v.v[i]);
        }
        strv_done(&v);
        return bits;
}

/* export_environment: NAME takes our own value (when set), NAME=VALUE is passed as written. */
static void export_environment(struct local *l)
{
        struct strv v = STRV_INIT;
        config_get_list(l->cfg, "export_environment", &v);
        for (size_t i = 0; i < v.n; i++) {
                const char *val = strchr(v.v[i], '=') ? NULL : getenv(v.v[i]);
                if (strchr(v.v[i], '='))
                        strv_push(&l->export_env, v.v[i]);
                else if (val)
                        strv_push_take(&l->export_env, xasprintf("%s=%s", v.v[i], val));
        }
        strv_done(&v);
}

static int local_init(struct service *s)
{
        struct local *l = service_userdata(s);
        l->cfg = service_config(s);
        delivery_set_soft_bounce(config_get_bool(l->cfg, "soft_bounce"));
        const char *queue_dir = config_get(l->cfg, "queue_directory");
        int r = queue_open(queue_dir, &l->queue);
        if (r < 0) {
                msg_error("open queue directory %s: %s", queue_dir, strerror(-r));
                return r;
        }
        char *err = NULL;
        r = resolve_open_logged(l->cfg, &l->resolve);
        if (r < 0)
                return r;
        r = maps_open("alias_maps", config_get(l->cfg, "alias_maps"), &l->aliases, &err);
        if (r < 0) {
                /* Not fatal: deliveries are deferred until the tables are fixed. */
                msg_fields(LOG_LEVEL_WARNING,
                           &(struct log_fields){
                                   .catalog_id = r == -EPROTONOSUPPORT ? CATALOG_UNSUPPORTED_TABLE : NULL},
                           "%s", err ? err : "alias_maps: cannot open");
                free(err);
                l->aliases = NULL;
        }
        alias_owner(l);
        l->myorigin = xstrdup(config_get(l->cfg, "myorigin"));
        l->home_mailbox = xstrdup(config_get(l->cfg, "home_mailbox"));
        l->spool_dir = xstrdup(config_get(l->cfg, "mail_spool_directory"));
        l->recipient_delimiter = xstrdup(config_get(l->cfg, "recipient_delimiter"));
        l->hostname = xstrdup(config_get(l->cfg, "myhostname"));
        l->hopcount_limit = config_get_int(l->cfg, "hopcount_limit");
        l->files_allowed = classes(l->cfg, "allow_mail_to_files");
        l->commands_allowed = classes(l->cfg, "allow_mail_to_commands");
        l->queue_dir = xstrdup(queue_dir);
        l->cleanup_timeout_ms = mail_proto_cleanup_timeout_ms(config_get_time(l->cfg, "ipc_timeout"));
        /* Not main.cf-expanded: $home, $user, $extension... are local's own macros, expanded per recipient;
         * mailbox_command is shell syntax, as in Postfix. */
        l->mailbox_command = xstrdup(config_get_raw(l->cfg, "mailbox_command") ?: "");
        l->luser_relay = xstrdup(config_get_raw(l->cfg, "luser_relay") ?: "");
        strv_split(&l->forward_path, config_get_raw(l->cfg, "forward_path") ?: "", ", \t\r\n");
        l->command_shell = xstrdup(config_get(l->cfg, "local_command_shell"));
        l->command_time_limit = config_get_time(l->cfg, "command_time_limit");
        l->mailbox_size_limit = (uint64_t)config_get_int(l->cfg, "mailbox_size_limit");
        long long message_limit = config_get_int(l->cfg, "message_size_limit");
        if (l->mailbox_size_limit > 0 && message_limit > 0 &&
            l->mailbox_size_limit < (uint64_t)message_limit) {
                /* As Postfix: every message that passes message_size_limit must fit in a mailbox. */
                msg_error("main.cf configuration error: mailbox_size_limit (%llu) is smaller than "
                          "message_size_limit (%lld): raise mailbox_size_limit, or set it to 0",
                          (unsigned long long)l->mailbox_size_limit, message_limit);
                return -EINVAL;
        }
        mailbox_set_size_limit(l->mailbox_size_limit);
        export_environment(l);
        struct strv v = STRV_INIT;
        config_get_list(l->cfg, "mailbox_delivery_lock", &v);
        for (size_t i = 0; i < v.n; i++)
                l->dotlock |= streq(v.v[i], "dotlock");
        strv_done(&v);
        /* Last: the spawner should not inherit more than it needs. */
        r = spawn_start(l);
        if (r < 0) {
                msg_error("cannot start the command spawner: %s", strerror(-r));
                return r;
        }
        if (geteuid() != 0)
                msg_warn("not running as root: delivery to other users will fail (master.cf: unpriv column "
                         "of \"local\" must be n)");
        return 0;
}

static void on_connection(struct service *s, int fd)
{
        /* One request per process at a time: blocking I/O keeps the delivery code straight. */
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
                fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        local_serve(service_userdata(s), fd);
        close(fd);
        service_connection_done(s);
}

int main(int argc, char **argv)
{
        static const struct service_ops ops = {
                .init = local_init,
                .on_connection = on_connection,
                .max_connections = 1,
                .userdata = &local_state,
        };
        return service_main(argc, argv, &ops);
}
