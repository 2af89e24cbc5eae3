/* cuda_info: what the CUDA backend was built with and which devices it sees (host functions). */
#ifndef DLM_CUDA_INFO_CUH
#define DLM_CUDA_INFO_CUH
#ifdef __cplusplus
extern "C" {
#endif
/* Number of CUDA devices usable now; 0 when there is no driver or no GPU. */
int cuda_device_count(void);
/* Writes "CUDA runtime X.Y, cuBLAS A.B.C" into buf (always NUL-terminated). */
void cuda_describe_build(char *buf, unsigned long len);
#ifdef __cplusplus
}
#endif
#endif
