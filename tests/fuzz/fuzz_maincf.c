/* fuzz_maincf.c: libFuzzer target for the main.cf parser, the editor and $name expansion, with invariants.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "maincf.h"
#include "params.h"

/* Expanding the input as free text: at most this much of it. */
#define FUZZ_EXPAND_TEXT_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_parse(const struct maincf *m, size_t size)
{
        if (m->n_diags > MAINCF_DIAGS_MAX || m->n_entries > MAINCF_ENTRIES_MAX)
                abort();
        for (size_t i = 0; i < m->n_entries; i++) {
                const struct maincf_entry *e = &m->entries[i];
                if (!param_valid_name(e->name, strlen(e->name)) || e->line == 0 || e->line > e->last_line)
                        abort();
                if (e->start >= e->end || e->end > size || strlen(e->value) > MAINCF_LINE_MAX)
                        abort();
                if (i > 0 && e->start < m->entries[i - 1].end)
                        abort();
        }
        for (size_t i = 0; i < m->n_diags; i++)
                if (!m->diags[i].message || m->diags[i].line == 0)
                        abort();
}

/* Editing one entry must leave every other parameter's effective value alone. */
static void check_edit(const char *text, size_t size, const struct maincf *m)
{
        if (m->n_entries == 0)
                return;
        const char *target = m->entries[0].name;
        struct maincf_edit e[] = {{target, "edited value", MAINCF_EDIT_SET}};
        char *out = NULL;
        size_t out_len = 0;
        if (maincf_edit(text, size, e, 1, &out, &out_len) < 0)
                return; /* only -EFBIG is possible here */
        struct maincf after;
        if (maincf_parse(out, out_len, &after) < 0)
                abort();
        const struct maincf_entry *t = maincf_find(&after, target);
        if (!t || strcmp(t->value, "edited value") != 0)
                abort();
        for (size_t i = 0; i < m->n_entries; i++) {
                const char *name = m->entries[i].name;
                if (strcmp(name, target) == 0)
                        continue;
                const struct maincf_entry *a = maincf_find(&after, name);
                if (!a || strcmp(a->value, maincf_find(m, name)->value) != 0)
                        abort();
        }
        maincf_done(&after);
        free(out);
}

static void check_config(const char *text, size_t size)
{
        struct config *c = NULL;
        if (config_load_text("/fuzz", text, size, &c) < 0)
                return;
        config_set_hostname(c, "fuzz.example");
        const struct maincf *m = config_maincf(c);
        for (size_t i = 0; i < m->n_entries && i < 64; i++) {
                char *ref = xasprintf("${%s}", m->entries[i].name);
                char *out = NULL, *err = NULL;
                config_expand(c, ref, &out, &err);
                if (!out || strlen(out) > CONFIG_EXPAND_OUTPUT_MAX)
                        abort();
                free(out);
                free(err);
                free(ref);
        }
        struct strv v = STRV_INIT;
        config_check(c, &v);
        config_list_unused(c, &v);
        strv_done(&v);

        char *copy = xstrndup(text, size < FUZZ_EXPAND_TEXT_MAX ? size : FUZZ_EXPAND_TEXT_MAX);
        char *out = NULL, *err = NULL;
        config_expand(c, copy, &out, &err);
        if (!out || strlen(out) > CONFIG_EXPAND_OUTPUT_MAX)
                abort();
        config_split_list(out, &v);
        strv_done(&v);
        free(out);
        free(err);
        free(copy);
        config_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *text = (const char *)data;
        struct maincf m;
        if (maincf_parse(text, size, &m) < 0) {
                if (size <= MAINCF_FILE_MAX)
                        abort();
                return 0;
        }
        check_parse(&m, size);
        check_edit(text, size, &m);
        maincf_done(&m);
        check_config(text, size);
        return 0;
}
