/* instance_check.h: the checks of one instance's configuration, shared by `postfix check` and the master at
 * start. */
#pragma once

#include "buf.h"
#include "config.h"

struct mastercf;

/*
 * Check main.cf (syntax, value types, unused parameters), master.cf (syntax, -o values), every
 * lookup table named by a table parameter (type supported, database present) and the instance's
 * directories and accounts. Each problem is one line: errors (the instance must not start) go to
 * errors, the rest to warnings. master may be NULL: then DIR/master.cf is read (a missing one is
 * an error). Returns the number of errors.
 */
size_t instance_check(struct config *c, const struct mastercf *master, struct strv *errors,
                      struct strv *warnings);

/* Tell c about master.cf's services and -o values, so service-prefixed and $referenced names count as known.
 */
void instance_register_mastercf(struct config *c, const struct mastercf *m);
/*
 * Warnings for master.cf -o overrides that main.cf would be warned about too: a name no parameter has
 * (nor a $reference), and a parameter postd does not act on yet. Returns the number added.
 */
size_t instance_check_overrides(struct config *c, const struct mastercf *m, struct strv *warnings);

/*
 * One error per master.cf service with chroot y: postd refuses a jail it would not set up (see
 * docs/PRIVILEGES.md) rather than run the role unconfined by it. Returns the number added.
 */
size_t instance_check_chroot(struct config *c, const struct mastercf *m, struct strv *errors);

/* The table checks alone (what must fail at start, never at mail time); same conventions. */
size_t instance_check_tables(struct config *c, const struct mastercf *master, struct strv *errors);

/*
 * Only the form and type of every table (what the master refuses to start with: an unsupported
 * type would otherwise surprise at mail time). A missing .db file is left to postfix check and to
 * the daemon that opens it, which defers mail and says which table, as Postfix does.
 */
size_t instance_check_table_types(struct config *c, const struct mastercf *master, struct strv *errors);

/*
 * Every listener address of the enabled inet services that no network interface of this host has
 * (see inet_listen_check_local): one error line per address, naming inet_interfaces or the master.cf
 * line. Returns the number of errors added.
 */
size_t instance_check_listen_addresses(struct config *c, const struct mastercf *m, struct strv *errors);

/*
 * Warnings about the classic traps: inet services disabled by master_service_disable, a single
 * non-loopback inet_interfaces address without smtp_bind_address, and an address:port that
 * another instance (the default one and the enabled ones of multi_instance_directories) listens
 * on too. Returns the number of warnings added.
 */
size_t instance_check_traps(struct config *c, const struct mastercf *m, struct strv *warnings);
