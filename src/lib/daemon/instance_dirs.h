/* instance_dirs.h: an instance's queue layout and data directory, created with Postfix's owners and modes.
 */
#pragma once

#include "config.h"
#include "queue.h"

/* What instance_create_dirs creates. */
enum {
        INSTANCE_DIRS_QUEUE = 1u << 0, /* queue_directory and every queue subdirectory */
        INSTANCE_DIRS_DATA = 1u << 1,  /* data_directory, mail_owner's, 0700 */
};

/*
 * The instance's mail_owner and setgid_group as uids/gids (root owns the rest). -ENOENT with *ret_error
 * naming the missing account and the fix when one is unknown.
 */
int instance_owners(struct config *c, struct queue_owners *ret, char **ret_error);

/*
 * Create whatever of the instance's directories is missing and set owner, group and mode of each, also of
 * those that existed, so that running it again repairs rather than fails. The parents of queue_directory
 * and data_directory must exist. Returns 0, or a negative errno with *ret_error saying what failed.
 */
int instance_create_dirs(struct config *c, unsigned what, char **ret_error);
