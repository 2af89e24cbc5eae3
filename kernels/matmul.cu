// matmul: y (N,out) = x (N,in) · W (+ bias) (+= y) on the GPU, the contract of lib/backend.h.
// matmul goes to cublasGemmEx on fp32 storage: by default with CUBLAS_COMPUTE_32F (plain fp32
// FMAs, no tensor cores, so it can be checked against OpenBLAS at fp32 tolerances); after
// cu_matmul_set_bf16(1) with CUBLAS_COMPUTE_32F_FAST_16BF (inputs rounded to bf16 on the tensor
// cores, fp32 accumulation: --precision bf16, for speed).
// matmul_rows (batch-invariant, as the contract asks; memory-bound, meant for small n): each
// output is a fixed-order sum that depends on `in` only, never on n: BE_OUT_IN one warp per
// output (lanes stride k by 32, fixed warp reduction), BE_IN_OUT one thread per column in each
// of 16 fixed k slices (added in slice order); both read W once per block of up to 8 rows.
#include "cuda_common.cuh"
#include "matmul.cuh"

static cublasHandle_t handle;
static void *workspace;  // cuBLAS's, for the handle's life
static cublasComputeType_t compute = CUBLAS_COMPUTE_32F;

void cu_matmul_set_bf16(int bf16)
{
    compute = bf16 ? CUBLAS_COMPUTE_32F_FAST_16BF : CUBLAS_COMPUTE_32F;
}

// cuBLAS's workspace, given to it once so that a captured GEMM never allocates one (32 MiB is
// what cuBLAS asks for on Hopper)
enum : size_t { CUBLAS_WORKSPACE = (size_t)32 << 20 };

int cu_matmul_init(void)
{
    if (handle) return 0;
    CUDA_CHECK(cudaMalloc(&workspace, CUBLAS_WORKSPACE), -1);
    CUBLAS_CHECK(cublasCreate(&handle), -1);
    CUBLAS_CHECK(cublasSetStream(handle, cu_stream), -1);
    CUBLAS_CHECK(cublasSetWorkspace(handle, workspace, CUBLAS_WORKSPACE), -1);
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
        k_bias_rows<<<cu_blocks((size_t)n * out), CU_BLOCK, 0, cu_stream>>>(y, bias, n, out,
            accumulate);
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

// Rows per pass of the two matmul_rows kernels: W is read once per RB rows (RB = the
// smallest of 1, 2, 4, 8 covering min(n, 8)); each row keeps its own accumulators, so RB changes
// how often W is read, never an output's arithmetic.
enum { ROWS_RB_MAX = 8, ROWS_OI_WARPS = 8, ROWS_IO_SLICES = 16 };

// BE_OUT_IN, y[r][j] = Σ_k x[r][k]·W[j][k]: one warp per (j, block of RB rows). Lane L sums
// k = L, L+32, ... ascending (fmaf chain), then warp_sum's fixed butterfly adds the 32 lanes;
// bias and y are added after, as the CPU does. A warp reads W's row j in 128-byte pieces
// (coalesced); x rows stay in L1. Rows past n are clamped to n-1 and not written.
template <int RB>
__global__ void __launch_bounds__(ROWS_OI_WARPS * 32)
k_matmul_rows_out_in(float *y, const float *x, const float *w, const float *bias, int n, int in,
                     int out, bool accumulate)
{
    int lane = threadIdx.x & 31;
    size_t total = (size_t)(n + RB - 1) / RB * out;  // (row block, j) pairs, j fastest
    size_t stride = (size_t)gridDim.x * blockDim.x / 32;
    for (size_t g = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32; g < total;
         g += stride) {
        int j = (int)(g % out), r0 = (int)(g / out) * RB;
        const float *wj = w + (size_t)j * in;
        const float *xr[RB];
        float s[RB];
#pragma unroll
        for (int rr = 0; rr < RB; rr++)
            xr[rr] = x + (size_t)min(r0 + rr, n - 1) * in, s[rr] = 0.0f;
#pragma unroll 4
        for (int k = lane; k < in; k += 32) {
            float wk = wj[k];
#pragma unroll
            for (int rr = 0; rr < RB; rr++) s[rr] = fmaf(xr[rr][k], wk, s[rr]);
        }
#pragma unroll
        for (int rr = 0; rr < RB; rr++) {
            float t = warp_sum(s[rr]);  // every lane holds the same sum
            if (lane == rr && r0 + rr < n) {
                if (bias) t += bias[j];
                float *yo = y + (size_t)(r0 + rr) * out + j;
                *yo = accumulate ? *yo + t : t;
            }
        }
    }
}

// BE_IN_OUT, y[r][j] = Σ_k x[r][k]·W[k][j]: a block of ROWS_IO_SLICES warps per (32 columns,
// block of RB rows). Lane = column (W rows read coalesced, x[r][k] a broadcast); warp w sums
// its fixed slice of k (ceil(in / ROWS_IO_SLICES) values, ascending, fmaf chain) for RB rows;
// the first warp adds the slices in slice order from shared memory, then bias and y.
template <int RB>
__global__ void __launch_bounds__(ROWS_IO_SLICES * 32)
k_matmul_rows_in_out(float *y, const float *x, const float *w, const float *bias, int n, int in,
                     int out, bool accumulate)
{
    __shared__ float part[ROWS_IO_SLICES][RB][32];
    int lane = threadIdx.x & 31, slice = threadIdx.x >> 5;
    int j = blockIdx.x * 32 + lane, jc = min(j, out - 1);  // jc: loads of columns past out
    int per = (in + ROWS_IO_SLICES - 1) / ROWS_IO_SLICES;
    int k0 = min(in, slice * per), k1 = min(in, k0 + per);
    // the row-block loop is uniform across the block (blockIdx only): barriers are safe
    for (int r0 = blockIdx.y * RB; r0 < n; r0 += gridDim.y * RB) {
        const float *xr[RB];
        float s[RB];
#pragma unroll
        for (int rr = 0; rr < RB; rr++)
            xr[rr] = x + (size_t)min(r0 + rr, n - 1) * in, s[rr] = 0.0f;
#pragma unroll 8  // 8 rows of W in flight per warp (memory-bound at small n)
        for (int k = k0; k < k1; k++) {
            float wk = w[(size_t)k * out + jc];
#pragma unroll
            for (int rr = 0; rr < RB; rr++) s[rr] = fmaf(xr[rr][k], wk, s[rr]);
        }
#pragma unroll
        for (int rr = 0; rr < RB; rr++) part[slice][rr][lane] = s[rr];
        __syncthreads();
        if (slice == 0 && j < out) {
#pragma unroll
            for (int rr = 0; rr < RB; rr++) {
                if (r0 + rr >= n) break;
                float t = part[0][rr][lane];
                for (int sl = 1; sl < ROWS_IO_SLICES; sl++) t += part[sl][rr][lane];
                if (bias) t += bias[j];
                float *yo = y + (size_t)(r0 + rr) * out + j;
                *yo = accumulate ? *yo + t : t;
            }
        }
        __syncthreads();  // part is rewritten by the next row block
    }
}

template <int RB>
static void matmul_rows_launch(float *y, const float *x, const float *w, const float *bias, int n,
                               int in, int out, enum be_layout layout, bool accumulate)
{
    size_t row_blocks = ((size_t)n + RB - 1) / RB;
    if (layout == BE_OUT_IN) {
        size_t warps = row_blocks * out, blocks = (warps + ROWS_OI_WARPS - 1) / ROWS_OI_WARPS;
        // capped as cu_blocks does; the grid-stride loop covers the rest
        unsigned grid = blocks > 65535u * 8u ? 65535u * 8u : (unsigned)blocks;
        k_matmul_rows_out_in<RB><<<grid, ROWS_OI_WARPS * 32, 0, cu_stream>>>(y, x, w, bias, n, in,
            out, accumulate);
    } else {
        dim3 grid((unsigned)((out + 31) / 32),
                  row_blocks > 65535 ? 65535u : (unsigned)row_blocks);
        k_matmul_rows_in_out<RB><<<grid, ROWS_IO_SLICES * 32, 0, cu_stream>>>(y, x, w, bias, n, in,
            out, accumulate);
    }
    CUDA_LAUNCH_CHECK();
}

void cu_matmul_rows(float *y, const float *x, const float *w, const float *bias, int n, int in,
                    int out, enum be_layout layout, bool accumulate)
{
    if (n <= 0 || out <= 0) return;
    if (n == 1)
        matmul_rows_launch<1>(y, x, w, bias, n, in, out, layout, accumulate);
    else if (n == 2)
        matmul_rows_launch<2>(y, x, w, bias, n, in, out, layout, accumulate);
    else if (n <= 4)
        matmul_rows_launch<4>(y, x, w, bias, n, in, out, layout, accumulate);
    else
        matmul_rows_launch<ROWS_RB_MAX>(y, x, w, bias, n, in, out, layout, accumulate);
}
