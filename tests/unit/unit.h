/* unit.h: a minimal test runner for postd's C unit tests; each check failure is reported with its line. */
#pragma once

#include <stdio.h>
#include <string.h>

typedef void (*unit_fn)(void);

void unit_register(const char *name, unit_fn fn);
void unit_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Scratch directory for this test executable (created on first use, removed at exit). */
const char *unit_tmpdir(void);
/* Write text to unit_tmpdir()/name and return the full path (static storage, overwritten next call). */
const char *unit_write_file(const char *name, const char *text);

#define TEST(name)                                                     \
        static void test_##name(void);                                 \
        __attribute__((constructor)) static void register_##name(void) \
        {                                                              \
                unit_register(#name, test_##name);                     \
        }                                                              \
        static void test_##name(void)

#define CHECK(cond)                                                        \
        do {                                                               \
                if (!(cond)) {                                             \
                        unit_fail(__FILE__, __LINE__, "CHECK(%s)", #cond); \
                        return;                                            \
                }                                                          \
        } while (0)

#define CHECK_INT(a, b)                                                                                   \
        do {                                                                                              \
                long long _a = (long long)(a), _b = (long long)(b);                                       \
                if (_a != _b) {                                                                           \
                        unit_fail(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", #a, _a, #b, _b); \
                        return;                                                                           \
                }                                                                                         \
        } while (0)

#define CHECK_STR(a, b)                                                                    \
        do {                                                                               \
                const char *_a = (a), *_b = (b);                                           \
                if (!_a || !_b || strcmp(_a, _b) != 0) {                                   \
                        unit_fail(__FILE__, __LINE__, "%s == \"%s\", expected \"%s\"", #a, \
                                  _a ? _a : "(null)", _b ? _b : "(null)");                 \
                        return;                                                            \
                }                                                                          \
        } while (0)
