/* emu_internal: what the CUDA emulator's parts share (not for kernels): emu_threads.cpp (the
 * scheduler: fibers, barriers, shuffles, launches), emu_runtime.cpp (failures, the sticky error,
 * launch limits, device memory, the runtime API), emu_streams.cpp (streams, events, pinned
 * memory, capture and graphs) and emu_cublas.cpp (the cuBLAS product). */
#ifndef DLM_CUDAEMU_INTERNAL_H
#define DLM_CUDAEMU_INTERNAL_H

#include <cstddef>
#include <functional>

#include "cuda_runtime.h"

/* the kernel running now, named in messages ("(no kernel)" between launches) */
extern const char *emu_running_kernel;

/* Ends the process with status 70 at once: from inside a kernel's thread, atexit handlers
 * (LeakSanitizer's among them, which would turn the status into its own) are no use. */
[[noreturn]] void emu_exit(void);

/* A kernel or API misuse a GPU would hang on, fault on or leave undefined:
 * "cuda-emu: KERNEL: message" on stderr, exit 70. */
[[noreturn]] void emu_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Makes err the error cudaGetLastError returns next. @return err */
cudaError_t emu_set_error(cudaError_t err);

/* The dynamic shared memory a launch of `kernel` may use: 48 KB, or more after
 * cudaFuncSetAttribute. */
size_t emu_smem_limit(const void *kernel);

/* Fail unless [p, p + bytes) lies inside one cudaMalloc allocation (device) or touches none
 * (host); `what` names the operand in the message. */
void emu_expect_device(const void *p, size_t bytes, const char *what);
void emu_expect_host(const void *p, size_t bytes, const char *what);

/* Whether [p, p + bytes) lies inside one cudaHostAlloc allocation. */
bool emu_pinned(const void *p, size_t bytes);

/* Whether stream is being captured. */
bool emu_stream_capturing(cudaStream_t stream);

/* Queues op on stream: runs it now, or records it in the capture when stream is being
 * captured (key: the kernel of a launch, NULL for other work; graph updates compare keys).
 * Work for another stream while a capture is active breaks the capture and returns
 * cudaErrorStreamCaptureImplicit (also set as the error cudaGetLastError returns). */
cudaError_t emu_enqueue(cudaStream_t stream, const void *key, std::function<void()> op);

/* For a call that may wait for the device or allocate (`api` names it): while this thread
 * captures, breaks the capture and returns cudaErrorStreamCaptureUnsupported; else
 * cudaSuccess. */
cudaError_t emu_capture_forbids(const char *api);

#endif
