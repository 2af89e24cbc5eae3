/* scratch: one grow-only device workspace for ops that need temporary memory (row statistics,
 * partial sums). Ops run one after another on one stream (cu_stream), so one buffer serves
 * them all: an op may use it until it returns, never across ops.
 * Ownership: the buffer lives until the process ends. Errors: NULL (after a message on stderr)
 * when the device is out of memory, or (quietly) when it would have to grow inside a captured
 * step, which cannot allocate (graph.cuh: the step is then run op by op). */
#ifndef DLM_SCRATCH_CUH
#define DLM_SCRATCH_CUH

#include <cstddef>

/* At least `bytes` of device memory (256-byte aligned), valid until the next call. */
void *cu_scratch(size_t bytes);
#endif
