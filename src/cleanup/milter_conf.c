/* milter_conf.c: smtpd_milters, non_smtpd_milters and the milter_* parameters, read once at start. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "mastercf.h"
#include "milter.h"
#include "milter_proto.h"

static int timeout_ms(struct config *cfg, const char *param)
{
        long long v = config_get_time(cfg, param);
        return (int)((v > 0 && v <= 3600 ? v : 30) * 1000);
}

static void parse_list(const char *param, const char *text, const struct milter_spec *defaults,
                       struct milter_spec **ret, size_t *ret_n)
{
        struct strv v = STRV_INIT;
        config_split_list(text ? text : "", &v);
        *ret = v.n ? xcalloc(v.n, sizeof **ret) : NULL;
        *ret_n = 0;
        for (size_t i = 0; i < v.n; i++) {
                struct milter_spec sp = *defaults;
                char *why = NULL;
                if (milter_spec_parse(v.v[i], &sp, &why) < 0) {
                        /* Mail must not pass unfiltered by mistake: the default action then applies. */
                        msg_error(
                                "%s: bad milter \"%s\": %s; fix it in main.cf or master.cf. Until then the "
                                "milter is treated as unreachable (milter_default_action)",
                                param, v.v[i], why);
                        free(why);
                        sp.endpoint = xstrdup("unix:/nonexistent/bad-milter-setting");
                }
                (*ret)[(*ret_n)++] = sp;
        }
        strv_done(&v);
}

void milter_specs_for(const struct milter_conf *mc, const char *text, struct milter_spec **ret,
                      size_t *ret_n, bool *ret_owned)
{
        if (streq(text, mc->smtpd_text)) {
                *ret = mc->smtpd;
                *ret_n = mc->n_smtpd;
                *ret_owned = false;
                return;
        }
        parse_list("smtpd_milters", text, &mc->defaults, ret, ret_n);
        *ret_owned = true;
}

void milter_specs_free(struct milter_spec *v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i].endpoint);
        free(v);
}

void milter_conf_init(struct milter_conf *mc, struct config *cfg)
{
        *mc = (struct milter_conf){0};
        struct milter_spec defaults = {
                .connect_timeout_ms = timeout_ms(cfg, "milter_connect_timeout"),
                .command_timeout_ms = timeout_ms(cfg, "milter_command_timeout"),
                .content_timeout_ms = timeout_ms(cfg, "milter_content_timeout"),
                .default_action = MILTER_DEFAULT_TEMPFAIL,
                .version = MILTER_VERSION,
        };
        const char *action = config_get(cfg, "milter_default_action");
        if (milter_default_parse(action, &defaults.default_action) < 0)
                msg_error("milter_default_action = %s: expected accept, tempfail, reject or quarantine; "
                          "using tempfail",
                          action ? action : "");
        long long version = config_get_int(cfg, "milter_protocol");
        if (version < 2 || version > MILTER_VERSION)
                msg_error("milter_protocol = %lld: expected 2 to 6; using 6", version);
        else
                defaults.version = (unsigned)version;
        mc->defaults = defaults;
        mc->smtpd_text = xstrdup(config_get(cfg, "smtpd_milters") ? config_get(cfg, "smtpd_milters") : "");
        parse_list("smtpd_milters", mc->smtpd_text, &defaults, &mc->smtpd, &mc->n_smtpd);
        parse_list("non_smtpd_milters", config_get(cfg, "non_smtpd_milters"), &defaults, &mc->non_smtpd,
                   &mc->n_non_smtpd);
        static const char *const macro_params[_MILTER_STAGE_MAX] = {
                [MILTER_STAGE_CONNECT] = "milter_connect_macros",
                [MILTER_STAGE_HELO] = "milter_helo_macros",
                [MILTER_STAGE_MAIL] = "milter_mail_macros",
                [MILTER_STAGE_RCPT] = "milter_rcpt_macros",
                [MILTER_STAGE_DATA] = "milter_data_macros",
                [MILTER_STAGE_EOH] = "milter_end_of_header_macros",
                [MILTER_STAGE_EOM] = "milter_end_of_data_macros",
        };
        for (size_t i = 0; i < _MILTER_STAGE_MAX; i++)
                config_get_list(cfg, macro_params[i], &mc->macros[i]);
        mc->daemon_name = xstrdup(config_get(cfg, "milter_macro_daemon_name"));
        mc->v = xstrdup(config_get(cfg, "milter_macro_v"));
}

void milter_conf_done(struct milter_conf *mc)
{
        milter_specs_free(mc->smtpd, mc->n_smtpd);
        milter_specs_free(mc->non_smtpd, mc->n_non_smtpd);
        free(mc->smtpd_text);
        for (size_t i = 0; i < _MILTER_STAGE_MAX; i++)
                strv_done(&mc->macros[i]);
        free(mc->daemon_name);
        free(mc->v);
        *mc = (struct milter_conf){0};
}

/* A master.cf -o smtpd_milters or non_smtpd_milters that names an inet: filter (or a $reference,
 * which may). */
static bool overrides_need_inet(struct config *cfg)
{
        struct mastercf m;
        if (mastercf_load(config_directory(cfg), &m) < 0)
                return false;
        bool found = false;
        for (size_t i = 0; i < m.n_services && !found; i++)
                for (size_t k = 0; k < m.services[i].n_overrides && !found; k++) {
                        const struct mastercf_override *o = &m.services[i].overrides[k];
                        found = (streq(o->name, "smtpd_milters") || streq(o->name, "non_smtpd_milters")) &&
                                o->value && (strstr(o->value, "inet") || strchr(o->value, '$'));
                }
        mastercf_done(&m);
        return found;
}

bool milter_conf_needs_inet(const struct milter_conf *mc, struct config *cfg)
{
        for (size_t i = 0; i < mc->n_smtpd; i++)
                if (strncmp(mc->smtpd[i].endpoint, "inet", 4) == 0)
                        return true;
        for (size_t i = 0; i < mc->n_non_smtpd; i++)
                if (strncmp(mc->non_smtpd[i].endpoint, "inet", 4) == 0)
                        return true;
        return overrides_need_inet(cfg);
}
