// sedd_sampling: the SEDD sampler's per-step work on the device (contracts in lib/backend.h):
// the output's finish, the projection of kept positions, and one predictor/denoiser step with
// its Gumbel-max draw, one block per position; and the bound's score entropy, one block per
// position. The arithmetic is lib/sedd_sampler.c's and
// lib/sedd_graph.c's, written out with explicitly rounded operations (__dmul_rn, __dadd_rn, ...:
// never contracted into FMAs) in the CPU's order; the scalars of a step (exp, expm1 of Δσ) are
// computed on the host with the same libm calls. What can still differ from the CPU: the exp of
// the scores ((float)exp((double)s) here, glibc's expf there; both within ~0.5 ulp), the logs of
// the uniforms (CUDA's log vs glibc's, <= 1 ulp of double) and the order of the block sum of the
// scores: weights agree to an ulp or so, and a drawn token can differ only at a near-tie of the
// race (see tests/kernels/test_sedd_ops.c).
#include <cstdint>

#include "cuda_common.cuh"
#include "philox.cuh"
#include "sedd_sampling.cuh"

// ---- finish and projection ------------------------------------------------------------------

// rows (n,V): (y − shift) − log_vm1 when scale, then 0 at the current token
__global__ void k_sedd_finish(float *rows, const int64_t *x, int64_t V, float shift,
                              float log_vm1, bool scale, size_t total)
{
    GRID_STRIDE(i, total)
    {
        size_t l = i / (size_t)V;
        int64_t y = (int64_t)(i % (size_t)V);
        float r = rows[i];
        if (scale) r = __fsub_rn(__fsub_rn(r, shift), log_vm1);
        rows[i] = y == x[l] ? 0.0f : r;
    }
}

void cu_sedd_finish(float *rows, const int64_t *x, int n, int64_t V, float sigma, bool scale)
{
    if (n <= 0) return;
    // the CPU's scalars (backend_cpu_sedd.c; sedd_graph_esigm1 is expm1), from the host libm
    const float log_vm1 = (float)log((double)(V - 1));
    const float shift = (float)log(expm1((double)sigma));
    size_t total = (size_t)n * (size_t)V;
    k_sedd_finish<<<cu_blocks(total), CU_BLOCK, 0, cu_stream>>>(rows, x, V, shift, log_vm1, scale,
        total);
    CUDA_LAUNCH_CHECK();
}

__global__ void k_sedd_project(int64_t *x, const int64_t *fixed, size_t n)
{
    GRID_STRIDE(i, n)
    {
        if (fixed[i] >= 0) x[i] = fixed[i];
    }
}

void cu_sedd_project(int64_t *x, const int64_t *fixed, size_t n)
{
    if (!n) return;
    k_sedd_project<<<cu_blocks(n), CU_BLOCK, 0, cu_stream>>>(x, fixed, n);
    CUDA_LAUNCH_CHECK();
}

// ---- one sampling step ----------------------------------------------------------------------

// A step's constants (host-computed) for the kernel.
struct step_consts {
    enum be_sedd_kind kind;
    bool absorb;
    int precision;
    int64_t N, V, n_draw;  // data tokens, dim, tokens drawn from (V − 1 for the absorbing denoiser)
    int L;
    uint64_t seed;
    uint32_t step;
    const uint64_t *ids;
    const float *stored;   // (B,L,n_draw) or NULL
    double dt;             // Euler: dt·σ'(t)
    double inv;            // 1/N
    double e, om, move;    // analytic: e^Δ, 1 − e^Δ (−expm1 Δ), 1 − e^{−Δ} (−expm1 −Δ)
    double add_coef, off, stay_off;  // uniform analytic: (1 − e^Δ)/N, move/N, e^{−Δ} + move/N
};

// The weight of token y at a position in state xi with score s (exp space), `sum` the block sum
// of pass 1 (see k_sedd_step): sedd_sampler_euler_probs / sedd_sampler_analytic_probs.
__device__ inline double step_weight(const step_consts &c, int64_t y, int64_t xi, float s,
                                     double sum)
{
    if (c.kind == BE_SEDD_EULER) {
        if (y == xi) return __dadd_rn(__dmul_rn(-sum, c.dt), 1.0);  // (−Σ)·dt + 1
        double r = c.absorb ? (double)s : __dmul_rn((double)s, c.inv);
        return __dmul_rn(r, c.dt);
    }
    double es = __dmul_rn(c.e, (double)s);
    if (c.absorb)  // xi is the mask N: e·s_y·move for y < N, e·s_N + (1 − e^Δ)Σ at N (times 1)
        return y == c.N ? __dadd_rn(es, __dmul_rn(c.om, sum)) : __dmul_rn(es, c.move);
    return __dmul_rn(__dadd_rn(es, __dmul_rn(c.add_coef, sum)), y == xi ? c.stay_off : c.off);
}

// The race value of candidate y with weight w: 64-bit p/−log u, 32-bit as catsample.py in float
// (stored uniforms or Philox words); both the CPU's formulas (sedd_sampler_categorical).
__device__ inline double race64(double w, double u) { return __ddiv_rn(w, -log(u)); }

__device__ inline double race32(double w, float u)
{
    float gn = __fsub_rn(1e-10f, (float)log((double)__fadd_rn(u, 1e-10f)));
    return (double)__fdiv_rn((float)w, gn);
}

// (v, i) := the better of (v, i) and (v2, i2): larger value, then lower index; i < 0 is empty
__device__ inline void keep_best(double &v, long long &i, double v2, long long i2)
{
    if (i2 >= 0 && (i < 0 || v2 > v || (v2 == v && i2 < i))) v = v2, i = i2;
}

// Block-wide argmax (blockDim.x a multiple of 32); every thread gets the index.
__device__ inline long long block_argmax(double v, long long i, double *shv, long long *shi)
{
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1)
        keep_best(v, i, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, i, o));
    if (lane == 0) shv[wid] = v, shi[wid] = i;
    __syncthreads();
    if (wid == 0) {
        v = lane < nw ? shv[lane] : 0.0;
        i = lane < nw ? shi[lane] : -1;
        for (int o = 16; o > 0; o >>= 1)
            keep_best(v, i, __shfl_xor_sync(0xffffffffu, v, o),
                      __shfl_xor_sync(0xffffffffu, i, o));
        if (lane == 0) shi[0] = i;
    }
    __syncthreads();
    return shi[0];
}

// One block per position p. Pass 1: the scores to exp space in place and their sum (the one the
// step needs: Σ_{y<N} s for absorbing Euler, Σ_{y≠x} s/N for uniform Euler, Σ_y s for the
// analytic step and the denoiser). Pass 2: weights and race values, thread-local best, block
// argmax. Absorb: an unmasked position returns at once (its row is not read).
__global__ void k_sedd_step(int64_t *x, float *score, step_consts c)
{
    __shared__ double shd[32];
    __shared__ long long shi[32];
    const size_t p = blockIdx.x;
    const int64_t xi = x[p];
    if (c.absorb && xi != c.N) return;  // uniform across the block: no barrier is skipped
    float *row = score + p * (size_t)c.V;
    const int64_t skip = c.kind != BE_SEDD_EULER ? -1 : c.absorb ? c.N : xi;
    const bool scaled = c.kind == BE_SEDD_EULER && !c.absorb;
    double part = 0;
    for (int64_t y = threadIdx.x; y < c.V; y += blockDim.x) {
        float s = (float)exp((double)row[y]);
        row[y] = s;
        if (y != skip) part += scaled ? __dmul_rn((double)s, c.inv) : (double)s;
    }
    const double sum = block_sum(part, shd);  // ends with a barrier: row is complete

    const uint64_t record = c.ids[p / (size_t)c.L];
    const uint32_t pos = (uint32_t)(p % (size_t)c.L);
    double best = 0;
    long long best_i = -1;
    if (c.stored) {
        const float *u = c.stored + p * (size_t)c.n_draw;
        for (int64_t y = threadIdx.x; y < c.n_draw; y += blockDim.x)
            keep_best(best, best_i, race32(step_weight(c, y, xi, row[y], sum), u[y]), y);
    } else {
        // a Philox block holds 2 double uniforms (words 0,1 and 2,3) or 4 float ones
        const int per = c.precision == 32 ? 4 : 2;
        const int64_t lanes = (c.n_draw + per - 1) / per;
        for (int64_t j = threadIdx.x; j < lanes; j += blockDim.x) {
            uint32_t w[4];
            cu_philox_draw(c.seed, record, c.step, pos, (uint32_t)j, w);
            for (int k = 0; k < per; k++) {
                int64_t y = j * per + k;
                if (y >= c.n_draw) break;
                double wt = step_weight(c, y, xi, row[y], sum);
                double v = per == 4 ? race32(wt, cu_philox_u01_f32(w[k]))
                                    : race64(wt, cu_philox_u01_f64(w[2 * k], w[2 * k + 1]));
                keep_best(best, best_i, v, y);
            }
        }
    }
    long long win = block_argmax(best, best_i, shd, shi);
    if (threadIdx.x == 0) x[p] = win >= 0 ? win : 0;  // (−1 only if every value is NaN)
}

int cu_sedd_step(int64_t *x, float *score, const be_sedd_step *a, err_t *e)
{
    const size_t n_pos = (size_t)a->B * (size_t)a->L;
    if (!n_pos) return 0;
    step_consts c = {};
    c.kind = a->kind;
    c.absorb = a->absorb;
    c.precision = a->precision;
    c.N = a->n_tokens;
    c.V = a->absorb ? a->n_tokens + 1 : a->n_tokens;
    c.n_draw = a->kind == BE_SEDD_DENOISE && a->absorb ? c.V - 1 : c.V;
    c.L = a->L;
    c.seed = a->seed;
    c.step = a->step;
    c.ids = a->ids;
    c.stored = a->stored;
    c.inv = 1.0 / (double)c.N;
    // the host libm calls of sedd_graph_staggered_score / sedd_graph_transp_transition
    const double delta = a->param;
    c.dt = delta;
    c.e = exp(delta);
    c.om = -expm1(delta);
    c.move = -expm1(-delta);
    c.add_coef = c.om / (double)c.N;
    c.off = c.move / (double)c.N;
    c.stay_off = exp(-delta) + c.off;
    if (n_pos > 0x7fffffffu) {  // gridDim.x limit; B·L never comes near it
        if (e) snprintf(e->msg, sizeof e->msg, "sedd_step: %zu positions exceed a grid", n_pos);
        return ERR_FAIL;
    }
    k_sedd_step<<<(unsigned)n_pos, CU_BLOCK, 0, cu_stream>>>(x, score, c);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) {
        fprintf(stderr, "cuda: sedd_step launch: %s\n", cudaGetErrorString(err));
        if (e) snprintf(e->msg, sizeof e->msg, "sedd_step: CUDA launch failed: %s",
                        cudaGetErrorString(err));
        return ERR_FAIL;
    }
    return 0;
}

// ---- the bound's score entropy --------------------------------------------------------------

// The scalars of one sequence's score entropy, from the host libm as lib/sedd_graph.c makes them
struct entropy_consts {
    int64_t N, V;
    bool absorb;
    double esigm1;
    double r, r_k;                // absorb: 1/esigm1 and r·(−log esigm1 − 1)
    double n, ratio;              // uniform: N, esigm1/(esigm1 + N)
    double cst_same, cst_diff;    // uniform: the constant term for x = x0 and for x ≠ x0
};

// dse[l] for position l = blockIdx.x, the whole block summing over the vocabulary
__global__ void k_sedd_score_entropy(double *dse, const float *score, const int64_t *x,
                                     const int64_t *x0, entropy_consts c)
{
    __shared__ double sh[32];
    const size_t l = blockIdx.x;
    const float *ls = score + l * (size_t)c.V;
    const int64_t xl = x[l], x0l = x0[l];
    if (c.absorb && xl != c.N) {  // (the whole block leaves: no barrier follows)
        if (threadIdx.x == 0) dse[l] = 0;
        return;
    }
    const int64_t ny = c.absorb ? c.N : c.V;  // absorb: the mask column is not used
    double sum_exp = 0, sum_ls = 0;
    for (int64_t y = threadIdx.x; y < ny; y += blockDim.x) {
        double v = (double)ls[y];
        sum_exp = __dadd_rn(sum_exp, exp(v));
        sum_ls = __dadd_rn(sum_ls, v);
    }
    sum_exp = block_sum(sum_exp, sh);
    sum_ls = block_sum(sum_ls, sh);
    if (threadIdx.x != 0) return;
    if (c.absorb) {
        dse[l] = __dadd_rn(__dsub_rn(sum_exp, __dmul_rn(c.r, (double)ls[x0l])), c.r_k);
        return;
    }
    double neg = __dsub_rn(__ddiv_rn(sum_ls, c.n), __ddiv_rn((double)ls[xl], c.n)), cst;
    if (xl == x0l) {
        neg = __dmul_rn(c.ratio, neg);
        cst = c.cst_same;
    } else {
        neg = __dadd_rn(__ddiv_rn((double)ls[x0l], c.esigm1), neg);
        cst = c.cst_diff;
    }
    double pos = __dsub_rn(__ddiv_rn(sum_exp, c.n), __ddiv_rn(exp((double)ls[xl]), c.n));
    dse[l] = __dadd_rn(__dsub_rn(pos, neg), cst);
}

void cu_sedd_score_entropy(double *dse, const float *score, const int64_t *x, const int64_t *x0,
                           int L, double sigma, bool absorb, int64_t n_tokens)
{
    if (L <= 0) return;
    entropy_consts c = {};
    c.N = n_tokens;
    c.V = absorb ? n_tokens + 1 : n_tokens;
    c.absorb = absorb;
    c.esigm1 = expm1(sigma);  // sedd_graph_esigm1
    c.r = 1.0 / c.esigm1;
    c.r_k = c.r * (-log(c.esigm1) - 1);
    c.n = (double)n_tokens;
    c.ratio = c.esigm1 / (c.esigm1 + c.n);
    const double log_ratio = log(c.esigm1) - log(c.esigm1 + c.n);
    c.cst_same = (c.n - 1) / c.n * c.ratio * (log_ratio - 1);
    c.cst_diff = ((-log_ratio - 1) / c.ratio - (c.n - 2)) / c.n;
    k_sedd_score_entropy<<<(unsigned)L, CU_BLOCK, 0, cu_stream>>>(dse, score, x, x0, c);
    CUDA_LAUNCH_CHECK();
}

// ---- test hook ------------------------------------------------------------------------------

__global__ void k_philox_lanes(uint64_t seed, uint64_t record, uint32_t step, uint32_t position,
                               uint32_t n, uint32_t *words, double *f64, float *f32)
{
    GRID_STRIDE(j, (size_t)n)
    {
        uint32_t w[4];
        cu_philox_draw(seed, record, step, position, (uint32_t)j, w);
        for (int k = 0; k < 4; k++) {
            words[4 * j + k] = w[k];
            f32[4 * j + k] = cu_philox_u01_f32(w[k]);
        }
        f64[2 * j] = cu_philox_u01_f64(w[0], w[1]);
        f64[2 * j + 1] = cu_philox_u01_f64(w[2], w[3]);
    }
}

extern "C" int cuda_philox_lanes(uint64_t seed, uint64_t record, uint32_t step, uint32_t position,
                                 uint32_t n, uint32_t *words, double *f64, float *f32)
{
    if (!n) return 0;
    uint32_t *dw = nullptr;
    double *dd = nullptr;
    float *df = nullptr;
    int rc = -1;
    if (cudaMalloc(&dw, 4 * sizeof *dw * n) == cudaSuccess &&
        cudaMalloc(&dd, 2 * sizeof *dd * n) == cudaSuccess &&
        cudaMalloc(&df, 4 * sizeof *df * n) == cudaSuccess) {
        k_philox_lanes<<<cu_blocks(n), CU_BLOCK, 0, cu_stream>>>(seed, record, step, position, n,
            dw, dd, df);
        if (cu_download(words, dw, 4 * sizeof *dw * n) == cudaSuccess &&
            cu_download(f64, dd, 2 * sizeof *dd * n) == cudaSuccess &&
            cu_download(f32, df, 4 * sizeof *df * n) == cudaSuccess)
            rc = 0;
    }
    if (rc)
        fprintf(stderr, "cuda: cuda_philox_lanes: %s\n", cudaGetErrorString(cudaGetLastError()));
    cudaFree(dw), cudaFree(dd), cudaFree(df);
    return rc;
}
