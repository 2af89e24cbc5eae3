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

/* The sampler's buffers in backend memory. */
struct sample_bufs {
    int64_t *x, *fixed;  /* (B,L) state, kept tokens (NULL: none) */
    float *score;        /* (B,L,V) log-scores, then their exponentials */
    float *stored;       /* (B,L,V) one step's stored uniforms (NULL: Philox) */
    uint64_t *ids;       /* (B) */
};

static void bufs_free(const backend *be, struct sample_bufs *d)
{
    be->free(d->x), be->free(d->fixed), be->free(d->score), be->free(d->stored), be->free(d->ids);
}

/* Allocates d and uploads x, fixed and ids. @return 0 or ERR_FAIL. */
static int bufs_init(const backend *be, struct sample_bufs *d, size_t n_pos, size_t V, int B,
                     const int64_t *x, const int64_t *fixed, const uint64_t *ids, bool stored,
                     err_t *e)
{
    *d = (struct sample_bufs){0};
    d->x = be->alloc(n_pos * sizeof *d->x);
    d->score = be->alloc(n_pos * V * sizeof *d->score);
    d->ids = be->alloc((size_t)B * sizeof *d->ids);
    if (fixed) d->fixed = be->alloc(n_pos * sizeof *d->fixed);
    if (stored) d->stored = be->alloc(n_pos * V * sizeof *d->stored);
    if (!d->x || !d->score || !d->ids || (fixed && !d->fixed) || (stored && !d->stored)) {
        bufs_free(be, d);
        return err_set(e, "sedd_sample: out of %s memory for %zu scores", be->name, n_pos * V);
    }
    if (be->to_device(d->x, x, n_pos * sizeof *x, e) < 0 ||
        be->to_device(d->ids, ids, (size_t)B * sizeof *ids, e) < 0 ||
        (fixed && be->to_device(d->fixed, fixed, n_pos * sizeof *fixed, e) < 0)) {
        bufs_free(be, d);
        return ERR_FAIL;
    }
    return 0;
}

/* One sampling step, for run_step: the ops it queues. */
struct step_call {
    const backend *be;
    const struct sample_bufs *d;
    size_t n_pos;
    sedd_score_fn fn;
    void *ctx;
    const float *sigma;  /* (B) */
    int B, L;
    const be_sedd_step *st;
};

/* run_step's enqueue: the kept tokens projected, the log-scores at sigma, the step's draws. */
static int enqueue_step(void *call, err_t *e)
{
    const struct step_call *c = call;
    if (c->d->fixed) c->be->sedd_project(c->d->x, c->d->fixed, c->n_pos);
    if (c->fn(c->ctx, c->d->x, c->sigma, c->B, c->L, c->d->score, e) < 0) return ERR_FAIL;
    return c->be->sedd_step(c->d->x, c->d->score, c->st, e);
}

int sedd_sample(const backend *be, const sedd_graph *g, const sedd_noise *nz,
                const sedd_sample_opts *o, sedd_score_fn fn, void *ctx, int B, int L,
                const uint64_t *ids, const int64_t *fixed, const sedd_replay *replay, int64_t *x,
                int64_t *trace, err_t *e)
{
    const size_t n_pos = (size_t)B * (size_t)L, V = (size_t)g->dim;
    const bool absorb = g->type == CONFIG_GRAPH_ABSORB;
    float *sigma = malloc((size_t)B * sizeof *sigma);
    float *t = malloc((size_t)(o->steps + 1) * sizeof *t);
    if (!sigma || !t) {
        free(sigma), free(t);
        return err_set(e, "sedd_sample: out of memory");
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
    for (size_t p = 0; fixed && p < n_pos; p++)
        if (fixed[p] < -1 || fixed[p] >= g->dim) {
            free(sigma), free(t);
            return err_set(e, "sedd_sample: kept token %lld at position %zu is outside the "
                              "model's vocabulary (0..%lld)", (long long)fixed[p],
                           p % (size_t)L, (long long)g->dim - 1);
        }
    struct sample_bufs d;
    if (bufs_init(be, &d, n_pos, V, B, x, fixed, ids, replay && replay->gumbel_u, e) < 0) {
        free(sigma), free(t);
        return ERR_FAIL;
    }
    sedd_noise_timesteps(o->steps, o->eps, t);
    const double dt = (1 - o->eps) / o->steps;
    be_sedd_step st = {.absorb = absorb, .n_tokens = g->n, .precision = o->precision,
                       .seed = o->seed, .B = B, .L = L, .ids = d.ids};
    struct step_call call = {.be = be, .d = &d, .n_pos = n_pos, .fn = fn, .ctx = ctx,
                             .sigma = sigma, .B = B, .L = L, .st = &st};
    int rc = 0;
    for (int k = 0; k <= o->steps && rc == 0; k++) {
        bool denoise = k == o->steps;
        if (denoise && !o->denoise) break;
        double tk = t[k];
        double sig = sedd_noise_total(nz, tk);
        for (int b = 0; b < B; b++) sigma[b] = (float)sig;
        st.step = (uint32_t)k + 1;
        if (denoise) {
            st.kind = BE_SEDD_DENOISE;
            st.param = sig;
        } else if (o->predictor == SEDD_PRED_EULER) {
            st.kind = BE_SEDD_EULER;
            st.param = (double)(float)dt * sedd_noise_rate(nz, tk);
        } else {
            st.kind = BE_SEDD_ANALYTIC;
            st.param = sig - sedd_noise_total(nz, (double)((float)tk - (float)dt));
        }
        st.stored = d.stored;
        if (d.stored) {
            size_t n_u = denoise && absorb ? V - 1 : V;
            rc = be->to_device(d.stored, replay->gumbel_u[k], n_pos * n_u * sizeof *d.stored, e);
        }
        if (rc == 0) rc = be->run_step(enqueue_step, &call, e);
        if (rc == 0 && trace)
            rc = be->to_host(trace + (size_t)k * n_pos, d.x, n_pos * sizeof *x, e);
        if (rc == 0 && o->progress) o->progress(o->progress_ctx, k + 1);
    }
    if (rc == 0 && d.fixed) be->sedd_project(d.x, d.fixed, n_pos);
    if (rc == 0) rc = be->to_host(x, d.x, n_pos * sizeof *x, e);
    bufs_free(be, &d);
    free(sigma), free(t);
    return rc;
}

/* The losses of n sequences x0 (n,L) at times t (n) in one score call: x_t (n,L) drawn with the
 * move uniforms u (n,L) (and rand_tokens), log-scores into ws (n,L,V; be's memory, where fn
 * writes them), per-position score entropies (be's sedd_score_entropy, there) into dse (n,L),
 * loss[i] = σ'(t_i) Σ_l dse[i,l] summed in position order (the same bits for any thread count
 * and any n). x, dse host memory. */
static int loss_batch(const backend *be, const sedd_graph *g, const sedd_noise *nz,
                      sedd_score_fn fn, void *ctx, const int64_t *x0, int n, int L,
                      const double *t, const double *u, const int64_t *rand_tokens, float *ws,
                      int64_t *x, double *dse, double *loss, err_t *e)
{
    const size_t rows = (size_t)n * (size_t)L;
    float *sig32 = malloc((size_t)n * sizeof *sig32);
    double *sigma = malloc((size_t)n * sizeof *sigma);
    int64_t *dx = be->alloc(rows * sizeof *dx), *dx0 = be->alloc(rows * sizeof *dx0);
    double *ddse = be->alloc(rows * sizeof *ddse);
    int rc = sig32 && sigma && dx && dx0 && ddse
                 ? 0
                 : err_set(e, "sedd_sampler_loss: out of %s memory", be->name);
    for (int i = 0; rc == 0 && i < n; i++) {
        sigma[i] = sedd_noise_total(nz, t[i]);
        sig32[i] = (float)sigma[i];
        for (size_t l = (size_t)i * (size_t)L; l < (size_t)(i + 1) * (size_t)L; l++)
            x[l] = sedd_graph_sample_transition(g, x0[l], sigma[i], u[l],
                                                rand_tokens ? rand_tokens[l] : 0);
    }
    if (rc == 0) rc = be->to_device(dx, x, rows * sizeof *x, e);
    if (rc == 0) rc = be->to_device(dx0, x0, rows * sizeof *x0, e);
    if (rc == 0) rc = fn(ctx, dx, sig32, n, L, ws, e);
    for (int i = 0; rc == 0 && i < n; i++) {
        size_t o = (size_t)i * (size_t)L;
        be->sedd_score_entropy(ddse + o, ws + o * (size_t)g->dim, dx + o, dx0 + o, L, sigma[i],
                               g->type == CONFIG_GRAPH_ABSORB, g->n);
    }
    if (rc == 0) rc = be->to_host(dse, ddse, rows * sizeof *dse, e);
    free(sig32), free(sigma);
    be->free(dx), be->free(dx0), be->free(ddse);
    if (rc < 0) return rc;
    for (int i = 0; i < n; i++) {
        double sum = 0;
        for (int l = 0; l < L; l++) sum += dse[(size_t)i * (size_t)L + (size_t)l];
        loss[i] = sedd_noise_rate(nz, t[i]) * sum;
    }
    return 0;
}

int sedd_sampler_loss(const backend *be, const sedd_graph *g, const sedd_noise *nz,
                      sedd_score_fn fn, void *ctx, const int64_t *x0, int L, double t,
                      const double *u, const int64_t *rand_tokens, float *ws, int64_t *xt,
                      double *dse, double *loss, err_t *e)
{
    int64_t *x = xt ? xt : malloc((size_t)L * sizeof *x);
    double *d = dse ? dse : malloc((size_t)L * sizeof *d);
    int rc = x && d ? loss_batch(be, g, nz, fn, ctx, x0, 1, L, &t, u, rand_tokens, ws, x, d,
                                 loss, e)
                    : err_set(e, "sedd_sampler_loss: out of memory");
    if (!dse) free(d);
    if (!xt) free(x);
    return rc;
}

int sedd_sampler_bound(const backend *be, const sedd_graph *g, const sedd_noise *nz,
                       sedd_score_fn fn, void *ctx, const int64_t *x0, int L, int K,
                       enum sedd_tgrid grid, uint64_t seed, uint64_t id, uint32_t pos0,
                       uint32_t block, int batch, float *ws, double *mean, double *stderr_,
                       err_t *e)
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
        rc = loss_batch(be, g, nz, fn, ctx, x0s, n, L, t + k0, u, rt, ws, xt, dse, loss + k0,
                        e);
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
