// attention: naive first version, correct before fast. One block per query (b,h,t): q and the
// row of scores live in shared memory ((d + Tk) floats: 8.2 KB at d = 64, Tk = 2048; up to
// ~56k keys with the opt-in limit of sm_80/sm_90), then softmax with float max and double sum,
// then each thread owns output lanes e and loops over the keys. K/V are read once per query:
// O(B·H·Tq·Tk·d) global traffic; a tiled (flash) kernel replaces this once it is checked.
#include "attention.cuh"
#include "cuda_common.cuh"

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

void cu_attention(float *out, const float *q, size_t q_stride, const float *k, const float *v,
                  int B, int Tq, int Tk, int cap, int H, int d, int past,
                  const uint8_t *key_mask, float scale)
{
    size_t blocks = (size_t)B * H * Tq;
    if (blocks == 0 || d <= 0) return;
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
    k_attention<<<(unsigned)blocks, 128, smem>>>(out, q, q_stride, k, v, Tq, Tk, cap, H, d, past,
                                                 key_mask, scale);
    CUDA_LAUNCH_CHECK();
}
