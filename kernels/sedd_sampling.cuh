/* sedd_sampling: the CUDA backend's SEDD sampling ops (sedd_finish, sedd_project, sedd_step,
 * sedd_score_entropy; the contracts are in lib/backend.h), and a test hook that runs the device
 * Philox.
 * Ownership: no state. Errors: launch failures are printed; sedd_step also returns them. */
#ifndef DLM_SEDD_SAMPLING_CUH
#define DLM_SEDD_SAMPLING_CUH

#include "backend.h"

#ifdef __cplusplus
void cu_sedd_finish(float *rows, const int64_t *x, int n, int64_t V, float sigma, bool scale);
void cu_sedd_project(int64_t *x, const int64_t *fixed, size_t n);
int cu_sedd_step(int64_t *x, float *score, const be_sedd_step *a, err_t *e);
void cu_sedd_score_entropy(double *dse, const float *score, const int64_t *x, const int64_t *x0,
                           int L, double sigma, bool absorb, int64_t n_tokens);
extern "C" {
#endif
/* For tests/kernels/test_sedd_ops.c: on the device, words (4n) = the Philox blocks of lanes
 * 0..n−1 of (seed, record, step, position), f64 (2n) = cu_philox_u01_f64 of the word pairs
 * (0,1), (2,3) of each block, f32 (4n) = cu_philox_u01_f32 of each word (host buffers).
 * @return 0, or −1 when CUDA fails (printed). */
int cuda_philox_lanes(uint64_t seed, uint64_t record, uint32_t step, uint32_t position,
                      uint32_t n, uint32_t *words, double *f64, float *f32);
#ifdef __cplusplus
}
#endif
#endif
