/* dict_inline.c: inline:{ key=value, { key = value with spaces } } tables written in main.cf. */
#include <errno.h>

#include "alloc.h"
#include "dict.h"
#include "macro.h"

struct dict_inline {
        struct dict d;
        struct dict_mem mem;
};

static int inline_open(const char *name, struct dict **ret, char **ret_error)
{
        struct tablefile t = TABLEFILE_INIT;
        int r = tablefile_parse_inline(name, strlen(name), &t);
        if (r < 0) {
                *ret_error =
                        xasprintf("inline:%s: %s", name, t.n_diags ? t.diags[0].message : "syntax error");
                tablefile_done(&t);
                return r;
        }
        struct dict_inline *in = xcalloc(1, sizeof(*in));
        dict_mem_init(&in->mem, &t, true, NULL);
        tablefile_done(&t);
        *ret = &in->d;
        return 0;
}

static int inline_get(struct dict *d, const char *key, char **ret_value)
{
        return dict_mem_get(&((struct dict_inline *)d)->mem, key, ret_value);
}

static int inline_walk(struct dict *d, dict_walk_fn fn, void *userdata)
{
        return dict_mem_walk(&((struct dict_inline *)d)->mem, fn, userdata);
}

static void inline_close(struct dict *d)
{
        struct dict_inline *in = (struct dict_inline *)d;
        dict_mem_done(&in->mem);
        free(in);
}

const struct dict_type dict_type_inline = {
        .name = "inline",
        .fold = true,
        .open = inline_open,
        .get = inline_get,
        .walk = inline_walk,
        .close = inline_close,
};
