/* chunk: fixed-size blocking of a concatenated token sequence (see chunk.h). */
#include "chunk.h"

#include <stdlib.h>
#include <string.h>

void chunk_init(chunker *c, size_t block, chunk_remainder remainder)
{
    memset(c, 0, sizeof *c);
    c->block = block;
    c->remainder = remainder;
}

/* The pending buffer holds at most one block; allocate it once. */
static int reserve_block(chunker *c, err_t *e)
{
    if (c->cap >= c->block) return 0;
    uint32_t *p = realloc(c->pending, c->block * sizeof *p);
    if (!p) return err_set(e, "out of memory");
    c->pending = p;
    c->cap = c->block;
    return 0;
}

int chunk_push(chunker *c, const uint32_t *tokens, size_t n, chunk_emit_fn emit, void *ctx,
               err_t *e)
{
    /* Complete the pending block first, then emit whole blocks straight from the input. */
    if (c->n_pending) {
        /* n_pending > 0 implies the buffer was reserved by an earlier push. */
        size_t take = c->block - c->n_pending;
        if (take > n) take = n;
        if (take) memcpy(c->pending + c->n_pending, tokens, take * sizeof *tokens);
        c->n_pending += take;
        tokens += take;
        n -= take;
        if (c->n_pending < c->block) return 0;
        c->n_pending = 0;
        int rc = emit(c->pending, c->block, ctx, e);
        if (rc < 0) return rc;
    }
    for (; n >= c->block; tokens += c->block, n -= c->block) {
        int rc = emit(tokens, c->block, ctx, e);
        if (rc < 0) return rc;
    }
    if (n) {
        if (reserve_block(c, e) < 0) return ERR_FAIL;
        memcpy(c->pending, tokens, n * sizeof *tokens);
        c->n_pending = n;
    }
    return 0;
}

int chunk_finish(chunker *c, chunk_emit_fn emit, void *ctx, err_t *e)
{
    size_t n = c->n_pending;
    c->n_pending = 0;
    if (n && c->remainder == CHUNK_KEEP) return emit(c->pending, n, ctx, e);
    return 0;
}

void chunk_free(chunker *c)
{
    free(c->pending);
    memset(c, 0, sizeof *c);
}
