/* chunk: the perplexity protocol's blocking — records' tokens concatenated in order and cut into
 * fixed-size blocks (as the reference evaluations' group_texts does), with a chosen remainder rule.
 * Ownership: a chunker owns its pending-token buffer (chunker_free). Errors: ERR_FAIL on OOM. */
#ifndef DLM_CHUNK_H
#define DLM_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef enum {
    CHUNK_DROP, /* a final block shorter than the block size is dropped (reference default) */
    CHUNK_KEEP, /* it is emitted as a shorter block */
} chunk_remainder;

/* Receives each finished block, in order; returns < 0 to stop with an error already in e. */
typedef int (*chunk_emit_fn)(const uint32_t *tokens /* (n) */, size_t n, void *ctx, err_t *e);

typedef struct chunker {
    size_t block;            /* tokens per block, > 0 */
    chunk_remainder remainder;
    uint32_t *pending;       /* (n_pending) tokens not yet in a block */
    size_t n_pending, cap;
} chunker;

/* Starts a chunker; nothing is allocated until the first push. */
void chunk_init(chunker *c, size_t block, chunk_remainder remainder);

/* Appends tokens; every block completed by them goes to emit. @return 0 or the error of emit. */
int chunk_push(chunker *c, const uint32_t *tokens, size_t n, chunk_emit_fn emit, void *ctx,
               err_t *e);

/* Applies the remainder rule to what is left (emitting at most one short block). */
int chunk_finish(chunker *c, chunk_emit_fn emit, void *ctx, err_t *e);

void chunk_free(chunker *c);

#endif
