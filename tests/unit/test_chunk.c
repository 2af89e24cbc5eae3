/* chunk: blocks of a concatenation, whatever the record boundaries, and both remainder rules. */
#include <string.h>

#include "../../lib/chunk.h"
#include "tap.h"

struct sink {
    uint32_t tokens[64];
    size_t sizes[16];
    size_t n_tokens, n_blocks;
};

static int collect(const uint32_t *t, size_t n, void *ctx, err_t *e)
{
    (void)e;
    struct sink *s = ctx;
    memcpy(s->tokens + s->n_tokens, t, n * sizeof *t);
    s->n_tokens += n;
    s->sizes[s->n_blocks++] = n;
    return 0;
}

static void run(const size_t *pieces, size_t n_pieces, chunk_remainder rule, struct sink *s)
{
    chunker c;
    err_t e;
    uint32_t next = 0, buf[64];
    memset(s, 0, sizeof *s);
    chunk_init(&c, 4, rule);
    for (size_t i = 0; i < n_pieces; i++) {
        for (size_t j = 0; j < pieces[i]; j++) buf[j] = next++;
        chunk_push(&c, buf, pieces[i], collect, s, &e);
    }
    chunk_finish(&c, collect, s, &e);
    chunk_free(&c);
}

int main(void)
{
    const size_t pieces[] = {3, 0, 1, 6, 1, 2}; /* 13 tokens: blocks of 4 at 4, 8, 12; 1 left */
    struct sink s;
    run(pieces, 6, CHUNK_DROP, &s);
    int in_order = 1;
    for (size_t i = 0; i < s.n_tokens; i++) in_order &= s.tokens[i] == i;
    CHECK(s.n_blocks == 3 && s.n_tokens == 12, "drop: 13 tokens give 3 blocks of 4 (%zu blocks)",
          s.n_blocks);
    CHECK(in_order, "drop: blocks hold the concatenation in order");
    run(pieces, 6, CHUNK_KEEP, &s);
    CHECK(s.n_blocks == 4 && s.sizes[3] == 1 && s.tokens[12] == 12,
          "keep: the 1-token remainder is a last, short block");
    const size_t exact[] = {8};
    run(exact, 1, CHUNK_KEEP, &s);
    CHECK(s.n_blocks == 2 && s.sizes[1] == 4, "keep: no empty block when the input divides evenly");
    return tap_done();
}
