/* session.c: one submission per connection: open, envelope, content, end (src/lib/proto/mail_proto.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "checks.h"
#include "cleanup.h"
#include "dsnlog.h"
#include "headers.h"
#include "ipc.h"
#include "log.h"
#include "mail_proto.h"
#include "dsn_notify.h"
#include "maps.h"
#include "metrics.h"
#include "milter.h"

enum session_state {
        STATE_OPEN,     /* waiting for {req=open} */
        STATE_ENVELOPE, /* queue file created, waiting for {req=envelope} */
        STATE_CONTENT,  /* {req=content} ... {req=end} */
        STATE_COMMIT,   /* the file is written and in the group commit */
        STATE_REPLIED,  /* the final answer is queued; the session ends once it is sent */
};

struct session {
        struct cleanup *c;
        int fd;
        struct ipc_conn conn;
        struct event_source *io;
        struct event_source *timer;
        enum session_state state;
        struct queue_file *file;
        uint64_t arrival_usec;
        enum metrics_counter origin_counter; /* what a queued message counts as (metrics.h) */
        bool local;
        bool internal;     /* a notification or forwarded mail: no content checks */
        bool in_commit;    /* the commit owns the file: the session may not go away before it is told */
        bool gone;         /* the client left or misbehaved: no answer, free after the commit */
        bool cancel_asked; /* the client gave up waiting for the commit ({req=abort} or EOF) */
        bool cancelled;    /* ... early enough: never queued, already answered */

        struct ipc_msg envelope; /* owns the attribute strings the queue file's fields point to */
        char *sender;            /* canonical */
        struct qfile_rcpt *rcpts;
        size_t n_rcpts, cap_rcpts;
        size_t n_envelope_rcpts; /* as submitted, before virtual alias expansion */
        uint64_t envelope_bytes;
        uint64_t received; /* content bytes received, for message_size_limit */
        /*
         * The content goes to the queue file as it arrives: only the header block is held (until its end
         * is known: at most header_size_limit plus one request), then the body passes through out, one
         * request at a time. So a session's memory does not grow with the message.
         */
        struct buf content;       /* the header block (and the start of the body) as received */
        struct headers_scan scan; /* how far the header block's end was looked for */
        bool in_body;             /* the header block is written; content goes straight to the file */
        struct headers_body body; /* line_length_limit splitting across requests */
        struct buf out;           /* what one request adds to the file */
        /*
         * Content inspection (checks.c). With body or MIME checks the body passes through raw (at most one
         * line is left there between requests), and the envelope is written only after the first
         * body_checks_size_limit bytes of body, so that body rules may still REDIRECT, BCC or FILTER.
         */
        bool checking, body_checking;
        struct checks_msg ck;
        struct buf raw;
        bool head_written;
        uint64_t body_in; /* body bytes taken so far */
        /* Local mail that a check rejected: queued with every recipient bounced, so the sender hears of it.
         */
        bool bounce_all;

        /* The milter conversation (smtpd_milters or non_smtpd_milters), until the end of the message. */
        struct milter_run *milter;
        struct milter_spec *milter_specs; /* the smtpd service's own -o smtpd_milters, when it has one */
        struct ipc_msg milter_facts; /* the first {req=rcpt_check}: who the client is, for the milters */
        size_t n_milter_specs;
        bool milter_discard, milter_hold;
        char milter_dsn[16]; /* a refusal's DSN: err_dsn points here */
        int reply_code;      /* a milter's own SMTP code for the next refusal sent (0: smtpd chooses) */

        /* A failure found before {req=end} is answered at {req=end}: the protocol has one reply there. */
        int err_status;
        const char *err_dsn;
        char *err_reason;
};

static void rcpt_done(struct qfile_rcpt *r)
{
        free(r->address);
        free(r->orig_rcpt);
        free(r->orcpt);
}

static void session_free(struct session *s)
{
        if (s->in_commit) {
                s->gone = true;
                event_source_set_enabled(s->io, EVENT_OFF);
                event_source_set_enabled(s->timer, EVENT_OFF);
                return;
        }
        struct service *svc = s->c->service;
        event_source_disable_unref(s->io);
        event_source_disable_unref(s->timer);
        ipc_conn_done(&s->conn);
        close(s->fd);
        queue_file_free(s->file); /* not committed: the half-made file goes */
        ipc_msg_done(&s->envelope);
        free(s->sender);
        for (size_t i = 0; i < s->n_rcpts; i++)
                rcpt_done(&s->rcpts[i]);
        free(s->rcpts);
        buf_done(&s->content);
        buf_done(&s->out);
        buf_done(&s->raw);
        checks_msg_done(&s->ck);
        milter_run_free(s->milter);
        milter_specs_free(s->milter_specs, s->n_milter_specs);
        ipc_msg_done(&s->milter_facts);
        free(s->err_reason);
        free(s);
        service_connection_done(svc);
}

static const char *qid(const struct session *s)
{
        return s->file ? queue_file_id(s->file) : "NOQUEUE";
}

/* Push out what is queued. Returns -1 when the session is gone (freed), else 0. */
static int session_flush(struct session *s)
{
        int r = ipc_conn_flush(&s->conn);
        if (r == -EAGAIN) {
                event_source_set_io_events(s->io, EPOLLIN | EPOLLOUT);
                return 0;
        }
        if (r < 0 || s->state == STATE_REPLIED) {
                /* One message per connection: after the final answer there is nothing left to do. */
                session_free(s);
                return -1;
        }
        event_source_set_io_events(s->io, EPOLLIN);
        return 0;
}

static int reply(struct session *s, int status, const char *dsn, const char *reason, const char *queue_id)
{
        struct ipc_msg m = IPC_MSG_INIT;
        int r = ipc_msg_add_int(&m, "status", status);
        if (r >= 0 && queue_id)
                r = ipc_msg_add_str(&m, "queue_id", queue_id);
        if (r >= 0 && dsn)
                r = ipc_msg_add_str(&m, "dsn", dsn);
        if (r >= 0 && reason)
                r = ipc_msg_add_str(&m, "reason", reason);
        if (r >= 0 && status && s->reply_code / 100 == status)
                r = ipc_msg_add_int(&m, "code", s->reply_code); /* a milter's 554, 421... */
        /* No answer at all rather than a partial one: the client then treats the message as not queued. */
        if (r >= 0)
                r = ipc_conn_queue(&s->conn, &m);
        ipc_msg_done(&m);
        if (r < 0) {
                msg_warn("%s: cannot encode the answer to the submitting client: %s", qid(s), strerror(-r));
                session_free(s);
                return -1;
        }
        return session_flush(s);
}

static int final_reply(struct session *s, int status, const char *dsn, const char *reason)
{
        s->state = STATE_REPLIED;
        return reply(s, status, dsn, reason, status == 0 ? queue_file_id(s->file) : NULL);
}

static int fail_later(struct session *s, int status, const char *dsn, const char *fmt, ...) _printf_(4, 5);
static int fail_later(struct session *s, int status, const char *dsn, const char *fmt, ...)
{
        if (s->err_status)
                return 0; /* the first cause is the one to report */
        va_list ap;
        va_start(ap, fmt);
        struct buf b = BUF_INIT;
        buf_vprintf(&b, fmt, ap);
        va_end(ap);
        s->err_status = status;
        s->err_dsn = dsn;
        s->err_reason = buf_steal(&b);
        /* Nothing of this message will be queued: drop what was kept. */
        buf_done(&s->content);
        buf_done(&s->out);
        buf_done(&s->raw);
        queue_file_free(s->file);
        s->file = NULL;
        return 0;
}

static int handle_open(struct session *s, const struct ipc_msg *m)
{
        const char *origin = ipc_msg_get_str(m, "origin");
        /* Submitted on this host: sendmail's mail, bounces, local's forwarded copies. */
        s->local = origin && (streq(origin, "pickup") || streq(origin, "bounce") || streq(origin, "local"));
        s->origin_counter = metrics_origin_counter(origin);
        /* Postfix inspects mail it makes itself only as internal_mail_filter_classes says (default: none);
         * forwarded mail was inspected when it arrived. */
        s->internal =
                origin && ((streq(origin, "bounce") && !s->c->checks.bounce) || streq(origin, "local"));
        s->arrival_usec = clock_usec(CLOCK_REALTIME);
        int r = queue_file_create(s->c->queue, &s->file);
        if (r < 0) {
                msg_warn("create queue file in %s/incoming: %s; check that the directory exists and "
                         "belongs to mail_owner (postfix check)",
                         queue_directory(s->c->queue), strerror(-r));
                s->state = STATE_REPLIED;
                return reply(s, 4, "4.3.0", "queue file write error", NULL);
        }
        s->state = STATE_ENVELOPE;
        return reply(s, 0, NULL, NULL, queue_file_id(s->file));
}

/* The envelope's notify attribute: the bits as a number, or the RFC 3461 words; 0 (default) if bad. */
static unsigned parse_notify(const char *v)
{
        char *end = NULL;
        if (*v >= '0' && *v <= '9') {
                unsigned long n = strtoul(v, &end, 10);
                return *end == '\0' && n <= 15 ? (unsigned)n : 0;
        }
        unsigned n = 0;
        return dsn_notify_parse(v, strlen(v), &n) == 0 ? n : 0;
}

/* ---- address maps: canonical (one-to-one) and virtual alias (one-to-many) ---- */

struct map_lookup {
        struct resolve *resolve;
        struct maps *maps; /* NULL: virtual_alias_maps through the resolver */
        const struct rewrite_opts *rewrite;
};

static int map_lookup(void *userdata, const char *address, char **ret_value)
{
        struct map_lookup *ml = userdata;
        if (!ml->maps)
                return resolve_virtual_alias_find(ml->resolve, address, ret_value);
        _cleanup_free_ char *domain = resolve_domain_of(address);
        int ours = domain ? resolve_domain_is_ours(ml->resolve, domain) : 1;
        if (ours < 0)
                return ours;
        return maps_find_address(ml->maps, address, ours > 0, ret_value);
}

/* Table values are canonicalised like submitted addresses: "user" becomes "user@$myorigin". */
static char *map_canon(void *userdata, const char *address)
{
        struct map_lookup *ml = userdata;
        return rewrite_address(ml->rewrite, address);
}

static struct virtual_ops map_ops(struct cleanup *c, struct map_lookup *ml)
{
        return (struct virtual_ops){
                .lookup = map_lookup,
                .canon = map_canon,
                .userdata = ml,
                .recursion_limit = c->virtual_recursion_limit,
                .expansion_limit = c->virtual_expansion_limit,
                .address_length_limit = c->virtual_address_length_limit,
        };
}

static int temporary_lookup_failure(struct session *s, const char *param, const char *address)
{
        msg_warn("%s: %s map lookup problem for %s -- message not accepted, try again later", qid(s), param,
                 address);
        return fail_later(s, 4, "4.3.0", "Error: temporary lookup failure in %s", param);
}

/* Rewrite *address through one canonical table parameter (when set). 0, or -1 after fail_later(). */
static int apply_canonical(struct session *s, struct table_param *t, char **address)
{
        if (table_param_empty(t) || !**address)
                return 0;
        struct maps *m = NULL;
        if (table_param_get(t, &m, NULL) < 0) {
                fail_later(s, 4, "4.3.0", "Error: temporary failure: %s cannot be opened", t->param);
                return -1;
        }
        struct map_lookup ml = {s->c->resolve, m, &s->c->rewrite};
        struct virtual_ops ops = map_ops(s->c, &ml);
        char *mapped = NULL;
        bool too_deep = false;
        if (virtual_map_one(&ops, *address, &mapped, &too_deep) < 0) {
                temporary_lookup_failure(s, t->param, *address);
                return -1;
        }
        if (too_deep)
                msg_warn("%s: unreasonable %s map nesting for %s (more than %u rewrites): using %s", qid(s),
                         t->param, *address, VIRTUAL_CANONICAL_NESTING_MAX, mapped);
        free(*address);
        *address = mapped;
        return 0;
}

/*
 * Expand recipient r through virtual_alias_maps into out (each result keeps r's original recipient,
 * ORCPT and NOTIFY). 0, or -1 after fail_later(): a table failure is temporary, an exceeded limit is
 * permanent (an alias loop does not heal by retrying).
 */
static int expand_virtual(struct session *s, const struct qfile_rcpt *r, struct qfile_rcpt **out,
                          size_t *n_out, size_t *cap)
{
        struct map_lookup ml = {s->c->resolve, NULL, &s->c->rewrite};
        struct virtual_ops ops = map_ops(s->c, &ml);
        struct virtual_result vr;
        int e = virtual_expand(&ops, r->address, &vr);
        if (e < 0) {
                if (vr.status == VIRTUAL_LOOKUP_FAILED)
                        temporary_lookup_failure(s, "virtual_alias_maps", vr.where);
                else {
                        const char *limit = virtual_status_limit_name(vr.status);
                        /* Temporary, as in Postfix: the sender's copy stays put until the table is fixed
                         * (a permanent error would leave sendmail's mail in saved/ with no notice). */
                        msg_warn("%s: virtual_alias_maps expansion of %s stopped at %s: %s exceeded -- "
                                 "message deferred",
                                 qid(s), r->address, vr.where, limit);
                        fail_later(s, 4, "4.6.0", "Error: virtual alias expansion of <%s>: %s exceeded",
                                   r->address, limit);
                }
                virtual_result_done(&vr);
                return -1;
        }
        for (size_t i = 0; i < vr.addresses.n; i++) {
                if (*n_out >= QFILE_MAX_RECIPIENTS) {
                        virtual_result_done(&vr);
                        fail_later(s, 5, "5.5.3", "too many recipients");
                        return -1;
                }
                if (strlen(vr.addresses.v[i]) > QFILE_MAX_ADDRESS_LEN) {
                        virtual_result_done(&vr);
                        fail_later(s, 5, "5.1.3", "recipient address too long");
                        return -1;
                }
                if (*n_out == *cap) {
                        *cap = *cap ? 2 * *cap : 8;
                        *out = xrealloc(*out, *cap * sizeof **out);
                }
                (*out)[(*n_out)++] = (struct qfile_rcpt){
                        .address = xstrdup(vr.addresses.v[i]),
                        .orig_rcpt = r->orig_rcpt ? xstrdup(r->orig_rcpt) : NULL,
                        .orcpt = r->orcpt ? xstrdup(r->orcpt) : NULL,
                        .notify = r->notify,
                };
        }
        virtual_result_done(&vr);
        return 0;
}

static const char *env(const struct session *s, const char *name);
static int milter_start(struct session *s, const struct ipc_msg *facts, const char *sender);
static int milter_feed(struct session *s);
static void milter_finish(struct session *s);
static int milter_outcome(struct session *s);

/* Whether the submitting service's receive_override_options (a re-injection listener's) name option. */
static bool option_listed(const char *v, const char *option)
{
        size_t n = strlen(option);
        for (const char *p = v; p && *p;) {
                p += strspn(p, ", \t");
                size_t w = strcspn(p, ", \t");
                if (w == n && strncmp(p, option, n) == 0)
                        return true;
                p += w;
        }
        return false;
}

static bool overridden(const struct session *s, const char *option)
{
        return option_listed(env(s, "receive_override"), option);
}

/* canonical maps for the sender and each recipient, then virtual_alias_maps for each recipient. */
static int apply_address_maps(struct session *s)
{
        struct cleanup *c = s->c;
        if (!c->address_maps || overridden(s, "no_address_mappings"))
                return 0;
        if (!cleanup_resolver(c))
                return fail_later(s, 4, "4.3.0",
                                  "Error: temporary failure: the address resolver cannot be "
                                  "opened (mydestination, transport_maps, virtual_alias_maps)");
        if (c->sender_canonical_envelope && apply_canonical(s, &c->sender_canonical_maps, &s->sender) < 0)
                return -1;
        if (c->canonical_envelope_sender && apply_canonical(s, &c->canonical_maps, &s->sender) < 0)
                return -1;
        for (size_t i = 0; i < s->n_rcpts; i++) {
                if (c->recipient_canonical_envelope &&
                    apply_canonical(s, &c->recipient_canonical_maps, &s->rcpts[i].address) < 0)
                        return -1;
                if (c->canonical_envelope_recipient &&
                    apply_canonical(s, &c->canonical_maps, &s->rcpts[i].address) < 0)
                        return -1;
        }
        if (isempty(config_get(c->config, "virtual_alias_maps")))
                return 0;
        struct qfile_rcpt *out = NULL;
        size_t n_out = 0, cap = 0;
        for (size_t i = 0; i < s->n_rcpts; i++)
                if (expand_virtual(s, &s->rcpts[i], &out, &n_out, &cap) < 0) {
                        for (size_t k = 0; k < n_out; k++)
                                rcpt_done(&out[k]);
                        free(out);
                        return -1;
                }
        for (size_t i = 0; i < s->n_rcpts; i++)
                rcpt_done(&s->rcpts[i]);
        free(s->rcpts);
        s->rcpts = out;
        s->n_rcpts = n_out;
        s->cap_rcpts = cap;
        return 0;
}

/* Whether an envelope attribute holds an address (limit QFILE_MAX_ADDRESS_LEN, DSN 5.1.3). */
static bool is_address_attr(const char *name)
{
        return streq(name, "sender") || streq(name, "rcpt") || streq(name, "orcpt");
}

/* The common checks of every envelope attribute, and its share of the size limit. 0, or fail_later(). */
static int check_envelope_attr(struct session *s, const struct ipc_attr *a)
{
        bool address = is_address_attr(a->name);
        if (strlen(a->value) != a->value_len) {
                fail_later(s, 5, "5.5.4", "invalid envelope: NUL byte in %s", a->name);
                return -1;
        }
        if (a->value_len > (address ? QFILE_MAX_ADDRESS_LEN : QFILE_MAX_ATTR_VALUE_LEN)) {
                fail_later(s, 5, address ? "5.1.3" : "5.5.4", "invalid envelope: %s too long", a->name);
                return -1;
        }
        s->envelope_bytes += a->value_len;
        return 0;
}

/*
 * A recipient attribute (rcpt, or orcpt/notify of the rcpt just before it in the same message); first
 * says whether rcpt came earlier in this message. 0, or -1 after fail_later().
 */
static int add_rcpt_attr(struct session *s, const struct ipc_attr *a, bool *seen_rcpt)
{
        if (streq(a->name, "rcpt")) {
                if (s->n_rcpts >= QFILE_MAX_RECIPIENTS) {
                        fail_later(s, 5, "5.5.3", "too many recipients");
                        return -1;
                }
                if (!*a->value) {
                        fail_later(s, 5, "5.1.3", "invalid envelope: empty recipient");
                        return -1;
                }
                if (s->n_rcpts == s->cap_rcpts) {
                        s->cap_rcpts = s->cap_rcpts ? 2 * s->cap_rcpts : 8;
                        s->rcpts = xrealloc(s->rcpts, s->cap_rcpts * sizeof *s->rcpts);
                }
                struct qfile_rcpt *r = &s->rcpts[s->n_rcpts++];
                *r = (struct qfile_rcpt){.orig_rcpt = xstrdup(a->value)};
                r->address = rewrite_address(&s->c->rewrite, a->value);
                if (strlen(r->address) > QFILE_MAX_ADDRESS_LEN) {
                        fail_later(s, 5, "5.1.3", "recipient address too long");
                        return -1;
                }
                *seen_rcpt = true;
                return 0;
        }
        /* orcpt/notify: a group never straddles two messages (ipc_batch), so its rcpt is in this one. */
        if (!*seen_rcpt) {
                fail_later(s, 5, "5.5.4", "invalid envelope: %s before rcpt", a->name);
                return -1;
        }
        struct qfile_rcpt *r = &s->rcpts[s->n_rcpts - 1];
        if (streq(a->name, "orcpt")) {
                free(r->orcpt);
                r->orcpt = xstrdup(a->value);
        } else
                r->notify = parse_notify(a->value);
        return 0;
}

static bool is_rcpt_attr(const char *name)
{
        return streq(name, "rcpt") || streq(name, "orcpt") || streq(name, "notify");
}

/* {req=rcpt, rcpt=.. [orcpt] [notify] ...}: recipients sent ahead of the envelope, any number of times. */
static int handle_rcpts(struct session *s, const struct ipc_msg *m)
{
        bool seen_rcpt = false;
        for (size_t i = 0; i < m->n_attrs && !s->err_status; i++) {
                const struct ipc_attr *a = &m->attrs[i];
                if (!is_rcpt_attr(a->name))
                        continue; /* req, and what a newer source may add */
                if (check_envelope_attr(s, a) < 0 || add_rcpt_attr(s, a, &seen_rcpt) < 0)
                        return 0;
        }
        return 0;
}

static int handle_envelope(struct session *s, struct ipc_msg *m)
{
        struct cleanup *c = s->c;
        const char *sender = NULL;
        bool seen_rcpt = false;

        s->envelope = *m; /* keep the strings: the queue file's fields point into it */
        *m = (struct ipc_msg)IPC_MSG_INIT;
        if (s->err_status)
                return 0; /* a {req=rcpt} before failed: that is the answer */

        for (size_t i = 0; i < s->envelope.n_attrs; i++) {
                const struct ipc_attr *a = &s->envelope.attrs[i];
                if (check_envelope_attr(s, a) < 0)
                        return 0;
                if (streq(a->name, "sender")) {
                        if (sender)
                                return fail_later(s, 5, "5.5.4", "invalid envelope: more than one sender");
                        sender = a->value;
                } else if (is_rcpt_attr(a->name) && add_rcpt_attr(s, a, &seen_rcpt) < 0)
                        return 0;
        }
        if (!sender)
                return fail_later(s, 5, "5.5.4", "invalid envelope: no sender");
        if (s->n_rcpts == 0)
                return fail_later(s, 5, "5.5.4", "invalid envelope: no recipient");
        s->sender = rewrite_address(&c->rewrite, sender);
        s->n_envelope_rcpts = s->n_rcpts;
        if (s->milter ? milter_outcome(s) < 0 : milter_start(s, &s->envelope, sender) < 0)
                return 0; /* (a conversation that {req=rcpt_check} started has had its RCPTs) */
        if (apply_address_maps(s) < 0 || s->err_status)
                return 0;
        if (strlen(s->sender) > QFILE_MAX_ADDRESS_LEN)
                return fail_later(s, 5, "5.1.7", "sender address too long");
        for (size_t i = 0; i < s->n_rcpts; i++)
                if (strlen(s->rcpts[i].address) > QFILE_MAX_ADDRESS_LEN)
                        return fail_later(s, 5, "5.1.3", "recipient address too long");
        return 0;
}

static const char *env(const struct session *s, const char *name)
{
        const char *v = ipc_msg_get_str(&s->envelope, name);
        return isempty(v) ? NULL : v;
}

/*
 * hopcount_limit, as Postfix: a message that already carries that many Received: headers has been
 * passed around in a loop (two MTAs relaying to each other); refuse it for good, so that the sending
 * side returns it to its sender instead of passing it on forever. Answered at {req=end}.
 */
static int reject_loop(struct session *s, unsigned hops)
{
        struct log_fields lf = {.queue_id = queue_file_id(s->file)};
        msg_fields(LOG_LEVEL_INFO, &lf,
                   "%s: reject: %u Received: headers, hopcount_limit is %lld: 5.4.6 too many hops (mail "
                   "loop); from=<%s> nrcpt=%zu",
                   queue_file_id(s->file), hops, s->c->hopcount_limit, s->sender, s->n_rcpts);
        return fail_later(s, 5, "5.4.6", "Error: too many hops"); /* the file goes: never acknowledged */
}

static int write_error(struct session *s, int r)
{
        struct log_fields lf = {.queue_id = queue_file_id(s->file)};
        msg_fields(LOG_LEVEL_WARNING, &lf, "%s: write queue file: %s%s", queue_file_id(s->file),
                   strerror(-r),
                   r == -EINVAL ? "" : "; check free space and permissions of queue_directory");
        return fail_later(s, 4, "4.3.0", "queue file write error");
}

static void headers_opts_of(const struct session *s, struct headers_opts *ho)
{
        struct cleanup *c = s->c;
        long long uid = -1;
        if (ipc_msg_get_int(&s->envelope, "uid", &uid) < 0)
                uid = -1;
        *ho = (struct headers_opts){
                .queue_id = queue_file_id(s->file),
                .myhostname = c->myhostname,
                .local = s->local,
                .uid = uid,
                .helo_name = env(s, "helo_name"),
                .client_name = env(s, "client_name"),
                .client_address = env(s, "client_address"),
                .protocol = env(s, "protocol"),
                .tls = env(s, "tls"),
                .auth_sender = env(s, "sasl_header") ? env(s, "sasl_username") : NULL,
                .single_rcpt = s->n_envelope_rcpts == 1 ? s->rcpts[0].orig_rcpt : NULL,
                .sender = s->sender,
                .sender_full_name = env(s, "full_name"),
                .rewrite = &c->rewrite,
                .now = time(NULL),
                .header_size_limit = c->header_size_limit,
                .line_length_limit = c->line_length_limit,
        };
}

/* Everything of the queue file but the content: the envelope is complete before the content starts. */
static int begin_file(struct session *s)
{
        static const char *const extra_names[] = {"client_port", "uid", "smtputf8", "tls",
                                                  /* content_filter, as smtpd or pickup got it: qmgr's */
                                                  "filter"};
        /* One more: a FILTER action's "filter", which replaces content_filter's. */
        struct qfile_attr extra[ELEMENTSOF(extra_names) + 1];
        size_t n_extra = 0;
        for (size_t i = 0; i < ELEMENTSOF(extra_names); i++)
                if (env(s, extra_names[i]) && !(s->ck.res.filter && streq(extra_names[i], "filter")))
                        extra[n_extra++] =
                                (struct qfile_attr){(char *)extra_names[i], (char *)env(s, extra_names[i])};
        /* FILTER transport:destination, for the queue manager (content_filter's per-message form). */
        if (s->ck.res.filter)
                extra[n_extra++] = (struct qfile_attr){(char *)"filter", s->ck.res.filter};
        /* SIZE as the client announced it; without it readers take the content's length, which is only
         * known at the end, after the attributes are written. */
        long long size = -1;
        bool has_size = ipc_msg_get_int(&s->envelope, "size", &size) == 0 && size >= 0;
        struct qfile_msg qm = {
                .arrival_usec = s->arrival_usec,
                .sender = s->sender,
                .rcpts = s->rcpts,
                .n_rcpts = s->n_rcpts,
                .client_name = (char *)env(s, "client_name"),
                .client_address = (char *)env(s, "client_address"),
                .helo_name = (char *)env(s, "helo_name"),
                .protocol = (char *)env(s, "protocol"),
                .sasl_username = (char *)env(s, "sasl_username"),
                .envelope_id = (char *)env(s, "envid"),
                .origin_queue = "incoming",
                .message_size = has_size ? (uint64_t)size : 0,
                .has_message_size = has_size,
                .ready = true,
                .extra = extra,
                .n_extra = n_extra,
        };
        return queue_file_begin(s->file, &qm);
}

/* Write what out holds to the file. 0, or fail_later(). */
static int flush_out(struct session *s)
{
        if (s->milter && milter_feed(s) < 0)
                return 0; /* refused or discarded: nothing more is written */
        int r = queue_file_append(s->file, s->out.data, s->out.len);
        buf_truncate(&s->out, 0);
        return r < 0 ? write_error(s, r) : 0;
}

static bool check_header_cb(void *userdata, const char *hdr, size_t len, struct buf *out)
{
        struct session *s = userdata;
        return checks_header(&s->ck, hdr, len, out);
}

/* "from host[addr]; from=<s> to=<r> proto=ESMTP helo=<h>", the context of Postfix's content log lines. */
static char *checks_log_ctx(const struct session *s)
{
        struct buf b = BUF_INIT;
        if (s->local)
                buf_puts(&b, "from local");
        else
                buf_printf(&b, "from %s[%s]", env(s, "client_name") ? env(s, "client_name") : "unknown",
                           env(s, "client_address") ? env(s, "client_address") : "unknown");
        const struct qfile_rcpt *r = s->n_rcpts ? &s->rcpts[0] : NULL;
        buf_printf(&b, "; from=<%s> to=<%s>", s->sender ? s->sender : "",
                   r ? (r->orig_rcpt ? r->orig_rcpt : r->address) : "");
        if (env(s, "protocol"))
                buf_printf(&b, " proto=%s", env(s, "protocol"));
        if (env(s, "helo_name"))
                buf_printf(&b, " helo=<%s>", env(s, "helo_name"));
        return buf_steal(&b);
}

/* A recipient that content checks add (REDIRECT, BCC); NOTIFY=NEVER for a BCC, as Postfix's always_bcc. */
static int add_checks_rcpt(struct session *s, const char *address, unsigned notify)
{
        char *canon = rewrite_address(&s->c->rewrite, address);
        if (strlen(canon) > QFILE_MAX_ADDRESS_LEN || s->n_rcpts >= QFILE_MAX_RECIPIENTS) {
                free(canon);
                return fail_later(s, 5, "5.1.3", "content checks: recipient address too long or too many");
        }
        if (s->n_rcpts == s->cap_rcpts) {
                s->cap_rcpts = s->cap_rcpts ? 2 * s->cap_rcpts : 8;
                s->rcpts = xrealloc(s->rcpts, s->cap_rcpts * sizeof *s->rcpts);
        }
        s->rcpts[s->n_rcpts++] =
                (struct qfile_rcpt){.address = canon, .orig_rcpt = xstrdup(address), .notify = notify};
        return 0;
}

/* REDIRECT replaces every recipient, BCC adds some: applied just before the envelope is written. */
static int apply_checks_envelope(struct session *s)
{
        struct checks_result *res = &s->ck.res;
        if (res->redirect) {
                for (size_t i = 0; i < s->n_rcpts; i++)
                        rcpt_done(&s->rcpts[i]);
                s->n_rcpts = 0;
                if (add_checks_rcpt(s, res->redirect, 0) < 0)
                        return -1;
        }
        for (size_t i = 0; i < res->bcc.n; i++)
                if (add_checks_rcpt(s, res->bcc.v[i], QFILE_NOTIFY_NEVER) < 0)
                        return -1;
        return 0;
}

/*
 * What the checks decided so far, then out to the file. The envelope is written once the body checks can
 * no longer change it (eof, or body_checks_size_limit bytes of body seen); until then out keeps the
 * header block and the start of the body. A discarded message is read to its end but never written.
 */
static int write_out(struct session *s, bool eof)
{
        struct checks_result *res = &s->ck.res;
        /* The SMTP client is told at the end of DATA; a local sender gets a bounce, as from Postfix. */
        if (res->status == 5 && s->local)
                s->bounce_all = true;
        else if (res->status)
                return fail_later(s, res->status, res->dsn, "%s", res->reason);
        if (res->discard || s->milter_discard) {
                buf_truncate(&s->out, 0);
                return 0;
        }
        if (!s->head_written) {
                uint64_t hold = s->c->checks.body_size_limit < CLEANUP_ENVELOPE_HOLD_MAX
                                        ? s->c->checks.body_size_limit
                                        : CLEANUP_ENVELOPE_HOLD_MAX;
                if (!eof && s->body_checking && s->body_in < hold)
                        return 0;
                if (apply_checks_envelope(s) < 0)
                        return 0;
                int r = begin_file(s);
                if (r < 0)
                        return write_error(s, r);
                s->head_written = true;
                res->envelope_written = true;
        }
        return flush_out(s);
}

/* Body bytes as received: line_length_limit splitting, then the body and MIME checks when there are any. */
static void put_body(struct session *s, const char *p, size_t n)
{
        s->body_in += n;
        if (!s->body_checking) {
                headers_body_put(&s->body, p, n, &s->out);
                return;
        }
        headers_body_put(&s->body, p, n, &s->raw);
        checks_body(&s->ck, &s->raw, &s->out, false);
}

/*
 * Once the end of the header block is in what was received (or eof: nothing more comes), process the
 * headers (header_checks included), and switch to passing the body through.
 */
static int start_body(struct session *s, bool eof)
{
        struct cleanup *c = s->c;
        const char *in = s->content.data ? s->content.data : "";
        size_t end;
        if (!headers_block_end(&s->scan, in, s->content.len, c->header_size_limit, eof, &end))
                return 0;
        struct headers_opts ho;
        headers_opts_of(s, &ho);
        s->checking = !s->internal && !overridden(s, "no_header_body_checks") && checks_conf_any(&c->checks);
        s->body_checking = s->checking && checks_conf_body(&c->checks);
        if (s->checking) {
                checks_msg_init(&s->ck, &c->checks, queue_file_id(s->file), checks_log_ctx(s));
                ho.check_header = check_header_cb;
                ho.check_userdata = s;
        }
        struct headers_result hr;
        buf_truncate(&s->out, 0);
        headers_build_header(&ho, in, s->content.len, &s->out, &hr);
        struct log_fields lf = {.queue_id = queue_file_id(s->file)};
        msg_fields(LOG_LEVEL_INFO, &lf, "%s: message-id=%s", queue_file_id(s->file), hr.message_id);
        unsigned hops = hr.n_received;
        size_t body_offset = hr.body_offset;
        headers_result_done(&hr);
        if (c->hopcount_limit > 0 && hops >= c->hopcount_limit)
                return reject_loop(s, hops);
        if (s->checking)
                checks_headers_done(&s->ck);

        s->in_body = true;
        headers_body_init(&s->body, &ho);
        put_body(s, in + body_offset, s->content.len - body_offset);
        buf_done(&s->content); /* the header block is in out now */
        return write_out(s, false);
}

static int handle_content(struct session *s, const struct ipc_msg *m)
{
        const struct ipc_attr *data = ipc_msg_find(m, "data");
        if (s->err_status || !data)
                return 0;
        uint64_t limit = s->c->message_size_limit ? s->c->message_size_limit : CLEANUP_CONTENT_HARD_MAX;
        if (limit > CLEANUP_CONTENT_HARD_MAX)
                limit = CLEANUP_CONTENT_HARD_MAX;
        if (s->envelope_bytes + s->received + data->value_len > limit) {
                msg_info("%s: reject: message size exceeds message_size_limit (%" PRIu64 " bytes)", qid(s),
                         limit);
                return fail_later(s, 5, "5.3.4", "message file too big");
        }
        s->received += data->value_len;
        if (!s->in_body) {
                buf_append(&s->content, data->value, data->value_len);
                return start_body(s, false);
        }
        put_body(s, data->value, data->value_len);
        return write_out(s, false);
}

/*
 * Local mail that a check rejected: every recipient is marked bounced in the file and recorded in
 * bounce/QID before the commit, so that qmgr asks the bounce service for the sender's notice at once.
 */
static int bounce_all(struct session *s)
{
        const struct checks_result *res = &s->ck.res;
        const char *id = queue_file_id(s->file);
        int r = queue_file_mark_all(s->file, QFILE_RCPT_BOUNCED, clock_usec(CLOCK_REALTIME), res->dsn);
        for (size_t i = 0; r >= 0 && i < s->n_rcpts; i++)
                r = dsnlog_append_rcpt(s->c->queue, QUEUE_BOUNCE, id, i, &s->rcpts[i], res->dsn, "none",
                                       res->reason);
        if (r < 0)
                (void)dsnlog_remove_one(s->c->queue, QUEUE_BOUNCE, id, 0);
        return r;
}

/* ---- milters (milter.h, docs/CONTENT_INSPECTION.md "Milters") ---- */

/* "QID: milter-reject: END-OF-MESSAGE from host[addr]: 5.7.1 text; from=<s> to=<r> proto=P helo=<h>" */
static void milter_log(struct session *s, const char *what, const char *detail)
{
        _cleanup_free_ char *ctx = checks_log_ctx(s);
        const char *semi = strstr(ctx, "; ");
        int head = semi ? (int)(semi - ctx) : (int)strlen(ctx);
        struct log_fields lf = {.queue_id = qid(s)};
        msg_fields(LOG_LEVEL_INFO, &lf, "%s: milter-%s: %s %.*s: %s%s", qid(s), what,
                   milter_run_verdict(s->milter)->stage, head, ctx, detail, semi ? semi : "");
}

/* The verdict so far: 0 to go on, else -1 once the message is refused (fail_later) or discarded. */
static int milter_outcome(struct session *s)
{
        struct milter_verdict *v = milter_run_verdict(s->milter);
        if (v->status) {
                _cleanup_free_ char *d = xasprintf("%s %s", v->dsn, v->text);
                milter_log(s, "reject", d);
                snprintf(s->milter_dsn, sizeof s->milter_dsn, "%s", v->dsn);
                if (!s->err_status)
                        s->reply_code = v->code;
                fail_later(s, v->status, s->milter_dsn, "%s", v->text);
                return -1;
        }
        if (v->discard) {
                milter_log(s, "discard", "milter triggers DISCARD action");
                s->milter_discard = true;
                buf_truncate(&s->out, 0);
                return -1;
        }
        return 0;
}

/* An attribute of the message that says who the client is (the envelope, or the first rcpt_check). */
static const char *fact(const struct ipc_msg *m, const char *name)
{
        const char *v = ipc_msg_get_str(m, name);
        return isempty(v) ? NULL : v;
}

/* smtpd_milters for mail from smtpd, non_smtpd_milters for local submissions (sendmail). */
static void milter_list(struct session *s, const struct ipc_msg *facts, const struct milter_spec **ret,
                        size_t *ret_n)
{
        const struct milter_conf *mc = &s->c->milters;
        *ret_n = 0;
        if (s->internal || option_listed(fact(facts, "receive_override"), "no_milters"))
                return; /* forwarded mail, and bounces unless internal_mail_filter_classes has bounce */
        /* smtpd's own smtpd_milters: a listener's -o smtpd_milters=... applies, as in Postfix. */
        const struct ipc_attr *own = s->local ? NULL : ipc_msg_find(facts, "milters");
        if (own) {
                struct milter_spec *v;
                bool owned;
                milter_specs_for(mc, own->value, &v, ret_n, &owned);
                if (owned) {
                        s->milter_specs = v;
                        s->n_milter_specs = *ret_n;
                }
                *ret = v;
                return;
        }
        *ret = s->local ? mc->non_smtpd : mc->smtpd;
        *ret_n = s->local ? mc->n_non_smtpd : mc->n_smtpd;
}

/* Connect, HELO and MAIL; facts (which must outlive the conversation) says who the client is. */
static void milter_begin(struct session *s, const struct ipc_msg *facts, const char *sender,
                         const struct milter_spec *specs, size_t n)
{
        struct cleanup *c = s->c;
        struct milter_facts f = {
                .queue_id = queue_file_id(s->file),
                .myhostname = c->myhostname,
                .daemon_name = c->milters.daemon_name,
                .daemon_addr = fact(facts, "server_address"),
                .v = c->milters.v,
                .client_name = s->local ? "localhost" : fact(facts, "client_name"),
                .client_addr = s->local ? "127.0.0.1" : fact(facts, "client_address"),
                .client_port = s->local ? NULL : fact(facts, "client_port"),
                .helo = s->local ? NULL : fact(facts, "helo_name"),
                .tls = fact(facts, "tls"),
                .auth_type = fact(facts, "sasl_method"),
                .auth_authen = fact(facts, "sasl_username"),
                .sender = sender,
                .protocol = fact(facts, "protocol"),
                .local = s->local,
        };
        s->milter = milter_run_new(&c->milters, specs, n, &f, queue_dirfd(c->queue, QUEUE_INCOMING));
        (void)milter_run_envelope(s->milter, sender, NULL, 0);
}

/* Connect, HELO, MAIL and each RCPT once the envelope is here: for local submissions, and for a source
 * that did not ask about each RCPT ({req=rcpt_check}) as it came. */
static int milter_start(struct session *s, const struct ipc_msg *facts, const char *sender)
{
        const struct milter_spec *specs = NULL;
        size_t n = 0;
        milter_list(s, facts, &specs, &n);
        if (n == 0)
                return 0;
        milter_begin(s, facts, sender, specs, n);
        if (milter_outcome(s) < 0)
                return -1;
        /* Here a recipient a milter refuses refuses the message: the source said 250 to it already, and
         * the whole message is still the client's to bounce or retry, so nothing acknowledged is lost. */
        for (size_t i = 0; i < s->n_rcpts; i++)
                if (milter_run_rcpt(s->milter,
                                    s->rcpts[i].orig_rcpt ? s->rcpts[i].orig_rcpt : s->rcpts[i].address) < 0)
                        return milter_outcome(s);
        return 0;
}

/*
 * {req=rcpt_check, rcpt=ADDR, sender=.., client facts as in the envelope}: smtpd asks before it answers
 * RCPT TO. The first one starts the conversation (connect, HELO, MAIL); each runs the RCPT stage. The
 * answer is {status=0} or {status=4|5, dsn, reason}: a refused recipient is refused at RCPT time and the
 * conversation goes on; a refusal at an earlier stage refuses every recipient.
 */
static int handle_rcpt_check(struct session *s, struct ipc_msg *m)
{
        const char *rcpt = ipc_msg_get_str(m, "rcpt");
        if (!rcpt || s->err_status)
                return reply(s, s->err_status ? s->err_status : 5, s->err_dsn ? s->err_dsn : "5.5.4",
                             s->err_reason ? s->err_reason : "invalid rcpt_check", NULL);
        if (!s->milter && !s->milter_facts.n_attrs) {
                s->milter_facts = *m; /* the conversation's facts point into it */
                *m = (struct ipc_msg)IPC_MSG_INIT;
                const struct milter_spec *specs = NULL;
                size_t n = 0;
                milter_list(s, &s->milter_facts, &specs, &n);
                const char *sender = ipc_msg_get_str(&s->milter_facts, "sender");
                if (n)
                        milter_begin(s, &s->milter_facts, sender ? sender : "", specs, n);
        }
        if (!s->milter)
                return reply(s, 0, NULL, NULL, NULL);
        int status = 0, code = 0;
        char dsn[16] = "";
        _cleanup_free_ char *text = NULL;
        milter_run_rcpt_check(s->milter, rcpt, &status, &code, dsn, &text);
        if (status) {
                const char *f = s->milter_facts.n_attrs ? fact(&s->milter_facts, "sender") : NULL;
                struct log_fields lf = {.queue_id = qid(s)};
                msg_fields(LOG_LEVEL_INFO, &lf,
                           "%s: milter-reject: %s from %s[%s]: %s %s; from=<%s> to=<%s> proto=%s helo=<%s>",
                           qid(s), milter_run_verdict(s->milter)->stage,
                           fact(&s->milter_facts, "client_name") ? fact(&s->milter_facts, "client_name")
                                                                 : "unknown",
                           fact(&s->milter_facts, "client_address")
                                   ? fact(&s->milter_facts, "client_address")
                                   : "unknown",
                           dsn, text, f ? f : "", rcpt,
                           fact(&s->milter_facts, "protocol") ? fact(&s->milter_facts, "protocol") : "SMTP",
                           fact(&s->milter_facts, "helo_name") ? fact(&s->milter_facts, "helo_name") : "");
        }
        s->reply_code = code;
        int r = reply(s, status, status ? dsn : NULL, text, NULL);
        if (r >= 0)
                s->reply_code = 0;
        return r;
}

/* What flush_out() is about to write goes to the milters first. -1 when they refused or discarded. */
static int milter_feed(struct session *s)
{
        if (s->out.len == 0 || milter_run_content(s->milter, s->out.data, s->out.len) == 0)
                return 0;
        return milter_outcome(s);
}

static int emit_append(void *userdata, const void *data, size_t len)
{
        struct session *s = userdata;
        return queue_file_append(s->file, data, len);
}

/* DELRCPT, ADDRCPT, CHGFROM on the envelope. Postfix compares the address as the client gave it. */
static void milter_edit_envelope(struct session *s, const struct milter_edits *e)
{
        for (size_t d = 0; d < e->del_rcpts.n; d++)
                for (size_t i = 0; i < s->n_rcpts;) {
                        struct qfile_rcpt *r = &s->rcpts[i];
                        if (strcasecmp(r->address, e->del_rcpts.v[d]) != 0 &&
                            !(r->orig_rcpt && strcasecmp(r->orig_rcpt, e->del_rcpts.v[d]) == 0)) {
                                i++;
                                continue;
                        }
                        rcpt_done(r);
                        memmove(r, r + 1, (s->n_rcpts - i - 1) * sizeof *r);
                        s->n_rcpts--;
                }
        for (size_t i = 0; i < e->add_rcpts.n && !s->err_status; i++)
                add_checks_rcpt(s, e->add_rcpts.v[i], 0);
        if (e->new_sender) {
                free(s->sender);
                s->sender = rewrite_address(&s->c->rewrite, e->new_sender);
        }
}

/* Copy the content written so far aside, empty the file (its inode, so its queue ID, stays), then write
 * the envelope again and the content as the edits say, the body streamed across. */
static int milter_rewrite_file(struct session *s, const struct milter_edits *e)
{
        off_t off;
        uint64_t len;
        int r = queue_file_content_range(s->file, &off, &len);
        if (r < 0)
                return r;
        int scratch = milter_scratch_open(queue_dirfd(s->c->queue, QUEUE_INCOMING));
        if (scratch < 0)
                return scratch;
        r = milter_copy_range(queue_file_fd(s->file), off, len, scratch);
        if (r >= 0)
                r = queue_file_restart(s->file);
        if (r >= 0)
                r = begin_file(s);
        if (r >= 0)
                r = milter_edit_content(scratch, e, s->c->header_size_limit, emit_append, s);
        close(scratch);
        return r;
}

/* End of message: the final verdict, quarantine, and the changes, all before the file is finished. */
static void milter_finish(struct session *s)
{
        if (milter_run_end(s->milter) < 0) {
                milter_outcome(s);
                return;
        }
        struct milter_verdict *v = milter_run_verdict(s->milter);
        if (v->hold) {
                _cleanup_free_ char *d =
                        xasprintf("milter triggers HOLD action%s%s", v->hold_reason ? ": " : "",
                                  v->hold_reason ? v->hold_reason : "");
                milter_log(s, "hold", d);
                s->milter_hold = true;
        }
        struct milter_edits *e = milter_run_edits(s->milter);
        if (!milter_edits_any(e))
                return;
        milter_edit_envelope(s, e);
        if (s->err_status)
                return;
        if (s->n_rcpts == 0) {
                milter_log(s, "discard", "milter removed every recipient");
                s->milter_discard = true;
                return;
        }
        int r = milter_rewrite_file(s, e);
        if (r < 0)
                write_error(s, r);
}

/* A message that DISCARD dropped: the client hears "250", nothing is queued (Postfix's behaviour). */
static int discard_reply(struct session *s)
{
        _cleanup_free_ char *id = xstrdup(queue_file_id(s->file));
        queue_file_free(s->file); /* a temporary name: never renamed, so never delivered */
        s->file = NULL;
        s->state = STATE_REPLIED;
        return reply(s, 0, NULL, NULL, id);
}

static void on_committed(void *owner, int result);

static int handle_end(struct session *s)
{
        struct cleanup *c = s->c;
        if (!s->err_status && !s->in_body)
                start_body(s, true); /* a message that is all headers, or empty */
        if (!s->err_status && s->body_checking)
                checks_body(&s->ck, &s->raw, &s->out, true); /* the last line, without its LF */
        if (!s->err_status)
                write_out(s, true);
        if (!s->err_status && s->milter && !s->milter_discard && !s->ck.res.discard)
                milter_finish(s);
        milter_run_free(s->milter); /* the filters are done with this message */
        s->milter = NULL;
        if (s->err_status)
                return final_reply(s, s->err_status, s->err_dsn, s->err_reason);
        if (s->ck.res.discard || s->milter_discard)
                return discard_reply(s);
        buf_done(&s->out);
        if (s->ck.res.hold || s->milter_hold)
                queue_file_set_hold(c->queue, s->file);

        int r = queue_file_finish(s->file, QUEUE_NOSYNC);
        if (r >= 0 && s->bounce_all)
                r = bounce_all(s);
        if (r < 0) {
                write_error(s, r);
                return final_reply(s, s->err_status, s->err_dsn, s->err_reason);
        }
        s->state = STATE_COMMIT;
        s->in_commit = true;
        /* The client waits for us now, not we for it: no ipc_timeout until the answer. */
        event_source_set_enabled(s->timer, EVENT_OFF);
        commit_add(c->commit, s->file, on_committed, s);
        return 0;
}

/* The group commit finished this session's file: result 0 = durable, else a negative errno. */
static void on_committed(void *owner, int result)
{
        struct session *s = owner;
        struct cleanup *c = s->c;
        s->in_commit = false;
        /* qmgr hears of the message after the client has its answer: that answer is what a client waits
         * for, and qmgr's scan would find the file anyway. Held mail waits in hold/ for postsuper -H. */
        char notify_id[QUEUE_ID_BUF_SIZE] = "";
        if (result == 0) {
                if (!s->ck.res.hold && !s->milter_hold)
                        snprintf(notify_id, sizeof notify_id, "%s", queue_file_id(s->file));
                metrics_count(s->origin_counter);
        } else if (s->cancelled) {
                if (s->bounce_all)
                        (void)dsnlog_remove_one(s->c->queue, QUEUE_BOUNCE, queue_file_id(s->file), 0);
                queue_file_free(s->file); /* a temporary name: never renamed, never queued */
                s->file = NULL;
        } else {
                struct log_fields lf = {.queue_id = queue_file_id(s->file)};
                msg_fields(LOG_LEVEL_WARNING, &lf,
                           "%s: commit queue file to %s/incoming: %s; the client was told to retry later",
                           queue_file_id(s->file), queue_directory(s->c->queue), strerror(-result));
                if (s->bounce_all) /* no message, so no notice: the sender's copy is retried */
                        (void)dsnlog_remove_one(s->c->queue, QUEUE_BOUNCE, queue_file_id(s->file), 0);
                queue_file_free(s->file); /* never acknowledged, so it goes */
                s->file = NULL;
        }
        if (s->gone)
                session_free(s);
        else if (s->cancelled) {
                /* answered when it was cancelled; the session ends once that is sent */
        } else if (result == 0)
                final_reply(s, 0, NULL, NULL);
        else
                final_reply(s, 4, "4.3.0", "queue file write error");
        if (notify_id[0])
                notice_add(c->notice, notify_id);
}

/*
 * The client gives up waiting for the commit: {req=abort} (answer: true), or it closed the connection or
 * broke the protocol (no answer). Before the file is renamed to its queue ID the message is dropped for
 * good (answer {status=4}); after, it is queued whatever the client does, and the answer is the commit's.
 * Either way the client that waits for the answer knows the outcome (docs/QUEUE_FORMAT.md).
 */
static void cancel_commit(struct session *s, bool answer)
{
        if (s->cancel_asked)
                return;
        s->cancel_asked = true;
        struct log_fields lf = {.queue_id = qid(s)};
        enum commit_cancel c = commit_cancel(s->c->commit, s);
        if (c == COMMIT_TOO_LATE) {
                msg_fields(LOG_LEVEL_INFO, &lf,
                           "%s: the submitting client gave up waiting, but the message was being queued "
                           "already%s",
                           qid(s), answer ? ": it gets the commit's answer" : "");
                return;
        }
        msg_fields(LOG_LEVEL_INFO, &lf,
                   "%s: cancelled by the submitting client before it was queued; removed", qid(s));
        s->cancelled = true;
        if (c == COMMIT_CANCELLED) {
                s->in_commit = false;
                if (s->bounce_all)
                        (void)dsnlog_remove_one(s->c->queue, QUEUE_BOUNCE, queue_file_id(s->file), 0);
                queue_file_free(s->file);
                s->file = NULL;
        }
        if (answer)
                final_reply(s, 4, "4.3.0", "Error: timeout while queueing the message; it was not queued");
}

/* Input after {req=end}: only {req=abort} may come; EOF or anything else cancels without an answer. */
static void commit_input(struct session *s)
{
        struct ipc_msg m = IPC_MSG_INIT;
        int r = ipc_conn_next(&s->conn, &m);
        const char *req = r > 0 ? ipc_msg_get_str(&m, "req") : NULL;
        bool abort = req && streq(req, "abort");
        ipc_msg_done(&m);
        if (r == 0 && !s->conn.eof)
                return; /* part of a frame */
        if (abort && !s->conn.eof) {
                buf_truncate(&s->conn.in, 0);
                cancel_commit(s, true); /* may free s */
                return;
        }
        cancel_commit(s, false);
        session_free(s);
}

static void protocol_error(struct session *s, const char *what)
{
        msg_warn("%s: %s from the submitting client (state %d); message not queued", qid(s), what, s->state);
        session_free(s);
}

/* One request. Returns -1 when the session is gone. */
static int handle(struct session *s, struct ipc_msg *m)
{
        const char *req = ipc_msg_get_str(m, "req");
        if (!req) {
                protocol_error(s, "request without req attribute");
                return -1;
        }
        switch (s->state) {
        case STATE_OPEN:
                if (streq(req, "open"))
                        return handle_open(s, m);
                break;
        case STATE_ENVELOPE:
                if (streq(req, "rcpt"))
                        return handle_rcpts(s, m);
                if (streq(req, "rcpt_check"))
                        return handle_rcpt_check(s, m) < 0 ? -1 : 0;
                if (streq(req, "envelope")) {
                        handle_envelope(s, m);
                        s->state = STATE_CONTENT;
                        return 0;
                }
                break;
        case STATE_CONTENT:
                if (streq(req, "content")) {
                        handle_content(s, m);
                        return 0;
                }
                if (streq(req, "end"))
                        return handle_end(s);
                break;
        default: break;
        }
        char what[96];
        snprintf(what, sizeof what, "unexpected request \"%.40s\"", req);
        protocol_error(s, what);
        return -1;
}

static int on_timeout(struct event_source *src, uint64_t usec, void *userdata)
{
        struct session *s = userdata;
        msg_warn("%s: timeout: no request from the submitting client for %" PRIu64 " s (ipc_timeout)",
                 qid(s), s->c->ipc_timeout_usec / 1000000u);
        session_free(s);
        return 0;
}

static int on_io(struct event_source *src, int fd, uint32_t revents, void *userdata)
{
        struct session *s = userdata;

        if ((revents & EPOLLOUT) && session_flush(s) < 0)
                return 0;
        if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                return 0;
        int r = ipc_conn_read(&s->conn);
        if (r < 0) {
                if (s->state < STATE_COMMIT && s->state > STATE_OPEN)
                        msg_warn("%s: read from submitting client: %s; message not queued", qid(s),
                                 strerror(-r));
                if (s->state == STATE_COMMIT)
                        cancel_commit(s, false); /* the client is gone: as if it had closed */
                session_free(s);
                return 0;
        }
        if (s->state == STATE_COMMIT) {
                commit_input(s);
                return 0;
        }
        if (s->state == STATE_REPLIED) {
                buf_truncate(&s->conn.in, 0);
                if (s->conn.eof)
                        session_free(s);
                return 0;
        }
        while (s->state < STATE_COMMIT) {
                struct ipc_msg m = IPC_MSG_INIT;
                r = ipc_conn_next(&s->conn, &m);
                if (r < 0) {
                        protocol_error(s, r == -EMSGSIZE ? "oversized frame" : "malformed frame");
                        return 0;
                }
                if (r == 0)
                        break;
                r = handle(s, &m);
                ipc_msg_done(&m);
                if (r < 0)
                        return 0;
        }
        /* What came with {req=end} in the same read: an {req=abort} or the end of the connection. */
        if (s->state == STATE_COMMIT && (s->conn.in.len > 0 || s->conn.eof)) {
                commit_input(s);
                return 0;
        }
        if (s->conn.eof && s->state < STATE_COMMIT) {
                if (s->state > STATE_OPEN)
                        msg_info("%s: client disconnected before the end of the message; removed", qid(s));
                session_free(s);
                return 0;
        }
        event_source_set_time_relative(s->timer, s->c->ipc_timeout_usec);
        return 0;
}

void session_start(struct cleanup *c, int fd)
{
        struct session *s = xcalloc(1, sizeof *s);
        s->c = c;
        s->fd = fd;
        s->envelope = (struct ipc_msg)IPC_MSG_INIT;
        s->milter_facts = (struct ipc_msg)IPC_MSG_INIT;
        ipc_conn_init(&s->conn, fd);
        struct event_loop *e = service_event(c->service);
        int r = event_add_io(e, &s->io, fd, EPOLLIN, on_io, s);
        if (r >= 0)
                r = event_add_time_relative(e, &s->timer, c->ipc_timeout_usec, on_timeout, s);
        if (r < 0) {
                msg_warn("watch submission connection: %s", strerror(-r));
                session_free(s);
        }
}
