/* main.c: the smtp delivery agent: SMTP client deliveries for qmgr, many at once on one event loop; the same
 * program is the lmtp agent (LMTP mode) when installed or named as lmtp. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "catalog.h"
#include "config.h"
#include "delivery_request.h"
#include "log.h"
#include "smtp.h"
#include "smtp_util.h"

static struct agent agent;

/* Connect timeout for Postfix's lmtp_connect_timeout = 0 ("the system's limit"): about what Linux takes
 * to give up on a TCP connection; a unix socket connects at once anyway. */
#define LMTP_CONNECT_TIMEOUT_DEFAULT_USEC (127 * USEC_PER_SEC)

/*
 * The parameter behind suffix in this mode: "smtp_X", or for LMTP "lmtp_X" (Postfix's LMTP client reads
 * lmtp_*; those without an entry of their own default to $smtp_X through params.c's per-service rule).
 * Kept for the life of the process: a few are stored in the settings as the names to report.
 */
static const char *pname(const char *suffix)
{
        static struct strv names = STRV_INIT;
        strv_push_take(&names, xasprintf("%s_%s", agent.set.lmtp ? "lmtp" : "smtp", suffix));
        return names.v[names.n - 1];
}

/* LMTP mode: the program runs as "lmtp" (master.cf command) or serves a service named lmtp. */
static bool lmtp_mode(struct service *s)
{
        return streq(service_daemon(s), "lmtp") || streq(service_name(s), "lmtp");
}

static uint64_t time_usec(struct config *c, const char *name)
{
        long long v = config_get_time(c, name);
        return (uint64_t)(v > 0 ? v : 1) * 1000000ULL;
}

/* smtp_tls_dane_insecure_mx_policy: what dane does with an MX host found through an unsigned MX answer.
 * Empty is Postfix's default: dane when the main.cf level is dane, else may. */
static enum tls_level parse_insecure_mx_policy(const char *v, enum tls_level main_level, char **ret_error)
{
        if (isempty(v))
                return main_level == TLS_DANE ? TLS_DANE : TLS_MAY;
        int level = tls_level_parse(v);
        if (level == TLS_MAY || level == TLS_DANE || level == TLS_ENCRYPT)
                return (enum tls_level)level;
        *ret_error = xasprintf("%s = %s: unknown policy (use may, dane or encrypt); dane deliveries to MX "
                               "hosts from an unsigned MX answer are deferred until it is fixed",
                               pname("tls_dane_insecure_mx_policy"), v);
        msg_error("%s", *ret_error);
        return TLS_DANE;
}

/* The main.cf level. A value not understood defers every delivery with the reason: guessing could mean
 * less protection than the operator asked for. */
static enum tls_level parse_tls_level(const char *v, char **ret_error)
{
        if (isempty(v))
                return TLS_NONE;
        int level = tls_level_parse(v);
        if (level >= 0)
                return (enum tls_level)level;
        *ret_error =
                xasprintf("%s = %s: unknown TLS security level (use none, may, encrypt, dane, dane-only, "
                          "fingerprint, verify or secure); deliveries are deferred until it is fixed",
                          pname("tls_security_level"), v);
        msg_error("%s", *ret_error);
        return TLS_SECURE;
}

static int open_tls_policy_maps(struct config *c, struct smtp_settings *set)
{
        const char *list = config_get(c, pname("tls_policy_maps"));
        if (isempty(list))
                return 0;
        char *err = NULL;
        int r = maps_open(pname("tls_policy_maps"), list, &set->tls_policy_maps, &err);
        if (r < 0) {
                msg_fields(LOG_LEVEL_ERROR,
                           &(struct log_fields){
                                   .catalog_id = r == -EPROTONOSUPPORT ? CATALOG_UNSUPPORTED_TABLE : NULL},
                           "%s", err ? err : "smtp_tls_policy_maps: cannot open");
                free(err);
        }
        return r;
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
        strv_done(&v);
        return f ? f : DNS_FAMILY_IPV4 | DNS_FAMILY_IPV6;
}

static int load_settings(struct config *c, struct smtp_settings *set)
{
        set->helo_name = xstrdup(config_get(c, set->lmtp ? "lmtp_lhlo_name" : pname("helo_name")));
        set->myhostname = xstrdup(config_get(c, "myhostname"));
        const char *ifaces = config_get(c, "inet_interfaces");
        smtp_source_address(AF_INET, config_get(c, pname("bind_address")), pname("bind_address"), ifaces,
                            set->bind4, sizeof set->bind4, &set->bind4_param);
        smtp_source_address(AF_INET6, config_get(c, pname("bind_address6")), pname("bind_address6"), ifaces,
                            set->bind6, sizeof set->bind6, &set->bind6_param);
        set->families = parse_families(c);
        _cleanup_free_ char *warning = NULL;
        set->lookup_mode = dns_lookup_mode_parse(config_get(c, pname("dns_support_level")),
                                                 config_get_bool(c, "disable_dns_lookups"),
                                                 config_get(c, pname("host_lookup")), &warning);
        if (warning)
                msg_warn("%s", warning);
        set->dnssec = set->lookup_mode != DNS_LOOKUP_NATIVE &&
                      dns_support_dnssec(config_get(c, pname("dns_support_level")));
        if (set->dnssec && dns_trust_ad() == 0)
                msg_warn("%s = dnssec, but /etc/resolv.conf has no \"options trust-ad\": the C library "
                         "drops the resolver's AD bit, so no answer counts as DNSSEC-validated and DANE is "
                         "not used (name a validating resolver on this host there and add the option)",
                         pname("dns_support_level"));
        own_addrs_init(&set->own, c);
        set->connect_timeout = set->lmtp && config_get_time(c, "lmtp_connect_timeout") <= 0
                                       ? LMTP_CONNECT_TIMEOUT_DEFAULT_USEC
                                       : time_usec(c, pname("connect_timeout"));
        set->helo_timeout = time_usec(c, set->lmtp ? "lmtp_lhlo_timeout" : pname("helo_timeout"));
        set->mail_timeout = time_usec(c, pname("mail_timeout"));
        set->rcpt_timeout = time_usec(c, pname("rcpt_timeout"));
        set->data_init_timeout = time_usec(c, pname("data_init_timeout"));
        set->data_xfer_timeout = time_usec(c, pname("data_xfer_timeout"));
        set->data_done_timeout = time_usec(c, pname("data_done_timeout"));
        set->quit_timeout = time_usec(c, pname("quit_timeout"));
        set->cache_on_demand = config_get_bool(c, pname("connection_cache_on_demand"));
        set->cache_time_limit = time_usec(c, pname("connection_cache_time_limit"));
        config_get_list(c, pname("fallback_relay"), &set->fallback_relays);
        long long lim = config_get_int(c, pname("mx_address_limit"));
        set->mx_address_limit = lim > 0 && lim < DNS_ADDRS_MAX ? (unsigned)lim : 0;
        set->skip_5xx_greeting = config_get_bool(c, pname("skip_5xx_greeting"));
        set->tls_level = parse_tls_level(config_get(c, pname("tls_security_level")), &set->tls_level_error);
        set->dane_insecure_mx = parse_insecure_mx_policy(config_get(c, pname("tls_dane_insecure_mx_policy")),
                                                         set->tls_level, &set->dane_insecure_mx_error);
        set->tls_loglevel = (int)config_get_int(c, pname("tls_loglevel"));
        set->tls_verify_match_param = pname("tls_verify_cert_match");
        set->tls_verify_match = xstrdup(config_get(c, set->tls_verify_match_param));
        set->tls_secure_match_param = pname("tls_secure_cert_match");
        set->tls_secure_match = xstrdup(config_get(c, set->tls_secure_match_param));
        set->tls_fingerprint_match_param = pname("tls_fingerprint_cert_match");
        set->tls_fingerprint_match = xstrdup(config_get(c, set->tls_fingerprint_match_param));
        set->tls_fingerprint_digest_param = pname("tls_fingerprint_digest");
        set->tls_fingerprint_digest = xstrdup(config_get(c, set->tls_fingerprint_digest_param));
        long long timeout = config_get_time(c, pname("tls_session_cache_timeout"));
        set->tls_session_timeout = timeout > 0 ? (uint64_t)timeout : 0;
        if (open_tls_policy_maps(c, set) < 0)
                return -EINVAL;
        set->sasl_enable = config_get_bool(c, pname("sasl_auth_enable"));
        if (smtp_sasl_options_parse(config_get(c, pname("sasl_security_options")), &set->sasl_opts) < 0 ||
            smtp_sasl_options_parse(config_get(c, pname("sasl_tls_security_options")), &set->sasl_tls_opts) <
                    0) {
                msg_error("smtp_sasl_security_options or smtp_sasl_tls_security_options: unknown option "
                          "(known: noplaintext, noanonymous, noactive, nodictionary, mutual_auth)");
                return -EINVAL;
        }
        if (set->sasl_enable) {
                char *err = NULL;
                int r = maps_open(pname("sasl_password_maps"), config_get(c, pname("sasl_password_maps")),
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
        agent.set.lmtp = lmtp_mode(s);
        agent.queue_dir = xstrdup(config_get(c, "queue_directory"));
        delivery_set_soft_bounce(config_get_bool(c, "soft_bounce"));
        int r = load_settings(c, &agent.set);
        if (r < 0)
                return r;
        r = queue_open(config_get(c, "queue_directory"), &agent.queue);
        if (r < 0) {
                msg_error("open queue directory %s: %s", config_get(c, "queue_directory"), strerror(-r));
                return r;
        }
        return smtp_tls_init(&agent);
}

static void on_connection(struct service *s, int fd)
{
        request_start(&agent, fd);
}

static void on_stop(struct service *s)
{
        session_cache_flush(&agent);
        tls_cache_flush(&agent);
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
