/* test_buf.c: buffer, string vector and atomic file replacement. */
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "alloc.h"
#include "buf.h"
#include "fileio.h"

TEST(buf_append_and_printf)
{
        struct buf b = BUF_INIT;
        CHECK_STR(buf_str(&b), "");
        buf_puts(&b, "hello");
        buf_putc(&b, ' ');
        buf_printf(&b, "%d-%s", 42, "x");
        CHECK_STR(buf_str(&b), "hello 42-x");
        CHECK_INT(b.len, 10);
        for (int i = 0; i < 1000; i++)
                buf_putc(&b, 'a');
        CHECK_INT(b.len, 1010);
        buf_truncate(&b, 5);
        char *s = buf_steal(&b);
        CHECK_STR(s, "hello");
        CHECK(b.data == NULL);
        free(s);
}

TEST(strv_split_skips_empty_fields)
{
        struct strv v = STRV_INIT;
        strv_split(&v, " a, b,,\tc \n", ", \t\r\n");
        CHECK_INT(v.n, 3);
        CHECK_STR(v.v[0], "a");
        CHECK_STR(v.v[2], "c");
        CHECK(v.v[3] == NULL);
        strv_done(&v);
}

TEST(write_file_atomic_replaces_and_sets_mode)
{
        char *path = xasprintf("%s/atomic", unit_tmpdir());
        CHECK_INT(write_file_atomic(path, "one\n", 4, 0640), 0);
        CHECK_INT(write_file_atomic(path, "two\n", 4, 0644), 0);
        char *text = NULL;
        size_t len = 0;
        CHECK_INT(read_file(path, 1024, &text, &len), 0);
        CHECK_STR(text, "two\n");
        struct stat st;
        CHECK_INT(stat(path, &st), 0);
        CHECK_INT(st.st_mode & 07777, 0644);
        free(text);
        CHECK_INT(read_file(path, 2, &text, &len), -EFBIG);
        free(path);
}
