// cuda_info: runtime and cuBLAS versions and device count, the first piece of the CUDA backend.
// Needs no GPU: without a driver cudaGetDeviceCount fails and we report 0 devices.
#include <cstdio>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "cuda_info.cuh"

extern "C" int cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky "no driver" error
        return 0;
    }
    return n;
}

extern "C" void cuda_describe_build(char *buf, unsigned long len)
{
#ifdef DLM_CUDA_EMU  // built by g++ against tests/cudaemu: no CUDA runtime, no GPU
    snprintf(buf, len, "CUDA emulated on the CPU (tests/cudaemu), cuBLAS via OpenBLAS");
    return;
#endif
    int runtime = 0, major = 0, minor = 0, patch = 0;
    cudaRuntimeGetVersion(&runtime);
    cublasGetProperty(MAJOR_VERSION, &major);
    cublasGetProperty(MINOR_VERSION, &minor);
    cublasGetProperty(PATCH_LEVEL, &patch);
    snprintf(buf, len, "CUDA runtime %d.%d, cuBLAS %d.%d.%d", runtime / 1000, (runtime % 1000) / 10,
             major, minor, patch);
}
