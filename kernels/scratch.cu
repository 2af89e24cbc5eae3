// scratch: the device workspace of scratch.cuh. Growing it frees the old buffer (cudaFree waits
// for the ops queued before, which may still be reading it) and allocates a bigger one.
#include "cuda_common.cuh"
#include "graph.cuh"
#include "scratch.cuh"

void *cu_scratch(size_t bytes)
{
    static void *buf;
    static size_t cap;
    if (bytes <= cap) return buf;
    if (cu_graph_capturing()) {  // a captured step cannot allocate
        cu_graph_break();
        return nullptr;
    }
    size_t want = bytes > 2 * cap ? bytes : 2 * cap;
    if (buf) cudaFree(buf);
    buf = nullptr;
    cap = 0;
    void *p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, want), nullptr);
    buf = p;
    cap = want;
    return buf;
}
