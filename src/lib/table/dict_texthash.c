/* dict_texthash.c: texthash: tables, a postmap source file read into memory (no .db file). */
#include <errno.h>
#include <stdio.h>

#include "alloc.h"
#include "dict.h"
#include "log.h"
#include "macro.h"

struct dict_texthash {
        struct dict d;
        struct dict_mem mem;
};

static int texthash_open(const char *name, struct dict **ret, char **ret_error)
{
        struct tablefile t = TABLEFILE_INIT;
        int r = dict_load_source(name, "", tablefile_parse_map, &t, ret_error);
        if (r < 0)
                return r;
        struct dict_texthash *h = xcalloc(1, sizeof(*h));
        dict_mem_init(&h->mem, &t, true, name);
        tablefile_done(&t);
        *ret = &h->d;
        return 0;
}

static int texthash_get(struct dict *d, const char *key, char **ret_value)
{
        return dict_mem_get(&((struct dict_texthash *)d)->mem, key, ret_value);
}

static int texthash_walk(struct dict *d, dict_walk_fn fn, void *userdata)
{
        return dict_mem_walk(&((struct dict_texthash *)d)->mem, fn, userdata);
}

static void texthash_close(struct dict *d)
{
        struct dict_texthash *h = (struct dict_texthash *)d;
        dict_mem_done(&h->mem);
        free(h);
}

const struct dict_type dict_type_texthash = {
        .name = "texthash",
        .fold = true,
        .open = texthash_open,
        .get = texthash_get,
        .walk = texthash_walk,
        .close = texthash_close,
};
