// attention: scaled dot-product attention on the GPU (contract: lib/backend.h), two kernels.
// Dispatch (cu_attention): Tq >= ATT_TILE_MIN_TQ and d <= 32 * ATT_TILE_DC_MAX (128) -> the
// tiled kernel (prompts, SEDD: K and V are read once per tile of ATT_BQ queries instead of
// once per query); otherwise (decoding Tq = 1, short query blocks, d > 128) the per-query
// kernel. Both are fp32 and deterministic; each query's arithmetic depends only on its own
// sizes (Tq decides the kernel, B never does).
//
// Per-query kernel: one block per query (b,h,t); q and the row of scores live in shared memory
// ((d + Tk) floats: 8.2 KB at d = 64, Tk = 2048; up to ~56k keys with the opt-in limit of
// sm_80/sm_90), softmax with float max and double sum, then each thread owns output lanes e and
// loops over the keys. K/V are read once per query: O(B·H·Tq·Tk·d) global traffic.
//
// Tiled kernel (flash-attention style): one block of ATT_WARPS warps per (b,h) and tile of
// ATT_BQ queries; each warp owns ATT_ROWS query rows. The block loops over tiles of ATT_BK keys
// staged in shared memory (K transposed, so a lane reads its own key's column without bank
// conflicts) and keeps, per row, a running max m, a running sum l (each lane sums its own
// keys; the lanes are added at the end) and the output accumulator (lane owns dims lane + 32i),
// rescaled by exp(m_old - m_new) whenever the max grows (online softmax). Scores a row cannot
// see (mask, causal limit, beyond Tk) are -inf: p = 0. A row that never sees a key keeps
// m = -inf and l = 0 and gets a zero output, as the contract says.
#include "attention.cuh"
#include "cuda_common.cuh"

// ---- per-query kernel -----------------------------------------------------------------------

__global__ void k_attention(float *out, const float *q, size_t q_stride, const float *k,
                            const float *v, int Tq, int Tk, int cap, int H, int d, int past,
                            const uint8_t *key_mask, float scale)
{
    extern __shared__ float sm[];  // q (d) then scores (Tk)
    __shared__ float shf[32];
    __shared__ double shd[32];
    float *qs = sm, *s = sm + d;
    int t = blockIdx.x % Tq, h = (blockIdx.x / Tq) % H, b = blockIdx.x / (Tq * H);
    size_t C = (size_t)H * d;
    const float *qt = q + ((size_t)b * Tq + t) * q_stride + (size_t)h * d;
    const float *kh = k + ((size_t)b * H + h) * cap * d;
    const float *vh = v + ((size_t)b * H + h) * cap * d;
    const uint8_t *mask = key_mask ? key_mask + (size_t)b * Tk : nullptr;
    float *o = out + ((size_t)b * Tq + t) * C + (size_t)h * d;
    int n = past >= 0 ? past + t + 1 : Tk;  // keys this query sees

    for (int e = threadIdx.x; e < d; e += blockDim.x) qs[e] = qt[e];
    __syncthreads();
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        float acc = 0.0f;
        const float *kj = kh + (size_t)j * d;
        for (int e = 0; e < d; e++) acc += qs[e] * kj[e];
        acc *= scale;
        s[j] = acc;
        if (!mask || mask[j]) mx = fmaxf(mx, acc);
    }
    mx = block_max(mx, shf);
    if (mx == -INFINITY) {  // no visible key (all masked): zero output, as the contract says
        for (int e = threadIdx.x; e < d; e += blockDim.x) o[e] = 0.0f;
        return;
    }
    double sum = 0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        float p = !mask || mask[j] ? expf(s[j] - mx) : 0.0f;
        s[j] = p;
        sum += p;
    }
    sum = block_sum(sum, shd);  // ends with a barrier: every s[j] is written
    float inv = (float)(1.0 / sum);
    for (int e = threadIdx.x; e < d; e += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < n; j++) acc += s[j] * inv * vh[(size_t)j * d + e];
        o[e] = acc;
    }
}

static void attention_per_query(float *out, const float *q, size_t q_stride, const float *k,
                                const float *v, int B, int Tq, int Tk, int cap, int H, int d,
                                int past, const uint8_t *key_mask, float scale)
{
    size_t blocks = (size_t)B * H * Tq;
    size_t smem = ((size_t)d + (Tk > 0 ? Tk : 1)) * sizeof(float);
    if (smem > 48 * 1024) {  // above the default limit the kernel must opt in
        cudaError_t err =
            cudaFuncSetAttribute(k_attention, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)smem);
        if (err != cudaSuccess) {
            fprintf(stderr, "cuda: attention: %zu bytes of shared memory for Tk = %d: %s\n",
                    smem, Tk, cudaGetErrorString(err));
            return;
        }
    }
    // 128 threads: d = 64 lanes use half of them in the output loop, the score loop all
    k_attention<<<(unsigned)blocks, 128, smem, cu_stream>>>(out, q, q_stride, k, v, Tq, Tk, cap, H,
        d, past, key_mask, scale);
    CUDA_LAUNCH_CHECK();
}

// ---- tiled kernel ---------------------------------------------------------------------------

// ATT_BQ = ATT_WARPS · ATT_ROWS queries and ATT_BK = 32 · ATT_KPL keys per tile (a lane scores
// ATT_KPL keys of each of its warp's rows); ATT_BKP pads the transposed K rows to an odd stride.
// Below ATT_TILE_MIN_TQ queries a tile would leave most warps idle and B·H blocks too few to
// fill the GPU, while the per-query kernel has B·H·Tq blocks and its K/V reads hit L2.
// Occupancy (sm_90, 256 threads, <= 128 registers by the launch bounds, no spills): 2 blocks
// (16 warps) per SM up to d = 96 (shared 41 KB at d = 32, 64.3 KB at d = 64), 1 at d = 128
// (112.5 KB). Per 4 dims (keys) a warp does 64 FMAs for 16 shared loads (8 of them float4
// broadcasts), so the loop is roughly balanced between the FMA and shared-memory pipes.
enum {
    ATT_WARPS = 8, ATT_ROWS = 8, ATT_BQ = ATT_WARPS * ATT_ROWS,
    ATT_KPL = 2, ATT_BK = 32 * ATT_KPL, ATT_BKP = ATT_BK + 1,
    ATT_TILE_MIN_TQ = 32, ATT_TILE_DC_MAX = 4
};

// Shared memory of the tiled kernel in floats, for head size d and DC = ceil(d/32): q tile
// (ATT_BQ, DP), probabilities (ATT_BQ, ATT_BK), V tile (ATT_BK, 32·DC), Kᵀ tile (DP, ATT_BKP),
// with DP = d rounded up to 4 (float4 reads of q; the pad is zero). 64.3 KB at d = 64.
static size_t tiled_smem_floats(int d, int DC)
{
    size_t DP = (size_t)(d + 3) & ~(size_t)3;
    return ATT_BQ * DP + ATT_BQ * ATT_BK + ATT_BK * 32 * (size_t)DC + DP * ATT_BKP;
}

// acc[r][c] += Σ_u a[r·a_ld + u] · b[u·b_ld + 32c] for u = 0..3 in order (fmaf): four steps of
// the tiled kernel's row-by-tile products; a is read as float4 (16-byte aligned), b one column
// per lane (b already offset by the lane).
template <int R, int N>
__device__ __forceinline__ void fma4_rows(float (&acc)[R][N], const float *a, int a_ld,
                                          const float *b, int b_ld)
{
    float br[4][N];
#pragma unroll
    for (int u = 0; u < 4; u++)
#pragma unroll
        for (int c = 0; c < N; c++) br[u][c] = b[u * b_ld + 32 * c];
#pragma unroll
    for (int r = 0; r < R; r++) {
        float4 av = *(const float4 *)&a[r * a_ld];
#pragma unroll
        for (int c = 0; c < N; c++) {
            acc[r][c] = fmaf(av.x, br[0][c], acc[r][c]);
            acc[r][c] = fmaf(av.y, br[1][c], acc[r][c]);
            acc[r][c] = fmaf(av.z, br[2][c], acc[r][c]);
            acc[r][c] = fmaf(av.w, br[3][c], acc[r][c]);
        }
    }
}

// grid: n_qtiles · B·H blocks, the query tiles with the most keys (causal: the last) first.
template <int DC>
__global__ void __launch_bounds__(ATT_WARPS * 32, 2)
k_attention_tiled(float *out, const float *q, size_t q_stride, const float *k, const float *v,
                  int Tq, int Tk, int cap, int H, int d, int past, const uint8_t *key_mask,
                  float scale, int n_qtiles)
{
    extern __shared__ float4 sm4[];  // float4: 16-byte alignment for the float4 reads
    const int DP = (d + 3) & ~3, DV = 32 * DC;
    float *qs = (float *)sm4, *ps = qs + ATT_BQ * DP, *vs = ps + ATT_BQ * ATT_BK,
          *ks = vs + ATT_BK * DV;
    int BH = gridDim.x / n_qtiles;
    int bh = blockIdx.x % BH, b = bh / H, h = bh % H;
    int t0 = (n_qtiles - 1 - (int)(blockIdx.x / BH)) * ATT_BQ;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, r0 = warp * ATT_ROWS;
    const float *kh = k + (size_t)bh * cap * d, *vh = v + (size_t)bh * cap * d;
    const uint8_t *mask = key_mask ? key_mask + (size_t)b * Tk : nullptr;
    int t_end = min(Tq, t0 + ATT_BQ);
    int nk = past >= 0 ? min(Tk, past + t_end) : Tk;  // keys the block's last query sees

    // loads below: lane e = lane + 32i covers the DP <= 32·DC dims of a row (coalesced, no
    // divisions, trip counts known at compile time); each warp loads its own query rows, and
    // keys warp, warp + ATT_WARPS, ... of each tile
#pragma unroll
    for (int r = r0; r < r0 + ATT_ROWS; r++)
#pragma unroll
        for (int i = 0; i < DC; i++) {
            int e = lane + 32 * i, t = t0 + r;
            if (e < DP)
                qs[r * DP + e] =
                    t < Tq && e < d ? q[((size_t)b * Tq + t) * q_stride + (size_t)h * d + e] : 0.0f;
        }
    float acc[ATT_ROWS][DC], m[ATT_ROWS], l[ATT_ROWS];
#pragma unroll
    for (int r = 0; r < ATT_ROWS; r++) {
        m[r] = -INFINITY, l[r] = 0.0f;
#pragma unroll
        for (int i = 0; i < DC; i++) acc[r][i] = 0.0f;
    }

    for (int j0 = 0; j0 < nk; j0 += ATT_BK) {
        __syncthreads();  // every warp is done with the previous tile's K and V
        // K transposed (ks[e][jj]) and V (vs[jj][e]); keys past Tk and pad dims are zero, so
        // that p = 0 never meets an uninitialised cache slot (0 · NaN)
#pragma unroll 2  // (more: registers spill at DC = 3, 4)
        for (int u = 0; u < ATT_BK / ATT_WARPS; u++)
#pragma unroll
            for (int i = 0; i < DC; i++) {
                int jj = u * ATT_WARPS + warp, e = lane + 32 * i, j = j0 + jj;
                bool real = j < Tk && e < d;
                float kv = real ? kh[(size_t)j * d + e] : 0.0f;
                vs[jj * DV + e] = real ? vh[(size_t)j * d + e] : 0.0f;
                if (e < DP) ks[e * ATT_BKP + jj] = kv;
            }
        __syncthreads();  // (the first time also: the q tile is written)

        // scores s[r][c] = q_r · k_j for key j = j0 + lane + 32c, e ascending
        float s[ATT_ROWS][ATT_KPL];
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++)
#pragma unroll
            for (int c = 0; c < ATT_KPL; c++) s[r][c] = 0.0f;
        for (int e = 0; e < DP; e += 4)
            fma4_rows(s, &qs[r0 * DP + e], DP, &ks[e * ATT_BKP + lane], ATT_BKP);

        // online softmax: new running max, rescale l and acc, p into this warp's rows of ps
        bool seen[ATT_KPL];  // key exists and is not masked (the causal limit is per row)
#pragma unroll
        for (int c = 0; c < ATT_KPL; c++) {
            int j = j0 + lane + 32 * c;
            seen[c] = j < Tk && (!mask || mask[j]);
        }
#pragma unroll
        for (int r = 0; r < ATT_ROWS; r++) {
            int t = t0 + r0 + r;
            float mt = -INFINITY;
#pragma unroll
            for (int c = 0; c < ATT_KPL; c++) {
                int j = j0 + lane + 32 * c;
                bool vis = seen[c] && (past < 0 || j <= past + t);
                s[r][c] = vis ? s[r][c] * scale : -INFINITY;
                mt = fmaxf(mt, s[r][c]);
            }
            float mn = fmaxf(m[r], warp_max(mt));
            // no key seen yet (mn = -inf): subtract 0 instead, so alpha and every p are
            // exp(-inf) = 0 rather than NaN, and l, acc stay 0
            float base = mn == -INFINITY ? 0.0f : mn;
            float alpha = expf(m[r] - base);
            m[r] = mn;
            l[r] *= alpha;
#pragma unroll
            for (int i = 0; i < DC; i++) acc[r][i] *= alpha;
#pragma unroll
            for (int c = 0; c < ATT_KPL; c++) {
                float p = expf(s[r][c] - base);
                l[r] += p;
                ps[(r0 + r) * ATT_BK + lane + 32 * c] = p;
            }
        }
        __syncwarp();  // the warp's p rows are complete

        // acc[r][i] += Σ_jj p[r][jj] · v[jj][lane + 32i], jj ascending
        for (int jj = 0; jj < ATT_BK; jj += 4)
            fma4_rows(acc, &ps[r0 * ATT_BK + jj], ATT_BK, &vs[jj * DV + lane], DV);
    }

    size_t C = (size_t)H * d;
#pragma unroll
    for (int r = 0; r < ATT_ROWS; r++) {
        float sum = warp_sum(l[r]);  // l = 0: the row saw no key
        int t = t0 + r0 + r;
        if (t >= Tq) continue;
        float *o = out + ((size_t)b * Tq + t) * C + (size_t)h * d;
#pragma unroll
        for (int i = 0; i < DC; i++) {
            int e = lane + 32 * i;
            if (e < d) o[e] = sum > 0.0f ? acc[r][i] / sum : 0.0f;
        }
    }
}

template <int DC>
static void attention_tiled(float *out, const float *q, size_t q_stride, const float *k,
                            const float *v, int B, int Tq, int Tk, int cap, int H, int d,
                            int past, const uint8_t *key_mask, float scale)
{
    int n_qtiles = (Tq + ATT_BQ - 1) / ATT_BQ;
    size_t blocks = (size_t)n_qtiles * B * H;
    size_t smem = tiled_smem_floats(d, DC) * sizeof(float);
    if (smem > 48 * 1024) {  // above the default limit the kernel must opt in
        cudaError_t err = cudaFuncSetAttribute(
            k_attention_tiled<DC>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (err != cudaSuccess) {
            fprintf(stderr, "cuda: attention: %zu bytes of shared memory for d = %d: %s\n", smem,
                    d, cudaGetErrorString(err));
            return;
        }
    }
    k_attention_tiled<DC><<<(unsigned)blocks, ATT_WARPS * 32, smem, cu_stream>>>(
        out, q, q_stride, k, v, Tq, Tk, cap, H, d, past, key_mask, scale, n_qtiles);
    CUDA_LAUNCH_CHECK();
}

void cu_attention(float *out, const float *q, size_t q_stride, const float *k, const float *v,
                  int B, int Tq, int Tk, int cap, int H, int d, int past,
                  const uint8_t *key_mask, float scale)
{
    if ((size_t)B * H * Tq == 0 || d <= 0) return;
    int DC = (d + 31) / 32;
    if (Tq < ATT_TILE_MIN_TQ || DC > ATT_TILE_DC_MAX)
        attention_per_query(out, q, q_stride, k, v, B, Tq, Tk, cap, H, d, past, key_mask, scale);
    else if (DC == 1)
        attention_tiled<1>(out, q, q_stride, k, v, B, Tq, Tk, cap, H, d, past, key_mask, scale);
    else if (DC == 2)
        attention_tiled<2>(out, q, q_stride, k, v, B, Tq, Tk, cap, H, d, past, key_mask, scale);
    else if (DC == 3)
        attention_tiled<3>(out, q, q_stride, k, v, B, Tq, Tk, cap, H, d, past, key_mask, scale);
    else
        attention_tiled<4>(out, q, q_stride, k, v, B, Tq, Tk, cap, H, d, past, key_mask, scale);
}
