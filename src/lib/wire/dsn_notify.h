/* dsn_notify.h: RFC 3461 NOTIFY= keywords (SMTP RCPT, sendmail -N, cleanup's envelope) as bits. */
#pragma once

#include <stddef.h>

enum {
        DSN_NOTIFY_NEVER = 1 << 0,
        DSN_NOTIFY_SUCCESS = 1 << 1,
        DSN_NOTIFY_FAILURE = 1 << 2,
        DSN_NOTIFY_DELAY = 1 << 3,
};

/*
 * "SUCCESS,DELAY", "NEVER"...: words separated by commas (blanks around them allowed, as sendmail -N
 * users write them), case-insensitive, each at most once, NEVER alone (RFC 3461 4.1). 0 with *ret,
 * or -EINVAL. Pure: reads v[0..len).
 */
int dsn_notify_parse(const char *v, size_t len, unsigned *ret);
