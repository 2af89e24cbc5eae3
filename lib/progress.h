/* progress: a progress line on stderr — redrawn in place on a terminal, or (when forced)
 * one plain line at most every few seconds, so logs of long runs show where they are.
 * Ownership: the caller owns the progress struct; nothing is allocated. Errors: none. */
#ifndef DLM_PROGRESS_H
#define DLM_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct progress {
    const char *what;   /* unit being counted, e.g. "records" (borrowed) */
    uint64_t total;     /* 0 when unknown */
    uint64_t done;
    double t_start, t_last;
    bool enabled, tty;
} progress;

/* Starts reporting when stderr is a terminal, or always when force is set (--progress). */
void progress_start(progress *p, const char *what, uint64_t total, bool force);

/* Records that `done` units are complete; redraws at most 4 times a second on a terminal,
 * every 5 seconds otherwise. Cheap enough to call per record. */
void progress_update(progress *p, uint64_t done);

/* Prints the final count, rate and elapsed time, and ends the line. */
void progress_finish(progress *p);

#endif
