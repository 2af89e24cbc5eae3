// emu_cublas: the cuBLAS calls of kernels/ for the CUDA emulator (cublas_v2.h): OpenBLAS's
// sgemm on the emulated device memory, operands checked against the allocations.
#include <cblas.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "cublas_v2.h"
#include "emu_internal.h"

// ---- cuBLAS ---------------------------------------------------------------------------------

struct emu_cublas {
    cublasMath_t math;
    cudaStream_t stream;  // where products are queued (cublasSetStream)
};

cublasStatus_t cublasCreate(cublasHandle_t *handle)
{
    *handle = new emu_cublas{CUBLAS_DEFAULT_MATH, nullptr};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

// (the emulated product needs no workspace; the buffer is only checked)
cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void *workspace, size_t bytes)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (bytes) emu_expect_device(workspace, bytes, "cublasSetWorkspace");
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle)
{
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetProperty(libraryPropertyType, int *value)
{
    *value = 0;
    return CUBLAS_STATUS_SUCCESS;
}

/* a column-major (rows, cols) operand with leading dimension ld, rounded to bf16 (to nearest,
 * ties to even; NaN kept) into a new host buffer */
static float *bf16_copy(const float *a, int rows, int cols, int ld)
{
    size_t n = (size_t)ld * (cols - 1) + rows;
    float *c = (float *)malloc(n * sizeof *c);
    if (!c) emu_fail("out of memory for a bf16 copy of %zu floats", n);
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &a[i], 4);
        if ((u & 0x7fffffffu) <= 0x7f800000u) u = (u + 0x7fffu + ((u >> 16) & 1)) & 0xffff0000u;
        memcpy(&c[i], &u, 4);
    }
    return c;
}

/* checks one column-major operand of a product: leading dimension and device extent */
static bool operand_ok(const void *p, int rows, int cols, int ld, const char *what)
{
    if (ld < (rows > 1 ? rows : 1)) return false;
    if (rows > 0 && cols > 0) emu_expect_device(p, ((size_t)ld * (cols - 1) + rows) * 4, what);
    return true;
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void *alpha,
                            const void *A, cudaDataType_t Atype, int lda, const void *B,
                            cudaDataType_t Btype, int ldb, const void *beta, void *C,
                            cudaDataType_t Ctype, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t)
{
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (Atype != CUDA_R_32F || Btype != CUDA_R_32F || Ctype != CUDA_R_32F ||
        (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_16BF))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    bool ta = transa == CUBLAS_OP_T, tb = transb == CUBLAS_OP_T;
    if (!operand_ok(A, ta ? k : m, ta ? m : k, lda, "cublasGemmEx A") ||
        !operand_ok(B, tb ? n : k, tb ? k : n, ldb, "cublasGemmEx B") ||
        !operand_ok(C, m, n, ldc, "cublasGemmEx C"))
        return CUBLAS_STATUS_INVALID_VALUE;
    emu_expect_host(alpha, 4, "cublasGemmEx alpha");
    emu_expect_host(beta, 4, "cublasGemmEx beta");
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    // the scalars are read at the call (host pointer mode), the operands when the product runs
    const float al = *(const float *)alpha, be = *(const float *)beta;
    const bool bf16 = compute == CUBLAS_COMPUTE_32F_FAST_16BF && k > 0;
    cudaError_t err = emu_enqueue(handle->stream, nullptr, [=] {
        const float *a = (const float *)A, *b = (const float *)B;
        float *a16 = nullptr, *b16 = nullptr;
        if (bf16) {
            a = a16 = bf16_copy(a, ta ? k : m, ta ? m : k, lda);
            b = b16 = bf16_copy(b, tb ? n : k, tb ? k : n, ldb);
        }
        cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    m, n, k, al, a, lda, b, ldb, be, (float *)C, ldc);
        free(a16);
        free(b16);
    });
    return err == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_SUPPORTED;
}
