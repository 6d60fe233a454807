/* milter_check.c: the instance check of the milter settings: a typo in smtpd_milters is reported by
 * postfix check and at start, not only when the first message meets it. */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "mastercf.h"
#include "milter_spec.h"

static size_t check_list(const char *where, const char *param, const char *value, struct strv *warnings)
{
        struct strv v = STRV_INIT;
        config_split_list(value ? value : "", &v);
        size_t n = 0;
        for (size_t i = 0; i < v.n; i++) {
                struct milter_spec sp = {0};
                char *why = NULL;
                if (milter_spec_parse(v.v[i], &sp, &why) < 0) {
                        strv_push_take(warnings,
                                       xasprintf("%s: %s: bad milter \"%s\": %s; until it is fixed "
                                                 "the milter counts as unreachable "
                                                 "(milter_default_action)",
                                                 where, param, v.v[i], why));
                        n++;
                }
                free(why);
                free(sp.endpoint);
        }
        strv_done(&v);
        return n;
}

static size_t check_one(const char *where, const char *name, const char *value, struct strv *warnings)
{
        enum milter_default d;
        if (streq(name, "smtpd_milters") || streq(name, "non_smtpd_milters"))
                return check_list(where, name, value, warnings);
        if (streq(name, "milter_default_action") && milter_default_parse(value, &d) < 0) {
                strv_push_take(warnings,
                               xasprintf("%s: milter_default_action = %s: expected accept, tempfail, "
                                         "reject or quarantine; tempfail applies",
                                         where, value ? value : ""));
                return 1;
        }
        if (streq(name, "milter_protocol")) {
                long v = value ? strtol(value, NULL, 10) : 0;
                if (v < 2 || v > 6) {
                        strv_push_take(warnings,
                                       xasprintf("%s: milter_protocol = %s: expected 2 to 6; 6 applies",
                                                 where, value ? value : ""));
                        return 1;
                }
        }
        return 0;
}

size_t milter_check(struct config *c, const struct mastercf *m, struct strv *warnings)
{
        static const char *const names[] = {"smtpd_milters", "non_smtpd_milters", "milter_default_action",
                                            "milter_protocol"};
        const char *maincf = config_maincf_path(c);
        size_t n = 0;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                n += check_one(maincf, names[i], config_get(c, names[i]), warnings);
        for (size_t s = 0; m && s < m->n_services; s++)
                for (size_t k = 0; k < m->services[s].n_overrides; k++) {
                        const struct mastercf_override *o = &m->services[s].overrides[k];
                        _cleanup_free_ char *where = xasprintf("master.cf line %u (service %s)",
                                                               m->services[s].line, m->services[s].name);
                        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                                if (streq(o->name, names[i]) && o->value && !strchr(o->value, '$'))
                                        n += check_one(where, names[i], o->value, warnings);
                }
        return n;
}
