/* postfix.h: the subcommands of the postfix command, each in the file of its responsibility. */
#pragma once

#include "config.h"

/* Every subcommand gets the loaded config of the instance (-c DIR or $MAIL_CONFIG); returns an exit code. */
typedef int (*postfix_command_fn)(struct config *c, int argc, char **argv);

int postfix_check(struct config *c, int argc, char **argv);
