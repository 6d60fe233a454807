/* fuzz_alias.c: libFuzzer target for alias value splitting and bounded, loop-safe alias expansion. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "alloc.h"
#include "local.h"

/* The input is an alias table, "name: value" per line; "a" is expanded. */
struct table {
        struct strv names, values;
};

static int lookup(void *userdata, const char *key, char **ret)
{
        struct table *t = userdata;
        for (size_t i = 0; i < t->names.n; i++)
                if (streq(t->names.v[i], key)) {
                        *ret = xstrdup(t->values.v[i]);
                        return 1;
                }
        return 0;
}

static int is_local(void *userdata, const char *domain)
{
        return streq(domain, "here");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size > 64 * 1024)
                return 0;
        char *text = xstrndup((const char *)data, size);
        struct table t = {STRV_INIT, STRV_INIT};
        char *save = NULL;
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *colon = strchr(line, ':');
                if (!colon)
                        continue;
                *colon = '\0';
                strv_push(&t.names, line);
                strv_push(&t.values, colon + 1);
        }
        for (size_t i = 0; i < t.values.n; i++) {
                struct strv members = STRV_INIT;
                if (alias_split(t.values.v[i], &members) == 0)
                        for (size_t k = 0; k < members.n; k++)
                                if (members.v[k][0] == '\0')
                                        __builtin_trap(); /* empty members are dropped */
                strv_done(&members);
        }
        struct alias_list out;
        if (alias_expand("a", "+-", lookup, is_local, &t, &out) == 0) {
                if (out.n == 0 && t.names.n == 0)
                        __builtin_trap(); /* no alias: the name itself is the user */
                if (out.n > ALIAS_TARGETS_MAX)
                        __builtin_trap();
                for (size_t i = 0; i < out.n; i++)
                        for (size_t k = i + 1; k < out.n; k++)
                                if (out.v[i].kind == out.v[k].kind && streq(out.v[i].value, out.v[k].value))
                                        __builtin_trap(); /* duplicates are removed */
                alias_list_done(&out);
        }
        strv_done(&t.names);
        strv_done(&t.values);
        free(text);
        return 0;
}
