/* sedd_sampler: categorical draws, predictors, the sampling loop and the loss (see sedd_sampler.h). */
#include "sedd_sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "philox.h"

int64_t sedd_sampler_categorical(const double *p, int64_t n, const sedd_draw *d)
{
    int64_t best = 0;
    if (d->stored || d->precision == 32) {
        float best_v = -INFINITY;
        uint32_t w[4] = {0};
        for (int64_t y = 0; y < n; y++) {
            float u;
            if (d->stored) {
                u = d->stored[y];
            } else {
                if ((y & 3) == 0)
                    philox_draw(d->seed, d->record, d->step, d->position, (uint32_t)(y >> 2), w);
                u = philox_u01_f32(w[y & 3]);
            }
            float gn = 1e-10f - logf(u + 1e-10f);
            float v = (float)p[y] / gn;
            if (v > best_v || y == 0) {
                best_v = v;
                best = y;
            }
        }
        return best;
    }
    double best_v = -INFINITY;
    uint32_t w[4] = {0};
    for (int64_t y = 0; y < n; y++) {
        if ((y & 1) == 0)
            philox_draw(d->seed, d->record, d->step, d->position, (uint32_t)(y >> 1), w);
        double u = (y & 1) ? philox_u01_f64(w[2], w[3]) : philox_u01_f64(w[0], w[1]);
        /* −log u ≥ 1 − u, so p/(1 − u) bounds v for p ≥ 0: when even that bound (with a margin
         * far above the rounding of both sides) is below the best, y cannot win and its log is
         * not needed — the same draw as without the test, most logs skipped */
        if (p[y] >= 0 && p[y] * (1 + 1e-9) < best_v * (1 - u)) continue;
        double v = p[y] / -log(u);
        if (v > best_v || y == 0) {
            best_v = v;
            best = y;
        }
    }
    return best;
}

void sedd_sampler_euler_probs(const sedd_graph *g, int64_t x, const float *s, double dt_dsigma,
                              double *probs)
{
    sedd_graph_reverse_rate(g, x, s, probs);
    for (int64_t y = 0; y < g->dim; y++) probs[y] *= dt_dsigma;
    probs[x] += 1;
}

void sedd_sampler_analytic_probs(const sedd_graph *g, int64_t x, const float *s, double delta,
                                 double *probs, double *tmp)
{
    sedd_graph_staggered_score(g, s, delta, probs);
    sedd_graph_transp_transition(g, x, delta, tmp);
    for (int64_t y = 0; y < g->dim; y++) probs[y] *= tmp[y];
}

int64_t sedd_sampler_denoise_probs(const sedd_graph *g, int64_t x, const float *s, double sigma,
                                   double *probs, double *tmp)
{
    sedd_sampler_analytic_probs(g, x, s, sigma, probs, tmp);
    return g->type == CONFIG_GRAPH_ABSORB ? g->dim - 1 : g->dim;
}

/* x[p] = fixed[p] wherever fixed holds a token. */
static void project(int64_t *x, const int64_t *fixed, size_t n)
{
    if (!fixed) return;
    for (size_t i = 0; i < n; i++)
        if (fixed[i] >= 0) x[i] = fixed[i];
}

enum step_kind { STEP_EULER, STEP_ANALYTIC, STEP_DENOISE };

/* One predictor or denoiser call on every position, in parallel over positions. */
static int sample_positions(const sedd_graph *g, enum step_kind kind, double param, int B, int L,
                            const float *score, const uint64_t *ids, const sedd_draw *tmpl,
                            const float *stored, int64_t *x, err_t *e)
{
    const int64_t V = g->dim, n_pos = (int64_t)B * L;
    const int64_t n_u = (kind == STEP_DENOISE && g->type == CONFIG_GRAPH_ABSORB) ? V - 1 : V;
    int failed = 0;
#pragma omp parallel if ((size_t)n_pos * (size_t)V > (1u << 16))
    {
        double *probs = malloc((size_t)V * sizeof *probs), *tmp = malloc((size_t)V * sizeof *tmp);
        if (!probs || !tmp) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 8)
        for (int64_t p = 0; p < n_pos; p++) {
            if (!probs || !tmp) continue;
            int64_t xi = x[p];
            /* absorb: an unmasked position keeps its token under every step (one-hot weights) */
            if (g->type == CONFIG_GRAPH_ABSORB && xi != g->n) continue;
            const float *s = score + (size_t)p * (size_t)V;
            int64_t n = V;
            if (kind == STEP_EULER) sedd_sampler_euler_probs(g, xi, s, param, probs);
            else if (kind == STEP_ANALYTIC) sedd_sampler_analytic_probs(g, xi, s, param, probs, tmp);
            else n = sedd_sampler_denoise_probs(g, xi, s, param, probs, tmp);
            sedd_draw d = *tmpl;
            d.record = ids[p / L];
            d.position = (uint32_t)(p % L);
            d.stored = stored ? stored + (size_t)p * (size_t)n_u : NULL;
            x[p] = sedd_sampler_categorical(probs, n, &d);
        }
        free(probs);
        free(tmp);
    }
    if (failed) return err_set(e, "sedd_sample: out of memory");
    return 0;
}

int sedd_sample(const sedd_graph *g, const sedd_noise *nz, const sedd_sample_opts *o,
                sedd_score_fn fn, void *ctx, int B, int L, const uint64_t *ids,
                const int64_t *fixed, const sedd_replay *replay, int64_t *x, int64_t *trace,
                err_t *e)
{
    const size_t n_pos = (size_t)B * (size_t)L, V = (size_t)g->dim;
    float *score = malloc(n_pos * V * sizeof *score);
    float *sigma = malloc((size_t)B * sizeof *sigma);
    float *t = malloc((size_t)(o->steps + 1) * sizeof *t);
    if (!score || !sigma || !t) {
        free(score), free(sigma), free(t);
        return err_set(e, "sedd_sample: out of memory for %zu scores", n_pos * V);
    }
    /* the limit distribution: all mask (absorb) or uniform tokens (step 0 of Philox) */
    for (size_t p = 0; p < n_pos; p++) {
        int64_t tok = 0;
        if (g->type == CONFIG_GRAPH_UNIFORM) {
            if (replay && replay->x_init) {
                tok = replay->x_init[p];
            } else {
                uint32_t w[4];
                philox_draw(o->seed, ids[p / (size_t)L], 0, (uint32_t)(p % (size_t)L), 0, w);
                tok = (int64_t)((((uint64_t)w[0] << 32 | w[1]) >> 11) % (uint64_t)g->n);
            }
        }
        x[p] = sedd_graph_sample_limit(g, tok);
    }
    sedd_noise_timesteps(o->steps, o->eps, t);
    const double dt = (1 - o->eps) / o->steps;
    sedd_draw tmpl = {.precision = o->precision, .seed = o->seed};
    int rc = 0;
    for (int k = 0; k <= o->steps && rc == 0; k++) {
        bool denoise = k == o->steps;
        if (denoise && !o->denoise) break;
        project(x, fixed, n_pos);
        double tk = t[k];
        double sig = sedd_noise_total(nz, tk);
        for (int b = 0; b < B; b++) sigma[b] = (float)sig;
        rc = fn(ctx, x, sigma, B, L, score, e);
        if (rc < 0) break;
        /* scores in exp space, only at the positions that draw (absorb: the masked ones) */
#pragma omp parallel for schedule(static) if (n_pos * V > (1u << 18))
        for (size_t p = 0; p < n_pos; p++) {
            if (g->type == CONFIG_GRAPH_ABSORB && x[p] != g->n) continue;
            float *row = score + p * V;
            for (size_t y = 0; y < V; y++) row[y] = expf(row[y]);
        }
        tmpl.step = (uint32_t)k + 1;
        const float *stored = replay && replay->gumbel_u ? replay->gumbel_u[k] : NULL;
        if (denoise) {
            rc = sample_positions(g, STEP_DENOISE, sig, B, L, score, ids, &tmpl, stored, x, e);
        } else if (o->predictor == SEDD_PRED_EULER) {
            double dt_dsigma = (double)(float)dt * sedd_noise_rate(nz, tk);
            rc = sample_positions(g, STEP_EULER, dt_dsigma, B, L, score, ids, &tmpl, stored, x, e);
        } else {
            double next = sedd_noise_total(nz, (double)((float)tk - (float)dt));
            rc = sample_positions(g, STEP_ANALYTIC, sig - next, B, L, score, ids, &tmpl, stored,
                                  x, e);
        }
        if (rc == 0 && trace) memcpy(trace + (size_t)k * n_pos, x, n_pos * sizeof *x);
        if (rc == 0 && o->progress) o->progress(o->progress_ctx, k + 1);
    }
    project(x, fixed, n_pos);
    free(score), free(sigma), free(t);
    return rc;
}

/* The losses of n sequences x0 (n,L) at times t (n) in one score call: x_t (n,L) drawn with the
 * move uniforms u (n,L) (and rand_tokens), log-scores into ws (n,L,V), per-position score
 * entropies into dse (n,L), loss[i] = σ'(t_i) Σ_l dse[i,l] summed in position order (the same
 * bits for any thread count and any n). */
static int loss_batch(const sedd_graph *g, const sedd_noise *nz, sedd_score_fn fn, void *ctx,
                      const int64_t *x0, int n, int L, const double *t, const double *u,
                      const int64_t *rand_tokens, float *ws, int64_t *x, double *dse,
                      double *loss, err_t *e)
{
    float *sig32 = malloc((size_t)n * sizeof *sig32);
    double *sigma = malloc((size_t)n * sizeof *sigma);
    if (!sig32 || !sigma) {
        free(sig32), free(sigma);
        return err_set(e, "sedd_sampler_loss: out of memory");
    }
    const size_t rows = (size_t)n * (size_t)L;
    for (int i = 0; i < n; i++) {
        sigma[i] = sedd_noise_total(nz, t[i]);
        sig32[i] = (float)sigma[i];
        for (size_t l = (size_t)i * (size_t)L; l < (size_t)(i + 1) * (size_t)L; l++)
            x[l] = sedd_graph_sample_transition(g, x0[l], sigma[i], u[l],
                                                rand_tokens ? rand_tokens[l] : 0);
    }
    int rc = fn(ctx, x, sig32, n, L, ws, e);
    if (rc == 0) {
#pragma omp parallel for schedule(dynamic, 16) if (rows * (size_t)g->dim > (1u << 16))
        for (size_t r = 0; r < rows; r++)
            dse[r] = sedd_graph_score_entropy(g, ws + r * (size_t)g->dim, sigma[r / (size_t)L],
                                              x[r], x0[r]);
    }
    free(sig32), free(sigma);
    if (rc < 0) return rc;
    for (int i = 0; i < n; i++) {
        double sum = 0;
        for (int l = 0; l < L; l++) sum += dse[(size_t)i * (size_t)L + (size_t)l];
        loss[i] = sedd_noise_rate(nz, t[i]) * sum;
    }
    return 0;
}

int sedd_sampler_loss(const sedd_graph *g, const sedd_noise *nz, sedd_score_fn fn, void *ctx,
                      const int64_t *x0, int L, double t, const double *u,
                      const int64_t *rand_tokens, float *ws, int64_t *xt, double *dse,
                      double *loss, err_t *e)
{
    int64_t *x = xt ? xt : malloc((size_t)L * sizeof *x);
    double *d = dse ? dse : malloc((size_t)L * sizeof *d);
    int rc = x && d ? loss_batch(g, nz, fn, ctx, x0, 1, L, &t, u, rand_tokens, ws, x, d, loss, e)
                    : err_set(e, "sedd_sampler_loss: out of memory");
    if (!dse) free(d);
    if (!xt) free(x);
    return rc;
}

int sedd_sampler_bound(const sedd_graph *g, const sedd_noise *nz, sedd_score_fn fn, void *ctx,
                       const int64_t *x0, int L, int K, enum sedd_tgrid grid, uint64_t seed,
                       uint64_t id, uint32_t pos0, uint32_t block, int batch, float *ws,
                       double *mean, double *stderr_, err_t *e)
{
    if (batch < 1) batch = 1;
    if (batch > K) batch = K;
    const size_t rows = (size_t)batch * (size_t)L;
    double *u = malloc(rows * sizeof *u), *t = malloc((size_t)K * sizeof *t);
    double *dse = malloc(rows * sizeof *dse), *loss = malloc((size_t)K * sizeof *loss);
    int64_t *rt = malloc(rows * sizeof *rt), *x0s = malloc(rows * sizeof *x0s);
    int64_t *xt = malloc(rows * sizeof *xt);
    int rc = 0;
    if (!u || !t || !dse || !loss || !rt || !x0s || !xt)
        rc = err_set(e, "sedd_sampler_bound: out of memory");
    for (size_t r = 0; rc == 0 && r < rows; r++) x0s[r] = x0[r % (size_t)L];
    for (int k0 = 0; k0 < K && rc == 0; k0 += batch) {
        const int n = K - k0 < batch ? K - k0 : batch;
        for (int i = 0; i < n; i++) {
            uint32_t w[4], step = SEDD_STEP_LOSS + (uint32_t)(k0 + i);
            philox_draw(seed, id, step, 0x80000000u + block, 0, w);
            double v = grid == SEDD_T_GRID ? 0.5 : philox_u01_f64(w[0], w[1]);
            double tk = grid == SEDD_T_IID ? v : ((double)(k0 + i) + v) / K;
            t[k0 + i] = SEDD_LOSS_EPS + (1 - SEDD_LOSS_EPS) * tk;
            for (int l = 0; l < L; l++) {
                size_t r = (size_t)i * (size_t)L + (size_t)l;
                philox_draw(seed, id, step, pos0 + (uint32_t)l, 0, w);
                u[r] = philox_u01_f64(w[0], w[1]);
                rt[r] = (int64_t)((((uint64_t)w[2] << 32 | w[3]) >> 11) % (uint64_t)g->n);
            }
        }
        rc = loss_batch(g, nz, fn, ctx, x0s, n, L, t + k0, u, rt, ws, xt, dse, loss + k0, e);
    }
    if (rc == 0) {
        double m = 0, ss = 0;
        for (int k = 0; k < K; k++) m += loss[k];
        m /= K;
        for (int k = 0; k < K; k++) ss += (loss[k] - m) * (loss[k] - m);
        *mean = m;
        *stderr_ = K > 1 ? sqrt(ss / (K - 1) / K) : NAN;
    }
    free(u), free(t), free(dse), free(loss), free(rt), free(x0s), free(xt);
    return rc;
}
