/* cuda_common: error macros, launch geometry and block reductions shared by the CUDA kernels.
 * Ownership: nothing allocated here; the cuBLAS handle lives in backend_cuda.cu.
 * Errors: CUDA_CHECK/CUBLAS_CHECK print "cuda: file:line: call: message" to stderr and make the
 * enclosing function return `ret`; ops (which cannot fail, see lib/backend.h) use
 * CUDA_LAUNCH_CHECK, which only prints (a later transfer reports the sticky error). */
#ifndef DLM_CUDA_COMMON_CUH
#define DLM_CUDA_COMMON_CUH

#include <cstddef>
#include <cmath>
#include <cstdio>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#define CUDA_CHECK(call, ret)                                                                  \
    do {                                                                                       \
        cudaError_t cuda_err_ = (call);                                                        \
        if (cuda_err_ != cudaSuccess) {                                                        \
            fprintf(stderr, "cuda: %s:%d: %s: %s\n", __FILE__, __LINE__, #call,                \
                    cudaGetErrorString(cuda_err_));                                            \
            cudaGetLastError(); /* clear it, or the next op's launch check reports it again */ \
            return ret;                                                                        \
        }                                                                                      \
    } while (0)

#define CUBLAS_CHECK(call, ret)                                                                \
    do {                                                                                       \
        cublasStatus_t cublas_st_ = (call);                                                    \
        if (cublas_st_ != CUBLAS_STATUS_SUCCESS) {                                             \
            fprintf(stderr, "cuda: %s:%d: %s: cuBLAS status %d\n", __FILE__, __LINE__, #call,  \
                    (int)cublas_st_);                                                          \
            return ret;                                                                        \
        }                                                                                      \
    } while (0)

/* The stream every op is queued on, so that ops run in call order (created by backend_cuda();
 * a blocking stream: work on the legacy default stream still waits for it). A stream of its
 * own, not the legacy default one, because only such a stream can be captured (graph.cuh). */
extern cudaStream_t cu_stream;

/* Copies device src to host dst after the ops queued before it, and waits for the copy. */
static inline cudaError_t cu_download(void *dst, const void *src, size_t bytes)
{
    cudaError_t err = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cu_stream);
    return err == cudaSuccess ? cudaStreamSynchronize(cu_stream) : err;
}

/* After a kernel launch in an op that returns void: report a bad launch configuration now
 * (asynchronous faults surface at the next synchronising call, i.e. to_host). */
#define CUDA_LAUNCH_CHECK()                                                                    \
    do {                                                                                       \
        cudaError_t cuda_err_ = cudaGetLastError();                                            \
        if (cuda_err_ != cudaSuccess)                                                          \
            fprintf(stderr, "cuda: %s:%d: kernel launch: %s\n", __FILE__, __LINE__,            \
                    cudaGetErrorString(cuda_err_));                                            \
    } while (0)

/* Threads per block for element-wise and row kernels. 256 = 8 warps: a multiple of the warp,
 * small enough for several resident blocks per SM. Tests use shapes that are not multiples. */
enum { CU_BLOCK = 256 };

/* A grid-stride loop: i takes this thread's indices of 0..n-1 (size_t), whatever the grid. */
#define GRID_STRIDE(i, n)                                                                     \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n);                   \
         i += (size_t)gridDim.x * blockDim.x)

/* Blocks for a grid-stride loop over n elements (capped; the loop covers the rest). */
static inline unsigned cu_blocks(size_t n)
{
    size_t b = (n + CU_BLOCK - 1) / CU_BLOCK;
    if (b == 0) b = 1;
    return b > 65535u * 8u ? 65535u * 8u : (unsigned)b;
}

/* Block-wide reductions for blockDim.x a multiple of 32 (<= 1024); every thread gets the
 * result. `sh` is shared scratch of at least 32 elements; it is reused, so callers must not
 * run two reductions on the same scratch without the barrier these end with. */
template <typename T> __device__ inline T warp_sum(T v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ inline float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

template <typename T> __device__ inline T block_sum(T v, T *sh)
{
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    T r = lane < nw ? sh[lane] : T(0);
    r = warp_sum(r);
    __syncthreads();
    return r;
}

__device__ inline float block_max(float v, float *sh)
{
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    float r = lane < nw ? sh[lane] : -INFINITY;
    r = warp_max(r);
    __syncthreads();
    return r;
}

/* A row's layer-norm statistics, computed by the whole block (every thread gets them): the mean
 * and 1/sqrt(var + eps) of xi[0..c), both sums in double and two passes (mean, then squared
 * deviations: no E[x²]-E[x]² cancellation), as lib/backend_cpu.c does. sh: 32 doubles. */
__device__ inline void row_norm_stats(const float *xi, int c, float eps, double *sh, float *mean,
                                      float *rstd)
{
    double s = 0;
    for (int j = threadIdx.x; j < c; j += blockDim.x) s += xi[j];
    double m = block_sum(s, sh) / c;
    double sq = 0;
    for (int j = threadIdx.x; j < c; j += blockDim.x) {
        double dv = xi[j] - m;
        sq += dv * dv;
    }
    sq = block_sum(sq, sh);
    *mean = (float)m;
    *rstd = (float)(1.0 / sqrt(sq / c + eps));
}

/* A row's maximum and Σ expf(x - max) over xi[0..c) (float terms, the sum in double), computed
 * by the whole block (every thread gets both): log-softmax of one target, cross-entropy. */
__device__ inline double row_sum_expf(const float *xi, int c, float *shf, double *shd, float *max)
{
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < c; j += blockDim.x) mx = fmaxf(mx, xi[j]);
    mx = block_max(mx, shf);
    double s = 0;
    for (int j = threadIdx.x; j < c; j += blockDim.x) s += expf(xi[j] - mx);
    *max = mx;
    return block_sum(s, shd);
}

/* Element i of a kv_store launch over (B,T,H,d) (lib/backend.h's layouts): the offset of its
 * head's row in the packed qkv (B,T,3C) (K at + C + e, V at + 2C + e) and of its element in the
 * caches (B,H,cap,d) at position past + t. */
struct kv_slot {
    size_t qkv, cache, e;
};

__device__ inline kv_slot kv_slot_at(size_t i, int T, int H, int d, int past, int cap)
{
    kv_slot k;
    k.e = i % d;
    size_t rest = i / d;
    int h = (int)(rest % H);
    size_t bt = rest / H;
    int t = (int)(bt % T);
    size_t b = bt / T;
    k.qkv = bt * 3 * (size_t)H * d + (size_t)h * d;
    k.cache = ((b * H + h) * (size_t)cap + past + t) * d + k.e;
    return k;
}

/* Element i of a rotary launch over (B,T,H, d/2 pairs) (lib/backend.h's rotary layout): the
 * head vector u holding the pair (u[j], u[j + half]) and the cos, sin rows of its position. */
struct rotary_pair {
    float *u;
    const float *ct, *st;
    int j, half;
};

__device__ inline rotary_pair rotary_pair_at(float *x, size_t row_stride, const float *cos,
                                             const float *sin, int T, int H, int d, size_t i)
{
    rotary_pair p;
    p.half = d / 2;
    p.j = (int)(i % p.half);
    size_t rest = i / p.half;
    int h = (int)(rest % H);
    size_t bt = rest / H;
    int t = (int)(bt % T);
    p.u = x + bt * row_stride + (size_t)h * d;
    p.ct = cos + (size_t)t * d;
    p.st = sin + (size_t)t * d;
    return p;
}

#endif
