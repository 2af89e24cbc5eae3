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

#endif
