// cuda_plugin: the table lib/device.c finds by dlsym in libdlmkit-cuda.so (see cuda_plugin.cuh).
#include "cuda_plugin.cuh"

#include "backend_cuda.cuh"
#include "cuda_info.cuh"

extern "C" const struct cuda_plugin dlmkit_cuda_plugin = {
    CUDA_PLUGIN_ABI, sizeof(backend), backend_cuda, backend_cuda_set_bf16, cuda_device_count,
    cuda_describe_build,
};
