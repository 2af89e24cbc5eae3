/* cuda_runtime.h of the CUDA emulator (tests/cudaemu): the part of the CUDA runtime and device
 * language that kernels/ uses, for g++ on the CPU, so the kernels run without a GPU.
 *
 * What it is for: running every kernel's own code (indexing, shared memory, barriers, warp
 * shuffles, reductions, launch geometry) against the CPU backend in CI, with ASan watching every
 * device buffer. What it is not: a timing model or a check of the GPU's floating-point library
 * (expf here is glibc's), of races between blocks running at once, or of the hardware's limits
 * beyond those named below. Results on the emulator are labelled "[cuda-emu]", never as a GPU's.
 *
 * How a kernel runs: the .cu files of kernels/ pass through rewrite.sh (a launch
 * `k<<<g, b, smem>>>(args)` becomes `emu_launch("k", g, b, smem)(k, args)`, `extern __shared__
 * T s[]` a pointer to the block's dynamic shared memory). Blocks run one after another; within a
 * block every thread is a fiber with its own stack and runs until it reaches a barrier
 * (__syncthreads, __syncwarp, a shuffle), where it yields. __shared__ variables are static: one
 * copy, used by the block that is running. Dynamic shared memory is allocated at the exact size
 * asked for and filled with NaN bytes before each block.
 *
 * Schedule: by default (EMU_SCHEDULE=shuffle) one warp at a time runs, chosen by a random
 * priority that is redrawn now and then, its lanes in a shuffled order: a warp runs ahead of the
 * others until a barrier stops it, so a missing barrier shows as a wrong answer instead of
 * hiding behind one fixed order. The blocks of a launch run in a shuffled order too, so a block
 * that reads what another block of the launch writes gets a wrong answer. The seed is fixed
 * (EMU_SEED=N picks another); EMU_SCHEDULE=forward|reverse runs every warp each round and the
 * blocks in order, or both backwards.
 *
 * Checked, with a message naming the kernel's file and line where known (exit 70):
 *   __syncthreads reached at two different places by one block's threads (divergent barrier);
 *   a deadlock (every live thread waits at a barrier that cannot complete);
 *   a warp shuffle or __syncwarp with a lane missing (exited, or beyond blockDim) or a mask
 *   other than the full warp;
 *   launch geometry: 0 or more than 1024 threads a block, a grid dimension of 0 or over the
 *   limits, dynamic shared memory over 48 KB without cudaFuncSetAttribute or over 227 KB
 *   (these return cudaErrorInvalidConfiguration through cudaGetLastError, as a GPU does);
 *   cudaMemcpy/cudaMemset/cublasGemmEx ranges that are not inside one cudaMalloc allocation
 *   on the device side, or that are inside one on the host side.
 *
 * Streams and graphs (emu_streams.cpp): work queued on a stream runs at once, in call order,
 * except while the stream is captured (cudaStreamBeginCapture): then launches, async copies,
 * sets and products are recorded, with the kernel arguments and product scalars of the call,
 * and run in order at each cudaGraphLaunch; an async copy from host memory reads it when the
 * graph runs, as on a GPU. The capture rules of cudaStreamCaptureModeThreadLocal are enforced
 * as a GPU does, by breaking the capture (the call returns cudaErrorStreamCaptureUnsupported
 * or ...Implicit, cudaStreamEndCapture cudaErrorStreamCaptureInvalidated): a call that may
 * wait for the device or allocate (cudaMalloc, cudaFree, cudaMemcpy, cudaMemset,
 * cudaStreamSynchronize, cudaEventSynchronize, cudaHostAlloc, cudaFreeHost), work queued on
 * another stream, an event recorded, and (stricter than a GPU) an async copy from or to host
 * memory that is not from cudaHostAlloc. cudaGraphExecUpdate succeeds when the new graph has
 * the same sequence of node kinds and kernels, and then takes all its parameters. With EMU_STATS
 * set, a process that launched graphs says how many on stderr at exit.
 * x86-64 only (the fiber switch is a few lines of assembly in emu_threads.cpp). */
#ifndef DLM_CUDAEMU_RUNTIME_H
#define DLM_CUDAEMU_RUNTIME_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- the device language --------------------------------------------------------------------

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
    float x, y, z, w;
};
static inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

/* the running thread's coordinates, set by the scheduler before it resumes a thread */
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

// IEEE operations with the rounding mode in their name: on the CPU plain operations (the
// emulator is compiled with -ffp-contract=off, so nothing is fused behind their back)
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dsub_rn(double a, double b) { return a - b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __ddiv_rn(double a, double b) { return a / b; }

// CUDA's integer and floating min/max overloads
#define EMU_MINMAX(T)                                                                          \
    static inline T min(T a, T b) { return b < a ? b : a; }                                    \
    static inline T max(T a, T b) { return a < b ? b : a; }
EMU_MINMAX(int)
EMU_MINMAX(unsigned)
EMU_MINMAX(long long)
EMU_MINMAX(unsigned long long)
EMU_MINMAX(float)
EMU_MINMAX(double)
#undef EMU_MINMAX

/* block barrier; `file`, `line`: where it is, to name a divergent or deadlocked barrier */
void emu_syncthreads(const char *file, int line);
#define __syncthreads() emu_syncthreads(__FILE__, __LINE__)

/* warp barrier over the lanes in mask (the full warp is the only mask the emulator accepts) */
void emu_syncwarp(unsigned mask, const char *file, int line);
#define __syncwarp(...) emu_syncwarp(emu_mask_or_full(__VA_ARGS__), __FILE__, __LINE__)
static inline unsigned emu_mask_or_full(unsigned mask = 0xffffffffu) { return mask; }

/* lane exchange: every lane of the warp publishes `bits`, gets lane (own ^ lane_mask)'s */
uint64_t emu_shfl_xor(unsigned mask, uint64_t bits, int lane_mask, int width, const char *file,
                      int line);

template <typename T>
T emu_shfl_xor_sync(const char *file, int line, unsigned mask, T v, int lane_mask, int width = 32)
{
    static_assert(sizeof(T) <= sizeof(uint64_t), "shuffles move at most 8 bytes");
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof v);
    bits = emu_shfl_xor(mask, bits, lane_mask, width, file, line);
    T r;
    memcpy(&r, &bits, sizeof r);
    return r;
}
#define __shfl_xor_sync(...) emu_shfl_xor_sync(__FILE__, __LINE__, __VA_ARGS__)

/* the running block's dynamic shared memory (the launch's third argument, in bytes) */
void *emu_dynamic_shared(void);

// ---- the runtime API ------------------------------------------------------------------------

enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorStreamCaptureImplicit = 906,
    cudaErrorGraphExecUpdateFailure = 910,
};
typedef cudaError_t cudaError;
enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
typedef struct emu_stream *cudaStream_t;  // nullptr: the legacy default stream
typedef struct emu_event *cudaEvent_t;
typedef struct emu_graph *cudaGraph_t;
typedef struct emu_graph *cudaGraphExec_t;
enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
};
struct cudaGraphExecUpdateResultInfo {
    int result;
    void *errorNode, *errorFromNode;
};
enum : unsigned { cudaHostAllocDefault = 0, cudaEventDisableTiming = 2 };

cudaError_t cudaMalloc(void **p, size_t bytes);
template <typename T> cudaError_t cudaMalloc(T **p, size_t bytes)
{
    return cudaMalloc(reinterpret_cast<void **>(p), bytes);
}
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemset(void *p, int value, size_t bytes);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream);
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t stream);
cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned flags);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned flags);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
                                 unsigned long long flags = 0);
cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t graph,
                                cudaGraphExecUpdateResultInfo *info);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaRuntimeGetVersion(int *version);
cudaError_t cudaGetLastError(void);
const char *cudaGetErrorString(cudaError_t err);
cudaError_t emu_func_set_attribute(const void *kernel, cudaFuncAttribute attr, int value);

template <typename F> cudaError_t cudaFuncSetAttribute(F *kernel, cudaFuncAttribute attr, int value)
{
    return emu_func_set_attribute(reinterpret_cast<const void *>(kernel), attr, value);
}

// ---- launches -------------------------------------------------------------------------------

/* A launch of a grid running body(arg) in every thread: checked now (a bad configuration sets
 * the error cudaGetLastError returns and queues nothing), then run block by block, or recorded
 * when `stream` is being captured. `kernel` identifies the kernel (cudaFuncSetAttribute's
 * limit, graph updates), `name` names it in messages. */
void emu_submit_grid(const char *name, dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                     const void *kernel, void (*body)(void *), std::shared_ptr<void> arg);

/* `k<<<grid, block, smem, stream>>>(args)` after rewrite.sh: emu_launch("k", grid, block,
 * smem, stream)(k, args). The arguments are converted to the kernel's parameter types once, at
 * the launch, as CUDA copies them; every thread (of every replay) calls the kernel with that
 * copy. */
struct emu_launch {
    const char *name;
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
    emu_launch(const char *n, dim3 g, dim3 b, size_t s = 0, cudaStream_t st = nullptr)
        : name(n), grid(g), block(b), smem(s), stream(st)
    {
    }
    template <typename... P, typename... A> void operator()(void (*kernel)(P...), A &&...args)
    {
        struct call {
            void (*kernel)(P...);
            std::tuple<std::decay_t<P>...> args;
            static void run(void *self)
            {
                call *c = static_cast<call *>(self);
                std::apply(c->kernel, c->args);
            }
        };
        auto c = std::make_shared<call>(
            call{kernel, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)});
        emu_submit_grid(name, grid, block, smem, stream, reinterpret_cast<const void *>(kernel),
                        call::run, c);
    }
};

#endif
