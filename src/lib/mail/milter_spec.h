/* milter_spec.h: smtpd_milters / non_smtpd_milters elements and milter_default_action: their syntax
 * (cleanup runs the milters, src/cleanup/milter.h) and the instance check of those settings. */
#pragma once

#include <stddef.h>

#include "buf.h"

struct config;
struct mastercf;

/* What happens to a message when a milter cannot be reached, times out or answers garbage. */
enum milter_default {
        MILTER_DEFAULT_ACCEPT,     /* go on without that milter */
        MILTER_DEFAULT_TEMPFAIL,   /* 451 4.7.1: the client tries again later */
        MILTER_DEFAULT_REJECT,     /* 550 5.7.1 */
        MILTER_DEFAULT_QUARANTINE, /* accept, but into the hold queue */
};

/* One configured filter. */
struct milter_spec {
        char *endpoint; /* "inet:127.0.0.1:8891", "inet6:[::1]:8891" or "unix:/run/f.sock", as configured */
        int connect_timeout_ms, command_timeout_ms, content_timeout_ms;
        enum milter_default default_action;
        unsigned version; /* milter_protocol: 2..6 */
};

/* "accept", "tempfail", "reject", "quarantine": 0, or -EINVAL. */
int milter_default_parse(const char *text, enum milter_default *ret);
/* One smtpd_milters element ("inet:h:p" or "{ inet:h:p, connect_timeout=10s, default_action=accept }")
 * with the global settings as defaults in *sp. 0, or -EINVAL with *ret_why (malloc'd) saying why. */
int milter_spec_parse(const char *element, struct milter_spec *sp, char **ret_why);

/* milter_check.c: one warning line per bad smtpd_milters / non_smtpd_milters element, milter_default_action
 * or milter_protocol, in main.cf and in master.cf -o overrides (postfix check, the master at start).
 * Returns the number of lines added. */
size_t milter_check(struct config *c, const struct mastercf *m, struct strv *warnings);
