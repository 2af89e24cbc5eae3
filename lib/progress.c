/* progress: rate-limited progress reporting on stderr (see progress.h). */
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_start(progress *p, const char *what, uint64_t total, bool force)
{
    p->what = what;
    p->total = total;
    p->done = 0;
    p->tty = isatty(STDERR_FILENO);
    p->enabled = p->tty || force;
    p->t_start = p->t_last = now_seconds();
}

static void draw(const progress *p, double t, const char *end)
{
    double elapsed = t - p->t_start;
    double rate = elapsed > 0 ? (double)p->done / elapsed : 0;
    fprintf(stderr, "%s%s: %llu", p->tty ? "\r" : "", log_tool(), (unsigned long long)p->done);
    if (p->total) {
        fprintf(stderr, "/%llu %s (%.0f%%)", (unsigned long long)p->total, p->what,
                100.0 * (double)p->done / (double)p->total);
        if (rate > 0 && p->done < p->total)
            fprintf(stderr, ", eta %.0fs", (double)(p->total - p->done) / rate);
    } else {
        fprintf(stderr, " %s", p->what);
    }
    fprintf(stderr, ", %.1f/s, %.1fs%s", rate, elapsed, end);
}

void progress_update(progress *p, uint64_t done)
{
    p->done = done;
    if (!p->enabled) return;
    double t = now_seconds();
    if (t - p->t_last < (p->tty ? 0.25 : 5.0)) return;
    p->t_last = t;
    draw(p, t, p->tty ? "\033[K" : "\n");
}

void progress_finish(progress *p)
{
    if (!p->enabled) return;
    draw(p, now_seconds(), p->tty ? "\033[K\n" : "\n");
}
