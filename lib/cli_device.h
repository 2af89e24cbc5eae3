/* cli_device: a model tool's --device (cpu, cuda, auto) and --precision (fp32, bf16) options,
 * resolved into the backend the tool runs on. Apart from lib/cli.c so that the tools without a
 * model link neither the CPU backend nor BLAS.
 * Ownership: the backend tables are static. Errors: cli_device_open dies (exit 2 or 1). */
#ifndef DLM_CLI_DEVICE_H
#define DLM_CLI_DEVICE_H

#include "backend.h"
#include "device.h"

/* A model tool's --device (cpu, cuda, auto) and --precision (fp32, bf16) options. */
struct cli_device {
    const char *device;     /* --device value; the tool sets its default ("cpu") */
    const char *precision;  /* --precision value; NULL = fp32 */
    /* set by cli_device_open: */
    device_kind kind;
    const backend *be;
    char label[16];         /* for provenance: "cpu", "cuda" or "cuda/bf16" */
};

/* Resolves d->device and d->precision (lib/device.h): starts the device and sets the precision
 * of the matrix products. An unknown or unavailable choice (this build has no CUDA, no GPU is
 * visible, bf16 on the CPU) dies with exit 2 naming it; a GPU that fails to start, with exit 1. */
void cli_device_open(struct cli_device *d);

#endif
