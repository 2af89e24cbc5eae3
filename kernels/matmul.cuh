/* matmul: the CUDA backend's matrix products (cuBLAS sgemm, and a fixed-order row kernel).
 * Ownership: matmul.cu owns the process's cuBLAS handle, created by cu_matmul_init.
 * Errors: cu_matmul_init prints and returns -1; the ops themselves only print. */
#ifndef DLM_MATMUL_CUH
#define DLM_MATMUL_CUH

#include "backend.h"

/* Creates the cuBLAS handle (fp32 math, TF32 off) once; 0 on success. */
int cu_matmul_init(void);
/* The compute type of cu_matmul from now on (see backend_cuda_set_bf16). */
void cu_matmul_set_bf16(int bf16);
void cu_matmul(float *y, const float *x, const float *w, const float *bias, int n, int in,
               int out, enum be_layout layout, bool accumulate);
/* c (m,n) += op(a) · op(b), all row-major fp32: op(a) (m,k) is a (m,k) at row stride lda, or
 * aᵀ for a stored (k,m) when ta; likewise b. cuBLAS with beta = 1 and the compute type of
 * cu_matmul, on the same handle (for the backward of matmul and attention). */
void cu_gemm_add(bool ta, bool tb, int m, int n, int k, const float *a, int lda, const float *b,
                 int ldb, float *c, int ldc);
void cu_matmul_rows(float *y, const float *x, const float *w, const float *bias, int n, int in,
                    int out, enum be_layout layout, bool accumulate);
#endif
