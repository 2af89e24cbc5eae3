/* gpt2: the GPT-2 forward pass (Hugging Face GPT2LMHeadModel / OpenAI model.py semantics, eval
 * mode) written once against the op interface (lib/backend.h). fp32 throughout; layer norm
 * statistics and softmax sums in double inside the ops. Shapes: B rows, T new tokens, C = n_embd,
 * H heads of d = C/H, V vocabulary, L layers, N = B*T.
 * Memory: every pointer handed to an op is backend memory. The caller's inputs (ids, masks) are
 * uploaded into state buffers and its outputs filled with to_host; on the CPU backend, whose
 * memory is the host's, the caller's buffers are used directly (no staging copies). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "gpt2.h"
#include "philox.h"

struct gpt2_layer {
    const float *ln1_w, *ln1_b;      /* (C) */
    const float *attn_w, *attn_b;    /* (C,3C) Conv1D [in,out], (3C) */
    const float *proj_w, *proj_b;    /* (C,C), (C) */
    const float *ln2_w, *ln2_b;      /* (C) */
    const float *fc_w, *fc_b;        /* (C,4C), (4C) */
    const float *fcp_w, *fcp_b;      /* (4C,C), (C) */
};

struct gpt2 {
    struct config_gpt2 cfg;
    const backend *be;
    ckpt_t *ck;                  /* kept open only while some weight is used in place */
    const float *wte, *wpe;      /* (V,C), (NP,C) */
    const float *lm_head;        /* (V,C): wte unless the checkpoint has an untied head */
    const float *lnf_w, *lnf_b;  /* (C) */
    struct gpt2_layer *layers;   /* (L) */
    float **owned;               /* converted copies, freed with the model */
    size_t n_owned;
};

struct gpt2_state {
    const gpt2_t *m;
    int rows, cap, max_tokens;
    float **k, **v;       /* per layer: (rows,H,cap,d) */
    float *x;             /* (N,C) residual stream */
    float *ln;            /* (N,C) layer-norm output */
    float *qkv;           /* (N,3C) */
    float *att;           /* (N,C) attention output */
    float *fc;            /* (N,4C) MLP hidden */
    float *last;          /* (rows,C) last-position rows for logits_last */
    float *logits;        /* (NLL_CHUNK,V) for gpt2_nll and, off the CPU, for logits
                             outputs; allocated on first use */
    double *lp;           /* (NLL_CHUNK) host */
    /* off the CPU only (NULL on it): the caller's inputs in backend memory */
    int32_t *ids;         /* (max_tokens) token ids */
    uint8_t *mask;        /* (rows,cap) key mask */
    int32_t *target;      /* (NLL_CHUNK) gpt2_nll's targets, with logits */
    double *lp_dev;       /* (NLL_CHUNK) gpt2_nll's log-probabilities, with logits */
};

/* Rows of logits materialised at a time by gpt2_nll (100 MB for GPT-2's vocabulary): large
 * enough for an efficient GEMM, small enough to stay out of the way. */
enum { NLL_CHUNK = 512 };

// ---- memory ---------------------------------------------------------------------------------

/* Whether the backend's memory is the host's (the CPU backend): host buffers are then passed to
 * the ops as they are. */
static bool host_memory(const backend *be) { return be == &backend_cpu; }

/* Host data an op reads, in backend memory: host itself on the CPU, else copied into dev (which
 * holds at least bytes). NULL when the copy failed. */
static const void *upload(const backend *be, void *dev, const void *host, size_t bytes, err_t *e)
{
    if (host_memory(be)) return host;
    return be->to_device(dev, host, bytes, e) < 0 ? NULL : dev;
}

/* Backend data -> the caller's host buffer; nothing to do when they are the same memory. */
static int download(const backend *be, void *host, const void *src, size_t bytes, err_t *e)
{
    return host == src ? 0 : be->to_host(host, src, bytes, e);
}

// ---- loading --------------------------------------------------------------------------------

/* The f32 data of a checkpoint tensor in backend memory. On the CPU: the mapping itself when it
 * is F32 and 4-byte aligned (no copy), else one converted copy owned by the model. Elsewhere:
 * converted to f32 on the host (unless the mapping already is), then one copy on the device. */
static const float *weight(gpt2_t *m, const char *name, bool *in_place, err_t *e)
{
    const st_tensor *t = ckpt_tensor(m->ck, name);
    if (!t) return err_set(e, "%s: tensor '%s' is missing", ckpt_dir(m->ck), name), NULL;
    bool f32 = t->dtype == ST_F32 && ((uintptr_t)t->data % _Alignof(float)) == 0;
    if (f32 && host_memory(m->be)) {
        *in_place = true;
        return t->data;
    }
    size_t bytes = t->numel * sizeof(float);
    float *dst = m->be->alloc(bytes);
    if (!dst) return err_set(e, "%s: out of memory", name), NULL;
    m->owned[m->n_owned++] = dst;
    if (host_memory(m->be)) return st_tensor_to_f32(t, dst, e) < 0 ? NULL : dst;
    float *tmp = f32 ? NULL : malloc(bytes ? bytes : 1);
    if (!f32 && !tmp) return err_set(e, "%s: out of memory", name), NULL;
    int rc = f32 ? 0 : st_tensor_to_f32(t, tmp, e);
    if (rc == 0) rc = m->be->to_device(dst, f32 ? t->data : tmp, bytes, e);
    free(tmp);
    return rc < 0 ? NULL : dst;
}

gpt2_t *gpt2_load(const char *dir, const char *weights, const backend *be, err_t *e)
{
    ckpt_t *ck = weights ? ckpt_open_weights(dir, weights, e) : ckpt_open(dir, e);
    if (!ck) return NULL;
    const struct config *cfg = ckpt_config(ck);
    if (cfg->kind != CONFIG_GPT2) {
        ckpt_close(ck);
        return err_set(e, "%s: not a GPT-2 checkpoint", dir), NULL;
    }
    if (cfg->gpt2.act != CONFIG_ACT_GELU_TANH) {
        ckpt_close(ck);
        return err_set(e, "%s: config.json: activation_function '%s' is not supported (gelu_new)",
                       dir, cfg->gpt2.activation_function), NULL;
    }
    gpt2_t *m = calloc(1, sizeof *m);
    int L = (int)cfg->gpt2.n_layer;
    if (m) {
        m->layers = calloc((size_t)L, sizeof *m->layers);
        m->owned = calloc(16 * (size_t)L + 8, sizeof *m->owned);
    }
    if (!m || !m->layers || !m->owned) {
        ckpt_close(ck);
        gpt2_free(m);
        return err_set(e, "out of memory"), NULL;
    }
    m->cfg = cfg->gpt2;
    m->be = be;
    m->ck = ck;
    bool in_place = false, ok = true;
    char name[96];
#define W(dst, ...) \
    (snprintf(name, sizeof name, __VA_ARGS__), ok = ok && ((dst) = weight(m, name, &in_place, e)))
    W(m->wte, "wte.weight");
    W(m->wpe, "wpe.weight");
    W(m->lnf_w, "ln_f.weight");
    W(m->lnf_b, "ln_f.bias");
    m->lm_head = m->wte;
    if (ok && ckpt_summary(ck)->lm_head == CKPT_LM_HEAD_UNTIED) W(m->lm_head, "lm_head.weight");
    for (int i = 0; i < L && ok; i++) {
        struct gpt2_layer *l = &m->layers[i];
        W(l->ln1_w, "h.%d.ln_1.weight", i);
        W(l->ln1_b, "h.%d.ln_1.bias", i);
        W(l->attn_w, "h.%d.attn.c_attn.weight", i);
        W(l->attn_b, "h.%d.attn.c_attn.bias", i);
        W(l->proj_w, "h.%d.attn.c_proj.weight", i);
        W(l->proj_b, "h.%d.attn.c_proj.bias", i);
        W(l->ln2_w, "h.%d.ln_2.weight", i);
        W(l->ln2_b, "h.%d.ln_2.bias", i);
        W(l->fc_w, "h.%d.mlp.c_fc.weight", i);
        W(l->fc_b, "h.%d.mlp.c_fc.bias", i);
        W(l->fcp_w, "h.%d.mlp.c_proj.weight", i);
        W(l->fcp_b, "h.%d.mlp.c_proj.bias", i);
    }
#undef W
    if (!ok) {
        gpt2_free(m);
        return NULL;
    }
    if (!in_place) { /* every weight was copied: release the mapping */
        ckpt_close(m->ck);
        m->ck = NULL;
    }
    return m;
}

void gpt2_free(gpt2_t *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->n_owned; i++) m->be->free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    ckpt_close(m->ck);
    free(m);
}

const struct config_gpt2 *gpt2_config(const gpt2_t *m) { return &m->cfg; }

// ---- state ----------------------------------------------------------------------------------

gpt2_state *gpt2_state_new(const gpt2_t *m, int rows, int cap, int max_tokens, err_t *e)
{
    const struct config_gpt2 *g = &m->cfg;
    if (rows < 1 || cap < 1 || cap > g->n_positions || max_tokens < 1)
        return err_set(e, "gpt2: bad state size (rows %d, cap %d of %lld, tokens %d)", rows, cap,
                       (long long)g->n_positions, max_tokens), NULL;
    const backend *be = m->be;
    size_t C = (size_t)g->n_embd, N = (size_t)max_tokens, L = (size_t)g->n_layer;
    gpt2_state *s = calloc(1, sizeof *s);
    if (!s) return err_set(e, "out of memory"), NULL;
    s->m = m;
    s->rows = rows;
    s->cap = cap;
    s->max_tokens = max_tokens;
    s->k = calloc(L, sizeof *s->k);
    s->v = calloc(L, sizeof *s->v);
    bool ok = s->k && s->v;
    size_t cache = (size_t)rows * cap * C * sizeof(float);
    for (size_t i = 0; ok && i < L; i++)
        ok = (s->k[i] = be->alloc(cache)) && (s->v[i] = be->alloc(cache));
    ok = ok && (s->x = be->alloc(N * C * 4)) && (s->ln = be->alloc(N * C * 4)) &&
         (s->qkv = be->alloc(N * 3 * C * 4)) && (s->att = be->alloc(N * C * 4)) &&
         (s->fc = be->alloc(N * 4 * C * 4)) && (s->last = be->alloc((size_t)rows * C * 4));
    if (ok && !host_memory(be))
        ok = (s->ids = be->alloc(N * sizeof *s->ids)) &&
             (s->mask = be->alloc((size_t)rows * cap * sizeof *s->mask));
    if (!ok) {
        gpt2_state_free(s);
        return err_set(e, "out of memory for a KV cache of %d x %d positions", rows, cap), NULL;
    }
    return s;
}

void gpt2_state_free(gpt2_state *s)
{
    if (!s) return;
    const backend *be = s->m->be;
    for (int i = 0; i < s->m->cfg.n_layer; i++) {
        if (s->k) be->free(s->k[i]);
        if (s->v) be->free(s->v[i]);
    }
    free(s->k);
    free(s->v);
    be->free(s->x);
    be->free(s->ln);
    be->free(s->qkv);
    be->free(s->att);
    be->free(s->fc);
    be->free(s->last);
    be->free(s->logits);
    free(s->lp);
    be->free(s->ids);
    be->free(s->mask);
    be->free(s->target);
    be->free(s->lp_dev);
    free(s);
}

const float *gpt2_state_cache(const gpt2_state *s, int layer, int kv)
{
    return kv ? s->v[layer] : s->k[layer];
}

/* The chunk buffers of gpt2_nll and of logits outputs off the CPU, allocated on first use. */
static int chunk_buffers(const gpt2_t *m, gpt2_state *s, err_t *e)
{
    const backend *be = m->be;
    if (s->logits) return 0;
    s->logits = be->alloc((size_t)NLL_CHUNK * (size_t)m->cfg.vocab_size * sizeof(float));
    s->lp = malloc(NLL_CHUNK * sizeof *s->lp);
    bool ok = s->logits && s->lp;
    if (ok && !host_memory(be))
        ok = (s->target = be->alloc(NLL_CHUNK * sizeof *s->target)) &&
             (s->lp_dev = be->alloc(NLL_CHUNK * sizeof *s->lp_dev));
    if (!ok) { /* all or nothing: s->logits set means the others are */
        be->free(s->logits), be->free(s->target), be->free(s->lp_dev), free(s->lp);
        s->logits = NULL, s->target = NULL, s->lp_dev = NULL, s->lp = NULL;
        return err_set(e, "out of memory for logits");
    }
    return 0;
}

// ---- forward --------------------------------------------------------------------------------

static int check_ids(const gpt2_t *m, const int32_t *ids, size_t n, err_t *e)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.vocab_size)
            return err_set(e, "token id %d at position %zu is outside the vocabulary (%lld)",
                           ids[i], i, (long long)m->cfg.vocab_size);
    return 0;
}

/* Logits (n,V) = h (n,C) · lm_headᵀ into the caller's host buffer dst: on the CPU written there
 * directly, elsewhere NLL_CHUNK rows at a time through s->logits. rows_kernel picks the
 * batch-invariant matmul. */
static int logits_out(const gpt2_t *m, gpt2_state *s, const float *h, int n, float *dst,
                      bool rows_kernel, err_t *e)
{
    const backend *be = m->be;
    int C = (int)m->cfg.n_embd, V = (int)m->cfg.vocab_size;
    void (*mm)(float *, const float *, const float *, const float *, int, int, int,
               enum be_layout, bool) = rows_kernel ? be->matmul_rows : be->matmul;
    if (host_memory(be)) {
        mm(dst, h, m->lm_head, NULL, n, C, V, BE_OUT_IN, false);
        return 0;
    }
    if (chunk_buffers(m, s, e) < 0) return ERR_FAIL;
    for (int i0 = 0; i0 < n; i0 += NLL_CHUNK) {
        int k = n - i0 < NLL_CHUNK ? n - i0 : NLL_CHUNK;
        mm(s->logits, h + (size_t)i0 * C, m->lm_head, NULL, k, C, V, BE_OUT_IN, false);
        if (be->to_host(dst + (size_t)i0 * V, s->logits, (size_t)k * V * sizeof *dst, e) < 0)
            return ERR_FAIL;
    }
    return 0;
}

/* The MLP and the attention output projection, shared by both entry points: x += proj(att);
 * x += c_proj(gelu(c_fc(ln_2(x)))). rows_kernel picks the batch-invariant matmul. */
static void block_tail(const gpt2_t *m, gpt2_state *s, const struct gpt2_layer *l, int N,
                       bool rows_kernel)
{
    const backend *be = m->be;
    int C = (int)m->cfg.n_embd;
    float eps = (float)m->cfg.layer_norm_epsilon;
    void (*mm)(float *, const float *, const float *, const float *, int, int, int,
               enum be_layout, bool) = rows_kernel ? be->matmul_rows : be->matmul;
    mm(s->x, s->att, l->proj_w, l->proj_b, N, C, C, BE_IN_OUT, true);
    be->layernorm(s->ln, s->x, l->ln2_w, l->ln2_b, N, C, eps);
    mm(s->fc, s->ln, l->fc_w, l->fc_b, N, C, 4 * C, BE_IN_OUT, false);
    be->gelu_tanh(s->fc, s->fc, (size_t)N * 4 * C);
    mm(s->x, s->fc, l->fcp_w, l->fcp_b, N, 4 * C, C, BE_IN_OUT, true);
}

int gpt2_forward(const gpt2_t *m, gpt2_state *s, int row0, int B, int T, const int32_t *ids,
                 int past, const uint8_t *key_mask, struct gpt2_out *out, err_t *e)
{
    const backend *be = m->be;
    int C = (int)m->cfg.n_embd, H = (int)m->cfg.n_head, d = C / H, L = (int)m->cfg.n_layer;
    int N = B * T;
    float eps = (float)m->cfg.layer_norm_epsilon;
    if (B < 1 || T < 1 || row0 < 0 || row0 + B > s->rows || N > s->max_tokens || past < 0)
        return err_set(e, "gpt2: bad batch (rows %d+%d of %d, %d tokens of %d)", row0, B, s->rows,
                       N, s->max_tokens);
    if (past + T > s->cap)
        return err_set(e, "sequence of %d tokens is longer than the context (%d positions)",
                       past + T, s->cap);
    if (check_ids(m, ids, (size_t)N, e) < 0) return ERR_FAIL;
    size_t plane = (size_t)N * C, roff = (size_t)row0 * H * s->cap * d, bytes = plane * 4;
    const int32_t *dids = upload(be, s->ids, ids, (size_t)N * sizeof *ids, e);
    const uint8_t *dmask = key_mask ? upload(be, s->mask, key_mask, (size_t)B * (past + T), e)
                                    : NULL;
    if (!dids || (key_mask && !dmask)) return ERR_FAIL;

    be->embed(s->x, m->wte, m->wpe, dids, N, T, past, C);
    if (out->hidden_states && be->to_host(out->hidden_states, s->x, bytes, e) < 0)
        return ERR_FAIL;
    for (int i = 0; i < L; i++) {
        const struct gpt2_layer *l = &m->layers[i];
        be->layernorm(s->ln, s->x, l->ln1_w, l->ln1_b, N, C, eps);
        be->matmul(s->qkv, s->ln, l->attn_w, l->attn_b, N, C, 3 * C, BE_IN_OUT, false);
        be->kv_store(s->k[i] + roff, s->v[i] + roff, s->qkv, B, T, H, d, past, s->cap);
        be->attention(s->att, s->qkv, 3 * (size_t)C, s->k[i] + roff, s->v[i] + roff, B, T,
                      past + T, s->cap, H, d, past, dmask, 1.0f / sqrtf((float)d));
        block_tail(m, s, l, N, false);
        if (out->hidden_states && i + 1 < L &&
            be->to_host(out->hidden_states + (size_t)(i + 1) * plane, s->x, bytes, e) < 0)
            return ERR_FAIL;
    }
    if (out->pre_ln_f && be->to_host(out->pre_ln_f, s->x, bytes, e) < 0) return ERR_FAIL;
    be->layernorm(s->ln, s->x, m->lnf_w, m->lnf_b, N, C, eps);
    if (out->last_hidden && be->to_host(out->last_hidden, s->ln, bytes, e) < 0) return ERR_FAIL;
    if (out->hidden_states &&
        be->to_host(out->hidden_states + (size_t)L * plane, s->ln, bytes, e) < 0)
        return ERR_FAIL;
    if (out->logits && out->logits_last) {
        for (int b = 0; b < B; b++)
            be->copy(s->last + (size_t)b * C, s->ln + ((size_t)b * T + T - 1) * C,
                     C * sizeof(float));
        return logits_out(m, s, s->last, B, out->logits, false, e);
    }
    if (out->logits) return logits_out(m, s, s->ln, N, out->logits, false, e);
    return 0;
}

/* Queues the draws from the logits of the rows h (n,C) without leaving the backend: NLL_CHUNK
 * rows at a time through s->logits, dtok[i] = draw_rows at du[i] (backend memory, n each). */
static int draw_out(const gpt2_t *m, gpt2_state *s, const float *h, int n, const double *du,
                    double inv_t, int32_t *dtok, err_t *e)
{
    const backend *be = m->be;
    int C = (int)m->cfg.n_embd, V = (int)m->cfg.vocab_size;
    if (chunk_buffers(m, s, e) < 0) return ERR_FAIL;
    for (int i0 = 0; i0 < n; i0 += NLL_CHUNK) {
        int k = n - i0 < NLL_CHUNK ? n - i0 : NLL_CHUNK;
        be->matmul_rows(s->logits, h + (size_t)i0 * C, m->lm_head, NULL, k, C, V, BE_OUT_IN,
                        false);
        be->draw_rows(dtok + i0, s->logits, du + i0, k, V, inv_t);
    }
    return 0;
}

/* Checks a step's batch and positions (pos[b] + ahead must fit the cache). */
static int check_step(const gpt2_state *s, int B, const int *pos, int ahead, err_t *e)
{
    if (B < 1 || B > s->rows || B > s->max_tokens)
        return err_set(e, "gpt2: bad step batch %d (rows %d)", B, s->rows);
    for (int b = 0; b < B; b++)
        if (pos[b] < 0 || pos[b] + ahead >= s->cap)
            return err_set(e, "position %d is past the context (%d positions)", pos[b] + ahead,
                           s->cap);
    return 0;
}

/* Queues the decoding step up to the final layer norm: s->ln (B,C) for the rows' tokens dids
 * (backend memory, checked) at positions pos (checked). */
static void step_hidden(const gpt2_t *m, gpt2_state *s, int B, const int32_t *dids,
                        const int *pos)
{
    const backend *be = m->be;
    int C = (int)m->cfg.n_embd, H = (int)m->cfg.n_head, d = C / H, L = (int)m->cfg.n_layer;
    float eps = (float)m->cfg.layer_norm_epsilon;
    size_t rstride = (size_t)H * s->cap * d;
    /* The position-dependent ops take one position per call: rows at one position (sampling
     * from <|endoftext|>, equal prompts) go in one call, others one call per row. Each row's
     * arithmetic is the same either way. */
    bool same_pos = true;
    for (int b = 1; b < B; b++) same_pos &= pos[b] == pos[0];
    int groups = same_pos ? 1 : B, rows = same_pos ? B : 1;

    for (int g = 0; g < groups; g++)
        be->embed(s->x + (size_t)g * C, m->wte, m->wpe, dids + g, rows, 1, pos[g], C);
    for (int i = 0; i < L; i++) {
        const struct gpt2_layer *l = &m->layers[i];
        be->layernorm(s->ln, s->x, l->ln1_w, l->ln1_b, B, C, eps);
        be->matmul_rows(s->qkv, s->ln, l->attn_w, l->attn_b, B, C, 3 * C, BE_IN_OUT, false);
        for (int g = 0; g < groups; g++) {
            float *kg = s->k[i] + g * rstride, *vg = s->v[i] + g * rstride;
            const float *qg = s->qkv + (size_t)g * 3 * C;
            be->kv_store(kg, vg, qg, rows, 1, H, d, pos[g], s->cap);
            be->attention(s->att + (size_t)g * C, qg, 3 * (size_t)C, kg, vg, rows, 1, pos[g] + 1,
                          s->cap, H, d, pos[g], NULL, 1.0f / sqrtf((float)d));
        }
        block_tail(m, s, l, B, true);
    }
    be->layernorm(s->ln, s->x, m->lnf_w, m->lnf_b, B, C, eps);
}

/* One step of gpt2_step, as run_step queues it: the tokens uploaded, the hidden states, and
 * when logits_in_step the logits (at most NLL_CHUNK rows) into s->logits. */
struct logits_step {
    const gpt2_t *m;
    gpt2_state *s;
    int B;
    const int32_t *ids;  /* (B) host */
    const int *pos;      /* (B) host */
    bool logits_in_step;
};

static int enqueue_logits_step(void *step, err_t *e)
{
    const struct logits_step *c = step;
    const backend *be = c->m->be;
    const int32_t *dids = upload(be, c->s->ids, c->ids, (size_t)c->B * sizeof *c->ids, e);
    if (!dids) return ERR_FAIL;
    step_hidden(c->m, c->s, c->B, dids, c->pos);
    if (!c->logits_in_step) return 0;
    if (chunk_buffers(c->m, c->s, e) < 0) return ERR_FAIL;
    be->matmul_rows(c->s->logits, c->s->ln, c->m->lm_head, NULL, c->B, (int)c->m->cfg.n_embd,
                    (int)c->m->cfg.vocab_size, BE_OUT_IN, false);
    return 0;
}

int gpt2_step(const gpt2_t *m, gpt2_state *s, int B, const int32_t *ids, const int *pos,
              float *logits, err_t *e)
{
    if (check_step(s, B, pos, 0, e) < 0 || check_ids(m, ids, (size_t)B, e) < 0) return ERR_FAIL;
    /* off the CPU the logits of a batch that fits one chunk are made inside the step (one CUDA
     * graph), then downloaded */
    struct logits_step c = {m, s, B, ids, pos, !host_memory(m->be) && B <= NLL_CHUNK};
    if (m->be->run_step(enqueue_logits_step, &c, e) < 0) return ERR_FAIL;
    if (c.logits_in_step)
        return m->be->to_host(logits, s->logits, (size_t)B * m->cfg.vocab_size * sizeof *logits,
                              e);
    return logits_out(m, s, s->ln, B, logits, true, e);
}

/* One step of gpt2_decode, as run_step queues it. */
struct decode_step {
    const gpt2_t *m;
    gpt2_state *s;
    int B;
    const int *pos;        /* (B) host: the positions fed */
    const int32_t *ids;    /* (B) backend: the tokens fed */
    const double *u;       /* (B) backend: the draws' uniforms */
    double inv_t;
    int32_t *next;         /* (B) backend: the draws */
};

static int enqueue_decode_step(void *step, err_t *e)
{
    const struct decode_step *c = step;
    step_hidden(c->m, c->s, c->B, c->ids, c->pos);
    return draw_out(c->m, c->s, c->s->ln, c->B, c->u, c->inv_t, c->next, e);
}

int gpt2_decode(const gpt2_t *m, gpt2_state *s, int B, const int32_t *tok, const int *pos,
                int n_steps, const double *u, double inv_t, int32_t *out, err_t *e)
{
    const backend *be = m->be;
    if (n_steps < 1) return 0;
    if (check_step(s, B, pos, n_steps - 1, e) < 0 || check_ids(m, tok, (size_t)B, e) < 0)
        return ERR_FAIL;
    /* the draws (n_steps, B) and the uniforms in backend memory: the caller's own on the CPU */
    const size_t n = (size_t)B * (size_t)n_steps;
    const bool host = host_memory(be);
    int32_t *dout = host ? out : be->alloc(n * sizeof *dout);
    double *du_buf = host ? NULL : be->alloc(n * sizeof *du_buf);
    int *pk = malloc((size_t)B * sizeof *pk);
    int rc = dout && (host || du_buf) && pk
                 ? 0
                 : err_set(e, "gpt2: out of memory for %d decoding steps", n_steps);
    const int32_t *dtok = rc == 0 ? upload(be, s->ids, tok, (size_t)B * sizeof *tok, e) : NULL;
    const double *du = rc == 0 ? upload(be, du_buf, u, n * sizeof *u, e) : NULL;
    if (rc == 0 && (!dtok || !du)) rc = ERR_FAIL;
    struct decode_step c = {.m = m, .s = s, .B = B, .pos = pk, .inv_t = inv_t};
    for (int k = 0; rc == 0 && k < n_steps; k++) {
        for (int b = 0; b < B; b++) pk[b] = pos[b] + k;
        c.ids = k == 0 ? dtok : dout + (size_t)(k - 1) * B;  /* the draws of the step before */
        c.u = du + (size_t)k * B;
        c.next = dout + (size_t)k * B;
        rc = be->run_step(enqueue_decode_step, &c, e);
    }
    if (rc == 0) rc = download(be, out, dout, n * sizeof *out, e);
    if (!host) be->free(dout), be->free(du_buf);
    free(pk);
    return rc;
}

double gpt2_draw_uniform(uint64_t seed, uint64_t id, uint32_t pos, int bits)
{
    uint32_t w[4];
    philox_draw(seed, id, 0, pos, 0, w);
    return bits == 64 ? philox_u01_f64(w[0], w[1]) : (double)philox_u01_f32(w[0]);
}


// ---- scoring --------------------------------------------------------------------------------

int gpt2_nll(const gpt2_t *m, gpt2_state *s, int B, int T, const int32_t *ids, double *nll,
             err_t *e)
{
    const backend *be = m->be;
    int C = (int)m->cfg.n_embd, V = (int)m->cfg.vocab_size, N = B * T;
    if (chunk_buffers(m, s, e) < 0) return ERR_FAIL;
    /* where log_softmax_pick writes: s->lp itself on the CPU */
    double *lp = host_memory(be) ? s->lp : s->lp_dev;
    struct gpt2_out out = {0};
    if (gpt2_forward(m, s, 0, B, T, ids, 0, NULL, &out, e) < 0) return ERR_FAIL;
    /* s->ln now holds ln_f(x) (N,C); row i predicts ids[i+1] within its sequence */
    int32_t target[NLL_CHUNK];
    for (int i0 = 0; i0 < N; i0 += NLL_CHUNK) {
        int n = N - i0 < NLL_CHUNK ? N - i0 : NLL_CHUNK;
        be->matmul(s->logits, s->ln + (size_t)i0 * C, m->lm_head, NULL, n, C, V, BE_OUT_IN,
                   false);
        for (int r = 0; r < n; r++) {
            int i = i0 + r;
            target[r] = (i % T) + 1 < T ? ids[i + 1] : ids[i]; /* last row: unused */
        }
        const int32_t *dtarget = upload(be, s->target, target, (size_t)n * sizeof *target, e);
        if (!dtarget) return ERR_FAIL;
        be->log_softmax_pick(lp, s->logits, dtarget, n, V);
        if (download(be, s->lp, lp, (size_t)n * sizeof *lp, e) < 0) return ERR_FAIL;
        for (int r = 0; r < n; r++) {
            int i = i0 + r;
            if ((i % T) + 1 < T) nll[i + 1] = -s->lp[r];
        }
    }
    for (int b = 0; b < B; b++) nll[(size_t)b * T] = 0;
    return 0;
}

int gpt2_nll_sliding(const gpt2_t *m, gpt2_state *s, const int32_t *ids, int n, int window,
                     int stride, int lo, int hi, double *nll, struct gpt2_sliding *sum,
                     err_t *e)
{
    memset(sum, 0, sizeof *sum);
    if (window < 2 || stride < 1 || stride > window || lo < 1 || hi > n)
        return err_set(e, "gpt2: bad sliding window (window %d, stride %d, targets %d..%d of %d)",
                       window, stride, lo, hi, n);
    double *wnll = malloc((size_t)window * sizeof *wnll);
    if (!wnll) return err_set(e, "out of memory");
    int prev_end = 0, rc = 0;
    for (int begin = 0; begin < hi && prev_end < hi; begin += stride) {
        int end = begin + window < hi ? begin + window : hi;
        int t0 = prev_end > begin + 1 ? prev_end : begin + 1; /* first target of this window */
        int a = t0 > lo ? t0 : lo, scored = end - a;
        if (scored > 0) {
            if ((rc = gpt2_nll(m, s, 1, end - begin, ids + begin, wnll, e)) < 0) break;
            double wsum = 0;
            for (int t = a; t < end; t++) {
                nll[t] = wnll[t - begin];
                wsum += nll[t];
            }
            long weight = begin == 0 ? scored : scored - 1;
            sum->nll_sum += wsum;
            sum->n += scored;
            sum->hf_sum += wsum / scored * (double)weight;
            sum->hf_n += weight;
            sum->windows++;
        }
        prev_end = end;
    }
    free(wnll);
    return rc;
}
