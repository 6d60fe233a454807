/* postsuper.c: the superuser's queue maintenance: delete, hold, release and requeue messages. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "log.h"
#include "queue.h"
#include "submit.h"

/* Queue IDs read from stdin ("-") and operations on one command line. */
#define POSTSUPER_STDIN_IDS_MAX 1000000
#define POSTSUPER_OPS_MAX       1000
#define WAKEUP_TIMEOUT_USEC     (1000 * USEC_PER_MSEC)

enum op { OP_DELETE, OP_HOLD, OP_RELEASE, OP_REQUEUE, _OP_MAX };

struct op_def {
        const char *done_log;   /* per message: "QID: removed" */
        const char *summary;    /* "Deleted: N messages" */
        enum queue_name target; /* for moves */
        enum queue_name defaults[4];
        size_t n_defaults;
};

/* Postfix's default queues for each operation (postsuper(1)). */
static const struct op_def ops[_OP_MAX] = {
        [OP_DELETE] = {"removed",
                       "Deleted",
                       _QUEUE_MAX,
                       {QUEUE_HOLD, QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED},
                       4},
        [OP_HOLD] = {"placed on hold",
                     "Placed on hold",
                     QUEUE_HOLD,
                     {QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED},
                     3},
        [OP_RELEASE] = {"released from hold", "Released from hold", QUEUE_DEFERRED, {QUEUE_HOLD}, 1},
        [OP_REQUEUE] = {"requeued",
                        "Requeued",
                        QUEUE_MAILDROP,
                        {QUEUE_HOLD, QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED},
                        4},
};

struct request {
        enum op op;
        const char *arg; /* ID, "ALL" or "-" */
};

/* Per-message logs that belong to a message and go with it when it is deleted. */
static void remove_logs(const char *qdir, const char *id)
{
        static const char *const logs[] = {"defer", "bounce", "trace"};
        for (size_t i = 0; i < ELEMENTSOF(logs); i++) {
                _cleanup_free_ char *p = xasprintf("%s/%s/%s", qdir, logs[i], id);
                (void)unlink(p);
        }
}

/* Apply op to id in the first of the queues that has it; 1 done, 0 not found. */
static int apply(struct queue *q, enum op op, const char *id, const enum queue_name *queues, size_t nq)
{
        for (size_t i = 0; i < nq; i++) {
                enum queue_name from = queues[i];
                if (op != OP_DELETE && from == ops[op].target)
                        continue;
                int r = op == OP_DELETE ? queue_remove(q, id, from, QUEUE_SYNC)
                                        : queue_move(q, id, from, ops[op].target, QUEUE_SYNC);
                if (r == -ENOENT)
                        continue;
                if (r < 0) {
                        msg_warn("%s: %s/%s: %s", id, queue_name_to_string(from), id, strerror(-r));
                        return 0;
                }
                if (op == OP_DELETE)
                        remove_logs(queue_directory(q), id);
                msg_info("%s: %s", id, ops[op].done_log);
                return 1;
        }
        return 0;
}

static void all_ids(struct queue *q, const enum queue_name *queues, size_t nq, struct strv *ret)
{
        for (size_t i = 0; i < nq; i++) {
                int dfd = queue_dirfd(q, queues[i]);
                int fd = dfd >= 0 ? fcntl(dfd, F_DUPFD_CLOEXEC, 3) : -1;
                DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
                if (!d) {
                        if (fd >= 0)
                                close(fd);
                        continue;
                }
                rewinddir(d);
                struct dirent *de;
                while ((de = readdir(d)))
                        if (queue_id_valid(de->d_name))
                                strv_push(ret, de->d_name);
                closedir(d);
        }
}

static void stdin_ids(struct strv *ret)
{
        char line[256];
        size_t n = 0;
        while (fgets(line, sizeof line, stdin) && n++ < POSTSUPER_STDIN_IDS_MAX) {
                line[strcspn(line, " \t\r\n")] = '\0';
                if (*line)
                        strv_push(ret, line);
        }
}

_noreturn_ static void usage(void)
{
        submit_fatal(SUBMIT_EX_USAGE,
                     "usage: postsuper [-c config_dir] [-d queue_id] [-h queue_id] [-H queue_id] "
                     "[-r queue_id] [-v] [queue...]");
}

int main(int argc, char **argv)
{
        log_setup_command("postsuper");
        if (getuid() != 0)
                msg_fatal("use of this command is reserved for the superuser");
        const char *dir_arg = NULL;
        struct request reqs[POSTSUPER_OPS_MAX];
        size_t n_reqs = 0;
        int c;
        while ((c = getopt(argc, argv, "c:d:h:H:r:psSv")) != -1) {
                enum op op;
                switch (c) {
                case 'c': dir_arg = optarg; continue;
                case 'p':
                case 's':
                case 'S':
                case 'v': continue; /* structure checks are postfix check's job here */
                case 'd': op = OP_DELETE; break;
                case 'h': op = OP_HOLD; break;
                case 'H': op = OP_RELEASE; break;
                case 'r': op = OP_REQUEUE; break;
                default: usage();
                }
                if (n_reqs >= POSTSUPER_OPS_MAX)
                        submit_fatal(SUBMIT_EX_USAGE, "too many operations");
                reqs[n_reqs++] = (struct request){op, optarg};
        }
        enum queue_name named[_QUEUE_MAX];
        size_t n_named = 0;
        for (int i = optind; i < argc; i++) {
                int qn = queue_name_from_string(argv[i]);
                if (qn < 0 ||
                    !(qn == QUEUE_INCOMING || qn == QUEUE_ACTIVE || qn == QUEUE_DEFERRED ||
                      qn == QUEUE_HOLD || qn == QUEUE_MAILDROP) ||
                    n_named >= ELEMENTSOF(named))
                        msg_fatal("invalid directory name: %s", argv[i]);
                named[n_named++] = (enum queue_name)qn;
        }
        const char *env = getenv("MAIL_CONFIG");
        _cleanup_free_ char *config_dir =
                submit_config_dir_from_arg(dir_arg         ? dir_arg
                                           : !isempty(env) ? env
                                                           : submit_default_config_dir());
        struct config *cfg = NULL;
        int r = config_load(config_dir, &cfg);
        if (r < 0)
                msg_fatal("open %s/main.cf: %s", config_dir, strerror(-r));
        const char *qdir = config_get(cfg, "queue_directory");
        struct queue *q = NULL;
        r = queue_open(qdir, &q);
        if (r < 0)
                msg_fatal("open queue directory %s: %s", qdir, strerror(-r));

        unsigned counts[_OP_MAX] = {0};
        bool seen[_OP_MAX] = {false};
        for (size_t i = 0; i < n_reqs; i++) {
                enum op op = reqs[i].op;
                seen[op] = true;
                const enum queue_name *queues = n_named ? named : ops[op].defaults;
                size_t nq = n_named ? n_named : ops[op].n_defaults;
                struct strv ids = STRV_INIT;
                if (streq(reqs[i].arg, "ALL"))
                        all_ids(q, queues, nq, &ids);
                else if (streq(reqs[i].arg, "-"))
                        stdin_ids(&ids);
                else
                        strv_push(&ids, reqs[i].arg);
                for (size_t j = 0; j < ids.n; j++) {
                        if (!queue_id_valid(ids.v[j])) {
                                msg_warn("invalid mail queue id: %s", ids.v[j]);
                                continue;
                        }
                        counts[op] += (unsigned)apply(q, op, ids.v[j], queues, nq);
                }
                strv_done(&ids);
        }
        for (int op = 0; op < _OP_MAX; op++)
                if (seen[op] && counts[op] > 0)
                        msg_info("%s: %u message%s", ops[op].summary, counts[op],
                                 counts[op] == 1 ? "" : "s");
        if (seen[OP_REQUEUE] && counts[OP_REQUEUE] > 0) {
                _cleanup_free_ char *trigger = xasprintf("%s/public/pickup", qdir);
                (void)submit_trigger(trigger, USEC_TO_MS(WAKEUP_TIMEOUT_USEC));
        }
        queue_close(q);
        config_free(cfg);
        return 0;
}
