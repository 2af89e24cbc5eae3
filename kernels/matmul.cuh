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
void cu_matmul_rows(float *y, const float *x, const float *w, const float *bias, int n, int in,
                    int out, enum be_layout layout, bool accumulate);
#endif
