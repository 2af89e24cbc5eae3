// norm: per-row kernels of the CUDA backend, one block of CU_BLOCK threads per row (a row is
// C = 768..2048 for layer norm, up to the 50257-entry vocabulary for softmax). Accumulation
// precision follows lib/backend.h: layer norm's mean and variance in double, softmax sums in
// double; only the order of the sum differs from the CPU (a tree across threads, not a loop).
// Every row is computed by one block whatever n is, so results are batch-invariant.
#include "cuda_common.cuh"
#include "norm.cuh"

// y (n,c) = (x - mean) * rstd * w + b; two passes over the row like the CPU (mean, then the
// sum of squared deviations: no E[x²]-E[x]² cancellation)
__global__ void k_layernorm(float *y, const float *x, const float *w, const float *b, int c,
                            float eps)
{
    __shared__ double sh[32];
    const float *xi = x + (size_t)blockIdx.x * c;
    float *yi = y + (size_t)blockIdx.x * c;
    float m, rstd;
    row_norm_stats(xi, c, eps, sh, &m, &rstd);
    for (int j = threadIdx.x; j < c; j += blockDim.x) {  // y may alias x: read before write
        float v = (xi[j] - m) * rstd;
        if (w) v *= w[j];
        if (b) v += b[j];
        yi[j] = v;
    }
}

// softmax / log_softmax of each row: max, sum of exp in double, then one write pass
__global__ void k_softmax_rows(float *y, const float *x, int c, bool log_space)
{
    __shared__ float shf[32];
    __shared__ double shd[32];
    const float *xi = x + (size_t)blockIdx.x * c;
    float *yi = y + (size_t)blockIdx.x * c;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < c; j += blockDim.x) mx = fmaxf(mx, xi[j]);
    mx = block_max(mx, shf);
    double s = 0;
    for (int j = threadIdx.x; j < c; j += blockDim.x) s += exp((double)xi[j] - mx);
    s = block_sum(s, shd);
    if (log_space) {
        float lse = (float)(mx + log(s));
        for (int j = threadIdx.x; j < c; j += blockDim.x) yi[j] = xi[j] - lse;
    } else {
        double inv = 1.0 / s;
        for (int j = threadIdx.x; j < c; j += blockDim.x)
            yi[j] = (float)(exp((double)xi[j] - mx) * inv);
    }
}

// lp[i] = x[i][target[i]] - logsumexp(x[i]): float exp terms, double accumulation
__global__ void k_log_softmax_pick(double *lp, const float *x, const int32_t *target, int c)
{
    __shared__ float shf[32];
    __shared__ double shd[32];
    const float *xi = x + (size_t)blockIdx.x * c;
    float mx;
    double s = row_sum_expf(xi, c, shf, shd, &mx);
    if (threadIdx.x == 0) lp[blockIdx.x] = (double)(xi[target[blockIdx.x]] - mx) - log(s);
}

void cu_layernorm(float *y, const float *x, const float *w, const float *b, int n, int c,
                  float eps)
{
    if (n <= 0) return;
    k_layernorm<<<n, CU_BLOCK, 0, cu_stream>>>(y, x, w, b, c, eps);
    CUDA_LAUNCH_CHECK();
}

void cu_softmax(float *y, const float *x, int n, int c)
{
    if (n <= 0) return;
    k_softmax_rows<<<n, CU_BLOCK, 0, cu_stream>>>(y, x, c, false);
    CUDA_LAUNCH_CHECK();
}

void cu_log_softmax(float *y, const float *x, int n, int c)
{
    if (n <= 0) return;
    k_softmax_rows<<<n, CU_BLOCK, 0, cu_stream>>>(y, x, c, true);
    CUDA_LAUNCH_CHECK();
}

void cu_log_softmax_pick(double *lp, const float *x, const int32_t *target, int n, int c)
{
    if (n <= 0) return;
    k_log_softmax_pick<<<n, CU_BLOCK, 0, cu_stream>>>(lp, x, target, c);
    CUDA_LAUNCH_CHECK();
}
