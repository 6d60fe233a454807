/* fuzz_mastercf.c: libFuzzer target for the master.cf parser; checks invariants of every parse result. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mastercf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct mastercf m;

        if (mastercf_parse((const char *)data, size, &m) < 0)
                return 0;
        if (m.n_services > MASTERCF_SERVICES_MAX || m.n_diags > MASTERCF_DIAGS_MAX + 1)
                abort();
        for (size_t i = 0; i < m.n_services; i++) {
                const struct mastercf_service *s = &m.services[i];
                if (!s->name || !s->command || !mastercf_type_to_string(s->type) || s->line == 0)
                        abort();
                if (mastercf_find(&m, s->name, s->type) != s)
                        abort(); /* duplicates must have been rejected */
                if ((s->type == MASTERCF_INET) != (s->port != NULL))
                        abort();
                if (s->type == MASTERCF_INET && s->private_)
                        abort();
                if (s->maxproc < -1 || s->maxproc > MASTERCF_MAXPROC_MAX || s->wakeup < 0)
                        abort();
                for (size_t j = 0; j < s->n_overrides; j++)
                        if (!s->overrides[j].name[0] || !s->overrides[j].value)
                                abort();
                for (size_t j = 0; j < s->args.n; j++)
                        if (!s->args.v[j])
                                abort();
        }
        for (size_t i = 0; i < m.n_diags; i++)
                if (!m.diags[i].message || strlen(m.diags[i].message) > 4096)
                        abort();
        mastercf_done(&m);
        return 0;
}
