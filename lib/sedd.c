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

struct sedd_model {
    struct config_sedd cfg;
    const backend *be;
    sedd_layout layout;
    float *weights;            /* one allocation: every parameter in fp32 (layout.total) */
    sedd_weights w;            /* views into weights */
};

const struct config_sedd *sedd_config(const sedd_model_t *m) { return &m->cfg; }

void sedd_free(sedd_model_t *m)
{
    if (!m) return;
    if (m->weights) m->be->free(m->weights);
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
 * fixed tiles of output columns, each one single-threaded sgemm call, spread over OpenMP
 * threads: the same calls whatever the thread count, hence the same bits. These two belong in
 * the backend (a tiled matmul and a tiled non-causal attention); they are here until it has them. */

enum { SEDD_TILE = 128 };

static void tiled_matmul(const backend *be, float *y, const float *x, const float *w,
                         const float *bias, int n, int in, int out)
{
    if (be != &backend_cpu) {
        be->matmul(y, x, w, bias, n, in, out, BE_OUT_IN, false);
        return;
    }
    const int nt = (out + SEDD_TILE - 1) / SEDD_TILE;
    /* small products run on the calling thread: a parallel region costs more than they do */
#pragma omp parallel for schedule(dynamic, 1) if ((double)n * in * out > 4e6 && nt > 1)
    for (int t = 0; t < nt; t++) {
        const int j0 = t * SEDD_TILE, nj = out - j0 < SEDD_TILE ? out - j0 : SEDD_TILE;
        if (bias)
            for (int i = 0; i < n; i++)
                memcpy(y + (size_t)i * (size_t)out + j0, bias + j0, (size_t)nj * sizeof *y);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nj, in, 1.0f, x, in,
                    w + (size_t)j0 * (size_t)in, in, bias ? 1.0f : 0.0f, y + j0, out);
    }
}

/* out (nb,L,H·d) = softmax(q kᵀ / √d) v per sequence and head, q, k, v read in place from the
 * packed qkv (nb,L,3C); one (sequence, head) per task. @return 0 or ERR_FAIL. */
static int tiled_attention(const backend *be, float *out, const float *qkv, float *kc, float *vc,
                           int nb, int L, int nh, int d, err_t *e)
{
    const int C = nh * d;
    if (be != &backend_cpu) {
        be->kv_store(kc, vc, qkv, nb, L, nh, d, 0, L);
        be->attention(out, qkv, 3 * (size_t)C, kc, vc, nb, L, L, L, nh, d, -1, NULL,
                      1.0f / sqrtf((float)d));
        return 0;
    }
    const float scale = 1.0f / sqrtf((float)d);
    int failed = 0;
#pragma omp parallel if ((double)nb * nh * L * L * d > 4e6)
    {
        float *S = malloc((size_t)L * (size_t)L * sizeof *S);
        if (!S) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int bh = 0; bh < nb * nh; bh++) {
            if (!S) continue;
            const int b = bh / nh, h = bh % nh;
            const float *base = qkv + (size_t)b * (size_t)L * 3 * (size_t)C + (size_t)h * d;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, d, scale, base, 3 * C,
                        base + C, 3 * C, 0.0f, S, L);
            for (int t = 0; t < L; t++) {
                float *st = S + (size_t)t * (size_t)L, mx = -INFINITY;
                for (int j = 0; j < L; j++) mx = fmaxf(mx, st[j]);
                for (int j = 0; j < L; j++) st[j] = expf(st[j] - mx);
                /* the sum in 16 fixed partial sums (vectorisable, same bits at any width) */
                float acc[16] = {0};
                int j = 0;
                for (; j + 16 <= L; j += 16) {
#pragma omp simd
                    for (int i = 0; i < 16; i++) acc[i] += st[j + i];
                }
                for (int i = 0; j + i < L; i++) acc[i] += st[j + i];
                double sum = 0;
                for (int i = 0; i < 16; i++) sum += acc[i];
                const float inv = (float)(1.0 / sum);
#pragma omp simd
                for (int k = 0; k < L; k++) st[k] *= inv;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, d, L, 1.0f, S, L,
                        base + 2 * C, 3 * C, 0.0f,
                        out + (size_t)b * (size_t)L * (size_t)C + (size_t)h * d, C);
        }
        free(S);
    }
    if (failed) return err_set(e, "sedd_forward: out of memory for attention scores");
    return 0;
}

void sedd_set_threads(int n)
{
    backend_cpu_set_threads(n);
    openblas_set_num_threads(1); /* every sgemm call is one tile of an OpenMP loop */
}

/* Work buffers of one forward call over nb sequences of length L (backend memory). */
struct work {
    float *x, *h, *qkv, *k, *v, *att, *tmp, *mlp, *tf, *s, *c, *mod, *cos, *sin;
    int32_t *ids;
};

static void work_free(const backend *be, struct work *w)
{
    float **f[] = {&w->x, &w->h, &w->qkv, &w->k, &w->v, &w->att, &w->tmp, &w->mlp,
                   &w->tf, &w->s, &w->c, &w->mod, &w->cos, &w->sin};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) be->free(*f[i]), *f[i] = NULL;
    be->free(w->ids);
}

static int work_alloc(const backend *be, struct work *w, size_t nb, size_t L, size_t H, size_t C,
                      size_t d, err_t *e)
{
    size_t rows = nb * L;
    memset(w, 0, sizeof *w);
    bool ok = (w->x = be->alloc(rows * H * 4)) && (w->h = be->alloc(rows * H * 4)) &&
              (w->qkv = be->alloc(rows * 3 * H * 4)) && (w->k = be->alloc(rows * H * 4)) &&
              (w->v = be->alloc(rows * H * 4)) && (w->att = be->alloc(rows * H * 4)) &&
              (w->tmp = be->alloc(rows * H * 4)) && (w->mlp = be->alloc(rows * 4 * H * 4)) &&
              (w->tf = be->alloc(nb * SEDD_FREQ * 4)) && (w->s = be->alloc(nb * C * 4)) &&
              (w->c = be->alloc(nb * C * 4)) && (w->mod = be->alloc(nb * 6 * H * 4)) &&
              (w->cos = be->alloc(L * d * 4)) && (w->sin = be->alloc(L * d * 4)) &&
              (w->ids = be->alloc(rows * sizeof *w->ids));
    if (!ok) {
        work_free(be, w);
        return err_set(e, "sedd_forward: out of memory for %zu rows", rows);
    }
    return 0;
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

/* The forward pass of nb sequences together (trace needs them stacked; otherwise nb = 1). */
static int forward_chunk(sedd_model_t *m, const int64_t *x, const float *sigma, int nb, int L,
                         float *out, sedd_trace_fn trace, void *tctx, err_t *e)
{
    const backend *be = m->be;
    const int H = (int)m->cfg.hidden_size, C = (int)m->cfg.cond_dim, V = (int)m->cfg.vocab;
    const int nh = (int)m->cfg.n_heads, d = H / nh, rows = nb * L;
    struct work w;
    if (work_alloc(be, &w, (size_t)nb, (size_t)L, (size_t)H, (size_t)C, (size_t)d, e) < 0)
        return ERR_FAIL;
    size_t hsz = (size_t)rows * (size_t)H;
    char name[96];
    /* host-side inputs: ids, sigma embedding, rotary tables (tiny) */
    int32_t *ids = malloc((size_t)rows * sizeof *ids);
    float *tf = malloc((size_t)nb * SEDD_FREQ * sizeof *tf);
    float *cs = malloc((size_t)L * (size_t)d * 2 * sizeof *cs);
    if (!ids || !tf || !cs) {
        free(ids), free(tf), free(cs);
        work_free(be, &w);
        return err_set(e, "sedd_forward: out of memory");
    }
    for (int i = 0; i < rows; i++) ids[i] = (int32_t)x[i];
    sedd_sigma_features(sigma, nb, tf);
    sedd_rotary_tables(L, d, cs, cs + (size_t)L * (size_t)d);
    int rc = 0;
    rc |= be->to_device(w.ids, ids, (size_t)rows * sizeof *ids, e);
    rc |= be->to_device(w.tf, tf, (size_t)nb * SEDD_FREQ * sizeof *tf, e);
    rc |= be->to_device(w.cos, cs, (size_t)L * (size_t)d * sizeof *cs, e);
    rc |= be->to_device(w.sin, cs + (size_t)L * (size_t)d, (size_t)L * (size_t)d * sizeof *cs, e);
    free(ids), free(tf), free(cs);
    if (rc) {
        work_free(be, &w);
        return ERR_FAIL;
    }

    be->embed(w.x, m->w.embed, NULL, w.ids, rows, L, 0, H);
    emit(be, trace, tctx, "x_embed", w.x, hsz);
    emit(be, trace, tctx, "t_freq", w.tf, (size_t)nb * SEDD_FREQ);
    emit(be, trace, tctx, "rotary_cos", w.cos, (size_t)L * (size_t)d);
    emit(be, trace, tctx, "rotary_sin", w.sin, (size_t)L * (size_t)d);
    tiled_matmul(be, w.c, w.tf, m->w.map0, m->w.map0_b, nb, SEDD_FREQ, C);
    be->silu(w.c, w.c, (size_t)nb * (size_t)C);
    tiled_matmul(be, w.s, w.c, m->w.map2, m->w.map2_b, nb, C, C);
    emit(be, trace, tctx, "sigma_map_out", w.s, (size_t)nb * (size_t)C);
    be->silu(w.c, w.s, (size_t)nb * (size_t)C);
    emit(be, trace, tctx, "c", w.c, (size_t)nb * (size_t)C);

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
        tiled_matmul(be, w.mod, w.c, bl->ada, bl->ada_b, nb, C, 6 * H);
        TRACE("adaLN_out", w.mod, (size_t)nb * ms);
        be->layernorm(w.h, w.x, bl->norm1, NULL, rows, H, SEDD_LN_EPS);
        TRACE("norm1_out", w.h, hsz);
        be->modulate(w.h, w.h, w.mod, w.mod + H, ms, nb, L, H);
        TRACE("attn_in_modulated", w.h, hsz);
        tiled_matmul(be, w.qkv, w.h, bl->qkv, NULL, rows, H, 3 * H);
        TRACE("qkv", w.qkv, 3 * hsz);
        be->rotary(w.qkv, 3 * (size_t)H, w.cos, w.sin, nb, L, nh, d);
        be->rotary(w.qkv + H, 3 * (size_t)H, w.cos, w.sin, nb, L, nh, d);
        TRACE("qkv_rotary", w.qkv, 3 * hsz);
        if (tiled_attention(be, w.att, w.qkv, w.k, w.v, nb, L, nh, d, e) < 0) {
            work_free(be, &w);
            return ERR_FAIL;
        }
        TRACE("attn_core_out", w.att, hsz);
        tiled_matmul(be, w.tmp, w.att, bl->attn_out, NULL, rows, H, H);
        TRACE("attn_out", w.tmp, hsz);
        be->gated_add(w.x, w.mod + 2 * H, ms, w.tmp, nb, L, H);
        TRACE("x_after_attn", w.x, hsz);
        be->layernorm(w.h, w.x, bl->norm2, NULL, rows, H, SEDD_LN_EPS);
        TRACE("norm2_out", w.h, hsz);
        be->modulate(w.h, w.h, w.mod + 3 * H, w.mod + 4 * H, ms, nb, L, H);
        TRACE("mlp_in_modulated", w.h, hsz);
        tiled_matmul(be, w.mlp, w.h, bl->fc1, bl->fc1_b, rows, H, 4 * H);
        TRACE("mlp_fc1", w.mlp, 4 * hsz);
        be->gelu_tanh(w.mlp, w.mlp, 4 * hsz);
        TRACE("mlp_gelu", w.mlp, 4 * hsz);
        tiled_matmul(be, w.tmp, w.mlp, bl->fc2, bl->fc2_b, rows, 4 * H, H);
        TRACE("mlp_fc2", w.tmp, hsz);
        be->gated_add(w.x, w.mod + 5 * H, ms, w.tmp, nb, L, H);
        TRACE("out", w.x, hsz);
#undef TRACE
    }
    /* final layer: shift, scale (no gate) */
    tiled_matmul(be, w.mod, w.c, m->w.out_ada, m->w.out_ada_b, nb, C, 2 * H);
    emit(be, trace, tctx, "final.adaLN_out", w.mod, (size_t)nb * 2 * (size_t)H);
    be->layernorm(w.h, w.x, m->w.norm_f, NULL, rows, H, SEDD_LN_EPS);
    emit(be, trace, tctx, "final.norm_out", w.h, hsz);
    be->modulate(w.h, w.h, w.mod, w.mod + H, 2 * (size_t)H, nb, L, H);
    emit(be, trace, tctx, "final.linear_in_modulated", w.h, hsz);
    size_t osz = (size_t)rows * (size_t)V;
    float *logits = out;
    bool host_out = be == &backend_cpu; /* the CPU backend's memory is host memory */
    if (!host_out && !(logits = be->alloc(osz * sizeof *logits))) {
        work_free(be, &w);
        return err_set(e, "sedd_forward: out of memory for the logits");
    }
    tiled_matmul(be, logits, w.h, m->w.out_w, m->w.out_b, rows, H, V);
    work_free(be, &w);
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

int sedd_forward(sedd_model_t *m, const int64_t *x, const float *sigma, int B, int L,
                 float *out, sedd_trace_fn trace, void *trace_ctx, err_t *e)
{
    const int64_t V = m->cfg.vocab;
    for (size_t i = 0; i < (size_t)B * (size_t)L; i++)
        if (x[i] < 0 || x[i] >= V)
            return err_set(e, "sedd_forward: token %lld at position %zu is outside the model's "
                              "vocabulary (0..%lld)", (long long)x[i], i % (size_t)L,
                           (long long)V - 1);
    if (trace) return forward_chunk(m, x, sigma, B, L, out, trace, trace_ctx, e);
    for (int b = 0; b < B; b++) {
        size_t o = (size_t)b * (size_t)L;
        if (forward_chunk(m, x + o, sigma + b, 1, L, out + o * (size_t)V, NULL, NULL, e) < 0)
            return ERR_FAIL;
    }
    return 0;
}

int sedd_score(void *ctx, const int64_t *x, const float *sigma, int B, int L, float *log_score,
               err_t *e)
{
    return sedd_forward(ctx, x, sigma, B, L, log_score, NULL, NULL, e);
}
