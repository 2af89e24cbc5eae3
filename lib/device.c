/* device: device selection (see device.h). The only place in lib/ that knows whether CUDA was
 * compiled in; the CUDA backend itself is a plugin (kernels/cuda_plugin.cuh) loaded here on first
 * use, so a process that stays on the CPU never loads cuBLAS or the CUDA runtime. */
#include "device.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#ifdef HAVE_CUDA
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "../kernels/cuda_plugin.cuh"
#include "version.h"

/* Tries one path; NULL with the reason in e. */
static const struct cuda_plugin *plugin_open(const char *path, err_t *e)
{
    void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!so) {
        err_set(e, "%s", dlerror());
        return NULL;
    }
    const struct cuda_plugin *p = dlsym(so, CUDA_PLUGIN_SYMBOL);
    if (!p) {
        err_set(e, "%s: no %s table", path, CUDA_PLUGIN_SYMBOL);
    } else if (p->abi != CUDA_PLUGIN_ABI || p->backend_size != sizeof(backend)) {
        err_set(e, "%s comes from another dlmkit build (plugin ABI %d, expected %d); rebuild it",
                path, p->abi, CUDA_PLUGIN_ABI);
    } else {
        return p;
    }
    dlclose(so);
    return NULL;
}

/* The plugin, loaded once: from $DLMKIT_CUDA_PLUGIN when set, else from lib/dlmkit/ beside the
 * executable's bin/ (make install), else from the build tree that made this library. */
static const struct cuda_plugin *cuda_plugin(err_t *e)
{
    static const struct cuda_plugin *loaded;
    static err_t failure;
    static bool tried;
    if (tried) {
        if (!loaded) *e = failure;
        return loaded;
    }
    tried = true;
    const char *env = getenv("DLMKIT_CUDA_PLUGIN");
    char exe[PATH_MAX], installed[PATH_MAX + 64] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        const char *prefix = dirname(dirname(exe)); /* PREFIX of PREFIX/bin/tool */
        snprintf(installed, sizeof installed, "%s/lib/dlmkit/%s", prefix, CUDA_PLUGIN_FILE);
    }
    const char *path = env && *env                                   ? env
                       : *installed && access(installed, F_OK) == 0 ? installed
                                                                    : DLM_CUDA_PLUGIN;
    loaded = plugin_open(path, &failure);
    if (!loaded) *e = failure;
    return loaded;
}
#endif

static int gpus_visible(void)
{
#ifdef HAVE_CUDA
    err_t ignored = {0};
    const struct cuda_plugin *p = cuda_plugin(&ignored);
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
        if (!cuda_plugin(&why))
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
    const struct cuda_plugin *p = cuda_plugin(&why);
    if (!p) {
        err_set(e, "--device cuda: cannot load the CUDA backend: %s", why.msg);
        return NULL;
    }
    const backend *be = p->backend();
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
    const struct cuda_plugin *p = d == DEVICE_CUDA ? cuda_plugin(&ignored) : NULL;
    if (p) p->set_bf16(bf16);  /* a CUDA device was parsed, so the plugin is loaded */
#endif
    return 0;
}

const char *device_name(device_kind d) { return d == DEVICE_CUDA ? "cuda" : "cpu"; }

const char *device_build_info(void)
{
#ifdef HAVE_CUDA
    static char buf[PATH_MAX + 200];
    err_t why = {0};
    const struct cuda_plugin *p = cuda_plugin(&why);
    if (!p) {
        snprintf(buf, sizeof buf, "plugin not loadable: %s", why.msg);
        return buf;
    }
    char versions[128];
    p->describe_build(versions, sizeof versions);
    snprintf(buf, sizeof buf, "%s, %d devices", versions, p->device_count());
    return buf;
#else
    return "off";
#endif
}
