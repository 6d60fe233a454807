/* submit.c: who may submit mail, and which configuration directories an unprivileged user may name. */
#include "submit.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdarg.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "alloc.h"
#include "catalog.h"
#include "config.h"
#include "dict.h"
#include "fileio.h"
#include "ipc.h"
#include "log.h"
#include "postd-build.h"

static bool is_table(const char *elem)
{
        /* "type:name" where type is a word; an address-like "user@host:x" is not a table. */
        const char *colon = strchr(elem, ':');
        if (!colon || colon == elem)
                return false;
        for (const char *p = elem; p < colon; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
                        return false;
        return true;
}

int submit_list_match(char *const *elems, size_t n, const char *user, submit_lookup_fn lookup,
                      void *userdata, const char **ret_failed)
{
        if (n > SUBMIT_LIST_MAX)
                n = SUBMIT_LIST_MAX;
        for (size_t i = 0; i < n; i++) {
                const char *e = elems[i];
                bool negate = false;
                /* Postfix allows "!" repeated and blanks after it: each "!" flips the sense. */
                while (*e == '!' || *e == ' ' || *e == '\t') {
                        if (*e == '!')
                                negate = !negate;
                        e++;
                }
                if (!*e)
                        continue;
                int found;
                if (is_table(e)) {
                        found = lookup ? lookup(e, user, userdata) : 0;
                        if (found < 0) {
                                if (ret_failed)
                                        *ret_failed = elems[i];
                                return found;
                        }
                } else
                        found = strcasecmp(e, user) == 0;
                if (found)
                        return negate ? 0 : 1;
        }
        return 0;
}

static int dict_lookup_cb(const char *spec, const char *name, void *userdata)
{
        char **err = userdata;
        struct dict *d = NULL;
        char *e = NULL;
        int r = dict_open(spec, &d, &e);
        if (r < 0) {
                free(*err);
                *err = e;
                return r;
        }
        _cleanup_free_ char *value = NULL;
        r = dict_get(d, name, &value);
        if (r < 0) {
                free(*err);
                *err = xasprintf("%s: lookup of \"%s\" failed: %s", spec, name, strerror(-r));
        }
        dict_close(d);
        return r;
}

int submit_access_check(const char *list_value, const char *user, char **ret_err)
{
        struct strv raw = STRV_INIT, elems = STRV_INIT;
        config_split_list(list_value ? list_value : "", &raw);
        int r = 0;
        char *err = NULL;
        for (size_t i = 0; i < raw.n && elems.n < SUBMIT_LIST_MAX; i++) {
                const char *e = raw.v[i];
                const char *p = e;
                while (*p == '!')
                        p++;
                if (*p != '/') {
                        strv_push(&elems, e);
                        continue;
                }
                /* A "/file" element stands for the elements listed in that file (not nested further). */
                _cleanup_free_ char *text = NULL;
                size_t len = 0;
                r = read_file(p, SUBMIT_LIST_FILE_MAX, &text, &len);
                if (r < 0) {
                        err = xasprintf("open %s: %s", p, strerror(-r));
                        goto done;
                }
                struct strv sub = STRV_INIT;
                strv_split(&sub, text, ", \t\r\n");
                for (size_t j = 0; j < sub.n && elems.n < SUBMIT_LIST_MAX; j++)
                        if (sub.v[j][0] != '#')
                                strv_push_take(&elems,
                                               p == e ? xstrdup(sub.v[j]) : xasprintf("!%s", sub.v[j]));
                strv_done(&sub);
        }
        const char *failed = NULL;
        r = submit_list_match(elems.v, elems.n, user, dict_lookup_cb, &err, &failed);
        if (r < 0 && !err)
                err = xasprintf("%s: %s", failed ? failed : "table", strerror(-r));
done:
        strv_done(&raw);
        strv_done(&elems);
        if (ret_err)
                *ret_err = err;
        else
                free(err);
        return r;
}

char *submit_user_name(uid_t uid)
{
        struct passwd *pw = getpwuid(uid);
        return xstrdup(pw && pw->pw_name ? pw->pw_name : "unknown");
}

void submit_require_authorized(struct config *cfg, const char *user, uid_t uid)
{
        _cleanup_free_ char *err = NULL;
        int r = submit_access_check(config_get(cfg, "authorized_submit_users"), user, &err);
        if (r < 0)
                submit_fatal(SUBMIT_EX_TEMPFAIL, "authorized_submit_users: %s", err);
        if (r == 0) {
                msg_fields(LOG_LEVEL_FATAL, &(struct log_fields){.catalog_id = CATALOG_SUBMIT_REFUSED},
                           "User %s(%ld) is not allowed to submit mail", user, (long)uid);
                exit(SUBMIT_EX_TEMPFAIL);
        }
}

const char *submit_default_config_dir(void)
{
        const char *e = secure_getenv("POSTD_DEFAULT_CONFIG_DIR");
        return !isempty(e) ? e : POSTD_CONFIG_DIR;
}

char *submit_config_dir_from_arg(const char *arg)
{
        size_t n = strlen(arg);
        const char *base = strrchr(arg, '/');
        if (base && streq(base + 1, "main.cf"))
                n = (size_t)(base - arg);
        while (n > 1 && arg[n - 1] == '/')
                n--;
        return xstrndup(arg, n);
}

static bool same_dir(const char *a, const char *b)
{
        _cleanup_free_ char *x = submit_config_dir_from_arg(a), *y = submit_config_dir_from_arg(b);
        return streq(x, y);
}

int submit_config_dir_allowed(const char *config_dir)
{
        const char *def = submit_default_config_dir();
        if (same_dir(config_dir, def))
                return 1;
        struct config *c = NULL;
        int r = config_load(def, &c);
        if (r < 0)
                return r;
        static const char *const params[] = {"alternate_config_directories", "multi_instance_directories"};
        bool ok = false;
        for (size_t i = 0; i < ELEMENTSOF(params) && !ok; i++) {
                struct strv l = STRV_INIT;
                config_get_list(c, params[i], &l);
                for (size_t j = 0; j < l.n && !ok; j++)
                        ok = same_dir(l.v[j], config_dir);
                strv_done(&l);
        }
        config_free(c);
        return ok;
}

int submit_trigger(const char *path, int timeout_ms)
{
        int fd = -1;
        int r = ipc_connect_unix(path, timeout_ms, &fd);
        if (r < 0)
                return r;
        if (send(fd, "W", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
                r = -errno;
        close(fd);
        return r;
}

void submit_fatal(int status, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        msg_vlog(LOG_LEVEL_FATAL, NULL, fmt, ap);
        va_end(ap);
        exit(status);
}

/* One address being collected: the bytes outside comments, and the route-addr once one is seen. */
struct addr_acc {
        struct buf plain;
        struct buf route;
        bool have_route;
        bool in_route;
};

static void acc_flush(struct addr_acc *a, struct strv *ret, size_t *added)
{
        struct buf *src = a->have_route ? &a->route : &a->plain;
        const char *s = buf_str(src);
        size_t n = src->len;
        while (n > 0 && (*s == ' ' || *s == '\t')) {
                s++;
                n--;
        }
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
                n--;
        /* Per call: ret may already hold the addresses of other arguments and headers. */
        if (n > 0 && n <= SUBMIT_ADDR_MAX && *added < SUBMIT_ADDRS_MAX) {
                strv_push_take(ret, xstrndup(s, n));
                (*added)++;
        }
        buf_truncate(&a->plain, 0);
        buf_truncate(&a->route, 0);
        a->have_route = a->in_route = false;
}

size_t submit_extract_addresses(const char *text, size_t len, struct strv *ret)
{
        struct addr_acc a = {BUF_INIT, BUF_INIT, false, false};
        size_t added = 0;
        unsigned comment = 0; /* nesting depth of (...) */
        bool quoted = false;
        for (size_t i = 0; i < len; i++) {
                char c = text[i];
                if (c == '\r' || c == '\n')
                        c = ' ';
                if (comment > 0) {
                        if (c == '\\' && i + 1 < len)
                                i++;
                        else if (c == '(')
                                comment++;
                        else if (c == ')')
                                comment--;
                        continue;
                }
                struct buf *dst = a.in_route ? &a.route : &a.plain;
                if (quoted) {
                        if (c == '\\' && i + 1 < len) {
                                buf_putc(dst, c);
                                c = text[++i];
                        } else if (c == '"')
                                quoted = false;
                        buf_putc(dst, c);
                        continue;
                }
                switch (c) {
                case '"':
                        quoted = true;
                        buf_putc(dst, c);
                        break;
                case '(': comment = 1; break;
                case '<':
                        a.in_route = true;
                        a.have_route = true;
                        buf_truncate(&a.route, 0);
                        break;
                case '>': a.in_route = false; break;
                case ':':
                        /* "group:" or a source route "<@a,@b:user@x>": both drop what came before. */
                        if (a.in_route)
                                buf_truncate(&a.route, 0);
                        else if (!a.have_route)
                                buf_truncate(&a.plain, 0);
                        break;
                case ',':
                        if (a.in_route)
                                break; /* source route list */
                        acc_flush(&a, ret, &added);
                        break;
                case ';': acc_flush(&a, ret, &added); break;
                default: buf_putc(dst, c);
                }
        }
        acc_flush(&a, ret, &added);
        buf_done(&a.plain);
        buf_done(&a.route);
        return added;
}

static bool header_is(const char *line, size_t len, const char *name)
{
        size_t n = strlen(name);
        return len > n && line[n] == ':' && strncasecmp(line, name, n) == 0;
}

void submit_extract_header_rcpts(const char *msg, size_t len, struct strv *rcpts, struct buf *out)
{
        /* Find the end of the header section: the first empty line, or a line that is not a header. */
        bool resent = false;
        size_t hdr_end = 0;
        for (size_t pos = 0; pos < len;) {
                const char *nl = memchr(msg + pos, '\n', len - pos);
                size_t line_len = nl ? (size_t)(nl - (msg + pos)) : len - pos;
                const char *line = msg + pos;
                if (line_len == 0)
                        break;
                bool cont = line[0] == ' ' || line[0] == '\t';
                if (!cont) {
                        const char *colon = memchr(line, ':', line_len);
                        if (!colon || colon == line)
                                break;
                        for (const char *p = line; p < colon; p++)
                                if (*p <= ' ' || *p > '~')
                                        goto end;
                        if (line_len > 7 && strncasecmp(line, "Resent-", 7) == 0)
                                resent = true;
                } else if (pos == 0)
                        break;
                pos += line_len + (nl ? 1 : 0);
                hdr_end = pos;
        }
end:;
        static const char *const plain[] = {"To", "Cc", "Bcc"};
        static const char *const rs[] = {"Resent-To", "Resent-Cc", "Resent-Bcc"};
        const char *const *names = resent ? rs : plain;
        bool drop = false, collect = false;
        struct buf value = BUF_INIT;
        for (size_t pos = 0; pos < hdr_end;) {
                const char *nl = memchr(msg + pos, '\n', hdr_end - pos);
                size_t line_len = nl ? (size_t)(nl - (msg + pos)) : hdr_end - pos;
                const char *line = msg + pos;
                bool cont = line[0] == ' ' || line[0] == '\t';
                if (!cont) {
                        if (collect)
                                submit_extract_addresses(buf_str(&value), value.len, rcpts);
                        buf_truncate(&value, 0);
                        collect = false;
                        for (size_t i = 0; i < 3; i++)
                                if (header_is(line, line_len, names[i])) {
                                        collect = true;
                                        size_t skip = strlen(names[i]) + 1;
                                        buf_append(&value, line + skip, line_len - skip);
                                }
                        drop = header_is(line, line_len, "Bcc") || header_is(line, line_len, "Resent-Bcc");
                } else if (collect) {
                        buf_putc(&value, ' ');
                        buf_append(&value, line, line_len);
                }
                if (!drop)
                        buf_append(out, line, line_len + (nl ? 1 : 0));
                pos += line_len + (nl ? 1 : 0);
        }
        if (collect)
                submit_extract_addresses(buf_str(&value), value.len, rcpts);
        buf_done(&value);
        buf_append(out, msg + hdr_end, len - hdr_end);
}

/* What the submission programs take from their caller's environment; the rest is dropped. */
static const char *const kept_env[] = {"TZ",       "MAIL_CONFIG", "LANG", "LC_ALL",
                                       "LC_CTYPE", "LC_MESSAGES", NULL};
/* postd's own switches (log destination, default instance): never from the caller of a set-gid program. */
static const char *const kept_env_unprivileged[] = {"POSTD_LOG", "POSTD_DEFAULT_CONFIG_DIR",
                                                    "POSTD_NO_SYSTEMCTL", NULL};

static void keep_env(struct strv *keep, const char *const *names)
{
        for (size_t i = 0; names[i]; i++) {
                const char *v = getenv(names[i]);
                if (v)
                        strv_push_take(keep, xasprintf("%s=%s", names[i], v));
        }
}

void submit_harden_process(void)
{
        /* A caller that closed 0, 1 or 2 would otherwise see the next file opened here (a queue file)
         * take that number and receive what is written to standard output or error. */
        for (int fd = 0; fd <= 2; fd++) {
                if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
                        continue;
                int n = open("/dev/null", O_RDWR);
                if (n != fd)
                        _exit(SUBMIT_EX_OSERR);
        }
        struct strv keep = STRV_INIT;
        keep_env(&keep, kept_env);
        if (!getauxval(AT_SECURE))
                keep_env(&keep, kept_env_unprivileged);
        clearenv();
        for (size_t i = 0; i < keep.n; i++) {
                char *eq = strchr(keep.v[i], '=');
                *eq = '\0';
                setenv(keep.v[i], eq + 1, 1);
        }
        strv_done(&keep);
}

/* One path of the configuration: no symbolic link and not writable by everyone. */
static void check_config_path(const char *path, bool dir)
{
        struct stat st;
        if (lstat(path, &st) < 0)
                return; /* opening it says what is wrong */
        if (S_ISLNK(st.st_mode))
                submit_fatal(
                        SUBMIT_EX_NOPERM,
                        "%s is a symbolic link: a set-gid mail program follows none in its configuration "
                        "(name the real path with -c or MAIL_CONFIG)",
                        path);
        if ((st.st_mode & S_IWOTH) || (dir && !S_ISDIR(st.st_mode)))
                submit_fatal(SUBMIT_EX_NOPERM,
                             "%s is writable by every user: refusing a configuration anyone could change "
                             "(chmod o-w %s)",
                             path, path);
}

void submit_check_config_paths(const char *config_dir)
{
        if (getuid() == 0)
                return; /* root may use any configuration it likes */
        check_config_path(config_dir, true);
        _cleanup_free_ char *main_cf = xasprintf("%s/main.cf", config_dir);
        check_config_path(main_cf, false);
}

struct config *submit_load_config(const char *dir_arg)
{
        const char *dir_source = "-c option";
        if (!dir_arg && !isempty(getenv("MAIL_CONFIG"))) {
                dir_arg = getenv("MAIL_CONFIG");
                dir_source = "MAIL_CONFIG environment variable";
        }
        _cleanup_free_ char *config_dir =
                submit_config_dir_from_arg(dir_arg ? dir_arg : submit_default_config_dir());
        /* We run set-gid: a directory named by the caller must be blessed by the default main.cf. */
        if (getuid() != 0) {
                int r = submit_config_dir_allowed(config_dir);
                if (r < 0)
                        submit_fatal(SUBMIT_EX_TEMPFAIL, "open %s/main.cf: %s", submit_default_config_dir(),
                                     strerror(-r));
                if (r == 0)
                        submit_fatal(SUBMIT_EX_NOPERM,
                                     "%s: non-default configuration directory %s is not listed in "
                                     "alternate_config_directories or multi_instance_directories of the "
                                     "default main.cf",
                                     dir_source, config_dir);
        }
        submit_check_config_paths(config_dir);
        struct config *cfg = NULL;
        int r = config_load(config_dir, &cfg);
        if (r < 0)
                submit_fatal(SUBMIT_EX_TEMPFAIL, "open %s/main.cf: %s", config_dir, strerror(-r));
        return cfg;
}
