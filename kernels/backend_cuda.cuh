/* backend_cuda: the CUDA implementation of lib/backend.h (kernels/backend_cuda.cu).
 * Ownership: returns a static table; device buffers come from its alloc/free.
 * Errors: NULL when this process sees no CUDA device or cuBLAS cannot start. */
#ifndef DLM_BACKEND_CUDA_CUH
#define DLM_BACKEND_CUDA_CUH

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif
/* The CUDA backend on device 0, initialised on first call (cuBLAS handle, fp32 math with TF32
 * off); NULL when there is no device. Ops run on one stream (cu_stream), in order. */
const backend *backend_cuda(void);
/* Matrix products (matmul, not matmul_rows) from now on: bf16 = 0, plain fp32 FMAs (the
 * default, checked against the CPU); 1, cuBLAS with bf16 tensor-core math and fp32
 * accumulation on fp32 storage (CUBLAS_COMPUTE_32F_FAST_16BF). */
void backend_cuda_set_bf16(int bf16);
#ifdef __cplusplus
}
#endif
#endif
