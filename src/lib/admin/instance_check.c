/* instance_check.c: finds configuration problems before an instance starts, one clear line each. */
#include "instance_check.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <strings.h>
#include <sys/stat.h>

#include "alloc.h"
#include "dict.h"
#include "fileio.h"
#include "milter_spec.h"
#include "inet_listen.h"
#include "mastercf.h"
#include "params.h"

/* "type:name" where type is a lower-case word: IPv6 literals are written in brackets in lists. */
static bool looks_like_table(const char *element)
{
        if (!islower((unsigned char)element[0]))
                return false;
        const char *p = element;
        while (islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_')
                p++;
        return *p == ':';
}

static bool strv_contains(const struct strv *v, const char *s)
{
        for (size_t i = 0; i < v->n; i++)
                if (streq(v->v[i], s))
                        return true;
        return false;
}

/* Each table is checked once: local_recipient_maps repeats $alias_maps, and one line per
 * problem is the promise. created: the file may not exist yet (see PARAM_F_CREATED). */
static size_t check_table_value(const char *where, const char *name, const char *value, bool created,
                                struct strv *seen, struct strv *errors)
{
        struct strv elements = STRV_INIT;
        size_t n = 0;

        config_split_list(value, &elements);
        for (size_t i = 0; i < elements.n; i++) {
                if (!looks_like_table(elements.v[i]) || strv_contains(seen, elements.v[i]))
                        continue;
                strv_push(seen, elements.v[i]);
                _cleanup_free_ char *err = NULL;
                int r = created ? dict_check_type(elements.v[i], &err)
                                : dict_check_spec(elements.v[i], &err);
                if (r < 0) {
                        strv_push_take(errors, xasprintf("%s: %s = %s: %s", where, name, elements.v[i],
                                                         err ? err : "cannot open table"));
                        n++;
                }
        }
        strv_done(&elements);
        return n;
}

static size_t check_tables(struct config *c, const struct mastercf *master, bool types_only,
                           struct strv *errors)
{
        size_t n_params = 0, n = 0;
        const struct param_def *table = param_table(&n_params);
        struct strv seen = STRV_INIT;

        /* Tables that must exist first, so that one also named by a created-later parameter
         * (alias_maps and alias_database) is checked in full. */
        for (int created = 0; created <= 1; created++)
                for (size_t i = 0; i < n_params; i++) {
                        if (!(table[i].flags & PARAM_F_TABLES) ||
                            !(table[i].flags & PARAM_F_CREATED) != !created)
                                continue;
                        const char *value = config_get(c, table[i].name);
                        if (!isempty(value))
                                n += check_table_value(config_maincf_path(c), table[i].name, value,
                                                       created || types_only, &seen, errors);
                }
        for (size_t s = 0; master && s < master->n_services; s++) {
                const struct mastercf_service *svc = &master->services[s];
                for (size_t o = 0; o < svc->n_overrides; o++) {
                        const struct param_def *def = config_param_def(c, svc->overrides[o].name);
                        if (!def || !(def->flags & PARAM_F_TABLES))
                                continue;
                        _cleanup_free_ char *expanded = NULL, *err = NULL;
                        config_expand(c, svc->overrides[o].value, &expanded, &err);
                        _cleanup_free_ char *where =
                                xasprintf("%s/master.cf line %u (service %s/%s)", config_directory(c),
                                          svc->line, svc->name, svc->type_name);
                        struct strv seen_here = STRV_INIT;
                        n += check_table_value(where, svc->overrides[o].name, expanded,
                                               types_only || (def->flags & PARAM_F_CREATED), &seen_here,
                                               errors);
                        strv_done(&seen_here);
                }
        }
        strv_done(&seen);
        return n;
}

size_t instance_check_tables(struct config *c, const struct mastercf *master, struct strv *errors)
{
        return check_tables(c, master, false, errors);
}

size_t instance_check_table_types(struct config *c, const struct mastercf *master, struct strv *errors)
{
        return check_tables(c, master, true, errors);
}

static size_t check_master_cf(struct config *c, const struct mastercf *m, struct strv *errors)
{
        size_t n = 0;
        for (size_t i = 0; i < m->n_diags; i++, n++)
                strv_push_take(errors, xasprintf("%s/master.cf line %u: %s", config_directory(c),
                                                 m->diags[i].line, m->diags[i].message));
        for (size_t s = 0; s < m->n_services; s++) {
                const struct mastercf_service *svc = &m->services[s];
                for (size_t o = 0; o < svc->n_overrides; o++) {
                        _cleanup_free_ char *why =
                                config_check_value(c, svc->overrides[o].name, svc->overrides[o].value);
                        if (why) {
                                strv_push_take(errors, xasprintf("%s/master.cf line %u: -o %s=%s: %s",
                                                                 config_directory(c), svc->line,
                                                                 svc->overrides[o].name,
                                                                 svc->overrides[o].value, why));
                                n++;
                        }
                }
        }
        return n;
}

size_t instance_check_chroot(struct config *c, const struct mastercf *m, struct strv *errors)
{
        size_t n = 0;
        for (size_t s = 0; s < m->n_services; s++) {
                const struct mastercf_service *svc = &m->services[s];
                if (!svc->chroot)
                        continue;
                strv_push_take(
                        errors,
                        xasprintf("%s/master.cf line %u: service \"%s\" asks for a chroot jail (chroot "
                                  "column y), which postd does not set up: it confines each role with "
                                  "its own seccomp allow-list and the unit's ProtectSystem= instead "
                                  "(see docs/PRIVILEGES.md); set the column to n or -",
                                  config_directory(c), svc->line, svc->name));
                n++;
        }
        return n;
}

void instance_register_mastercf(struct config *c, const struct mastercf *m)
{
        for (size_t s = 0; s < m->n_services; s++) {
                config_add_service(c, m->services[s].name);
                for (size_t o = 0; o < m->services[s].n_overrides; o++)
                        config_add_references(c, m->services[s].overrides[o].value);
        }
}

size_t instance_check_overrides(struct config *c, const struct mastercf *m, struct strv *warnings)
{
        size_t n = 0;
        for (size_t s = 0; s < m->n_services; s++) {
                const struct mastercf_service *svc = &m->services[s];
                for (size_t o = 0; o < svc->n_overrides; o++) {
                        const char *name = svc->overrides[o].name, *value = svc->overrides[o].value;
                        const char *why = NULL;
                        if (!config_is_known(c, name) && !config_is_referenced(c, name))
                                why = "unused parameter: neither Postfix nor postd knows it (a typo?)";
                        else if (config_setting_is_inert(c, name, value))
                                why = "parameter not implemented by postd yet: the setting has no effect";
                        if (!why)
                                continue;
                        strv_push_take(warnings,
                                       xasprintf("%s/master.cf line %u (service %s/%s): -o %s=%s: %s",
                                                 config_directory(c), svc->line, svc->name, svc->type_name,
                                                 name, value, why));
                        n++;
                }
        }
        return n;
}

size_t instance_check_listen_addresses(struct config *c, const struct mastercf *m, struct strv *errors)
{
        bool v4 = false, v6 = false;
        _cleanup_free_ char *perr = NULL;
        if (inet_listen_protocols(c, true, &v4, &v6, &perr) < 0)
                return 0; /* config_check reports a bad inet_protocols */
        struct strv disable = STRV_INIT;
        config_get_list(c, "master_service_disable", &disable);
        size_t n = 0;
        for (size_t s = 0; s < m->n_services; s++) {
                const struct mastercf_service *svc = &m->services[s];
                if (svc->type != MASTERCF_INET || inet_listen_disabled_by(&disable, svc))
                        continue;
                struct inet_listen_set ls = {0};
                char *err = NULL;
                if (inet_listen_service(c, svc, v4, v6, &ls, &err) >= 0 &&
                    inet_listen_check_local(svc, &ls, config_maincf_path(c), &err) < 0 &&
                    !strv_contains(errors, err)) {
                        /* (services sharing inet_interfaces share the line: say it once) */
                        strv_push(errors, err);
                        n++;
                }
                free(err);
                inet_listen_set_done(&ls);
        }
        strv_done(&disable);
        return n;
}

/* A directory that must exist; owner_uid < 0 means any owner. */
static size_t check_directory(const char *param, const char *path, long owner_uid, const char *owner_name,
                              struct strv *errors, struct strv *warnings)
{
        struct stat st;
        if (isempty(path)) {
                strv_push_take(errors, xasprintf("%s is empty: set it in main.cf", param));
                return 1;
        }
        if (stat(path, &st) < 0) {
                strv_push_take(errors, xasprintf("%s = %s: %s (create it, or fix %s in main.cf)", param,
                                                 path, strerror(errno), param));
                return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
                strv_push_take(errors, xasprintf("%s = %s: not a directory", param, path));
                return 1;
        }
        if (owner_uid >= 0 && st.st_uid != (uid_t)owner_uid)
                strv_push_take(warnings, xasprintf("%s = %s: not owned by %s (uid %ld, found uid %ld)",
                                                   param, path, owner_name, owner_uid, (long)st.st_uid));
        return 0;
}

static size_t check_accounts_and_directories(struct config *c, struct strv *errors, struct strv *warnings)
{
        size_t n = 0;
        const char *owner = config_get(c, "mail_owner");
        const char *group = config_get(c, "setgid_group");
        struct passwd *pw = getpwnam(owner);
        long owner_uid = -1;

        if (!pw) {
                strv_push_take(errors, xasprintf("mail_owner = %s: no such user account (create it, e.g. "
                                                 "useradd --system %s, or fix mail_owner)",
                                                 owner, owner));
                n++;
        } else if (pw->pw_uid == 0) {
                strv_push_take(errors, xasprintf("mail_owner = %s: must not be a privileged account (uid 0)",
                                                 owner));
                n++;
        } else {
                owner_uid = (long)pw->pw_uid;
        }
        if (!getgrnam(group)) {
                strv_push_take(errors,
                               xasprintf("setgid_group = %s: no such group (create it, e.g. groupadd "
                                         "--system %s, or fix setgid_group)",
                                         group, group));
                n++;
        }

        n += check_directory("queue_directory", config_get(c, "queue_directory"), 0, "root", errors,
                             warnings);
        n += check_directory("data_directory", config_get(c, "data_directory"), owner_uid, owner, errors,
                             warnings);
        n += check_directory("daemon_directory", config_get(c, "daemon_directory"), -1, NULL, errors,
                             warnings);
        n += check_directory("command_directory", config_get(c, "command_directory"), -1, NULL, errors,
                             warnings);
        return n;
}

/* A domain in both lists is local (mydestination wins), so its virtual aliases would never apply. */
static void check_virtual_alias_domains(struct config *c, struct strv *warnings)
{
        struct strv local = STRV_INIT, virtual_alias = STRV_INIT;
        config_get_list(c, "mydestination", &local);
        config_get_list(c, "virtual_alias_domains", &virtual_alias);
        for (size_t i = 0; i < virtual_alias.n; i++)
                for (size_t k = 0; k < local.n; k++)
                        if (!looks_like_table(virtual_alias.v[i]) &&
                            strcasecmp(virtual_alias.v[i], local.v[k]) == 0) {
                                strv_push_take(
                                        warnings,
                                        xasprintf("%s: do not list domain %s in BOTH mydestination and "
                                                  "virtual_alias_domains",
                                                  config_maincf_path(c), virtual_alias.v[i]));
                                break;
                        }
        strv_done(&local);
        strv_done(&virtual_alias);
}

size_t instance_check(struct config *c, const struct mastercf *master, struct strv *errors,
                      struct strv *warnings)
{
        struct mastercf own = {0};
        size_t n = 0;

        if (!master) {
                int r = mastercf_load(config_directory(c), &own);
                if (r < 0) {
                        _cleanup_free_ char *path = mastercf_path(config_directory(c));
                        strv_push_take(errors, xasprintf("open %s: %s", path, strerror(-r)));
                        n++;
                } else
                        master = &own;
        }
        if (master) {
                instance_register_mastercf(c, master);
                n += check_master_cf(c, master, errors);
                n += instance_check_chroot(c, master, errors);
                instance_check_overrides(c, master, warnings);
                milter_check(c, master, warnings);
                n += instance_check_listen_addresses(c, master, errors);
        }

        struct strv problems = STRV_INIT;
        config_check(c, &problems);
        for (size_t i = 0; i < problems.n; i++, n++)
                strv_push_take(errors, xasprintf("%s/%s", config_directory(c), problems.v[i]));
        strv_done(&problems);

        struct strv unused = STRV_INIT;
        config_list_unused(c, &unused);
        for (size_t i = 0; i < unused.n; i++)
                strv_push_take(warnings, xasprintf("%s: unused parameter: %s=%s", config_maincf_path(c),
                                                   unused.v[i], config_get_raw(c, unused.v[i])));
        strv_done(&unused);
        struct strv inert = STRV_INIT;
        config_list_inert(c, &inert);
        for (size_t i = 0; i < inert.n; i++)
                strv_push_take(warnings, config_inert_warning(c, inert.v[i]));
        strv_done(&inert);

        n += instance_check_tables(c, master, errors);
        n += check_accounts_and_directories(c, errors, warnings);
        instance_check_traps(c, master, warnings);
        check_virtual_alias_domains(c, warnings);
        mastercf_done(&own);
        return n;
}
