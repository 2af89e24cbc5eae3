/* sedd: the SEDD transformer on the op interface (see sedd.h; spec sedd.md §1.3). */
#include "sedd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "ckpt.h"
#include "sedd_model.h"

void openblas_set_num_threads(int n); /* OpenBLAS extension */

/* Work buffers of forward calls over up to nb sequences of length L (backend memory), kept by
 * the model between calls: a sampler calls the forward once per step, and on a GPU allocating
 * and freeing ~14·L·H floats each time (cudaFree synchronises) would cost more than small steps.
 * cos and sin hold the rotary tables of length L. */
struct work {
    float *x, *h, *qkv, *k, *v, *att, *tmp, *mlp, *tf, *s, *c, *mod, *cos, *sin;
    int32_t *ids;
    int nb, L;  /* capacity; nb 0 = nothing allocated */
};

struct sedd_model {
    struct config_sedd cfg;
    const backend *be;
    sedd_layout layout;
    float *weights;            /* one allocation: every parameter in fp32 (layout.total) */
    sedd_weights w;            /* views into weights */
    struct work work;          /* forward buffers, grown on demand */
};

static void work_free(const backend *be, struct work *w);

const struct config_sedd *sedd_config(const sedd_model_t *m) { return &m->cfg; }

void sedd_free(sedd_model_t *m)
{
    if (!m) return;
    if (m->weights) m->be->free(m->weights);
    work_free(m->be, &m->work);
    sedd_weights_unbind(&m->w);
    sedd_layout_free(&m->layout);
    free(m);
}

sedd_model_t *sedd_load(const char *dir, const backend *be, err_t *e)
{
    ckpt_t *c = sedd_ckpt_open(dir, e);
    if (!c) return NULL;
    sedd_model_t *m = calloc(1, sizeof *m);
    if (!m) {
        ckpt_close(c);
        err_set(e, "out of memory");
        return NULL;
    }
    m->cfg = ckpt_config(c)->sedd;
    m->be = be ? be : &backend_cpu;
    if (sedd_layout_init(&m->layout, &m->cfg, e) < 0) goto fail;
    if (!(m->weights = m->be->alloc(m->layout.total * sizeof(float)))) {
        err_set(e, "%s: out of memory for %zu parameters", dir, m->layout.total);
        goto fail;
    }
    if (sedd_load_params(c, &m->layout, m->be, m->weights, e) < 0 ||
        sedd_weights_bind(&m->w, m->weights, &m->layout, &m->cfg, e) < 0)
        goto fail;
    ckpt_close(c);
    return m;
fail:
    ckpt_close(c);
    sedd_free(m);
    return NULL;
}

/* ---- thread-count-invariant products (CPU) ------------------------------------------------
 * OpenBLAS's multithreaded sgemm does not give the same bits for 1 and 2 threads, so a sample
 * or a bound would depend on --threads. On the CPU backend the model's products are cut into
 * fixed tiles of output columns per sequence, each one single-threaded sgemm call, spread over
 * OpenMP threads: the same calls whatever the thread count and the batch, hence the same bits.
 * (Attention is the backend's: its long-query path is one sgemm pair per (sequence, head).) */

enum { SEDD_TILE = 128 };

/* y (nb·r, out) = x wᵀ + bias for nb groups of rows (a sequence's tokens, or its one
 * conditioning row): group g's output rows start at row g·r of y; it has r rows starting at row
 * g·r of x, or, when cnt is not NULL, cnt[g] rows starting at row xrow[g] of x. Each group is
 * multiplied on its own, one single-threaded sgemm call per tile of output columns, so a row's
 * bits depend neither on the thread count nor on which other groups share the call; the
 * (group, tile) calls are spread over OpenMP threads. */
static void tiled_matmul(const backend *be, float *y, const float *x, const float *w,
                         const float *bias, int nb, int r, int in, int out, const int *cnt,
                         const int *xrow)
{
    if (be != &backend_cpu) { /* (cnt is only passed on the CPU backend) */
        be->matmul(y, x, w, bias, nb * r, in, out, BE_OUT_IN, false);
        return;
    }
    const int nt = (out + SEDD_TILE - 1) / SEDD_TILE, tasks = nb * nt;
    /* small products run on the calling thread: a parallel region costs more than they do */
#pragma omp parallel for schedule(dynamic, 1) if ((double)nb * r * in * out > 4e6 && tasks > 1)
    for (int task = 0; task < tasks; task++) {
        const int g = task / nt, j0 = task % nt * SEDD_TILE;
        const int nj = out - j0 < SEDD_TILE ? out - j0 : SEDD_TILE;
        const int n = cnt ? cnt[g] : r;
        const float *xg = x + (size_t)(cnt ? xrow[g] : g * r) * (size_t)in;
        float *yg = y + (size_t)g * (size_t)r * (size_t)out + j0;
        if (n == 0) continue;
        if (bias)
            for (int i = 0; i < n; i++)
                memcpy(yg + (size_t)i * (size_t)out, bias + j0, (size_t)nj * sizeof *y);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nj, in, 1.0f, xg, in,
                    w + (size_t)j0 * (size_t)in, in, bias ? 1.0f : 0.0f, yg, out);
    }
}

void sedd_set_threads(int n)
{
    backend_cpu_set_threads(n);
    openblas_set_num_threads(1); /* every sgemm call is one tile of an OpenMP loop */
}


static void work_free(const backend *be, struct work *w)
{
    float **f[] = {&w->x, &w->h, &w->qkv, &w->k, &w->v, &w->att, &w->tmp, &w->mlp,
                   &w->tf, &w->s, &w->c, &w->mod, &w->cos, &w->sin};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) be->free(*f[i]), *f[i] = NULL;
    be->free(w->ids);
    w->ids = NULL;
    w->nb = w->L = 0;
}

/* The model's work buffers for nb sequences of length L: the kept ones when they are large
 * enough and of this L, else new ones (the rotary tables computed and uploaded with them).
 * @return the buffers, or NULL with the message in e (out of memory). */
static struct work *work_get(sedd_model_t *m, int nb, int L, err_t *e)
{
    struct work *w = &m->work;
    if (w->nb >= nb && w->L == L) return w;
    const backend *be = m->be;
    work_free(be, w);
    const size_t H = (size_t)m->cfg.hidden_size, C = (size_t)m->cfg.cond_dim;
    const size_t d = H / (size_t)m->cfg.n_heads, rows = (size_t)nb * (size_t)L;
    bool ok = (w->x = be->alloc(rows * H * 4)) && (w->h = be->alloc(rows * H * 4)) &&
              (w->qkv = be->alloc(rows * 3 * H * 4)) && (w->k = be->alloc(rows * H * 4)) &&
              (w->v = be->alloc(rows * H * 4)) && (w->att = be->alloc(rows * H * 4)) &&
              (w->tmp = be->alloc(rows * H * 4)) && (w->mlp = be->alloc(rows * 4 * H * 4)) &&
              (w->tf = be->alloc((size_t)nb * SEDD_FREQ * 4)) &&
              (w->s = be->alloc((size_t)nb * C * 4)) && (w->c = be->alloc((size_t)nb * C * 4)) &&
              (w->mod = be->alloc((size_t)nb * 6 * H * 4)) &&
              (w->cos = be->alloc((size_t)L * d * 4)) && (w->sin = be->alloc((size_t)L * d * 4)) &&
              (w->ids = be->alloc(rows * sizeof *w->ids));
    float *cs = ok ? malloc((size_t)L * d * 2 * sizeof *cs) : NULL;
    if (!cs) {
        work_free(be, w);
        return err_set(e, "sedd_forward: out of memory for %zu rows", rows), NULL;
    }
    sedd_rotary_tables(L, (int)d, cs, cs + (size_t)L * d);
    int rc = be->to_device(w->cos, cs, (size_t)L * d * sizeof *cs, e);
    if (rc == 0) rc = be->to_device(w->sin, cs + (size_t)L * d, (size_t)L * d * sizeof *cs, e);
    free(cs);
    if (rc < 0) {
        work_free(be, w);
        return NULL;
    }
    w->nb = nb;
    w->L = L;
    return w;
}

/* Sends a host copy of a backend buffer to the trace callback. */
static void emit(const backend *be, sedd_trace_fn trace, void *ctx, const char *name,
                 const float *data, size_t n)
{
    if (!trace) return;
    float *host = malloc(n * sizeof *host);
    err_t e;
    if (host && be->to_host(host, data, n * sizeof *host, &e) == 0) trace(ctx, name, host, n);
    free(host);
}

/* The log-scores of the masked rows only (absorbing graph: the only rows its sampler and loss
 * read), on the CPU backend: the masked rows of h (nb·L, H; the final layer's input) are
 * gathered into hc (nb·L·H floats), each sequence's multiplied together (one product of its
 * cnt rows: the same bits for the same sequence whatever the batch) into the first rows of its
 * block of out (nb,L,V), finished, and moved to their positions from the last one down. The
 * unmasked rows of out are left as scratch. @return 0 or ERR_FAIL (out of memory). */
static int masked_log_scores(const sedd_model_t *m, const float *h, float *hc, const int64_t *x,
                             const float *sigma, int nb, int L, float *out, err_t *e)
{
    const int H = (int)m->cfg.hidden_size;
    const int64_t V = m->cfg.vocab, mask = m->cfg.tokens;
    int *cnt = malloc((size_t)nb * 2 * sizeof *cnt), *xrow = cnt + nb;
    int64_t *masks = malloc((size_t)L * sizeof *masks);
    if (!cnt || !masks) {
        free(cnt), free(masks);
        return err_set(e, "sedd_forward: out of memory");
    }
    for (int l = 0; l < L; l++) masks[l] = mask;
    int total = 0;
    for (int b = 0; b < nb; b++) {
        xrow[b] = total;
        for (int l = 0; l < L; l++)
            if (x[(size_t)b * L + l] == mask)
                memcpy(hc + (size_t)total++ * (size_t)H, h + ((size_t)b * L + l) * (size_t)H,
                       (size_t)H * sizeof *hc);
        cnt[b] = total - xrow[b];
    }
    tiled_matmul(m->be, out, hc, m->w.out_w, m->w.out_b, nb, L, H, (int)V, cnt, xrow);
#pragma omp parallel for schedule(dynamic, 1) if ((double)total * (double)V > 65536)
    for (int b = 0; b < nb; b++) {
        const int64_t *xb = x + (size_t)b * (size_t)L;
        float *ob = out + (size_t)b * (size_t)L * (size_t)V;
        sedd_finish_rows(ob, cnt[b], V, sigma[b], m->cfg.scale_by_sigma, masks);
        for (int l = L - 1, i = cnt[b] - 1; i >= 0; l--)
            if (xb[l] == mask) {
                if (l != i)
                    memcpy(ob + (size_t)l * (size_t)V, ob + (size_t)i * (size_t)V,
                           (size_t)V * sizeof *ob);
                i--;
            }
    }
    free(cnt), free(masks);
    return 0;
}

/* Work memory one forward call may take for its buffers (batches above it are cut in chunks). */
#define SEDD_WORK_BYTES ((size_t)64 << 20)

/* The forward pass of nb sequences together (in the model's work buffers: about 14·L·H floats
 * per sequence). x_dev NULL: the tokens x and out are host memory; else (a backend other than
 * the CPU) the tokens x_dev and out are backend memory, x is not read, and the log-scores are
 * made there without a transfer to the host (so a sampling step can be captured). */
static int forward_chunk(sedd_model_t *m, const int64_t *x, const int64_t *x_dev,
                         const float *sigma, int nb, int L, bool masked_only, float *out,
                         sedd_trace_fn trace, void *tctx, err_t *e)
{
    const backend *be = m->be;
    const int H = (int)m->cfg.hidden_size, C = (int)m->cfg.cond_dim, V = (int)m->cfg.vocab;
    const int nh = (int)m->cfg.n_heads, d = H / nh, rows = nb * L;
    struct work *w = work_get(m, nb, L, e);
    if (!w) return ERR_FAIL;
    size_t hsz = (size_t)rows * (size_t)H;
    char name[96];
    /* the embedding's ids, and the sigma embedding (tiny) made on the host */
    int32_t *ids = x_dev ? NULL : malloc((size_t)rows * sizeof *ids);
    float *tf = malloc((size_t)nb * SEDD_FREQ * sizeof *tf);
    if ((!x_dev && !ids) || !tf) {
        free(ids), free(tf);
        return err_set(e, "sedd_forward: out of memory");
    }
    int rc = 0;
    if (x_dev) {
        be->ids_from_tokens(w->ids, x_dev, (size_t)rows);
    } else {
        for (int i = 0; i < rows; i++) ids[i] = (int32_t)x[i];
        rc = be->to_device(w->ids, ids, (size_t)rows * sizeof *ids, e);
    }
    sedd_sigma_features(sigma, nb, tf);
    if (rc == 0) rc = be->to_device(w->tf, tf, (size_t)nb * SEDD_FREQ * sizeof *tf, e);
    free(ids), free(tf);
    if (rc < 0) return ERR_FAIL;

    be->embed(w->x, m->w.embed, NULL, w->ids, rows, L, 0, H);
    emit(be, trace, tctx, "x_embed", w->x, hsz);
    emit(be, trace, tctx, "t_freq", w->tf, (size_t)nb * SEDD_FREQ);
    emit(be, trace, tctx, "rotary_cos", w->cos, (size_t)L * (size_t)d);
    emit(be, trace, tctx, "rotary_sin", w->sin, (size_t)L * (size_t)d);
    tiled_matmul(be, w->c, w->tf, m->w.map0, m->w.map0_b, nb, 1, SEDD_FREQ, C, NULL, NULL);
    be->silu(w->c, w->c, (size_t)nb * (size_t)C);
    tiled_matmul(be, w->s, w->c, m->w.map2, m->w.map2_b, nb, 1, C, C, NULL, NULL);
    emit(be, trace, tctx, "sigma_map_out", w->s, (size_t)nb * (size_t)C);
    be->silu(w->c, w->s, (size_t)nb * (size_t)C);
    emit(be, trace, tctx, "c", w->c, (size_t)nb * (size_t)C);

    const size_t ms = 6 * (size_t)H; /* stride of one row of adaLN output */
    for (int64_t i = 0; i < m->cfg.n_blocks; i++) {
        const struct sedd_block_w *bl = &m->w.blocks[i];
#define TRACE(what, buf, n)                                                                    \
    do {                                                                                       \
        if (trace) {                                                                           \
            snprintf(name, sizeof name, "blocks.%lld.%s", (long long)i, what);                 \
            emit(be, trace, tctx, name, buf, n);                                               \
        }                                                                                      \
    } while (0)
        tiled_matmul(be, w->mod, w->c, bl->ada, bl->ada_b, nb, 1, C, 6 * H, NULL, NULL);
        TRACE("adaLN_out", w->mod, (size_t)nb * ms);
        be->layernorm(w->h, w->x, bl->norm1, NULL, rows, H, SEDD_LN_EPS);
        TRACE("norm1_out", w->h, hsz);
        be->modulate(w->h, w->h, w->mod, w->mod + H, ms, nb, L, H);
        TRACE("attn_in_modulated", w->h, hsz);
        tiled_matmul(be, w->qkv, w->h, bl->qkv, NULL, nb, L, H, 3 * H, NULL, NULL);
        TRACE("qkv", w->qkv, 3 * hsz);
        be->rotary(w->qkv, 3 * (size_t)H, w->cos, w->sin, nb, L, nh, d);
        be->rotary(w->qkv + H, 3 * (size_t)H, w->cos, w->sin, nb, L, nh, d);
        TRACE("qkv_rotary", w->qkv, 3 * hsz);
        /* non-causal attention (past −1), one (sequence, head) per task on the CPU backend */
        be->kv_store(w->k, w->v, w->qkv, nb, L, nh, d, 0, L);
        be->attention(w->att, w->qkv, 3 * (size_t)H, w->k, w->v, nb, L, L, L, nh, d, -1, NULL,
                      1.0f / sqrtf((float)d));
        TRACE("attn_core_out", w->att, hsz);
        tiled_matmul(be, w->tmp, w->att, bl->attn_out, NULL, nb, L, H, H, NULL, NULL);
        TRACE("attn_out", w->tmp, hsz);
        be->gated_add(w->x, w->mod + 2 * H, ms, w->tmp, nb, L, H);
        TRACE("x_after_attn", w->x, hsz);
        be->layernorm(w->h, w->x, bl->norm2, NULL, rows, H, SEDD_LN_EPS);
        TRACE("norm2_out", w->h, hsz);
        be->modulate(w->h, w->h, w->mod + 3 * H, w->mod + 4 * H, ms, nb, L, H);
        TRACE("mlp_in_modulated", w->h, hsz);
        tiled_matmul(be, w->mlp, w->h, bl->fc1, bl->fc1_b, nb, L, H, 4 * H, NULL, NULL);
        TRACE("mlp_fc1", w->mlp, 4 * hsz);
        be->gelu_tanh(w->mlp, w->mlp, 4 * hsz);
        TRACE("mlp_gelu", w->mlp, 4 * hsz);
        tiled_matmul(be, w->tmp, w->mlp, bl->fc2, bl->fc2_b, nb, L, 4 * H, H, NULL, NULL);
        TRACE("mlp_fc2", w->tmp, hsz);
        be->gated_add(w->x, w->mod + 5 * H, ms, w->tmp, nb, L, H);
        TRACE("out", w->x, hsz);
#undef TRACE
    }
    /* final layer: shift, scale (no gate) */
    tiled_matmul(be, w->mod, w->c, m->w.out_ada, m->w.out_ada_b, nb, 1, C, 2 * H, NULL, NULL);
    emit(be, trace, tctx, "final.adaLN_out", w->mod, (size_t)nb * 2 * (size_t)H);
    be->layernorm(w->h, w->x, m->w.norm_f, NULL, rows, H, SEDD_LN_EPS);
    emit(be, trace, tctx, "final.norm_out", w->h, hsz);
    be->modulate(w->h, w->h, w->mod, w->mod + H, 2 * (size_t)H, nb, L, H);
    emit(be, trace, tctx, "final.linear_in_modulated", w->h, hsz);
    size_t osz = (size_t)rows * (size_t)V;
    float *logits = out;
    bool host_out = be == &backend_cpu; /* the CPU backend's memory is host memory */
    if (masked_only && host_out && !trace)
        return masked_log_scores(m, w->h, w->tmp, x, sigma, nb, L, out, e);
    if (x_dev) { /* backend log-scores: product and finish where h is */
        tiled_matmul(be, out, w->h, m->w.out_w, m->w.out_b, nb, L, H, V, NULL, NULL);
        for (int b = 0; b < nb; b++)
            be->sedd_finish(out + (size_t)b * (size_t)L * (size_t)V, x_dev + (size_t)b * (size_t)L,
                            L, V, sigma[b], m->cfg.scale_by_sigma);
        return 0;
    }
    if (!host_out && !(logits = be->alloc(osz * sizeof *logits)))
        return err_set(e, "sedd_forward: out of memory for the logits");
    tiled_matmul(be, logits, w->h, m->w.out_w, m->w.out_b, nb, L, H, V, NULL, NULL);
    if (!host_out) {
        rc = be->to_host(out, logits, osz * sizeof *out, e);
        be->free(logits);
        if (rc < 0) return ERR_FAIL;
    }
    if (trace) trace(tctx, "final.logits_raw", out, osz);
    /* scale_by_sigma: − log(e^σ − 1) − log(V − 1); then 0 at the current token */
    for (int b = 0; b < nb; b++)
        sedd_finish_rows(out + (size_t)b * (size_t)L * (size_t)V, L, V, sigma[b],
                         m->cfg.scale_by_sigma, x + (size_t)b * (size_t)L);
    return 0;
}

/* sedd_forward, or with masked_only the masked rows only (see masked_log_scores); x_dev as in
 * forward_chunk (its tokens are not checked: sedd_score_device's contract). */
static int forward_batch(sedd_model_t *m, const int64_t *x, const int64_t *x_dev,
                         const float *sigma, int B, int L, bool masked_only, float *out,
                         sedd_trace_fn trace, void *trace_ctx, err_t *e)
{
    const int64_t V = m->cfg.vocab;
    for (size_t i = 0; !x_dev && i < (size_t)B * (size_t)L; i++)
        if (x[i] < 0 || x[i] >= V)
            return err_set(e, "sedd_forward: token %lld at position %zu is outside the model's "
                              "vocabulary (0..%lld)", (long long)x[i], i % (size_t)L,
                           (long long)V - 1);
    if (trace) return forward_chunk(m, x, NULL, sigma, B, L, false, out, trace, trace_ctx, e);
    /* on the CPU, sequences together, as many as fit SEDD_WORK_BYTES of work buffers (every
     * product is cut per sequence, so the chunking changes no bit); on another backend one
     * sequence a pass, since a library GEMM's bits for a row may depend on the rows beside it
     * (so a sample's bytes do not depend on --batch there either) */
    const size_t per_seq = (size_t)L * (size_t)m->cfg.hidden_size * 14 * sizeof(float);
    int chunk;
    if (m->be != &backend_cpu || per_seq >= SEDD_WORK_BYTES) chunk = 1;
    else if (per_seq * (size_t)B <= SEDD_WORK_BYTES) chunk = B;
    else chunk = (int)(SEDD_WORK_BYTES / per_seq);
    for (int b = 0; b < B; b += chunk) {
        const int nb = B - b < chunk ? B - b : chunk;
        size_t o = (size_t)b * (size_t)L;
        if (forward_chunk(m, x_dev ? NULL : x + o, x_dev ? x_dev + o : NULL, sigma + b, nb, L,
                          masked_only, out + o * (size_t)V, NULL, NULL, e) < 0)
            return ERR_FAIL;
    }
    return 0;
}

int sedd_forward(sedd_model_t *m, const int64_t *x, const float *sigma, int B, int L,
                 float *out, sedd_trace_fn trace, void *trace_ctx, err_t *e)
{
    return forward_batch(m, x, NULL, sigma, B, L, false, out, trace, trace_ctx, e);
}

int sedd_score(void *ctx, const int64_t *x, const float *sigma, int B, int L, float *log_score,
               err_t *e)
{
    return sedd_forward(ctx, x, sigma, B, L, log_score, NULL, NULL, e);
}

int sedd_score_masked(void *ctx, const int64_t *x, const float *sigma, int B, int L,
                    float *log_score, err_t *e)
{
    sedd_model_t *m = ctx;
    return forward_batch(m, x, NULL, sigma, B, L, m->cfg.graph == CONFIG_GRAPH_ABSORB, log_score,
                         NULL, NULL, e);
}

const backend *sedd_backend(const sedd_model_t *m) { return m->be; }

/* sedd_score_device(_masked): on the CPU the host functions; elsewhere the tokens stay where
 * they are and so do the log-scores. */
static int score_device(sedd_model_t *m, const int64_t *x, const float *sigma, int B, int L,
                        bool masked_only, float *log_score, err_t *e)
{
    if (m->be == &backend_cpu)
        return forward_batch(m, x, NULL, sigma, B, L, masked_only, log_score, NULL, NULL, e);
    return forward_batch(m, NULL, x, sigma, B, L, false, log_score, NULL, NULL, e);
}

int sedd_score_device(void *ctx, const int64_t *x, const float *sigma, int B, int L,
                      float *log_score, err_t *e)
{
    return score_device(ctx, x, sigma, B, L, false, log_score, e);
}

int sedd_score_device_masked(void *ctx, const int64_t *x, const float *sigma, int B, int L,
                             float *log_score, err_t *e)
{
    sedd_model_t *m = ctx;
    return score_device(m, x, sigma, B, L, m->cfg.graph == CONFIG_GRAPH_ABSORB, log_score, e);
}
