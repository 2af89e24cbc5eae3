// pointwise: element-wise and gather kernels of the CUDA backend (contracts in lib/backend.h).
// One thread per element in grid-stride loops; fp32 arithmetic as the CPU reference writes it,
// except that nvcc contracts a*b+c into FMAs (--fmad=true, the default) and expf is CUDA's
// (<= 2 ulp): results agree with lib/backend_cpu.c to a few ulp, not bit for bit.
#include "cuda_common.cuh"
#include "pointwise.cuh"

// 0.5x(1 + tanh u) written as x / (1 + exp(-2u)), as the CPU does (no cancellation near 0)
__global__ void k_gelu_tanh(float *y, const float *x, size_t n)
{
    const float k = 0.7978845608028654f;  // sqrt(2/pi)
    GRID_STRIDE(i, n)
    {
        float v = x[i], u = k * (v + 0.044715f * v * v * v);
        y[i] = v / (1.0f + expf(-2.0f * u));
    }
}

__global__ void k_silu(float *y, const float *x, size_t n)
{
    GRID_STRIDE(i, n) y[i] = x[i] / (1.0f + expf(-x[i]));
}

__global__ void k_add(float *y, const float *a, const float *b, size_t n)
{
    GRID_STRIDE(i, n) y[i] = a[i] + b[i];
}

// y (B,T,C) = x * (1 + scale[b]) + shift[b]; shift/scale rows at stride mod_stride
__global__ void k_modulate(float *y, const float *x, const float *shift, const float *scale,
                           size_t mod_stride, size_t TC, int C, size_t total)
{
    GRID_STRIDE(i, total)
    {
        size_t b = i / TC, j = i % C;
        y[i] = x[i] * (1.0f + scale[b * mod_stride + j]) + shift[b * mod_stride + j];
    }
}

// x (B,T,C) += gate[b] * y
__global__ void k_gated_add(float *x, const float *gate, size_t mod_stride, const float *y,
                            size_t TC, int C, size_t total)
{
    GRID_STRIDE(i, total)
    {
        size_t b = i / TC, j = i % C;
        x[i] += gate[b * mod_stride + j] * y[i];
    }
}

// y (n,c) = table[ids[r]] (+ pos[pos0 + r % T])
__global__ void k_embed(float *y, const float *table, const float *pos, const int32_t *ids,
                        int T, int pos0, int c, size_t total)
{
    GRID_STRIDE(i, total)
    {
        size_t r = i / c, j = i % c;
        float v = table[(size_t)ids[r] * c + j];
        if (pos) v += pos[(size_t)(pos0 + (int)(r % T)) * c + j];
        y[i] = v;
    }
}

// one thread per (b,t,h,j < d/2): rotates the pair (j, j + d/2) in place
__global__ void k_rotary(float *x, size_t row_stride, const float *cos, const float *sin, int T,
                         int H, int d, size_t total)
{
    GRID_STRIDE(i, total)
    {
        rotary_pair p = rotary_pair_at(x, row_stride, cos, sin, T, H, d, i);
        int j = p.j, half = p.half;
        float x1 = p.u[j], x2 = p.u[j + half];
        p.u[j] = x1 * p.ct[j] - x2 * p.st[j];
        p.u[j + half] = x2 * p.ct[j + half] + x1 * p.st[j + half];
    }
}

// one thread per (b,t,h,e): k, v (B,H,cap,d) at position past+t from qkv (B,T,3C)
__global__ void k_kv_store(float *k, float *v, const float *qkv, int T, int H, int d, int past,
                           int cap, size_t total)
{
    size_t C = (size_t)H * d;
    GRID_STRIDE(i, total)
    {
        kv_slot ks = kv_slot_at(i, T, H, d, past, cap);
        const float *row = qkv + ks.qkv;
        k[ks.cache] = row[C + ks.e];
        v[ks.cache] = row[2 * C + ks.e];
    }
}

void cu_gelu_tanh(float *y, const float *x, size_t n)
{
    if (!n) return;
    k_gelu_tanh<<<cu_blocks(n), CU_BLOCK, 0, cu_stream>>>(y, x, n);
    CUDA_LAUNCH_CHECK();
}

void cu_silu(float *y, const float *x, size_t n)
{
    if (!n) return;
    k_silu<<<cu_blocks(n), CU_BLOCK, 0, cu_stream>>>(y, x, n);
    CUDA_LAUNCH_CHECK();
}

void cu_add(float *y, const float *a, const float *b, size_t n)
{
    if (!n) return;
    k_add<<<cu_blocks(n), CU_BLOCK, 0, cu_stream>>>(y, a, b, n);
    CUDA_LAUNCH_CHECK();
}

void cu_modulate(float *y, const float *x, const float *shift, const float *scale,
                 size_t mod_stride, int B, int T, int C)
{
    size_t total = (size_t)B * T * C;
    if (!total) return;
    k_modulate<<<cu_blocks(total), CU_BLOCK, 0, cu_stream>>>(y, x, shift, scale, mod_stride,
        (size_t)T * C, C, total);
    CUDA_LAUNCH_CHECK();
}

void cu_gated_add(float *x, const float *gate, size_t mod_stride, const float *y, int B, int T,
                  int C)
{
    size_t total = (size_t)B * T * C;
    if (!total) return;
    k_gated_add<<<cu_blocks(total), CU_BLOCK, 0, cu_stream>>>(x, gate, mod_stride, y, (size_t)T * C,
        C, total);
    CUDA_LAUNCH_CHECK();
}

void cu_embed(float *y, const float *table, const float *pos, const int32_t *ids, int n, int T,
              int pos0, int c)
{
    size_t total = (size_t)n * c;
    if (!total) return;
    k_embed<<<cu_blocks(total), CU_BLOCK, 0, cu_stream>>>(y, table, pos, ids, T, pos0, c, total);
    CUDA_LAUNCH_CHECK();
}

void cu_rotary(float *x, size_t row_stride, const float *cos, const float *sin, int B, int T,
               int H, int d)
{
    size_t total = (size_t)B * T * H * (d / 2);
    if (!total) return;
    k_rotary<<<cu_blocks(total), CU_BLOCK, 0, cu_stream>>>(x, row_stride, cos, sin, T, H, d, total);
    CUDA_LAUNCH_CHECK();
}

void cu_kv_store(float *k, float *v, const float *qkv, int B, int T, int H, int d, int past,
                 int cap)
{
    size_t total = (size_t)B * T * H * d;
    if (!total) return;
    k_kv_store<<<cu_blocks(total), CU_BLOCK, 0, cu_stream>>>(k, v, qkv, T, H, d, past, cap, total);
    CUDA_LAUNCH_CHECK();
}

__global__ void k_ids_from_tokens(int32_t *ids, const int64_t *tokens, size_t n)
{
    GRID_STRIDE(i, n) ids[i] = (int32_t)tokens[i];
}

void cu_ids_from_tokens(int32_t *ids, const int64_t *tokens, size_t n)
{
    if (!n) return;
    k_ids_from_tokens<<<cu_blocks(n), CU_BLOCK, 0, cu_stream>>>(ids, tokens, n);
    CUDA_LAUNCH_CHECK();
}
