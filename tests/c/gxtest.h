/* A minimal C test harness: CHECK(cond, ...) records a failure and goes on; TEST_MAIN prints the
 * closing line "N passed, N failed" and exits non-zero on any failure. */
#ifndef GXTEST_H
#define GXTEST_H
#include <stdio.h>
#include <stdlib.h>

static int gxt_passed, gxt_failed;

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (cond) {                                                                   \
            gxt_passed++;                                                             \
        } else {                                                                      \
            gxt_failed++;                                                             \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
        }                                                                             \
    } while (0)

#define TEST_DONE()                                                                   \
    do {                                                                              \
        printf("%d passed, %d failed\n", gxt_passed, gxt_failed);                     \
        return gxt_failed ? 1 : 0;                                                    \
    } while (0)
#endif
