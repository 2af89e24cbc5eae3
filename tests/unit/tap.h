/* tap: the minimal Test Anything Protocol harness of the C unit tests.
 * Each CHECK prints "ok N - what" or "not ok N - what" (with file:line and details);
 * tap_done() returns the exit status: 0 when every check passed, 1 otherwise. */
#ifndef DLM_TAP_H
#define DLM_TAP_H

#include <stdio.h>

static int tap_count, tap_failed;

#define CHECK(cond, ...)                                                                \
    do {                                                                                \
        int tap_ok_ = !!(cond);                                                         \
        tap_count++;                                                                    \
        printf("%sok %d - ", tap_ok_ ? "" : "not ", tap_count);                         \
        printf(__VA_ARGS__);                                                            \
        putchar('\n');                                                                  \
        if (!tap_ok_) {                                                                 \
            tap_failed++;                                                               \
            printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);           \
        }                                                                               \
        fflush(stdout);                                                                 \
    } while (0)

/* Prints a diagnostic line that the runner ignores. */
#define NOTE(...) (printf("# "), printf(__VA_ARGS__), putchar('\n'))

static inline int tap_done(void)
{
    printf("1..%d\n", tap_count);
    return tap_failed ? 1 : 0;
}

#endif
