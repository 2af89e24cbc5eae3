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
 * off); NULL when there is no device. Ops run on the legacy default stream, in order. */
const backend *backend_cuda(void);
#ifdef __cplusplus
}
#endif
#endif
