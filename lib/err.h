/* err: error values for lib/ — a status code plus a message the caller prints.
 * Ownership: err_t is a caller-owned fixed buffer; nothing is allocated.
 * Errors: err_set() returns ERR_FAIL so `return err_set(e, ...)` reports in one line. */
#ifndef DLM_ERR_H
#define DLM_ERR_H

#include <stdarg.h>

/* Status convention shared by every module:
 *   >= 0  success (a count or an index where that is useful),
 *   -1    clean end of input (readers only),
 *   <= -2 error, described in the err_t the caller passed. */
enum { ERR_EOF = -1, ERR_FAIL = -2 };

typedef struct err {
    char msg[512];
} err_t;

/* Formats the message into e (e may be NULL) and returns ERR_FAIL. */
int err_set(err_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like err_set, with ": strerror(errno)" appended. */
int err_set_errno(err_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "context: " to the message already in e (e.g. the file name); returns ERR_FAIL. */
int err_prefix(err_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
