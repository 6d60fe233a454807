/* ub_halts.c: one signed overflow; exits 0 only if the sanitizer reported it and let the program go on.
 *
 * Built with the flags of a sanitizer build, it must die on the overflow (-fno-sanitize-recover=all):
 * meson runs it with should_fail, and tests/fuzz/run.sh runs the fuzz build's copy and expects a
 * non-zero exit with a "runtime error" report. Nothing else in it can fail. */
#include <limits.h>
#include <stdio.h>

int main(void)
{
        volatile int big = INT_MAX; /* volatile: the compiler cannot fold the overflow away */
        int sum = big + 1;
        printf("the overflow did not stop the program (sum %d): UB reports do not halt\n", sum);
        return 0;
}
