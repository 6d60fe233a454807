/* deliver.c: one virtual mailbox recipient: its mailbox and ids from the tables, then the delivery as it. */
#include <ctype.h>
#include <errno.h>
#include <sys/resource.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "virtual_agent.h"

bool virtual_delivered_to(const char *content, size_t len, const char *rcpt)
{
        size_t rl = strlen(rcpt);
        const char *p = content, *end = content + len;
        for (size_t n = 0; p < end && n < VIRTUAL_HEADERS_SCAN_MAX; n++) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                const char *eol = nl ? nl : end;
                if (eol == p)
                        break; /* the empty line before the body */
                if ((size_t)(eol - p) >= 13 && strncasecmp(p, "Delivered-To:", 13) == 0) {
                        const char *v = p + 13, *ve = eol;
                        while (v < ve && isspace((unsigned char)*v))
                                v++;
                        while (ve > v && isspace((unsigned char)ve[-1]))
                                ve--;
                        if ((size_t)(ve - v) == rl && strncasecmp(v, rcpt, rl) == 0)
                                return true;
                }
                p = nl ? nl + 1 : end;
        }
        return false;
}

char *virtual_mailbox_path(const char *base, const char *value)
{
        while (*value == ' ' || *value == '\t')
                value++;
        /* Postfix prepends the base to every value: "/alice/" is under it too. */
        while (!isempty(base) && *value == '/')
                value++;
        if (!*value || (isempty(base) && value[0] != '/'))
                return NULL;
        for (const char *p = value; (p = strstr(p, "..")); p += 2)
                if ((p == value || p[-1] == '/') && (p[2] == '/' || p[2] == '\0'))
                        return NULL;
        if (isempty(base))
                return xstrdup(value);
        size_t bl = strlen(base);
        return xasprintf("%.*s/%s", (int)(bl > 1 && base[bl - 1] == '/' ? bl - 1 : bl), base, value);
}

/* A numeric id from a table (static:N or a per-address entry). 1 found, 0 none, <0 failure/bad value. */
static int lookup_id(struct maps *m, const char *addr, long long *ret)
{
        if (!m)
                return 0;
        _cleanup_free_ char *v = NULL;
        int r = maps_find_address(m, addr, false, &v);
        if (r <= 0)
                return r;
        char *end = NULL;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (errno || end == v || *end != '\0' || n < 0 || n > (long long)UINT32_MAX - 1)
                return -EINVAL;
        *ret = n;
        return 1;
}

/* Effective ids of the recipient for the writes; the real ids stay root's, so restore() can undo it. */
static int become(uid_t uid, gid_t gid)
{
        if (setgroups(1, &gid) < 0 || setegid(gid) < 0 || seteuid(uid) < 0)
                return -errno;
        return 0;
}

static void restore(void)
{
        if (seteuid(0) < 0 || setegid(0) < 0 || setgroups(0, NULL) < 0)
                msg_fatal("cannot return to root after a delivery: %s", strerror(errno));
}

/* Ids of rcpt from virtual_uid_maps / virtual_gid_maps, with virtual_minimum_uid; false and *ret set. */
static bool recipient_ids(struct virtual_agent *v, const char *rcpt, uid_t *uid, gid_t *gid,
                          struct agent_verdict *ret)
{
        long long u = 0, g = 0;
        int r = lookup_id(v->uid_maps, rcpt, &u);
        if (r <= 0) {
                agent_verdict_set(ret, AGENT_DEFERRED, "4.3.0",
                                  r == 0 ? "recipient %s: no user ID in virtual_uid_maps"
                                         : "recipient %s: virtual_uid_maps lookup failed or gave no number",
                                  rcpt);
                return false;
        }
        if (u < v->minimum_uid) {
                agent_verdict_set(
                        ret, AGENT_DEFERRED, "4.3.0",
                        "recipient %s: user ID %lld is below virtual_minimum_uid (%lld): mail system "
                        "configuration error",
                        rcpt, u, v->minimum_uid);
                return false;
        }
        r = lookup_id(v->gid_maps, rcpt, &g);
        if (r <= 0) {
                agent_verdict_set(ret, AGENT_DEFERRED, "4.3.0",
                                  r == 0 ? "recipient %s: no group ID in virtual_gid_maps"
                                         : "recipient %s: virtual_gid_maps lookup failed or gave no number",
                                  rcpt);
                return false;
        }
        *uid = (uid_t)u;
        *gid = (gid_t)g;
        return true;
}

void virtual_deliver(void *userdata, const struct delivery_request *dr, const struct qfile_msg *msg,
                     const struct qfile_rcpt *rcpt, struct agent_verdict *ret)
{
        struct virtual_agent *v = userdata;
        const char *addr = rcpt->address;
        if (virtual_delivered_to(msg->content, msg->content_len, addr)) {
                agent_verdict_set(ret, AGENT_BOUNCED, "5.4.6", "mail forwarding loop for %s", addr);
                return;
        }
        _cleanup_free_ char *mailbox = NULL;
        int r = resolve_virtual_mailbox_find(v->resolve, addr, &mailbox);
        if (r < 0) {
                agent_verdict_set(ret, AGENT_DEFERRED, "4.3.0", "virtual_mailbox_maps lookup failure");
                return;
        }
        if (r == 0) {
                agent_verdict_set(ret, AGENT_BOUNCED, "5.1.1", "unknown user: \"%s\"", addr);
                return;
        }
        _cleanup_free_ char *path = virtual_mailbox_path(v->base, mailbox);
        if (!path) {
                agent_verdict_set(
                        ret, AGENT_DEFERRED, "4.3.0",
                        "virtual_mailbox_maps: bad mailbox \"%s\" for %s: no \"..\" components, and an "
                        "absolute path when virtual_mailbox_base (\"%s\") is empty",
                        mailbox, addr, v->base);
                return;
        }
        uid_t uid;
        gid_t gid;
        if (!recipient_ids(v, addr, &uid, &gid, ret))
                return;
        const struct virtual_message m = {.queue_id = dr->queue_id,
                                          .sender = msg->sender ? msg->sender : "",
                                          .rcpt = addr,
                                          .content = msg->content,
                                          .content_len = msg->content_len};
        r = become(uid, gid);
        if (r < 0) {
                restore();
                agent_verdict_set(
                        ret, AGENT_DEFERRED, "4.3.0",
                        "cannot take user ID %u / group ID %u: %s (master.cf: the unpriv column of "
                        "\"virtual\" must be n)",
                        (unsigned)uid, (unsigned)gid, strerror(-r));
                return;
        }
        /* virtual_mailbox_limit, as Postfix: no mailbox or Maildir file grows past it (EFBIG: bounced). */
        struct rlimit was, lim;
        bool limited = v->mailbox_limit > 0 && getrlimit(RLIMIT_FSIZE, &was) == 0;
        if (limited) {
                lim = (struct rlimit){.rlim_cur = (rlim_t)v->mailbox_limit, .rlim_max = was.rlim_max};
                if (was.rlim_max != RLIM_INFINITY && lim.rlim_cur > was.rlim_max)
                        lim.rlim_cur = was.rlim_max;
                limited = setrlimit(RLIMIT_FSIZE, &lim) == 0;
        }
        size_t len = strlen(path);
        if (path[len - 1] == '/') {
                path[len - 1] = '\0';
                virtual_maildir(path, v->hostname, &m, ret);
        } else
                virtual_mbox(path, &m, ret);
        if (limited)
                (void)setrlimit(RLIMIT_FSIZE, &was);
        restore();
}
