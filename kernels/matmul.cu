// matmul: y (N,out) = x (N,in) · W (+ bias) (+= y) on the GPU, the contract of lib/backend.h.
// matmul goes to cublasGemmEx on fp32 storage: by default with CUBLAS_COMPUTE_32F (plain fp32
// FMAs, no tensor cores, so it can be checked against OpenBLAS at fp32 tolerances); after
// cu_matmul_set_bf16(1) with CUBLAS_COMPUTE_32F_FAST_16BF (inputs rounded to bf16 on the tensor
// cores, fp32 accumulation: --precision bf16, for speed).
// matmul_rows is one thread per output element with a k-ascending loop: the same order for
// every n (batch-invariant, as the contract asks), memory-bound, meant for small n.
#include "cuda_common.cuh"
#include "matmul.cuh"

static cublasHandle_t handle;
static cublasComputeType_t compute = CUBLAS_COMPUTE_32F;

void cu_matmul_set_bf16(int bf16)
{
    compute = bf16 ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F;
}

int cu_matmul_init(void)
{
    if (handle) return 0;
    CUBLAS_CHECK(cublasCreate(&handle), -1);
    // DEFAULT_MATH keeps sgemm in fp32 FMAs; TF32 would need CUBLAS_TF32_TENSOR_OP_MATH.
    CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH), -1);
    return 0;
}

// y (n,out): rows set to bias (accumulate false) or bias added to them (accumulate true)
__global__ void k_bias_rows(float *y, const float *bias, size_t n, int out, bool accumulate)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n * out;
         i += (size_t)gridDim.x * blockDim.x) {
        float b = bias[i % out];
        y[i] = accumulate ? y[i] + b : b;
    }
}

void cu_matmul(float *y, const float *x, const float *w, const float *bias, int n, int in,
               int out, enum be_layout layout, bool accumulate)
{
    if (n <= 0 || out <= 0) return;
    float alpha = 1.0f, beta = accumulate || bias ? 1.0f : 0.0f;
    if (bias) {
        k_bias_rows<<<cu_blocks((size_t)n * out), CU_BLOCK>>>(y, bias, n, out, accumulate);
        CUDA_LAUNCH_CHECK();
    }
    // Row-major y (n,out) is column-major yᵀ (out,n) = Wᵀ·xᵀ. BE_IN_OUT: W row-major (in,out)
    // is column-major (out,in) = Wᵀ as stored, ld out. BE_OUT_IN: W row-major (out,in) is
    // column-major (in,out), so transpose it, ld in. x row-major (n,in) is xᵀ column-major.
    cublasOperation_t opw = layout == BE_IN_OUT ? CUBLAS_OP_N : CUBLAS_OP_T;
    int ldw = layout == BE_IN_OUT ? out : in;
    cublasStatus_t st = cublasGemmEx(handle, opw, CUBLAS_OP_N, out, n, in, &alpha, w, CUDA_R_32F,
                                     ldw, x, CUDA_R_32F, in, &beta, y, CUDA_R_32F, out, compute,
                                     CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS)
        fprintf(stderr, "cuda: %s:%d: cublasGemmEx: cuBLAS status %d\n", __FILE__, __LINE__,
                (int)st);
}

void cu_gemm_add(bool ta, bool tb, int m, int n, int k, const float *a, int lda, const float *b,
                 int ldb, float *c, int ldc)
{
    if (m <= 0 || n <= 0 || k <= 0) return;
    float alpha = 1.0f, beta = 1.0f;
    // Row-major c (m,n) is column-major cᵀ (n,m) = op(b)ᵀ·op(a)ᵀ, and a row-major matrix is
    // its own transpose in column-major: op(b)ᵀ is b as stored unless tb, likewise a.
    cublasStatus_t st = cublasGemmEx(handle, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                     ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b,
                                     CUDA_R_32F, ldb, a, CUDA_R_32F, lda, &beta, c, CUDA_R_32F,
                                     ldc, compute, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS)
        fprintf(stderr, "cuda: %s:%d: cublasGemmEx: cuBLAS status %d\n", __FILE__, __LINE__,
                (int)st);
}

// One thread per y[r][j]: k ascending, one float accumulator; bias and y added after, as the
// CPU's BE_IN_OUT loop does. Threads of a warp take adjacent j, so BE_IN_OUT reads of W are
// coalesced; BE_OUT_IN reads are strided (fine for the small n this is for).
__global__ void k_matmul_rows(float *y, const float *x, const float *w, const float *bias, int n,
                              int in, int out, bool out_in, bool accumulate)
{
    size_t total = (size_t)n * out;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        int r = (int)(i / out), j = (int)(i % out);
        const float *xr = x + (size_t)r * in;
        float s = 0.0f;
        if (out_in) {
            const float *wj = w + (size_t)j * in;
            for (int k = 0; k < in; k++) s += xr[k] * wj[k];
        } else {
            for (int k = 0; k < in; k++) s += xr[k] * w[(size_t)k * out + j];
        }
        if (bias) s += bias[j];
        y[i] = accumulate ? y[i] + s : s;
    }
}

void cu_matmul_rows(float *y, const float *x, const float *w, const float *bias, int n, int in,
                    int out, enum be_layout layout, bool accumulate)
{
    if (n <= 0 || out <= 0) return;
    k_matmul_rows<<<cu_blocks((size_t)n * out), CU_BLOCK>>>(y, x, w, bias, n, in, out,
                                                             layout == BE_OUT_IN, accumulate);
    CUDA_LAUNCH_CHECK();
}
