// emu_runtime: the CUDA emulator's failures, sticky error, launch limits, device and pinned
// memory, copies and sets, and the device API (cuda_runtime.h says what the emulator models and
// checks). Device memory is host memory from posix_memalign, tracked so that copies, sets and
// products can be checked against the allocations; so is pinned host memory (cudaHostAlloc),
// the only host memory a captured copy may use.
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

typedef std::map<uintptr_t, size_t> ranges;  // start -> bytes
static ranges device_allocations, pinned_allocations;
static std::mutex memory_lock;

/* Whether [p, p + bytes) lies inside one of the ranges (inside = true) or touches none
 * (false). */
static bool in_ranges(const ranges &r, const void *p, size_t bytes, bool *overlaps)
{
    std::lock_guard<std::mutex> lock(memory_lock);
    uintptr_t a = (uintptr_t)p, end = a + bytes;
    auto it = r.upper_bound(a);
    bool inside = false;
    *overlaps = false;
    if (it != r.begin()) {
        auto prev = std::prev(it);
        if (a < prev->first + prev->second) {
            *overlaps = true;
            inside = end <= prev->first + prev->second;
        }
    }
    if (it != r.end() && it->first < end) *overlaps = true, inside = false;
    return inside;
}

void emu_expect_device(const void *p, size_t bytes, const char *what)
{
    bool overlaps;
    if (!in_ranges(device_allocations, p, bytes, &overlaps))
        emu_fail("%s: %zu bytes at %p are not inside one device allocation", what, bytes, p);
}

void emu_expect_host(const void *p, size_t bytes, const char *what)
{
    bool overlaps;
    in_ranges(device_allocations, p, bytes, &overlaps);
    if (overlaps)
        emu_fail("%s: %zu bytes at %p are device memory, not host memory", what, bytes, p);
}

bool emu_pinned(const void *p, size_t bytes)
{
    bool overlaps;
    return in_ranges(pinned_allocations, p, bytes, &overlaps);
}

/* 256-byte aligned memory of bytes (at least 1), recorded in r */
static cudaError_t tracked_alloc(ranges &r, void **p, size_t bytes)
{
    void *m = nullptr;
    if (posix_memalign(&m, 256, bytes ? bytes : 1) != 0)
        return emu_set_error(cudaErrorMemoryAllocation);
    std::lock_guard<std::mutex> lock(memory_lock);
    r[(uintptr_t)m] = bytes ? bytes : 1;
    *p = m;
    return cudaSuccess;
}

static void tracked_free(ranges &r, void *p, const char *api)
{
    {
        std::lock_guard<std::mutex> lock(memory_lock);
        auto it = r.find((uintptr_t)p);
        if (it == r.end()) emu_fail("%s(%p): not the start of an allocation", api, p);
        r.erase(it);
    }
    free(p);
}

cudaError_t cudaMalloc(void **p, size_t bytes)
{
    if (cudaError_t err = emu_capture_forbids("cudaMalloc")) return err;
    return tracked_alloc(device_allocations, p, bytes);
}

cudaError_t cudaFree(void *p)
{
    if (!p) return cudaSuccess;
    if (cudaError_t err = emu_capture_forbids("cudaFree")) return err;
    tracked_free(device_allocations, p, "cudaFree");
    return cudaSuccess;
}

cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned)
{
    if (cudaError_t err = emu_capture_forbids("cudaHostAlloc")) return err;
    return tracked_alloc(pinned_allocations, p, bytes);
}

cudaError_t cudaFreeHost(void *p)
{
    if (!p) return cudaSuccess;
    if (cudaError_t err = emu_capture_forbids("cudaFreeHost")) return err;
    tracked_free(pinned_allocations, p, "cudaFreeHost");
    return cudaSuccess;
}

/* Checks the two sides of a copy against the allocations (`api` names it in messages); the
 * host side of a captured copy must be pinned. @return cudaSuccess or the capture's error */
static cudaError_t check_copy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                              const char *api, bool captured)
{
    char what[64];
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    snprintf(what, sizeof what, "%s destination", api);
    dst_dev ? emu_expect_device(dst, bytes, what) : emu_expect_host(dst, bytes, what);
    snprintf(what, sizeof what, "%s source", api);
    src_dev ? emu_expect_device(src, bytes, what) : emu_expect_host(src, bytes, what);
    bool pageable = (!dst_dev && !emu_pinned(dst, bytes)) || (!src_dev && !emu_pinned(src, bytes));
    if (captured && pageable)
        return emu_capture_forbids("a captured copy of pageable host memory");
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    if (cudaError_t err = emu_capture_forbids("cudaMemcpy")) return err;
    if (bytes == 0) return cudaSuccess;
    check_copy(dst, src, bytes, kind, "cudaMemcpy", false);
    memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream)
{
    if (bytes == 0) return cudaSuccess;
    if (cudaError_t err = check_copy(dst, src, bytes, kind, "cudaMemcpyAsync",
                                     emu_stream_capturing(stream)))
        return err;
    return emu_enqueue(stream, nullptr, [=] { memmove(dst, src, bytes); });
}

cudaError_t cudaMemset(void *p, int value, size_t bytes)
{
    if (cudaError_t err = emu_capture_forbids("cudaMemset")) return err;
    if (bytes == 0) return cudaSuccess;
    emu_expect_device(p, bytes, "cudaMemset");
    memset(p, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t stream)
{
    if (bytes == 0) return cudaSuccess;
    emu_expect_device(p, bytes, "cudaMemsetAsync");
    return emu_enqueue(stream, nullptr, [=] { memset(p, value, bytes); });
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
    case cudaErrorStreamCaptureUnsupported:
        return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
        return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit:
        return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorGraphExecUpdateFailure:
        return "the graph update was not performed because it included changes which violated "
               "constraints specific to instantiated graph update";
    }
    return "unrecognized error code";
}
