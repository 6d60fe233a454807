/* postfix_systemd.h: when systemd is PID 1, an instance lives in its unit: postfix start/stop/... use
 * systemctl. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "buf.h"
#include "config.h"

/*
 * The unit of this instance ("postfix@dept1.service", "postfix@-.service") when systemd runs the
 * system and postd's unit template is installed, else NULL (run the master directly, as in tests,
 * containers and hosts without systemd). POSTD_NO_SYSTEMCTL=1 forces NULL.
 */
char *postfix_systemd_unit(struct config *c);

/* Run "systemctl VERB UNIT"; returns its exit status (or 1 when it could not run). */
int postfix_systemctl(const char *verb, const char *unit);

/*
 * The units of the instance: unit and the socket units that start it (TriggeredBy=), in *ret.
 * Returns whether any is active: the master runs, or a socket listens and would start it.
 */
bool postfix_systemd_instance_units(const char *unit, struct strv *ret);

/*
 * What the instance's socket units listen on, as systemd has them loaded (one line per socket and
 * address), to compare before and after a daemon-reload; *all_active: every one of them is active.
 */
char *postfix_systemd_listen_state(const char *unit, bool *all_active);

/* Run "systemctl VERB UNIT..."; returns its exit status. */
int postfix_systemctl_units(const char *verb, const struct strv *units);

/* The unit's MainPID while it is active, else 0. */
pid_t postfix_systemd_main_pid(const char *unit);

/*
 * The generator turns main.cf/master.cf into units at daemon-reload; when either is newer than
 * what it wrote for this unit, run `systemctl daemon-reload` first so the unit matches the config.
 */
void postfix_systemd_refresh(struct config *c, const char *unit);
