/* The worker pool (lib/pool.h): every item of a job is computed exactly once, by whichever thread,
 * for any item count and team size; jobs follow one another without mixing; a call from inside
 * a task or an OpenMP region runs inline; many short jobs in a row (the decoding pattern) all
 * complete. */
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "../../lib/pool.h"
#include "tap.h"

struct count_job {
    _Atomic int *hits;   /* per item: how many times it was computed */
    int job;             /* written into stamp[item], to catch items given to the wrong job */
    int *stamp;
};

static void count_items(void *ctx, int lo, int hi)
{
    struct count_job *c = ctx;
    for (int i = lo; i < hi; i++) {
        atomic_fetch_add(&c->hits[i], 1);
        c->stamp[i] = c->job;
    }
}

/* Runs a job of n items; true when each was computed once and stamped by this job. */
static bool run_once(int n, int job, _Atomic int *hits, int *stamp)
{
    for (int i = 0; i < n; i++) atomic_store(&hits[i], 0);
    struct count_job c = {hits, job, stamp};
    pool_run(count_items, &c, n);
    for (int i = 0; i < n; i++)
        if (atomic_load(&hits[i]) != 1 || stamp[i] != job) return false;
    return true;
}

/* A task that starts a nested job: it must run inline on the same thread. */
struct nested {
    _Atomic int inline_ok;
};

static void note_thread(void *ctx, int lo, int hi)
{
    (void)lo, (void)hi;
    pthread_t *caller = ctx;
    if (!pthread_equal(*caller, pthread_self())) abort(); /* not inline */
}

static void nested_task(void *ctx, int lo, int hi)
{
    struct nested *n = ctx;
    for (int i = lo; i < hi; i++) {
        pthread_t self = pthread_self();
        pool_run(note_thread, &self, 7);
        atomic_fetch_add(&n->inline_ok, 1);
    }
}

int main(void)
{
    enum { MAX = 100000 };
    _Atomic int *hits = calloc(MAX, sizeof *hits);
    int *stamp = calloc(MAX, sizeof *stamp);
    if (!hits || !stamp) return 1;

    static const int sizes[] = {1, 2, 3, 15, 16, 17, 255, 1000, 50257, MAX};
    int job = 0;
    for (int threads = 1; threads <= 4; threads++) {
        pool_set_threads(threads);
        bool ok = true;
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            ok &= run_once(sizes[s], ++job, hits, stamp);
        CHECK(ok, "%d thread(s): every item of jobs of 1..%d items computed exactly once", threads,
              MAX);
    }

    /* the decoding pattern: many short jobs back to back, alternating sizes */
    pool_set_threads(2);
    bool ok = true;
    for (int r = 0; r < 20000 && ok; r++) ok = run_once(r % 2 ? 768 : 9, ++job, hits, stamp);
    CHECK(ok, "20000 short jobs in a row: each complete, none mixed with the next");

    struct nested n = {0};
    pool_run(nested_task, &n, 64);
    CHECK(atomic_load(&n.inline_ok) == 64, "a job started inside a task runs inline (64 tasks)");

    _Atomic int inside = 0;
#pragma omp parallel num_threads(2)
    {
        pthread_t self = pthread_self();
        pool_run(note_thread, &self, 100); /* aborts if run on another thread */
        atomic_fetch_add(&inside, 1);
    }
    CHECK(atomic_load(&inside) >= 1, "inside an OpenMP region a job runs inline");

    free(hits);
    free(stamp);
    return tap_done();
}
