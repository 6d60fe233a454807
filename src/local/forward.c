/* forward.c: .forward and :include: files read as their user, forward_path macros, forwarding via cleanup.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "cleanup_client.h"
#include "fileio.h"
#include "local.h"
#include "log.h"
#include "mail_proto.h"

/* The reading child's "not a regular file" (no errno says it). */
#define EFTYPE_LOCAL 100000

/* What the reading child reports before the content. */
struct file_head {
        int err; /* 0 or a positive errno */
        uid_t owner;
        mode_t mode;
        size_t len;
};

_noreturn_ static void read_child(const char *path, const struct local_privs *p, int out)
{
        struct file_head h = {0};
        char *data = NULL;
        int gr = p->user ? initgroups(p->user, p->gid) : setgroups(1, &p->gid);
        int fd = -1;
        struct stat st;
        if (gr < 0 || setgid(p->gid) < 0 || setuid(p->uid) < 0 || (p->uid != 0 && setuid(0) == 0))
                h.err = errno ? errno : EPERM;
        else if ((fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)) < 0)
                h.err = errno;
        else if (fstat(fd, &st) < 0)
                h.err = errno;
        else if (!S_ISREG(st.st_mode))
                h.err = EFTYPE_LOCAL;
        else {
                h.owner = st.st_uid;
                h.mode = st.st_mode;
                data = xmalloc(LOCAL_LIST_FILE_MAX);
                while (h.len < LOCAL_LIST_FILE_MAX) {
                        ssize_t n = read(fd, data + h.len, LOCAL_LIST_FILE_MAX - h.len);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0)
                                h.err = errno;
                        if (n <= 0)
                                break;
                        h.len += (size_t)n;
                }
                if (h.len == LOCAL_LIST_FILE_MAX)
                        h.err = EFBIG;
        }
        if (h.err)
                h.len = 0;
        if (write_full(out, &h, sizeof h) < 0 || (h.len && write_full(out, data, h.len) < 0))
                _exit(1);
        _exit(0);
}

int forward_read_file(const char *path, const struct local_privs *p, char **ret_content, uid_t *ret_owner,
                      mode_t *ret_mode, char **ret_why)
{
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) < 0) {
                *ret_why = xasprintf("cannot create pipe: %s", strerror(errno));
                return -errno;
        }
        pid_t pid = fork();
        if (pid < 0) {
                int e = errno;
                close(fds[0]);
                close(fds[1]);
                *ret_why = xasprintf("cannot fork: %s", strerror(e));
                return -e;
        }
        if (pid == 0) {
                close(fds[0]);
                read_child(path, p, fds[1]);
        }
        close(fds[1]);
        struct file_head h;
        int r = read_full(fds[0], &h, sizeof h);
        char *data = NULL;
        if (r == 0 && h.err == 0 && h.len <= LOCAL_LIST_FILE_MAX) {
                data = xmalloc(h.len + 1);
                r = read_full(fds[0], data, h.len);
                data[h.len] = '\0';
        }
        close(fds[0]);
        int wst;
        while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
                ;
        if (r < 0) {
                free(data);
                *ret_why = xasprintf("cannot read %s: reading process failed", path);
                return -EIO;
        }
        if (h.err) {
                free(data);
                if (h.err == ENOENT || h.err == ENOTDIR)
                        return -ENOENT;
                *ret_why = h.err == EFTYPE_LOCAL ? xasprintf("%s is not a regular file", path)
                           : h.err == EFBIG
                                   ? xasprintf("%s is larger than %u bytes", path, LOCAL_LIST_FILE_MAX - 1)
                                   : xasprintf("cannot open %s: %s", path, strerror(h.err));
                return -h.err;
        }
        *ret_content = data;
        *ret_owner = h.owner;
        *ret_mode = h.mode;
        return 0;
}

/* One ${...} or $(...) body: "name", "name?text" (text when name has a value), "name:text" (when not). */
static int expand_braced(struct buf *out, const char *body, size_t n, macro_lookup_fn lookup, void *userdata)
{
        size_t k = strcspn(body, "?:");
        _cleanup_free_ char *key = xstrndup(body, k < n ? k : n);
        const char *v = *key ? lookup(userdata, key) : NULL;
        if (k >= n) {
                if (isempty(v))
                        return -ENOENT;
                buf_puts(out, v);
                return 0;
        }
        /* The text is literal: no nested macros. */
        if ((body[k] == '?') == !isempty(v))
                buf_append(out, body + k + 1, n - k - 1);
        return 0;
}

char *local_expand(const char *tmpl, macro_lookup_fn lookup, void *userdata)
{
        struct buf out = BUF_INIT;
        for (const char *p = tmpl; *p;) {
                if (*p != '$') {
                        buf_putc(&out, *p++);
                        continue;
                }
                p++;
                if (*p == '{' || *p == '(') {
                        const char *e = strchr(p + 1, *p == '{' ? '}' : ')');
                        if (!e || expand_braced(&out, p + 1, (size_t)(e - p - 1), lookup, userdata) < 0)
                                goto undefined;
                        p = e + 1;
                        continue;
                }
                const char *name = p;
                while (isalnum((unsigned char)*p) || *p == '_')
                        p++;
                _cleanup_free_ char *key = xstrndup(name, (size_t)(p - name));
                const char *v = *key ? lookup(userdata, key) : NULL;
                if (isempty(v))
                        goto undefined;
                buf_puts(&out, v);
        }
        buf_putc(&out, '\0');
        return buf_steal(&out);
undefined:
        buf_done(&out);
        return NULL;
}

static int send_rcpts(struct cleanup_client *c, const struct qfile_rcpt *orig, const struct strv *rcpts)
{
        char notify[8];
        snprintf(notify, sizeof notify, "%u", orig->notify & 15u);
        int r = 0;
        /* One {req=rcpt} each: a forward has at most ALIAS_TARGETS_MAX addresses, far below any limit. */
        for (size_t i = 0; r == 0 && i < rcpts->n; i++) {
                struct ipc_kv kv[4] = {{"req", "rcpt", 4}, {"rcpt", rcpts->v[i], strlen(rcpts->v[i])}};
                size_t n = 2;
                if (!isempty(orig->orcpt))
                        kv[n++] = (struct ipc_kv){"orcpt", orig->orcpt, strlen(orig->orcpt)};
                if (orig->notify)
                        kv[n++] = (struct ipc_kv){"notify", notify, strlen(notify)};
                r = cleanup_client_send_kv(c, kv, n);
        }
        return r;
}

int forward_submit(struct local *l, const struct local_message *m, const struct qfile_rcpt *orig,
                   const struct strv *rcpts, const char *delivered_to, char **ret_id, char **ret_why)
{
        struct cleanup_client c = CLEANUP_CLIENT_INIT;
        long long status = -1;
        _cleanup_free_ char *reason = NULL; /* before every goto: clang refuses to jump past it */
        /* Locally generated mail for cleanup, as Postfix's local resubmits a forward. */
        int r = cleanup_client_open(&c, l->queue_dir, "local", USEC_TO_MS(LOCAL_CLEANUP_STEP_USEC), ret_why);
        if (r < 0)
                goto done;
        r = send_rcpts(&c, orig, rcpts);
        if (r == 0) {
                /* No uid: the copy is the mail system's, not a user's submission ("from userid"). */
                const struct ipc_kv kv[] = {{"req", "envelope", 8},
                                            {"sender", m->sender, strlen(m->sender)}};
                r = cleanup_client_send_kv(&c, kv, ELEMENTSOF(kv));
        }
        if (r == 0) {
                _cleanup_free_ char *head = xasprintf("Delivered-To: %s\n", delivered_to);
                r = cleanup_client_send_content(&c, head, strlen(head));
        }
        if (r == 0)
                r = cleanup_client_send_content(&c, m->content, m->content_len);
        if (r < 0) {
                *ret_why = xasprintf("cannot send the message to cleanup: %s", strerror(-r));
                goto done;
        }
        r = cleanup_client_finish(&c, l->cleanup_timeout_ms, &status, &reason);
        if (r < 0 || status != 0) {
                *ret_why = xasprintf("cleanup did not queue the forwarded message: %s",
                                     r < 0 ? strerror(-r) : (reason ?: "no reason"));
                r = r < 0 ? r : -EIO;
                goto done;
        }
        *ret_id = TAKE_PTR(c.queue_id);
        r = 0;
done:
        cleanup_client_close(&c);
        return r;
}
