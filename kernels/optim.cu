// optim: the optimiser ops of the CUDA backend (contracts in lib/backend.h). adamw, ema and scale
// are element-wise and written with explicitly rounded intrinsics (__fmul_rn ...: no FMA
// contraction) in the CPU's order of operations, so they round as lib/backend_cpu_train.c does.
// sumsq sums fixed tiles of SUMSQ_TILE elements in double (one block each), then adds the tile
// sums in tile order on the host, as the CPU does: the result depends on n only.
#include <cmath>
#include <cstdlib>

#include "cuda_common.cuh"
#include "optim.cuh"
#include "scratch.cuh"

enum { SUMSQ_TILE = 16384 };  // elements per partial sum, as the CPU's

__global__ void k_sumsq_tiles(double *part, const float *x, size_t n)
{
    __shared__ double sh[32];
    size_t i0 = (size_t)blockIdx.x * SUMSQ_TILE, i1 = i0 + SUMSQ_TILE < n ? i0 + SUMSQ_TILE : n;
    double s = 0;
    for (size_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) s += (double)x[i] * x[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

double cu_sumsq(const float *x, size_t n)
{
    if (!n) return 0.0;
    size_t nt = (n + SUMSQ_TILE - 1) / SUMSQ_TILE;
    double *part = (double *)cu_scratch(nt * sizeof(double));
    double *host = (double *)malloc(nt * sizeof(double));
    double s = NAN;
    if (part && host) {
        k_sumsq_tiles<<<(unsigned)nt, CU_BLOCK, 0, cu_stream>>>(part, x, n);
        CUDA_LAUNCH_CHECK();
        cudaError_t err = cu_download(host, part, nt * sizeof(double));
        if (err == cudaSuccess) {
            s = 0;
            for (size_t t = 0; t < nt; t++) s += host[t];
        } else {
            fprintf(stderr, "cuda: sumsq: %s\n", cudaGetErrorString(err));
        }
    }
    free(host);
    return s;
}

__global__ void k_scale(float *x, float a, size_t n)
{
    GRID_STRIDE(i, n) x[i] = __fmul_rn(x[i], a);
}

void cu_scale(float *x, float a, size_t n)
{
    if (!n) return;
    k_scale<<<cu_blocks(n), CU_BLOCK, 0, cu_stream>>>(x, a, n);
    CUDA_LAUNCH_CHECK();
}

// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g g; p = p·decay - step_size·m / (sqrt(v)/bc2 + eps)
__global__ void k_adamw(float *p, const float *g, float *m, float *v, size_t n, float beta1,
                        float beta2, float eps, float decay, float step_size, float bc2_sqrt)
{
    const float one_b1 = 1.0f - beta1, one_b2 = 1.0f - beta2;
    GRID_STRIDE(i, n)
    {
        float gi = g[i];
        float mi = __fadd_rn(__fmul_rn(beta1, m[i]), __fmul_rn(one_b1, gi));
        float vi = __fadd_rn(__fmul_rn(beta2, v[i]), __fmul_rn(__fmul_rn(one_b2, gi), gi));
        m[i] = mi;
        v[i] = vi;
        float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
        p[i] = __fsub_rn(__fmul_rn(p[i], decay), __fdiv_rn(__fmul_rn(step_size, mi), denom));
    }
}

// The scalar factors exactly as the CPU computes them (the bias corrections in double).
void cu_adamw(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
              float beta2, float eps, float weight_decay, int step)
{
    if (!n) return;
    const float decay = 1.0f - lr * weight_decay;
    const float step_size = (float)(lr / (1.0 - pow(beta1, step)));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(beta2, step));
    k_adamw<<<cu_blocks(n), CU_BLOCK, 0, cu_stream>>>(p, g, m, v, n, beta1, beta2, eps, decay,
        step_size, bc2_sqrt);
    CUDA_LAUNCH_CHECK();
}

__global__ void k_ema(float *ema, const float *p, size_t n, float decay)
{
    const float rest = 1.0f - decay;
    GRID_STRIDE(i, n) ema[i] = __fadd_rn(__fmul_rn(decay, ema[i]), __fmul_rn(rest, p[i]));
}

void cu_ema(float *ema, const float *p, size_t n, float decay)
{
    if (!n) return;
    k_ema<<<cu_blocks(n), CU_BLOCK, 0, cu_stream>>>(ema, p, n, decay);
    CUDA_LAUNCH_CHECK();
}
