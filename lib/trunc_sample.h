/* trunc_sample: a draw from one row of logits restricted to its top-k and then its top-p
 * nucleus (gpt2-sample's --top-k/--top-p), by the inverse CDF at a given uniform.
 * The candidates are ordered by logit, highest first, ties by lowest index (-0 and +0 equal),
 * by a stable radix sort: O(V), against ~50x more for a comparison sort of a GPT-2 row.
 * Ownership: a workspace holds the buffers for rows of up to V logits; one per thread.
 * Errors: trunc_sample_ws_new returns NULL when out of memory. */
#ifndef DLM_TRUNC_SAMPLE_H
#define DLM_TRUNC_SAMPLE_H

#include <stdint.h>

typedef struct trunc_sample_ws trunc_sample_ws;

trunc_sample_ws *trunc_sample_ws_new(int V);
void trunc_sample_ws_free(trunc_sample_ws *w);  /* NULL: no-op */

/* The token drawn from logits (V <= the workspace's V) at temperature 1/inv_t (inv_t > 0):
 * with the candidates in the order above, keep the first min(top_k, V) (top_k 0: all);
 * p_j = exp((z_j − max)·inv_t) in double, max the largest kept logit; then, when
 * top_p < 1, keep the smallest prefix whose running sum of p reaches top_p times the kept
 * total; return the first kept candidate whose running sum exceeds u times the kept total
 * (u in [0,1)), or the last kept one when none does. Sums run in candidate order. */
int32_t trunc_sample_draw(trunc_sample_ws *w, const float *logits, int V, double inv_t,
                          int64_t top_k, double top_p, double u);

#endif
