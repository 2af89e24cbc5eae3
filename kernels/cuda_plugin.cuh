/* cuda_plugin: the entry table of libdlmkit-cuda.so, the CUDA backend as a plugin that
 * lib/device.c loads with dlopen only when a tool asks for a GPU (--device cuda|auto, --version).
 * The tools themselves link neither cuBLAS nor the CUDA runtime, whose loading alone costs every
 * process about 70 ms and 200 MB of resident memory.
 * Ownership: a static table in the plugin; it lives until the process ends (never dlclosed). */
#ifndef DLM_CUDA_PLUGIN_CUH
#define DLM_CUDA_PLUGIN_CUH

#include "backend.h"

/* Bumped whenever this table or lib/backend.h changes shape; a plugin left over from another
 * build is refused instead of being called through the wrong layout. */
#define CUDA_PLUGIN_ABI 4
#define CUDA_PLUGIN_SYMBOL "dlmkit_cuda_plugin"
#define CUDA_PLUGIN_FILE "libdlmkit-cuda.so"

struct cuda_plugin {
    int abi;                 /* CUDA_PLUGIN_ABI of the build that made the plugin */
    size_t backend_size;     /* sizeof(backend) there: a second guard against a stale plugin */
    const backend *(*get_backend)(void);                    /* backend_cuda() */
    void (*set_bf16)(int bf16);                             /* backend_cuda_set_bf16() */
    int (*device_count)(void);                              /* cuda_device_count() */
    void (*describe_build)(char *buf, unsigned long len);   /* cuda_describe_build() */
};

#ifdef __cplusplus
extern "C" {
#endif
extern const struct cuda_plugin dlmkit_cuda_plugin;
#ifdef __cplusplus
}
#endif

#endif
