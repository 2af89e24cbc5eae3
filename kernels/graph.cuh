/* graph: the CUDA backend's run_step (lib/backend.h): a step of ops captured as a CUDA graph and
 * launched as one, so that a sampling step costs the host one launch instead of one per op.
 * DLM_CUDA_GRAPHS picks the mode: 1 (the default) captures every step (one that allocates or
 * frees device memory, such as a run's first, is run op by op instead); 0 runs every step op by
 * op; require is 1 with graphs given up an error instead of a fallback (for tests).
 * Ownership: one executable graph (the last step's, updated in place when the next step has
 * the same shape) and two pinned staging buffers, kept until the process ends. */
#ifndef DLM_GRAPH_CUH
#define DLM_GRAPH_CUH

#include "backend.h"

/* lib/backend.h's run_step on the CUDA backend (see there and above). */
int cu_graph_run(int (*enqueue)(void *ctx, err_t *e), void *ctx, err_t *e);

/* Whether the ops being queued now are being captured (to_device stages, to_host refuses). */
bool cu_graph_capturing(void);

/* The step being captured allocates device memory (it will get none): the capture is dropped
 * and the step queued again op by op. */
void cu_graph_break(void);

/* The step being captured frees device memory p: it is freed when the capture ends (nothing
 * captured runs), and the step is queued again op by op. */
void cu_graph_defer_free(void *p);

/* Inside a capture: a pinned copy of bytes at src, which the captured copy reads when the graph
 * runs; NULL (and the capture is given up) when the staging buffer is full. */
const void *cu_graph_stage(const void *src, size_t bytes);

#endif
