/* device_plugin: the CUDA plugin loader (see device_plugin.h). */
#include "device_plugin.h"

#include <stdbool.h>
#include <stdio.h>

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

const struct cuda_plugin *device_plugin(err_t *e)
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
#else
const struct cuda_plugin *device_plugin(err_t *e)
{
    err_set(e, "this build has no CUDA (rebuild with nvcc on PATH)");
    return NULL;
}
#endif

const char *device_build_info(void)
{
#ifdef HAVE_CUDA
    static char buf[PATH_MAX + 200];
    err_t why = {0};
    const struct cuda_plugin *p = device_plugin(&why);
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
