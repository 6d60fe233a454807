/* milter_spec.c: the syntax of smtpd_milters / non_smtpd_milters elements and milter_default_action,
 * shared by cleanup (which runs the milters) and the instance check (which reports bad settings). */
#include "milter_spec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "milter_proto.h"
#include "params.h"

int milter_default_parse(const char *text, enum milter_default *ret)
{
        static const char *const names[] = {
                [MILTER_DEFAULT_ACCEPT] = "accept",
                [MILTER_DEFAULT_TEMPFAIL] = "tempfail",
                [MILTER_DEFAULT_REJECT] = "reject",
                [MILTER_DEFAULT_QUARANTINE] = "quarantine",
        };
        for (size_t i = 0; text && i < ELEMENTSOF(names); i++)
                if (streq(text, names[i])) {
                        *ret = (enum milter_default)i;
                        return 0;
                }
        return -EINVAL;
}

static bool endpoint_valid(const char *e)
{
        if (strncmp(e, "unix:", 5) == 0)
                return e[5] == '/';
        if (strncmp(e, "inet:", 5) == 0 || strncmp(e, "inet6:", 6) == 0) {
                const char *colon = strrchr(e + 5, ':');
                return colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1);
        }
        return false;
}

/* One "name=value" of the {...} form. */
static int spec_option(struct milter_spec *sp, const char *opt, char **ret_why)
{
        const char *eq = strchr(opt, '=');
        if (!eq) {
                *ret_why = xasprintf("\"%s\" is not name=value", opt);
                return -EINVAL;
        }
        _cleanup_free_ char *name = xstrndup(opt, (size_t)(eq - opt));
        const char *value = eq + 1;
        long long secs;
        int *timeout = streq(name, "connect_timeout")   ? &sp->connect_timeout_ms
                       : streq(name, "command_timeout") ? &sp->command_timeout_ms
                       : streq(name, "content_timeout") ? &sp->content_timeout_ms
                                                        : NULL;
        if (timeout) {
                if (param_parse_time(value, 's', &secs) < 0 || secs <= 0 || secs > 3600) {
                        *ret_why = xasprintf("%s=%s: expected a time such as 10s", name, value);
                        return -EINVAL;
                }
                *timeout = (int)secs * 1000;
                return 0;
        }
        if (streq(name, "default_action")) {
                if (milter_default_parse(value, &sp->default_action) < 0) {
                        *ret_why = xasprintf("default_action=%s: expected accept, tempfail, reject or "
                                             "quarantine",
                                             value);
                        return -EINVAL;
                }
                return 0;
        }
        if (streq(name, "protocol")) {
                long v = strtol(value, NULL, 10);
                if (v < 2 || v > MILTER_VERSION) {
                        *ret_why = xasprintf("protocol=%s: expected 2 to 6", value);
                        return -EINVAL;
                }
                sp->version = (unsigned)v;
                return 0;
        }
        *ret_why = xasprintf("unknown setting \"%s\" (known: connect_timeout, command_timeout, "
                             "content_timeout, default_action, protocol)",
                             name);
        return -EINVAL;
}

int milter_spec_parse(const char *element, struct milter_spec *sp, char **ret_why)
{
        struct strv words = STRV_INIT;
        size_t len = strlen(element);
        if (element[0] == '{') {
                if (len < 2 || element[len - 1] != '}') {
                        *ret_why = xstrdup("a { ... } group without its closing brace");
                        return -EINVAL;
                }
                _cleanup_free_ char *inner = xstrndup(element + 1, len - 2);
                strv_split(&words, inner, ", \t\r\n");
        } else
                strv_push(&words, element);
        int r = 0;
        if (words.n == 0 || !endpoint_valid(words.v[0])) {
                *ret_why = xasprintf("\"%s\" is not inet:host:port, inet6:host:port or unix:/path",
                                     words.n ? words.v[0] : "");
                r = -EINVAL;
        }
        for (size_t i = 1; r == 0 && i < words.n; i++)
                r = spec_option(sp, words.v[i], ret_why);
        if (r == 0)
                sp->endpoint = xstrdup(words.v[0]);
        strv_done(&words);
        return r;
}
