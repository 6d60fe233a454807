/* metrics_instance.c: an instance's metrics text: its counters file, its queue directories counted now,
 * its name as the label (postfix metrics, the metrics service). */
#include "metrics_instance.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "instance.h"
#include "macro.h"

/* Regular files under dir, one level of subdirectories deep at most (hashed queues); -1 if unreadable. */
static long long count_files(const char *dir, int depth)
{
        DIR *d = opendir(dir);
        if (!d)
                return -1;
        long long n = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
                if (e->d_name[0] == '.')
                        continue;
                if (e->d_type == DT_DIR && depth > 0) {
                        _cleanup_free_ char *sub = xasprintf("%s/%s", dir, e->d_name);
                        long long k = count_files(sub, depth - 1);
                        n += k > 0 ? k : 0;
                } else if (e->d_type == DT_REG || e->d_type == DT_UNKNOWN)
                        n++;
        }
        closedir(d);
        return n;
}

static long long count_queue(const char *queue_dir, const char *name)
{
        _cleanup_free_ char *dir = xasprintf("%s/%s", queue_dir, name);
        return count_files(dir, 1);
}

int metrics_instance_text(struct config *c, const struct metrics_shm *attached, struct buf *out)
{
        struct instance_paths p;
        instance_paths_from_config(c, &p);
        const char *name = config_get(c, "multi_instance_name");
        const char *instance = !isempty(name) ? name : p.syslog_name;
        struct metrics_queues q = {
                .incoming = count_queue(p.queue_dir, "incoming"),
                .active = count_queue(p.queue_dir, "active"),
                .deferred = count_queue(p.queue_dir, "deferred"),
                .hold = count_queue(p.queue_dir, "hold"),
                .maildrop = count_queue(p.queue_dir, "maildrop"),
        };
        _cleanup_free_ char *path = xasprintf("%s/%s", config_get(c, "data_directory"), METRICS_FILE);
        const struct metrics_shm *m = NULL;
        int r = attached ? 0 : metrics_map(path, &m);
        metrics_render(attached ? attached : r == 0 ? m : NULL, instance, &q, out);
        metrics_unmap(m);
        instance_paths_done(&p);
        return r;
}
