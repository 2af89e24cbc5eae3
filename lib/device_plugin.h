/* device_plugin: loads the CUDA backend's plugin, libdlmkit-cuda.so (kernels/cuda_plugin.cuh),
 * on first use, and says what the build supports. Kept apart from device selection so that a
 * tool which only prints its --version links neither the CPU backend nor BLAS.
 * Ownership: the plugin stays loaded until the process ends; strings are static.
 * Errors: NULL with a message naming the path and the reason. */
#ifndef DLM_DEVICE_PLUGIN_H
#define DLM_DEVICE_PLUGIN_H

#include "err.h"

struct cuda_plugin;

/* The plugin's entry table, loaded once: from $DLMKIT_CUDA_PLUGIN when set, else from
 * PREFIX/lib/dlmkit/ for a tool in PREFIX/bin (make install), else from the build tree that made
 * this library. NULL (with the reason) when it cannot be loaded or comes from another build, and
 * always in a build without CUDA. */
const struct cuda_plugin *device_plugin(err_t *e);

/* One line describing the CUDA side of this build, e.g. "off" or "CUDA runtime 13.0, cuBLAS …,
 * 0 devices". */
const char *device_build_info(void);

#endif
