/* unit.c: runs every TEST() of one executable and ends with "N passed, N failed". */
#include "unit.h"

#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_TESTS 512

static struct {
        const char *name;
        unit_fn fn;
} tests[MAX_TESTS];
static int n_tests;
static int current_failed;
static char tmpdir[256];

void unit_register(const char *name, unit_fn fn)
{
        if (n_tests >= MAX_TESTS) {
                fprintf(stderr, "too many tests\n");
                exit(2);
        }
        tests[n_tests].name = name;
        tests[n_tests].fn = fn;
        n_tests++;
}

void unit_fail(const char *file, int line, const char *fmt, ...)
{
        va_list ap;
        fprintf(stderr, "  %s:%d: ", file, line);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        current_failed = 1;
}

static void remove_tmpdir(void)
{
        if (tmpdir[0]) {
                char cmd[300];
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
                if (system(cmd) != 0)
                        fprintf(stderr, "could not remove %s\n", tmpdir);
        }
}

const char *unit_tmpdir(void)
{
        if (!tmpdir[0]) {
                snprintf(tmpdir, sizeof tmpdir, "/tmp/postd-unit-XXXXXX");
                if (!mkdtemp(tmpdir)) {
                        perror("mkdtemp");
                        exit(2);
                }
                atexit(remove_tmpdir);
        }
        return tmpdir;
}

const char *unit_write_file(const char *name, const char *text)
{
        static char path[512];
        snprintf(path, sizeof path, "%s/%s", unit_tmpdir(), name);
        FILE *f = fopen(path, "w");
        if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
                perror(path);
                exit(2);
        }
        return path;
}

int main(int argc, char **argv)
{
        int passed = 0, failed = 0;
        for (int i = 0; i < n_tests; i++) {
                if (argc > 1 && strcmp(argv[1], tests[i].name) != 0)
                        continue;
                current_failed = 0;
                tests[i].fn();
                if (current_failed) {
                        failed++;
                        printf("FAIL %s\n", tests[i].name);
                } else {
                        passed++;
                        printf("ok   %s\n", tests[i].name);
                }
        }
        printf("%d passed, %d failed\n", passed, failed);
        return failed ? 1 : 0;
}
