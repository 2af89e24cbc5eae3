/* ckpt: model directories and their expected parameter tables (see ckpt.h; shapes from
 * shared/specs/gpt2.md 1.3 and sedd.md 1.2). */
#include "ckpt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

#define ST_FILE "model.safetensors"
#define GPT2_PREFIX "transformer."
/* SEDD's TimestepEmbedder: sinusoidal features of sigma, hard-coded in the original model. */
#define SEDD_FREQ_DIM 256

struct canon {
    const char *name;     /* canonical (points into the stored name) */
    const st_tensor *t;
};

struct ckpt {
    char *dir;
    struct config cfg;
    st_file_t *st;
    struct canon *index;  /* sorted by canonical name */
    size_t n;
    struct ckpt_summary sum;
};

/* ---- the table of expected tensors ------------------------------------------------------- */

struct table {
    struct ckpt_param *out;
    size_t cap, n;
    size_t n_required;
};

static void add(struct table *tb, enum ckpt_role role, bool optional, int ndim,
                const int64_t *shape, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void add(struct table *tb, enum ckpt_role role, bool optional, int ndim,
                const int64_t *shape, const char *fmt, ...)
{
    if (tb->n < tb->cap) {
        struct ckpt_param *p = &tb->out[tb->n];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->name, sizeof p->name, fmt, ap);
        va_end(ap);
        p->ndim = ndim;
        memset(p->shape, 0, sizeof p->shape);
        if (ndim) memcpy(p->shape, shape, (size_t)ndim * sizeof *shape);
        p->role = role;
        p->optional = optional;
    }
    tb->n++;
    tb->n_required += !optional;
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})

static void table_gpt2(const struct config_gpt2 *g, struct table *tb)
{
    const int64_t V = g->vocab_size, P_ = g->n_positions, C = g->n_embd, F = g->n_inner;
    add(tb, CKPT_PARAM, false, 2, SHAPE(V, C), "wte.weight");
    add(tb, CKPT_PARAM, false, 2, SHAPE(P_, C), "wpe.weight");
    for (int64_t i = 0; i < g->n_layer; i++) {
        long long l = (long long)i;
        add(tb, CKPT_PARAM, false, 1, SHAPE(C), "h.%lld.ln_1.weight", l);
        add(tb, CKPT_PARAM, false, 1, SHAPE(C), "h.%lld.ln_1.bias", l);
        add(tb, CKPT_PARAM, false, 2, SHAPE(C, 3 * C), "h.%lld.attn.c_attn.weight", l);
        add(tb, CKPT_PARAM, false, 1, SHAPE(3 * C), "h.%lld.attn.c_attn.bias", l);
        add(tb, CKPT_PARAM, false, 2, SHAPE(C, C), "h.%lld.attn.c_proj.weight", l);
        add(tb, CKPT_PARAM, false, 1, SHAPE(C), "h.%lld.attn.c_proj.bias", l);
        add(tb, CKPT_PARAM, false, 1, SHAPE(C), "h.%lld.ln_2.weight", l);
        add(tb, CKPT_PARAM, false, 1, SHAPE(C), "h.%lld.ln_2.bias", l);
        add(tb, CKPT_PARAM, false, 2, SHAPE(C, F), "h.%lld.mlp.c_fc.weight", l);
        add(tb, CKPT_PARAM, false, 1, SHAPE(F), "h.%lld.mlp.c_fc.bias", l);
        add(tb, CKPT_PARAM, false, 2, SHAPE(F, C), "h.%lld.mlp.c_proj.weight", l);
        add(tb, CKPT_PARAM, false, 1, SHAPE(C), "h.%lld.mlp.c_proj.bias", l);
        add(tb, CKPT_BUFFER, true, 4, SHAPE(1, 1, P_, P_), "h.%lld.attn.bias", l);
        add(tb, CKPT_BUFFER, true, 0, NULL, "h.%lld.attn.masked_bias", l);
    }
    add(tb, CKPT_PARAM, false, 1, SHAPE(C), "ln_f.weight");
    add(tb, CKPT_PARAM, false, 1, SHAPE(C), "ln_f.bias");
    add(tb, CKPT_PARAM, true, 2, SHAPE(V, C), "lm_head.weight");
}

static void table_sedd(const struct config_sedd *s, struct table *tb)
{
    const int64_t V = s->vocab, H = s->hidden_size, C = s->cond_dim, D = H / s->n_heads;
    add(tb, CKPT_PARAM, false, 2, SHAPE(V, H), "vocab_embed.embedding");
    add(tb, CKPT_PARAM, false, 2, SHAPE(C, SEDD_FREQ_DIM), "sigma_map.mlp.0.weight");
    add(tb, CKPT_PARAM, false, 1, SHAPE(C), "sigma_map.mlp.0.bias");
    add(tb, CKPT_PARAM, false, 2, SHAPE(C, C), "sigma_map.mlp.2.weight");
    add(tb, CKPT_PARAM, false, 1, SHAPE(C), "sigma_map.mlp.2.bias");
    add(tb, CKPT_BUFFER, true, 1, SHAPE(D / 2), "rotary_emb.inv_freq");
    for (int64_t i = 0; i < s->n_blocks; i++) {
        long long b = (long long)i;
        add(tb, CKPT_PARAM, false, 1, SHAPE(H), "blocks.%lld.norm1.weight", b);
        add(tb, CKPT_PARAM, false, 2, SHAPE(3 * H, H), "blocks.%lld.attn_qkv.weight", b);
        add(tb, CKPT_PARAM, false, 2, SHAPE(H, H), "blocks.%lld.attn_out.weight", b);
        add(tb, CKPT_PARAM, false, 1, SHAPE(H), "blocks.%lld.norm2.weight", b);
        add(tb, CKPT_PARAM, false, 2, SHAPE(4 * H, H), "blocks.%lld.mlp.0.weight", b);
        add(tb, CKPT_PARAM, false, 1, SHAPE(4 * H), "blocks.%lld.mlp.0.bias", b);
        add(tb, CKPT_PARAM, false, 2, SHAPE(H, 4 * H), "blocks.%lld.mlp.2.weight", b);
        add(tb, CKPT_PARAM, false, 1, SHAPE(H), "blocks.%lld.mlp.2.bias", b);
        add(tb, CKPT_PARAM, false, 2, SHAPE(6 * H, C), "blocks.%lld.adaLN_modulation.weight", b);
        add(tb, CKPT_PARAM, false, 1, SHAPE(6 * H), "blocks.%lld.adaLN_modulation.bias", b);
    }
    add(tb, CKPT_PARAM, false, 1, SHAPE(H), "output_layer.norm_final.weight");
    add(tb, CKPT_PARAM, false, 2, SHAPE(V, H), "output_layer.linear.weight");
    add(tb, CKPT_PARAM, false, 1, SHAPE(V), "output_layer.linear.bias");
    add(tb, CKPT_PARAM, false, 2, SHAPE(2 * H, C), "output_layer.adaLN_modulation.weight");
    add(tb, CKPT_PARAM, false, 1, SHAPE(2 * H), "output_layer.adaLN_modulation.bias");
}

static void fill(const struct config *cfg, struct table *tb)
{
    if (cfg->kind == CONFIG_GPT2) table_gpt2(&cfg->gpt2, tb);
    if (cfg->kind == CONFIG_SEDD) table_sedd(&cfg->sedd, tb);
}

size_t ckpt_expected(const struct config *cfg, struct ckpt_param *out, size_t cap)
{
    struct table tb = {out, out ? cap : 0, 0, 0};
    fill(cfg, &tb);
    return tb.n;
}

/* ---- names ------------------------------------------------------------------------------- */

const char *ckpt_canonical(enum config_kind kind, const char *name)
{
    size_t k = strlen(GPT2_PREFIX);
    if (kind == CONFIG_GPT2 && strncmp(name, GPT2_PREFIX, k) == 0 && name[k]) return name + k;
    return name;
}

const char *ckpt_lm_head_name(enum ckpt_lm_head h)
{
    static const char *const names[] = {"none", "absent", "tied", "untied"};
    return (unsigned)h < 4 ? names[h] : "?";
}

static int cmp_canon(const void *a, const void *b)
{
    return strcmp(((const struct canon *)a)->name, ((const struct canon *)b)->name);
}

const st_tensor *ckpt_tensor(const ckpt_t *c, const char *name)
{
    struct canon key = {name, NULL};
    const struct canon *hit = bsearch(&key, c->index, c->n, sizeof key, cmp_canon);
    return hit ? hit->t : NULL;
}

/* "[1, 1, 64, 64]" into buf. */
static const char *shape_str(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
    return buf;
}

/* ---- open / check ----------------------------------------------------------------------- */

static bool dtype_ok(const struct ckpt_param *p, enum st_dtype dt)
{
    bool fl = dt == ST_F32 || dt == ST_F16 || dt == ST_BF16;
    if (p->role == CKPT_PARAM) return fl;
    /* the GPT-2 causal mask is stored F32 (hub), BOOL (transformers ~4.2x) or U8 */
    size_t n = strlen(p->name), k = strlen(".attn.bias");
    if (n > k && strcmp(p->name + n - k, ".attn.bias") == 0)
        return fl || dt == ST_BOOL || dt == ST_U8;
    return fl;
}

/* Builds the canonical index; a name that occurs twice is an error. */
static int build_index(ckpt_t *c, err_t *e)
{
    size_t n = st_count(c->st);
    c->index = calloc(n ? n : 1, sizeof *c->index);
    if (!c->index) return err_set(e, ST_FILE ": out of memory");
    for (size_t i = 0; i < n; i++) {
        const st_tensor *t = st_get(c->st, i);
        c->index[i] = (struct canon){ckpt_canonical(c->cfg.kind, t->name), t};
    }
    c->n = n;
    qsort(c->index, n, sizeof *c->index, cmp_canon);
    for (size_t i = 1; i < n; i++)
        if (strcmp(c->index[i - 1].name, c->index[i].name) == 0)
            return err_set(e, ST_FILE ": tensor '%s' is stored twice (as '%s' and '%s')",
                           c->index[i].name, c->index[i - 1].t->name, c->index[i].t->name);
    return 0;
}

/* Checks the file against the table and fills the summary. */
static int check(ckpt_t *c, err_t *e)
{
    struct table tb = {NULL, 0, 0, 0};
    fill(&c->cfg, &tb);
    /* A config claiming far more layers than the file holds fails before the table is built. */
    if (tb.n_required > st_count(c->st))
        return err_set(e, ST_FILE ": holds %zu tensors, fewer than the %zu that config.json "
                       "requires", st_count(c->st), tb.n_required);
    size_t ne = tb.n;
    struct ckpt_param *tab = calloc(ne ? ne : 1, sizeof *tab);
    if (!tab) return err_set(e, ST_FILE ": out of memory");
    ckpt_expected(&c->cfg, tab, ne);

    struct ckpt_summary *s = &c->sum;
    s->kind = c->cfg.kind;
    s->n_tensors = st_count(c->st);
    s->file_bytes = st_file_size(c->st);
    s->lm_head = c->cfg.kind == CONFIG_GPT2 ? CKPT_LM_HEAD_ABSENT : CKPT_LM_HEAD_NONE;
    for (size_t i = 0; i < s->n_tensors; i++) s->dtypes |= 1u << st_get(c->st, i)->dtype;

    int rc = 0;
    size_t matched = 0;
    char got[128], want[128];
    for (size_t i = 0; i < ne; i++) {
        const struct ckpt_param *p = &tab[i];
        const st_tensor *t = ckpt_tensor(c, p->name);
        if (!t) {
            if (p->optional) continue;
            rc = err_set(e, ST_FILE ": missing tensor '%s' (expected shape %s)", p->name,
                         shape_str(want, sizeof want, p->ndim, p->shape));
            break;
        }
        matched++;
        if (t->ndim != p->ndim || memcmp(t->shape, p->shape, (size_t)p->ndim * 8) != 0) {
            rc = err_set(e, ST_FILE ": tensor '%s' has shape %s, expected %s", t->name,
                         shape_str(got, sizeof got, t->ndim, t->shape),
                         shape_str(want, sizeof want, p->ndim, p->shape));
            break;
        }
        if (!dtype_ok(p, t->dtype)) {
            rc = err_set(e, ST_FILE ": tensor '%s' has dtype %s, expected %s", t->name,
                         st_dtype_name(t->dtype),
                         p->role == CKPT_PARAM ? "F32, F16 or BF16" : "a float (or BOOL/U8 mask)");
            break;
        }
        if (p->role == CKPT_BUFFER) {
            s->n_buffers++;
            continue;
        }
        s->n_param_tensors++;
        if (strcmp(p->name, "lm_head.weight") == 0) {
            const st_tensor *w = ckpt_tensor(c, "wte.weight");
            bool same = w && w->dtype == t->dtype && w->nbytes == t->nbytes &&
                        (t->nbytes == 0 || memcmp(w->data, t->data, t->nbytes) == 0);
            s->lm_head = same ? CKPT_LM_HEAD_TIED : CKPT_LM_HEAD_UNTIED;
            if (same) continue;
        }
        s->n_params += t->numel;
        s->param_bytes += t->nbytes;
    }
    s->n_extra = s->n_tensors - matched;
    if (rc == 0 && s->n_extra) {
        for (size_t i = 0; i < c->n; i++) {
            bool known = false;
            for (size_t j = 0; j < ne && !known; j++)
                known = !strcmp(c->index[i].name, tab[j].name);
            if (!known) log_info("%s: ignoring tensor '%s'", c->dir, c->index[i].t->name);
        }
    }
    free(tab);
    return rc;
}

ckpt_t *ckpt_open(const char *dir, err_t *e) { return ckpt_open_weights(dir, ST_FILE, e); }

ckpt_t *ckpt_open_weights(const char *dir, const char *weights, err_t *e)
{
    struct stat sb;
    if (stat(dir, &sb) < 0) {
        err_set_errno(e, "%s", dir);
        return NULL;
    }
    if (!S_ISDIR(sb.st_mode)) {
        err_set(e, "%s: not a directory (expected config.json + " ST_FILE ")", dir);
        return NULL;
    }
    ckpt_t *c = calloc(1, sizeof *c);
    if (!c || !(c->dir = strdup(dir))) {
        free(c);
        err_set(e, "%s: out of memory", dir);
        return NULL;
    }
    if (config_read_dir(dir, &c->cfg, e) < 0) goto fail_noprefix;

    char path[4096];
    int k = snprintf(path, sizeof path, "%s/%s", dir, weights);
    if (k < 0 || (size_t)k >= sizeof path) {
        err_set(e, "path too long");
        goto fail;
    }
    if (!(c->st = st_open_named(path, weights, e))) goto fail;
    if (build_index(c, e) < 0 || check(c, e) < 0) goto fail;
    log_debug("%s: %s, %zu tensors, %llu parameters", dir, config_kind_name(c->cfg.kind),
              c->sum.n_tensors, (unsigned long long)c->sum.n_params);
    return c;
fail:
    err_prefix(e, "%s", dir);
fail_noprefix:
    ckpt_close(c);
    return NULL;
}

void ckpt_close(ckpt_t *c)
{
    if (!c) return;
    st_close(c->st);
    free(c->index);
    free(c->dir);
    free(c);
}

const struct config *ckpt_config(const ckpt_t *c) { return &c->cfg; }
const struct ckpt_summary *ckpt_summary(const ckpt_t *c) { return &c->sum; }
const st_file_t *ckpt_file(const ckpt_t *c) { return c->st; }
const char *ckpt_dir(const ckpt_t *c) { return c->dir; }
