/* mastercf_load.c: read DIR/master.cf and parse it: the one place that does (the parser stays pure). */
#include "mastercf.h"

#include "alloc.h"
#include "fileio.h"
#include "macro.h"

char *mastercf_path(const char *config_dir)
{
        return xasprintf("%s/master.cf", config_dir);
}

int mastercf_load(const char *config_dir, struct mastercf *ret)
{
        _cleanup_free_ char *path = mastercf_path(config_dir);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        *ret = (struct mastercf){0};
        int r = read_file(path, MASTERCF_TEXT_MAX, &text, &len);
        return r < 0 ? r : mastercf_parse(text, len, ret);
}
