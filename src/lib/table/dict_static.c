/* dict_static.c: static:value tables, where every key maps to the same value ("static:anyone"). */
#include <errno.h>

#include "alloc.h"
#include "dict.h"
#include "macro.h"

struct dict_static {
        struct dict d;
        char *value;
};

static bool blank(char c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int static_open(const char *name, struct dict **ret, char **ret_error)
{
        const char *p = name;
        size_t n = strlen(name);
        /* static:{ text with spaces } protects blanks from list splitting; the braces are not part of the
         * value. */
        if (n >= 2 && p[0] == '{' && p[n - 1] == '}') {
                p++;
                n -= 2;
                while (n > 0 && blank(*p)) {
                        p++;
                        n--;
                }
                while (n > 0 && blank(p[n - 1]))
                        n--;
        }
        struct dict_static *s = xcalloc(1, sizeof(*s));
        s->value = xstrndup(p, n);
        *ret = &s->d;
        return 0;
}

static int static_get(struct dict *d, const char *key, char **ret_value)
{
        *ret_value = xstrdup(((struct dict_static *)d)->value);
        return 1;
}

static void static_close(struct dict *d)
{
        struct dict_static *s = (struct dict_static *)d;
        free(s->value);
        free(s);
}

const struct dict_type dict_type_static = {
        .name = "static",
        .fold = false,
        .open = static_open,
        .get = static_get,
        .close = static_close,
};
