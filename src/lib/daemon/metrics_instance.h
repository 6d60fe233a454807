/* metrics_instance.h: one instance's OpenMetrics text (counters, queue sizes, its name as label). */
#pragma once

#include "buf.h"
#include "config.h"
#include "metrics.h"

/*
 * Append the text to out, from the counters of attached (a role's own mapping) or else of
 * data_directory/metrics. Always complete text ending in "# EOF" (queue sizes at least); returns 0, or the
 * -errno of mapping the file (no master has run yet, or another problem: counters left out).
 */
int metrics_instance_text(struct config *c, const struct metrics_shm *attached, struct buf *out);
