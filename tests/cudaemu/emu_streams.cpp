// emu_streams: streams, events, stream capture and graphs for the CUDA emulator (cuda_runtime.h
// says what is modelled). Nothing runs concurrently: queued work runs at once, in call order,
// unless its stream is being captured; then it is recorded, and a graph runs its records in
// order at each launch. One capture at a time (the thread-local mode of the one host thread that
// queues work).
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "emu_internal.h"

struct emu_stream {
    int unused;
};
struct emu_event {
    int unused;
};

/* A captured graph and an executable one alike: the recorded work, in order. */
struct emu_graph {
    struct node {
        const void *key;  // the kernel of a launch; NULL for copies, sets and products
        std::function<void()> run;
    };
    std::vector<node> nodes;
};

static struct {
    cudaStream_t stream;  // the stream being captured (when graph is not NULL)
    emu_graph *graph;     // what the capture has recorded; NULL: no capture
    bool broken;          // a rule was broken: cudaStreamEndCapture reports it invalidated
} capture;

static cudaError_t break_capture(cudaError_t err)
{
    capture.broken = true;
    return emu_set_error(err);
}

bool emu_stream_capturing(cudaStream_t stream)
{
    return capture.graph && stream == capture.stream;
}

cudaError_t emu_capture_forbids(const char *)
{
    return capture.graph ? break_capture(cudaErrorStreamCaptureUnsupported) : cudaSuccess;
}

cudaError_t emu_enqueue(cudaStream_t stream, const void *key, std::function<void()> op)
{
    if (!capture.graph) {
        op();
        return cudaSuccess;
    }
    if (stream != capture.stream) return break_capture(cudaErrorStreamCaptureImplicit);
    capture.graph->nodes.push_back({key, std::move(op)});
    return cudaSuccess;
}

// ---- streams and events ---------------------------------------------------------------------

cudaError_t cudaStreamCreate(cudaStream_t *stream)
{
    *stream = new emu_stream{};
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
    if (emu_stream_capturing(stream)) emu_fail("cudaStreamDestroy of a stream being captured");
    delete stream;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t)
{
    return emu_capture_forbids("cudaStreamSynchronize");
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned)
{
    *event = new emu_event{};
    return cudaSuccess;
}

// (a GPU would record an event node in a capture; the emulator does not model them)
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t)
{
    return capture.graph ? break_capture(cudaErrorStreamCaptureUnsupported) : cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t)
{
    return emu_capture_forbids("cudaEventSynchronize");
}

// ---- capture and graphs ---------------------------------------------------------------------

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode)
{
    if (mode != cudaStreamCaptureModeThreadLocal)
        emu_fail("cudaStreamBeginCapture: only cudaStreamCaptureModeThreadLocal is modelled");
    if (!stream || capture.graph) return emu_set_error(cudaErrorStreamCaptureUnsupported);
    capture.stream = stream;
    capture.graph = new emu_graph{};
    capture.broken = false;
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph)
{
    if (!capture.graph || stream != capture.stream)
        emu_fail("cudaStreamEndCapture on a stream that is not being captured");
    emu_graph *g = capture.graph;
    capture.graph = nullptr;
    *graph = nullptr;
    if (capture.broken) {
        delete g;
        return emu_set_error(cudaErrorStreamCaptureInvalidated);
    }
    *graph = g;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long)
{
    *exec = new emu_graph(*graph);
    return cudaSuccess;
}

cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t graph,
                                cudaGraphExecUpdateResultInfo *info)
{
    bool same = exec->nodes.size() == graph->nodes.size();
    for (size_t i = 0; same && i < graph->nodes.size(); i++)
        same = exec->nodes[i].key == graph->nodes[i].key;
    if (info) *info = cudaGraphExecUpdateResultInfo{same ? 0 : 1, nullptr, nullptr};
    if (!same) return emu_set_error(cudaErrorGraphExecUpdateFailure);
    exec->nodes = graph->nodes;
    return cudaSuccess;
}

static long graph_launches;

static void report_launches(void)
{
    fprintf(stderr, "cuda-emu: %ld graph launches\n", graph_launches);
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t)
{
    if (capture.graph) return break_capture(cudaErrorStreamCaptureUnsupported);
    if (graph_launches++ == 0 && getenv("EMU_STATS")) atexit(report_launches);
    for (const emu_graph::node &n : exec->nodes) n.run();
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph)
{
    delete graph;
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
    delete exec;
    return cudaSuccess;
}
