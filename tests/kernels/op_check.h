/* op_check: the harness the CUDA-vs-CPU op tests (tests/kernels/test_*.c) share: random inputs,
 * uploads and downloads, element-wise comparison as TAP lines, and the choice of the backend
 * under test (the CUDA backend; with --cpu-self a copy of the CPU backend's table, which checks a
 * test's buffer sizes and shapes, and the library's paths for a device, on a machine without a
 * GPU; exit 77 = skipped when there is no device). Header-only (static functions), like
 * tests/unit/tap.h; each test is one program. */
#ifndef DLM_OP_CHECK_H
#define DLM_OP_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/backend_cuda.cuh"
#include "../../kernels/cuda_info.cuh"
#include "../../lib/backend.h"
#include "../unit/tap.h"

enum { EXIT_SKIP = 77 };

/* the reference and the backend under test (set by op_check_start); cpu_self: --cpu-self */
static const backend *cpu = &backend_cpu, *gpu;
static int cpu_self;

// ---- helpers ----------------------------------------------------------------------------------

static uint64_t rng = 0x9e3779b97f4a7c15ull;

/* uniform in [-1, 1) (xorshift64*; the inputs only need to be varied, not a stream spec) */
static inline float urand(void)
{
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (float)((rng * 2685821657736338717ull) >> 40) / (float)(1 << 23) - 1.0f;
}

static inline float *rnd(size_t n, float scale)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    if (!x) abort();
    for (size_t i = 0; i < n; i++) x[i] = scale * urand();
    return x;
}

static inline void *copy_of(const void *p, size_t bytes)
{
    void *q = malloc(bytes ? bytes : 1);
    if (!q) abort();
    memcpy(q, p, bytes);
    return q;
}

/* host -> new device buffer (NULL stays NULL) */
static inline void *up(const void *h, size_t bytes)
{
    if (!h) return NULL;
    err_t e;
    void *d = gpu->alloc(bytes);
    if (!d || gpu->to_device(d, h, bytes, &e) != 0) {
        fprintf(stderr, "test_ops: cannot upload %zu bytes\n", bytes);
        exit(1);
    }
    return d;
}

/* device buffer -> new host buffer; frees the device buffer */
static inline void *down(void *d, size_t bytes)
{
    err_t e;
    void *h = malloc(bytes ? bytes : 1);
    if (!h || gpu->to_host(h, d, bytes, &e) != 0) {
        fprintf(stderr, "test_ops: cannot download %zu bytes: %s\n", bytes, e.msg);
        exit(1);
    }
    gpu->free(d);
    return h;
}

static double worst_diff; /* over every case, for the summary */

/* One TAP line: got vs ref (either float or double arrays, `dbl` says which). */
static inline void compare(const char *what, const void *got, const void *ref, size_t n, int dbl,
                    double atol, double rtol)
{
    size_t bad = 0;
    double maxd = 0;
    for (size_t i = 0; i < n; i++) {
        double g = dbl ? ((const double *)got)[i] : ((const float *)got)[i];
        double r = dbl ? ((const double *)ref)[i] : ((const float *)ref)[i];
        double d = fabs(g - r);
        if (d != d || isinf(g) != isinf(r)) d = INFINITY; /* NaN or inf mismatch */
        else if (isinf(g)) d = 0;                         /* the same infinity */
        if (d > maxd) maxd = d;
        if (!(d <= atol + rtol * fabs(r))) {
            if (bad < 5)
                NOTE("  %s: mismatch at %zu: cuda %.9g cpu %.9g diff %.3g", what, i, g, r, d);
            bad++;
        }
    }
    if (maxd > worst_diff) worst_diff = maxd;
    CHECK(bad == 0, "%s: max diff %.3g (atol %.1g, rtol %.1g), %zu of %zu mismatched", what, maxd,
          atol, rtol, bad, n);
}

/* Picks the backend under test from argv (see the top of this file). @return -1 to go on, or
 * the exit status to return at once (77: no device, skipped; 1: the backend did not start). */
static inline int op_check_start(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--cpu-self") == 0) {
        /* the CPU backend against itself: checks this harness (buffer sizes, shapes, aliasing)
         * on a machine without a GPU, e.g. under ASan, so device time is not spent on it. The
         * table is a copy at another address, so the library's code for a backend other than
         * the CPU (inputs staged with to_device, outputs fetched with to_host, no host-memory
         * shortcuts) runs too, with the CPU ops behind it. */
        static backend staged;
        staged = backend_cpu;
        staged.name = "cpu-staged";
        gpu = &staged;
        cpu_self = 1;
        NOTE("--cpu-self: CPU backend vs a copy of itself, no CUDA involved");
    } else if (cuda_device_count() == 0) {
        printf("SKIP: no CUDA device\n");
        printf("ok 1 - cuda ops # skip no CUDA device\n1..1\n");
        return EXIT_SKIP;
    } else {
        char build[128];
        cuda_describe_build(build, sizeof build);
        NOTE("%s, %d device(s)", build, cuda_device_count());
        gpu = backend_cuda();
        CHECK(gpu != NULL, "backend_cuda() initialises on a machine with a device");
        if (!gpu) return tap_done();
    }
    return -1;
}

#endif
