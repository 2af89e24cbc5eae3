/* draw: the CUDA backend's ancestral draws from softmax rows (draw_rows of lib/backend.h).
 * Ownership: no state. Errors: launch failures are printed (ops cannot fail). */
#ifndef DLM_DRAW_CUH
#define DLM_DRAW_CUH

#include "backend.h"

void cu_draw_rows(int32_t *tok, const float *x, const double *u, int n, int c, double inv_t);
#endif
