/* err: formatting of error values (see err.h). */
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int err_set(err_t *e, const char *fmt, ...)
{
    if (!e) return ERR_FAIL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return ERR_FAIL;
}

int err_set_errno(err_t *e, const char *fmt, ...)
{
    int saved = errno;
    if (!e) return ERR_FAIL;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof e->msg)
        snprintf(e->msg + n, sizeof e->msg - (size_t)n, ": %s", strerror(saved));
    return ERR_FAIL;
}

int err_prefix(err_t *e, const char *fmt, ...)
{
    if (!e) return ERR_FAIL;
    char head[256], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    /* Truncation is acceptable here: a message longer than the buffer is cut, not lost. */
    size_t n = strlen(head);
    if (n > sizeof e->msg - 3) n = sizeof e->msg - 3;
    memcpy(e->msg, head, n);
    memcpy(e->msg + n, ": ", 2);
    size_t rest = sizeof e->msg - n - 3;
    size_t m = strnlen(old, rest);
    memcpy(e->msg + n + 2, old, m);
    e->msg[n + 2 + m] = '\0';
    return ERR_FAIL;
}
