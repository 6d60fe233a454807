/* request.c: one delivery request from qmgr: loop checks, aliases, per-recipient delivery, marks, reply. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "agent.h"
#include "alloc.h"
#include "delivery_request.h"
#include "ipc.h"
#include "local.h"
#include "log.h"

/* What the headers say about loops: the Received: count and the Delivered-To: values. */
struct loop_info {
        long long received;
        struct strv delivered_to;
};

/* Pure scan of the header section (up to the first empty line); continuation lines belong to the header. */
static void scan_headers(const char *content, size_t len, struct loop_info *ret)
{
        const char *p = content, *end = content + len;
        for (size_t n = 0; p < end && n < LOCAL_HEADERS_SCAN_MAX; n++) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                const char *eol = nl ? nl : end;
                if (eol == p)
                        break; /* the empty line before the body */
                size_t l = (size_t)(eol - p);
                if (l >= 9 && strncasecmp(p, "Received:", 9) == 0)
                        ret->received++;
                else if (l >= 13 && strncasecmp(p, "Delivered-To:", 13) == 0) {
                        const char *v = p + 13, *ve = eol;
                        while (v < ve && isspace((unsigned char)*v))
                                v++;
                        while (ve > v && isspace((unsigned char)ve[-1]))
                                ve--;
                        strv_push_take(&ret->delivered_to, xstrndup(v, (size_t)(ve - v)));
                }
                p = nl ? nl + 1 : end;
        }
}

struct request {
        struct local *l;
        const char *queue_id;
        struct qfile_msg *msg;
        struct loop_info loops;
        struct delivery_times times;
};

static int alias_lookup(void *userdata, const char *key, char **ret)
{
        struct local *l = userdata;
        return maps_find(l->aliases, key, ret);
}

static int alias_is_local(void *userdata, const char *domain)
{
        struct local *l = userdata;
        return resolve_domain_is_local(l->resolve, domain);
}

static void log_result(struct request *rq, const char *to, const char *orig_to,
                       const struct local_status *st, const char *sent_text)
{
        struct delivery_times t = rq->times;
        t.done_usec = delivery_now_usec();
        const char *status = st->result == LOCAL_SENT      ? "sent"
                             : st->result == LOCAL_BOUNCED ? "bounced"
                                                           : "deferred";
        delivery_log(rq->queue_id, to, orig_to, "local", &t, st->dsn, status,
                     st->result == LOCAL_SENT ? sent_text : st->reason);
}

/* ---- one recipient's expansion ---- */

/* Everything one queue recipient turns into: delivered in turn, remote addresses collected to forward. */
struct rcpt_ctx {
        struct request *rq;
        const struct qfile_rcpt *rcpt;
        const char *addr, *orig;
        char *base; /* addr's local part, folded: the name that is the recipient itself */
        struct local_message lm;
        struct strv seen;   /* destinations handled ("m:user", "c:cmd", ...): each at most once */
        struct strv remote; /* addresses to forward through cleanup */
        struct local_status total;
        bool first, relayed;
        unsigned destinations;
};

/* Who a destination found in one place runs as, and the address it is delivered for. */
struct origin {
        enum local_class cls;
        struct local_privs privs;
        const char *addr; /* to= of the log line, RECIPIENT of a command */
};

/* A passwd entry's strings, kept: getpwnam's storage is reused by the next lookup. */
struct account {
        char *name, *home, *shell;
        uid_t uid;
        gid_t gid;
};

static void account_done(struct account *a)
{
        free(a->name);
        free(a->home);
        free(a->shell);
        *a = (struct account){0};
}

static void account_from(struct account *a, const struct passwd *pw)
{
        *a = (struct account){.name = xstrdup(pw->pw_name),
                              .home = xstrdup(pw->pw_dir),
                              .shell = xstrdup(pw->pw_shell ? pw->pw_shell : ""),
                              .uid = pw->pw_uid,
                              .gid = pw->pw_gid};
}

static struct local_privs account_privs(const struct account *a)
{
        return (struct local_privs){
                .uid = a->uid, .gid = a->gid, .user = a->name, .home = a->home, .shell = a->shell};
}

static void rcpt_result(struct rcpt_ctx *c, const char *to, const struct local_status *st,
                        const char *sent_text)
{
        const char *orig = streq(to, c->addr) ? c->rcpt->orig_rcpt : c->orig;
        log_result(c->rq, to, orig, st, sent_text);
        local_status_merge(&c->total, st, &c->first);
}

static void rcpt_fail(struct rcpt_ctx *c, const char *to, enum local_result result, const char *dsn,
                      const char *fmt, ...) _printf_(5, 6);
static void rcpt_fail(struct rcpt_ctx *c, const char *to, enum local_result result, const char *dsn,
                      const char *fmt, ...)
{
        struct local_status st = {0};
        char text[LOCAL_REASON_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
        local_status_set(&st, result, dsn, "%s", text);
        rcpt_result(c, to, &st, NULL);
}

/* True the first time a destination comes up: each is delivered once per recipient. */
static bool first_time(struct rcpt_ctx *c, char kind, const char *value)
{
        _cleanup_free_ char *key = xasprintf("%c:%s", kind, value);
        for (size_t i = 0; i < c->seen.n; i++)
                if (streq(c->seen.v[i], key))
                        return false;
        strv_push(&c->seen, key);
        return true;
}

/* Bounded: a .forward or :include: chain cannot go on for ever nor fan out without end. */
static bool within_limits(struct rcpt_ctx *c, const char *to, unsigned depth)
{
        if (depth > ALIAS_DEPTH_MAX) {
                rcpt_fail(c, to, LOCAL_BOUNCED, "5.4.6", "mail forwarding loop for %s (nesting too deep)",
                          c->addr);
                return false;
        }
        if (++c->destinations > ALIAS_TARGETS_MAX) {
                rcpt_fail(c, to, LOCAL_BOUNCED, "5.4.6",
                          "mail forwarding loop for %s (too many destinations)", c->addr);
                return false;
        }
        return true;
}

/* The parts of an address as local(8)'s macros and command environment name them. */
struct addr_parts {
        char *local, *user, *extension, *domain;
        const char *recipient;
};

static void addr_parts_split(struct local *l, const char *addr, struct addr_parts *ret)
{
        const char *at = strrchr(addr, '@');
        ret->recipient = addr;
        ret->local = at ? xstrndup(addr, (size_t)(at - addr)) : xstrdup(addr);
        ret->domain = xstrdup(at ? at + 1 : "");
        ret->user = local_strip_extension(ret->local, l->recipient_delimiter);
        size_t n = strlen(ret->user);
        ret->extension = xstrdup(ret->local[n] ? ret->local + n + 1 : "");
}

static void addr_parts_done(struct addr_parts *a)
{
        free(a->local);
        free(a->user);
        free(a->extension);
        free(a->domain);
}

struct macro_data {
        struct local *l;
        const struct addr_parts *a;
        const char *home, *shell;
};

static const char *macro_value(void *userdata, const char *name)
{
        const struct macro_data *d = userdata;
        return streq(name, "home")                  ? d->home
               : streq(name, "user")                ? d->a->user
               : streq(name, "extension")           ? d->a->extension
               : streq(name, "recipient_delimiter") ? d->l->recipient_delimiter
               : streq(name, "domain")              ? d->a->domain
               : streq(name, "local")               ? d->a->local
               : streq(name, "recipient")           ? d->a->recipient
               : streq(name, "shell")               ? d->shell
                                                    : NULL;
}

/* The environment of a command, as local(8) sets it, plus export_environment. */
static void command_env(struct rcpt_ctx *c, const struct origin *o, struct strv *env)
{
        struct local *l = c->rq->l;
        struct addr_parts a;
        addr_parts_split(l, o->addr, &a);
        strv_push_take(env, xasprintf("HOME=%s", o->privs.home ? o->privs.home : "/"));
        strv_push_take(env, xasprintf("USER=%s", a.user));
        strv_push_take(env, xasprintf("LOGNAME=%s", a.user));
        strv_push_take(env, xasprintf("SHELL=%s", !isempty(o->privs.shell) ? o->privs.shell : "/bin/sh"));
        strv_push_take(env, xasprintf("SENDER=%s", c->lm.sender));
        strv_push_take(env, xasprintf("RECIPIENT=%s", o->addr));
        strv_push_take(env, xasprintf("LOCAL=%s", a.local));
        strv_push_take(env, xasprintf("DOMAIN=%s", a.domain));
        strv_push_take(env, xasprintf("EXTENSION=%s", a.extension));
        strv_push_take(env, xasprintf("ORIGINAL_RECIPIENT=%s", c->orig));
        strv_push(env, "PATH=/usr/bin:/bin");
        for (size_t i = 0; i < l->export_env.n; i++)
                strv_push(env, l->export_env.v[i]);
        addr_parts_done(&a);
}

static void deliver_command(struct rcpt_ctx *c, const struct origin *o, const char *command, unsigned depth)
{
        _cleanup_free_ char *to = xstrdup(o->addr);
        if (!first_time(c, 'c', command) || !within_limits(c, to, depth))
                return;
        if (!(c->rq->l->commands_allowed & o->cls)) {
                rcpt_fail(c, to, LOCAL_BOUNCED, "5.7.1",
                          "mail to command is restricted (allow_mail_to_commands)");
                return;
        }
        struct strv env = STRV_INIT;
        command_env(c, o, &env);
        struct local_status st = {0};
        command_deliver(c->rq->l, &c->lm, command, &o->privs, env.v, &st);
        strv_done(&env);
        rcpt_result(c, to, &st, st.reason);
}

static void deliver_file(struct rcpt_ctx *c, const struct origin *o, const char *path, unsigned depth)
{
        _cleanup_free_ char *to = xstrdup(o->addr);
        if (!first_time(c, 'f', path) || !within_limits(c, to, depth))
                return;
        /* As Postfix logs it: the address whose list named the file, the path in the reason. */
        struct local_status st = {0};
        if (!(c->rq->l->files_allowed & o->cls))
                local_status_set(&st, LOCAL_BOUNCED, "5.7.1",
                                 "mail to files is restricted (allow_mail_to_files)");
        else {
                mailbox_deliver_file(c->rq->l, &c->lm, path, o->privs.uid, o->privs.gid, &st);
                if (st.result == LOCAL_SENT)
                        snprintf(st.reason, sizeof st.reason, "delivered to %s: %s",
                                 path[strlen(path) - 1] == '/' ? "maildir" : "file", path);
        }
        rcpt_result(c, to, &st, st.reason);
}

static void deliver_name(struct rcpt_ctx *c, const char *name, unsigned depth);
static void deliver_user(struct rcpt_ctx *c, const char *name, bool skip_forward, unsigned depth);
static void deliver_list(struct rcpt_ctx *c, const struct origin *o, const char *text, const char *self,
                         unsigned depth);

static void deliver_include(struct rcpt_ctx *c, const struct origin *o, const char *path, unsigned depth)
{
        if (!first_time(c, 'i', path) || !within_limits(c, o->addr, depth))
                return;
        _cleanup_free_ char *content = NULL, *why = NULL;
        uid_t owner;
        mode_t mode;
        int r = forward_read_file(path, &o->privs, &content, &owner, &mode, &why);
        if (r < 0) {
                if (r == -ENOENT)
                        rcpt_fail(c, o->addr, LOCAL_BOUNCED, "5.3.0", "cannot open include file %s: %s",
                                  path, strerror(ENOENT));
                else
                        rcpt_fail(c, o->addr, LOCAL_DEFERRED, "4.3.0", "include file %s: %s", path, why);
                return;
        }
        if (mode & S_IWOTH) {
                rcpt_fail(c, o->addr, LOCAL_DEFERRED, "4.3.0", "include file %s is world writable", path);
                return;
        }
        /* Files and commands in it run as its owner (the alias's or user's rights when root owns it). */
        struct origin inc = *o;
        inc.cls = LOCAL_CLASS_INCLUDE;
        struct account acc = {0};
        struct passwd *pw = owner != 0 ? getpwuid(owner) : NULL;
        if (pw) {
                account_from(&acc, pw);
                inc.privs = account_privs(&acc);
        }
        deliver_list(c, &inc, content, NULL, depth + 1);
        account_done(&acc);
}

/* An address from a .forward, an :include: file or luser_relay: local ones delivered here, others forwarded.
 */
static void deliver_address(struct rcpt_ctx *c, const char *address, const char *self, unsigned depth)
{
        struct local *l = c->rq->l;
        bool mailbox_only = address[0] == '\\';
        _cleanup_free_ char *name = xstrdup(address + (mailbox_only ? 1 : 0));
        char *at = strrchr(name, '@');
        if (at) {
                int local = resolve_domain_is_local(l->resolve, at + 1);
                if (local < 0) {
                        rcpt_fail(c, c->addr, LOCAL_DEFERRED, "4.3.0",
                                  "cannot resolve %s: table lookup failure", address);
                        return;
                }
                if (!local) {
                        if (first_time(c, 'r', name) && within_limits(c, name, depth))
                                strv_push(&c->remote, name);
                        return;
                }
                *at = '\0';
        }
        for (char *p = name; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        if (!*name)
                return;
        /* "\user", or a user naming itself in its own .forward: that user's mailbox. */
        if (mailbox_only || (self && streq(name, self)))
                deliver_user(c, name, true, depth + 1);
        else
                deliver_name(c, name, depth + 1);
}

/* The members of a .forward or :include: file (comma or line separated, # comment lines). */
static void deliver_list(struct rcpt_ctx *c, const struct origin *o, const char *text, const char *self,
                         unsigned depth)
{
        struct buf joined = BUF_INIT;
        for (const char *p = text; *p;) {
                size_t n = strcspn(p, "\n");
                const char *q = p;
                while (q < p + n && isspace((unsigned char)*q))
                        q++;
                if (*q != '#') {
                        buf_append(&joined, p, n);
                        buf_putc(&joined, ',');
                }
                p += n + (p[n] == '\n');
        }
        struct strv members = STRV_INIT;
        int r = alias_split(buf_str(&joined), &members);
        buf_done(&joined);
        if (r < 0)
                rcpt_fail(c, o->addr, LOCAL_BOUNCED, "5.4.6",
                          "mail forwarding loop for %s (too many destinations)", c->addr);
        for (size_t i = 0; r >= 0 && i < members.n; i++) {
                const char *m = members.v[i];
                if (m[0] == '|')
                        deliver_command(c, o, m + 1, depth);
                else if (m[0] == '/')
                        deliver_file(c, o, m, depth);
                else if (strncasecmp(m, ":include:", 9) == 0)
                        deliver_include(c, o, m + 9, depth);
                else
                        deliver_address(c, m, self, depth);
        }
        strv_done(&members);
}

/* The log address of a local user: the recipient itself, or user@$myorigin when reached through a list. */
static char *user_address(struct rcpt_ctx *c, const char *user)
{
        return streq(user, c->base) ? xstrdup(c->addr) : xasprintf("%s@%s", user, c->rq->l->myorigin);
}

static void deliver_mailbox(struct rcpt_ctx *c, const struct account *acc, const char *to, unsigned depth)
{
        struct local *l = c->rq->l;
        if (!first_time(c, 'm', acc->name) || !within_limits(c, to, depth))
                return;
        struct local_status st = {0};
        if (!isempty(l->mailbox_command)) {
                /* mailbox_command instead of the mbox/Maildir write: always allowed, it is the admin's. */
                struct origin o = {.cls = LOCAL_CLASS_FORWARD, .privs = account_privs(acc), .addr = to};
                struct strv env = STRV_INIT;
                command_env(c, &o, &env);
                command_deliver(l, &c->lm, l->mailbox_command, &o.privs, env.v, &st);
                strv_done(&env);
                rcpt_result(c, to, &st, st.reason);
                return;
        }
        struct passwd pw = {
                .pw_name = acc->name, .pw_dir = acc->home, .pw_uid = acc->uid, .pw_gid = acc->gid};
        const char *how = "delivered to mailbox";
        mailbox_deliver_user(l, &c->lm, &pw, &st, &how);
        rcpt_result(c, to, &st, how);
}

/* The first forward_path file that exists: 1 used (its members delivered), 0 none, <0 deferred. */
static int deliver_forward(struct rcpt_ctx *c, const struct account *acc, const struct addr_parts *a,
                           const char *to, unsigned depth)
{
        struct local *l = c->rq->l;
        struct macro_data md = {.l = l, .a = a, .home = acc->home, .shell = acc->shell};
        struct origin o = {.cls = LOCAL_CLASS_FORWARD, .privs = account_privs(acc), .addr = to};
        for (size_t i = 0; i < l->forward_path.n; i++) {
                _cleanup_free_ char *path = local_expand(l->forward_path.v[i], macro_value, &md);
                if (!path)
                        continue;
                _cleanup_free_ char *content = NULL, *why = NULL;
                uid_t owner;
                mode_t mode;
                int r = forward_read_file(path, &o.privs, &content, &owner, &mode, &why);
                if (r == -ENOENT)
                        continue;
                if (r < 0) {
                        rcpt_fail(c, to, LOCAL_DEFERRED, "4.3.0", "cannot read forward file: %s", why);
                        return r;
                }
                /* Only the user's own file, and one nobody else can change, may redirect their mail. */
                if (owner != acc->uid) {
                        msg_warn("%s: file %s has bad owner uid %u: ignored", c->rq->queue_id, path,
                                 (unsigned)owner);
                        continue;
                }
                if (mode & (S_IWGRP | S_IWOTH)) {
                        msg_warn("%s: file %s is group or world writable: ignored", c->rq->queue_id, path);
                        continue;
                }
                struct strv probe = STRV_INIT;
                int k = alias_split(content, &probe);
                bool empty = k == 0 && probe.n == 0;
                strv_done(&probe);
                if (empty)
                        continue;
                deliver_list(c, &o, content, acc->name, depth + 1);
                return 1;
        }
        return 0;
}

/* A local user: luser_relay when unknown, else its .forward, else mailbox_command or the mailbox. */
static void deliver_user(struct rcpt_ctx *c, const char *name, bool skip_forward, unsigned depth)
{
        struct local *l = c->rq->l;
        _cleanup_free_ char *to = user_address(c, name);
        struct addr_parts a;
        addr_parts_split(l, to, &a);
        errno = 0;
        struct passwd *pw = getpwnam(a.user);
        if (!pw) {
                if (errno != 0 && errno != ENOENT && errno != ESRCH)
                        rcpt_fail(c, to, LOCAL_DEFERRED, "4.3.0", "user lookup failed: %s", strerror(errno));
                else if (!isempty(l->luser_relay) && !c->relayed) {
                        struct macro_data md = {.l = l, .a = &a};
                        _cleanup_free_ char *relay = local_expand(l->luser_relay, macro_value, &md);
                        c->relayed = true; /* once: an unknown relay target bounces */
                        if (relay)
                                deliver_address(c, relay, NULL, depth);
                        else
                                rcpt_fail(c, to, LOCAL_BOUNCED, "5.1.1", "unknown user: \"%s\"", a.user);
                } else
                        rcpt_fail(c, to, LOCAL_BOUNCED, "5.1.1", "unknown user: \"%s\"", a.user);
                addr_parts_done(&a);
                return;
        }
        struct account acc;
        account_from(&acc, pw);
        /* A user reached twice (a .forward loop) gets the mail in its mailbox. */
        if (skip_forward || !first_time(c, 'u', acc.name) || deliver_forward(c, &acc, &a, to, depth) == 0)
                deliver_mailbox(c, &acc, to, depth);
        account_done(&acc);
        addr_parts_done(&a);
}

/* A local name through the alias tables; each destination delivered with the aliases' rights. */
static void deliver_name(struct rcpt_ctx *c, const char *name, unsigned depth)
{
        struct local *l = c->rq->l;
        _cleanup_free_ char *addr = user_address(c, name);
        if (depth > ALIAS_DEPTH_MAX) {
                rcpt_fail(c, addr, LOCAL_BOUNCED, "5.4.6", "mail forwarding loop for %s (nesting too deep)",
                          c->addr);
                return;
        }
        if (!l->aliases) {
                rcpt_fail(c, addr, LOCAL_DEFERRED, "4.3.0", "alias database unavailable");
                return;
        }
        struct alias_list targets;
        int r = alias_expand(name, l->recipient_delimiter, alias_lookup, alias_is_local, l, &targets);
        if (r < 0) {
                if (r == -ELOOP || r == -E2BIG)
                        rcpt_fail(c, addr, LOCAL_BOUNCED, "5.4.6", "mail forwarding loop for %s (%s)",
                                  c->addr,
                                  r == -ELOOP ? "alias nesting too deep" : "too many alias destinations");
                else
                        rcpt_fail(c, addr, LOCAL_DEFERRED, "4.3.0", "alias database lookup failure");
                return;
        }
        if (targets.n == 0)
                rcpt_fail(c, addr, LOCAL_BOUNCED, "5.4.6", "mail forwarding loop for %s", c->addr);
        struct account owner = {0};
        struct passwd *pw = getpwuid(l->alias_uid);
        if (pw)
                account_from(&owner, pw);
        struct origin o = {.cls = LOCAL_CLASS_ALIAS,
                           .privs = {.uid = l->alias_uid,
                                     .gid = l->alias_gid,
                                     .user = NULL,
                                     .home = owner.home,
                                     .shell = owner.shell},
                           .addr = addr};
        for (size_t i = 0; i < targets.n; i++) {
                const struct alias_target *t = &targets.v[i];
                switch (t->kind) {
                case ALIAS_USER: deliver_user(c, t->value, false, depth + 1); break;
                case ALIAS_FILE: deliver_file(c, &o, t->value, depth + 1); break;
                case ALIAS_COMMAND: deliver_command(c, &o, t->value, depth + 1); break;
                case ALIAS_INCLUDE: deliver_include(c, &o, t->value, depth + 1); break;
                case ALIAS_REMOTE:
                        if (first_time(c, 'r', t->value) && within_limits(c, t->value, depth + 1))
                                strv_push(&c->remote, t->value);
                        break;
                }
        }
        account_done(&owner);
        alias_list_done(&targets);
}

/*
 * The addresses collected for other hosts, in one new message through cleanup. Only when nothing else of
 * this recipient was deferred: a retry then forwards once, not again for each attempt.
 *
 * Crash safety: the caller marks the recipient done (fsync'd) only after cleanup answered that the copy
 * is durably queued, so a crash before that answer forwards again on the next attempt, never loses it.
 * The window left is a crash after cleanup's commit and before that mark (microseconds: one fdatasync
 * of the status byte): the recipient is still pending, and the next attempt queues a second copy. That
 * can only duplicate, never lose, as with Postfix's local.
 */
static void forward_remote(struct rcpt_ctx *c)
{
        if (c->remote.n == 0)
                return;
        struct local_status st = {0};
        if (!c->first && c->total.result == LOCAL_DEFERRED) {
                local_status_set(&st, LOCAL_DEFERRED, "4.3.0",
                                 "forwarding waits until the other destinations of %s are delivered",
                                 c->addr);
                for (size_t i = 0; i < c->remote.n; i++)
                        rcpt_result(c, c->remote.v[i], &st, NULL);
                return;
        }
        _cleanup_free_ char *id = NULL, *why = NULL;
        int r = forward_submit(c->rq->l, &c->lm, c->rcpt, &c->remote, c->addr, &id, &why);
        if (r < 0)
                local_status_set(&st, LOCAL_DEFERRED, "4.3.0", "%s", why);
        else
                local_status_set(&st, LOCAL_SENT, "2.0.0", "forwarded as %s", id);
        for (size_t i = 0; i < c->remote.n; i++)
                rcpt_result(c, c->remote.v[i], &st, st.reason);
}

static void deliver_rcpt(struct request *rq, const struct qfile_rcpt *rcpt, struct local_attempt *attempt,
                         struct local_status *total)
{
        struct local *l = rq->l;
        const char *addr = rcpt->address;
        const char *orig = !isempty(rcpt->orig_rcpt) ? rcpt->orig_rcpt : addr;

        if (l->hopcount_limit > 0 && rq->loops.received > l->hopcount_limit) {
                local_status_set(total, LOCAL_BOUNCED, "5.4.6", "mail forwarding loop");
                log_result(rq, addr, orig, total, NULL);
                return;
        }
        for (size_t i = 0; i < rq->loops.delivered_to.n; i++)
                if (strcasecmp(rq->loops.delivered_to.v[i], addr) == 0) {
                        local_status_set(total, LOCAL_BOUNCED, "5.4.6", "mail forwarding loop for %s", addr);
                        log_result(rq, addr, orig, total, NULL);
                        return;
                }
        struct rcpt_ctx c = {.rq = rq,
                             .rcpt = rcpt,
                             .addr = addr,
                             .orig = orig,
                             .lm = {.attempt = attempt,
                                    .queue_id = rq->queue_id,
                                    .sender = rq->msg->sender,
                                    .rcpt = addr,
                                    .content = rq->msg->content,
                                    .content_len = rq->msg->content_len,
                                    .arrival_usec = rq->msg->arrival_usec},
                             .first = true};
        const char *at = strrchr(addr, '@');
        _cleanup_free_ char *localpart = at ? xstrndup(addr, (size_t)(at - addr)) : xstrdup(addr);
        for (char *p = localpart; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        c.base = xstrdup(localpart);
        deliver_name(&c, localpart, 0);
        forward_remote(&c);
        if (c.first)
                local_status_set(&c.total, LOCAL_BOUNCED, "5.4.6", "mail forwarding loop for %s", addr);
        *total = c.total;
        free(c.base);
        strv_done(&c.seen);
        strv_done(&c.remote);
}

/*
 * Every requested recipient still to do is recorded as attempted: the attempt's time fixes its From_
 * lines and Maildir names, so that after a crash between a copy and the recipient's mark the retry finds
 * the copy instead of writing another (docs/QUEUE_FORMAT.md). The slots are written here and made
 * durable by one fdatasync before the first copy (mailbox.c: the mbox record's own, or one before a
 * Maildir write), so a request that writes no copy (a command, a forward, a bounce) pays none, and one
 * fdatasync covers the records of all its recipients. A recipient already attempted keeps its record:
 * this attempt looks for that one's copies. A version 1 file cannot hold the state: its recipients get
 * no record (att[i].rcpt NULL). 0, or a negative errno when a slot could not be written.
 */
static int record_attempts(struct request *rq, const struct delivery_request *dr, int qfd,
                           struct local_attempt *att, bool *unsynced)
{
        uint64_t now = delivery_now_usec();
        for (size_t i = 0; i < dr->n_rcpts && rq->msg->version >= 2; i++) {
                struct qfile_rcpt *rc = delivery_request_rcpt(&dr->rcpts[i], rq->msg);
                if (!rc || !qfile_rcpt_state_pending(rc->state))
                        continue;
                att[i] = (struct local_attempt){.qfd = qfd,
                                                .rcpt = rc,
                                                .index = dr->rcpts[i].index,
                                                .retry = true,
                                                .unsynced = unsynced};
                if (rc->state == QFILE_RCPT_ATTEMPTED)
                        continue;
                att[i].retry = false;
                rc->state = QFILE_RCPT_ATTEMPTED;
                rc->attempt_usec = now;
                rc->mbox_dev = rc->mbox_ino = rc->mbox_size = 0;
                int r = queue_write_rcpt_slot(qfd, rc, false);
                if (r < 0)
                        return r;
                *unsynced = true;
        }
        return 0;
}

/* Each requested recipient: a bad index, already done, or delivered, recorded and marked. */
static void deliver_all(struct request *rq, const struct delivery_request *dr, int qfd,
                        struct ipc_msg *reply)
{
        struct local *l = rq->l;
        _cleanup_free_ struct local_attempt *att = xcalloc(dr->n_rcpts ? dr->n_rcpts : 1, sizeof *att);
        bool unsynced = false;
        int r = record_attempts(rq, dr, qfd, att, &unsynced);
        if (r < 0) {
                msg_warn("%s: cannot record the delivery attempt: %s", rq->queue_id, strerror(-r));
                delivery_reply_defer_all(reply, dr, "cannot update queue file");
                return;
        }
        for (size_t i = 0; i < dr->n_rcpts; i++) {
                struct qfile_rcpt *rcpt = delivery_request_rcpt(&dr->rcpts[i], rq->msg);
                struct local_status st = {0};
                struct delivery_outcome o;
                if (!rcpt)
                        o = (struct delivery_outcome){DELIVERY_DEFERRED, "4.3.0", "bad recipient index"};
                else if (!delivery_rcpt_already_done(rcpt, &o)) {
                        /* deliver_rcpt logs; a deferral forced by the record or mark is only replied. */
                        deliver_rcpt(rq, rcpt, att[i].rcpt ? &att[i] : NULL, &st);
                        o = (struct delivery_outcome){(enum delivery_status)st.result, st.dsn, st.reason};
                        delivery_record_outcome(l->queue, qfd, rq->queue_id, dr->rcpts[i].index, rcpt,
                                                "local", &o);
                }
                delivery_reply_add(reply, dr->rcpts[i].text, &o);
        }
}

/* One request with its queue file open: the loop checks' header scan, then every recipient. */
static void serve_request(void *userdata, const struct delivery_request *dr, int qfd, struct qfile_msg *msg,
                          struct delivery_times *t, struct ipc_msg *reply)
{
        struct request rq = {.l = userdata, .queue_id = dr->queue_id, .msg = msg, .times = *t};
        scan_headers(msg->content, msg->content_len, &rq.loops);
        deliver_all(&rq, dr, qfd, reply);
        strv_done(&rq.loops.delivered_to);
}

void local_serve(struct local *l, int fd)
{
        agent_serve_request(l->queue, fd, serve_request, l);
}
