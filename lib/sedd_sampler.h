/* sedd_sampler: SEDD sampling (spec §4) — Gumbel-max categorical draws from Philox keyed by
 * (seed, record id, step, position), the Euler and analytic predictors, the denoiser, the time grid
 * loop and projection of fixed positions — and the score-entropy loss of one sequence (spec §5).
 * Ownership: caller buffers throughout; the score function is the caller's (usually sedd_forward).
 * The sampling loop runs on any backend through its SEDD ops (backend.h; the CPU backend's are
 * this file's per-position functions in loops, lib/backend_cpu_sedd.c).
 * Errors: ERR_FAIL from the score function or an allocation, with the message in e. */
#ifndef DLM_SEDD_SAMPLER_H
#define DLM_SEDD_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "err.h"
#include "sedd_graph.h"
#include "sedd_noise.h"

enum sedd_predictor { SEDD_PRED_EULER, SEDD_PRED_ANALYTIC };

/* Philox step numbers: the initial (limit) draw is step 0, predictor step k is k + 1, the
 * denoiser steps + 1; the loss's t-sample k is SEDD_STEP_LOSS + k. */
#define SEDD_STEP_LOSS 0x40000000u

/* Where the uniforms of one categorical draw come from. */
typedef struct sedd_draw {
    int precision;        /* 64: double uniforms and arithmetic (default); 32: float, as torch */
    uint64_t seed, record;
    uint32_t step, position;
    const float *stored;  /* non-NULL: the n stored torch.rand uniforms (fixture replay), 32-bit */
} sedd_draw;

/* Exponential-race Gumbel-max over n unnormalised (possibly negative) weights p:
 * argmax_y p_y / g_y with g = −log u (64-bit) or 1e-10 − log(u + 1e-10) in float (32-bit and
 * stored draws, exactly as catsample.py); first index on ties. */
int64_t sedd_sampler_categorical(const double *p, int64_t n, const sedd_draw *d);

/* The weights each predictor hands to the categorical draw at one position in state x, from the
 * scores s (exp space, V entries). tmp holds V doubles. The denoiser returns the number of
 * weights (V − 1 for absorb: the mask column is dropped). */
void sedd_sampler_euler_probs(const sedd_graph *g, int64_t x, const float *s, double dt_dsigma,
                              double *probs /* (V) */);
void sedd_sampler_analytic_probs(const sedd_graph *g, int64_t x, const float *s, double delta,
                                 double *probs /* (V) */, double *tmp /* (V) */);
int64_t sedd_sampler_denoise_probs(const sedd_graph *g, int64_t x, const float *s, double sigma,
                                   double *probs /* (V) */, double *tmp /* (V) */);

/* Log-scores of B sequences of length L at total noise sigma[b]: what the sampler and the loss
 * call (sedd_forward behind a context). With an absorbing graph they read only the rows at
 * masked positions, so a function may leave the others as scratch (sedd_score_masked). x and
 * log_score are host memory for the loss and the bound, the sampler's backend memory for
 * sedd_sample; sigma is always host memory. */
typedef int (*sedd_score_fn)(void *ctx, const int64_t *x /* (B,L) */, const float *sigma /* (B) */,
                             int B, int L, float *log_score /* (B,L,V) */, err_t *e);

typedef struct sedd_sample_opts {
    enum sedd_predictor predictor;
    int steps;            /* predictor steps (NFE = steps + 1 with the denoiser) */
    double eps;           /* final time [1e-5] */
    bool denoise;         /* final denoiser step [true] */
    int precision;        /* 64 or 32 */
    uint64_t seed;
    /* called after every step (k = 1..steps, then steps + 1 for the denoiser); may be NULL */
    void (*progress)(void *ctx, int k);
    void *progress_ctx;
} sedd_sample_opts;

/* Stored random draws of a fixture trajectory, replacing Philox (NULL members: Philox). */
typedef struct sedd_replay {
    const int64_t *x_init;          /* (B,L) the uniform limit's tokens */
    const float *const *gumbel_u;   /* steps + 1 pointers: (B,L,V) per predictor step, then the
                                       denoiser's (B,L,V) or (B,L,V−1) for absorb */
} sedd_replay;

/* Runs the sampler of the original (get_pc_sampler) on B sequences of length L with record ids
 * ids[b], on backend be: the state and the scores live in be's memory (fn must take x (B,L) and
 * write log_score (B,L,V) there: sedd_score_device, or any host-memory function with the CPU
 * backend), each step is one run_step of be's sedd_project, fn and sedd_step (one CUDA graph on
 * a GPU), and no score comes back to the host.
 * fixed (B,L) (may be NULL) holds the token to keep at each position or −1 (a token outside
 * the graph's dim is an error before anything runs): projected before
 * every step, before the denoiser and on the result (prefix, suffix, any positions).
 * x (B,L) receives the samples; trace (steps + 1, B, L), if not NULL, the state after each call
 * (before the next projection). replay NULL draws from Philox. ids, fixed, replay, x and trace
 * are host memory. @return 0 or ERR_FAIL. */
int sedd_sample(const backend *be, const sedd_graph *g, const sedd_noise *nz,
                const sedd_sample_opts *o, sedd_score_fn fn, void *ctx, int B, int L,
                const uint64_t *ids /* (B) */, const int64_t *fixed, const sedd_replay *replay,
                int64_t *x, int64_t *trace, err_t *e);

/* Score-entropy loss of one sequence x0 (L) at time t (spec §5.1): x_t is drawn with move
 * uniforms u (L) (and rand_tokens (L) for uniform); the model is called once. fn takes the
 * tokens and writes the log-scores in be's memory, where ws holds L·V floats (as in
 * sedd_sampler_bound). xt (L), dse (L) (host) may be NULL; returns the loss in nats
 * (Σ_l σ'(t)·DSE_l) in *loss. @return 0 or ERR_FAIL. */
int sedd_sampler_loss(const backend *be, const sedd_graph *g, const sedd_noise *nz,
                      sedd_score_fn fn, void *ctx, const int64_t *x0, int L, double t,
                      const double *u, const int64_t *rand_tokens, float *ws, int64_t *xt,
                      double *dse, double *loss, err_t *e);

/* How the K loss times of the bound are placed in [ε, 1] (ε = SEDD_LOSS_EPS). */
enum sedd_tgrid {
    SEDD_T_STRATIFIED,  /* t_k = ε + (1−ε)(k + u_k)/K, one uniform per stratum (default) */
    SEDD_T_GRID,        /* t_k = ε + (1−ε)(k + 0.5)/K, the fixture's fixed grid */
    SEDD_T_IID          /* t_k = ε + (1−ε) u_k, as the original's training loss */
};

/* The loss's lower time limit (losses.py sampling_eps). */
#define SEDD_LOSS_EPS 1e-3

/* Upper bound on −log p(x0) of one block x0 (L tokens, record id, tokens at record positions
 * pos0..pos0+L−1; block is the block's index in its record) from K loss samples: *mean is the
 * average loss in nats, *stderr its standard error (sample standard deviation / √K; NaN for
 * K = 1). Every draw is Philox: (seed, id, SEDD_STEP_LOSS + k, record position) for x_t, and
 * position 0x80000000 + block for t's uniform. The K noised sequences go to the score function
 * batch at a time (one call of up to batch sequences). fn takes the tokens and writes the
 * log-scores in be's memory (sedd_score_device_masked with sedd_backend(model), or a host
 * function with &backend_cpu), ws holds batch·L·V floats there, and the score entropies are
 * be's sedd_score_entropy: only batch·L doubles come back to the host. When the score function
 * computes each sequence on its own (sedd_forward does), the result has the same bits for every
 * batch. @return 0 or ERR_FAIL. */
int sedd_sampler_bound(const backend *be, const sedd_graph *g, const sedd_noise *nz,
                       sedd_score_fn fn, void *ctx, const int64_t *x0, int L, int K,
                       enum sedd_tgrid grid, uint64_t seed, uint64_t id, uint32_t pos0,
                       uint32_t block, int batch, float *ws, double *mean, double *stderr_,
                       err_t *e);

#endif
