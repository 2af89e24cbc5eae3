/* pool: the CPU backend's worker team (see pool.h).
 *
 * One job at a time, published by the caller (the "master") in `claim`: generation (32 bits),
 * next task (16) and task count (16). Anyone takes a task with a compare-and-swap that keeps the
 * generation, so a worker that wakes late cannot take a task of a later job; a successful claim
 * also keeps the job's fields (fn, ctx, items) alive, since the master starts no new job before
 * every task of this one has reported to `done`. */
#include "pool.h"

#include <limits.h>
#include <linux/futex.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

enum {
    MAX_THREADS = 256,
    TASKS_PER_THREAD = 8,       /* ranges per thread: balance against claims (one CAS each) */
    IDLE_SPIN_NS = 2000000,     /* a worker yields this long for the next job before sleeping */
};

static struct {
    _Atomic uint64_t claim;     /* generation << 32 | next << 16 | tasks */
    _Atomic uint32_t gen;       /* the futex word: the generation of the latest job */
    _Atomic int sleepers;       /* workers in futex_wait */
    _Atomic int done;           /* tasks of the current job finished */
    _Atomic(pool_fn) fn;
    _Atomic(void *) ctx;
    _Atomic int items;
    _Atomic int workers;        /* workers allowed to take part in the current job */
    int threads;                /* pool_set_threads (0: not set) */
    int started;                /* workers running */
} pool;

static _Thread_local bool in_task;

static void futex_wait(_Atomic uint32_t *word, uint32_t expected)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Polls, yielding the CPU between looks (to a thread of ours or anyone's that needs it). */
static void relax(int round)
{
    if (round >= 32)
        sched_yield();
#if defined(__x86_64__) || defined(__i386__)
    else
        __builtin_ia32_pause();
#endif
}

/* Takes tasks of generation g until none is left. */
static void take_tasks(uint32_t g)
{
    uint64_t c = atomic_load_explicit(&pool.claim, memory_order_acquire);
    for (;;) {
        uint32_t next = (uint32_t)(c >> 16) & 0xFFFF, tasks = (uint32_t)c & 0xFFFF;
        if ((uint32_t)(c >> 32) != g || next >= tasks) return;
        if (!atomic_compare_exchange_weak_explicit(&pool.claim, &c, c + (1u << 16),
                                                   memory_order_acq_rel, memory_order_acquire))
            continue;
        pool_fn fn = atomic_load_explicit(&pool.fn, memory_order_relaxed);
        void *ctx = atomic_load_explicit(&pool.ctx, memory_order_relaxed);
        long n = atomic_load_explicit(&pool.items, memory_order_relaxed);
        in_task = true;
        fn(ctx, (int)(n * next / tasks), (int)(n * (next + 1) / tasks));
        in_task = false;
        atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
        c = atomic_load_explicit(&pool.claim, memory_order_acquire);
    }
}

static void *worker(void *arg)
{
    int self = (int)(intptr_t)arg;
    uint32_t seen = atomic_load(&pool.gen);
    for (;;) {
        uint32_t g;
        long long t0 = now_ns();
        for (int round = 0; (g = atomic_load(&pool.gen)) == seen; round++) {
            relax(round);
            if ((round & 63) == 63 && now_ns() - t0 > IDLE_SPIN_NS) {
                atomic_fetch_add(&pool.sleepers, 1);
                while ((g = atomic_load(&pool.gen)) == seen) futex_wait(&pool.gen, seen);
                atomic_fetch_sub(&pool.sleepers, 1);
                break;
            }
        }
        seen = g;
        if (self < atomic_load_explicit(&pool.workers, memory_order_relaxed)) take_tasks(g);
    }
    return NULL;
}

/* Starts workers up to want (called by the master only). */
static void start_workers(int want)
{
    while (pool.started < want) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, worker, (void *)(intptr_t)pool.started);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            log_warn("pool: cannot start a worker thread; running with %d", pool.started + 1);
            return;
        }
        pool.started++;
    }
}

void pool_set_threads(int n)
{
    pool.threads = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n;
}

void pool_run(pool_fn fn, void *ctx, int n_items)
{
    if (n_items <= 0) return;
    int threads = pool.threads ? pool.threads : omp_get_max_threads();
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads < 2 || n_items < 2 || in_task || omp_in_parallel()) {
        fn(ctx, 0, n_items);
        return;
    }
    start_workers(threads - 1);
    int workers = pool.started < threads - 1 ? pool.started : threads - 1;
    int tasks = threads * TASKS_PER_THREAD;
    if (tasks > n_items) tasks = n_items;

    atomic_store_explicit(&pool.fn, fn, memory_order_relaxed);
    atomic_store_explicit(&pool.ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&pool.items, n_items, memory_order_relaxed);
    atomic_store_explicit(&pool.workers, workers, memory_order_relaxed);
    atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
    uint32_t g = atomic_load_explicit(&pool.gen, memory_order_relaxed) + 1;
    atomic_store_explicit(&pool.claim, (uint64_t)g << 32 | (uint64_t)tasks, memory_order_release);
    atomic_store(&pool.gen, g); /* seq_cst: ordered before the sleepers check below */
    if (atomic_load(&pool.sleepers) > 0) futex_wake_all(&pool.gen);

    take_tasks(g);
    for (int round = 0; atomic_load_explicit(&pool.done, memory_order_acquire) < tasks; round++)
        relax(round);
}
