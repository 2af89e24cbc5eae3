/* sedd_sampler: the Gumbel-max draw (distribution, determinism, negative weights, torch's stored
 * form) and the sampling loop on a toy score function (every mask filled, fixed positions kept,
 * the same samples whatever the batch). The original's trajectories are checked by fixture-check. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/philox.h"
#include "../../lib/sedd_sampler.h"
#include "tap.h"

static void test_categorical(int precision)
{
    const double p[4] = {1, 2, 3, 4};
    int count[4] = {0};
    const int n = 20000;
    for (int i = 0; i < n; i++) {
        sedd_draw d = {.precision = precision, .seed = 5, .record = 1, .step = 2,
                       .position = (uint32_t)i};
        count[sedd_sampler_categorical(p, 4, &d)]++;
    }
    double worst = 0;
    for (int y = 0; y < 4; y++) {
        double q = p[y] / 10, sd = sqrt(n * q * (1 - q));
        worst = fmax(worst, fabs(count[y] - n * q) / sd);
    }
    CHECK(worst < 4.5, "%d-bit: frequencies follow p (worst %.2f sd)", precision, worst);
    sedd_draw a = {.precision = precision, .seed = 9, .record = 3, .step = 4, .position = 5};
    sedd_draw b = a;
    int same = 1;
    for (int i = 0; i < 50; i++) {
        a.position = b.position = (uint32_t)i;
        same &= sedd_sampler_categorical(p, 4, &a) == sedd_sampler_categorical(p, 4, &b);
    }
    CHECK(same, "%d-bit: the same key gives the same draw", precision);
    const double neg[3] = {-1, 0.5, -2};
    int always = 1;
    for (int i = 0; i < 200; i++) {
        a.position = (uint32_t)i;
        always &= sedd_sampler_categorical(neg, 3, &a) == 1;
    }
    CHECK(always, "%d-bit: negative weights lose against a positive one", precision);
}

/* The 64-bit draw skips the log of weights that cannot win; it must pick what the plain
 * argmax_y p_y / −log u_y over the same Philox uniforms picks (weights spread over decades, with
 * zeros and negatives). */
static void test_categorical_exact(void)
{
    enum { N = 1001 };
    static double p[N];
    int same = 1;
    for (uint32_t pos = 0; pos < 300; pos++) {
        uint32_t w[4];
        for (int y = 0; y < N; y++) {
            philox_draw(99, 3, 7, pos, 0x100000u + (uint32_t)y, w);
            double r = philox_u01_f64(w[0], w[1]);
            p[y] = pos % 3 == 0 ? exp(12 * r - 6) : pos % 3 == 1 ? r * r : r - 0.2;
            if (y % 97 == 0) p[y] = 0;
        }
        int64_t ref = 0;
        double best = -INFINITY;
        for (int y = 0; y < N; y++) {
            if ((y & 1) == 0) philox_draw(11, 2, 5, pos, (uint32_t)(y >> 1), w);
            double u = (y & 1) ? philox_u01_f64(w[2], w[3]) : philox_u01_f64(w[0], w[1]);
            double v = p[y] / -log(u);
            if (v > best || y == 0) best = v, ref = y;
        }
        sedd_draw d = {.precision = 64, .seed = 11, .record = 2, .step = 5, .position = pos};
        same &= sedd_sampler_categorical(p, N, &d) == ref;
    }
    CHECK(same, "64-bit draw = plain argmax of p / -log u over the same uniforms (300 draws)");
}

static void test_stored(void)
{
    const double p[3] = {1, 1, 1}, z[3] = {0, 0, 0};
    const float u[3] = {0.5f, 0.9f, 0.1f};
    sedd_draw d = {.precision = 64, .stored = u};
    CHECK(sedd_sampler_categorical(p, 3, &d) == 1, "stored uniforms: largest u wins at equal p");
    CHECK(sedd_sampler_categorical(z, 3, &d) == 0, "ties go to the first index");
}

/* A toy "model": log-score 0 everywhere except a preference for token (position mod 7). */
static int toy_score(void *ctx, const int64_t *x, const float *sigma, int B, int L, float *out,
                     err_t *e)
{
    (void)e;
    const sedd_graph *g = ctx;
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++) {
            float *row = out + ((size_t)b * L + l) * (size_t)g->dim;
            for (int64_t y = 0; y < g->dim; y++) row[y] = -logf(sigma[b] + 1);
            row[l % 7] += 2;
            row[x[(size_t)b * L + l]] = 0;
        }
    return 0;
}

static void test_loop(enum config_graph type, enum sedd_predictor pred, const char *name)
{
    sedd_graph g;
    sedd_graph_init(&g, type, 20);
    struct config_sedd cfg = {.noise = type == CONFIG_GRAPH_ABSORB ? CONFIG_NOISE_LOGLINEAR :
                                                                     CONFIG_NOISE_GEOMETRIC,
                              .sigma_min = 1e-4, .sigma_max = 20};
    sedd_noise nz;
    sedd_noise_init(&nz, &cfg);
    enum { B = 4, L = 12 };
    uint64_t ids[B] = {10, 11, 12, 13};
    int64_t fixed[B * L], x[B * L], x1[L], trace[9 * B * L];
    for (int p = 0; p < B * L; p++) fixed[p] = p % L == 0 ? 3 : (p % L == L - 1 ? 4 : -1);
    sedd_sample_opts o = {.predictor = pred, .steps = 8, .eps = 1e-5, .denoise = true,
                          .precision = 64, .seed = 1};
    err_t e;
    CHECK(sedd_sample(&backend_cpu, &g, &nz, &o, toy_score, &g, B, L, ids, fixed, NULL, x, trace,
                      &e) == 0,
          "%s: samples", name);
    int ok = 1, kept = 1;
    for (int p = 0; p < B * L; p++) {
        ok &= x[p] >= 0 && x[p] < g.n;
        if (fixed[p] >= 0) kept &= x[p] == fixed[p];
    }
    CHECK(ok, "%s: every position holds a data token (no mask left)", name);
    CHECK(kept, "%s: fixed prefix and suffix kept", name);
    CHECK(memcmp(trace + 8 * B * L, x, sizeof x) == 0, "%s: trace ends with the samples", name);
    /* record 12 alone gives the same sample as inside the batch */
    CHECK(sedd_sample(&backend_cpu, &g, &nz, &o, toy_score, &g, 1, L, ids + 2, fixed + 2 * L,
                      NULL, x1, NULL, &e) == 0 && memcmp(x1, x + 2 * L, sizeof x1) == 0,
          "%s: a record's sample does not depend on the batch", name);
    /* a kept token outside the vocabulary is refused before anything runs */
    fixed[5] = g.dim;
    CHECK(sedd_sample(&backend_cpu, &g, &nz, &o, toy_score, &g, B, L, ids, fixed, NULL, x, NULL,
                      &e) < 0 && strstr(e.msg, "outside the model's vocabulary"),
          "%s: a kept token of id V is refused: %s", name, e.msg);
}

int main(void)
{
    test_categorical(64);
    test_categorical(32);
    test_categorical_exact();
    test_stored();
    test_loop(CONFIG_GRAPH_ABSORB, SEDD_PRED_EULER, "absorb/euler");
    test_loop(CONFIG_GRAPH_ABSORB, SEDD_PRED_ANALYTIC, "absorb/analytic");
    test_loop(CONFIG_GRAPH_UNIFORM, SEDD_PRED_EULER, "uniform/euler");
    test_loop(CONFIG_GRAPH_UNIFORM, SEDD_PRED_ANALYTIC, "uniform/analytic");
    return tap_done();
}
