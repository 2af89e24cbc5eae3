/* backend_cpu_sedd: the CPU backend's SEDD sampling ops (contracts in backend.h): the output's
 * finish (scale_by_sigma shift, zero at the current token), the projection of kept positions,
 * one sampler step over all positions, which runs the sampler's per-position reference
 * (sedd_sampler_*_probs, sedd_sampler_categorical in sedd_sampler.c) in OpenMP loops, and the
 * bound's score entropy (sedd_graph_score_entropy at every position).
 * Ownership: no state; per-thread weight buffers are allocated per call.
 * Errors: sedd_step returns ERR_FAIL when those buffers cannot be allocated. */
#include <stdlib.h>

#include "backend.h"
#include "backend_cpu_internal.h"
#include "sedd_graph.h"
#include "sedd_sampler.h"

void cpu_sedd_finish(float *rows, const int64_t *x, int n, int64_t V, float sigma, bool scale)
{
    const float log_vm1 = (float)log((double)(V - 1));
    const float shift = (float)log(sedd_graph_esigm1((double)sigma));
#pragma omp parallel for schedule(static) if ((size_t)n * (size_t)V > (1u << 18))
    for (int l = 0; l < n; l++) {
        float *row = rows + (size_t)l * (size_t)V;
        if (scale)
            for (int64_t y = 0; y < V; y++) row[y] = (row[y] - shift) - log_vm1;
        row[x[l]] = 0;
    }
}

void cpu_sedd_project(int64_t *x, const int64_t *fixed, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fixed[i] >= 0) x[i] = fixed[i];
}

int cpu_sedd_step(int64_t *x, float *score, const be_sedd_step *a, err_t *e)
{
    sedd_graph g;
    sedd_graph_init(&g, a->absorb ? CONFIG_GRAPH_ABSORB : CONFIG_GRAPH_UNIFORM, a->n_tokens);
    const int64_t V = g.dim, n_pos = (int64_t)a->B * a->L;
    const int64_t n_u = (a->kind == BE_SEDD_DENOISE && a->absorb) ? V - 1 : V;
    /* scores in exp space, only at the positions that draw (absorb: the masked ones) */
#pragma omp parallel for schedule(static) if ((size_t)n_pos * (size_t)V > (1u << 18))
    for (int64_t p = 0; p < n_pos; p++) {
        if (a->absorb && x[p] != g.n) continue;
        float *row = score + (size_t)p * (size_t)V;
        for (int64_t y = 0; y < V; y++) row[y] = expf(row[y]);
    }
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
            if (a->absorb && xi != g.n) continue;
            const float *s = score + (size_t)p * (size_t)V;
            int64_t n = V;
            if (a->kind == BE_SEDD_EULER) sedd_sampler_euler_probs(&g, xi, s, a->param, probs);
            else if (a->kind == BE_SEDD_ANALYTIC)
                sedd_sampler_analytic_probs(&g, xi, s, a->param, probs, tmp);
            else n = sedd_sampler_denoise_probs(&g, xi, s, a->param, probs, tmp);
            sedd_draw d = {.precision = a->precision, .seed = a->seed, .step = a->step,
                           .record = a->ids[p / a->L], .position = (uint32_t)(p % a->L),
                           .stored = a->stored ? a->stored + (size_t)p * (size_t)n_u : NULL};
            x[p] = sedd_sampler_categorical(probs, n, &d);
        }
        free(probs);
        free(tmp);
    }
    if (failed) return err_set(e, "sedd_sample: out of memory");
    return 0;
}

void cpu_sedd_score_entropy(double *dse, const float *score, const int64_t *x, const int64_t *x0,
                            int L, double sigma, bool absorb, int64_t n_tokens)
{
    sedd_graph g;
    sedd_graph_init(&g, absorb ? CONFIG_GRAPH_ABSORB : CONFIG_GRAPH_UNIFORM, n_tokens);
#pragma omp parallel for schedule(dynamic, 16) if ((size_t)L * (size_t)g.dim > (1u << 16))
    for (int l = 0; l < L; l++)
        dse[l] = sedd_graph_score_entropy(&g, score + (size_t)l * (size_t)g.dim, sigma, x[l],
                                          x0[l]);
}
