// graph: run_step as a CUDA graph (see graph.cuh). A step is captured from cu_stream in
// thread-local mode (so any call that would wait for the device, or allocate, breaks the
// capture instead of running), then either updates the executable graph of the step before
// (cudaGraphExecUpdate: same topology, new kernel arguments and copy addresses) or is
// instantiated anew, and launched. The launch returns at once: the host captures step k + 1
// while the device runs step k. The data a step uploads is staged in one of two pinned buffers,
// alternating, each reused only after the launch that read it has run (an event).
// A step that allocates or frees device memory (the first step of a run, whose buffers are
// made then) cannot be captured: the capture is dropped and the step queued op by op, and the
// next step is captured again; so is a step whose capture the runtime refuses. Graphs are
// given up, with a message, when two captures in a row fail, or when the runtime refuses to
// begin one, instantiate it or launch it.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cuda_common.cuh"
#include "graph.cuh"

enum graph_mode { GRAPHS_OFF, GRAPHS_ON, GRAPHS_REQUIRED };

// bytes each staging buffer holds: a sampling step uploads a few KB (ids, sigma features)
enum : size_t { STAGE_BYTES = (size_t)4 << 20 };

struct stage {
    char *buf;          // pinned host memory
    size_t used;
    cudaEvent_t read;   // recorded after the last launch that reads buf
};

static struct {
    bool capturing, broken, given_up;
    int broken_in_a_row;       // captures broken by their step, one after another
    cudaGraphExec_t exec;
    stage stages[2];
    int cur;                   // the stage the step being captured fills
    std::vector<void *> frees; // device memory the step being captured freed
} g;

static graph_mode mode(void)
{
    static int m = -1;
    if (m < 0) {
        const char *s = getenv("DLM_CUDA_GRAPHS");
        if (!s || !strcmp(s, "1")) {
            m = GRAPHS_ON;
        } else if (!strcmp(s, "0")) {
            m = GRAPHS_OFF;
        } else if (!strcmp(s, "require")) {
            m = GRAPHS_REQUIRED;
        } else {
            fprintf(stderr, "cuda: DLM_CUDA_GRAPHS=%s: expected 0, 1 or require; using 1\n", s);
            m = GRAPHS_ON;
        }
    }
    return (graph_mode)m;
}

bool cu_graph_capturing(void) { return g.capturing; }

void cu_graph_break(void) { g.broken = true; }

void cu_graph_defer_free(void *p)
{
    g.broken = true;
    g.frees.push_back(p);
}

const void *cu_graph_stage(const void *src, size_t bytes)
{
    stage *s = &g.stages[g.cur];
    size_t at = (s->used + 255) & ~(size_t)255;
    if (bytes > STAGE_BYTES - at) {
        g.broken = true;
        return nullptr;
    }
    memcpy(s->buf + at, src, bytes);
    s->used = at + bytes;
    return s->buf + at;
}

static bool stages_ready(void)
{
    for (stage &s : g.stages) {
        if (s.buf) continue;
        void *p = nullptr;
        if (cudaHostAlloc(&p, STAGE_BYTES, cudaHostAllocDefault) != cudaSuccess) return false;
        s.buf = static_cast<char *>(p);
        if (cudaEventCreateWithFlags(&s.read, cudaEventDisableTiming) != cudaSuccess) return false;
    }
    return true;
}

// The step, which has not run, queued op by op; when `why` is not NULL, graphs are given up for
// the rest of the process (a message says why, once), or with DLM_CUDA_GRAPHS=require that is
// an error instead.
static int run_ops(const char *why, cudaError_t err, int (*enqueue)(void *, err_t *), void *ctx,
                   err_t *e)
{
    if (!why) return enqueue(ctx, e);
    const char *detail = err != cudaSuccess ? cudaGetErrorString(err) : "";
    cudaGetLastError();  // the failed capture's error is not a later op's
    g.given_up = true;
    if (g.exec) cudaGraphExecDestroy(g.exec);
    g.exec = nullptr;
    if (mode() == GRAPHS_REQUIRED) {
        if (e)
            snprintf(e->msg, sizeof e->msg, "CUDA graph: %s%s%s (DLM_CUDA_GRAPHS=require)", why,
                     *detail ? ": " : "", detail);
        return ERR_FAIL;
    }
    fprintf(stderr, "cuda: %s%s%s; steps run op by op from now on\n", why, *detail ? ": " : "",
            detail);
    return enqueue(ctx, e);
}

int cu_graph_run(int (*enqueue)(void *ctx, err_t *e), void *ctx, err_t *e)
{
    if (mode() == GRAPHS_OFF || g.given_up) return enqueue(ctx, e);
    if (!stages_ready())
        return run_ops("no pinned memory for a step's uploads", cudaGetLastError(), enqueue, ctx,
                       e);
    stage *s = &g.stages[g.cur];
    cudaError_t err = cudaEventSynchronize(s->read);
    if (err != cudaSuccess) return run_ops("waiting for a step", err, enqueue, ctx, e);
    s->used = 0;
    err = cudaStreamBeginCapture(cu_stream, cudaStreamCaptureModeThreadLocal);
    if (err != cudaSuccess) return run_ops("a step could not be captured", err, enqueue, ctx, e);
    g.capturing = true;
    g.broken = false;
    int rc = enqueue(ctx, e);
    g.capturing = false;
    cudaGraph_t graph = nullptr;
    err = cudaStreamEndCapture(cu_stream, &graph);
    for (void *p : g.frees) cudaFree(p);
    g.frees.clear();
    if (g.broken || err != cudaSuccess) {
        // the step allocated, freed or overflowed the staging buffer (g.broken), or the runtime
        // refused something in it (err: say, a kernel module that lazy loading had not loaded
        // yet); run op by op, it will not do that a second time
        if (graph) cudaGraphDestroy(graph);
        cudaGetLastError();
        bool again = ++g.broken_in_a_row >= 2;
        return run_ops(again ? "two steps in a row could not be captured as CUDA graphs (they "
                               "allocate or free device memory, upload more than 4 MB, or the "
                               "runtime refuses them)"
                             : nullptr,
                       err, enqueue, ctx, e);
    }
    g.broken_in_a_row = 0;
    if (rc < 0) {  // a host-side failure (the message is in e); nothing was queued
        cudaGraphDestroy(graph);
        return rc;
    }
    if (g.exec) {
        cudaGraphExecUpdateResultInfo info;
        if (cudaGraphExecUpdate(g.exec, graph, &info) != cudaSuccess) {
            cudaGetLastError();  // another shape: instantiate this one instead
            cudaGraphExecDestroy(g.exec);
            g.exec = nullptr;
        }
    }
    if (!g.exec) err = cudaGraphInstantiate(&g.exec, graph, 0);
    cudaGraphDestroy(graph);
    if (err != cudaSuccess) {
        g.exec = nullptr;
        return run_ops("a captured step could not be instantiated", err, enqueue, ctx, e);
    }
    err = cudaGraphLaunch(g.exec, cu_stream);
    if (err != cudaSuccess) return run_ops("a step's graph did not launch", err, enqueue, ctx, e);
    cudaEventRecord(s->read, cu_stream);
    g.cur ^= 1;
    return 0;
}
