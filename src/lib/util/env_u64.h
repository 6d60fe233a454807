/* env_u64.h: an environment variable as an unsigned decimal number, strictly (systemd's $LISTEN_*, $WATCHDOG_*). */
#pragma once

#include <stdint.h>

/*
 * Parse $name as digits only: no sign, blank, prefix or trailing byte. 0 when it is unset (*ret
 * untouched), 1 with *ret set, -EINVAL when it is not a number, -ERANGE when it does not fit.
 */
int env_u64(const char *name, uint64_t *ret);
