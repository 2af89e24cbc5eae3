// draw: one token per row of logits by the inverse CDF of its softmax (draw_rows in
// lib/backend.h), so that a decoding loop's logits never leave the GPU. One block of CU_BLOCK
// threads per row. Thread t owns the contiguous slice [t·per, (t+1)·per) of the row: the
// slices' sums of exp (double, in index order within a slice) are prefix-added in slice order
// by thread 0, which gives the total and each slice's starting point; each thread then runs its
// own slice from there until the sum exceeds u·total, and the first slice that does so names
// the token. The CPU adds the same terms in one index-order loop: only the rounding of the sums
// differs, so the tokens differ only where u·total falls within rounding of a boundary.
#include "cuda_common.cuh"
#include "draw.cuh"

__global__ void k_draw_rows(int32_t *tok, const float *x, const double *u, int c, double inv_t)
{
    __shared__ float shf[32];
    __shared__ double start[CU_BLOCK];  // slice sums, then where each slice's running sum starts
    __shared__ int hit[CU_BLOCK];       // each slice's first index past the target, or c
    __shared__ double target;
    const float *xi = x + (size_t)blockIdx.x * c;
    float mx = -INFINITY;  // fmaxf skips NaN, as the CPU's `>` does
    for (int j = threadIdx.x; j < c; j += blockDim.x) mx = fmaxf(mx, xi[j]);
    mx = block_max(mx, shf);
    int per = (c + CU_BLOCK - 1) / CU_BLOCK;
    int j0 = min(c, (int)threadIdx.x * per), j1 = min(c, j0 + per);
    double s = 0;
    for (int j = j0; j < j1; j++) s += exp(((double)xi[j] - mx) * inv_t);
    start[threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double run = 0;
        for (int t = 0; t < CU_BLOCK; t++) {
            double slice = start[t];
            start[t] = run;
            run += slice;
        }
        target = u[blockIdx.x] * run;
    }
    __syncthreads();
    double cum = start[threadIdx.x];
    int first = c;
    for (int j = j0; j < j1; j++)
        if ((cum += exp(((double)xi[j] - mx) * inv_t)) > target) {
            first = j;
            break;
        }
    hit[threadIdx.x] = first;
    __syncthreads();
    if (threadIdx.x == 0) {
        int t = 0;
        while (t < CU_BLOCK && hit[t] == c) t++;
        tok[blockIdx.x] = t < CU_BLOCK ? hit[t] : c - 1;  // none: a NaN row, as on the CPU
    }
}

void cu_draw_rows(int32_t *tok, const float *x, const double *u, int n, int c, double inv_t)
{
    if (n <= 0 || c <= 0) return;
    k_draw_rows<<<n, CU_BLOCK, 0, cu_stream>>>(tok, x, u, c, inv_t);
    CUDA_LAUNCH_CHECK();
}
