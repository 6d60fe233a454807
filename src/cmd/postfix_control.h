/* postfix_control.h: postfix start, start-fg, stop, abort, reload and status of one instance. */
#pragma once

#include "config.h"

/* Each returns the exit code; messages are "<syslog_name>/postfix-script: ..." on stderr, as Postfix's. */
int postfix_start(struct config *c, int argc, char **argv);
int postfix_start_fg(struct config *c, int argc, char **argv);
int postfix_stop(struct config *c, int argc, char **argv);
int postfix_abort(struct config *c, int argc, char **argv);
int postfix_reload(struct config *c, int argc, char **argv);
int postfix_status(struct config *c, int argc, char **argv);
int postfix_flush(struct config *c, int argc, char **argv);
/* postfix metrics: the instance's counters and queue sizes as OpenMetrics text on stdout. */
int postfix_metrics(struct config *c, int argc, char **argv);
