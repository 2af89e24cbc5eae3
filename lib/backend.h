/* backend: the op interface every model is written against (GPT-2 now, SEDD, CUDA later).
 * Ownership: a backend is a static table of function pointers; buffers come from its alloc/free.
 * Errors: ops take valid shapes and cannot fail (except sedd_step: out of memory on the CPU);
 * alloc returns NULL, transfers return ERR_FAIL. */
#ifndef DLM_BACKEND_H
#define DLM_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Conventions for every op below.
 * - Tensors are dense row-major fp32 arrays in the backend's memory (host memory on the CPU).
 *   Shapes are written (B,T,C): the last dimension is contiguous. N means "rows", any B*T.
 * - In-place use (y == x) is allowed wherever an op says "y may alias x".
 * - Per-row arithmetic never depends on how many rows are processed together or on the thread
 *   count, except inside matmul (which goes to BLAS; see backend_cpu.c for what that implies),
 *   so an op on row r gives the same bits whatever else is in the batch.
 * - Threads: the CPU backend uses OpenMP over rows/heads/columns (omp_set_num_threads decides). */

/* What the SEDD sampling step op draws with (see sedd_step below). */
enum be_sedd_kind {
    BE_SEDD_EULER,     /* Euler predictor: weights δ_x + dt·σ'(t) · reverse rate */
    BE_SEDD_ANALYTIC,  /* analytic (Tweedie) predictor over a step of Δσ */
    BE_SEDD_DENOISE    /* final denoiser: the analytic weights at Δσ = σ; absorb drops the mask */
};

/* One SEDD sampling step over the B·L positions of a batch (spec sedd.md §4; the per-position
 * arithmetic is lib/sedd_sampler.c's sedd_sampler_*_probs and sedd_sampler_categorical). */
typedef struct be_sedd_step {
    enum be_sedd_kind kind;
    bool absorb;           /* absorbing graph (V = n_tokens + 1, mask = n_tokens) or uniform */
    int64_t n_tokens;      /* N, data tokens */
    double param;          /* Euler: dt·σ'(t); analytic: Δσ = σ(t) − σ(t − dt); denoiser: σ(t) */
    int precision;         /* 64: double uniforms and weights; 32: float draws, as torch */
    uint64_t seed;         /* Philox (seed, ids[b], step, position l), as sedd_draw */
    uint32_t step;
    int B, L;
    const uint64_t *ids;   /* (B) record ids, backend memory */
    const float *stored;   /* NULL, or (B,L,n_u) stored uniforms replacing Philox (backend
                              memory; n_u = V − 1 for the absorbing denoiser, else V) */
} be_sedd_step;

/* How a weight matrix is stored. */
enum be_layout {
    BE_IN_OUT,  /* W (in, out): y = x·W — GPT-2's Conv1D as stored on the hub */
    BE_OUT_IN   /* W (out, in): y = x·Wᵀ — nn.Linear (SEDD, lm_head/wte as output projection) */
};

typedef struct backend {
    const char *name;  /* "cpu", "cuda" */

    /* ---- memory ------------------------------------------------------------------------- */
    /* bytes of backend memory (64-byte aligned on the CPU), NULL when out of memory */
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);  /* free(NULL) is a no-op */
    /* copies host src -> backend dst, backend src -> host dst (memcpy on the CPU) */
    int (*to_device)(void *dst, const void *src, size_t bytes, err_t *e);
    int (*to_host)(void *dst, const void *src, size_t bytes, err_t *e);
    /* within backend memory: sets bytes to zero / copies bytes from src to dst (the two ranges
     * must not overlap); memset and memcpy on the CPU. For code that runs on any backend. */
    void (*zero)(void *p, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes);

    /* ---- linear algebra ----------------------------------------------------------------- */
    /* y (N,out) = x (N,in) · W + bias, or y += x·W + bias when accumulate (the residual add
     * fused into the GEMM's beta). W is (in,out) for BE_IN_OUT, (out,in) for BE_OUT_IN.
     * bias (out) may be NULL. y must not alias x. */
    void (*matmul)(float *y, const float *x, const float *w, const float *bias, int n, int in,
                   int out, enum be_layout layout, bool accumulate);
    /* As matmul, but each output row is computed by a fixed-order loop over `in` that does not
     * depend on n or the thread count (batch-invariant); memory-bound: meant for small n
     * (incremental decoding), where it is also faster than a GEMM call. */
    void (*matmul_rows)(float *y, const float *x, const float *w, const float *bias, int n,
                        int in, int out, enum be_layout layout, bool accumulate);

    /* ---- normalisation and pointwise ---------------------------------------------------- */
    /* y (N,C) = (x - mean) / sqrt(var + eps) * w + b over each row (biased variance, mean and
     * variance accumulated in double). w (C) may be NULL (no scale), b (C) may be NULL (SEDD's
     * weight-only LayerNorm). y may alias x. */
    void (*layernorm)(float *y, const float *x, const float *w, const float *b, int n, int c,
                      float eps);
    /* y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), n elements; y may alias x */
    void (*gelu_tanh)(float *y, const float *x, size_t n);
    /* y = x · sigmoid(x); y may alias x */
    void (*silu)(float *y, const float *x, size_t n);
    /* y = a + b elementwise, n elements; y may alias a or b */
    void (*add)(float *y, const float *a, const float *b, size_t n);
    /* adaLN: y (B,T,C) = x (B,T,C) * (1 + scale[b]) + shift[b]; shift and scale are rows of
     * length C at stride `mod_stride` floats between batch rows (so the chunks of one (B,6C)
     * adaLN output can be passed directly: shift = mod + 0, scale = mod + C, stride 6C).
     * y may alias x. */
    void (*modulate)(float *y, const float *x, const float *shift, const float *scale,
                     size_t mod_stride, int B, int T, int C);
    /* gated residual: x (B,T,C) += gate[b] * y (B,T,C); gate rows of C at stride mod_stride */
    void (*gated_add)(float *x, const float *gate, size_t mod_stride, const float *y, int B,
                      int T, int C);

    /* ---- embedding, rotary, attention --------------------------------------------------- */
    /* y (N,C) = table[ids[i]] (+ pos[pos0 + i % T] when pos is not NULL: GPT-2's wte + wpe,
     * T = the sequence length, pos0 the past length). ids must be valid rows of table. */
    void (*embed)(float *y, const float *table, const float *pos, const int32_t *ids, int n,
                  int T, int pos0, int c);
    /* Rotary embedding in place, rotate-half (GPT-NeoX) layout, on H heads of dimension d:
     * row (b,t) starts at x + (b*T+t)*row_stride, head h at + h*d; with x1 = u[0..d/2),
     * x2 = u[d/2..d): u' = [x1 cos - x2 sin, x2 cos + x1 sin]; cos, sin (T,d) for positions
     * 0..T-1 (both halves use the same angle for index j mod d/2). Call once for q and once for
     * k (x + C) of a packed qkv (B,T,3C) with row_stride 3C. */
    void (*rotary)(float *x, size_t row_stride, const float *cos, const float *sin, int B,
                   int T, int H, int d);
    /* Copies the K and V parts of packed qkv (B,T,3C), C = H*d, into caches k, v laid out
     * (B,H,cap,d) at positions past..past+T-1. */
    void (*kv_store)(float *k, float *v, const float *qkv, int B, int T, int H, int d, int past,
                     int cap);
    /* ids[i] = tokens[i] as int32 (the embedding's ids of a state kept as int64 token ids);
     * every token must fit */
    void (*ids_from_tokens)(int32_t *ids, const int64_t *tokens, size_t n);
    /* Scaled dot-product attention. q: row (b,t) at q + (b*Tq+t)*q_stride, head h at + h*d
     * (pass qkv with q_stride 3C to read q out of the packed projection). k, v: (B,H,cap,d)
     * caches holding Tk valid positions. out (B,Tq,H*d).
     * past >= 0: causal, query t sits at position past+t and sees keys 0..past+t (GPT-2; Tk
     * must be past+Tq). past < 0: every query sees all Tk keys (SEDD).
     * key_mask (B,Tk) may be NULL; a 0 entry hides that key (padding). A query that sees no
     * key gets a zero output. scores are q·k * scale (1/sqrt(d)), softmax in float with max
     * subtraction, the sum accumulated in double. */
    void (*attention)(float *out, const float *q, size_t q_stride, const float *k,
                      const float *v, int B, int Tq, int Tk, int cap, int H, int d, int past,
                      const uint8_t *key_mask, float scale);

    /* ---- rows --------------------------------------------------------------------------- */
    /* y (N,C) = softmax / log_softmax of each row (max subtracted, sum in double); y may
     * alias x */
    void (*softmax)(float *y, const float *x, int n, int c);
    void (*log_softmax)(float *y, const float *x, int n, int c);
    /* lp[i] = log_softmax(x[i])[target[i]] for n rows of c logits, without materialising the
     * row: max, then the sum of exponentials (float terms, double accumulation across lanes).
     * target[i] must be in 0..c-1. For per-token log-likelihoods. */
    void (*log_softmax_pick)(double *lp, const float *x, const int32_t *target, int n, int c);
    /* Ancestral draws, one per row, from the softmax of logits (n,c) at temperature 1/inv_t
     * (inv_t > 0), by the inverse CDF at u[i] in [0,1): with mx the row's max and
     * p_j = exp(((double)x_j − mx)·inv_t), tok[i] = the first j whose running sum of p exceeds
     * u[i]·Σp, or c − 1 when none does (a NaN row). Sums in double: the CPU adds in index
     * order (gpt2-sample's contract), other backends in another fixed order, so their token
     * can differ only where u·Σp falls within rounding of a boundary. u (n), tok (n). */
    void (*draw_rows)(int32_t *tok, const float *x, const double *u, int n, int c, double inv_t);

    /* ---- SEDD sampling (lib/sedd_sampler.c; spec sedd.md §1.3 steps 7-8 and §4) ----------
     * The sampler's per-step work on the scores, so that a run keeps its (B,L,V) scores where
     * the model computed them. */
    /* rows (n,V) of raw output at noise sigma -> log-scores in place: when scale,
     * y ↦ (y − log(e^σ − 1)) − log(V − 1) in float (the two logs computed in double and rounded
     * to float); then rows[i][x[i]] = 0. x (n) token ids. */
    void (*sedd_finish)(float *rows, const int64_t *x, int n, int64_t V, float sigma,
                        bool scale);
    /* x (n) = fixed wherever fixed >= 0 (the sampler's projection of kept positions) */
    void (*sedd_project)(int64_t *x, const int64_t *fixed, size_t n);
    /* One predictor or denoiser step (a->kind) at every position of x (B,L): the log-scores
     * score (B,L,V) are exponentiated in place (float exp; absorb: only the rows of masked
     * positions, the others are not read), turned into the step's weights (in double) and a
     * token is drawn from them by Gumbel-max (sedd_sampler_categorical: the same Philox
     * counters and uniforms, ties to the lowest index). Absorb: an unmasked position keeps its
     * token. @return 0, or ERR_FAIL (out of memory on the CPU) with the message in e. */
    int (*sedd_step)(int64_t *x, float *score, const be_sedd_step *a, err_t *e);
    /* The score entropy of one sequence's L positions (sedd_graph_score_entropy: the bound's
     * per-position loss before the σ' weight): dse[l] from the log-scores score (L,V) at the
     * noised tokens x (L) against the data x0 (L), at noise sigma (V = n_tokens + 1 when
     * absorb, else n_tokens; absorb: 0 at unmasked positions). Sums over the vocabulary in
     * double: the CPU in index order, other backends in another fixed order. */
    void (*sedd_score_entropy)(double *dse, const float *score, const int64_t *x,
                               const int64_t *x0, int L, double sigma, bool absorb,
                               int64_t n_tokens);

    /* ---- steps ------------------------------------------------------------------------------
     * Runs enqueue(ctx, e), which queues one step of ops (a sampling step). enqueue may call
     * to_device but not to_host, and must be safe to call again: it only queues ops, so a step
     * whose capture fails can be queued again. The CPU backend calls it. The CUDA backend
     * captures the ops as a CUDA graph and launches it as one (kernels/graph.cuh: a step that
     * allocates device memory runs op by op; DLM_CUDA_GRAPHS=0 turns graphs off); the step may still be running
     * when run_step returns, and to_host waits for it. @return enqueue's status or ERR_FAIL. */
    int (*run_step)(int (*enqueue)(void *ctx, err_t *e), void *ctx, err_t *e);

    /* ---- training: backward ops and the optimiser ----------------------------------------
     * Every backward op ADDS into its gradient outputs (d* += ...), as llm.c does: the caller
     * zeroes the gradients once per step, and a tensor read by two branches (the residual
     * stream) simply receives both contributions. A gradient pointer may be NULL when that
     * gradient is not wanted. dy is never modified unless an op says so. Per-element results
     * do not depend on the thread count (reductions are cut into fixed tiles and summed in a
     * fixed order), so a training run is reproducible bit for bit on one build. */

    /* Backward of matmul (y = x·W + bias): dx (N,in) += dy (N,out) · Wᵀ, dw (W's layout)
     * += xᵀ · dy, dbias (out) += column sums of dy. */
    void (*matmul_backward)(float *dx, float *dw, float *dbias, const float *dy, const float *x,
                            const float *w, int n, int in, int out, enum be_layout layout);
    /* Backward of layernorm (mean and variance recomputed from x): dx, dw (C), db (C). w may be
     * NULL (then dw is ignored); db NULL for a bias-free norm. */
    void (*layernorm_backward)(float *dx, float *dw, float *db, const float *dy, const float *x,
                               const float *w, int n, int c, float eps);
    /* dx += f'(x) · dy for y = gelu_tanh(x) / silu(x); n elements */
    void (*gelu_tanh_backward)(float *dx, const float *x, const float *dy, size_t n);
    void (*silu_backward)(float *dx, const float *x, const float *dy, size_t n);
    /* Backward of modulate: dx += dy (1 + scale[b]); dshift[b] += Σ_t dy; dscale[b] += Σ_t dy·x.
     * dshift, dscale, scale are rows at stride mod_stride, as in modulate. */
    void (*modulate_backward)(float *dx, float *dshift, float *dscale, const float *dy,
                              const float *x, const float *scale, size_t mod_stride, int B, int T,
                              int C);
    /* Backward of gated_add (x += gate[b] · y) given dx, the gradient of the updated x (which
     * also flows on unchanged to the old x: the caller keeps using dx): dgate[b] += Σ_t dx·y,
     * dy += gate[b] · dx. dgate and gate at stride mod_stride. */
    void (*gated_add_backward)(float *dgate, float *dy, const float *gate, size_t mod_stride,
                               const float *dx, const float *y, int B, int T, int C);
    /* Backward of embed with pos0 = 0: dtable[ids[i]] += dy[i]; dpos[i % T] += dy[i] (dpos may
     * be NULL). Rows are accumulated in index order (deterministic). */
    void (*embed_backward)(float *dtable, float *dpos, const int32_t *ids, const float *dy, int n,
                           int T, int c);
    /* Backward of rotary, in place on the gradient (the inverse rotation), same arguments. */
    void (*rotary_backward)(float *dx, size_t row_stride, const float *cos, const float *sin,
                            int B, int T, int H, int d);
    /* Backward of kv_store for training (past = 0, cap = T): the K and V parts of dqkv
     * (B,T,3C) += dk, dv (B,H,T,d). */
    void (*kv_store_backward)(float *dqkv, const float *dk, const float *dv, int B, int T, int H,
                              int d);
    /* Backward of attention with Tq = Tk = cap = T and no key mask; causal (GPT-2, past = 0) or
     * not (SEDD). The probabilities are recomputed from q and k. dq at q_stride like q (pass
     * dqkv, 3C); dk, dv (B,H,T,d). */
    void (*attention_backward)(float *dq, float *dk, float *dv, const float *dout, const float *q,
                               size_t q_stride, const float *k, const float *v, int B, int T,
                               int H, int d, bool causal, float scale);
    /* Cross-entropy of n rows of c logits against targets (-1: row ignored): loss[i] =
     * -log softmax(x[i])[target[i]] (0 when ignored), and, when dx is not NULL,
     * dx[i] = (softmax(x[i]) - onehot(target[i])) · dscale (0 for ignored rows). dx may alias
     * x (the logits are then overwritten by their gradient). */
    void (*cross_entropy)(double *loss, float *dx, const float *x, const int32_t *target, int n,
                          int c, float dscale);

    /* ---- optimiser ---------------------------------------------------------------------- */
    /* Σ x², accumulated in double in fixed tiles (for the gradient norm) */
    double (*sumsq)(const float *x, size_t n);
    /* x *= a */
    void (*scale)(float *x, float a, size_t n);
    /* One AdamW step (PyTorch's torch.optim.AdamW): with t = step (1-based),
     * p -= lr·wd·p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²;
     * p -= lr · (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps). */
    void (*adamw)(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int step);
    /* EMA of the weights: ema = decay · ema + (1 - decay) · p */
    void (*ema)(float *ema, const float *p, size_t n, float decay);
} backend;

/* The CPU reference backend (lib/backend_cpu.c). */
extern const backend backend_cpu;

/* Sets up the process environment the CPU backend is fast in, which OpenBLAS and libgomp read
 * only when they load (before main), so it re-executes /proc/self/exe with the same argv when
 * something has to change:
 *  - OPENBLAS_CORETYPE unset and OpenBLAS running a generic/pre-AVX2 kernel (it does when the
 *    CPU model is hidden, as on some VMs: 30 vs 190 GFLOP/s) on a CPU with AVX-512 (AVX2):
 *    OPENBLAS_CORETYPE=SkylakeX (Haswell). A set OPENBLAS_CORETYPE is respected.
 *  - neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT set: OMP_WAIT_POLICY=passive.
 * Call first thing in main (before anything is printed or read). Returns when nothing has to
 * change, or when the exec failed (then it only runs slower). DLM_NO_REEXEC=1 disables it;
 * the re-executed process has it set, so this happens at most once. */
void backend_cpu_blas_init(int argc, char **argv);

/* Uses n threads for OpenMP, the decoding pool (lib/pool.h) and OpenBLAS (n >= 1). */
void backend_cpu_set_threads(int n);

/* The OpenBLAS kernel in use ("SkylakeX", "Prescott", ...), for logs and benchmarks. */
const char *backend_cpu_blas_core(void);

#endif
