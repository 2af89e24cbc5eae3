/* pointwise: the CUDA backend's element-wise and gather ops (gelu_tanh, silu, add, modulate,
 * gated_add, embed, rotary, kv_store, ids_from_tokens), with the signatures and contracts of lib/backend.h.
 * Ownership: no state. Errors: launch failures are printed (ops cannot fail). */
#ifndef DLM_POINTWISE_CUH
#define DLM_POINTWISE_CUH

#include "backend.h"

void cu_gelu_tanh(float *y, const float *x, size_t n);
void cu_silu(float *y, const float *x, size_t n);
void cu_add(float *y, const float *a, const float *b, size_t n);
void cu_modulate(float *y, const float *x, const float *shift, const float *scale,
                 size_t mod_stride, int B, int T, int C);
void cu_gated_add(float *x, const float *gate, size_t mod_stride, const float *y, int B, int T,
                  int C);
void cu_embed(float *y, const float *table, const float *pos, const int32_t *ids, int n, int T,
              int pos0, int c);
void cu_rotary(float *x, size_t row_stride, const float *cos, const float *sin, int B, int T,
               int H, int d);
void cu_kv_store(float *k, float *v, const float *qkv, int B, int T, int H, int d, int past,
                 int cap);
void cu_ids_from_tokens(int32_t *ids, const int64_t *tokens, size_t n);
#endif
