/* postmap.h: the table tool shared by postmap, postalias and newaliases (one implementation, three names).
 */
#pragma once

#include <stdbool.h>

/* Run as postmap (aliases false) or postalias/newaliases (aliases true); returns the exit status. */
int postmap_tool_main(int argc, char **argv, bool aliases);
