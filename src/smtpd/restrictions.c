/* restrictions.c: smtpd's access decisions: mynetworks, local and relay domains, restriction lists. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <strings.h>

#include "access_lists.h"
#include "alloc.h"
#include "dict.h"
#include "log.h"
#include "maps.h"
#include "own_addrs.h"
#include "resolve.h"
#include "smtp_addr.h"
#include "smtp_reply.h"
#include "smtpd.h"

/* check_*_access tables over all restriction lists. */
#define ACCESS_TABLES_MAX 64

struct access_table {
        char *spec;
        struct maps *maps;
};

struct smtpd_access {
        struct netlist mynetworks;
        struct netlist bare_newline_exclusions; /* smtpd_forbid_bare_newline_exclusions */
        struct domlist mydestination, relay_domains;
        struct own_addrs local_addrs; /* "[addr]" of these is a local domain */
        struct maps *local_rcpt;      /* NULL: local_recipient_maps is empty, every local user is accepted */
        struct maps *sender_logins;   /* smtpd_sender_login_maps, NULL when empty */
        struct resolve *resolve; /* virtual alias domains and their users, as cleanup will expand them */
        bool reject_unlisted_recipient, reject_unlisted_sender;
        bool soft_bounce;  /* soft_bounce: every 5xx rejection is sent as 4xx, so nothing is lost while
                              testing */
        bool delay_reject; /* smtpd_delay_reject: client, HELO and sender lists wait for RCPT TO */
        struct strv client_restrictions, helo_restrictions, sender_restrictions;
        struct strv relay_restrictions, recipient_restrictions, data_restrictions;
        char *null_access_key; /* smtpd_null_access_lookup_key */
        struct access_table tables[ACCESS_TABLES_MAX];
        size_t n_tables;
        int relay_reject_code, access_reject_code, reject_code, defer_code, unknown_local_code;
        int unknown_valias_code, unknown_vmailbox_code;
        int non_fqdn_code, invalid_hostname_code, unknown_client_code, rbl_code, unknown_hostname_code;
        int unknown_address_code;
};

/* One restriction Postfix has: its evaluation and how restrictions_init treats it (table below). */
struct eval_ctx;
struct list_kind;
typedef void (*restriction_fn)(struct eval_ctx *x, const struct list_kind *k, const char *name,
                               const char *arg, struct access_decision *d);
struct restriction {
        const char *name;
        restriction_fn eval;
        bool takes_arg;   /* the next list element is its argument: a type:table, a DNS zone */
        bool relay_guard; /* can say no to relaying: Postfix refuses lists without one */
        bool takes_table; /* the argument is a table opened at start */
};
static const struct restriction *find_restriction(const char *name);

static int restrictions_init(struct smtpd_access *a, struct config *c, const char *param, struct strv *ret,
                             char **ret_error)
{
        config_get_list(c, param, ret);
        if (ret->n > ACCESS_LIST_MAX) {
                *ret_error = xasprintf("%s: more than %d entries", param, ACCESS_LIST_MAX);
                return -E2BIG;
        }
        for (size_t i = 0; i < ret->n; i++) {
                const struct restriction *rs = find_restriction(ret->v[i]);
                if (!rs)
                        msg_warn("%s: restriction \"%s\" is not supported by postd; mail that reaches it "
                                 "is deferred with 451 4.3.5 until it is removed",
                                 param, ret->v[i]);
                if (!rs || !rs->takes_arg)
                        continue;
                if (i + 1 >= ret->n) {
                        *ret_error = xasprintf("%s: restriction \"%s\" requires %s argument", param,
                                               ret->v[i], rs->takes_table ? "a type:table" : "a DNS zone");
                        return -EINVAL;
                }
                if (!rs->takes_table) {
                        i++;
                        continue;
                }
                const char *spec = ret->v[++i];
                bool have = false;
                for (size_t k = 0; k < a->n_tables; k++)
                        have = have || streq(a->tables[k].spec, spec);
                if (have)
                        continue;
                if (a->n_tables >= ACCESS_TABLES_MAX) {
                        *ret_error = xasprintf("%s: more than %d access tables", param, ACCESS_TABLES_MAX);
                        return -E2BIG;
                }
                struct maps *m = NULL;
                int r = maps_open(param, spec, &m, ret_error);
                if (r < 0)
                        return r;
                a->tables[a->n_tables++] = (struct access_table){xstrdup(spec), m};
        }
        return 0;
}

static bool list_has_guard(const struct strv *l)
{
        for (size_t i = 0; i < l->n; i++) {
                const struct restriction *rs = find_restriction(l->v[i]);
                if (rs && rs->relay_guard)
                        return true;
                if (rs && rs->takes_arg)
                        i++; /* an argument is never a guard */
        }
        return false;
}

int smtpd_access_new(struct config *c, struct smtpd_access **ret, char **ret_error)
{
        struct smtpd_access *a = xcalloc(1, sizeof(*a));
        int r;

        r = netlist_init(&a->mynetworks, "mynetworks", config_get(c, "mynetworks"), ret_error);
        if (r >= 0)
                r = netlist_init(&a->bare_newline_exclusions, "smtpd_forbid_bare_newline_exclusions",
                                 config_get(c, "smtpd_forbid_bare_newline_exclusions"), ret_error);
        if (r >= 0)
                r = domlist_init(&a->mydestination, "mydestination", config_get(c, "mydestination"), false,
                                 ret_error);
        /* Postfix's parent_domain_matches_subdomains default includes relay_domains. */
        if (r >= 0)
                r = domlist_init(&a->relay_domains, "relay_domains", config_get(c, "relay_domains"), true,
                                 ret_error);
        if (r >= 0) {
                const char *lrm = config_get(c, "local_recipient_maps");
                struct strv specs = STRV_INIT;
                maps_split_list(lrm, &specs);
                if (specs.n > 0)
                        r = maps_open("local_recipient_maps", lrm, &a->local_rcpt, ret_error);
                strv_done(&specs);
        }
        if (r >= 0) {
                const char *slm = config_get(c, "smtpd_sender_login_maps");
                struct strv specs = STRV_INIT;
                maps_split_list(slm, &specs);
                if (specs.n > 0)
                        r = maps_open("smtpd_sender_login_maps", slm, &a->sender_logins, ret_error);
                strv_done(&specs);
        }
        if (r >= 0)
                r = resolve_new(c, &a->resolve, ret_error);
        if (r >= 0)
                r = restrictions_init(a, c, "smtpd_client_restrictions", &a->client_restrictions, ret_error);
        if (r >= 0)
                r = restrictions_init(a, c, "smtpd_helo_restrictions", &a->helo_restrictions, ret_error);
        if (r >= 0)
                r = restrictions_init(a, c, "smtpd_sender_restrictions", &a->sender_restrictions, ret_error);
        if (r >= 0)
                r = restrictions_init(a, c, "smtpd_data_restrictions", &a->data_restrictions, ret_error);
        if (r >= 0)
                r = restrictions_init(a, c, "smtpd_relay_restrictions", &a->relay_restrictions, ret_error);
        if (r >= 0)
                r = restrictions_init(a, c, "smtpd_recipient_restrictions", &a->recipient_restrictions,
                                      ret_error);
        /* Postfix refuses to run as an open relay by accident: one of the lists must be able to say no. */
        if (r >= 0 && !list_has_guard(&a->relay_restrictions) &&
            !list_has_guard(&a->recipient_restrictions)) {
                *ret_error = xstrdup(
                        "parameters smtpd_relay_restrictions and smtpd_recipient_restrictions: specify "
                        "at least one working instance of: reject_unauth_destination, "
                        "defer_unauth_destination, reject, defer or defer_if_permit");
                r = -EINVAL;
        }
        if (r < 0) {
                smtpd_access_free(a);
                return r;
        }
        own_addrs_init(&a->local_addrs, c);
        /* receive_override_options = no_unknown_recipient_checks (a re-injection listener) turns it off. */
        struct strv overrides = STRV_INIT;
        config_get_list(c, "receive_override_options", &overrides);
        bool no_unknown = false;
        for (size_t i = 0; i < overrides.n; i++)
                no_unknown |= streq(overrides.v[i], "no_unknown_recipient_checks");
        strv_done(&overrides);
        a->reject_unlisted_recipient = !no_unknown && config_get_bool(c, "smtpd_reject_unlisted_recipient");
        a->reject_unlisted_sender = config_get_bool(c, "smtpd_reject_unlisted_sender");
        a->soft_bounce = config_get_bool(c, "soft_bounce");
        a->delay_reject = config_get_bool(c, "smtpd_delay_reject");
        a->null_access_key = xstrdup(config_get(c, "smtpd_null_access_lookup_key"));
        a->non_fqdn_code = (int)config_get_int(c, "non_fqdn_reject_code");
        a->invalid_hostname_code = (int)config_get_int(c, "invalid_hostname_reject_code");
        a->unknown_client_code = (int)config_get_int(c, "unknown_client_reject_code");
        a->rbl_code = (int)config_get_int(c, "maps_rbl_reject_code");
        a->unknown_hostname_code = (int)config_get_int(c, "unknown_hostname_reject_code");
        a->unknown_address_code = (int)config_get_int(c, "unknown_address_reject_code");
        a->relay_reject_code = (int)config_get_int(c, "relay_domains_reject_code");
        a->access_reject_code = (int)config_get_int(c, "access_map_reject_code");
        a->reject_code = (int)config_get_int(c, "reject_code");
        a->defer_code = (int)config_get_int(c, "defer_code");
        a->unknown_local_code = (int)config_get_int(c, "unknown_local_recipient_reject_code");
        a->unknown_valias_code = (int)config_get_int(c, "unknown_virtual_alias_reject_code");
        a->unknown_vmailbox_code = (int)config_get_int(c, "unknown_virtual_mailbox_reject_code");
        *ret = a;
        return 0;
}

void smtpd_access_free(struct smtpd_access *a)
{
        if (!a)
                return;
        netlist_done(&a->mynetworks);
        netlist_done(&a->bare_newline_exclusions);
        domlist_done(&a->mydestination);
        domlist_done(&a->relay_domains);
        maps_free(a->local_rcpt);
        maps_free(a->sender_logins);
        resolve_free(a->resolve);
        strv_done(&a->client_restrictions);
        strv_done(&a->helo_restrictions);
        strv_done(&a->sender_restrictions);
        strv_done(&a->data_restrictions);
        strv_done(&a->relay_restrictions);
        strv_done(&a->recipient_restrictions);
        free(a->null_access_key);
        for (size_t i = 0; i < a->n_tables; i++) {
                free(a->tables[i].spec);
                maps_free(a->tables[i].maps);
        }
        free(a);
}

void access_decision_done(struct access_decision *d)
{
        free(d->reply);
        d->reply = NULL;
        strv_done(&d->lookups);
}

int smtpd_access_mynetworks(struct smtpd_access *a, const char *addr)
{
        return netlist_match(&a->mynetworks, addr);
}

int smtpd_access_bare_newline_excluded(struct smtpd_access *a, const char *addr)
{
        return netlist_match(&a->bare_newline_exclusions, addr);
}

int smtpd_access_domain_is_local(struct smtpd_access *a, const char *domain)
{
        if (!domain)
                return 1;
        size_t len = strlen(domain);
        if (domain[0] == '[' && len > 2 && domain[len - 1] == ']') {
                _cleanup_free_ char *inner = xstrndup(domain + 1, len - 2);
                const char *text = inner;
                if (strncasecmp(text, "ipv6:", 5) == 0)
                        text += 5;
                struct netaddr n;
                if (netaddr_parse(text, &n) < 0)
                        return 0;
                return own_addrs_contains(&a->local_addrs, &n);
        }
        return domlist_match(&a->mydestination, domain);
}

/* Recipient domain is ours or one we relay to. 1, 0 or <0. */
static int authorized_destination(struct smtpd_access *a, const char *rcpt)
{
        _cleanup_free_ char *domain = resolve_domain_of(rcpt);
        int r = smtpd_access_domain_is_local(a, domain);
        if (r != 0)
                return r;
        r = domain ? resolve_domain_is_virtual_alias(a->resolve, domain) : 0;
        if (r == 0 && domain)
                r = resolve_domain_is_virtual_mailbox(a->resolve, domain);
        if (r != 0)
                return r;
        return domlist_match(&a->relay_domains, domain);
}

int smtpd_access_local_user_known(struct smtpd_access *a, const char *rcpt)
{
        if (!a->local_rcpt)
                return 1;
        _cleanup_free_ char *v = NULL;
        return maps_find_address(a->local_rcpt, rcpt, true, &v);
}

/* detail: the enhanced status code after its class digit, "7.1" for policy, "1.1" for a bad mailbox. */
static void reject(struct access_decision *d, int code, const char *detail, const char *what,
                   const char *label, const char *text)
{
        d->result = ACCESS_REJECT;
        d->reply = xasprintf("%d %d.%s <%s>: %s%s", code, code / 100, detail, what, label, text);
}

static void tempfail(struct access_decision *d, const char *what)
{
        d->result = ACCESS_REJECT;
        d->reply = xasprintf("451 4.3.0 <%s>: Temporary lookup failure", what);
}

enum unlisted { UNLISTED_NO, UNLISTED_LOCAL, UNLISTED_VIRTUAL, UNLISTED_VMAILBOX };

/*
 * An address in one of our domains that delivery would reject: not local (local_recipient_maps) and
 * not a virtual alias user. An address with a virtual alias is known whatever its domain, because
 * cleanup rewrites it before anything else. <0 when a table failed.
 */
static int unlisted(struct smtpd_access *a, const char *addr)
{
        _cleanup_free_ char *domain = resolve_domain_of(addr);
        _cleanup_free_ char *alias = NULL;
        int r = resolve_virtual_alias_find(a->resolve, addr, &alias);
        if (r != 0)
                return r < 0 ? r : UNLISTED_NO;
        r = smtpd_access_domain_is_local(a, domain);
        if (r < 0)
                return r;
        if (r > 0) {
                r = smtpd_access_local_user_known(a, addr);
                return r < 0 ? r : r == 0 ? UNLISTED_LOCAL : UNLISTED_NO;
        }
        r = domain ? resolve_domain_is_virtual_alias(a->resolve, domain) : 0;
        if (r != 0)
                return r < 0 ? r : UNLISTED_VIRTUAL;
        /* A virtual mailbox domain: its users are the keys of virtual_mailbox_maps. */
        r = domain ? resolve_domain_is_virtual_mailbox(a->resolve, domain) : 0;
        if (r <= 0)
                return r < 0 ? r : UNLISTED_NO;
        _cleanup_free_ char *mailbox = NULL;
        r = resolve_virtual_mailbox_find(a->resolve, addr, &mailbox);
        return r < 0 ? r : r == 0 ? UNLISTED_VMAILBOX : UNLISTED_NO;
}

/* reject_unlisted_recipient / reject_unlisted_sender with Postfix's wording per address class. */
static void reject_unlisted(struct smtpd_access *a, const char *addr, bool sender, struct access_decision *d)
{
        if (!addr || !addr[0])
                return;
        int r = unlisted(a, addr);
        if (r < 0)
                tempfail(d, addr);
        else if (r != UNLISTED_NO)
                reject(d,
                       r == UNLISTED_LOCAL      ? a->unknown_local_code
                       : r == UNLISTED_VMAILBOX ? a->unknown_vmailbox_code
                                                : a->unknown_valias_code,
                       sender ? "1.0" : "1.1", addr,
                       sender ? "Sender address rejected: " : "Recipient address rejected: ",
                       r == UNLISTED_LOCAL      ? "User unknown in local recipient table"
                       : r == UNLISTED_VMAILBOX ? "User unknown in virtual mailbox table"
                                                : "User unknown in virtual alias table");
}

/*
 * An access table result: OK/PERMIT permit, DUNNO pass, REJECT/DEFER [text], or "NNN [X.Y.Z] text" with a
 * 4xx/5xx code. Anything else is logged and passes (Postfix would read it as a restriction list).
 */
void smtpd_access_table_result(struct smtpd_access *a, const char *table, const char *value,
                               const char *what, const char *label, struct access_decision *d)
{
        const char *p = value;
        while (*p == ' ' || *p == '\t')
                p++;
        size_t w = strcspn(p, " \t");
        const char *rest = p + w;
        while (*rest == ' ' || *rest == '\t')
                rest++;
        if ((w == 2 && strncasecmp(p, "OK", 2) == 0) || (w == 6 && strncasecmp(p, "PERMIT", 6) == 0)) {
                d->result = ACCESS_PERMIT;
                return;
        }
        if (w == 5 && strncasecmp(p, "DUNNO", 5) == 0)
                return;
        if (w == 6 && strncasecmp(p, "REJECT", 6) == 0) {
                _cleanup_free_ char *t = xasprintf(" rejected: %s", *rest ? rest : "Access denied");
                reject(d, a->access_reject_code, "7.1", what, label, t);
                return;
        }
        if (w == 5 && strncasecmp(p, "DEFER", 5) == 0) {
                _cleanup_free_ char *t = xasprintf(" rejected: %s", *rest ? rest : "Access denied");
                reject(d, a->defer_code, "7.1", what, label, t);
                return;
        }
        if (w == 3 && (p[0] == '4' || p[0] == '5') && isdigit((unsigned char)p[1]) &&
            isdigit((unsigned char)p[2])) {
                size_t elen = 0;
                char enhanced[SMTP_ENHANCED_MAX];
                snprintf(enhanced, sizeof enhanced, "%c.7.1", p[0]);
                if (smtp_enhanced_parse(rest, &elen) && elen < sizeof enhanced && rest[0] == p[0]) {
                        memcpy(enhanced, rest, elen);
                        enhanced[elen] = '\0';
                        rest += elen;
                        while (*rest == ' ')
                                rest++;
                }
                d->result = ACCESS_REJECT;
                d->reply = xasprintf("%.3s %s <%s>: %s rejected: %s", p, enhanced, what, label,
                                     *rest ? rest : "Access denied");
                return;
        }
        msg_warn("access table %s: unsupported result \"%s\": ignored", table, value);
}

static struct maps *find_table(struct smtpd_access *a, const char *spec)
{
        for (size_t i = 0; i < a->n_tables; i++)
                if (streq(a->tables[i].spec, spec))
                        return a->tables[i].maps;
        return NULL;
}

/* Client keys: the name (when known), the address, then its IPv4 networks "1.2.3", "1.2", "1". */
static int lookup_client(struct maps *m, const struct access_client *cl, char **ret)
{
        int r;
        if (cl->name && !streq(cl->name, "unknown")) {
                r = maps_find_domain(m, cl->name, ret);
                if (r != 0)
                        return r;
        }
        r = maps_find(m, cl->addr, ret);
        if (r != 0 || strchr(cl->addr, ':'))
                return r;
        _cleanup_free_ char *k = xstrdup(cl->addr);
        for (int i = 0; i < 3; i++) {
                char *dot = strrchr(k, '.');
                if (!dot)
                        break;
                *dot = '\0';
                r = maps_find(m, k, ret);
                if (r != 0)
                        return r;
        }
        return 0;
}

/* Address keys of access(5): "user@domain", the domain and its parents, then "user@". */
static int lookup_address(struct maps *m, const char *addr, char **ret)
{
        int r = maps_find(m, addr, ret);
        if (r != 0)
                return r;
        const char *at = strrchr(addr, '@');
        if (!at)
                return 0;
        _cleanup_free_ char *domain = resolve_domain_of(addr);
        if (domain) {
                r = maps_find_domain(m, domain, ret);
                if (r != 0)
                        return r;
                const char *d = strchr(domain, '.');
                for (size_t labels = 0; d && labels < ACCESS_DOMAIN_LABELS_MAX; labels++) {
                        r = maps_find(m, d + 1, ret);
                        if (r != 0)
                                return r;
                        d = strchr(d + 1, '.');
                }
        }
        _cleanup_free_ char *user = xstrndup(addr, (size_t)(at - addr) + 1);
        return maps_find(m, user, ret);
}

/*
 * What one restriction list is about: the "<name>" and "... rejected" words of its generic reject and
 * defer replies, as Postfix words them.
 */
struct list_kind {
        const char *param;
        const char *label; /* "Client host", "Helo command", ... */
};

static const struct list_kind KIND_CLIENT = {"smtpd_client_restrictions", "Client host"};
static const struct list_kind KIND_HELO = {"smtpd_helo_restrictions", "Helo command"};
static const struct list_kind KIND_SENDER = {"smtpd_sender_restrictions", "Sender address"};
static const struct list_kind KIND_RELAY = {"smtpd_relay_restrictions", "Recipient address"};
static const struct list_kind KIND_RECIPIENT = {"smtpd_recipient_restrictions", "Recipient address"};
static const struct list_kind KIND_DATA = {"smtpd_data_restrictions", "Data command"};

struct eval_ctx {
        struct smtpd_access *a;
        const struct access_request *rq;
        char client_what[512];
        bool defer_if_permit; /* a defer_if_permit matched: a final permit becomes 450 */
        bool warn_next;       /* warn_if_reject: the next rejection is only logged */
        struct strv lookups;  /* DNS keys a restriction needs and rq->facts lacks: evaluation stops */
        struct strv logs;     /* lines to log once the decision is final (not for an ACCESS_LOOKUP) */
};

/* The "<what>" of a list's generic replies. */
static const char *kind_what(const struct eval_ctx *x, const struct list_kind *k)
{
        if (k == &KIND_CLIENT)
                return x->client_what;
        if (k == &KIND_HELO)
                return x->rq->helo ? x->rq->helo : "";
        if (k == &KIND_SENDER)
                return x->rq->sender ? x->rq->sender : "";
        if (k == &KIND_DATA)
                return "DATA";
        return x->rq->rcpt ? x->rq->rcpt : "";
}

/* Postfix's FQDN rule: a domain with a dot, or an address literal. */
static bool is_fqdn(const char *domain)
{
        return domain && (domain[0] == '[' || strchr(domain, '.'));
}

static bool address_is_fqdn(const char *addr)
{
        const char *at = strrchr(addr, '@');
        return at && is_fqdn(at + 1);
}

/* A HELO name Postfix calls valid: a syntactically valid domain or address literal, not all digits. */
static bool helo_is_valid(const char *helo)
{
        size_t len = strlen(helo);
        if (!smtp_domain_valid(helo, len, false))
                return false;
        if (helo[0] == '[')
                return true;
        return strspn(helo, "0123456789.") != len;
}

/* One table check: check_client_access, check_helo_access, check_sender_access or check_recipient_access. */
static void eval_table(struct eval_ctx *x, const struct list_kind *k, const char *name, const char *spec,
                       struct access_decision *d)
{
        struct smtpd_access *a = x->a;
        const struct access_request *rq = x->rq;
        struct maps *m = find_table(a, spec);
        _cleanup_free_ char *v = NULL;
        const char *what, *label;
        int r;
        if (streq(name, "check_client_access")) {
                what = x->client_what;
                label = "Client host";
                r = m ? lookup_client(m, rq->client, &v) : -ENOENT;
        } else if (streq(name, "check_helo_access")) {
                if (!rq->helo)
                        return;
                what = rq->helo;
                label = "Helo command";
                _cleanup_free_ char *h = xstrdup(rq->helo);
                dict_fold_key(h);
                r = m ? maps_find_domain(m, h, &v) : -ENOENT;
        } else if (streq(name, "check_sender_access")) {
                if (!rq->sender)
                        return;
                what = rq->sender;
                label = "Sender address";
                if (!m)
                        r = -ENOENT;
                else if (rq->sender[0] == '\0')
                        r = maps_find(m, a->null_access_key, &v);
                else
                        r = lookup_address(m, rq->sender, &v);
        } else {
                if (!rq->rcpt)
                        return;
                what = rq->rcpt;
                label = "Recipient address";
                r = m ? lookup_address(m, rq->rcpt, &v) : -ENOENT;
        }
        if (r < 0)
                tempfail(d, what);
        else if (r > 0)
                smtpd_access_table_result(a, spec, v, what, label, d);
}

/*
 * ---- the restrictions: one function each, and the table that names them ----
 * Restrictions about something the request does not have yet (a sender before MAIL FROM, a recipient
 * outside RCPT TO) pass, as in Postfix.
 */

static void r_permit(struct eval_ctx *x, const struct list_kind *k, const char *name, const char *arg,
                     struct access_decision *d)
{
        d->result = ACCESS_PERMIT;
}

/* reject and defer */
static void r_reject(struct eval_ctx *x, const struct list_kind *k, const char *name, const char *arg,
                     struct access_decision *d)
{
        _cleanup_free_ char *rejected = xasprintf("%s rejected: ", k->label);
        reject(d, name[0] == 'r' ? x->a->reject_code : x->a->defer_code, "7.1", kind_what(x, k), rejected,
               "Access denied");
}

static void r_defer_if_permit(struct eval_ctx *x, const struct list_kind *k, const char *name,
                              const char *arg, struct access_decision *d)
{
        x->defer_if_permit = true;
}

static void r_warn_if_reject(struct eval_ctx *x, const struct list_kind *k, const char *name,
                             const char *arg, struct access_decision *d)
{
        x->warn_next = true;
}

static void r_permit_mynetworks(struct eval_ctx *x, const struct list_kind *k, const char *name,
                                const char *arg, struct access_decision *d)
{
        int r = netlist_match(&x->a->mynetworks, x->rq->client->addr);
        if (r < 0)
                tempfail(d, x->client_what);
        else if (r > 0)
                d->result = ACCESS_PERMIT;
}

static void r_permit_sasl_authenticated(struct eval_ctx *x, const struct list_kind *k, const char *name,
                                        const char *arg, struct access_decision *d)
{
        if (x->rq->client->sasl_authenticated)
                d->result = ACCESS_PERMIT;
}

/* Is login one of the owners ("alice, bob" or "alice bob") smtpd_sender_login_maps gives? */
static bool login_owns(const char *owners, const char *login)
{
        size_t len = strlen(login);
        for (const char *p = owners; *p;) {
                p += strspn(p, ", \t");
                size_t n = strcspn(p, ", \t");
                if (n == len && n > 0 && strncasecmp(p, login, n) == 0)
                        return true;
                p += n;
        }
        return false;
}

/*
 * reject_sender_login_mismatch and its authenticated/unauthenticated halves, worded as Postfix does:
 * an authenticated client may only use a sender address the map gives to its login; a client that did
 * not authenticate may not use an address the map gives to anybody.
 */
static void r_sender_login(struct eval_ctx *x, const struct list_kind *k, const char *name, const char *arg,
                           struct access_decision *d)
{
        const char *sender = x->rq->sender;
        const char *login = x->rq->client->sasl_username;
        if (!sender || !sender[0] || !x->a->sender_logins)
                return;
        bool check_auth = !strstr(name, "_unauthenticated_");
        bool check_unauth = !strstr(name, "_authenticated_");
        if (login ? !check_auth : !check_unauth)
                return;
        /* Postfix's order: user@domain, then user (for our own domains), then @domain. */
        const char *at = strrchr(sender, '@');
        int local = at ? smtpd_access_domain_is_local(x->a, at + 1) : 1;
        _cleanup_free_ char *owners = NULL;
        int r = local < 0 ? local : maps_find_address(x->a->sender_logins, sender, local > 0, &owners);
        if (r < 0) {
                tempfail(d, sender);
                return;
        }
        if (login && (r == 0 || !login_owns(owners, login))) {
                _cleanup_free_ char *text = xasprintf("not owned by user %s", login);
                reject(d, 553, "7.1", sender, "Sender address rejected: ", text);
        } else if (!login && r > 0)
                reject(d, 553, "7.1", sender, "Sender address rejected: ", "not logged in");
}

/* reject_unauth_destination, defer_unauth_destination, permit_auth_destination */
static void r_auth_destination(struct eval_ctx *x, const struct list_kind *k, const char *name,
                               const char *arg, struct access_decision *d)
{
        const char *rcpt = x->rq->rcpt;
        if (!rcpt)
                return;
        int r = authorized_destination(x->a, rcpt);
        if (r < 0)
                tempfail(d, rcpt);
        else if (r > 0 && name[0] == 'p')
                d->result = ACCESS_PERMIT;
        else if (r == 0 && name[0] != 'p')
                reject(d, name[0] == 'r' ? x->a->relay_reject_code : 454, "7.1", rcpt, "Relay access denied",
                       "");
}

/* reject_unlisted_sender, reject_unlisted_recipient */
static void r_unlisted(struct eval_ctx *x, const struct list_kind *k, const char *name, const char *arg,
                       struct access_decision *d)
{
        bool sender = streq(name, "reject_unlisted_sender");
        reject_unlisted(x->a, sender ? x->rq->sender : x->rq->rcpt, sender, d);
}

/* reject_non_fqdn_helo_hostname, reject_invalid_helo_hostname */
static void r_helo_name(struct eval_ctx *x, const struct list_kind *k, const char *name, const char *arg,
                        struct access_decision *d)
{
        const char *helo = x->rq->helo;
        if (!helo)
                return;
        if (streq(name, "reject_non_fqdn_helo_hostname") && !is_fqdn(helo))
                reject(d, x->a->non_fqdn_code, "5.2", helo,
                       "Helo command rejected: ", "need fully-qualified hostname");
        else if (streq(name, "reject_invalid_helo_hostname") && !helo_is_valid(helo))
                reject(d, x->a->invalid_hostname_code, "5.2", helo,
                       "Helo command rejected: ", "Invalid name");
}

/* reject_non_fqdn_sender, reject_non_fqdn_recipient */
static void r_non_fqdn_address(struct eval_ctx *x, const struct list_kind *k, const char *name,
                               const char *arg, struct access_decision *d)
{
        bool sender = streq(name, "reject_non_fqdn_sender");
        const char *addr = sender ? x->rq->sender : x->rq->rcpt;
        if (addr && addr[0] && !address_is_fqdn(addr))
                reject(d, x->a->non_fqdn_code, "5.2", addr,
                       sender ? "Sender address rejected: " : "Recipient address rejected: ",
                       "need fully-qualified address");
}

/* reject_unknown_client_hostname, reject_unknown_reverse_client_hostname, worded as Postfix does. */
static void r_unknown_client(struct eval_ctx *x, const struct list_kind *k, const char *name,
                             const char *arg, struct access_decision *d)
{
        const struct smtpd_client_dns *dns = x->rq->client->dns;
        bool reverse = streq(name, "reject_unknown_reverse_client_hostname");
        int status = !dns ? -ENOENT : reverse ? dns->reverse_status : dns->name_status;
        if (status == 0)
                return;
        int code = status == -EAGAIN ? 450 : x->a->unknown_client_code;
        d->result = ACCESS_REJECT;
        d->reply = xasprintf("%d %d.7.25 Client host rejected: cannot find your %shostname, [%s]", code,
                             code / 100, reverse ? "reverse " : "", x->rq->client->addr);
}

/* reject_rbl_client zone[=a.b.c.d]: listed when the zone has an A record for the client (that one). */
static void r_rbl_client(struct eval_ctx *x, const struct list_kind *k, const char *name, const char *arg,
                         struct access_decision *d)
{
        const struct smtpd_client_dns *dns = x->rq->client->dns;
        size_t zlen = strcspn(arg, "=");
        const char *want = arg[zlen] == '=' ? arg + zlen + 1 : NULL;
        for (size_t i = 0; dns && i < dns->n_rbl; i++) {
                const struct smtpd_rbl_answer *ans = &dns->rbl[i];
                if (strlen(ans->zone) != zlen || strncmp(ans->zone, arg, zlen) != 0)
                        continue;
                if (ans->status < 0)
                        strv_push_take(
                                &x->logs,
                                xasprintf("warning: %s: DNS blocklist lookup in %s failed: the client is "
                                          "not rejected by it",
                                          x->client_what, ans->zone));
                if (ans->status != 1 || (want && !streq(want, ans->addr)))
                        return;
                d->result = ACCESS_REJECT;
                d->reply = xasprintf("%d %d.7.1 Service unavailable; Client host [%s] blocked using %s%s%s",
                                     x->a->rbl_code, x->a->rbl_code / 100, x->rq->client->addr, ans->zone,
                                     ans->txt[0] ? "; " : "", ans->txt);
                return;
        }
}

/* The session's cache of DNS answers (smtpd.h): a small ring, searched in order. */
const struct smtpd_dns_fact *smtpd_dns_facts_find(const struct smtpd_dns_facts *facts, const char *key)
{
        size_t n = facts->n < SMTPD_DNS_FACTS_MAX ? facts->n : SMTPD_DNS_FACTS_MAX;
        for (size_t i = 0; i < n; i++)
                if (strcmp(facts->f[i].key, key) == 0)
                        return &facts->f[i];
        return NULL;
}

void smtpd_dns_facts_add(struct smtpd_dns_facts *facts, const struct smtpd_dns_fact *fact)
{
        struct smtpd_dns_fact *same = (struct smtpd_dns_fact *)smtpd_dns_facts_find(facts, fact->key);
        if (same) {
                *same = *fact; /* a newer answer replaces the old one */
                return;
        }
        facts->f[facts->n % SMTPD_DNS_FACTS_MAX] = *fact;
        facts->n++;
}

/* The DNS answer for key; NULL after asking for it (the evaluation then stops: ACCESS_LOOKUP). */
static const struct smtpd_dns_fact *dns_fact(struct eval_ctx *x, const char *key)
{
        const struct smtpd_dns_fact *f = x->rq->facts ? smtpd_dns_facts_find(x->rq->facts, key) : NULL;
        if (!f)
                strv_push(&x->lookups, key);
        return f;
}

/* reject_unknown_helo_hostname, reject_unknown_sender_domain, reject_unknown_recipient_domain: no MX, A
 * or AAAA record. Address literals pass; so does a recipient in a domain this instance receives mail for. */
static void r_unknown_domain(struct eval_ctx *x, const struct list_kind *k, const char *name,
                             const char *arg, struct access_decision *d)
{
        bool helo = streq(name, "reject_unknown_helo_hostname"),
             sender = streq(name, "reject_unknown_sender_domain");
        const char *what = helo ? x->rq->helo : sender ? x->rq->sender : x->rq->rcpt;
        if (isempty(what))
                return;
        _cleanup_free_ char *domain = helo ? xstrdup(what) : resolve_domain_of(what);
        if (!domain || domain[0] == '[')
                return;
        if (!helo && !sender && smtpd_access_domain_is_local(x->a, domain) > 0)
                return;
        _cleanup_free_ char *key = xasprintf("exists:%s", domain);
        const struct smtpd_dns_fact *f = dns_fact(x, key);
        if (!f || f->status == 0)
                return;
        int code = f->status == -EAGAIN ? 450
                   : helo               ? x->a->unknown_hostname_code
                                        : x->a->unknown_address_code;
        if (helo)
                reject(d, code, "7.1", what, "Helo command rejected: ", "Host not found");
        else
                reject(d, code, sender ? "1.8" : "1.2", what,
                       sender ? "Sender address rejected: " : "Recipient address rejected: ",
                       "Domain not found");
}

/* The domain a reject_rhsbl_* restriction looks up, and the words of its reply; NULL: nothing to check. */
static char *rhsbl_domain(const struct eval_ctx *x, const char *name, const char **ret_class)
{
        const struct access_client *cl = x->rq->client;
        if (streq(name, "reject_rhsbl_client")) {
                *ret_class = "Client host";
                return streq(cl->name, "unknown") ? NULL : xstrdup(cl->name);
        }
        if (streq(name, "reject_rhsbl_reverse_client")) {
                *ret_class = "Unverified Client host";
                return cl->dns && cl->dns->reverse_status == 0 ? xstrdup(cl->dns->reverse_name) : NULL;
        }
        if (streq(name, "reject_rhsbl_helo")) {
                *ret_class = "Helo command";
                return !isempty(x->rq->helo) && x->rq->helo[0] != '[' ? xstrdup(x->rq->helo) : NULL;
        }
        bool sender = streq(name, "reject_rhsbl_sender");
        const char *addr = sender ? x->rq->sender : x->rq->rcpt;
        *ret_class = sender ? "Sender address" : "Recipient address";
        return isempty(addr) ? NULL : resolve_domain_of(addr);
}

/* reject_rhsbl_client, _reverse_client, _helo, _sender, _recipient zone[=a.b.c.d] */
static void r_rhsbl(struct eval_ctx *x, const struct list_kind *k, const char *name, const char *arg,
                    struct access_decision *d)
{
        const char *cls = NULL;
        _cleanup_free_ char *domain = rhsbl_domain(x, name, &cls);
        if (!domain || domain[0] == '[')
                return;
        size_t zlen = strcspn(arg, "=");
        const char *want = arg[zlen] == '=' ? arg + zlen + 1 : NULL;
        _cleanup_free_ char *key = xasprintf("listed:%s.%.*s", domain, (int)zlen, arg);
        const struct smtpd_dns_fact *f = dns_fact(x, key);
        if (!f || f->status != 1 || (want && !streq(want, f->addr)))
                return;
        d->result = ACCESS_REJECT;
        d->reply =
                xasprintf("%d %d.7.1 Service unavailable; %s [%s] blocked using %.*s%s%s", x->a->rbl_code,
                          x->a->rbl_code / 100, cls, domain, (int)zlen, arg, f->txt[0] ? "; " : "", f->txt);
}

static const struct restriction RESTRICTIONS[] = {
        {"permit", r_permit, false, false, false},
        {"reject", r_reject, false, true, false},
        {"defer", r_reject, false, true, false},
        {"defer_if_permit", r_defer_if_permit, false, true, false},
        {"warn_if_reject", r_warn_if_reject, false, false, false},
        {"permit_mynetworks", r_permit_mynetworks, false, false, false},
        {"permit_sasl_authenticated", r_permit_sasl_authenticated, false, false, false},
        {"reject_sender_login_mismatch", r_sender_login, false, false, false},
        {"reject_authenticated_sender_login_mismatch", r_sender_login, false, false, false},
        {"reject_unauthenticated_sender_login_mismatch", r_sender_login, false, false, false},
        {"reject_unauth_destination", r_auth_destination, false, true, false},
        {"defer_unauth_destination", r_auth_destination, false, true, false},
        {"permit_auth_destination", r_auth_destination, false, false, false},
        {"reject_unlisted_recipient", r_unlisted, false, false, false},
        {"reject_unlisted_sender", r_unlisted, false, false, false},
        {"reject_non_fqdn_helo_hostname", r_helo_name, false, false, false},
        {"reject_invalid_helo_hostname", r_helo_name, false, false, false},
        {"reject_non_fqdn_sender", r_non_fqdn_address, false, false, false},
        {"reject_non_fqdn_recipient", r_non_fqdn_address, false, false, false},
        {"reject_unknown_client_hostname", r_unknown_client, false, false, false},
        {"reject_unknown_reverse_client_hostname", r_unknown_client, false, false, false},
        {"reject_rbl_client", r_rbl_client, true, false, false},
        {"reject_unknown_helo_hostname", r_unknown_domain, false, false, false},
        {"reject_unknown_sender_domain", r_unknown_domain, false, false, false},
        {"reject_unknown_recipient_domain", r_unknown_domain, false, false, false},
        {"reject_rhsbl_client", r_rhsbl, true, false, false},
        {"reject_rhsbl_reverse_client", r_rhsbl, true, false, false},
        {"reject_rhsbl_helo", r_rhsbl, true, false, false},
        {"reject_rhsbl_sender", r_rhsbl, true, false, false},
        {"reject_rhsbl_recipient", r_rhsbl, true, false, false},
        {"check_client_access", eval_table, true, false, true},
        {"check_helo_access", eval_table, true, false, true},
        {"check_sender_access", eval_table, true, false, true},
        {"check_recipient_access", eval_table, true, false, true},
};

static const struct restriction *find_restriction(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(RESTRICTIONS); i++)
                if (streq(RESTRICTIONS[i].name, name))
                        return &RESTRICTIONS[i];
        return NULL;
}

void smtpd_access_rbl_zones(const struct smtpd_access *a, struct strv *ret)
{
        const struct strv *lists[] = {&a->client_restrictions,    &a->helo_restrictions,
                                      &a->sender_restrictions,    &a->relay_restrictions,
                                      &a->recipient_restrictions, &a->data_restrictions};
        for (size_t l = 0; l < ELEMENTSOF(lists); l++)
                for (size_t i = 0; i + 1 < lists[l]->n; i++) {
                        if (!streq(lists[l]->v[i], "reject_rbl_client"))
                                continue;
                        const char *arg = lists[l]->v[++i];
                        _cleanup_free_ char *zone = xstrndup(arg, strcspn(arg, "="));
                        bool have = false;
                        for (size_t k = 0; k < ret->n && !have; k++)
                                have = streq(ret->v[k], zone);
                        if (!have)
                                strv_push(ret, zone);
                }
}

/* Evaluate one restriction list; stops at the first PERMIT or REJECT. A PERMIT ends only this list. */
static void eval_list(struct eval_ctx *x, const struct list_kind *k, const struct strv *list,
                      struct access_decision *d)
{
        *d = (struct access_decision){.result = ACCESS_PASS};
        for (size_t i = 0;
             i < list->n && d->result != ACCESS_REJECT && d->result != ACCESS_PERMIT && x->lookups.n == 0;
             i++) {
                const char *name = list->v[i];
                bool warn = x->warn_next;
                x->warn_next = false;
                const struct restriction *rs = find_restriction(name);
                if (!rs) {
                        msg_warn("%s: unknown smtpd restriction: \"%s\"", k->param, name);
                        d->result = ACCESS_REJECT;
                        d->reply = xstrdup("451 4.3.5 Server configuration error");
                } else if (!rs->takes_arg)
                        rs->eval(x, k, name, NULL, d);
                else if (i + 1 < list->n)
                        rs->eval(x, k, name, list->v[++i], d);
                if (warn && d->result == ACCESS_REJECT) {
                        /* warn_if_reject: the administrator tries a rule out before enforcing it. */
                        strv_push_take(&x->logs,
                                       xasprintf("reject_warning: %s: %s", x->client_what, d->reply));
                        access_decision_done(d);
                        d->result = ACCESS_PASS;
                }
        }
}

/* The lists a stage evaluates, in Postfix's order; with smtpd_delay_reject all wait for RCPT TO. */
static size_t stage_lists(const struct smtpd_access *a, enum access_stage stage,
                          const struct list_kind **kinds, const struct strv **lists)
{
        size_t n = 0;
#define ADD_LIST(kind, field) (kinds[n] = &(kind), lists[n++] = &a->field)
        switch (stage) {
        case ACCESS_STAGE_CONNECT:
                if (!a->delay_reject)
                        ADD_LIST(KIND_CLIENT, client_restrictions);
                break;
        case ACCESS_STAGE_HELO:
                if (!a->delay_reject)
                        ADD_LIST(KIND_HELO, helo_restrictions);
                break;
        case ACCESS_STAGE_MAIL:
                if (!a->delay_reject)
                        ADD_LIST(KIND_SENDER, sender_restrictions);
                break;
        case ACCESS_STAGE_RCPT:
                if (a->delay_reject) {
                        ADD_LIST(KIND_CLIENT, client_restrictions);
                        ADD_LIST(KIND_HELO, helo_restrictions);
                        ADD_LIST(KIND_SENDER, sender_restrictions);
                }
                ADD_LIST(KIND_RELAY, relay_restrictions);
                ADD_LIST(KIND_RECIPIENT, recipient_restrictions);
                break;
        case ACCESS_STAGE_DATA: ADD_LIST(KIND_DATA, data_restrictions); break;
        }
#undef ADD_LIST
        return n;
}

static void check_stage(struct smtpd_access *a, enum access_stage stage, const struct access_request *rq,
                        struct access_decision *ret);

void smtpd_access_check(struct smtpd_access *a, enum access_stage stage, const struct access_request *rq,
                        struct access_decision *ret)
{
        check_stage(a, stage, rq, ret);
        /* soft_bounce: "550 5.1.1 ..." becomes "450 4.1.1 ...". */
        if (a->soft_bounce && ret->result == ACCESS_REJECT && ret->reply[0] == '5') {
                ret->reply[0] = '4';
                if (ret->reply[3] == ' ' && ret->reply[4] == '5' && ret->reply[5] == '.')
                        ret->reply[4] = '4';
        }
}

static void check_lists(struct smtpd_access *a, enum access_stage stage, const struct access_request *rq,
                        struct eval_ctx *x, struct access_decision *ret);

/*
 * Evaluate; when a restriction lacked a DNS answer the result is ACCESS_LOOKUP with the keys to answer,
 * and nothing is logged: the session asks again with the answers, and that evaluation logs.
 */
static void check_stage(struct smtpd_access *a, enum access_stage stage, const struct access_request *rq,
                        struct access_decision *ret)
{
        struct eval_ctx x = {.a = a, .rq = rq, .lookups = STRV_INIT, .logs = STRV_INIT};
        snprintf(x.client_what, sizeof x.client_what, "%s[%s]", rq->client->name, rq->client->addr);
        check_lists(a, stage, rq, &x, ret);
        if (x.lookups.n > 0) {
                access_decision_done(ret);
                *ret = (struct access_decision){.result = ACCESS_LOOKUP, .lookups = x.lookups};
                x.lookups = (struct strv)STRV_INIT;
        } else {
                for (size_t i = 0; i < x.logs.n; i++) {
                        if (strncmp(x.logs.v[i], "warning: ", 9) == 0)
                                msg_warn("%s", x.logs.v[i] + 9);
                        else
                                msg_info("%s", x.logs.v[i]);
                }
        }
        strv_done(&x.lookups);
        strv_done(&x.logs);
}

static void check_lists(struct smtpd_access *a, enum access_stage stage, const struct access_request *rq,
                        struct eval_ctx *x, struct access_decision *ret)
{
        const struct list_kind *kinds[5];
        const struct strv *lists[5];
        size_t n = stage_lists(a, stage, kinds, lists);
        *ret = (struct access_decision){.result = ACCESS_PASS};
        for (size_t i = 0; i < n; i++) {
                eval_list(x, kinds[i], lists[i], ret);
                if (ret->result == ACCESS_REJECT || x->lookups.n > 0)
                        return;
                /* smtpd_reject_unlisted_sender: with the sender list, whatever that list said. */
                if (kinds[i] == &KIND_SENDER && a->reject_unlisted_sender) {
                        access_decision_done(ret);
                        *ret = (struct access_decision){.result = ACCESS_PASS};
                        reject_unlisted(a, rq->sender, true, ret);
                        if (ret->result == ACCESS_REJECT)
                                return;
                }
        }
        /* smtpd_reject_unlisted_recipient applies even when the lists said permit. */
        if (stage == ACCESS_STAGE_RCPT && a->reject_unlisted_recipient) {
                reject_unlisted(a, rq->rcpt, false, ret);
                if (ret->result == ACCESS_REJECT)
                        return;
        }
        if (x->defer_if_permit) {
                ret->result = ACCESS_REJECT;
                ret->reply = xasprintf("%d 4.7.1 <%s>: %s rejected: Access denied", a->defer_code,
                                       kind_what(x, kinds[n - 1]), kinds[n - 1]->label);
        }
}
