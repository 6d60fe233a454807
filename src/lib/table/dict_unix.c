/* dict_unix.c: unix:passwd.byname, the system password database as a table (getpwnam). */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>

#include "alloc.h"
#include "dict.h"
#include "macro.h"

/* getpwnam_r buffer: start small, double on ERANGE up to this. */
#define DICT_UNIX_BUF_MAX (1024 * 1024)

static int unix_open(const char *name, struct dict **ret, char **ret_error)
{
        if (!streq(name, "passwd.byname")) {
                *ret_error = xasprintf("unix:%s: unknown table (supported: passwd.byname)", name);
                return -EINVAL;
        }
        *ret = xcalloc(1, sizeof(struct dict));
        return 0;
}

static int unix_get(struct dict *d, const char *key, char **ret_value)
{
        size_t size = 4096;
        for (;;) {
                _cleanup_free_ char *buf = xmalloc(size);
                struct passwd pw, *result = NULL;
                int r = getpwnam_r(key, &pw, buf, size, &result);
                if (r == ERANGE && size < DICT_UNIX_BUF_MAX) {
                        size *= 2;
                        continue;
                }
                if (r == ENOENT || r == ESRCH)
                        return 0; /* some NSS modules say "no such user" this way */
                if (r != 0)
                        return -r;
                if (!result)
                        return 0;
                *ret_value = xasprintf("%s:%s:%lu:%lu:%s:%s:%s", pw.pw_name,
                                       pw.pw_passwd ? pw.pw_passwd : "", (unsigned long)pw.pw_uid,
                                       (unsigned long)pw.pw_gid, pw.pw_gecos ? pw.pw_gecos : "",
                                       pw.pw_dir ? pw.pw_dir : "", pw.pw_shell ? pw.pw_shell : "");
                return 1;
        }
}

static void unix_close(struct dict *d)
{
        free(d);
}

const struct dict_type dict_type_unix = {
        .name = "unix",
        .fold = false,
        .open = unix_open,
        .get = unix_get,
        .close = unix_close,
};
