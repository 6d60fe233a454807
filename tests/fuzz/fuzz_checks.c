/* fuzz_checks.c: header_checks/body_checks syntax: the action parser, the "/pattern/flags result" rule
 * parser, and whole pcre: tables built from the input and looked up. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "checks.h"
#include "checks_action.h"
#include "dict_pattern.h"
#include "postd-build.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_action(const char *text, bool header)
{
        struct checks_action a;
        const char *why = NULL;
        if (checks_action_parse(text, header, &a, &why) < 0) {
                if (!why)
                        abort();
                return;
        }
        /* The text lies inside the input, within the bound, without line breaks. */
        if (a.text < text || a.text + a.text_len > text + strlen(text) ||
            a.text_len > CHECKS_ACTION_TEXT_MAX || memchr(a.text, '\n', a.text_len) || a.kind > CHECKS_BCC)
                abort();
        if ((a.kind == CHECKS_REDIRECT || a.kind == CHECKS_BCC || a.kind == CHECKS_FILTER) &&
            a.text_len == 0)
                abort();
}

static void fuzz_rule(const char *text)
{
        struct dict_pattern_rule r;
        char *why = NULL;
        if (dict_pattern_parse(text, "imsxAEUX", &r, &why) < 0) {
                if (!why)
                        abort();
                free(why);
                return;
        }
        if (r.kind == DICT_PATTERN_MATCH &&
            (!r.result || r.max_ref < 0 || r.max_ref >= DICT_PATTERN_GROUPS_MAX))
                abort();
        if (r.kind != DICT_PATTERN_ENDIF &&
            (!r.pattern || !r.flags || strspn(r.flags, "imsxAEUX") != strlen(r.flags)))
                abort();
        dict_pattern_rule_done(&r);
}

#if HAVE_PCRE2
static void fuzz_table(const char *text, size_t len)
{
        struct dict_pattern_table t;
        char *err = NULL;
        if (dict_pattern_load_text("fuzz", text, len, &dict_pcre_ops, &t, &err) < 0) {
                free(err);
                return;
        }
        static const char *const keys[] = {"Subject: hello world", "", "a@b.example", "x\ny",
                                           "aaaaaaaaaaaaaaaaaaaa!"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
                char *v = NULL;
                if (dict_pattern_get(&t, keys[i], &v) > 0)
                        free(v);
        }
        dict_pattern_table_done(&t);
}
#endif

/*
 * The MIME tracker on arbitrary bodies: with no rule matching anything, what comes out is exactly what
 * went in, whatever the boundaries, part headers and piece sizes.
 */
static void fuzz_mime(const uint8_t *data, size_t size)
{
        static struct checks_conf conf;
        static bool ready;
        if (!ready) {
                const char *none[4] = {"", "", "", ""};
                checks_conf_init(&conf, none, 51200, true, 300);
                ready = true;
        }
        size_t piece = size > 0 ? 1 + data[0] % 64 : 1;
        struct checks_msg m;
        checks_msg_init(&m, &conf, "FUZZ", xstrdup("from fuzz"));
        static const char ct[] = "Content-Type: multipart/mixed; boundary=\"b\"";
        struct buf out = BUF_INIT, raw = BUF_INIT;
        if (!checks_header(&m, ct, sizeof ct - 1, &out))
                abort();
        checks_headers_done(&m);
        for (size_t off = 1; off < size; off += piece) {
                buf_append(&raw, data + off, size - off < piece ? size - off : piece);
                checks_body(&m, &raw, &out, false);
        }
        checks_body(&m, &raw, &out, true);
        if (raw.len != 0 || out.len != (size > 0 ? size - 1 : 0) ||
            (out.len && memcmp(out.data, data + 1, out.len)))
                abort();
        buf_done(&out);
        buf_done(&raw);
        checks_msg_done(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size >= 1 && data[0] >= 0xc0) {
                fuzz_mime(data + 1, size - 1);
                return 0;
        }
        if (size < 1 || size > 4096)
                return 0;
        char *text = xstrndup((const char *)data + 1, size - 1); /* stops at a NUL, as a table line does */
        switch (data[0] % 4) {
        case 0: fuzz_action(text, true); break;
        case 1: fuzz_action(text, false); break;
        case 2: fuzz_rule(text); break;
        default:
#if HAVE_PCRE2
                fuzz_table(text, strlen(text));
#endif
                break;
        }
        free(text);
        return 0;
}
