/* fuzz_dsnlog.c: libFuzzer target for the per-message log parser; every record it accepts must re-encode. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dsnlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(const char *a, const char *b)
{
        return strcmp(a ? a : "", b ? b : "") == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        /* An exact-size copy (the parser decodes in place), so that any access past the end is caught. */
        char *copy = malloc(size ? size : 1);
        if (!copy)
                return 0;
        memcpy(copy, data, size);
        struct dsnlog l = {.data = copy};
        int r = dsnlog_parse(copy, size, &l.recs, &l.n, &l.n_bad);
        if (r < 0 && r != -E2BIG)
                abort();
        for (size_t i = 0; i < l.n; i++) {
                const struct dsnlog_rec *rec = &l.recs[i];
                struct buf b = BUF_INIT;
                if (dsnlog_format(rec, &b) < 0)
                        abort();
                struct dsnlog_rec *again;
                size_t n, bad;
                if (dsnlog_parse(b.data, b.len, &again, &n, &bad) < 0 || n != 1 || bad != 0)
                        abort();
                if (again[0].time_usec != rec->time_usec || again[0].index != rec->index ||
                    again[0].notify != rec->notify || !same(again[0].rcpt, rec->rcpt) ||
                    !same(again[0].orig_rcpt, rec->orig_rcpt) || !same(again[0].orcpt, rec->orcpt) ||
                    !same(again[0].action, rec->action) || !same(again[0].status, rec->status) ||
                    !same(again[0].relay, rec->relay) || !same(again[0].reason, rec->reason))
                        abort();
                free(again);
                buf_done(&b);
        }
        const struct dsnlog_rec **latest;
        size_t nl = dsnlog_latest(&l, &latest);
        if (nl > l.n)
                abort();
        free(latest);
        free(l.recs);
        free(copy);
        return 0;
}
