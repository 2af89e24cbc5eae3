/* libFuzzer target: config_parse on arbitrary bytes fails cleanly, or returns a config whose
 * derived sizes are positive and consistent (what lib/ckpt.c relies on). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config c;
    err_t e;
    if (config_parse((const char *)data, size, "fuzz", &c, &e) < 0) {
        if (c.kind != CONFIG_NONE || strlen(e.msg) == 0) abort();
        return 0;
    }
    if (c.kind == CONFIG_GPT2) {
        const struct config_gpt2 *g = &c.gpt2;
        if (g->vocab_size < 1 || g->n_embd < 1 || g->n_head < 1 || g->n_layer < 1 ||
            g->n_positions < 1 || g->n_embd % g->n_head || !(g->layer_norm_epsilon > 0))
            abort();
    } else if (c.kind == CONFIG_SEDD) {
        const struct config_sedd *s = &c.sedd;
        if (s->vocab < s->tokens || s->hidden_size < 1 || s->cond_dim < 1 || s->n_blocks < 1 ||
            config_head_dim(&c) % 2 || !(s->sigma_min < s->sigma_max))
            abort();
    } else {
        abort();
    }
    return 0;
}
