// emu_runtime: the CUDA emulator's failures, sticky error, launch limits, device memory and
// runtime API (cuda_runtime.h says what the emulator models and checks). Device memory is host
// memory from posix_memalign, tracked so that copies, sets and products can be checked against
// the allocations.
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>

#include "emu_internal.h"

// ---- failures and the sticky error ----------------------------------------------------------

const char *emu_running_kernel = "(no kernel)";

void emu_exit(void)
{
    fflush(stdout);
    fflush(stderr);
    _exit(70);
}

void emu_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cuda-emu: %s: ", emu_running_kernel);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    emu_exit();
}

static cudaError_t last_error = cudaSuccess;

cudaError_t emu_set_error(cudaError_t err) { return last_error = err; }

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

// ---- launch limits --------------------------------------------------------------------------

static std::map<const void *, int> smem_optin;  // kernel -> cudaFuncSetAttribute's limit
static std::mutex optin_lock;

enum { SMEM_DEFAULT = 48 * 1024, SMEM_OPTIN_MAX = 227 * 1024 };  // sm_80 163 KB, sm_90 227 KB

cudaError_t emu_func_set_attribute(const void *kernel, cudaFuncAttribute attr, int value)
{
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
        value > SMEM_OPTIN_MAX)
        return emu_set_error(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> lock(optin_lock);
    smem_optin[kernel] = value;
    return cudaSuccess;
}

size_t emu_smem_limit(const void *kernel)
{
    std::lock_guard<std::mutex> lock(optin_lock);
    auto it = smem_optin.find(kernel);
    return it != smem_optin.end() && it->second > SMEM_DEFAULT ? (size_t)it->second
                                                               : (size_t)SMEM_DEFAULT;
}

// ---- device memory --------------------------------------------------------------------------

static std::map<uintptr_t, size_t> allocations;  // start -> bytes, of every live cudaMalloc
static std::mutex memory_lock;

/* Whether [p, p + bytes) lies inside one allocation (inside = true) or touches none (false). */
static bool in_device_memory(const void *p, size_t bytes, bool *overlaps)
{
    std::lock_guard<std::mutex> lock(memory_lock);
    uintptr_t a = (uintptr_t)p, end = a + bytes;
    auto it = allocations.upper_bound(a);
    bool inside = false;
    *overlaps = false;
    if (it != allocations.begin()) {
        auto prev = std::prev(it);
        if (a < prev->first + prev->second) {
            *overlaps = true;
            inside = end <= prev->first + prev->second;
        }
    }
    if (it != allocations.end() && it->first < end) *overlaps = true, inside = false;
    return inside;
}

void emu_expect_device(const void *p, size_t bytes, const char *what)
{
    bool overlaps;
    if (!in_device_memory(p, bytes, &overlaps))
        emu_fail("%s: %zu bytes at %p are not inside one device allocation", what, bytes, p);
}

void emu_expect_host(const void *p, size_t bytes, const char *what)
{
    bool overlaps;
    in_device_memory(p, bytes, &overlaps);
    if (overlaps)
        emu_fail("%s: %zu bytes at %p are device memory, not host memory", what, bytes, p);
}

cudaError_t cudaMalloc(void **p, size_t bytes)
{
    void *m = nullptr;
    if (posix_memalign(&m, 256, bytes ? bytes : 1) != 0)
        return emu_set_error(cudaErrorMemoryAllocation);
    std::lock_guard<std::mutex> lock(memory_lock);
    allocations[(uintptr_t)m] = bytes ? bytes : 1;
    *p = m;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p)
{
    if (!p) return cudaSuccess;
    {
        std::lock_guard<std::mutex> lock(memory_lock);
        auto it = allocations.find((uintptr_t)p);
        if (it == allocations.end()) emu_fail("cudaFree(%p): not the start of an allocation", p);
        allocations.erase(it);
    }
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    if (bytes == 0) return cudaSuccess;
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    dst_dev ? emu_expect_device(dst, bytes, "cudaMemcpy destination")
            : emu_expect_host(dst, bytes, "cudaMemcpy destination");
    src_dev ? emu_expect_device(src, bytes, "cudaMemcpy source")
            : emu_expect_host(src, bytes, "cudaMemcpy source");
    memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemset(void *p, int value, size_t bytes)
{
    if (bytes == 0) return cudaSuccess;
    emu_expect_device(p, bytes, "cudaMemset");
    memset(p, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
    return device == 0 ? cudaSuccess : emu_set_error(cudaErrorInvalidDevice);
}

cudaError_t cudaRuntimeGetVersion(int *version)
{
    *version = 0;
    return cudaSuccess;
}

const char *cudaGetErrorString(cudaError_t err)
{
    switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    }
    return "unrecognized error code";
}
