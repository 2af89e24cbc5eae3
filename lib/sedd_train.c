/* sedd_train: SEDD's forward with saved activations, its backward through the backend's training
 * ops, and the score-entropy loss (see sedd_train.h). Shapes: B sequences of L positions,
 * N = B·L rows, H hidden, C cond_dim, F = SEDD_FREQ, nh heads of d = H/nh, V vocabulary.
 * Activations kept per block: its input x, the adaLN output, qkv after rotary, the attention
 * output, the attention projection, the residual after attention and the two MLP products; the
 * norms, their modulation, the GELU and the K/V caches are recomputed in the backward pass. */
#include "sedd_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "philox.h"
#include "sedd_graph.h"
#include "sedd_model.h"
#include "sedd_noise.h"
#include "sedd_sampler.h"

/* rows of the output projection per pass: its logits are (HEAD_ROWS, V) */
enum { HEAD_ROWS = 256 };

/* Philox lane of the loss's draws (t and x_t), apart from lane 0 that other draws use */
#define SEDD_TRAIN_LANE 0x5EDDu
/* position of the draw of a row's t (token positions are below 2^31) */
#define SEDD_TRAIN_T_POS 0x80000000u

/* what one block keeps for its backward pass */
struct block_act {
    float *mod;   /* (B,6H) adaLN output */
    float *qkv;   /* (N,3H) after rotary */
    float *att;   /* (N,H) attention output */
    float *ao;    /* (N,H) attention projection */
    float *xm;    /* (N,H) residual after the attention branch */
    float *f1;    /* (N,4H) MLP pre-activation */
    float *f2;    /* (N,H) MLP output */
};

/* Activations, work and gradient buffers of a batch of up to B sequences: one backend
 * allocation (arena), carved in 16-float pieces. */
struct acts {
    int B;
    float *arena;
    int32_t *ids, *rowid;            /* (N) tokens; the rows that reach the output layer */
    float *tf, *c0, *c1, *s, *c;     /* (B,F) features, (B,C) sigma_map stages, c = SiLU(s) */
    float *cos, *sin;                /* (L,d) */
    float **xs;                      /* (n_blocks + 1) of (N,H): block inputs, final x */
    struct block_act *blk;           /* (n_blocks) */
    float *modf, *lnf, *hf;          /* final layer: (B,2H), (N,H), (N,H) */
    float *k, *v, *ln, *h, *g4;      /* recomputed: (N,H) ×4, (N,4H) */
    float *dx, *dh, *dln, *dy, *dy2, *d4a, *d4b, *dqkv, *dk, *dv;
    float *dmod, *dmodf, *dc, *dcs, *dc1, *dc0;
    float *hm, *dhm, *logits;        /* head chunk: (HEAD_ROWS,H) ×2, (HEAD_ROWS,V) */
};

typedef struct sedd_train {
    train_model base;  /* first member: a train_model * of this kind is a sedd_train * */
    struct config_sedd cfg;
    sedd_layout lo;
    struct train_tensor *tab;
    sedd_weights w, g;  /* views of params and of grads */
    sedd_graph graph;
    sedd_noise noise;
    struct acts a;
    float *host_rows;   /* (HEAD_ROWS,V) host copy of logits when the backend is not the CPU */
} sedd_train;

/* ---- buffers ------------------------------------------------------------------------------ */

static void zero(const backend *be, float *p, size_t n) { be->zero(p, n * sizeof *p); }

/* dst (B,L,H) = src */
static void copy_rows(const sedd_train *st, float *dst, const float *src, int B)
{
    const int L = st->base.block_len, H = (int)st->cfg.hidden_size;
    st->base.be->copy(dst, src, (size_t)B * (size_t)L * (size_t)H * sizeof *dst);
}

/* Points every buffer of a for B sequences into base (NULL: sizes only); returns the floats. */
static size_t acts_carve(sedd_train *st, struct acts *a, float *base, int B)
{
    const size_t L = (size_t)st->base.block_len, H = (size_t)st->cfg.hidden_size;
    const size_t C = (size_t)st->cfg.cond_dim, V = (size_t)st->cfg.vocab;
    const size_t N = (size_t)B * L, d = H / (size_t)st->cfg.n_heads, Bs = (size_t)B;
    size_t off = 0;
#define TAKE(ptr, n)                                                                           \
    ((ptr) = (void *)(base ? base + off : NULL), off += ((size_t)(n) + 15) & ~(size_t)15)
    TAKE(a->ids, N), TAKE(a->rowid, N);
    TAKE(a->tf, Bs * SEDD_FREQ), TAKE(a->c0, Bs * C), TAKE(a->c1, Bs * C), TAKE(a->s, Bs * C);
    TAKE(a->c, Bs * C), TAKE(a->cos, L * d), TAKE(a->sin, L * d);
    for (int64_t i = 0; i <= st->cfg.n_blocks; i++) TAKE(a->xs[i], N * H);
    for (int64_t i = 0; i < st->cfg.n_blocks; i++) {
        struct block_act *ba = &a->blk[i];
        TAKE(ba->mod, Bs * 6 * H), TAKE(ba->qkv, N * 3 * H), TAKE(ba->att, N * H);
        TAKE(ba->ao, N * H), TAKE(ba->xm, N * H), TAKE(ba->f1, N * 4 * H), TAKE(ba->f2, N * H);
    }
    TAKE(a->modf, Bs * 2 * H), TAKE(a->lnf, N * H), TAKE(a->hf, N * H);
    TAKE(a->k, N * H), TAKE(a->v, N * H), TAKE(a->ln, N * H), TAKE(a->h, N * H);
    TAKE(a->g4, N * 4 * H);
    TAKE(a->dx, N * H), TAKE(a->dh, N * H), TAKE(a->dln, N * H), TAKE(a->dy, N * H);
    TAKE(a->dy2, N * H), TAKE(a->d4a, N * 4 * H), TAKE(a->d4b, N * 4 * H);
    TAKE(a->dqkv, N * 3 * H), TAKE(a->dk, N * H), TAKE(a->dv, N * H);
    TAKE(a->dmod, Bs * 6 * H), TAKE(a->dmodf, Bs * 2 * H), TAKE(a->dc, Bs * C);
    TAKE(a->dcs, Bs * C), TAKE(a->dc1, Bs * C), TAKE(a->dc0, Bs * C);
    TAKE(a->hm, HEAD_ROWS * H), TAKE(a->dhm, HEAD_ROWS * H), TAKE(a->logits, HEAD_ROWS * V);
#undef TAKE
    return off;
}

/* Makes the buffers hold at least B sequences; the arena starts zeroed. */
static int acts_reserve(sedd_train *st, int B, err_t *e)
{
    struct acts *a = &st->a;
    if (a->B >= B) return 0;
    const backend *be = st->base.be;
    be->free(a->arena);
    a->arena = NULL;
    a->B = 0;
    size_t n = acts_carve(st, a, NULL, B);
    if (!(a->arena = be->alloc(n * sizeof(float))))
        return err_set(e, "sedd_train: out of memory for the activations of %d sequences "
                          "(%.1f GiB)", B, (double)n * 4 / (1u << 30));
    be->zero(a->arena, n * sizeof(float));
    acts_carve(st, a, a->arena, B);
    a->B = B;
    return 0;
}

/* ---- forward ------------------------------------------------------------------------------ */

/* a->ln = LN(x) with weight norm, a->h = modulate(a->ln, shift, scale) (chunks of mod) */
static void norm_modulate(sedd_train *st, const float *x, const float *norm, const float *shift,
                          const float *scale, size_t mod_stride, int B)
{
    const backend *be = st->base.be;
    const int L = st->base.block_len, H = (int)st->cfg.hidden_size, N = B * L;
    be->layernorm(st->a.ln, x, norm, NULL, N, H, SEDD_LN_EPS);
    be->modulate(st->a.h, st->a.ln, shift, scale, mod_stride, B, L, H);
}

/* The transformer on tokens x (B,L) at noise sigma (B), both host memory, up to a->hf (the
 * final layer's modulated norm), keeping what the backward pass reads. */
static int forward(sedd_train *st, const int64_t *x, const float *sigma, int B, err_t *e)
{
    const backend *be = st->base.be;
    const int L = st->base.block_len, H = (int)st->cfg.hidden_size, C = (int)st->cfg.cond_dim;
    const int nh = (int)st->cfg.n_heads, d = H / nh, N = B * L;
    const size_t ms = 6 * (size_t)H;
    struct acts *a = &st->a;
    const sedd_weights *w = &st->w;
    int32_t *ids = malloc((size_t)N * sizeof *ids);
    float *tf = malloc((size_t)B * SEDD_FREQ * sizeof *tf);
    float *cs = malloc(2 * (size_t)L * (size_t)d * sizeof *cs);
    int rc = ids && tf && cs ? 0 : err_set(e, "sedd_train: out of memory");
    if (rc == 0) {
        for (int i = 0; i < N; i++) ids[i] = (int32_t)x[i];
        sedd_sigma_features(sigma, B, tf);
        sedd_rotary_tables(L, d, cs, cs + (size_t)L * (size_t)d);
        if (be->to_device(a->ids, ids, (size_t)N * sizeof *ids, e) < 0 ||
            be->to_device(a->tf, tf, (size_t)B * SEDD_FREQ * sizeof *tf, e) < 0 ||
            be->to_device(a->cos, cs, (size_t)L * (size_t)d * sizeof *cs, e) < 0 ||
            be->to_device(a->sin, cs + (size_t)L * (size_t)d, (size_t)L * (size_t)d * sizeof *cs,
                          e) < 0)
            rc = ERR_FAIL;
    }
    free(ids), free(tf), free(cs);
    if (rc < 0) return ERR_FAIL;

    be->matmul(a->c0, a->tf, w->map0, w->map0_b, B, SEDD_FREQ, C, BE_OUT_IN, false);
    be->silu(a->c1, a->c0, (size_t)B * (size_t)C);
    be->matmul(a->s, a->c1, w->map2, w->map2_b, B, C, C, BE_OUT_IN, false);
    be->silu(a->c, a->s, (size_t)B * (size_t)C);
    be->embed(a->xs[0], w->embed, NULL, a->ids, N, L, 0, H);
    const float att_scale = 1.0f / sqrtf((float)d);
    for (int64_t i = 0; i < st->cfg.n_blocks; i++) {
        const struct sedd_block_w *bw = &w->blocks[i];
        struct block_act *ba = &a->blk[i];
        be->matmul(ba->mod, a->c, bw->ada, bw->ada_b, B, C, 6 * H, BE_OUT_IN, false);
        norm_modulate(st, a->xs[i], bw->norm1, ba->mod, ba->mod + H, ms, B);
        be->matmul(ba->qkv, a->h, bw->qkv, NULL, N, H, 3 * H, BE_OUT_IN, false);
        be->rotary(ba->qkv, 3 * (size_t)H, a->cos, a->sin, B, L, nh, d);
        be->rotary(ba->qkv + H, 3 * (size_t)H, a->cos, a->sin, B, L, nh, d);
        be->kv_store(a->k, a->v, ba->qkv, B, L, nh, d, 0, L);
        be->attention(ba->att, ba->qkv, 3 * (size_t)H, a->k, a->v, B, L, L, L, nh, d, -1, NULL,
                      att_scale);
        be->matmul(ba->ao, ba->att, bw->attn_out, NULL, N, H, H, BE_OUT_IN, false);
        copy_rows(st, ba->xm, a->xs[i], B);
        be->gated_add(ba->xm, ba->mod + 2 * H, ms, ba->ao, B, L, H);
        norm_modulate(st, ba->xm, bw->norm2, ba->mod + 3 * H, ba->mod + 4 * H, ms, B);
        be->matmul(ba->f1, a->h, bw->fc1, bw->fc1_b, N, H, 4 * H, BE_OUT_IN, false);
        be->gelu_tanh(a->g4, ba->f1, (size_t)N * 4 * (size_t)H);
        be->matmul(ba->f2, a->g4, bw->fc2, bw->fc2_b, N, 4 * H, H, BE_OUT_IN, false);
        copy_rows(st, a->xs[i + 1], ba->xm, B);
        be->gated_add(a->xs[i + 1], ba->mod + 5 * H, ms, ba->f2, B, L, H);
    }
    be->matmul(a->modf, a->c, w->out_ada, w->out_ada_b, B, C, 2 * H, BE_OUT_IN, false);
    be->layernorm(a->lnf, a->xs[st->cfg.n_blocks], w->norm_f, NULL, N, H, SEDD_LN_EPS);
    be->modulate(a->hf, a->lnf, a->modf, a->modf + H, 2 * (size_t)H, B, L, H);
    return 0;
}

/* ---- output layer and loss ---------------------------------------------------------------- */

/* What the output layer is run for: log-scores to copy out, or the loss (and its gradient). */
struct head_job {
    const int64_t *x0, *xt;   /* (N) host */
    const float *sigma_f;     /* (B) the model's fp32 noise levels */
    const double *sigma;      /* (B) for the loss */
    const double *weight;     /* (B) ∂loss/∂DSE of a position of sequence b */
    float *out;               /* (N,V) log-scores, or NULL: the loss */
    double *dse;              /* (N) score entropy of each scored row (loss only) */
    bool backward;            /* a->dh += ∂loss/∂hf */
};

/* The output projection, scale_by_sigma shift and zero at x_t on the rows row[0..M) (host and
 * a->rowid) of hf, HEAD_ROWS at a time, then per row: a copy to out, or the score entropy and
 * (backward) its gradient through the projection into a->dh. */
static int head(sedd_train *st, const int32_t *row, int M, const struct head_job *job, err_t *e)
{
    const backend *be = st->base.be;
    const int H = (int)st->cfg.hidden_size, L = st->base.block_len;
    const int64_t V = st->cfg.vocab;
    struct acts *a = &st->a;
    const bool on_host = be == &backend_cpu;
    for (int r0 = 0; r0 < M; r0 += HEAD_ROWS) {
        const int n = M - r0 < HEAD_ROWS ? M - r0 : HEAD_ROWS;
        const size_t nv = (size_t)n * (size_t)V;
        be->embed(a->hm, a->hf, NULL, a->rowid + r0, n, n, 0, H); /* gather the rows */
        be->matmul(a->logits, a->hm, st->w.out_w, st->w.out_b, n, H, (int)V, BE_OUT_IN, false);
        float *rows = on_host ? a->logits : st->host_rows;
        if (!on_host && be->to_host(rows, a->logits, nv * sizeof *rows, e) < 0) return ERR_FAIL;
        int failed = 0;
#pragma omp parallel if (nv > (1u << 18))
        {
            float *grad = job->backward ? malloc((size_t)V * sizeof *grad) : NULL;
            if (job->backward && !grad) {
#pragma omp atomic write
                failed = 1;
            }
#pragma omp for schedule(static)
            for (int i = 0; i < n; i++) {
                const int r = row[r0 + i], b = r / L;
                float *ls = rows + (size_t)i * (size_t)V;
                sedd_finish_rows(ls, 1, V, job->sigma_f[b], st->cfg.scale_by_sigma, &job->xt[r]);
                if (job->out) {
                    memcpy(job->out + (size_t)r * (size_t)V, ls, (size_t)V * sizeof *ls);
                    continue;
                }
                if (job->backward && !grad) continue;
                job->dse[r] = sedd_graph_score_entropy_grad(&st->graph, ls, job->sigma[b],
                                                            job->xt[r], job->x0[r],
                                                            job->weight[b], grad);
                if (grad) memcpy(ls, grad, (size_t)V * sizeof *ls);
            }
            free(grad);
        }
        if (failed) return err_set(e, "sedd_train: out of memory for a gradient row");
        if (!job->backward) continue;
        /* the shift is a constant and the zeroed column has zero gradient: rows now hold
         * ∂loss/∂logits */
        if (!on_host && be->to_device(a->logits, rows, nv * sizeof *rows, e) < 0) return ERR_FAIL;
        zero(be, a->dhm, (size_t)n * (size_t)H);
        be->matmul_backward(a->dhm, st->g.out_w, st->g.out_b, a->logits, a->hm, st->w.out_w, n,
                            H, (int)V, BE_OUT_IN);
        be->embed_backward(a->dh, NULL, a->rowid + r0, a->dhm, n, n, H); /* scatter back */
    }
    return 0;
}

/* ---- backward ----------------------------------------------------------------------------- */

/* grads += ∂loss/∂params given a->dh = ∂loss/∂hf, after forward() on the same batch. */
static void run_backward(sedd_train *st, int B)
{
    const backend *be = st->base.be;
    const int L = st->base.block_len, H = (int)st->cfg.hidden_size, C = (int)st->cfg.cond_dim;
    const int nh = (int)st->cfg.n_heads, d = H / nh, N = B * L;
    const size_t ms = 6 * (size_t)H, nH = (size_t)N * (size_t)H, BC = (size_t)B * (size_t)C;
    struct acts *a = &st->a;
    const sedd_weights *w = &st->w, *g = &st->g;
    const float att_scale = 1.0f / sqrtf((float)d);

    /* final layer: hf = modulate(LN_f(x), shift, scale) */
    zero(be, a->dln, nH);
    zero(be, a->dmodf, (size_t)B * 2 * (size_t)H);
    be->modulate_backward(a->dln, a->dmodf, a->dmodf + H, a->dh, a->lnf, a->modf + H,
                          2 * (size_t)H, B, L, H);
    zero(be, a->dx, nH);
    be->layernorm_backward(a->dx, g->norm_f, NULL, a->dln, a->xs[st->cfg.n_blocks], w->norm_f,
                           N, H, SEDD_LN_EPS);
    zero(be, a->dc, BC);
    be->matmul_backward(a->dc, g->out_ada, g->out_ada_b, a->dmodf, a->c, w->out_ada, B, C,
                        2 * H, BE_OUT_IN);

    for (int64_t i = st->cfg.n_blocks - 1; i >= 0; i--) {
        const struct sedd_block_w *bw = &w->blocks[i], *bg = &g->blocks[i];
        const struct block_act *ba = &a->blk[i];
        zero(be, a->dmod, (size_t)B * ms);
        /* x_{i+1} = xm + gate_mlp · f2; dx flows on to xm unchanged */
        zero(be, a->dy, nH);
        be->gated_add_backward(a->dmod + 5 * H, a->dy, ba->mod + 5 * H, ms, a->dx, ba->f2, B, L,
                               H);
        be->gelu_tanh(a->g4, ba->f1, nH * 4);
        zero(be, a->d4a, nH * 4);
        be->matmul_backward(a->d4a, bg->fc2, bg->fc2_b, a->dy, a->g4, bw->fc2, N, 4 * H, H,
                            BE_OUT_IN);
        zero(be, a->d4b, nH * 4);
        be->gelu_tanh_backward(a->d4b, ba->f1, a->d4a, nH * 4);
        norm_modulate(st, ba->xm, bw->norm2, ba->mod + 3 * H, ba->mod + 4 * H, ms, B);
        zero(be, a->dh, nH);
        be->matmul_backward(a->dh, bg->fc1, bg->fc1_b, a->d4b, a->h, bw->fc1, N, H, 4 * H,
                            BE_OUT_IN);
        zero(be, a->dln, nH);
        be->modulate_backward(a->dln, a->dmod + 3 * H, a->dmod + 4 * H, a->dh, a->ln,
                              ba->mod + 4 * H, ms, B, L, H);
        be->layernorm_backward(a->dx, bg->norm2, NULL, a->dln, ba->xm, bw->norm2, N, H,
                               SEDD_LN_EPS);
        /* xm = x_i + gate_msa · ao */
        zero(be, a->dy, nH);
        be->gated_add_backward(a->dmod + 2 * H, a->dy, ba->mod + 2 * H, ms, a->dx, ba->ao, B, L,
                               H);
        zero(be, a->dy2, nH);
        be->matmul_backward(a->dy2, bg->attn_out, NULL, a->dy, ba->att, bw->attn_out, N, H, H,
                            BE_OUT_IN);
        be->kv_store(a->k, a->v, ba->qkv, B, L, nh, d, 0, L);
        zero(be, a->dqkv, nH * 3);
        zero(be, a->dk, nH);
        zero(be, a->dv, nH);
        be->attention_backward(a->dqkv, a->dk, a->dv, a->dy2, ba->qkv, 3 * (size_t)H, a->k,
                               a->v, B, L, nh, d, false, att_scale);
        be->kv_store_backward(a->dqkv, a->dk, a->dv, B, L, nh, d);
        be->rotary_backward(a->dqkv, 3 * (size_t)H, a->cos, a->sin, B, L, nh, d);
        be->rotary_backward(a->dqkv + H, 3 * (size_t)H, a->cos, a->sin, B, L, nh, d);
        norm_modulate(st, a->xs[i], bw->norm1, ba->mod, ba->mod + H, ms, B);
        zero(be, a->dh, nH);
        be->matmul_backward(a->dh, bg->qkv, NULL, a->dqkv, a->h, bw->qkv, N, H, 3 * H,
                            BE_OUT_IN);
        zero(be, a->dln, nH);
        be->modulate_backward(a->dln, a->dmod, a->dmod + H, a->dh, a->ln, ba->mod + H, ms, B, L,
                              H);
        be->layernorm_backward(a->dx, bg->norm1, NULL, a->dln, a->xs[i], bw->norm1, N, H,
                               SEDD_LN_EPS);
        be->matmul_backward(a->dc, bg->ada, bg->ada_b, a->dmod, a->c, bw->ada, B, C, 6 * H,
                            BE_OUT_IN);
    }
    be->embed_backward(g->embed, NULL, a->ids, a->dx, N, L, H);
    /* c = SiLU(s), s = map2(SiLU(c0)), c0 = map0(tf) */
    zero(be, a->dcs, BC);
    be->silu_backward(a->dcs, a->s, a->dc, BC);
    zero(be, a->dc1, BC);
    be->matmul_backward(a->dc1, g->map2, g->map2_b, a->dcs, a->c1, w->map2, B, C, C, BE_OUT_IN);
    zero(be, a->dc0, BC);
    be->silu_backward(a->dc0, a->c0, a->dc1, BC);
    be->matmul_backward(NULL, g->map0, g->map0_b, a->dc0, a->tf, w->map0, B, SEDD_FREQ, C,
                        BE_OUT_IN);
}

/* ---- the train_model entry points --------------------------------------------------------- */

/* Checks tokens: x0 (if not NULL) below tokens, xt below vocab. */
static int check_tokens(const sedd_train *st, const int64_t *x0, const int64_t *xt, size_t n,
                        err_t *e)
{
    const int L = st->base.block_len;
    for (size_t i = 0; i < n; i++) {
        if (x0 && (x0[i] < 0 || x0[i] >= st->cfg.tokens))
            return err_set(e, "sedd_train: token %lld in sequence %zu at position %zu is outside "
                              "the data vocabulary 0..%lld", (long long)x0[i], i / (size_t)L,
                           i % (size_t)L, (long long)st->cfg.tokens - 1);
        if (xt[i] < 0 || xt[i] >= st->cfg.vocab)
            return err_set(e, "sedd_train: noised token %lld in sequence %zu at position %zu is "
                              "outside the model's vocabulary 0..%lld", (long long)xt[i],
                           i / (size_t)L, i % (size_t)L, (long long)st->cfg.vocab - 1);
    }
    return 0;
}

int sedd_train_loss_given(train_model *m, const int64_t *x0, const int64_t *xt, const double *t,
                          int B, double *per_seq, double *loss, bool backward, err_t *e)
{
    sedd_train *st = (sedd_train *)m;
    const int L = m->block_len;
    const size_t N = (size_t)B * (size_t)L;
    if (B < 1) return err_set(e, "sedd_train: empty batch");
    if (backward && !m->be->matmul_backward)
        return err_set(e, "sedd_train: backend %s has no training ops", m->be->name);
    if (check_tokens(st, x0, xt, N, e) < 0) return ERR_FAIL;
    double *sig = malloc(3 * (size_t)B * sizeof *sig), *dse = calloc(N, sizeof *dse);
    float *sig_f = malloc((size_t)B * sizeof *sig_f);
    int32_t *row = malloc(N * sizeof *row);
    int rc = sig && dse && sig_f && row ? 0 : err_set(e, "sedd_train: out of memory");
    if (rc == 0) rc = acts_reserve(st, B, e);
    double *dsig = sig + B, *weight = sig + 2 * B;
    if (rc == 0) {
        for (int b = 0; b < B; b++) {
            sig[b] = sedd_noise_total(&st->noise, t[b]);
            dsig[b] = sedd_noise_rate(&st->noise, t[b]);
            sig_f[b] = (float)sig[b];
            weight[b] = dsig[b] / ((double)B * L);
        }
        rc = forward(st, xt, sig_f, B, e);
    }
    /* only positions whose score entropy depends on the log-scores reach the output layer: the
     * masked ones for absorb, all for uniform */
    int M = 0;
    for (size_t i = 0; rc == 0 && i < N; i++)
        if (st->graph.type != CONFIG_GRAPH_ABSORB || xt[i] == st->graph.n) row[M++] = (int32_t)i;
    if (rc == 0 && M > 0)
        rc = m->be->to_device(st->a.rowid, row, (size_t)M * sizeof *row, e);
    if (rc == 0 && backward) zero(m->be, st->a.dh, N * (size_t)st->cfg.hidden_size);
    struct head_job job = {x0, xt, sig_f, sig, weight, NULL, dse, backward};
    if (rc == 0) rc = head(st, row, M, &job, e);
    if (rc == 0) {
        double mean = 0;
        for (int b = 0; b < B; b++) {
            double sum = 0; /* in position order: the same bits for any thread count */
            for (int l = 0; l < L; l++) sum += dse[(size_t)b * (size_t)L + (size_t)l];
            if (per_seq) per_seq[b] = dsig[b] * sum;
            mean += dsig[b] * sum;
        }
        if (loss) *loss = mean / B / L;
        if (backward) run_backward(st, B);
    }
    free(sig), free(dse), free(sig_f), free(row);
    return rc;
}

int sedd_train_log_scores(train_model *m, const int64_t *x, const float *sigma, int B,
                          float *out, err_t *e)
{
    sedd_train *st = (sedd_train *)m;
    const size_t N = (size_t)B * (size_t)m->block_len;
    if (B < 1) return err_set(e, "sedd_train: empty batch");
    if (check_tokens(st, NULL, x, N, e) < 0) return ERR_FAIL;
    int32_t *row = malloc(N * sizeof *row);
    if (!row) return err_set(e, "sedd_train: out of memory");
    for (size_t i = 0; i < N; i++) row[i] = (int32_t)i;
    struct head_job job = {NULL, x, sigma, NULL, NULL, out, NULL, false};
    int rc = acts_reserve(st, B, e);
    if (rc == 0) rc = forward(st, x, sigma, B, e);
    if (rc == 0) rc = m->be->to_device(st->a.rowid, row, N * sizeof *row, e);
    if (rc == 0) rc = head(st, row, (int)N, &job, e);
    free(row);
    return rc;
}

/* train_model.loss: t = ε + (1 − ε) U per row and x_t = sample_transition(x0, σ(t)) per
 * position, every uniform from Philox (seed, key, row, position) on SEDD_TRAIN_LANE (t at
 * position SEDD_TRAIN_T_POS; for uniform the replacement token is the other two words mod N). */
static int loss_fn(train_model *m, const int32_t *blocks, int B, uint64_t seed, uint64_t key,
                   bool backward, double *loss, err_t *e)
{
    sedd_train *st = (sedd_train *)m;
    const int L = m->block_len;
    const size_t N = (size_t)B * (size_t)L;
    int64_t *x0 = malloc(N * sizeof *x0), *xt = malloc(N * sizeof *xt);
    double *t = malloc((size_t)(B > 0 ? B : 1) * sizeof *t);
    int rc = x0 && xt && t ? 0 : err_set(e, "sedd_train: out of memory");
    for (int b = 0; rc == 0 && b < B; b++) {
        uint32_t w[4];
        philox_draw(seed, key, (uint32_t)b, SEDD_TRAIN_T_POS, SEDD_TRAIN_LANE, w);
        t[b] = (1 - SEDD_LOSS_EPS) * philox_u01_f64(w[0], w[1]) + SEDD_LOSS_EPS;
        const double sigma = sedd_noise_total(&st->noise, t[b]);
        for (int l = 0; l < L; l++) {
            const size_t i = (size_t)b * (size_t)L + (size_t)l;
            x0[i] = blocks[i];
            philox_draw(seed, key, (uint32_t)b, (uint32_t)l, SEDD_TRAIN_LANE, w);
            int64_t rt = (int64_t)((((uint64_t)w[2] << 32 | w[3]) >> 11) %
                                   (uint64_t)st->graph.n);
            xt[i] = sedd_graph_sample_transition(&st->graph, x0[i], sigma,
                                                 philox_u01_f64(w[0], w[1]), rt);
        }
    }
    if (rc == 0) rc = sedd_train_loss_given(m, x0, xt, t, B, NULL, loss, backward, e);
    free(x0), free(xt), free(t);
    return rc;
}

/* <dir>/config.json in the hydra layout that config.c reads (written atomically). */
static int write_config(const train_model *m, const char *dir, err_t *e)
{
    const struct config_sedd *c = &((const sedd_train *)m)->cfg;
    const char *name = c->hidden_size == 768 && c->n_blocks == 12   ? "small"
                       : c->hidden_size == 1024 && c->n_blocks == 24 ? "medium"
                                                                     : "custom";
    json_t *root = json_pack(
        "{s:I, s:{s:s}, s:{s:s, s:f, s:f}, s:{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:b, s:f}}",
        "tokens", (json_int_t)c->tokens, "graph", "type", config_graph_name(c->graph), "noise",
        "type", config_noise_name(c->noise), "sigma_min", c->sigma_min, "sigma_max",
        c->sigma_max, "model", "name", name, "type", "ddit", "hidden_size",
        (json_int_t)c->hidden_size, "cond_dim", (json_int_t)c->cond_dim, "length",
        (json_int_t)c->length, "n_blocks", (json_int_t)c->n_blocks, "n_heads",
        (json_int_t)c->n_heads, "scale_by_sigma", (int)c->scale_by_sigma, "dropout", 0.0);
    if (!root) return err_set(e, "sedd_train: out of memory for config.json");
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int rc = json_dump_file(root, tmp, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (rc != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return err_set_errno(e, "%s: cannot write", path);
    }
    return 0;
}

static void model_free(train_model *m)
{
    if (!m) return;
    sedd_train *st = (sedd_train *)m;
    if (m->be) {
        m->be->free(m->params);
        m->be->free(m->grads);
        m->be->free(st->a.arena);
    }
    free(st->a.xs), free(st->a.blk), free(st->host_rows), free(st->tab);
    sedd_weights_unbind(&st->w);
    sedd_weights_unbind(&st->g);
    sedd_layout_free(&st->lo);
    free(st);
}

/* The checks config.c makes on a parsed config, for one built by a caller. */
static int check_config(const struct config_sedd *c, err_t *e)
{
    if (c->tokens < 2 || c->tokens > INT32_MAX - 1)
        return err_set(e, "sedd_train: tokens %lld is not in 2..%d", (long long)c->tokens,
                       INT32_MAX - 1);
    if (c->vocab != c->tokens + (c->graph == CONFIG_GRAPH_ABSORB))
        return err_set(e, "sedd_train: vocab %lld does not match tokens %lld with the %s graph",
                       (long long)c->vocab, (long long)c->tokens, config_graph_name(c->graph));
    if (c->hidden_size < 1 || c->cond_dim < 1 || c->n_blocks < 1 || c->n_heads < 1 ||
        c->length < 1 || c->length > INT32_MAX / 2)
        return err_set(e, "sedd_train: hidden_size, cond_dim, n_blocks, n_heads and length must "
                          "be positive");
    if (c->hidden_size % c->n_heads || (c->hidden_size / c->n_heads) % 2)
        return err_set(e, "sedd_train: hidden_size %lld / n_heads %lld is not an even head "
                          "dimension", (long long)c->hidden_size, (long long)c->n_heads);
    if (c->scale_by_sigma && c->graph != CONFIG_GRAPH_ABSORB)
        return err_set(e, "sedd_train: scale_by_sigma requires the absorbing graph");
    if (c->noise == CONFIG_NOISE_GEOMETRIC && !(c->sigma_min > 0 && c->sigma_max > c->sigma_min))
        return err_set(e, "sedd_train: geometric noise needs 0 < sigma_min < sigma_max");
    return 0;
}

/* The model without parameter values: tables, views, zeroed params and grads. */
static sedd_train *model_new(const struct config_sedd *cfg, const backend *be, err_t *e)
{
    if (check_config(cfg, e) < 0) return NULL;
    sedd_train *st = calloc(1, sizeof *st);
    if (!st) {
        err_set(e, "out of memory");
        return NULL;
    }
    train_model *m = &st->base;
    st->cfg = *cfg;
    m->arch = "sedd";
    m->be = be ? be : &backend_cpu;
    m->block_len = (int)cfg->length;
    m->vocab = (int)cfg->tokens;
    m->loss = loss_fn;
    m->write_config = write_config;
    m->free = model_free;
    sedd_graph_init(&st->graph, cfg->graph, cfg->tokens);
    sedd_noise_init(&st->noise, cfg);
    if (sedd_layout_init(&st->lo, cfg, e) < 0) goto fail;
    m->n_params = st->lo.total;
    m->n_tensors = (int)st->lo.n;
    st->tab = calloc(st->lo.n, sizeof *st->tab);
    st->a.xs = calloc((size_t)cfg->n_blocks + 1, sizeof *st->a.xs);
    st->a.blk = calloc((size_t)cfg->n_blocks, sizeof *st->a.blk);
    m->params = m->be->alloc(m->n_params * sizeof(float));
    m->grads = m->be->alloc(m->n_params * sizeof(float));
    if (m->be != &backend_cpu)
        st->host_rows = malloc((size_t)HEAD_ROWS * (size_t)cfg->vocab * sizeof *st->host_rows);
    if (!st->tab || !st->a.xs || !st->a.blk || !m->params || !m->grads ||
        (m->be != &backend_cpu && !st->host_rows)) {
        err_set(e, "sedd_train: out of memory for %zu parameters", m->n_params);
        goto fail;
    }
    for (size_t i = 0; i < st->lo.n; i++) {
        struct train_tensor *t = &st->tab[i];
        const struct ckpt_param *p = &st->lo.param[i];
        snprintf(t->name, sizeof t->name, "%s", p->name);
        t->offset = st->lo.offset[i];
        t->numel = st->lo.numel[i];
        t->ndim = p->ndim;
        memcpy(t->shape, p->shape, sizeof t->shape);
        t->decay = p->ndim == 2; /* matrices and the embedding; not biases or norm weights */
    }
    m->tensors = st->tab;
    /* params and grads start zeroed (the padding between tensors stays zero) */
    m->be->zero(m->params, m->n_params * sizeof(float));
    m->be->zero(m->grads, m->n_params * sizeof(float));
    if (sedd_weights_bind(&st->w, m->params, &st->lo, cfg, e) < 0 ||
        sedd_weights_bind(&st->g, m->grads, &st->lo, cfg, e) < 0)
        goto fail;
    return st;
fail:
    model_free(m);
    return NULL;
}

train_model *sedd_train_new(const struct config_sedd *cfg, const backend *be, uint64_t seed,
                            err_t *e)
{
    sedd_train *st = model_new(cfg, be, e);
    if (!st) return NULL;
    const sedd_layout *lo = &st->lo;
    size_t biggest = 0;
    for (size_t i = 0; i < lo->n; i++)
        if (lo->numel[i] > biggest) biggest = lo->numel[i];
    float *host = malloc(biggest * sizeof *host);
    if (!host) {
        err_set(e, "sedd_train: out of memory");
        model_free(&st->base);
        return NULL;
    }
    double fan_in = 1;  /* of the last weight: a bias follows its weight in the table */
    int rc = 0;
    for (size_t k = 0; k < lo->n && rc == 0; k++) {
        const struct ckpt_param *p = &lo->param[k];
        const bool zero_init = strstr(p->name, "adaLN_modulation") ||
                               strncmp(p->name, "output_layer.linear.", 20) == 0;
        const bool is_norm = strstr(p->name, "norm") && p->ndim == 1;
        if (p->ndim == 2) fan_in = (double)p->shape[1];
        /* nn.Linear: weight kaiming_uniform(a=√5) and bias both ±1/√fan_in; the embedding's
         * kaiming_uniform(a=√5) over its (V,H) shape is ±1/√H as well */
        const float bound = (float)(1.0 / sqrt(fan_in));
        for (size_t j = 0; j < lo->numel[k]; j += 4) {
            uint32_t w[4];
            if (!zero_init && !is_norm) philox_draw(seed, k, 0, (uint32_t)(j / 4), 0, w);
            for (size_t q = 0; q < 4 && j + q < lo->numel[k]; q++)
                host[j + q] = zero_init ? 0.0f
                              : is_norm ? 1.0f
                                        : (2.0f * philox_u01_f32(w[q]) - 1.0f) * bound;
        }
        rc = st->base.be->to_device(st->base.params + lo->offset[k], host,
                                    lo->numel[k] * sizeof *host, e);
    }
    free(host);
    if (rc < 0) {
        model_free(&st->base);
        return NULL;
    }
    return &st->base;
}

train_model *sedd_train_load(const char *dir, const backend *be, err_t *e)
{
    ckpt_t *c = sedd_ckpt_open(dir, e);
    if (!c) return NULL;
    sedd_train *st = model_new(&ckpt_config(c)->sedd, be, e);
    if (st && sedd_load_params(c, &st->lo, st->base.be, st->base.params, e) < 0) {
        model_free(&st->base);
        st = NULL;
    }
    ckpt_close(c);
    return st ? &st->base : NULL;
}
