/* fuzz_tablefile.c: the postmap, aliases, regexp-line and inline:{...} source parsers on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "tablefile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_entries(const struct tablefile *t, bool with_values)
{
        for (size_t i = 0; i < t->n_entries; i++) {
                /* invariants the table builders rely on */
                if (!t->entries[i].key || strlen(t->entries[i].key) > TABLEFILE_LINE_MAX)
                        abort();
                if (with_values != (t->entries[i].value != NULL))
                        abort();
        }
        if (t->n_diags > TABLEFILE_DIAGS_MAX)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *text = (const char *)data;
        struct tablefile t = TABLEFILE_INIT;

        tablefile_parse_map(text, size, &t);
        check_entries(&t, true);
        tablefile_done(&t);

        tablefile_parse_lines(text, size, &t);
        check_entries(&t, false);
        tablefile_done(&t);

        tablefile_parse_aliases(text, size, &t);
        check_entries(&t, true);
        for (size_t i = 0; i < t.n_entries; i++) {
                if (t.entries[i].key[0] == '\0' || t.entries[i].value[0] == '\0')
                        abort();
                struct strv v = STRV_INIT;
                tablefile_split_alias_targets(t.entries[i].value, &v);
                for (size_t j = 0; j < v.n; j++) {
                        char *arg = NULL;
                        tablefile_alias_target_kind(v.v[j], &arg);
                        free(arg);
                }
                strv_done(&v);
        }
        tablefile_done(&t);

        if (tablefile_parse_inline(text, size, &t) == 0)
                check_entries(&t, true);
        tablefile_done(&t);
        return 0;
}
