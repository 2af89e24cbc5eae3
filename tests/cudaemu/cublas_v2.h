/* cublas_v2.h of the CUDA emulator (tests/cudaemu): the cuBLAS calls kernels/ makes, computed by
 * OpenBLAS's sgemm on the emulated device memory, queued on the handle's stream. CUBLAS_COMPUTE_32F_FAST_16BF rounds both inputs
 * to bf16 (to nearest, ties to even) first, as the tensor cores do, and accumulates in fp32. Only
 * CUDA_R_32F storage is accepted; the operands' extents must lie inside cudaMalloc allocations. */
#ifndef DLM_CUDAEMU_CUBLAS_V2_H
#define DLM_CUDAEMU_CUBLAS_V2_H

#include "cuda_runtime.h"

typedef struct emu_cublas *cublasHandle_t;
enum cublasStatus_t {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
};
typedef cublasStatus_t cublasStatus;
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cublasMath_t { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 };
enum cublasComputeType_t { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_16BF = 75 };
typedef cublasComputeType_t cublasComputeType;
enum cudaDataType_t { CUDA_R_32F = 0 };
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1 };
enum libraryPropertyType { MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL };

cublasStatus_t cublasCreate(cublasHandle_t *handle);
cublasStatus_t cublasDestroy(cublasHandle_t handle);
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode);
/* the stream products are queued on (a captured stream records them, scalars included) */
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream);
cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void *workspace, size_t bytes);
cublasStatus_t cublasGetProperty(libraryPropertyType type, int *value);
/* column-major C (m,n) = alpha·op(A)·op(B) + beta·C, op(A) (m,k), op(B) (k,n) */
cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void *alpha,
                            const void *A, cudaDataType_t Atype, int lda, const void *B,
                            cudaDataType_t Btype, int ldb, const void *beta, void *C,
                            cudaDataType_t Ctype, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t algo);

#endif
