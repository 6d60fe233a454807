/* pickup: takes the files local users left in maildrop/ (via postdrop) and submits each to cleanup. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "cleanup_client.h"
#include "ipc.h"
#include "log.h"
#include "mail_proto.h"
#include "maildrop.h"
#include "queue.h"
#include "service.h"

/* Files handled per wakeup; the rest wait for the next one (the master wakes us every 60 s). */
#define PICKUP_SCAN_MAX 10000
/* A temporary name older than this belongs to a postdrop that died: remove it. */
#define PICKUP_TMP_MAX_AGE_USEC ((24 * 3600) * USEC_PER_SEC)
/*
 * A wakeup that finds maildrop empty ends the process unless a file came in this recently: the master
 * starts pickup again for the next wakeup (its timer or postdrop's), so an idle instance does not keep
 * a process whose only work is a readdir a minute, while a burst of submissions still reuses one.
 */
#define PICKUP_LINGER_USEC (5 * USEC_PER_SEC)
/* Time limit of each request to cleanup but the last (the last waits for the durable commit). */
#define PICKUP_STEP_TIMEOUT_USEC (30 * USEC_PER_SEC)

struct pickup {
        struct queue *queue;
        char *queue_dir;
        uint64_t max_content;
        char *content_filter;   /* content_filter: "" none */
        char *receive_override; /* receive_override_options: "" none */
        int cleanup_timeout_ms; /* mail_proto_cleanup_timeout_ms() */
        uid_t mail_owner;
        bool have_mail_owner;
        time_t last_file; /* when a scan last found a file; 0: never */
};

enum outcome { DONE, RETRY_LATER, BAD_FILE };

static void add_opt(struct ipc_kv *kv, size_t *n, const char *name, const char *value)
{
        if (!isempty(value))
                kv[(*n)++] = (struct ipc_kv){name, value, strlen(value)};
}

static int send_msg(const struct ipc_msg *m, void *userdata)
{
        return cleanup_client_send(userdata, m);
}

/* The pending recipients in as many {req=rcpt} messages as they take (mail_proto.h): no count limit. */
static int send_rcpts(struct cleanup_client *c, const struct qfile_msg *m)
{
        static const struct ipc_kv head[] = {{"req", "rcpt", 4}};
        struct ipc_batch b;
        int r = ipc_batch_init(&b, head, ELEMENTSOF(head), send_msg, c);
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->n_rcpts; i++) {
                const struct qfile_rcpt *rc = &m->rcpts[i];
                if (!qfile_rcpt_state_pending(rc->state))
                        continue;
                char notify[8];
                snprintf(notify, sizeof notify, "%u", rc->notify & 15u);
                struct ipc_kv group[3] = {{"rcpt", rc->address, strlen(rc->address)}};
                size_t n = 1;
                add_opt(group, &n, "orcpt", rc->orcpt);
                if (rc->notify)
                        group[n++] = (struct ipc_kv){"notify", notify, strlen(notify)};
                r = ipc_batch_add(&b, group, n);
                if (r < 0) {
                        ipc_batch_done(&b);
                        return r;
                }
        }
        return ipc_batch_finish(&b);
}

/* The envelope but its recipients; all or nothing. */
static int send_envelope(struct cleanup_client *c, const struct qfile_msg *m, uid_t uid, bool trusted,
                         const struct pickup *p)
{
        char uid_text[24];
        snprintf(uid_text, sizeof uid_text, "%ld", (long)uid);
        struct ipc_kv kv[12] = {{"req", "envelope", 8},
                                {"sender", m->sender, strlen(m->sender)},
                                {"uid", uid_text, strlen(uid_text)}};
        size_t n = 3;
        add_opt(kv, &n, "envid", m->envelope_id);
        add_opt(kv, &n, "full_name", maildrop_full_name(m));
        add_opt(kv, &n, "filter", p->content_filter);
        add_opt(kv, &n, "receive_override", p->receive_override);
        if (trusted) {
                /* Requeued by postsuper -r (the file is mail_owner's): keep what the first cleanup knew. */
                add_opt(kv, &n, "client_name", m->client_name);
                add_opt(kv, &n, "client_address", m->client_address);
                add_opt(kv, &n, "helo_name", m->helo_name);
                add_opt(kv, &n, "protocol", m->protocol);
                add_opt(kv, &n, "sasl_username", m->sasl_username);
        }
        return cleanup_client_send_kv(c, kv, n);
}

/* Submit one parsed message; the cleanup conversation of mail_proto.h, section 1. */
static enum outcome submit(struct pickup *p, const char *name, const struct qfile_msg *m, uid_t uid,
                           bool trusted)
{
        struct cleanup_client c = CLEANUP_CLIENT_INIT;
        enum outcome out = RETRY_LATER;
        _cleanup_free_ char *why = NULL, *reason = NULL;
        int r = cleanup_client_open(&c, p->queue_dir, "pickup", USEC_TO_MS(PICKUP_STEP_TIMEOUT_USEC), &why);
        if (r < 0) {
                msg_warn("maildrop/%s: %s", name, why);
                goto done;
        }
        const char *id = c.queue_id;
        struct log_fields lf = {.queue_id = id};
        msg_fields(LOG_LEVEL_INFO, &lf, "%s: uid=%ld from=<%s>", id, (long)uid, m->sender);

        /* Anything short of every recipient, the envelope and the content: no {req=end}, so cleanup
         * removes its file and the maildrop file stays for the next try. */
        r = send_rcpts(&c, m);
        if (r == 0)
                r = send_envelope(&c, m, uid, trusted, p);
        if (r == 0)
                r = cleanup_client_send_content(&c, m->content, m->content_len);
        if (r < 0) {
                msg_warn("%s: send to cleanup: %s", id, strerror(-r));
                goto done;
        }
        /* Wait for a definite answer: a message cleanup queued after we gave up would be picked up twice. */
        long long status = -1;
        r = cleanup_client_finish(&c, p->cleanup_timeout_ms, &status, &reason);
        if (r < 0) {
                msg_warn("%s: no answer from cleanup: %s", id,
                         r == -EBADMSG ? "malformed reply" : strerror(-r));
                goto done;
        }
        if (status == 0)
                out = DONE;
        else {
                msg_warn("maildrop/%s: cleanup refused it (status %lld): %s", name, status,
                         reason ?: "no reason");
                out = status == 5 ? BAD_FILE : RETRY_LATER;
        }
done:
        cleanup_client_close(&c);
        return out;
}

/* Keep a file that cannot be submitted for the operator instead of deleting what a user sent. */
static void save_bad_file(struct pickup *p, const char *name, const char *why)
{
        int r = queue_move(p->queue, name, QUEUE_MAILDROP, QUEUE_SAVED, QUEUE_SYNC);
        if (r < 0)
                msg_warn("maildrop/%s: %s; cannot move it to saved/: %s", name, why, strerror(-r));
        else
                msg_warn("maildrop/%s: %s; moved to saved/%s", name, why, name);
}

static enum outcome pickup_file(struct pickup *p, int dfd, const char *name)
{
        _cleanup_close_ int fd =
                openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT)
                        return DONE; /* taken by another pickup */
                save_bad_file(p, name, strerror(errno));
                return BAD_FILE;
        }
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
                save_bad_file(p, name, "not a regular file with one link");
                return BAD_FILE;
        }
        if ((uint64_t)st.st_size > p->max_content + MAILDROP_ENVELOPE_MAX) {
                save_bad_file(p, name, "message file too big");
                return BAD_FILE;
        }
        char *data = NULL;
        size_t len = 0;
        int r = queue_read_fd(fd, &data, &len);
        if (r < 0) {
                msg_warn("maildrop/%s: read: %s", name, strerror(-r));
                return RETRY_LATER;
        }
        struct qfile_msg m = {0};
        struct maildrop_error err = {0};
        r = maildrop_parse(data, len, p->max_content, &m, &err);
        enum outcome out;
        if (r < 0) {
                char why[256];
                snprintf(why, sizeof why, "bad file: %s (offset %" PRIu64 ")", err.reason ? err.reason : "?",
                         err.offset);
                save_bad_file(p, name, why);
                out = BAD_FILE;
        } else {
                bool trusted = p->have_mail_owner && st.st_uid == p->mail_owner;
                out = submit(p, name, &m, st.st_uid, trusted);
                if (out == DONE && unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
                        msg_warn("remove maildrop/%s: %s", name, strerror(errno));
                if (out == BAD_FILE)
                        save_bad_file(p, name, "refused by cleanup");
        }
        qfile_msg_done(&m);
        free(data);
        return out;
}

static void remove_stale_tmp(int dfd, const char *name)
{
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            time(NULL) - st.st_mtime > USEC_TO_SEC(PICKUP_TMP_MAX_AGE_USEC) && unlinkat(dfd, name, 0) == 0)
                msg_warn("maildrop/%s: removed an unfinished file older than one day", name);
}

/* Returns the number of files found (handled or not), or -1 when maildrop could not be read. */
static int scan(struct pickup *p)
{
        int dfd = queue_dirfd(p->queue, QUEUE_MAILDROP);
        int dup_fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
        if (dup_fd < 0) {
                msg_warn("maildrop: %s", strerror(errno));
                return -1;
        }
        DIR *d = fdopendir(dup_fd);
        if (!d) {
                close(dup_fd);
                return -1;
        }
        rewinddir(d);
        struct strv names = STRV_INIT;
        struct dirent *de;
        while ((de = readdir(d)) && names.n < PICKUP_SCAN_MAX) {
                if (de->d_name[0] == '.') {
                        if (strncmp(de->d_name, QUEUE_TMP_PREFIX, strlen(QUEUE_TMP_PREFIX)) == 0)
                                remove_stale_tmp(dfd, de->d_name);
                        continue;
                }
                if (!queue_id_valid(de->d_name)) {
                        msg_warn("maildrop/%s: not a queue file name; left alone", de->d_name);
                        continue;
                }
                strv_push(&names, de->d_name);
        }
        closedir(d);
        for (size_t i = 0; i < names.n; i++)
                if (pickup_file(p, dfd, names.v[i]) == RETRY_LATER)
                        break; /* cleanup is unavailable: the next wakeup tries again */
        int found = (int)names.n;
        strv_done(&names);
        if (found > 0)
                p->last_file = time(NULL);
        return found;
}

static int pickup_init(struct service *s)
{
        struct pickup *p = service_userdata(s);
        struct config *cfg = service_config(s);
        const char *qdir = config_get(cfg, "queue_directory");
        int r = queue_open(qdir, &p->queue);
        if (r < 0) {
                msg_error("open queue directory %s: %s", qdir, strerror(-r));
                return r;
        }
        p->queue_dir = xstrdup(qdir);
        long long lim = config_get_int(cfg, "message_size_limit");
        p->max_content = lim > 0 ? (uint64_t)lim : QFILE_MAX_CONTENT_LEN;
        p->content_filter = xstrdup(config_get(cfg, "content_filter"));
        p->receive_override = xstrdup(config_get(cfg, "receive_override_options"));
        p->cleanup_timeout_ms = mail_proto_cleanup_timeout_ms(config_get_time(cfg, "ipc_timeout"));
        struct passwd *pw = getpwnam(config_get(cfg, "mail_owner"));
        if (pw) {
                p->mail_owner = pw->pw_uid;
                p->have_mail_owner = true;
        }
        scan(p);
        return 0;
}

static void pickup_wakeup(struct service *s)
{
        struct pickup *p = service_userdata(s);
        if (scan(p) == 0 &&
            (p->last_file == 0 || time(NULL) - p->last_file >= USEC_TO_SEC(PICKUP_LINGER_USEC)))
                service_request_exit(s);
}

int main(int argc, char **argv)
{
        static struct pickup p;
        const struct service_ops ops = {
                .init = pickup_init,
                .on_wakeup = pickup_wakeup,
                .max_connections = 1,
                .userdata = &p,
        };
        return service_main(argc, argv, &ops);
}
