// backward: the backward ops of the CUDA backend and cross-entropy (contracts in lib/backend.h).
// Determinism: no float atomics anywhere. Every reduction has a fixed shape that does not depend
// on the grid: column sums over rows (dbias, layernorm's dw/db, modulate's dshift/dscale,
// gated_add's dgate) run in blocks of 32 columns x 32 row lanes, each lane summing every 32nd
// row in order, then lane 0 adding the 32 partials in lane order (all in double, as the CPU);
// embedding rows are accumulated by one thread per column in index order; attention is one
// block per query row (P, dS, dq) and one block per key row (dk, dv, P and dS recomputed from
// the query rows' statistics). Matrix products go to cuBLAS with beta = 1 (cu_gemm_add).
// Results agree with lib/backend_cpu_train.c to rounding (order of sums, expf vs exp_vec, FMA
// contraction), not bit for bit; tests/kernels/test_train_ops.c holds the tolerances.
#include "backward.cuh"
#include "cuda_common.cuh"
#include "matmul.cuh"
#include "scratch.cuh"

// ---- column sums ------------------------------------------------------------------------------

enum { COLS = 32, LANES = 32 };  // block shape of k_col_sums: dim3(COLS, LANES)

// Over slab s = blockIdx.y (rows s*rows .. s*rows + rows - 1 of a (., cols) matrix) and column
// j: sum1 = Σ a[r][j], sum2 = Σ a[r][j]·u[r][j] with u = b[r][j], or (b[r][j] - mean_r)·rstd_r
// when stats (mean, rstd per row) is given. out1[s*out_stride + j] += sum1, out2[...] += sum2
// (either may be NULL).
// (launch bounds: 1024 threads need <= 64 registers each)
__global__ void __launch_bounds__(COLS * LANES)
    k_col_sums(float *out1, float *out2, size_t out_stride, const float *a, const float *b,
               const float *stats, int rows, int cols)
{
    __shared__ double sh1[LANES][COLS + 1], sh2[LANES][COLS + 1];
    int tx = threadIdx.x, ty = threadIdx.y, j = blockIdx.x * COLS + tx;
    size_t r0 = (size_t)blockIdx.y * rows;
    double s1 = 0, s2 = 0;
    if (j < cols)
        for (int r = ty; r < rows; r += LANES) {
            size_t o = (r0 + r) * cols + j;
            float av = a[o];
            s1 += av;
            if (out2) {
                float u = b[o];
                if (stats) u = (u - stats[2 * (r0 + r)]) * stats[2 * (r0 + r) + 1];
                s2 += (double)av * u;
            }
        }
    sh1[ty][tx] = s1;
    sh2[ty][tx] = s2;
    __syncthreads();
    if (ty == 0 && j < cols) {
        double t1 = 0, t2 = 0;
        for (int l = 0; l < LANES; l++) t1 += sh1[l][tx], t2 += sh2[l][tx];
        size_t o = (size_t)blockIdx.y * out_stride + j;
        if (out1) out1[o] += (float)t1;
        if (out2) out2[o] += (float)t2;
    }
}

// gridDim.y (the slabs) is at most 65535: more slabs (modulate's B) go in several launches
static void col_sums(float *out1, float *out2, size_t out_stride, const float *a, const float *b,
                     const float *stats, int slabs, int rows, int cols)
{
    if ((!out1 && !out2) || slabs <= 0 || rows <= 0 || cols <= 0) return;
    for (int s0 = 0; s0 < slabs; s0 += 65535) {
        int ns = slabs - s0 < 65535 ? slabs - s0 : 65535;
        size_t in0 = (size_t)s0 * rows * cols, out0 = (size_t)s0 * out_stride;
        dim3 grid((unsigned)((cols + COLS - 1) / COLS), (unsigned)ns), block(COLS, LANES);
        k_col_sums<<<grid, block, 0, cu_stream>>>(out1 ? out1 + out0 : nullptr,
            out2 ? out2 + out0 : nullptr, out_stride, a + in0, b ? b + in0 : nullptr,
            stats ? stats + 2 * (size_t)s0 * rows : nullptr, rows, cols);
        CUDA_LAUNCH_CHECK();
    }
}

// ---- linear algebra ---------------------------------------------------------------------------

void cu_matmul_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x,
                        const float *w, int n, int in, int out, enum be_layout layout)
{
    if (n <= 0 || in <= 0 || out <= 0) return;
    if (dx) {  // dx (n,in) += dy (n,out) · Wᵀ; Wᵀ is (out,in): W itself for BE_OUT_IN
        if (layout == BE_OUT_IN) cu_gemm_add(false, false, n, in, out, dy, out, w, in, dx, in);
        else cu_gemm_add(false, true, n, in, out, dy, out, w, out, dx, in);
    }
    if (dw) {
        if (layout == BE_IN_OUT)  // dw (in,out) += xᵀ · dy
            cu_gemm_add(true, false, in, out, n, x, in, dy, out, dw, out);
        else  // dw (out,in) += dyᵀ · x
            cu_gemm_add(true, false, out, in, n, dy, out, x, in, dw, in);
    }
    col_sums(dbias, nullptr, 0, dy, nullptr, nullptr, 1, n, out);
}

// ---- normalisation and pointwise --------------------------------------------------------------

// One block per row: the forward's mean and rstd (double sums, as k_layernorm and the CPU),
// stored in stats for the column sums, then dx += rstd (g - mean(g) - xhat mean(g xhat)) with
// g = dy·w.
__global__ void k_layernorm_backward_rows(float *dx, float *stats, const float *dy,
                                          const float *x, const float *w, int c, float eps)
{
    __shared__ double sh[32];
    const float *xi = x + (size_t)blockIdx.x * c, *dyi = dy + (size_t)blockIdx.x * c;
    float m, rs;
    row_norm_stats(xi, c, eps, sh, &m, &rs);
    if (threadIdx.x == 0) stats[2 * blockIdx.x] = m, stats[2 * blockIdx.x + 1] = rs;
    if (!dx) return;
    double sg = 0, sgx = 0;
    for (int j = threadIdx.x; j < c; j += blockDim.x) {
        float g = w ? dyi[j] * w[j] : dyi[j];
        sg += g;
        sgx += (double)g * ((xi[j] - m) * rs);
    }
    sg = block_sum(sg, sh);
    sgx = block_sum(sgx, sh);
    float mg = (float)(sg / c), mgx = (float)(sgx / c);
    float *dxi = dx + (size_t)blockIdx.x * c;
    for (int j = threadIdx.x; j < c; j += blockDim.x) {
        float g = w ? dyi[j] * w[j] : dyi[j];
        float xhat = (xi[j] - m) * rs;
        dxi[j] += rs * (g - mg - xhat * mgx);
    }
}

void cu_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *w, int n, int c, float eps)
{
    if (n <= 0 || c <= 0) return;
    if (!w) dw = nullptr;
    float *stats = (float *)cu_scratch((size_t)n * 2 * sizeof(float));
    if (!stats) return;
    k_layernorm_backward_rows<<<n, CU_BLOCK, 0, cu_stream>>>(dx, stats, dy, x, w, c, eps);
    CUDA_LAUNCH_CHECK();
    col_sums(db, dw, 0, dy, x, stats, 1, n, c);
}

// gelu_tanh(x) = x s with s = sigmoid(2u), u = k (x + a x^3):
// f'(x) = s + x s (1 - s) 2k (1 + 3a x²)
__global__ void k_gelu_tanh_backward(float *dx, const float *x, const float *dy, size_t n)
{
    const float k = 0.7978845608028654f, a = 0.044715f;  // sqrt(2/pi)
    GRID_STRIDE(i, n)
    {
        float v = x[i], u = k * (v + a * v * v * v);
        float s = 1.0f / (1.0f + expf(-2.0f * u));
        float du = 2.0f * k * (1.0f + 3.0f * a * v * v);
        dx[i] += dy[i] * (s + v * s * (1.0f - s) * du);
    }
}

// silu'(x) = s (1 + x (1 - s)), s = sigmoid(x)
__global__ void k_silu_backward(float *dx, const float *x, const float *dy, size_t n)
{
    GRID_STRIDE(i, n)
    {
        float s = 1.0f / (1.0f + expf(-x[i]));
        dx[i] += dy[i] * (s * (1.0f + x[i] * (1.0f - s)));
    }
}

void cu_gelu_tanh_backward(float *dx, const float *x, const float *dy, size_t n)
{
    if (!n || !dx) return;
    k_gelu_tanh_backward<<<cu_blocks(n), CU_BLOCK, 0, cu_stream>>>(dx, x, dy, n);
    CUDA_LAUNCH_CHECK();
}

void cu_silu_backward(float *dx, const float *x, const float *dy, size_t n)
{
    if (!n || !dx) return;
    k_silu_backward<<<cu_blocks(n), CU_BLOCK, 0, cu_stream>>>(dx, x, dy, n);
    CUDA_LAUNCH_CHECK();
}

// acc (B,T,C) += g (B,T,C) * (add_one + row[b]) with rows of C at stride mod_stride: modulate's
// dx (add_one = 1, row = scale) and gated_add's dy (add_one = 0, row = gate)
__global__ void k_mul_rows_add(float *acc, const float *g, const float *row, float add_one,
                               size_t mod_stride, size_t TC, int C, size_t total)
{
    GRID_STRIDE(i, total)
    {
        size_t b = i / TC, j = i % C;
        acc[i] += g[i] * (add_one + row[b * mod_stride + j]);
    }
}

static void mul_rows_add(float *acc, const float *g, const float *row, float add_one,
                         size_t mod_stride, int B, int T, int C)
{
    size_t total = (size_t)B * T * C;
    if (!acc || !total) return;
    k_mul_rows_add<<<cu_blocks(total), CU_BLOCK, 0, cu_stream>>>(acc, g, row, add_one, mod_stride,
                                                   (size_t)T * C, C, total);
    CUDA_LAUNCH_CHECK();
}

void cu_modulate_backward(float *dx, float *dshift, float *dscale, const float *dy,
                          const float *x, const float *scale, size_t mod_stride, int B, int T,
                          int C)
{
    mul_rows_add(dx, dy, scale, 1.0f, mod_stride, B, T, C);
    col_sums(dshift, dscale, mod_stride, dy, x, nullptr, B, T, C);
}

void cu_gated_add_backward(float *dgate, float *dy, const float *gate, size_t mod_stride,
                           const float *dx, const float *y, int B, int T, int C)
{
    mul_rows_add(dy, dx, gate, 0.0f, mod_stride, B, T, C);
    col_sums(nullptr, dgate, mod_stride, dx, y, nullptr, B, T, C);
}

// ---- embedding, rotary, kv_store --------------------------------------------------------------

// One thread per column j: dtable[ids[i]][j] += dy[i][j] for i in index order, so a repeated id
// gets its contributions in the CPU's order (latency-bound: n dependent steps per thread).
__global__ void k_embed_backward_table(float *dtable, const int32_t *ids, const float *dy, int n,
                                       int c)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= c) return;
    for (int i = 0; i < n; i++) dtable[(size_t)ids[i] * c + j] += dy[(size_t)i * c + j];
}

// One thread per (t, j): dpos[t][j] += dy[i][j] for i = t, t + T, ... in order
__global__ void k_embed_backward_pos(float *dpos, const float *dy, int n, int T, int c)
{
    GRID_STRIDE(o, (size_t)T * c)
    {
        size_t t = o / c, j = o % c;
        float acc = dpos[o];
        for (size_t i = t; i < (size_t)n; i += T) acc += dy[i * c + j];
        dpos[o] = acc;
    }
}

void cu_embed_backward(float *dtable, float *dpos, const int32_t *ids, const float *dy, int n,
                       int T, int c)
{
    if (n <= 0 || c <= 0) return;
    if (dtable) {
        k_embed_backward_table<<<(c + 127) / 128, 128, 0, cu_stream>>>(dtable, ids, dy, n, c);
        CUDA_LAUNCH_CHECK();
    }
    if (dpos) {
        k_embed_backward_pos<<<cu_blocks((size_t)T * c), CU_BLOCK, 0, cu_stream>>>(dpos, dy, n, T,
            c);
        CUDA_LAUNCH_CHECK();
    }
}

// one thread per (b,t,h,j < d/2): the transposed rotation
// (g1, g2) -> (g1 c1 + g2 s2, g2 c2 - g1 s1)
__global__ void k_rotary_backward(float *x, size_t row_stride, const float *cos,
                                  const float *sin, int T, int H, int d, size_t total)
{
    GRID_STRIDE(i, total)
    {
        rotary_pair p = rotary_pair_at(x, row_stride, cos, sin, T, H, d, i);
        int j = p.j, half = p.half;
        float g1 = p.u[j], g2 = p.u[j + half];
        p.u[j] = g1 * p.ct[j] + g2 * p.st[j + half];
        p.u[j + half] = g2 * p.ct[j + half] - g1 * p.st[j];
    }
}

void cu_rotary_backward(float *dx, size_t row_stride, const float *cos, const float *sin, int B,
                        int T, int H, int d)
{
    size_t total = (size_t)B * T * H * (d / 2);
    if (!total) return;
    k_rotary_backward<<<cu_blocks(total), CU_BLOCK, 0, cu_stream>>>(dx, row_stride, cos, sin, T, H,
        d, total);
    CUDA_LAUNCH_CHECK();
}

// one thread per (b,t,h,e): the K and V parts of dqkv (B,T,3C) += dk, dv (B,H,T,d)
__global__ void k_kv_store_backward(float *dqkv, const float *dk, const float *dv, int T, int H,
                                    int d, size_t total)
{
    size_t C = (size_t)H * d;
    GRID_STRIDE(i, total)
    {
        kv_slot k = kv_slot_at(i, T, H, d, 0, T);
        float *row = dqkv + k.qkv;
        if (dk) row[C + k.e] += dk[k.cache];
        if (dv) row[2 * C + k.e] += dv[k.cache];
    }
}

void cu_kv_store_backward(float *dqkv, const float *dk, const float *dv, int B, int T, int H,
                          int d)
{
    size_t total = (size_t)B * T * H * d;
    if (!total || (!dk && !dv)) return;
    k_kv_store_backward<<<cu_blocks(total), CU_BLOCK, 0, cu_stream>>>(dqkv, dk, dv, T, H, d, total);
    CUDA_LAUNCH_CHECK();
}

// ---- attention --------------------------------------------------------------------------------

// q·k over d lanes in ascending order, times scale (as the forward kernel computes a score)
__device__ inline float score(const float *q, const float *k, int d, float scale)
{
    float acc = 0.0f;
    for (int e = 0; e < d; e++) acc += q[e] * k[e];
    return acc * scale;
}

// One block per query row (b,h,t), n visible keys: P = softmax of the scores (float max, double
// sum, P = exp(s - max) · (float)(1/sum)), dP = dO·vⱼ, D = Σ P dP (double), dS = P (dP - D);
// dq += scale Σⱼ dSⱼ kⱼ. Writes the row's (max, 1/sum, D) to stats[3·row] for the key pass.
// Shared memory: q and dO of the row (d each), P and dS (T each).
__global__ void k_attention_backward_q(float *dq, float *stats, const float *dout,
                                       const float *q, size_t q_stride, const float *k,
                                       const float *v, int T, int H, int d, bool causal,
                                       float scale)
{
    extern __shared__ float sm[];
    __shared__ float shf[32];
    __shared__ double shd[32];
    float *qs = sm, *dos = sm + d, *p = sm + 2 * d, *ds = p + T;
    int t = blockIdx.x % T, h = (blockIdx.x / T) % H, b = blockIdx.x / (T * H);
    size_t C = (size_t)H * d;
    const float *qt = q + ((size_t)b * T + t) * q_stride + (size_t)h * d;
    const float *kh = k + ((size_t)b * H + h) * T * d, *vh = v + ((size_t)b * H + h) * T * d;
    const float *dot = dout + ((size_t)b * T + t) * C + (size_t)h * d;
    int n = causal ? t + 1 : T;
    for (int e = threadIdx.x; e < d; e += blockDim.x) qs[e] = qt[e], dos[e] = dot[e];
    __syncthreads();
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        p[j] = score(qs, kh + (size_t)j * d, d, scale);
        mx = fmaxf(mx, p[j]);
    }
    mx = block_max(mx, shf);
    double sum = 0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        p[j] = expf(p[j] - mx);
        sum += p[j];
    }
    float inv = (float)(1.0 / block_sum(sum, shd));
    double dd = 0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        p[j] *= inv;
        ds[j] = score(dos, vh + (size_t)j * d, d, 1.0f);
        dd += (double)p[j] * ds[j];
    }
    float D = (float)block_sum(dd, shd);
    for (int j = threadIdx.x; j < n; j += blockDim.x) ds[j] = p[j] * (ds[j] - D);
    __syncthreads();
    if (threadIdx.x == 0) {
        float *st = stats + 3 * (size_t)blockIdx.x;
        st[0] = mx, st[1] = inv, st[2] = D;
    }
    if (!dq) return;
    float *dqt = dq + ((size_t)b * T + t) * q_stride + (size_t)h * d;
    for (int e = threadIdx.x; e < d; e += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < n; j++) acc += ds[j] * kh[(size_t)j * d + e];
        dqt[e] += scale * acc;
    }
}

// One block per key row (b,h,j): for the queries that see it (t >= j when causal), P_tj and
// dS_tj recomputed from q_t, dO_t and the row statistics; dv_j += Σ_t P_tj dO_t,
// dk_j += scale Σ_t dS_tj q_t. Shared memory: k and v of the row (d each), P and dS (T each).
__global__ void k_attention_backward_kv(float *dk, float *dv, const float *stats,
                                        const float *dout, const float *q, size_t q_stride,
                                        const float *k, const float *v, int T, int H, int d,
                                        bool causal, float scale)
{
    extern __shared__ float sm[];
    float *ks = sm, *vs = sm + d, *p = sm + 2 * d, *ds = p + T;
    int j = blockIdx.x % T, h = (blockIdx.x / T) % H, b = blockIdx.x / (T * H);
    size_t C = (size_t)H * d, kv = (((size_t)b * H + h) * T + j) * d;
    const float *qb = q + (size_t)b * T * q_stride + (size_t)h * d;
    const float *db = dout + (size_t)b * T * C + (size_t)h * d;
    const float *sb = stats + ((size_t)b * H + h) * T * 3;
    int t0 = causal ? j : 0;
    for (int e = threadIdx.x; e < d; e += blockDim.x) ks[e] = k[kv + e], vs[e] = v[kv + e];
    __syncthreads();
    for (int t = t0 + threadIdx.x; t < T; t += blockDim.x) {
        const float *st = sb + 3 * (size_t)t;
        float pt = expf(score(qb + (size_t)t * q_stride, ks, d, scale) - st[0]) * st[1];
        float g = score(db + (size_t)t * C, vs, d, 1.0f);
        p[t] = pt;
        ds[t] = pt * (g - st[2]);
    }
    __syncthreads();
    for (int e = threadIdx.x; e < d; e += blockDim.x) {
        float av = 0.0f, ak = 0.0f;
        for (int t = t0; t < T; t++) {
            av += p[t] * db[(size_t)t * C + e];
            ak += ds[t] * qb[(size_t)t * q_stride + e];
        }
        if (dv) dv[kv + e] += av;
        if (dk) dk[kv + e] += scale * ak;
    }
}

// Opts a kernel into `smem` bytes of dynamic shared memory when that is above the default 48 KB.
template <typename K> static bool allow_smem(K *kernel, size_t smem, int T)
{
    if (smem <= 48 * 1024) return true;
    cudaError_t err =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (err == cudaSuccess) return true;
    fprintf(stderr, "cuda: attention_backward: %zu bytes of shared memory for T = %d: %s\n", smem,
            T, cudaGetErrorString(err));
    return false;
}

void cu_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                           size_t q_stride, const float *k, const float *v, int B, int T, int H,
                           int d, bool causal, float scale)
{
    size_t rows = (size_t)B * H * T;
    if (rows == 0 || d <= 0 || (!dq && !dk && !dv)) return;
    float *stats = (float *)cu_scratch(rows * 3 * sizeof(float));
    if (!stats) return;
    size_t smem = (2 * (size_t)d + 2 * (size_t)T) * sizeof(float);
    if (!allow_smem(k_attention_backward_q, smem, T) ||
        !allow_smem(k_attention_backward_kv, smem, T))
        return;
    // 128 threads as the forward: the key loops use all, the d = 64 lane loops half
    k_attention_backward_q<<<(unsigned)rows, 128, smem, cu_stream>>>(dq, stats, dout, q, q_stride,
        k, v, T, H, d, causal, scale);
    CUDA_LAUNCH_CHECK();
    if (!dk && !dv) return;
    k_attention_backward_kv<<<(unsigned)rows, 128, smem, cu_stream>>>(dk, dv, stats, dout, q,
        q_stride, k, v, T, H, d, causal, scale);
    CUDA_LAUNCH_CHECK();
}

// ---- cross-entropy ----------------------------------------------------------------------------

// One block per row: max, Σ exp (float terms, double sum), loss = log Σ - (x_target - max);
// dx = softmax · dscale, minus dscale at the target (0 for an ignored row). The target logit is
// read before the first barrier and every x[j] by the thread that overwrites it, after the
// barriers of the sum: dx may alias x.
__global__ void k_cross_entropy(double *loss, float *dx, const float *x, const int32_t *target,
                                int c, float dscale)
{
    __shared__ float shf[32];
    __shared__ double shd[32];
    const float *xi = x + (size_t)blockIdx.x * c;
    float *dxi = dx ? dx + (size_t)blockIdx.x * c : nullptr;
    int tg = target[blockIdx.x];
    if (tg < 0) {
        if (threadIdx.x == 0) loss[blockIdx.x] = 0.0;
        if (dxi)
            for (int j = threadIdx.x; j < c; j += blockDim.x) dxi[j] = 0.0f;
        return;
    }
    float xt = xi[tg];
    float mx;
    double s = row_sum_expf(xi, c, shf, shd, &mx);
    if (threadIdx.x == 0) loss[blockIdx.x] = log(s) - (double)(xt - mx);
    if (!dxi) return;
    float f = (float)(dscale / s);
    for (int j = threadIdx.x; j < c; j += blockDim.x) {
        float g = __fmul_rn(expf(xi[j] - mx), f);  // rounded before the subtraction, as the CPU
        dxi[j] = j == tg ? g - dscale : g;
    }
}

void cu_cross_entropy(double *loss, float *dx, const float *x, const int32_t *target, int n,
                      int c, float dscale)
{
    if (n <= 0) return;
    k_cross_entropy<<<n, CU_BLOCK, 0, cu_stream>>>(loss, dx, x, target, c, dscale);
    CUDA_LAUNCH_CHECK();
}
