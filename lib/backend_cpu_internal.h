/* backend_cpu_internal: what the CPU backend's two files (backend_cpu.c: inference ops and the
 * table, backend_cpu_train.c: backward and optimiser ops) share: the multi-versioning attribute
 * for hot loops, a vectorisable exp, the training ops' declarations. Not used outside them. */
#ifndef DLM_BACKEND_CPU_INTERNAL_H
#define DLM_BACKEND_CPU_INTERNAL_H

#include <math.h>
#include <stdint.h>

#include "backend.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DLM_ASAN 1
#endif
#endif
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(DLM_ASAN)
#define HOT __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define HOT
#endif

#ifdef __clang__
/* clang would otherwise fuse a*b+c into FMAs in the AVX2/AVX-512 clones only (GCC does not in
 * ISO C mode), and the clones would round differently. */
#pragma STDC FP_CONTRACT OFF
#endif

/* exp(x) in float, written so that loops over it vectorise (libm's expf is a call per element):
 * x = n ln2 + r with |r| <= ln2/2, exp(r) by its Taylor series to r^7 (truncation < 6e-9
 * relative, below float rounding), times 2^n built in the exponent bits. Within 2 ulp of expf;
 * 0 below -87.3 (where expf is subnormal or 0), inf above 88.7. */
static inline float exp_vec(float x)
{
    float xc = x < -87.3f ? -87.3f : x > 88.7f ? 88.7f : x;
    float n = __builtin_rintf(xc * 1.44269504f);
    float r = xc - n * 0.693145752f - n * 1.42860677e-6f; /* ln2 split: exact n*hi */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { uint32_t u; float f; } two = {.u = (uint32_t)((int32_t)n + 127) << 23};
    float y = p * two.f;
    return x < -87.3f ? 0.0f : x > 88.7f ? INFINITY : y;
}

/* The training ops of backend_cpu (backend_cpu_train.c); contracts in backend.h. */
void cpu_matmul_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x,
                         const float *w, int n, int in, int out, enum be_layout layout);
void cpu_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                            const float *w, int n, int c, float eps);
void cpu_gelu_tanh_backward(float *dx, const float *x, const float *dy, size_t n);
void cpu_silu_backward(float *dx, const float *x, const float *dy, size_t n);
void cpu_modulate_backward(float *dx, float *dshift, float *dscale, const float *dy,
                           const float *x, const float *scale, size_t mod_stride, int B, int T,
                           int C);
void cpu_gated_add_backward(float *dgate, float *dy, const float *gate, size_t mod_stride,
                            const float *dx, const float *y, int B, int T, int C);
void cpu_embed_backward(float *dtable, float *dpos, const int32_t *ids, const float *dy, int n,
                        int T, int c);
void cpu_rotary_backward(float *dx, size_t row_stride, const float *cos, const float *sin, int B,
                         int T, int H, int d);
void cpu_kv_store_backward(float *dqkv, const float *dk, const float *dv, int B, int T, int H,
                           int d);
void cpu_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                            size_t q_stride, const float *k, const float *v, int B, int T, int H,
                            int d, bool causal, float scale);
void cpu_cross_entropy(double *loss, float *dx, const float *x, const int32_t *target, int n,
                       int c, float dscale);
double cpu_sumsq(const float *x, size_t n);
void cpu_scale(float *x, float a, size_t n);
void cpu_adamw(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
               float beta2, float eps, float weight_decay, int step);
void cpu_ema(float *ema, const float *p, size_t n, float decay);

/* The SEDD sampling ops of backend_cpu (backend_cpu_sedd.c); contracts in backend.h. */
void cpu_sedd_finish(float *rows, const int64_t *x, int n, int64_t V, float sigma, bool scale);
void cpu_sedd_project(int64_t *x, const int64_t *fixed, size_t n);
int cpu_sedd_step(int64_t *x, float *score, const be_sedd_step *a, err_t *e);
void cpu_sedd_score_entropy(double *dse, const float *score, const int64_t *x, const int64_t *x0,
                            int L, double sigma, bool absorb, int64_t n_tokens);

#endif
