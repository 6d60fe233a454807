/* main.c: smtpd, the SMTP server role: settings, access tables and TLS at start, one session per connection.
 */
#include <errno.h>
#include <strings.h>

#include "alloc.h"
#include "catalog.h"
#include "instance.h"
#include "log.h"
#include "mail_proto.h"
#include "proxy.h"
#include "queue_space.h"
#include "service.h"
#include "smtpd.h"
#include "tls_policy.h"

static enum smtpd_bare_newline parse_bare_newline(const char *v)
{
        if (strcasecmp(v, "reject") == 0)
                return SMTPD_BARE_NEWLINE_REJECT;
        if (strcasecmp(v, "normalize") == 0 || strcasecmp(v, "yes") == 0)
                return SMTPD_BARE_NEWLINE_NORMALIZE;
        if (strcasecmp(v, "no") == 0)
                return SMTPD_BARE_NEWLINE_NO;
        /* normalize keeps the smuggling defence (only <CR><LF>.<CR><LF> ends DATA) and loses no mail. */
        msg_warn("invalid smtpd_forbid_bare_newline value \"%s\": using \"normalize\" (valid: normalize, "
                 "yes, no, reject)",
                 v);
        return SMTPD_BARE_NEWLINE_NORMALIZE;
}

/* smtpd_tls_security_level wins; the old smtpd_enforce_tls / smtpd_use_tls apply when it is empty. */
static enum smtpd_tls_level parse_tls_level(struct config *c)
{
        const char *v = config_get(c, "smtpd_tls_security_level");
        if (isempty(v)) {
                if (config_get_bool(c, "smtpd_enforce_tls"))
                        return SMTPD_TLS_ENCRYPT;
                return config_get_bool(c, "smtpd_use_tls") ? SMTPD_TLS_MAY : SMTPD_TLS_NONE;
        }
        /* The client's level syntax (tls_policy.c); a server has only the first three. */
        switch (tls_level_parse(v)) {
        case TLS_NONE: return SMTPD_TLS_NONE;
        case TLS_MAY: return SMTPD_TLS_MAY;
        case TLS_ENCRYPT: return SMTPD_TLS_ENCRYPT;
        default:
                msg_warn("invalid smtpd_tls_security_level value \"%s\": using \"none\"", v);
                return SMTPD_TLS_NONE;
        }
}

/* The key file is root's (mode 0600 on a real system): load it before privileges are dropped. */
static int smtpd_init_privileged(struct service *svc)
{
        struct smtpd *srv = service_userdata(svc);
        struct config *c = service_config(svc);
        srv->wrappermode = config_get_bool(c, "smtpd_tls_wrappermode");
        srv->tls_level = parse_tls_level(c);
        if (srv->tls_level != SMTPD_TLS_NONE || srv->wrappermode)
                srv->tls = smtpd_tls_new(c, srv->tls_level == SMTPD_TLS_ENCRYPT || srv->wrappermode);
        return 0;
}

static int smtpd_init(struct service *svc)
{
        struct smtpd *srv = service_userdata(svc);
        struct config *c = service_config(svc);
        srv->service = svc;
        srv->config = c;
        srv->myhostname = xstrdup(config_get(c, "myhostname"));
        srv->myorigin = xstrdup(config_get(c, "myorigin"));
        srv->content_filter = xstrdup(config_get(c, "content_filter"));
        srv->receive_override = xstrdup(config_get(c, "receive_override_options"));
        srv->append_at_myorigin = config_get_bool(c, "append_at_myorigin");
        srv->banner = xstrdup(config_get(c, "smtpd_banner"));
        long long size = config_get_int(c, "message_size_limit");
        srv->message_size_limit = size > 0 ? (uint64_t)size : 0;
        long long minfree = config_get_int(c, "queue_minfree");
        srv->queue_minfree =
                queue_space_minfree(minfree > 0 ? (uint64_t)minfree : 0, srv->message_size_limit);
        srv->queue_dir = xstrdup(config_get(c, "queue_directory"));
        srv->cleanup_timeout_ms = mail_proto_cleanup_timeout_ms(config_get_time(c, "ipc_timeout"));
        srv->recipient_limit = config_get_int(c, "smtpd_recipient_limit");
        srv->timeout_sec = config_get_time(c, "smtpd_timeout");
        if (srv->timeout_sec <= 0)
                srv->timeout_sec = 1;
        srv->hard_error_limit = config_get_int(c, "smtpd_hard_error_limit");
        srv->soft_error_limit = config_get_int(c, "smtpd_soft_error_limit");
        srv->error_sleep_sec = config_get_time(c, "smtpd_error_sleep_time");
        srv->disable_vrfy = config_get_bool(c, "disable_vrfy_command");
        srv->helo_required = config_get_bool(c, "smtpd_helo_required");
        srv->forbid_unauth_pipelining = config_get_bool(c, "smtpd_forbid_unauth_pipelining");
        srv->strict_rfc821 = config_get_bool(c, "strict_rfc821_envelopes");
        srv->smtputf8_enable = config_get_bool(c, "smtputf8_enable");
        srv->peername_lookup = config_get_bool(c, "smtpd_peername_lookup");
        srv->bare_newline = parse_bare_newline(config_get(c, "smtpd_forbid_bare_newline"));

        struct instance_paths paths;
        instance_paths_from_config(c, &paths);
        /* MAIL_PROTO_CLEANUP_SOCKET (public/cleanup), or private/ when master.cf marks cleanup private. */
        srv->cleanup_path = xasprintf("%s/%s", paths.queue_dir, MAIL_PROTO_CLEANUP_SOCKET);
        srv->cleanup_private_path = instance_socket_path(&paths, "cleanup", true);
        _cleanup_free_ char *err = NULL;
        int r = smtpd_sasl_new(c, paths.queue_dir, &srv->sasl, &err);
        if (r >= 0)
                r = smtpd_proxy_cfg_new(c, paths.queue_dir, &srv->proxy, &err);
        instance_paths_done(&paths);
        if (r < 0) {
                msg_error("%s", err);
                return r;
        }
        srv->sasl_auth_header = config_get_bool(c, "smtpd_sasl_authenticated_header");
        srv->broken_sasl_clients = config_get_bool(c, "broken_sasl_auth_clients");
        /* Dovecot's auth service over TCP needs inet sockets, which smtpd's own allow-list refuses. */
        if (srv->sasl && smtpd_sasl_uses_inet(srv->sasl))
                service_set_sandbox_role(svc, "smtpd-sasl-inet");
        /* A TCP smtpd_proxy_filter: stream sockets, but neither bind nor listen (docs/PRIVILEGES.md). */
        else if (smtpd_proxy_cfg_inet(srv->proxy))
                service_set_sandbox_role(svc, "smtpd-proxy-inet");

        r = smtpd_anvil_new(c, service_name(svc), &srv->anvil, &err);
        if (r < 0) {
                msg_error("%s", err);
                return r;
        }
        srv->junk_command_limit = config_get_int(c, "smtpd_junk_command_limit");
        srv->session_deadline_sec = config_get_time(c, "postd_smtpd_session_deadline");

        r = smtpd_access_new(c, &srv->access, &err);
        if (r < 0) {
                msg_fields(LOG_LEVEL_ERROR,
                           &(struct log_fields){
                                   .catalog_id = r == -EPROTONOSUPPORT ? CATALOG_UNSUPPORTED_TABLE : NULL},
                           "%s", err);
                return r;
        }
        /* Postfix's behaviour: mandatory TLS without a working setup refuses mail rather than taking it in
         * the clear. */
        if (!srv->tls && srv->tls_level == SMTPD_TLS_ENCRYPT)
                msg_warn("smtpd_tls_security_level = encrypt but TLS is unavailable: mail will be refused");
        return 0;
}

static void smtpd_on_connection(struct service *svc, int fd)
{
        session_start(service_userdata(svc), fd);
}

static void smtpd_on_stop(struct service *svc)
{
        session_stop_all(service_userdata(svc));
}

int main(int argc, char **argv)
{
        struct smtpd srv = {0};
        const struct service_ops ops = {
                .init = smtpd_init,
                .init_privileged = smtpd_init_privileged,
                .on_connection = smtpd_on_connection,
                .on_stop = smtpd_on_stop,
                .max_connections = SMTPD_SESSIONS_MAX,
                .userdata = &srv,
        };
        int r = service_main(argc, argv, &ops);
        smtpd_access_free(srv.access);
        smtpd_tls_free(srv.tls);
        smtpd_sasl_free(srv.sasl);
        smtpd_anvil_free(srv.anvil);
        smtpd_proxy_cfg_free(srv.proxy);
        free(srv.myhostname);
        free(srv.myorigin);
        free(srv.banner);
        free(srv.queue_dir);
        free(srv.cleanup_path);
        free(srv.cleanup_private_path);
        return r;
}
