/* sd_notify.h: a daemon's side of the service manager without libsystemd: readiness and status datagrams
 * (sd_notify(3)), the watchdog interval (sd_watchdog_enabled(3)), whether systemd runs (sd_booted(3)). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

/*
 * Send state ("READY=1", "STATUS=...", several assignments separated by '\n') to $NOTIFY_SOCKET: an
 * absolute path, or "@name" in the abstract namespace. 0 when the variable is unset or empty (not
 * started by systemd: nothing to tell), 1 once sent, else a negative errno (-EINVAL for a malformed
 * address, -EAFNOSUPPORT for a form not supported here, such as "vsock:"). The environment is kept:
 * later calls and children see it too.
 */
int notify_send(const char *state);
int notify_sendf(const char *fmt, ...) _printf_(1, 2);

/*
 * The watchdog interval systemd expects "WATCHDOG=1" within (WatchdogSec=), as
 * sd_watchdog_enabled(false, &usec): 1 with *usec set when $WATCHDOG_USEC is set and $WATCHDOG_PID,
 * if set, is this process; 0 with *usec = 0 when the watchdog is off or meant for another process;
 * -EINVAL or -ERANGE (*usec untouched) when a variable is malformed.
 */
int notify_watchdog_usec(uint64_t *usec);

/* Whether systemd is the init system: /run/systemd/system/ is a directory (sd_booted(3)'s test). */
bool systemd_booted(void);
