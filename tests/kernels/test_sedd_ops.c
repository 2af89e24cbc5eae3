/* test_sedd_ops: the CUDA backend's SEDD sampling ops (kernels/sedd_sampling.cu) against the CPU
 * backend's (lib/backend_cpu_sedd.c, the sampler's reference), and sedd_sample of the fixture
 * models (tests/fixtures/sedd) on both backends.
 *  - device Philox (kernels/philox.cuh): its host transcription and its device run give
 *    lib/philox.c's words and uniforms bit for bit;
 *  - sedd_finish and sedd_project: bit-identical (IEEE subtractions of the same float scalars);
 *    ids_from_tokens (the sampler's state as the embedding's ids): exact;
 *  - sedd_score_entropy (the bound's per-position loss), both graphs, at 1e-11 (see there);
 *  - sedd_step, every kind for both graphs, 64- and 32-bit Philox and stored uniforms, at two
 *    shapes (V = 1001/1000: rows not a multiple of the 256-thread block; V = 50258, GPT-2's);
 *    the exp-space scores within 2 ulp (glibc's expf vs (float)exp((double)s), each within
 *    ~0.5 ulp), and the drawn tokens equal except at near-ties: a position may differ only when
 *    the CPU's race values (recomputed here from the CPU's weights and the same uniforms) of the
 *    two picks are within 1e-6 relative — the scores (1 ulp ≈ 6e-8), the logs of the uniforms
 *    and the block-order sum of the weights (1e-16) move a race value by far less; a wrong
 *    weight or uniform moves it by O(1). Such ties are rare: the count is printed, and
 *    more than one per case fails too.
 *  - sedd_sample of both fixture models (Euler and analytic, 64- and 32-bit, a kept prefix):
 *    the same tokens in all but at most one of the 16 sampled sequences (4 runs of B = 4).
 *    Not all: the CUDA forward differs from the CPU's in the last bits (cuBLAS's summation
 *    order, CUDA's expf/tanh), which flips a draw at a near-tie, and a flipped token changes
 *    the context of every later step of its sequence (so one flip can cost 6 of the 512
 *    positions, more than 1%: these very runs hold such a tie, which log-score noise of 1e-5
 *    flips one time in five). A bug of the backend's sampler path (ids, tokens, finish,
 *    transfers) changes most sequences.
 * TAP lines; exit 1 on a failure; without a device "SKIP: no CUDA device" and exit 77;
 * --cpu-self runs everything with a copy of the CPU table in the CUDA backend's place (op_check.h),
 * which lib/sedd.c treats as a device, so that its device path (tokens from backend memory, the
 * log-scores made and finished by the backend's ops) runs on a machine without a GPU. */
#include "op_check.h"

#include "../../kernels/philox.cuh"
#include "../../kernels/sedd_sampling.cuh"
#include "../../lib/philox.h"
#include "../../lib/sedd.h"
#include "../../lib/sedd_graph.h"
#include "../../lib/sedd_noise.h"
#include "../../lib/sedd_sampler.h"

// ---- Philox -----------------------------------------------------------------------------------

static void t_philox(void)
{
    static const struct { uint64_t seed, record; uint32_t step, pos; } key[] = {
        {0, 0, 0, 0}, {1, 7, 3, 11}, {0xdeadbeefcafef00dull, 0x123456789abcull, 1025, 4095},
        {42, 0xffffffffffffffffull, 0x40000000u, 0x80000003u}};
    enum { LANES = 600 };
    uint32_t *words = malloc(4 * LANES * sizeof *words);
    double *f64 = malloc(2 * LANES * sizeof *f64);
    float *f32 = malloc(4 * LANES * sizeof *f32);
    for (size_t k = 0; k < sizeof key / sizeof key[0]; k++) {
        int host_ok = 1, dev_ok = 1;
        int dev = !cpu_self &&
                  cuda_philox_lanes(key[k].seed, key[k].record, key[k].step, key[k].pos, LANES,
                                    words, f64, f32) == 0;
        for (uint32_t j = 0; j < LANES; j++) {
            uint32_t ref[4], got[4];
            philox_draw(key[k].seed, key[k].record, key[k].step, key[k].pos, j, ref);
            cu_philox_draw(key[k].seed, key[k].record, key[k].step, key[k].pos, j, got);
            host_ok &= memcmp(ref, got, sizeof ref) == 0 &&
                       cu_philox_u01_f64(got[0], got[1]) == philox_u01_f64(ref[0], ref[1]);
            for (int i = 0; i < 4; i++)
                host_ok &= cu_philox_u01_f32(got[i]) == philox_u01_f32(ref[i]);
            if (!dev) continue;
            dev_ok &= memcmp(ref, words + 4 * j, sizeof ref) == 0 &&
                      f64[2 * j] == philox_u01_f64(ref[0], ref[1]) &&
                      f64[2 * j + 1] == philox_u01_f64(ref[2], ref[3]);
            for (int i = 0; i < 4; i++) dev_ok &= f32[4 * j + i] == philox_u01_f32(ref[i]);
        }
        CHECK(host_ok, "philox.cuh on the host = lib/philox.c, key %zu, %d lanes", k, LANES);
        if (!cpu_self)
            CHECK(dev && dev_ok, "philox.cuh on the device = lib/philox.c (words, u01_f64, "
                                 "u01_f32), key %zu, %d lanes", k, LANES);
    }
    free(words), free(f64), free(f32);
}

// ---- finish and project -----------------------------------------------------------------------

static void t_finish(int n, int64_t V)
{
    size_t nv = (size_t)n * (size_t)V;
    float *rows = rnd(nv, 12);
    int64_t *x = malloc((size_t)n * sizeof *x);
    for (int i = 0; i < n; i++) x[i] = (int64_t)((urand() + 1.0f) * 0.5f * (float)V) % V;
    int64_t *dx = up(x, (size_t)n * sizeof *x);
    static const float sigmas[] = {1e-4f, 0.7f, 19.5f};
    for (int si = 0; si < 3; si++)
        for (int scale = 0; scale < 2; scale++) {
            float *ref = copy_of(rows, nv * sizeof *ref), *dr = up(rows, nv * sizeof *ref);
            cpu->sedd_finish(ref, x, n, V, sigmas[si], scale);
            gpu->sedd_finish(dr, dx, n, V, sigmas[si], scale);
            float *got = down(dr, nv * sizeof *got);
            char what[96];
            snprintf(what, sizeof what, "sedd_finish n=%d V=%lld sigma=%g%s", n, (long long)V,
                     sigmas[si], scale ? " scale" : "");
            /* two IEEE float subtractions of the same scalars (host libm on both sides) */
            compare(what, got, ref, nv, 0, 0, 0);
            free(ref), free(got);
        }
    gpu->free(dx);
    free(rows), free(x);
}

static void t_project(size_t n)
{
    int64_t *x = malloc(n * sizeof *x), *fixed = malloc(n * sizeof *fixed);
    for (size_t i = 0; i < n; i++) {
        x[i] = (int64_t)i;
        fixed[i] = i % 3 == 0 ? (int64_t)(1000 + i) : -1;
    }
    int64_t *dx = up(x, n * sizeof *x), *df = up(fixed, n * sizeof *fixed);
    cpu->sedd_project(x, fixed, n);
    gpu->sedd_project(dx, df, n);
    int64_t *got = down(dx, n * sizeof *got);
    CHECK(memcmp(got, x, n * sizeof *x) == 0, "sedd_project n=%zu: exact", n);
    gpu->free(df);
    free(x), free(fixed), free(got);
}

static void t_ids_from_tokens(size_t n)
{
    int64_t *tokens = malloc(n * sizeof *tokens);
    int32_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) tokens[i] = (int64_t)((i * 7919) % 50258);
    int64_t *dt = up(tokens, n * sizeof *tokens);
    int32_t *di = gpu->alloc(n * sizeof *di);
    cpu->ids_from_tokens(ids, tokens, n);
    gpu->ids_from_tokens(di, dt, n);
    int32_t *got = down(di, n * sizeof *got);
    CHECK(memcmp(got, ids, n * sizeof *ids) == 0 && ids[n - 1] == (int32_t)tokens[n - 1],
          "ids_from_tokens n=%zu: exact", n);
    gpu->free(dt);
    free(tokens), free(ids), free(got);
}

/* sedd_score_entropy at L positions of V = N (+1 absorb) log-scores in [-4, 4): absorb with
 * masked and unmasked positions, uniform with x = x0 and x != x0. Tolerance 1e-11 relative,
 * 1e-11 absolute: the same double formula with the same host scalars; what differs is the order
 * of the vocabulary sums (the CPU's index order, the block's), ~1e-16 · sqrt(V) relative, and
 * CUDA's double exp (<= 1 ulp), amplified by the uniform formula's cancellation a little. */
static void t_score_entropy(bool absorb, int L, int64_t N, double sigma)
{
    const int64_t V = absorb ? N + 1 : N;
    float *score = rnd((size_t)L * (size_t)V, 4);
    int64_t *x = malloc((size_t)L * sizeof *x), *x0 = malloc((size_t)L * sizeof *x0);
    double *ref = malloc((size_t)L * sizeof *ref);
    for (int l = 0; l < L; l++) {
        x0[l] = (int64_t)((l * 7919 + 13) % N);
        x[l] = absorb ? (l % 3 ? N : x0[l]) : (l % 2 ? x0[l] : (x0[l] + 1 + l) % N);
    }
    float *ds = up(score, (size_t)L * (size_t)V * sizeof *score);
    int64_t *dx = up(x, (size_t)L * sizeof *x), *dx0 = up(x0, (size_t)L * sizeof *x0);
    double *dd = gpu->alloc((size_t)L * sizeof *dd);
    cpu->sedd_score_entropy(ref, score, x, x0, L, sigma, absorb, N);
    gpu->sedd_score_entropy(dd, ds, dx, dx0, L, sigma, absorb, N);
    double *got = down(dd, (size_t)L * sizeof *got);
    char what[96];
    snprintf(what, sizeof what, "sedd_score_entropy %s L=%d N=%lld sigma %g",
             absorb ? "absorb" : "uniform", L, (long long)N, sigma);
    compare(what, got, ref, (size_t)L, 1, 1e-11, 1e-11);
    gpu->free(ds), gpu->free(dx), gpu->free(dx0);
    free(score), free(x), free(x0), free(ref), free(got);
}

// ---- one sampling step ------------------------------------------------------------------------

/* The race value sedd_sampler_categorical gives candidate y of weight w (its formulas). */
static double race(double w, int64_t y, const sedd_draw *d)
{
    uint32_t k[4];
    if (d->stored || d->precision == 32) {
        float u;
        if (d->stored) {
            u = d->stored[y];
        } else {
            philox_draw(d->seed, d->record, d->step, d->position, (uint32_t)(y >> 2), k);
            u = philox_u01_f32(k[y & 3]);
        }
        return (double)((float)w / (1e-10f - logf(u + 1e-10f)));
    }
    philox_draw(d->seed, d->record, d->step, d->position, (uint32_t)(y >> 1), k);
    double u = (y & 1) ? philox_u01_f64(k[2], k[3]) : philox_u01_f64(k[0], k[1]);
    return w / -log(u);
}

static const char *kind_name[] = {"euler", "analytic", "denoise"};

/* Draws one step on both backends from the same log-scores and compares (see the top). */
static void t_step(bool absorb, enum be_sedd_kind kind, int precision, bool stored, int B, int L,
                   int64_t N)
{
    sedd_graph g;
    sedd_graph_init(&g, absorb ? CONFIG_GRAPH_ABSORB : CONFIG_GRAPH_UNIFORM, N);
    const int64_t V = g.dim, n_u = kind == BE_SEDD_DENOISE && absorb ? V - 1 : V;
    const size_t n_pos = (size_t)B * (size_t)L, nv = n_pos * (size_t)V;
    /* log-scores in [-6, 2] with a few large ones: weights spread over many orders */
    float *ls = rnd(nv, 4);
    for (size_t i = 0; i < nv; i++) ls[i] = ls[i] - 2 + (i % 97 == 0 ? 4 : 0);
    int64_t *x = malloc(n_pos * sizeof *x);
    for (size_t p = 0; p < n_pos; p++) {
        int64_t tok = (int64_t)((urand() + 1.0f) * 0.5f * (float)N) % N;
        x[p] = absorb && p % 3 != 1 ? g.n : tok; /* absorb: two thirds masked */
    }
    uint64_t *ids = malloc((size_t)B * sizeof *ids);
    for (int b = 0; b < B; b++) ids[b] = 1000 + 17 * (uint64_t)b + ((uint64_t)b << 33);
    float *u = NULL;
    if (stored) {
        u = rnd(n_pos * (size_t)n_u, 0.5f);
        for (size_t i = 0; i < n_pos * (size_t)n_u; i++) u[i] += 0.5f; /* [0, 1) */
    }
    static const double params[] = {0.037, 0.21, 1.3}; /* dt·σ', Δσ, σ */
    be_sedd_step a = {.kind = kind, .absorb = absorb, .n_tokens = N, .param = params[kind],
                      .precision = precision, .seed = 0x5eedull + (uint64_t)kind, .step = 3,
                      .B = B, .L = L, .ids = ids, .stored = u};
    float *score_c = copy_of(ls, nv * sizeof *ls);
    int64_t *x_c = copy_of(x, n_pos * sizeof *x);
    err_t e;
    int rc_c = cpu->sedd_step(x_c, score_c, &a, &e);
    float *score_d = up(ls, nv * sizeof *ls);
    int64_t *x_d = up(x, n_pos * sizeof *x);
    be_sedd_step ad = a;
    ad.ids = up(ids, (size_t)B * sizeof *ids);
    ad.stored = u ? up(u, n_pos * (size_t)n_u * sizeof *u) : NULL;
    int rc_d = gpu->sedd_step(x_d, score_d, &ad, &e);
    int64_t *x_g = down(x_d, n_pos * sizeof *x_g);
    float *score_g = down(score_d, nv * sizeof *score_g);
    char what[128];
    snprintf(what, sizeof what, "sedd_step %s %s %s B=%d L=%d V=%lld",
             absorb ? "absorb" : "uniform", kind_name[kind], stored ? "stored" : precision == 64 ? "64-bit" : "32-bit", B, L,
             (long long)V);
    CHECK(rc_c == 0 && rc_d == 0, "%s: both run", what);
    char sw[160];
    snprintf(sw, sizeof sw, "%s: exp-space scores", what);
    /* expf (glibc) vs (float)exp((double)s): within 2 ulp; unread rows untouched on both */
    compare(sw, score_g, score_c, nv, 0, 1e-37, 2.4e-7);

    /* tokens: equal, or a near-tie of the CPU's race values */
    double *probs = malloc((size_t)V * sizeof *probs), *tmp = malloc((size_t)V * sizeof *tmp);
    size_t differ = 0, bad = 0, unmasked = 0, kept = 0;
    for (size_t p = 0; p < n_pos; p++) {
        if (absorb && x[p] != g.n) {
            unmasked++;
            kept += x_g[p] == x[p];
        }
        if (x_g[p] == x_c[p]) continue;
        differ++;
        const float *s = score_c + p * (size_t)V;
        int64_t n = V;
        if (kind == BE_SEDD_EULER) sedd_sampler_euler_probs(&g, x[p], s, a.param, probs);
        else if (kind == BE_SEDD_ANALYTIC)
            sedd_sampler_analytic_probs(&g, x[p], s, a.param, probs, tmp);
        else n = sedd_sampler_denoise_probs(&g, x[p], s, a.param, probs, tmp);
        sedd_draw d = {.precision = precision, .seed = a.seed, .record = ids[p / (size_t)L],
                       .step = a.step, .position = (uint32_t)(p % (size_t)L),
                       .stored = u ? u + p * (size_t)n_u : NULL};
        bool in_range = x_g[p] >= 0 && x_g[p] < n;
        double vc = race(probs[x_c[p]], x_c[p], &d);
        double vg = in_range ? race(probs[x_g[p]], x_g[p], &d) : -INFINITY;
        bool tie = in_range && fabs(vc - vg) <= 1e-6 * fabs(vc);
        if (!tie) bad++;
        NOTE("  %s: position %zu: cuda %lld cpu %lld, race values %.17g vs %.17g%s", what, p,
             (long long)x_g[p], (long long)x_c[p], vg, vc, tie ? " (near-tie)" : "");
    }
    if (absorb)
        CHECK(kept == unmasked, "%s: unmasked positions keep their token", what);
    CHECK(bad == 0 && differ <= 1, "%s: tokens equal at %zu of %zu positions (%zu near-ties)",
          what, n_pos - differ, n_pos, differ - bad);
    free(probs), free(tmp);
    gpu->free((void *)ad.ids), gpu->free((void *)ad.stored);
    free(ls), free(x), free(ids), free(u), free(score_c), free(x_c), free(x_g), free(score_g);
}

// ---- the whole sampler ------------------------------------------------------------------------

/* sedd_sample of a fixture model on the CPU and on the backend under test (see the top). */
static void t_sampler(const char *dir)
{
    err_t e;
    sedd_model_t *mc = sedd_load(dir, cpu, &e), *mg = mc ? sedd_load(dir, gpu, &e) : NULL;
    CHECK(mc && mg, "%s: loads on both backends", dir);
    if (!mc || !mg) {
        NOTE("%s", e.msg);
        sedd_free(mc);
        return;
    }
    const struct config_sedd *cfg = sedd_config(mc);
    sedd_graph g;
    sedd_graph_init(&g, cfg->graph, cfg->tokens);
    sedd_noise nz;
    sedd_noise_init(&nz, cfg);
    enum { B = 4, STEPS = 12 };
    const int L = (int)cfg->length;
    const size_t n = (size_t)B * (size_t)L;
    uint64_t ids[B] = {3, 4, 5, 1u << 20};
    int64_t *fixed = malloc(n * sizeof *fixed), *xc = malloc(n * sizeof *xc);
    int64_t *xg = malloc(n * sizeof *xg), *trace = malloc((STEPS + 1) * n * sizeof *trace);
    for (size_t p = 0; p < n; p++) fixed[p] = p % (size_t)L < 4 ? (int64_t)(7 * p % 500) : -1;
    size_t same = 0, total = 0, seq_differ = 0;
    bool ok = true, trace_ok = true;
    for (int run = 0; run < 4; run++) {
        sedd_sample_opts o = {.predictor = run & 1 ? SEDD_PRED_ANALYTIC : SEDD_PRED_EULER,
                              .steps = STEPS, .eps = 1e-5, .denoise = true,
                              .precision = run < 2 ? 64 : 32, .seed = 11 + (uint64_t)run};
        const int64_t *fx = run == 0 ? NULL : fixed;
        ok &= sedd_sample(cpu, &g, &nz, &o, sedd_score_device_masked, mc, B, L, ids, fx, NULL, xc,
                          NULL, &e) == 0 &&
              sedd_sample(sedd_backend(mg), &g, &nz, &o, sedd_score_device_masked, mg, B, L, ids,
                          fx, NULL, xg, trace, &e) == 0;
        if (!ok) {
            NOTE("%s", e.msg);
            break;
        }
        for (size_t p = 0; p < n; p++) {
            same += xc[p] == xg[p];
            if (fx && fx[p] >= 0) ok &= xg[p] == fx[p];
            ok &= xg[p] >= 0 && xg[p] < (int64_t)g.n;
        }
        total += n;
        for (int b = 0; b < B; b++)
            seq_differ += memcmp(xc + (size_t)b * L, xg + (size_t)b * L, L * sizeof *xc) != 0;
        /* the trace's last state is the sample before the final projection */
        for (size_t p = 0; p < n; p++)
            trace_ok &= (fx && fx[p] >= 0) || trace[(size_t)STEPS * n + p] == xg[p];
    }
    CHECK(ok, "%s: samples are data tokens with the kept prefix", dir);
    CHECK(trace_ok, "%s: the trace comes back and ends with the samples", dir);
    CHECK(total && seq_differ <= 1,
          "%s: the same tokens at %zu of %zu positions, %zu of %d sequences differ (<= 1)", dir,
          same, total, seq_differ, 4 * B);
    free(fixed), free(xc), free(xg), free(trace);
    sedd_free(mg);
    sedd_free(mc);
}

// ---- main -------------------------------------------------------------------------------------

int main(int argc, char **argv)
{
    int rc = op_check_start(argc, argv);
    if (rc >= 0) return rc;
    t_philox();
    t_finish(37, 1001);
    t_finish(3, 50258);
    t_project(1000);
    t_project(7);
    t_ids_from_tokens(1000);
    t_ids_from_tokens(7);
    for (int absorb = 1; absorb >= 0; absorb--) {
        t_score_entropy(absorb, 37, 1000, 0.7);
        t_score_entropy(absorb, 5, 50257, 3.5);
        t_score_entropy(absorb, 6, 50257, 1e-3);
    }
    for (int absorb = 1; absorb >= 0; absorb--)
        for (int kind = BE_SEDD_EULER; kind <= BE_SEDD_DENOISE; kind++)
            for (int v = 0; v < 3; v++) {
                int prec = v == 1 ? 32 : 64;
                bool stored = v == 2;
                t_step(absorb, kind, prec, stored, 2, 37, 1000);
                t_step(absorb, kind, prec, stored, 3, 4, 50257);
            }
    t_sampler("tests/fixtures/sedd/tiny_absorb_loglinear");
    t_sampler("tests/fixtures/sedd/tiny_uniform_geometric");
    NOTE("max diff over all cases: %.3g", worst_diff);
    return tap_done();
}
