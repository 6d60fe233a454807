/* main.c: the smtp delivery agent: SMTP client deliveries for qmgr, many at once on one event loop. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "alloc.h"
#include "catalog.h"
#include "config.h"
#include "delivery_request.h"
#include "log.h"
#include "smtp.h"
#include "smtp_util.h"

static struct agent agent;

static uint64_t time_usec(struct config *c, const char *name)
{
        long long v = config_get_time(c, name);
        return (uint64_t)(v > 0 ? v : 1) * 1000000ULL;
}

static enum tls_level parse_tls_level(const char *v)
{
        if (isempty(v) || strcasecmp(v, "none") == 0)
                return TLS_NONE;
        if (strcasecmp(v, "may") == 0)
                return TLS_MAY;
        if (strcasecmp(v, "encrypt") == 0)
                return TLS_ENCRYPT;
        if (strcasecmp(v, "verify") == 0)
                return TLS_VERIFY;
        if (strcasecmp(v, "secure") == 0)
                return TLS_SECURE;
        msg_warn("smtp_tls_security_level: unknown level \"%s\", using \"encrypt\"", v);
        return TLS_ENCRYPT; /* never weaker than asked by mistake */
}

static unsigned parse_families(struct config *c)
{
        struct strv v = STRV_INIT;
        unsigned f = 0;
        config_get_list(c, "inet_protocols", &v);
        for (size_t i = 0; i < v.n; i++) {
                if (strcasecmp(v.v[i], "all") == 0)
                        f |= DNS_FAMILY_IPV4 | DNS_FAMILY_IPV6;
                else if (strcasecmp(v.v[i], "ipv4") == 0)
                        f |= DNS_FAMILY_IPV4;
                else if (strcasecmp(v.v[i], "ipv6") == 0)
                        f |= DNS_FAMILY_IPV6;
        }
        strv_free(&v);
        return f ? f : DNS_FAMILY_IPV4 | DNS_FAMILY_IPV6;
}

static int load_settings(struct config *c, struct smtp_settings *set)
{
        set->helo_name = xstrdup(config_get(c, "smtp_helo_name"));
        set->myhostname = xstrdup(config_get(c, "myhostname"));
        const char *ifaces = config_get(c, "inet_interfaces");
        smtp_source_address(AF_INET, config_get(c, "smtp_bind_address"), "smtp_bind_address", ifaces,
                            set->bind4, sizeof set->bind4, &set->bind4_param);
        smtp_source_address(AF_INET6, config_get(c, "smtp_bind_address6"), "smtp_bind_address6", ifaces,
                            set->bind6, sizeof set->bind6, &set->bind6_param);
        set->families = parse_families(c);
        _cleanup_free_ char *warning = NULL;
        set->lookup_mode = dns_lookup_mode_parse(config_get(c, "smtp_dns_support_level"),
                                                 config_get_bool(c, "disable_dns_lookups"),
                                                 config_get(c, "smtp_host_lookup"), &warning);
        if (warning)
                msg_warn("%s", warning);
        own_addrs_init(&set->own, c);
        set->connect_timeout = time_usec(c, "smtp_connect_timeout");
        set->helo_timeout = time_usec(c, "smtp_helo_timeout");
        set->mail_timeout = time_usec(c, "smtp_mail_timeout");
        set->rcpt_timeout = time_usec(c, "smtp_rcpt_timeout");
        set->data_init_timeout = time_usec(c, "smtp_data_init_timeout");
        set->data_xfer_timeout = time_usec(c, "smtp_data_xfer_timeout");
        set->data_done_timeout = time_usec(c, "smtp_data_done_timeout");
        set->quit_timeout = time_usec(c, "smtp_quit_timeout");
        set->cache_on_demand = config_get_bool(c, "smtp_connection_cache_on_demand");
        set->cache_time_limit = time_usec(c, "smtp_connection_cache_time_limit");
        config_get_list(c, "smtp_fallback_relay", &set->fallback_relays);
        long long lim = config_get_int(c, "smtp_mx_address_limit");
        set->mx_address_limit = lim > 0 && lim < DNS_ADDRS_MAX ? (unsigned)lim : 0;
        set->skip_5xx_greeting = config_get_bool(c, "smtp_skip_5xx_greeting");
        set->tls_level = parse_tls_level(config_get(c, "smtp_tls_security_level"));
        set->tls_loglevel = (int)config_get_int(c, "smtp_tls_loglevel");
        set->sasl_enable = config_get_bool(c, "smtp_sasl_auth_enable");
        if (smtp_sasl_options_parse(config_get(c, "smtp_sasl_security_options"), &set->sasl_opts) < 0 ||
            smtp_sasl_options_parse(config_get(c, "smtp_sasl_tls_security_options"), &set->sasl_tls_opts) <
                    0) {
                msg_error("smtp_sasl_security_options or smtp_sasl_tls_security_options: unknown option "
                          "(known: noplaintext, noanonymous, noactive, nodictionary, mutual_auth)");
                return -EINVAL;
        }
        if (set->sasl_enable) {
                char *err = NULL;
                int r = maps_open("smtp_sasl_password_maps", config_get(c, "smtp_sasl_password_maps"),
                                  &set->sasl_maps, &err);
                if (r < 0) {
                        msg_fields(LOG_LEVEL_ERROR,
                                   &(struct log_fields){.catalog_id = r == -EPROTONOSUPPORT
                                                                              ? CATALOG_UNSUPPORTED_TABLE
                                                                              : NULL},
                                   "%s", err ? err : "smtp_sasl_password_maps: cannot open");
                        free(err);
                        return r;
                }
        }
        return 0;
}

static int init(struct service *s)
{
        struct config *c = service_config(s);
        agent.svc = s;
        agent.event = service_event(s);
        delivery_set_soft_bounce(config_get_bool(c, "soft_bounce"));
        int r = load_settings(c, &agent.set);
        if (r < 0)
                return r;
        r = queue_open(config_get(c, "queue_directory"), &agent.queue);
        if (r < 0) {
                msg_error("open queue directory %s: %s", config_get(c, "queue_directory"), strerror(-r));
                return r;
        }
        return session_tls_init(&agent);
}

static void on_connection(struct service *s, int fd)
{
        request_start(&agent, fd);
}

static void on_stop(struct service *s)
{
        session_cache_flush(&agent);
}

int main(int argc, char **argv)
{
        static const struct service_ops ops = {
                .init = init,
                .on_connection = on_connection,
                .on_stop = on_stop,
                .max_connections = SMTP_MAX_CONNECTIONS,
        };
        return service_main(argc, argv, &ops);
}
