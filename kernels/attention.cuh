/* attention: the CUDA backend's scaled dot-product attention (causal with a past length, or
 * non-causal with an optional key mask), with the signature and contract of lib/backend.h.
 * Ownership: no state. Errors: launch failures are printed (ops cannot fail). */
#ifndef DLM_ATTENTION_CUH
#define DLM_ATTENTION_CUH

#include "backend.h"

void cu_attention(float *out, const float *q, size_t q_stride, const float *k, const float *v,
                  int B, int Tq, int Tk, int cap, int H, int d, int past,
                  const uint8_t *key_mask, float scale);
#endif
