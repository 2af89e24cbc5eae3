/* device: the --device (auto|cpu|cuda) and --precision (fp32|bf16) options, the backend a device
 * runs on, and what the build supports.
 * Ownership: returns static strings and static backend tables; nothing allocated. Holds the
 * #ifdef HAVE_CUDA of lib/ (the rest of lib/ reaches the GPU through the backend table only).
 * Errors: ERR_FAIL with a message for an unknown or unavailable device or precision. */
#ifndef DLM_DEVICE_H
#define DLM_DEVICE_H

#include "backend.h"
#include "err.h"

typedef enum { DEVICE_CPU, DEVICE_CUDA } device_kind;

/* Parses "auto" (CUDA when built with it and a GPU is present, else CPU), "cpu" or "cuda"
 * (an error when this build has no CUDA or no GPU is visible). */
int device_parse(const char *name, device_kind *out, err_t *e);

/* The backend of d: &backend_cpu, or the CUDA backend (the plugin libdlmkit-cuda.so, loaded and
 * started on first use: device 0, cuBLAS). NULL with a message when CUDA was asked for and the
 * plugin cannot be loaded or cannot start. */
const backend *device_backend(device_kind d, err_t *e);

/* Sets the precision of the matrix products for the rest of the process from --precision:
 * "fp32" (plain fp32 FMAs: the default, checked against the CPU) or "bf16" (on CUDA: cuBLAS
 * with bf16 tensor-core math and fp32 accumulation, fp32 storage; an error on the CPU). Call
 * after device_backend. */
int device_set_precision(device_kind d, const char *name, err_t *e);

/* "cpu" or "cuda", for provenance. */
const char *device_name(device_kind d);

#endif
