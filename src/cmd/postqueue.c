/* postqueue.c: list the queue (mailq layout or JSON lines) and ask qmgr to flush it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "fileio.h"
#include "ipc.h"
#include "log.h"
#include "mail_proto.h"
#include "qfile.h"
#include "queue.h"
#include "showq.h"
#include "submit.h"

/* How long the showq service may take to answer. */
#define SHOWQ_TIMEOUT_USEC (60 * USEC_PER_SEC)
#define FLUSH_TIMEOUT_USEC (60 * USEC_PER_SEC)
#define EX_UNAVAILABLE     69

enum mode { MODE_NONE, MODE_LIST, MODE_JSON, MODE_FLUSH, MODE_FLUSH_ID, MODE_SITE };

/*
 * Anyone but root asks the showq service (public/showq, reachable through the set-gid group), as
 * Postfix's postqueue does: the queue directories are the mail owner's alone. It answers one request
 * line, "list" or "json", with the listing and closes.
 */
static int list_through_showq(struct config *cfg, enum mode mode)
{
        _cleanup_free_ char *path =
                xasprintf("%s/%s", config_get(cfg, "queue_directory"), MAIL_PROTO_SHOWQ_SOCKET);
        int fd = -1;
        int r = ipc_connect_unix(path, USEC_TO_MS(SHOWQ_TIMEOUT_USEC), &fd);
        if (r < 0) {
                msg_warn("connect to %s: %s", path, strerror(-r));
                submit_fatal(EX_UNAVAILABLE, "Queue report unavailable - mail system is down");
        }
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
                fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        struct timeval tv = {.tv_sec = USEC_TO_SEC(SHOWQ_TIMEOUT_USEC)};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        const char *req = mode == MODE_JSON ? "json\n" : "list\n";
        if (write_full(fd, req, strlen(req)) < 0)
                submit_fatal(EX_UNAVAILABLE, "Queue report unavailable - mail system is down");
        char chunk[16384];
        for (;;) {
                ssize_t n = read(fd, chunk, sizeof chunk);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        submit_fatal(SUBMIT_EX_TEMPFAIL, "read the queue report from %s: %s", path,
                                     strerror(errno));
                if (n == 0)
                        break;
                if (fwrite(chunk, 1, (size_t)n, stdout) != (size_t)n)
                        break;
        }
        close(fd);
        if (fflush(stdout) != 0 && errno != EPIPE)
                submit_fatal(SUBMIT_EX_IOERR, "output write error: %s", strerror(errno));
        return 0;
}

static int list(struct config *cfg, enum mode mode)
{
        if (getuid() != 0)
                return list_through_showq(cfg, mode);
        const char *qdir = config_get(cfg, "queue_directory");
        int r = showq_list_queue(qdir, mode == MODE_JSON, stdout);
        if (r < 0)
                submit_fatal(SUBMIT_EX_TEMPFAIL, "open queue directory %s: %s", qdir, strerror(-r));
        if (fflush(stdout) != 0 && errno != EPIPE)
                submit_fatal(SUBMIT_EX_IOERR, "output write error: %s", strerror(errno));
        return 0;
}

/* Ask qmgr to run the deferred queue: all of it, one message (id) or one destination (site). */
static int flush(struct config *cfg, const char *id, const char *site)
{
        _cleanup_free_ char *path =
                xasprintf("%s/%s", config_get(cfg, "queue_directory"), MAIL_PROTO_QMGR_SOCKET);
        int fd = -1;
        int r = ipc_connect_unix(path, USEC_TO_MS(FLUSH_TIMEOUT_USEC), &fd);
        struct ipc_msg req = IPC_MSG_INIT, rep = IPC_MSG_INIT;
        long long status = -1, count = -1;
        if (r == 0) {
                r = ipc_msg_add_str(&req, "req", "flush");
                if (r == 0 && id)
                        r = ipc_msg_add_str(&req, "queue_id", id);
                if (r == 0 && site)
                        r = ipc_msg_add_str(&req, "site", site);
                if (r == 0)
                        r = ipc_call(fd, &req, &rep, USEC_TO_MS(FLUSH_TIMEOUT_USEC));
                close(fd);
                if (r == 0 && (ipc_msg_get_int(&rep, "status", &status) < 0 || status != 0))
                        r = -EIO;
                if (r == 0)
                        ipc_msg_get_int(&rep, "count", &count);
        }
        ipc_msg_done(&req);
        ipc_msg_done(&rep);
        if (r == 0 && count == 0 && id)
                msg_warn("%s: no such message in the deferred queue", id);
        else if (r == 0 && count == 0 && site)
                msg_warn("no deferred mail for site %s", site);
        if (r < 0) {
                msg_warn("connect to %s: %s", path, strerror(-r));
                submit_fatal(EX_UNAVAILABLE, "Cannot flush mail queue - mail system is down");
        }
        return 0;
}

_noreturn_ static void usage(void)
{
        submit_fatal(SUBMIT_EX_USAGE,
                     "usage: postqueue -f | postqueue -i queueid | postqueue -j | postqueue -p | "
                     "postqueue -s site");
}

int main(int argc, char **argv)
{
        submit_harden_process();
        log_setup_command("postqueue");
        const char *dir_arg = NULL, *arg = NULL;
        enum mode mode = MODE_NONE;
        int c;
        while ((c = getopt(argc, argv, "c:fi:jps:v")) != -1) {
                enum mode m = MODE_NONE;
                switch (c) {
                case 'c': dir_arg = optarg; continue;
                case 'v': continue;
                case 'f': m = MODE_FLUSH; break;
                case 'i':
                        m = MODE_FLUSH_ID;
                        arg = optarg;
                        break;
                case 'j': m = MODE_JSON; break;
                case 'p': m = MODE_LIST; break;
                case 's':
                        m = MODE_SITE;
                        arg = optarg;
                        break;
                default: usage();
                }
                if (mode != MODE_NONE)
                        submit_fatal(SUBMIT_EX_USAGE, "specify only one of -f, -i, -j, -p or -s");
                mode = m;
        }
        if (optind < argc || mode == MODE_NONE)
                usage();
        struct config *cfg = submit_load_config(dir_arg);

        uid_t uid = getuid();
        _cleanup_free_ char *user = submit_user_name(uid);
        bool listing = mode == MODE_LIST || mode == MODE_JSON;
        _cleanup_free_ char *err = NULL;
        const char *param = listing ? "authorized_mailq_users" : "authorized_flush_users";
        int r = submit_access_check(config_get(cfg, param), user, &err);
        if (r < 0)
                submit_fatal(SUBMIT_EX_TEMPFAIL, "%s: %s", param, err);
        if (r == 0)
                submit_fatal(SUBMIT_EX_NOPERM, "User %s(%ld) is not allowed to %s the mail queue", user,
                             (long)uid, listing ? "view" : "flush");

        switch (mode) {
        case MODE_LIST:
        case MODE_JSON: r = list(cfg, mode); break;
        case MODE_FLUSH_ID:
                if (!queue_id_valid(arg))
                        submit_fatal(SUBMIT_EX_USAGE, "invalid mail queue id: %s", arg);
                r = flush(cfg, arg, NULL);
                break;
        case MODE_FLUSH: r = flush(cfg, NULL, NULL); break;
        case MODE_SITE:
                if (isempty(arg) || strpbrk(arg, " \t\r\n@"))
                        submit_fatal(SUBMIT_EX_USAGE, "invalid site name: %s", arg);
                r = flush(cfg, NULL, arg);
                break;
        case MODE_NONE: usage();
        }
        config_free(cfg);
        return r < 0 ? SUBMIT_EX_TEMPFAIL : 0;
}
