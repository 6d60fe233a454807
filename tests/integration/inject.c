/* inject.c: a message from stdin written as a finished queue file (see inject.h). */
#include "inject.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "qfile.h"

void inject_read_stdin(struct buf *out)
{
        char chunk[8192];
        for (;;) {
                size_t n = fread(chunk, 1, sizeof chunk, stdin);
                if (n == 0)
                        break;
                if (out->len + n > INJECT_CONTENT_MAX)
                        msg_fatal("message larger than %u bytes", INJECT_CONTENT_MAX);
                buf_append(out, chunk, n);
        }
}

uint64_t inject_now_usec(void)
{
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        return (uint64_t)now.tv_sec * 1000000ULL + (uint64_t)now.tv_nsec / 1000;
}

char *inject_queue_message(struct queue *q, struct config *c, const char *sender, char *const *rcpts,
                           size_t n_rcpts, const struct buf *content, uint64_t arrival_usec)
{
        struct qfile_msg m = {0};
        m.arrival_usec = arrival_usec;
        m.sender = (char *)sender;
        m.n_rcpts = n_rcpts;
        m.rcpts = xcalloc(n_rcpts ? n_rcpts : 1, sizeof *m.rcpts);
        for (size_t i = 0; i < n_rcpts; i++)
                m.rcpts[i].address = rcpts[i];
        m.protocol = (char *)"ESMTP";
        m.origin_queue = (char *)"incoming";
        m.message_size = content->len;
        m.has_message_size = true;
        m.ready = true;
        m.content = content->data ? content->data : "";
        m.content_len = content->len;

        struct queue_file *f = NULL;
        int r = queue_file_create(q, &f);
        if (r < 0)
                msg_fatal("create queue file: %s", strerror(-r));
        /* Written as root here, but qmgr and the agents (the mail owner) must be able to update it. */
        struct passwd *pw = getpwnam(config_get(c, "mail_owner"));
        if (pw && geteuid() == 0 && fchown(queue_file_fd(f), pw->pw_uid, pw->pw_gid) < 0)
                msg_fatal("chown queue file: %s", strerror(errno));
        r = queue_file_write(f, &m, 0);
        if (r >= 0)
                r = queue_file_commit(q, f);
        if (r < 0)
                msg_fatal("write queue file: %s", strerror(-r));
        char *id = xstrdup(queue_file_id(f));
        queue_file_free(f);
        free(m.rcpts);
        return id;
}
