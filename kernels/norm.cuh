/* norm: the CUDA backend's per-row ops (layernorm, softmax, log_softmax, log_softmax_pick),
 * with the signatures and contracts of lib/backend.h.
 * Ownership: no state. Errors: launch failures are printed (ops cannot fail). */
#ifndef DLM_NORM_CUH
#define DLM_NORM_CUH

#include "backend.h"

void cu_layernorm(float *y, const float *x, const float *w, const float *b, int n, int c,
                  float eps);
void cu_softmax(float *y, const float *x, int n, int c);
void cu_log_softmax(float *y, const float *x, int n, int c);
void cu_log_softmax_pick(double *lp, const float *x, const int32_t *target, int n, int c);
#endif
