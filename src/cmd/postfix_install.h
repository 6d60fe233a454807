/* postfix_install.h: postfix set-permissions / post-install: what a package runs after installing files. */
#pragma once

#include "config.h"

/*
 * Create the instance's missing directories and repair owners and modes, make postdrop and postqueue set-gid
 * setgid_group, create a missing alias file and rebuild alias_database. Safe to run again. Exit code.
 */
int postfix_set_permissions(struct config *c, int argc, char **argv);
