/* optim: the CUDA backend's optimiser ops (sumsq, scale, adamw, ema), with the signatures and
 * contracts of lib/backend.h. Ownership: no state (sumsq's partial sums in scratch.cuh).
 * Errors: printed (ops cannot fail); sumsq returns NaN when it could not run. */
#ifndef DLM_OPTIM_CUH
#define DLM_OPTIM_CUH

#include <cstddef>

double cu_sumsq(const float *x, size_t n);
void cu_scale(float *x, float a, size_t n);
void cu_adamw(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
              float beta2, float eps, float weight_decay, int step);
void cu_ema(float *ema, const float *p, size_t n, float decay);
#endif
