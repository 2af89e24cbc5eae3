/* lmscore: harness request encoding, GPT-2 continuation log-likelihoods and MAUVE features.
 * Reference code: plain loops; log-softmax in double over the float logits of one row. */
#include "lmscore.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "philox.h"

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

int lmscore_encode_pair(bpe_enc_t *enc, const char *ctx, const char *cont, uint32_t eot,
                        struct bpe_ids *ctx_ids, struct bpe_ids *cont_ids, err_t *e)
{
    ctx_ids->n = cont_ids->n = 0;
    size_t nc = strlen(ctx), nk = strlen(cont), keep = nc;
    while (keep > 0 && is_space(ctx[keep - 1])) keep--;
    if (keep == 0) {
        /* the harness: an empty context is [eot], the continuation encoded alone */
        uint32_t one = eot;
        char *all = malloc(nc + nk + 1);
        if (!all) return err_set(e, "lmscore_encode_pair: out of memory");
        memcpy(all, ctx, nc);
        memcpy(all + nc, cont, nk + 1);
        int rc = bpe_encode(enc, all, nc + nk, cont_ids, e); /* whitespace moved into cont */
        free(all);
        if (rc < 0) return rc;
        if (bpe_ids_append(ctx_ids, &one, 1, e) < 0) return ERR_FAIL;
    } else {
        /* whole = tok(ctx + cont) with the trailing whitespace moved (the string is the same) */
        char *all = malloc(nc + nk + 1);
        if (!all) return err_set(e, "lmscore_encode_pair: out of memory");
        memcpy(all, ctx, nc);
        memcpy(all + nc, cont, nk + 1);
        struct bpe_ids whole = {0};
        int rc = bpe_encode(enc, all, nc + nk, &whole, e);
        free(all);
        if (rc >= 0) rc = bpe_encode(enc, ctx, keep, ctx_ids, e);
        if (rc >= 0 && whole.n > ctx_ids->n)
            rc = bpe_ids_append(cont_ids, whole.v + ctx_ids->n, whole.n - ctx_ids->n, e);
        bpe_ids_free(&whole);
        if (rc < 0) return rc;
    }
    if (cont_ids->n == 0) return err_set(e, "the continuation has no tokens of its own");
    return 0;
}

static int check_ids(const uint32_t *ids, int n, int64_t V, const char *what, err_t *e)
{
    for (int i = 0; i < n; i++)
        if ((int64_t)ids[i] >= V)
            return err_set(e, "%s token %d is id %u, outside the model's vocabulary of %lld "
                              "(a model with a smaller vocabulary than the tokenizer)",
                           what, i, ids[i], (long long)V);
    return 0;
}

int lmscore_gpt2(const gpt2_t *m, gpt2_state *s, const uint32_t *ctx, int n_ctx,
                 const uint32_t *cont, int n_cont, double *ll, bool *greedy, err_t *e)
{
    const struct config_gpt2 *g = gpt2_config(m);
    int64_t V = g->vocab_size, P = g->n_positions;
    if (n_ctx < 1) return err_set(e, "lmscore_gpt2: empty context (use [eot])");
    if (n_cont < 1 || n_cont > P)
        return err_set(e, "continuation of %d tokens: must be 1..%lld (the model's context)",
                       n_cont, (long long)P);
    if (check_ids(ctx, n_ctx, V, "context", e) < 0 || check_ids(cont, n_cont, V, "continuation", e) < 0)
        return ERR_FAIL;
    /* input = whole[start .. n-1): at most P tokens, truncated from the left */
    int n = n_ctx + n_cont, start = n - 1 > P ? (int)(n - 1 - P) : 0, L = n - 1 - start;
    int pre = L - n_cont;
    int32_t *in = malloc((size_t)L * sizeof *in);
    float *logits = malloc((size_t)n_cont * (size_t)V * sizeof *logits);
    if (!in || !logits) {
        free(in);
        free(logits);
        return err_set(e, "lmscore_gpt2: out of memory");
    }
    for (int i = 0; i < L; i++) {
        int w = start + i;
        in[i] = (int32_t)(w < n_ctx ? ctx[w] : cont[w - n_ctx]);
    }
    int rc = 0;
    struct gpt2_out none = {0}, out = {.logits = logits};
    /* the context part fills the cache only; logits are made for the continuation rows */
    if (pre > 0) rc = gpt2_forward(m, s, 0, 1, pre, in, 0, NULL, &none, e);
    if (rc >= 0) rc = gpt2_forward(m, s, 0, 1, n_cont, in + pre, pre, NULL, &out, e);
    if (rc >= 0) {
        double sum = 0;
        bool all = true;
        for (int j = 0; j < n_cont; j++) {
            const float *row = logits + (size_t)j * V;
            int64_t arg = 0;
            for (int64_t v = 1; v < V; v++)
                if (row[v] > row[arg]) arg = v;
            double z = 0;
            for (int64_t v = 0; v < V; v++) z += exp((double)row[v] - row[arg]);
            sum += (double)row[cont[j]] - row[arg] - log(z);
            if (arg != (int64_t)cont[j]) all = false;
        }
        *ll = sum;
        if (greedy) *greedy = all;
    }
    free(in);
    free(logits);
    return rc < 0 ? ERR_FAIL : 0;
}

int lmscore_feature(const gpt2_t *m, gpt2_state *s, const uint32_t *ids, int n, float *feat,
                    err_t *e)
{
    const struct config_gpt2 *g = gpt2_config(m);
    int64_t C = g->n_embd;
    if (n < 1) return err_set(e, "empty sequence: it has no last token");
    if (check_ids(ids, n, g->vocab_size, "sequence", e) < 0) return ERR_FAIL;
    int32_t *in = malloc((size_t)n * sizeof *in);
    float *h = malloc((size_t)n * (size_t)C * sizeof *h);
    int rc = 0;
    if (!in || !h) {
        rc = err_set(e, "lmscore_feature: out of memory");
    } else {
        for (int i = 0; i < n; i++) in[i] = (int32_t)ids[i];
        struct gpt2_out out = {.last_hidden = h};
        rc = gpt2_forward(m, s, 0, 1, n, in, 0, NULL, &out, e);
        if (rc >= 0) memcpy(feat, h + (size_t)(n - 1) * C, (size_t)C * sizeof *feat);
    }
    free(in);
    free(h);
    return rc < 0 ? ERR_FAIL : 0;
}

int lmscore_sedd(const backend *be, const sedd_graph *g, const sedd_noise *nz, sedd_score_fn fn,
                 void *fn_ctx, const uint32_t *ctx, int n_ctx, const uint32_t *cont, int n_cont,
                 int K, uint64_t seed, uint64_t id, uint32_t req, double greedy_t, float *ws,
                 double *ll, double *ll_se, bool *greedy, err_t *e)
{
    if (n_ctx < 0 || n_cont < 1 || K < 1) return err_set(e, "lmscore_sedd: empty continuation or K < 1");
    if (check_ids(ctx, n_ctx, g->n, "context", e) < 0 || check_ids(cont, n_cont, g->n, "continuation", e) < 0)
        return ERR_FAIL;
    if (greedy && g->type != CONFIG_GRAPH_ABSORB)
        return err_set(e, "the parallel greedy match needs an absorbing (masked) model");
    int L = n_ctx + n_cont;
    int64_t *x0 = malloc((size_t)L * sizeof *x0), *rt = malloc((size_t)L * sizeof *rt);
    double *u = malloc((size_t)L * sizeof *u), *dse = malloc((size_t)L * sizeof *dse);
    double *loss = malloc((size_t)K * sizeof *loss);
    int rc = 0;
    if (!x0 || !rt || !u || !dse || !loss) rc = err_set(e, "lmscore_sedd: out of memory");
    for (int l = 0; rc == 0 && l < L; l++) x0[l] = l < n_ctx ? ctx[l] : cont[l - n_ctx];
    for (int k = 0; rc == 0 && k < K; k++) {
        uint32_t w[4], step = SEDD_STEP_LOSS + (uint32_t)k;
        philox_draw(seed, id, step, 0x80000000u + req, 0, w);
        double t = SEDD_LOSS_EPS + (1 - SEDD_LOSS_EPS) * ((double)k + philox_u01_f64(w[0], w[1])) / K;
        for (int l = 0; l < L; l++) {
            philox_draw(seed, id, step, (uint32_t)l, 0, w);
            /* u = 2 never moves: the context stays clean */
            u[l] = l < n_ctx ? 2.0 : philox_u01_f64(w[0], w[1]);
            rt[l] = (int64_t)((((uint64_t)w[2] << 32 | w[3]) >> 11) % (uint64_t)g->n);
        }
        double all;
        rc = sedd_sampler_loss(be, g, nz, fn, fn_ctx, x0, L, t, u, rt, ws, NULL, dse, &all, e);
        if (rc == 0) {
            double sum = 0;
            for (int l = n_ctx; l < L; l++) sum += dse[l];
            loss[k] = sedd_noise_rate(nz, t) * sum;
        }
    }
    if (rc == 0) {
        double mean = 0, ss = 0;
        for (int k = 0; k < K; k++) mean += loss[k];
        mean /= K;
        for (int k = 0; k < K; k++) ss += (loss[k] - mean) * (loss[k] - mean);
        *ll = -mean;
        *ll_se = K > 1 ? sqrt(ss / (K - 1) / K) : NAN;
    }
    if (rc == 0 && greedy) {
        int64_t mask = sedd_graph_mask(g);
        for (int l = n_ctx; l < L; l++) x0[l] = mask;
        float sig = (float)sedd_noise_total(nz, greedy_t);
        /* the tokens go where fn reads them; the continuation's rows come back, in one copy */
        const size_t V = (size_t)g->dim;
        int64_t *dx = be->alloc((size_t)L * sizeof *dx);
        float *rows = malloc((size_t)n_cont * V * sizeof *rows);
        if (!dx || !rows) rc = err_set(e, "lmscore_sedd: out of memory");
        if (rc == 0) rc = be->to_device(dx, x0, (size_t)L * sizeof *x0, e);
        if (rc == 0) rc = fn(fn_ctx, dx, &sig, 1, L, ws, e);
        if (rc == 0)
            rc = be->to_host(rows, ws + (size_t)n_ctx * V, (size_t)n_cont * V * sizeof *rows, e);
        bool okg = true;
        for (int i = 0; rc == 0 && i < n_cont; i++) {
            const float *row = rows + (size_t)i * V;
            int64_t arg = 0;
            for (int64_t v = 1; v < g->n; v++) /* data tokens only: the mask column is N */
                if (row[v] > row[arg]) arg = v;
            if (arg != (int64_t)cont[i]) okg = false;
        }
        *greedy = okg;
        be->free(dx);
        free(rows);
    }
    free(x0), free(rt), free(u), free(dse), free(loss);
    return rc < 0 ? ERR_FAIL : 0;
}
