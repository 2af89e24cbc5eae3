/* device: device selection (see device.h). The only place besides the backend registry that
 * knows whether CUDA was compiled in. */
#include "device.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#ifdef HAVE_CUDA
#include "../kernels/backend_cuda.cuh"
#include "../kernels/cuda_info.cuh"
#endif

static int gpus_visible(void)
{
#ifdef HAVE_CUDA
    return cuda_device_count();
#else
    return 0;
#endif
}

int device_parse(const char *name, device_kind *out, err_t *e)
{
    if (strcmp(name, "cpu") == 0) {
        *out = DEVICE_CPU;
    } else if (strcmp(name, "auto") == 0) {
        *out = gpus_visible() > 0 ? DEVICE_CUDA : DEVICE_CPU;
    } else if (strcmp(name, "cuda") == 0) {
#ifndef HAVE_CUDA
        return err_set(e, "--device cuda: this build has no CUDA (rebuild with nvcc on PATH)");
#endif
        if (gpus_visible() == 0) return err_set(e, "--device cuda: no CUDA device is visible");
        *out = DEVICE_CUDA;
    } else {
        return err_set(e, "unknown device '%s' (expected auto, cpu or cuda)", name);
    }
    return 0;
}

const backend *device_backend(device_kind d, err_t *e)
{
    if (d == DEVICE_CPU) return &backend_cpu;
#ifdef HAVE_CUDA
    const backend *be = backend_cuda();
    if (!be) err_set(e, "--device cuda: the CUDA backend could not start (see the message above)");
    return be;
#else
    err_set(e, "--device cuda: this build has no CUDA (rebuild with nvcc on PATH)");
    return NULL;
#endif
}

int device_set_precision(device_kind d, const char *name, err_t *e)
{
    bool bf16 = strcmp(name, "bf16") == 0;
    if (!bf16 && strcmp(name, "fp32") != 0)
        return err_set(e, "unknown precision '%s' (expected fp32 or bf16)", name);
    if (bf16 && d != DEVICE_CUDA)
        return err_set(e, "--precision bf16 needs --device cuda (the CPU backend computes in fp32)");
#ifdef HAVE_CUDA
    if (d == DEVICE_CUDA) backend_cuda_set_bf16(bf16);
#endif
    return 0;
}

const char *device_name(device_kind d) { return d == DEVICE_CUDA ? "cuda" : "cpu"; }

const char *device_build_info(void)
{
#ifdef HAVE_CUDA
    static char buf[160];
    char versions[128];
    cuda_describe_build(versions, sizeof versions);
    snprintf(buf, sizeof buf, "%s, %d devices", versions, cuda_device_count());
    return buf;
#else
    return "off";
#endif
}
