/* test_config.c: parameter table, $name expansion, config object, typed getters, host-derived defaults,
 * checks. */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "alloc.h"
#include "config.h"
#include "params.h"

/* A config directory with this main.cf; returns the loaded config (NULL on failure). */
static struct config *load_text(const char *subdir, const char *text)
{
        _cleanup_free_ char *dir = xasprintf("%s/%s", unit_tmpdir(), subdir);
        mkdir(dir, 0755);
        _cleanup_free_ char *rel = xasprintf("%s/main.cf", subdir);
        unit_write_file(rel, text);
        struct config *c = NULL;
        if (config_load(dir, &c) < 0)
                return NULL;
        config_set_hostname(c, "mail.example.com");
        return c;
}

static char *expand(struct config *c, const char *text, int *ret_r, char **ret_err)
{
        char *out = NULL, *err = NULL;
        int r = config_expand(c, text, &out, &err);
        if (ret_r)
                *ret_r = r;
        if (ret_err)
                *ret_err = err;
        else
                free(err);
        return out;
}

TEST(table_is_sorted_unique_and_described)
{
        size_t n;
        const struct param_def *t = param_table(&n);
        CHECK(n > 200);
        for (size_t i = 0; i < n; i++) {
                CHECK(param_valid_name(t[i].name, strlen(t[i].name)));
                CHECK(t[i].def != NULL);
                CHECK(!isempty(t[i].description));
                CHECK((t[i].type == PARAM_TIME) == (t[i].unit != 0));
                if (i > 0 && strcmp(t[i - 1].name, t[i].name) >= 0)
                        unit_fail(__FILE__, __LINE__, "table not sorted at %s", t[i].name);
                CHECK(param_find(t[i].name) == &t[i]);
        }
        CHECK(param_find("no_such_parameter") == NULL);
}

TEST(table_has_the_required_parameters)
{
        static const char *const required[] = {
                "queue_directory",
                "data_directory",
                "command_directory",
                "daemon_directory",
                "config_directory",
                "meta_directory",
                "shlib_directory",
                "mail_owner",
                "setgid_group",
                "default_privs",
                "myhostname",
                "mydomain",
                "myorigin",
                "mydestination",
                "mynetworks",
                "mynetworks_style",
                "inet_interfaces",
                "inet_protocols",
                "proxy_interfaces",
                "relayhost",
                "smtp_fallback_relay",
                "relay_domains",
                "relay_transport",
                "default_transport",
                "local_transport",
                "transport_maps",
                "alias_maps",
                "alias_database",
                "home_mailbox",
                "mail_spool_directory",
                "mailbox_size_limit",
                "message_size_limit",
                "mail_name",
                "mail_version",
                "smtpd_banner",
                "smtpd_client_restrictions",
                "smtpd_helo_restrictions",
                "smtpd_sender_restrictions",
                "smtpd_relay_restrictions",
                "smtpd_recipient_restrictions",
                "smtpd_data_restrictions",
                "smtpd_helo_required",
                "smtpd_recipient_limit",
                "smtpd_timeout",
                "smtpd_hard_error_limit",
                "smtpd_soft_error_limit",
                "smtpd_forbid_bare_newline",
                "smtpd_client_connection_count_limit",
                "smtpd_tls_cert_file",
                "smtpd_tls_key_file",
                "smtpd_tls_CAfile",
                "smtpd_tls_security_level",
                "smtpd_tls_wrappermode",
                "smtpd_tls_loglevel",
                "smtpd_tls_auth_only",
                "smtpd_tls_protocols",
                "smtpd_sasl_auth_enable",
                "smtpd_sasl_type",
                "smtpd_sasl_path",
                "smtpd_sasl_security_options",
                "smtp_tls_security_level",
                "smtp_tls_CAfile",
                "smtp_tls_CApath",
                "smtp_tls_loglevel",
                "smtp_tls_session_cache_database",
                "smtp_sasl_auth_enable",
                "smtp_sasl_password_maps",
                "smtp_sasl_security_options",
                "smtp_sasl_tls_security_options",
                "smtp_sasl_mechanism_filter",
                "smtp_bind_address",
                "smtp_bind_address6",
                "smtp_helo_name",
                "smtp_connect_timeout",
                "smtp_helo_timeout",
                "smtp_data_done_timeout",
                "smtp_connection_cache_on_demand",
                "authorized_submit_users",
                "authorized_mailq_users",
                "authorized_flush_users",
                "master_service_disable",
                "multi_instance_enable",
                "multi_instance_name",
                "multi_instance_group",
                "multi_instance_directories",
                "multi_instance_wrapper",
                "alternate_config_directories",
                "syslog_name",
                "syslog_facility",
                "maillog_file",
                "minimal_backoff_time",
                "maximal_backoff_time",
                "maximal_queue_lifetime",
                "bounce_queue_lifetime",
                "queue_run_delay",
                "delay_warning_time",
                "default_destination_concurrency_limit",
                "default_destination_recipient_limit",
                "default_process_limit",
                "max_idle",
                "max_use",
                "append_at_myorigin",
                "append_dot_mydomain",
                "recipient_delimiter",
                "compatibility_level",
                "notify_classes",
                "bounce_notice_recipient",
                "double_bounce_sender",
                "empty_address_recipient",
                "line_length_limit",
                "header_size_limit",
                "hash_queue_depth",
                "hash_queue_names",
                "default_database_type",
                "soft_bounce",
                "disable_vrfy_command",
                "strict_rfc821_envelopes",
                "biff",
                "allow_mail_to_commands",
                "allow_mail_to_files",
                "local_recipient_maps",
                "virtual_alias_maps",
                "canonical_maps",
                "sender_canonical_maps",
                "recipient_canonical_maps",
                "import_environment",
                "export_environment",
        };
        for (size_t i = 0; i < ELEMENTSOF(required); i++)
                if (!param_find(required[i]))
                        unit_fail(__FILE__, __LINE__, "missing parameter %s", required[i]);
        CHECK(param_find("transport_maps")->flags & PARAM_F_TABLES);
        CHECK(param_find("smtp_sasl_password_maps")->flags & PARAM_F_TABLES);
        CHECK(!(param_find("relayhost")->flags & PARAM_F_TABLES));
}

TEST(every_default_is_valid_for_its_type)
{
        struct config *c = config_new_defaults();
        size_t n;
        const struct param_def *t = param_table(&n);
        for (size_t i = 0; i < n; i++) {
                const char *v = config_get(c, t[i].name);
                CHECK(v != NULL);
                char *problem = param_check_value(&t[i], v);
                if (problem)
                        unit_fail(__FILE__, __LINE__, "%s", problem);
                free(problem);
        }
        config_free(c);
}

TEST(documented_defaults)
{
        struct config *c = config_new_defaults();
        config_set_hostname(c, "mail.example.com");
        CHECK_STR(config_get_raw(c, "myorigin"), "$myhostname");
        CHECK_STR(config_get_raw(c, "mydestination"), "$myhostname, localhost.$mydomain, localhost");
        CHECK_STR(config_get(c, "mydestination"), "mail.example.com, localhost.example.com, localhost");
        CHECK_STR(config_get_raw(c, "smtpd_banner"), "$myhostname ESMTP $mail_name");
        CHECK_STR(config_get(c, "smtpd_banner"), "mail.example.com ESMTP Postfix");
        CHECK_STR(config_get_raw(c, "syslog_name"),
                  "${multi_instance_name?{$multi_instance_name}:{postfix}}");
        CHECK_STR(config_get(c, "syslog_name"), "postfix");
        CHECK_STR(config_get(c, "maximal_queue_lifetime"), "5d");
        CHECK_INT(config_get_time(c, "maximal_queue_lifetime"), 5 * 86400);
        CHECK_STR(config_get(c, "queue_run_delay"), "300s");
        CHECK_INT(config_get_int(c, "message_size_limit"), 10240000);
        CHECK_STR(config_get(c, "smtpd_relay_restrictions"),
                  "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination");
        CHECK_STR(config_get(c, "mynetworks"), "127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128");
        CHECK_STR(config_get(c, "queue_directory"), "/var/spool/postfix");
        CHECK_STR(config_get(c, "config_directory"), "/etc/postfix");
        CHECK_STR(config_get(c, "local_transport"), "local:mail.example.com");
        CHECK_STR(config_get(c, "authorized_submit_users"), "static:anyone");
        CHECK(!config_get_bool(c, "multi_instance_enable"));
        CHECK(config_get_bool(c, "append_at_myorigin"));
        CHECK(!config_is_set(c, "myorigin"));
        CHECK(config_get(c, "no_such_parameter") == NULL);
        CHECK(config_get_raw(c, "no_such_parameter") == NULL);
        config_free(c);
}

TEST(host_derived_defaults)
{
        struct config *c = config_new_defaults();
        config_set_hostname(c, "mx1.dept.example.org");
        CHECK_STR(config_get(c, "myhostname"), "mx1.dept.example.org");
        CHECK_STR(config_get(c, "mydomain"), "dept.example.org");

        config_set_hostname(c, "box");
        CHECK_STR(config_get(c, "myhostname"), "box.localdomain");
        CHECK_STR(config_get(c, "mydomain"), "localdomain");

        /* A short host name takes an explicitly set mydomain. */
        config_set(c, "mydomain", "corp.example");
        CHECK_STR(config_get(c, "myhostname"), "box.corp.example");
        CHECK_STR(config_get(c, "myorigin"), "box.corp.example");

        /* mydomain follows an explicitly set myhostname. */
        struct config *d = config_new_defaults();
        config_set_hostname(d, "box");
        config_set(d, "myhostname", "smtp.example.net");
        CHECK_STR(config_get(d, "mydomain"), "example.net");
        CHECK_STR(config_get_default(d, "myhostname"), "box.localdomain");
        config_set(d, "myhostname", "single");
        CHECK_STR(config_get(d, "mydomain"), "localdomain");
        config_free(d);
        config_free(c);
}

TEST(load_override_and_raw)
{
        struct config *c =
                load_text("load", "# test\nmyhostname = host.example.com\nmydomain = example.com\n"
                                  "myorigin = $mydomain\nrelayhost = [172.16.1.11]\n"
                                  "custom = ${myorigin}/$(relayhost)\n");
        CHECK(c);
        CHECK_STR(config_get(c, "myorigin"), "example.com");
        CHECK_STR(config_get_raw(c, "myorigin"), "$mydomain");
        CHECK(config_is_set(c, "myorigin"));
        CHECK(!config_is_set(c, "mydestination"));
        CHECK_STR(config_get(c, "custom"), "example.com/[172.16.1.11]");
        CHECK(strstr(config_directory(c), "/load") != NULL);
        CHECK_STR(config_get(c, "config_directory"), config_directory(c));

        /* -o overrides take precedence and may reference other parameters. */
        config_set(c, "smtpd_tls_security_level", "encrypt");
        CHECK_STR(config_get(c, "smtpd_tls_security_level"), "encrypt");
        CHECK(config_is_set(c, "smtpd_tls_security_level"));
        config_set(c, "mydomain", "other.example");
        CHECK_STR(config_get(c, "myorigin"), "other.example");
        CHECK_STR(config_get(c, "custom"), "other.example/[172.16.1.11]");
        config_set(c, "user_defined", "$mydomain!");
        CHECK_STR(config_get(c, "user_defined"), "other.example!");
        config_free(c);
}

TEST(load_errors_and_mail_config)
{
        struct config *c = NULL;
        _cleanup_free_ char *missing = xasprintf("%s/does-not-exist", unit_tmpdir());
        CHECK_INT(config_load(missing, &c), -ENOENT);
        CHECK(c == NULL);

        struct config *t = load_text("envdir", "mail_name = FromEnv\n");
        CHECK(t);
        setenv("MAIL_CONFIG", config_directory(t), 1);
        CHECK_INT(config_load(NULL, &c), 0);
        unsetenv("MAIL_CONFIG");
        CHECK_STR(config_get(c, "mail_name"), "FromEnv");
        CHECK_STR(config_directory(c), config_directory(t));
        config_free(c);
        config_free(t);
}

TEST(expansion_forms)
{
        struct config *c = load_text("forms", "full = yes\nempty =\nname = world\n");
        CHECK(c);
        static const struct {
                const char *in, *out;
        } cases[] = {
                {"hello $name", "hello world"},
                {"hello ${name}!", "hello world!"},
                {"hello $(name)!", "hello world!"},
                {"$name$name", "worldworld"},
                {"${full?set}", "set"},
                {"${empty?set}", ""},
                {"${undefined_thing?set}", ""},
                {"${full:unset}", ""},
                {"${empty:unset}", "unset"},
                {"${undefined_thing:unset}", "unset"},
                {"${full?{a, b}}", "a, b"},
                {"${empty:{a, b}}", "a, b"},
                {"${full?{yes $name}:{no}}", "yes world"},
                {"${empty?{yes}:{no $name}}", "no world"},
                {"${empty ? {yes} : {no}}", ""}, /* whitespace before '?' is not a name: syntax error */
                {"${full?{yes} : {no}}", "yes"},
                {"${full?${name}}", "world"},
                {"${full?x${empty:{y}}z}", "xyz"},
                {"$$name costs $$5", "$name costs $5"},
                {"trailing $", "trailing $"},
                {"$ alone and $-", "$ alone and $-"},
                {"$undefined_thing.", "."},
                {"no references", "no references"},
                {"", ""},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *out = expand(c, cases[i].in, NULL, NULL);
                if (!out || !streq(out, cases[i].out))
                        unit_fail(__FILE__, __LINE__, "expand(\"%s\") = \"%s\", expected \"%s\"",
                                  cases[i].in, out ? out : "(null)", cases[i].out);
                free(out);
        }
        config_free(c);
}

TEST(expansion_syntax_errors)
{
        struct config *c = config_new_defaults();
        int r;
        char *err;
        char *out = expand(c, "a ${mail_name", &r, &err);
        CHECK_INT(r, -EINVAL);
        CHECK_STR(err, "missing '}' after '${'");
        CHECK_STR(out, "a ${mail_name");
        free(out);
        free(err);
        out = expand(c, "$(mail_name", &r, &err);
        CHECK_INT(r, -EINVAL);
        free(out);
        free(err);
        out = expand(c, "${}", &r, &err);
        CHECK_INT(r, -EINVAL);
        free(out);
        free(err);
        out = expand(c, "${mail_name?{a}:b}", &r, &err);
        CHECK_INT(r, -EINVAL);
        free(out);
        free(err);
        out = expand(c, "${mail_name:{a}:{b}}", &r, &err);
        CHECK_INT(r, -EINVAL);
        free(out);
        free(err);
        out = expand(c, "${mail_name}", &r, &err);
        CHECK_INT(r, 0);
        CHECK(err == NULL);
        CHECK_STR(out, "Postfix");
        free(out);
        config_free(c);
}

TEST(expansion_loops_are_reported_by_name)
{
        struct config *c = load_text("loop", "a = x $b\nb = $c\nc = ${a}\nself = $self\nok = fine\n"
                                             "uses_loop = [$a]\n");
        CHECK(c);
        int r;
        char *err;
        char *out = expand(c, "$self", &r, &err);
        CHECK_INT(r, -ELOOP);
        CHECK_STR(err, "parameter self: recursive expansion");
        free(out);
        free(err);
        out = expand(c, "$a", &r, &err);
        CHECK_INT(r, -ELOOP);
        CHECK(strstr(err, "recursive expansion") != NULL);
        free(out);
        free(err);
        /* The getter still returns something, and the rest of the config is unaffected. */
        CHECK(config_get(c, "uses_loop") != NULL);
        CHECK_STR(config_get(c, "ok"), "fine");

        struct strv problems = STRV_INIT;
        CHECK(config_check(c, &problems) >= 4);
        bool found = false;
        for (size_t i = 0; i < problems.n; i++)
                found = found ||
                        (strstr(problems.v[i], "main.cf line 4: parameter self: recursive expansion"));
        CHECK(found);
        strv_done(&problems);
        config_free(c);
}

TEST(expansion_depth_and_size_limits)
{
        struct config *c = config_new_defaults();
        /* A chain longer than the depth limit. */
        for (unsigned i = 0; i < CONFIG_EXPAND_DEPTH_MAX + 10; i++) {
                char name[32], value[32];
                snprintf(name, sizeof name, "p%u", i);
                snprintf(value, sizeof value, "$p%u", i + 1);
                config_set(c, name, value);
        }
        int r;
        char *err;
        char *out = expand(c, "$p0", &r, &err);
        CHECK_INT(r, -E2BIG);
        CHECK(strstr(err, "too many nested expansions") != NULL);
        free(out);
        free(err);

        /* Deeply nested conditionals in one value. */
        struct buf b = BUF_INIT;
        for (unsigned i = 0; i < 5000; i++)
                buf_puts(&b, "${mail_name?");
        for (unsigned i = 0; i < 5000; i++)
                buf_puts(&b, "}");
        out = expand(c, b.data, &r, &err);
        CHECK_INT(r, -E2BIG);
        free(out);
        free(err);
        buf_done(&b);

        /* Doubling at each level: 2^40 bytes unless the output limit stops it. */
        config_set(c, "d0", "0123456789abcdef");
        for (unsigned i = 1; i <= 40; i++) {
                char name[32], value[64];
                snprintf(name, sizeof name, "d%u", i);
                snprintf(value, sizeof value, "$d%u$d%u", i - 1, i - 1);
                config_set(c, name, value);
        }
        out = expand(c, "$d40", &r, &err);
        CHECK_INT(r, -E2BIG);
        CHECK(strstr(err, "too long") != NULL);
        CHECK(strlen(out) <= CONFIG_EXPAND_OUTPUT_MAX);
        free(out);
        free(err);
        config_free(c);
}

TEST(expansion_total_cache_limit)
{
        struct config *c = config_new_defaults();
        config_set(c, "d0", "0123456789abcdef");
        for (unsigned i = 1; i <= 15; i++) {
                char name[32], value[64];
                snprintf(name, sizeof name, "d%u", i);
                snprintf(value, sizeof value, "$d%u$d%u", i - 1, i - 1);
                config_set(c, name, value);
        }
        /* Each xN expands to 512 KiB: fine alone, but not 40 of them at once. */
        for (unsigned i = 0; i < 40; i++) {
                char name[32];
                snprintf(name, sizeof name, "x%u", i);
                config_set(c, name, "$d15.");
        }
        int failures = 0, r;
        for (unsigned i = 0; i < 40; i++) {
                char ref[32];
                char *err = NULL;
                snprintf(ref, sizeof ref, "$x%u", i);
                char *out = expand(c, ref, &r, &err);
                if (r == -E2BIG && strstr(err, "in total"))
                        failures++;
                else
                        CHECK_INT(strlen(out), 512 * 1024 + 1);
                free(out);
                free(err);
        }
        CHECK(failures > 0);
        CHECK(failures < 40);
        /* Dropping the caches (config_set) gives the budget back. */
        config_set(c, "unrelated", "1");
        char *out = expand(c, "$x39", &r, NULL);
        CHECK_INT(r, 0);
        free(out);
        config_free(c);
}

TEST(typed_getters)
{
        struct config *c = load_text("typed", "smtpd_recipient_limit = 250\nsoft_bounce = YES\n"
                                              "maximal_queue_lifetime = 3\nbounce_queue_lifetime = 2h\n"
                                              "queue_run_delay = 90\nminimal_backoff_time = 1w\n"
                                              "max_idle = 5m\nsmtpd_helo_required = maybe\n"
                                              "smtpd_timeout = 10x\nmax_use = lots\n"
                                              "mynetworks = 127.0.0.1, 172.16.10.5\t172.16.10.6,,\n"
                                              "alias_maps = hash:/etc/aliases, inline:{a=b, c=d} static:x\n"
                                              "biglimit = 99\n"
                                              "message_size_limit = $biglimit\n");
        CHECK(c);
        CHECK_INT(config_get_int(c, "smtpd_recipient_limit"), 250);
        CHECK(config_get_bool(c, "soft_bounce"));
        CHECK_INT(config_get_time(c, "maximal_queue_lifetime"), 3 * 86400); /* default unit d */
        CHECK_INT(config_get_time(c, "bounce_queue_lifetime"), 7200);
        CHECK_INT(config_get_time(c, "queue_run_delay"), 90);
        CHECK_INT(config_get_time(c, "minimal_backoff_time"), 7 * 86400);
        CHECK_INT(config_get_time(c, "max_idle"), 300);
        CHECK_INT(config_get_int(c, "message_size_limit"), 99);
        /* Bad values fall back to the default (with a warning). */
        CHECK(!config_get_bool(c, "smtpd_helo_required"));
        CHECK_INT(config_get_time(c, "smtpd_timeout"), 300);
        CHECK_INT(config_get_int(c, "max_use"), 100);
        CHECK_INT(config_get_int(c, "no_such_parameter"), 0);

        struct strv v = STRV_INIT;
        config_get_list(c, "mynetworks", &v);
        CHECK_INT(v.n, 3);
        CHECK_STR(v.v[0], "127.0.0.1");
        CHECK_STR(v.v[2], "172.16.10.6");
        strv_done(&v);
        config_get_list(c, "alias_maps", &v);
        CHECK_INT(v.n, 3);
        CHECK_STR(v.v[0], "hash:/etc/aliases");
        CHECK_STR(v.v[1], "inline:{a=b, c=d}");
        CHECK_STR(v.v[2], "static:x");
        strv_done(&v);
        config_get_list(c, "relayhost", &v);
        CHECK_INT(v.n, 0);
        strv_done(&v);
        config_free(c);
}

TEST(value_syntax)
{
        long long n;
        bool b;
        CHECK_INT(param_parse_int("-5", &n), 0);
        CHECK_INT(n, -5);
        CHECK_INT(param_parse_int("5 ", &n), -EINVAL);
        CHECK_INT(param_parse_int("", &n), -EINVAL);
        CHECK_INT(param_parse_int("99999999999999999999", &n), -ERANGE);
        CHECK_INT(param_parse_size("-1", &n), -EINVAL);
        CHECK_INT(param_parse_size("10240000", &n), 0);
        CHECK_INT(param_parse_time("10", 'm', &n), 0);
        CHECK_INT(n, 600);
        CHECK_INT(param_parse_time("10s", 'd', &n), 0);
        CHECK_INT(n, 10);
        CHECK_INT(param_parse_time("10y", 's', &n), -EINVAL);
        CHECK_INT(param_parse_time("10ss", 's', &n), -EINVAL);
        CHECK_INT(param_parse_time("h", 's', &n), -EINVAL);
        CHECK_INT(param_parse_time("9999999999999999w", 's', &n), -ERANGE);
        CHECK_INT(param_parse_bool("No", &b), 0);
        CHECK(!b);
        CHECK_INT(param_parse_bool("true", &b), -EINVAL);
}

TEST(per_service_parameters)
{
        struct config *c = load_text("svc", "relay_destination_concurrency_limit = 7\n"
                                            "relay_bind_address = 0.0.0.0\n"
                                            "nosuchservice_destination_recipient_limit = 3\n"
                                            "macro = value\nmyorigin = $macro\n"
                                            "smtpd_restriction_classes = my_class\nmy_class = permit\n"
                                            "typo_parameter = 1\n");
        CHECK(c);
        size_t prefix = 0;
        const struct param_def *def = param_find_service("relay_destination_concurrency_limit", &prefix);
        CHECK(def);
        CHECK_STR(def->name, "default_destination_concurrency_limit");
        CHECK_INT(prefix, 5);
        def = param_find_service("my_svc_time_limit", &prefix);
        CHECK(def);
        CHECK_STR(def->name, "command_time_limit");
        CHECK_INT(prefix, 6);
        CHECK(param_find_service("relay_nonsense", &prefix) == NULL);

        CHECK_INT(config_get_int(c, "relay_destination_concurrency_limit"), 7);
        /* Not set: the default is the base parameter. */
        CHECK_STR(config_get_raw(c, "local_destination_rate_delay"), "$default_destination_rate_delay");
        CHECK_INT(config_get_time(c, "local_destination_rate_delay"), 0);
        CHECK_INT(config_get_int(c, "other_destination_recipient_limit"), 50);

        config_add_service(c, "relay");
        config_add_service(c, "smtp");
        CHECK(config_is_known(c, "relay_bind_address"));
        CHECK(!config_is_known(c, "nosuchservice_destination_recipient_limit"));

        struct strv unused = STRV_INIT;
        config_list_unused(c, &unused);
        CHECK_INT(unused.n, 2);
        CHECK_STR(unused.v[0], "nosuchservice_destination_recipient_limit");
        CHECK_STR(unused.v[1], "typo_parameter");
        strv_done(&unused);

        /* A reference from master.cf makes a user-defined parameter used. */
        config_add_references(c, "-o smtpd_client_restrictions=$typo_parameter");
        config_list_unused(c, &unused);
        CHECK_INT(unused.n, 1);
        strv_done(&unused);
        config_free(c);
}

TEST(check_reports_problems_with_line_numbers)
{
        struct config *c = load_text("check", "soft_bounce = maybe\n"
                                              "smtpd_recipient_limit = many\n"
                                              "maximal_queue_lifetime = 5y\n"
                                              "this line is bad\n"
                                              "message_size_limit = -1\n"
                                              "myhostname = ok.example\n"
                                              "bad = ${unterminated\n"
                                              "queue_run_delay = 300s\n");
        CHECK(c);
        struct strv p = STRV_INIT;
        CHECK_INT(config_check(c, &p), 6);
        CHECK_STR(p.v[0], "main.cf line 4: missing '=' after parameter name: \"this line is bad\"");
        CHECK_STR(p.v[1], "main.cf line 1: bad boolean value (use yes or no): soft_bounce = maybe");
        CHECK_STR(p.v[2], "main.cf line 2: bad numerical value: smtpd_recipient_limit = many");
        CHECK(strstr(p.v[3], "main.cf line 3: bad time value") == p.v[3]);
        CHECK(strstr(p.v[4], "main.cf line 5: bad size value") == p.v[4]);
        CHECK_STR(p.v[5], "main.cf line 7: parameter bad: missing '}' after '${'");
        strv_done(&p);

        char *problem = config_check_value(c, "smtpd_tls_wrappermode", "perhaps");
        CHECK(problem && strstr(problem, "smtpd_tls_wrappermode = perhaps"));
        free(problem);
        CHECK(config_check_value(c, "smtpd_tls_wrappermode", "yes") == NULL);
        CHECK(config_check_value(c, "unknown_thing", "anything") == NULL);
        config_free(c);
}

TEST(list_names)
{
        struct config *c = load_text("names", "zz_custom = 1\nrelayhost = x\nrelayhost = y\n");
        CHECK(c);
        struct strv v = STRV_INIT;
        config_list_names(c, false, &v);
        CHECK_INT(v.n, 2);
        CHECK_STR(v.v[0], "relayhost");
        CHECK_STR(v.v[1], "zz_custom");
        strv_done(&v);
        CHECK_STR(config_get(c, "relayhost"), "y");
        size_t n;
        param_table(&n);
        config_list_names(c, true, &v);
        CHECK_INT(v.n, n + 1);
        strv_done(&v);
        config_free(c);
}
