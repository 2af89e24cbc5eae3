/* device: device selection (see device.h). With lib/device_plugin.c, the only place in lib/ that
 * knows whether CUDA was compiled in. */
#include "device.h"

#include <stdbool.h>
#include <string.h>

#include "device_plugin.h"

#ifdef HAVE_CUDA
#include "../kernels/cuda_plugin.cuh"
#endif

static int gpus_visible(void)
{
#ifdef HAVE_CUDA
    err_t ignored = {0};
    const struct cuda_plugin *p = device_plugin(&ignored);
    return p ? p->device_count() : 0;
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
#else
        err_t why = {0};
        if (!device_plugin(&why))
            return err_set(e, "--device cuda: cannot load the CUDA backend: %s", why.msg);
        if (gpus_visible() == 0) return err_set(e, "--device cuda: no CUDA device is visible");
        *out = DEVICE_CUDA;
#endif
    } else {
        return err_set(e, "unknown device '%s' (expected auto, cpu or cuda)", name);
    }
    return 0;
}

const backend *device_backend(device_kind d, err_t *e)
{
    if (d == DEVICE_CPU) return &backend_cpu;
#ifdef HAVE_CUDA
    err_t why = {0};
    const struct cuda_plugin *p = device_plugin(&why);
    if (!p) {
        err_set(e, "--device cuda: cannot load the CUDA backend: %s", why.msg);
        return NULL;
    }
    const backend *be = p->get_backend();
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
    err_t ignored = {0};
    const struct cuda_plugin *p = d == DEVICE_CUDA ? device_plugin(&ignored) : NULL;
    if (p) p->set_bf16(bf16);  /* a CUDA device was parsed, so the plugin is loaded */
#endif
    return 0;
}

const char *device_name(device_kind d) { return d == DEVICE_CUDA ? "cuda" : "cpu"; }
