// backend_cuda: the CUDA implementation of the op interface in lib/backend.h. Memory and
// transfers are here; the ops live in one file per family (matmul, pointwise, norm,
// attention), each checked against lib/backend_cpu.c by tests/kernels/test_ops.c; the training
// ops in backward.cu and optim.cu, checked by tests/kernels/test_train_ops.c.
// Device 0 only; every op is queued on one stream (cu_stream), so ops run in call order and
// to_host waits for them. run_step is graph.cu's: a step of ops replayed as a CUDA graph.
#include "attention.cuh"
#include "backward.cuh"
#include "backend_cuda.cuh"
#include "cuda_common.cuh"
#include "cuda_info.cuh"
#include "draw.cuh"
#include "graph.cuh"
#include "matmul.cuh"
#include "norm.cuh"
#include "optim.cuh"
#include "pointwise.cuh"
#include "sedd_sampling.cuh"

cudaStream_t cu_stream;

static void *cuda_alloc(size_t bytes)
{
    if (cu_graph_capturing()) {  // (cudaMalloc would break the capture with an error message)
        cu_graph_break();
        return nullptr;
    }
    void *p = nullptr;
    // 256-byte aligned by cudaMalloc; 0 bytes still gives a distinct pointer, as on the CPU
    CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 256), nullptr);
    return p;
}

static void cuda_free(void *p)
{
    if (!p) return;
    if (cu_graph_capturing()) return cu_graph_defer_free(p);
    cudaError_t err = cudaFree(p);
    if (err != cudaSuccess) fprintf(stderr, "cuda: cudaFree: %s\n", cudaGetErrorString(err));
}

// The message goes straight into e (not through err_set): libcore_cuda.a is linked after
// libcore.a, so it cannot call into it.
static int copy_failed(const char *what, size_t bytes, const char *why, err_t *e)
{
    fprintf(stderr, "cuda: %s of %zu bytes: %s\n", what, bytes, why);
    if (e) snprintf(e->msg, sizeof e->msg, "CUDA %s of %zu bytes failed: %s", what, bytes, why);
    return ERR_FAIL;
}

// Inside a captured step the source is staged in pinned memory first: the graph's copy reads
// it when the graph runs, after src may have changed.
static int cuda_to_device(void *dst, const void *src, size_t bytes, err_t *e)
{
    if (!bytes) return 0;
    if (cu_graph_capturing() && !(src = cu_graph_stage(src, bytes)))
        return copy_failed("upload", bytes, "the step's staging memory is full", e);
    cudaError_t err = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cu_stream);
    return err == cudaSuccess ? 0 : copy_failed("upload", bytes, cudaGetErrorString(err), e);
}

static int cuda_to_host(void *dst, const void *src, size_t bytes, err_t *e)
{
    if (!bytes) return 0;
    if (cu_graph_capturing())
        return copy_failed("download", bytes, "a captured step cannot wait for its results", e);
    cudaError_t err = cu_download(dst, src, bytes);
    return err == cudaSuccess ? 0 : copy_failed("download", bytes, cudaGetErrorString(err), e);
}

// zero and copy are queued on cu_stream, in order with the ops around them
static void cuda_zero(void *p, size_t bytes)
{
    if (!bytes) return;
    cudaError_t err = cudaMemsetAsync(p, 0, bytes, cu_stream);
    if (err != cudaSuccess)
        fprintf(stderr, "cuda: cudaMemset of %zu bytes: %s\n", bytes, cudaGetErrorString(err));
}

static void cuda_copy_within(void *dst, const void *src, size_t bytes)
{
    if (!bytes) return;
    cudaError_t err = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cu_stream);
    if (err != cudaSuccess)
        fprintf(stderr, "cuda: cudaMemcpy of %zu bytes on the device: %s\n", bytes,
                cudaGetErrorString(err));
}

static backend make_table(void)
{
    backend t = {};
    t.name = "cuda";
    t.alloc = cuda_alloc;
    t.free = cuda_free;
    t.to_device = cuda_to_device;
    t.to_host = cuda_to_host;
    t.zero = cuda_zero;
    t.copy = cuda_copy_within;
    t.matmul = cu_matmul;
    t.matmul_rows = cu_matmul_rows;
    t.layernorm = cu_layernorm;
    t.gelu_tanh = cu_gelu_tanh;
    t.silu = cu_silu;
    t.add = cu_add;
    t.modulate = cu_modulate;
    t.gated_add = cu_gated_add;
    t.embed = cu_embed;
    t.rotary = cu_rotary;
    t.kv_store = cu_kv_store;
    t.attention = cu_attention;
    t.softmax = cu_softmax;
    t.log_softmax = cu_log_softmax;
    t.log_softmax_pick = cu_log_softmax_pick;
    t.draw_rows = cu_draw_rows;
    t.matmul_backward = cu_matmul_backward;
    t.layernorm_backward = cu_layernorm_backward;
    t.gelu_tanh_backward = cu_gelu_tanh_backward;
    t.silu_backward = cu_silu_backward;
    t.modulate_backward = cu_modulate_backward;
    t.gated_add_backward = cu_gated_add_backward;
    t.embed_backward = cu_embed_backward;
    t.rotary_backward = cu_rotary_backward;
    t.kv_store_backward = cu_kv_store_backward;
    t.attention_backward = cu_attention_backward;
    t.cross_entropy = cu_cross_entropy;
    t.sumsq = cu_sumsq;
    t.scale = cu_scale;
    t.adamw = cu_adamw;
    t.ema = cu_ema;
    t.sedd_finish = cu_sedd_finish;
    t.sedd_project = cu_sedd_project;
    t.sedd_step = cu_sedd_step;
    t.sedd_score_entropy = cu_sedd_score_entropy;
    t.ids_from_tokens = cu_ids_from_tokens;
    t.run_step = cu_graph_run;
    return t;
}

static const backend table = make_table();

extern "C" void backend_cuda_set_bf16(int bf16) { cu_matmul_set_bf16(bf16); }

extern "C" const backend *backend_cuda(void)
{
    static int state;  // 0 untried, 1 ready, -1 unavailable
    if (state == 0) {
        state = -1;
        if (cuda_device_count() > 0 && cudaSetDevice(0) == cudaSuccess &&
            cudaStreamCreate(&cu_stream) == cudaSuccess && cu_matmul_init() == 0)
            state = 1;
    }
    return state == 1 ? &table : nullptr;
}
