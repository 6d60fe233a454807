/* dsn_notify.c: the one parser of RFC 3461 NOTIFY= keywords. */
#include "dsn_notify.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

static const struct {
        const char *word;
        unsigned bit;
} words[] = {
        {"NEVER", DSN_NOTIFY_NEVER},
        {"SUCCESS", DSN_NOTIFY_SUCCESS},
        {"FAILURE", DSN_NOTIFY_FAILURE},
        {"DELAY", DSN_NOTIFY_DELAY},
};

static bool blank(char c)
{
        return c == ' ' || c == '\t';
}

static int word_bit(const char *w, size_t len, unsigned *ret)
{
        while (len > 0 && blank(*w))
                w++, len--;
        while (len > 0 && blank(w[len - 1]))
                len--;
        for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
                if (strlen(words[i].word) == len && strncasecmp(w, words[i].word, len) == 0) {
                        *ret = words[i].bit;
                        return 0;
                }
        return -EINVAL;
}

int dsn_notify_parse(const char *v, size_t len, unsigned *ret)
{
        unsigned bits = 0;
        size_t start = 0;
        for (size_t i = 0; i <= len; i++) {
                if (i < len && v[i] != ',')
                        continue;
                unsigned bit;
                if (word_bit(v + start, i - start, &bit) < 0 || (bits & bit))
                        return -EINVAL;
                bits |= bit;
                start = i + 1;
        }
        if ((bits & DSN_NOTIFY_NEVER) && bits != DSN_NOTIFY_NEVER)
                return -EINVAL;
        *ret = bits;
        return 0;
}
