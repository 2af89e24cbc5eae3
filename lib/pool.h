/* pool: a team of worker threads for the CPU backend's short, frequent parallel loops (decoding's
 * matrix-vector products and single-query attention: some 60 per GPT-2 token). An OpenMP region
 * with passive waits costs about 48 us here (a futex wake of an idle virtual CPU), 0.5 us with
 * spinning waits, but spinning threads on a shared machine wait for descheduled spinners (3x
 * slower under load). The pool's workers wait by yielding (sched_yield) for a short while, then
 * sleep; work is claimed task by task, so the caller runs every task itself when a worker has
 * no CPU, and nobody waits for a worker that has not started.
 * Results never depend on the team: a task's items are computed by one thread in the same way
 * whoever runs them.
 * Ownership: the workers live until the process ends. Not reentrant: a call from inside a task
 * or from inside an OpenMP parallel region runs inline on the calling thread. */
#ifndef DLM_POOL_H
#define DLM_POOL_H

/* Computes items [lo, hi) of a pool_run call. */
typedef void (*pool_fn)(void *ctx, int lo, int hi);

/* Runs fn over items 0..n_items-1, cut into contiguous ranges that the caller and the workers
 * claim one at a time; returns when all are done (their writes visible to the caller). */
void pool_run(pool_fn fn, void *ctx, int n_items);

/* Uses n threads in all (the caller and n - 1 workers, started on first use); n >= 1. Until
 * called: omp_get_max_threads(). */
void pool_set_threads(int n);

#endif
