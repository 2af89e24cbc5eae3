/* gpt2_train: GPT-2 as a train_model (see gpt2_train.h). The structure follows the classic
 * fp32 training loop of a pre-LN transformer: the forward pass keeps every activation of every
 * layer, the backward pass walks the layers in reverse with one residual-gradient buffer that
 * each op adds into, and the vocabulary projection is done in chunks of rows (logits, their
 * cross-entropy gradient in place, then its backward) so the (N, V) logits never exist whole. */
#include "gpt2_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "philox.h"

/* Rows of logits materialised at a time (as gpt2_nll: 100 MB at GPT-2's vocabulary). */
enum { CE_CHUNK = 512 };
/* Parameter tensors per layer and outside the layers. */
enum { PER_LAYER = 12, OUTER = 4 };
enum { LN1_W, LN1_B, ATTN_W, ATTN_B, PROJ_W, PROJ_B, LN2_W, LN2_B, FC_W, FC_B, FCP_W, FCP_B };

/* Activations of a batch of N = B*T tokens (all backend memory). */
struct acts {
    int B;                /* batch these were sized for (0: none yet) */
    int32_t *ids, *targets;  /* (N) */
    float *resid;         /* (L+1, N, C): input of each layer, then the last layer's output */
    float *ln1, *qkv, *k, *v, *att, *mid, *ln2, *fch, *fcg;  /* per layer: (L, N, width) */
    float *lnf;           /* (N, C) */
    float *logits;        /* (CE_CHUNK, V) */
    double *loss;         /* (CE_CHUNK) */
    /* gradient scratch */
    float *dres, *dln, *datt, *dqkv, *dk, *dv, *dfcg, *dfch;
};

struct gpt2_train {
    train_model base;     /* first: a train_model * is a struct gpt2_train * */
    struct config_gpt2 cfg;
    struct train_tensor *table;
    struct acts a;
};

static struct gpt2_train *self(const train_model *m) { return (struct gpt2_train *)m; }

const struct config_gpt2 *gpt2_train_config(const train_model *m) { return &self(m)->cfg; }

/* ---- the tensor table ---------------------------------------------------------------------- */

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

static void add_tensor(struct gpt2_train *g, int *i, size_t *off, const char *name, int ndim,
                       int64_t d0, int64_t d1, bool decay)
{
    struct train_tensor *t = &g->table[(*i)++];
    snprintf(t->name, sizeof t->name, "transformer.%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim > 1 ? d1 : 0;
    t->numel = (size_t)d0 * (size_t)(ndim > 1 ? d1 : 1);
    t->offset = *off;
    t->decay = decay;
    *off += align16(t->numel);
}

/* Fills the table in checkpoint order; returns the total floats. Layer l's tensors are
 * table[2 + 12 l + k] for the k of the enum above; ln_f is table[2 + 12 L + 0/1]. */
static size_t build_table(struct gpt2_train *g)
{
    const int64_t V = g->cfg.vocab_size, P = g->cfg.n_positions, C = g->cfg.n_embd;
    int i = 0;
    size_t off = 0;
    char name[80];
    add_tensor(g, &i, &off, "wte.weight", 2, V, C, true);
    add_tensor(g, &i, &off, "wpe.weight", 2, P, C, true);
    for (int l = 0; l < g->cfg.n_layer; l++) {
#define T(suffix, ndim, d0, d1, decay) \
    (snprintf(name, sizeof name, "h.%d.%s", l, suffix), \
     add_tensor(g, &i, &off, name, ndim, d0, d1, decay))
        T("ln_1.weight", 1, C, 0, false);
        T("ln_1.bias", 1, C, 0, false);
        T("attn.c_attn.weight", 2, C, 3 * C, true);
        T("attn.c_attn.bias", 1, 3 * C, 0, false);
        T("attn.c_proj.weight", 2, C, C, true);
        T("attn.c_proj.bias", 1, C, 0, false);
        T("ln_2.weight", 1, C, 0, false);
        T("ln_2.bias", 1, C, 0, false);
        T("mlp.c_fc.weight", 2, C, 4 * C, true);
        T("mlp.c_fc.bias", 1, 4 * C, 0, false);
        T("mlp.c_proj.weight", 2, 4 * C, C, true);
        T("mlp.c_proj.bias", 1, C, 0, false);
#undef T
    }
    add_tensor(g, &i, &off, "ln_f.weight", 1, C, 0, false);
    add_tensor(g, &i, &off, "ln_f.bias", 1, C, 0, false);
    return off;
}

static const struct train_tensor *layer_tensor(const struct gpt2_train *g, int l, int k)
{
    return &g->table[2 + PER_LAYER * l + k];
}

/* ---- activations --------------------------------------------------------------------------- */

static void acts_free(const backend *be, struct acts *a)
{
    void *bufs[] = {a->ids,  a->targets, a->resid, a->ln1,  a->qkv,  a->k,    a->v,
                    a->att,  a->mid,     a->ln2,   a->fch,  a->fcg,  a->lnf,  a->logits,
                    a->loss, a->dres,    a->dln,   a->datt, a->dqkv, a->dk,   a->dv,
                    a->dfcg, a->dfch};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) be->free(bufs[i]);
    memset(a, 0, sizeof *a);
}

/* Sizes the activations for batches of up to B blocks (kept between calls). */
static int acts_reserve(struct gpt2_train *g, int B, err_t *e)
{
    struct acts *a = &g->a;
    if (a->B >= B) return 0;
    const backend *be = g->base.be;
    acts_free(be, a);
    size_t N = (size_t)B * g->base.block_len, C = (size_t)g->cfg.n_embd;
    size_t L = (size_t)g->cfg.n_layer, V = (size_t)g->cfg.vocab_size, f = sizeof(float);
    bool ok = (a->ids = be->alloc(N * sizeof(int32_t))) &&
              (a->targets = be->alloc(N * sizeof(int32_t))) &&
              (a->resid = be->alloc((L + 1) * N * C * f)) && (a->ln1 = be->alloc(L * N * C * f)) &&
              (a->qkv = be->alloc(L * N * 3 * C * f)) && (a->k = be->alloc(L * N * C * f)) &&
              (a->v = be->alloc(L * N * C * f)) && (a->att = be->alloc(L * N * C * f)) &&
              (a->mid = be->alloc(L * N * C * f)) && (a->ln2 = be->alloc(L * N * C * f)) &&
              (a->fch = be->alloc(L * N * 4 * C * f)) && (a->fcg = be->alloc(L * N * 4 * C * f)) &&
              (a->lnf = be->alloc(N * C * f)) && (a->logits = be->alloc(CE_CHUNK * V * f)) &&
              (a->loss = be->alloc(CE_CHUNK * sizeof(double))) &&
              (a->dres = be->alloc(N * C * f)) && (a->dln = be->alloc(N * C * f)) &&
              (a->datt = be->alloc(N * C * f)) && (a->dqkv = be->alloc(N * 3 * C * f)) &&
              (a->dk = be->alloc(N * C * f)) && (a->dv = be->alloc(N * C * f)) &&
              (a->dfcg = be->alloc(N * 4 * C * f)) && (a->dfch = be->alloc(N * 4 * C * f));
    if (!ok) {
        acts_free(be, a);
        return err_set(e, "gpt2: out of memory for the activations of %d blocks", B);
    }
    a->B = B;
    return 0;
}

/* ---- forward and backward ------------------------------------------------------------------ */

/* Forward pass of B blocks up to lnf (the final LayerNorm's output), keeping every activation. */
static void forward(struct gpt2_train *g, int B)
{
    const backend *be = g->base.be;
    struct acts *a = &g->a;
    const float *p = g->base.params;
    int T = g->base.block_len, C = (int)g->cfg.n_embd, H = (int)g->cfg.n_head, d = C / H;
    int L = (int)g->cfg.n_layer, N = B * T;
    size_t nc = (size_t)N * C;
    float eps = (float)g->cfg.layer_norm_epsilon;
    be->embed(a->resid, p + g->table[0].offset, p + g->table[1].offset, a->ids, N, T, 0, C);
    for (int l = 0; l < L; l++) {
#define W(k) (p + layer_tensor(g, l, k)->offset)
        const float *x = a->resid + l * nc;
        float *ln1 = a->ln1 + l * nc, *qkv = a->qkv + l * 3 * nc, *k = a->k + l * nc;
        float *v = a->v + l * nc, *att = a->att + l * nc, *mid = a->mid + l * nc;
        float *ln2 = a->ln2 + l * nc, *fch = a->fch + l * 4 * nc, *fcg = a->fcg + l * 4 * nc;
        float *out = a->resid + (l + 1) * nc;
        be->layernorm(ln1, x, W(LN1_W), W(LN1_B), N, C, eps);
        be->matmul(qkv, ln1, W(ATTN_W), W(ATTN_B), N, C, 3 * C, BE_IN_OUT, false);
        be->kv_store(k, v, qkv, B, T, H, d, 0, T);
        be->attention(att, qkv, 3 * (size_t)C, k, v, B, T, T, T, H, d, 0, NULL,
                      1.0f / sqrtf((float)d));
        be->copy(mid, x, nc * sizeof(float));
        be->matmul(mid, att, W(PROJ_W), W(PROJ_B), N, C, C, BE_IN_OUT, true);
        be->layernorm(ln2, mid, W(LN2_W), W(LN2_B), N, C, eps);
        be->matmul(fch, ln2, W(FC_W), W(FC_B), N, C, 4 * C, BE_IN_OUT, false);
        be->gelu_tanh(fcg, fch, 4 * nc);
        be->copy(out, mid, nc * sizeof(float));
        be->matmul(out, fcg, W(FCP_W), W(FCP_B), N, 4 * C, C, BE_IN_OUT, true);
#undef W
    }
    const struct train_tensor *lnf = &g->table[2 + PER_LAYER * L];
    be->layernorm(a->lnf, a->resid + L * nc, p + lnf[0].offset, p + lnf[1].offset, N, C, eps);
}

/* Backward pass of the layers given dres = d(loss)/d(last layer's output), down to the
 * embeddings. Gradients are added into m->grads. */
static void backward(struct gpt2_train *g, int B)
{
    const backend *be = g->base.be;
    struct acts *a = &g->a;
    const float *p = g->base.params;
    float *gr = g->base.grads;
    int T = g->base.block_len, C = (int)g->cfg.n_embd, H = (int)g->cfg.n_head, d = C / H;
    int L = (int)g->cfg.n_layer, N = B * T;
    size_t nc = (size_t)N * C, f = sizeof(float);
    float eps = (float)g->cfg.layer_norm_epsilon;
    for (int l = L - 1; l >= 0; l--) {
#define W(k) (p + layer_tensor(g, l, k)->offset)
#define G(k) (gr + layer_tensor(g, l, k)->offset)
        const float *x = a->resid + l * nc, *ln1 = a->ln1 + l * nc, *qkv = a->qkv + l * 3 * nc;
        const float *k = a->k + l * nc, *v = a->v + l * nc, *att = a->att + l * nc;
        const float *mid = a->mid + l * nc, *ln2 = a->ln2 + l * nc, *fch = a->fch + l * 4 * nc;
        const float *fcg = a->fcg + l * 4 * nc;
        /* MLP: out = mid + c_proj(gelu(c_fc(ln_2(mid)))) */
        be->zero(a->dfcg, 4 * nc * f);
        be->matmul_backward(a->dfcg, G(FCP_W), G(FCP_B), a->dres, fcg, W(FCP_W), N, 4 * C, C,
                            BE_IN_OUT);
        be->zero(a->dfch, 4 * nc * f);
        be->gelu_tanh_backward(a->dfch, fch, a->dfcg, 4 * nc);
        be->zero(a->dln, nc * f);
        be->matmul_backward(a->dln, G(FC_W), G(FC_B), a->dfch, ln2, W(FC_W), N, C, 4 * C,
                            BE_IN_OUT);
        be->layernorm_backward(a->dres, G(LN2_W), G(LN2_B), a->dln, mid, W(LN2_W), N, C, eps);
        /* attention: mid = x + c_proj(attn(c_attn(ln_1(x)))) */
        be->zero(a->datt, nc * f);
        be->matmul_backward(a->datt, G(PROJ_W), G(PROJ_B), a->dres, att, W(PROJ_W), N, C, C,
                            BE_IN_OUT);
        be->zero(a->dqkv, 3 * nc * f);
        be->zero(a->dk, nc * f);
        be->zero(a->dv, nc * f);
        be->attention_backward(a->dqkv, a->dk, a->dv, a->datt, qkv, 3 * (size_t)C, k, v, B, T, H,
                               d, true, 1.0f / sqrtf((float)d));
        be->kv_store_backward(a->dqkv, a->dk, a->dv, B, T, H, d);
        be->zero(a->dln, nc * f);
        be->matmul_backward(a->dln, G(ATTN_W), G(ATTN_B), a->dqkv, ln1, W(ATTN_W), N, C, 3 * C,
                            BE_IN_OUT);
        be->layernorm_backward(a->dres, G(LN1_W), G(LN1_B), a->dln, x, W(LN1_W), N, C, eps);
#undef W
#undef G
    }
    be->embed_backward(gr + g->table[0].offset, gr + g->table[1].offset, a->ids, a->dres, N, T,
                       C);
}

/* Copies the blocks and their next-token targets (-1 at each block's last position) into the
 * backend, checking the ids. */
static int load_batch(struct gpt2_train *g, const int32_t *blocks, int B, err_t *e)
{
    int T = g->base.block_len, V = g->base.vocab;
    size_t N = (size_t)B * T;
    int32_t *tg = malloc(N * sizeof *tg);
    if (!tg) return err_set(e, "out of memory");
    for (size_t i = 0; i < N; i++) {
        if (blocks[i] < 0 || blocks[i] >= V) {
            free(tg);
            return err_set(e, "token id %d at position %zu of block %zu is outside the "
                           "vocabulary (%d)", blocks[i], i % T, i / T, V);
        }
        tg[i] = (int)(i % T) + 1 < T ? blocks[i + 1] : -1;
    }
    const backend *be = g->base.be;
    int rc = be->to_device(g->a.ids, blocks, N * sizeof *tg, e);
    if (rc == 0) rc = be->to_device(g->a.targets, tg, N * sizeof *tg, e);
    free(tg);
    return rc;
}

static int gpt2_loss(train_model *m, const int32_t *blocks, int B, uint64_t seed, uint64_t key,
                     bool backward_pass, double *loss, err_t *e)
{
    (void)seed; /* GPT-2's loss draws nothing */
    (void)key;
    struct gpt2_train *g = self(m);
    const backend *be = m->be;
    struct acts *a = &g->a;
    if (B < 1) return err_set(e, "gpt2: empty batch");
    if (m->block_len < 2) return err_set(e, "gpt2: blocks of %d token predict nothing",
                                         m->block_len);
    if (acts_reserve(g, B, e) < 0 || load_batch(g, blocks, B, e) < 0) return ERR_FAIL;
    forward(g, B);
    int T = m->block_len, C = (int)g->cfg.n_embd, V = m->vocab, N = B * T;
    const float *wte = m->params + g->table[0].offset;
    float *dwte = m->grads + g->table[0].offset;
    float dscale = 1.0f / (float)((double)B * (T - 1));
    if (backward_pass) be->zero(a->dln, (size_t)N * C * sizeof(float));
    double sum = 0, part[CE_CHUNK];
    for (int i0 = 0; i0 < N; i0 += CE_CHUNK) {
        int n = N - i0 < CE_CHUNK ? N - i0 : CE_CHUNK;
        const float *x = a->lnf + (size_t)i0 * C;
        be->matmul(a->logits, x, wte, NULL, n, C, V, BE_OUT_IN, false);
        be->cross_entropy(a->loss, backward_pass ? a->logits : NULL, a->logits, a->targets + i0,
                          n, V, dscale);
        if (backward_pass)
            be->matmul_backward(a->dln + (size_t)i0 * C, dwte, NULL, a->logits, x, wte, n, C, V,
                                BE_OUT_IN);
        if (be->to_host(part, a->loss, (size_t)n * sizeof *part, e) < 0) return ERR_FAIL;
        for (int r = 0; r < n; r++) sum += part[r];
    }
    *loss = sum / ((double)B * (T - 1));
    if (!backward_pass) return 0;
    const struct train_tensor *lnf = &g->table[2 + PER_LAYER * g->cfg.n_layer];
    be->zero(a->dres, (size_t)N * C * sizeof(float));
    be->layernorm_backward(a->dres, m->grads + lnf[0].offset, m->grads + lnf[1].offset, a->dln,
                           a->resid + (size_t)g->cfg.n_layer * N * C, m->params + lnf[0].offset,
                           N, C, (float)g->cfg.layer_norm_epsilon);
    backward(g, B);
    return 0;
}

int gpt2_train_logits(train_model *m, const int32_t *blocks, int B, float *logits, err_t *e)
{
    struct gpt2_train *g = self(m);
    if (acts_reserve(g, B, e) < 0 || load_batch(g, blocks, B, e) < 0) return ERR_FAIL;
    forward(g, B);
    int C = (int)g->cfg.n_embd, V = m->vocab, N = B * m->block_len;
    const float *wte = m->params + g->table[0].offset;
    for (int i0 = 0; i0 < N; i0 += CE_CHUNK) {
        int n = N - i0 < CE_CHUNK ? N - i0 : CE_CHUNK;
        m->be->matmul(g->a.logits, g->a.lnf + (size_t)i0 * C, wte, NULL, n, C, V, BE_OUT_IN,
                      false);
        if (m->be->to_host(logits + (size_t)i0 * V, g->a.logits, (size_t)n * V * sizeof(float),
                           e) < 0)
            return ERR_FAIL;
    }
    return 0;
}

/* ---- config, construction ------------------------------------------------------------------ */

static int gpt2_write_config(const train_model *m, const char *dir, err_t *e)
{
    const struct config_gpt2 *c = &self(m)->cfg;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *fp = fopen(path, "w");
    if (!fp) return err_set_errno(e, "cannot create '%s'", path);
    fprintf(fp,
            "{\n"
            "  \"architectures\": [\"GPT2LMHeadModel\"],\n"
            "  \"model_type\": \"gpt2\",\n"
            "  \"vocab_size\": %lld,\n"
            "  \"n_positions\": %lld,\n"
            "  \"n_ctx\": %lld,\n"
            "  \"n_embd\": %lld,\n"
            "  \"n_head\": %lld,\n"
            "  \"n_layer\": %lld,\n"
            "  \"n_inner\": null,\n"
            "  \"layer_norm_epsilon\": %.17g,\n"
            "  \"activation_function\": \"gelu_new\",\n"
            "  \"bos_token_id\": %lld,\n"
            "  \"eos_token_id\": %lld,\n"
            "  \"tie_word_embeddings\": true\n"
            "}\n",
            (long long)c->vocab_size, (long long)c->n_positions, (long long)c->n_positions,
            (long long)c->n_embd, (long long)c->n_head, (long long)c->n_layer,
            c->layer_norm_epsilon, (long long)c->bos_token_id, (long long)c->eos_token_id);
    if (ferror(fp) | (fclose(fp) != 0)) return err_set_errno(e, "writing '%s' failed", path);
    return 0;
}

static void gpt2_free_model(train_model *m)
{
    if (!m) return;
    struct gpt2_train *g = self(m);
    acts_free(m->be, &g->a);
    m->be->free(m->params);
    m->be->free(m->grads);
    free(g->table);
    free(g);
}

/* The model of shape cfg with zeroed parameters and gradients. */
static struct gpt2_train *alloc_model(const struct config_gpt2 *cfg, const backend *be,
                                      err_t *e)
{
    if (cfg->act != CONFIG_ACT_GELU_TANH)
        return err_set(e, "gpt2: activation_function '%s' is not supported (gelu_new)",
                       cfg->activation_function), NULL;
    if (cfg->n_inner != 4 * cfg->n_embd || cfg->n_embd % cfg->n_head || cfg->n_layer < 1 ||
        cfg->vocab_size < 1 || cfg->n_positions < 1 || cfg->n_embd > INT32_MAX / 4 ||
        cfg->vocab_size > INT32_MAX || cfg->n_positions > INT32_MAX)
        return err_set(e, "gpt2: bad shape (vocab %lld, context %lld, width %lld, heads %lld, "
                       "layers %lld)", (long long)cfg->vocab_size, (long long)cfg->n_positions,
                       (long long)cfg->n_embd, (long long)cfg->n_head,
                       (long long)cfg->n_layer), NULL;
    struct gpt2_train *g = calloc(1, sizeof *g);
    int n = OUTER + PER_LAYER * (int)cfg->n_layer;
    if (!g || !(g->table = calloc((size_t)n, sizeof *g->table))) {
        free(g);
        return err_set(e, "out of memory"), NULL;
    }
    g->cfg = *cfg;
    train_model *m = &g->base;
    m->arch = "gpt2";
    m->be = be;
    m->block_len = (int)cfg->n_positions;
    m->vocab = (int)cfg->vocab_size;
    m->tensors = g->table;
    m->n_tensors = n;
    m->loss = gpt2_loss;
    m->write_config = gpt2_write_config;
    m->free = gpt2_free_model;
    m->n_params = build_table(g);
    size_t bytes = m->n_params * sizeof(float);
    m->params = be->alloc(bytes);
    m->grads = be->alloc(bytes);
    if (!m->params || !m->grads) {
        gpt2_free_model(m);
        return err_set(e, "gpt2: out of memory for %zu parameters", m->n_params), NULL;
    }
    be->zero(m->params, bytes);
    be->zero(m->grads, bytes);
    return g;
}

/* Standard normal draws for tensor number `which`: element i takes half of the Box-Muller pair
 * made from the Philox block at position i/2, so every value depends only on (seed, which, i). */
static void fill_normal(float *dst, size_t n, uint64_t seed, uint64_t which, double std)
{
    for (size_t i = 0; i < n; i += 2) {
        uint32_t w[4];
        philox_draw(seed, which, 0, (uint32_t)(i / 2), 0, w);
        double r = sqrt(-2.0 * log(philox_u01_f64(w[0], w[1])));
        double th = 2.0 * M_PI * philox_u01_f64(w[2], w[3]);
        dst[i] = (float)(std * r * cos(th));
        if (i + 1 < n) dst[i + 1] = (float)(std * r * sin(th));
    }
}

train_model *gpt2_train_new(const struct config_gpt2 *cfg, const backend *be, uint64_t seed,
                            err_t *e)
{
    struct gpt2_train *g = alloc_model(cfg, be, e);
    if (!g) return NULL;
    train_model *m = &g->base;
    float *host = calloc(m->n_params, sizeof *host); /* the padding between tensors: 0 */
    if (!host) {
        gpt2_free_model(m);
        return err_set(e, "out of memory"), NULL;
    }
    double resid_std = 0.02 / sqrt(2.0 * (double)cfg->n_layer);
    for (int i = 0; i < m->n_tensors; i++) {
        const struct train_tensor *t = &g->table[i];
        float *dst = host + t->offset;
        size_t n = strlen(t->name);
        bool is_bias = n > 5 && strcmp(t->name + n - 5, ".bias") == 0;
        bool is_ln = strstr(t->name, ".ln_") != NULL;
        bool is_resid = strstr(t->name, "c_proj.weight") != NULL;
        if (is_ln && !is_bias)
            for (size_t j = 0; j < t->numel; j++) dst[j] = 1.0f;
        else if (is_bias)
            memset(dst, 0, t->numel * sizeof *dst);
        else
            fill_normal(dst, t->numel, seed, (uint64_t)i, is_resid ? resid_std : 0.02);
    }
    int rc = be->to_device(m->params, host, m->n_params * sizeof *host, e);
    free(host);
    if (rc < 0) {
        gpt2_free_model(m);
        return NULL;
    }
    return m;
}

train_model *gpt2_train_load(const char *dir, const backend *be, err_t *e)
{
    ckpt_t *ck = ckpt_open(dir, e);
    if (!ck) return NULL;
    const struct config *cfg = ckpt_config(ck);
    struct gpt2_train *g = NULL;
    if (cfg->kind != CONFIG_GPT2)
        err_set(e, "%s: not a GPT-2 checkpoint", dir);
    else if (ckpt_summary(ck)->lm_head == CKPT_LM_HEAD_UNTIED)
        err_set(e, "%s: lm_head.weight differs from wte.weight; training ties them", dir);
    else
        g = alloc_model(&cfg->gpt2, be, e);
    float *host = g ? calloc(g->base.n_params, sizeof *host) : NULL; /* padding: 0 */
    int rc = host ? 0 : g ? err_set(e, "out of memory") : ERR_FAIL;
    for (int i = 0; rc == 0 && i < g->base.n_tensors; i++) {
        /* ckpt has checked every tensor's presence and shape against the config */
        const struct train_tensor *t = &g->table[i];
        rc = st_tensor_to_f32(ckpt_tensor(ck, ckpt_canonical(CONFIG_GPT2, t->name)),
                              host + t->offset, e);
    }
    if (rc == 0) rc = be->to_device(g->base.params, host, g->base.n_params * sizeof *host, e);
    free(host);
    ckpt_close(ck);
    if (rc < 0 && g) {
        gpt2_free_model(&g->base);
        g = NULL;
    }
    return g ? &g->base : NULL;
}
