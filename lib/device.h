/* device: the --device option (auto|cpu|cuda) and what the build supports.
 * Ownership: returns static strings; nothing allocated. Holds one of the two #ifdef HAVE_CUDA.
 * Errors: device_parse returns ERR_FAIL with a message for an unknown or unavailable device. */
#ifndef DLM_DEVICE_H
#define DLM_DEVICE_H

#include "err.h"

typedef enum { DEVICE_CPU, DEVICE_CUDA } device_kind;

/* Parses "auto" (CUDA when built with it and a GPU is present, else CPU), "cpu" or "cuda"
 * (an error when this build has no CUDA or no GPU is visible). */
int device_parse(const char *name, device_kind *out, err_t *e);

/* "cpu" or "cuda", for provenance. */
const char *device_name(device_kind d);

/* One line describing the CUDA side of this build, e.g. "off" or "CUDA runtime 13.0, cuBLAS …,
 * 0 devices". */
const char *device_build_info(void);

#endif
