/* backward: the CUDA backend's backward ops and cross-entropy (matmul, layernorm, gelu_tanh,
 * silu, modulate, gated_add, embed, rotary, kv_store, attention), with the signatures and
 * contracts of lib/backend.h: every op ADDS into its gradients and skips NULL ones.
 * Ownership: no state (temporary memory from scratch.cuh). Errors: printed (ops cannot fail). */
#ifndef DLM_BACKWARD_CUH
#define DLM_BACKWARD_CUH

#include "backend.h"

void cu_matmul_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x,
                        const float *w, int n, int in, int out, enum be_layout layout);
void cu_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                           const float *w, int n, int c, float eps);
void cu_gelu_tanh_backward(float *dx, const float *x, const float *dy, size_t n);
void cu_silu_backward(float *dx, const float *x, const float *dy, size_t n);
void cu_modulate_backward(float *dx, float *dshift, float *dscale, const float *dy,
                          const float *x, const float *scale, size_t mod_stride, int B, int T,
                          int C);
void cu_gated_add_backward(float *dgate, float *dy, const float *gate, size_t mod_stride,
                           const float *dx, const float *y, int B, int T, int C);
void cu_embed_backward(float *dtable, float *dpos, const int32_t *ids, const float *dy, int n,
                       int T, int c);
void cu_rotary_backward(float *dx, size_t row_stride, const float *cos, const float *sin, int B,
                        int T, int H, int d);
void cu_kv_store_backward(float *dqkv, const float *dk, const float *dv, int B, int T, int H,
                          int d);
void cu_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                           size_t q_stride, const float *k, const float *v, int B, int T, int H,
                           int d, bool causal, float scale);
void cu_cross_entropy(double *loss, float *dx, const float *x, const int32_t *target, int n,
                      int c, float dscale);
#endif
