/* ckpt: the fixture checkpoints load with their dimensions and the parameter counts of the
 * config formulas (computed here, independently of lib/ckpt.c's table); the GPT-2 variant file
 * loads to identical tensors; checkpoints rewritten with a tensor missing, mis-shaped, of the
 * wrong dtype or stored twice are rejected naming the tensor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/ckpt.h"
#include "tap.h"

#define FIX "tests/fixtures"

static char tmp[] = "/tmp/test_ckpt.XXXXXX";

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    char buf[65536];
    size_t n;
    int ok = in && out;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    if (in) fclose(in);
    if (out && fclose(out) != 0) ok = 0;
    return ok ? 0 : -1;
}

/* tmp/<name>/ with the config of `fixdir` and, when `model` is set, that file as the model. */
static const char *make_dir(const char *name, const char *fixdir, const char *model)
{
    static char dir[512];
    char from[512], to[600];
    snprintf(dir, sizeof dir, "%s/%s", tmp, name);
    mkdir(dir, 0777);
    snprintf(from, sizeof from, "%s/config.json", fixdir);
    snprintf(to, sizeof to, "%s/config.json", dir);
    copy_file(from, to);
    if (model) {
        snprintf(to, sizeof to, "%s/model.safetensors", dir);
        copy_file(model, to);
    }
    return dir;
}

static void remove_dir(const char *dir)
{
    char p[700];
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    rmdir(dir);
}

/* Parameter counts from the published formulas (spec gpt2.md 1.1, sedd.md 1.2). */
static uint64_t gpt2_count(const struct config_gpt2 *g)
{
    uint64_t V = g->vocab_size, P = g->n_positions, C = g->n_embd, L = g->n_layer;
    return V * C + P * C + L * (12 * C * C + 13 * C) + 2 * C;
}

static uint64_t sedd_count(const struct config_sedd *s)
{
    uint64_t V = s->vocab, H = s->hidden_size, C = s->cond_dim, L = s->n_blocks;
    uint64_t embed = V * H, sigma = C * 256 + C + C * C + C;
    uint64_t block = H + 3 * H * H + H * H + H + (4 * H * H + 4 * H) + (4 * H * H + H) +
                     (6 * H * C + 6 * H);
    uint64_t out = H + (V * H + V) + (2 * H * C + 2 * H);
    return embed + sigma + L * block + out;
}

static void test_fixtures(void)
{
    err_t e = {{0}};
    ckpt_t *c = ckpt_open(FIX "/gpt2", &e);
    CHECK(c != NULL, "gpt2 fixture opens (%s)", c ? "ok" : e.msg);
    if (c) {
        const struct config *cfg = ckpt_config(c);
        const struct ckpt_summary *s = ckpt_summary(c);
        CHECK(cfg->kind == CONFIG_GPT2 && cfg->gpt2.n_layer == 2 && cfg->gpt2.n_embd == 64,
              "kind gpt2, L 2, C 64");
        CHECK(s->n_params == gpt2_count(&cfg->gpt2) && s->n_params == 168192,
              "parameters %llu = V*C + P*C + L*(12C^2+13C) + 2C = 168192",
              (unsigned long long)s->n_params);
        CHECK(s->n_tensors == 30 && s->n_param_tensors == 28 && s->n_buffers == 2 &&
                  s->n_extra == 0 && s->lm_head == CKPT_LM_HEAD_ABSENT &&
                  s->dtypes == (1u << ST_F32) && s->file_bytes == 707995 &&
                  s->param_bytes == 4 * s->n_params,
              "30 tensors: 28 parameters + 2 mask buffers, lm_head absent, all F32");
        const st_tensor *t = ckpt_tensor(c, "h.1.attn.c_attn.weight");
        CHECK(t && t->shape[0] == 64 && t->shape[1] == 192, "Conv1D c_attn stored [C, 3C]");
        CHECK(ckpt_tensor(c, "lm_head.weight") == NULL && ckpt_tensor(c, "nope") == NULL,
              "absent names give NULL");
        size_t n = ckpt_expected(cfg, NULL, 0);
        CHECK(n == 14 * 2 + 5, "gpt2 table: 12 params + 2 buffers per layer + 5 = %zu", n);
    }
    ckpt_close(c);

    const char *sedd[] = {FIX "/sedd/tiny_absorb_loglinear", FIX "/sedd/tiny_uniform_geometric"};
    const uint64_t want[] = {267241, 267112};
    for (int i = 0; i < 2; i++) {
        c = ckpt_open(sedd[i], &e);
        CHECK(c != NULL, "%s opens (%s)", sedd[i], c ? "ok" : e.msg);
        if (!c) continue;
        const struct config *cfg = ckpt_config(c);
        const struct ckpt_summary *s = ckpt_summary(c);
        CHECK(cfg->kind == CONFIG_SEDD && s->n_params == sedd_count(&cfg->sedd) &&
                  s->n_params == want[i],
              "%s: %llu parameters from the formula (inv_freq buffer excluded)", sedd[i],
              (unsigned long long)s->n_params);
        CHECK(s->n_tensors == 31 && s->n_buffers == 1 && s->n_extra == 0 &&
                  s->lm_head == CKPT_LM_HEAD_NONE,
              "31 tensors, rotary_emb.inv_freq the one buffer");
        const st_tensor *t = ckpt_tensor(c, "output_layer.linear.weight");
        CHECK(t && t->shape[0] == cfg->sedd.vocab && t->shape[1] == 64,
              "output_layer.linear.weight [V, H]");
        ckpt_close(c);
    }
}

/* Every parameter of a and b has the same shape and the same values. */
static int same_params(const ckpt_t *a, const ckpt_t *b, size_t *compared)
{
    const struct config *cfg = ckpt_config(a);
    size_t n = ckpt_expected(cfg, NULL, 0);
    struct ckpt_param *tab = calloc(n, sizeof *tab);
    ckpt_expected(cfg, tab, n);
    int same = 1;
    *compared = 0;
    for (size_t i = 0; i < n && same; i++) {
        if (tab[i].role != CKPT_PARAM || strcmp(tab[i].name, "lm_head.weight") == 0) continue;
        const st_tensor *x = ckpt_tensor(a, tab[i].name), *y = ckpt_tensor(b, tab[i].name);
        if (!x || !y || x->numel != y->numel || x->ndim != y->ndim) {
            same = 0;
            break;
        }
        float *u = malloc(x->numel * 4), *v = malloc(y->numel * 4);
        err_t e;
        same = st_tensor_to_f32(x, u, &e) == 0 && st_tensor_to_f32(y, v, &e) == 0 &&
               memcmp(u, v, x->numel * 4) == 0;
        free(u);
        free(v);
        (*compared)++;
    }
    free(tab);
    return same;
}

static void test_variant(void)
{
    err_t e = {{0}};
    const char *dir = make_dir("variant", FIX "/gpt2", FIX "/gpt2/model_variant.safetensors");
    ckpt_t *v = ckpt_open(dir, &e), *h = ckpt_open(FIX "/gpt2", &e);
    CHECK(v != NULL, "variant (transformer. prefix, lm_head, shuffled, padded) opens (%s)",
          v ? "ok" : e.msg);
    if (v && h) {
        const struct ckpt_summary *s = ckpt_summary(v);
        CHECK(s->lm_head == CKPT_LM_HEAD_TIED && s->n_params == ckpt_summary(h)->n_params &&
                  s->n_buffers == 0 && s->n_param_tensors == 29 && s->n_extra == 0,
              "lm_head identical to wte: tied, counted once (%llu parameters)",
              (unsigned long long)s->n_params);
        size_t k;
        CHECK(same_params(v, h, &k) && k == 28, "all %zu parameters equal the hub file's", k);
        const st_tensor *t = ckpt_tensor(v, "wte.weight");
        CHECK(t && strcmp(t->name, "transformer.wte.weight") == 0,
              "canonical 'wte.weight' finds the stored 'transformer.wte.weight'");
    }
    ckpt_close(v);
    ckpt_close(h);
    remove_dir(dir);
    CHECK(strcmp(ckpt_canonical(CONFIG_GPT2, "transformer.h.0.ln_1.bias"), "h.0.ln_1.bias") == 0 &&
              strcmp(ckpt_canonical(CONFIG_SEDD, "transformer.x"), "transformer.x") == 0 &&
              strcmp(ckpt_canonical(CONFIG_GPT2, "transformer."), "transformer.") == 0,
          "ckpt_canonical strips the prefix for GPT-2 only");
}

/* Rewrites the fixture at `fixdir` with tensors edited by `edit` (which may drop or add some),
 * opens the result and returns ckpt_open's status, with the message in e. */
typedef size_t (*edit_fn)(st_tensor *t, size_t n, void *scratch);

static int open_edited(const char *name, const char *fixdir, edit_fn edit, err_t *e,
                       struct ckpt_summary *sum)
{
    char model[600];
    snprintf(model, sizeof model, "%s/model.safetensors", fixdir);
    st_file_t *f = st_open(model, e);
    if (!f) return -2;
    size_t n = st_count(f);
    st_tensor *t = calloc(n + 4, sizeof *t);
    for (size_t i = 0; i < n; i++) t[i] = *st_get(f, i);
    static unsigned char scratch[1 << 20];
    n = edit(t, n, scratch);
    const char *dir = make_dir(name, fixdir, NULL);
    char out[600];
    snprintf(out, sizeof out, "%s/model.safetensors", dir);
    int rc = st_write(out, t, n, NULL, 0, e);
    free(t);
    st_close(f);
    if (rc < 0) return -3;
    ckpt_t *c = ckpt_open(dir, e);
    if (c && sum) *sum = *ckpt_summary(c);
    ckpt_close(c);
    remove_dir(dir);
    return c ? 0 : -2;
}

static size_t find(st_tensor *t, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0) return i;
    return n;
}

/* Removes the tensor called name; returns the new count. */
static size_t drop(st_tensor *t, size_t n, const char *name)
{
    size_t i = find(t, n, name);
    if (i < n) memmove(&t[i], &t[i + 1], (n - i - 1) * sizeof *t);
    return i < n ? n - 1 : n;
}

static size_t drop_fc_bias(st_tensor *t, size_t n, void *s)
{
    (void)s;
    return drop(t, n, "h.1.mlp.c_fc.bias");
}

static size_t reshape_c_proj(st_tensor *t, size_t n, void *s)
{
    (void)s;
    size_t i = find(t, n, "h.0.attn.c_proj.weight");
    t[i].shape[0] = 32, t[i].shape[1] = 128;  /* same bytes, wrong shape */
    return n;
}

static size_t wte_as_i32(st_tensor *t, size_t n, void *s)
{
    (void)s;
    t[find(t, n, "wte.weight")].dtype = ST_I32;
    return n;
}

static size_t twice(st_tensor *t, size_t n, void *s)
{
    (void)s;
    t[n] = t[find(t, n, "ln_f.bias")];
    t[n].name = "transformer.ln_f.bias";
    return n + 1;
}

static size_t untied_head_and_extra(st_tensor *t, size_t n, void *s)
{
    const st_tensor *wte = &t[find(t, n, "wte.weight")];
    memcpy(s, wte->data, wte->nbytes);
    float x;
    memcpy(&x, (char *)s + 28, 4);
    x += 1.0f;
    memcpy((char *)s + 28, &x, 4);
    t[n] = *wte;
    t[n].name = "lm_head.weight";
    t[n].data = s;
    t[n + 1] = t[n];
    t[n + 1].name = "value_head.weight";
    return n + 2;
}

/* The causal masks as BOOL, and every LayerNorm in BF16 (bits of the F32 high halves). */
static size_t bool_mask_bf16_ln(st_tensor *t, size_t n, void *s)
{
    unsigned char *p = s;
    for (size_t i = 0; i < n; i++) {
        if (strstr(t[i].name, ".attn.bias") && !strstr(t[i].name, "c_attn")) {
            for (size_t k = 0; k < t[i].numel; k++) {
                float m;  /* the mapped data are unaligned: memcpy, never cast */
                memcpy(&m, (const char *)t[i].data + 4 * k, 4);
                p[k] = m != 0;
            }
            t[i].dtype = ST_BOOL, t[i].data = p;
            p += t[i].numel;
        } else if (strstr(t[i].name, "ln_")) {
            for (size_t k = 0; k < t[i].numel; k++)
                memcpy(p + 2 * k, (const char *)t[i].data + 4 * k + 2, 2);
            t[i].dtype = ST_BF16, t[i].data = p;
            p += 2 * t[i].numel;
        }
    }
    return n;
}

static size_t drop_inv_freq_reshape_ada(st_tensor *t, size_t n, void *s)
{
    (void)s;
    n = drop(t, n, "rotary_emb.inv_freq");
    size_t i = find(t, n, "blocks.1.adaLN_modulation.weight");
    t[i].shape[0] = 32, t[i].shape[1] = 384;  /* transposed */
    return n;
}

static size_t drop_inv_freq(st_tensor *t, size_t n, void *s)
{
    (void)s;
    return drop(t, n, "rotary_emb.inv_freq");
}

static void test_bad(void)
{
    err_t e = {{0}};
    struct ckpt_summary s;
    int rc = open_edited("missing", FIX "/gpt2", drop_fc_bias, &e, NULL);
    CHECK(rc == -2 && strstr(e.msg, "missing tensor 'h.1.mlp.c_fc.bias' (expected shape [256])") &&
              strstr(e.msg, "model.safetensors"),
          "a missing tensor is named with its shape: %s", e.msg);
    rc = open_edited("shape", FIX "/gpt2", reshape_c_proj, &e, NULL);
    CHECK(rc == -2 &&
              strstr(e.msg, "'h.0.attn.c_proj.weight' has shape [32, 128], expected [64, 64]"),
          "a mis-shaped tensor is named with both shapes: %s", e.msg);
    rc = open_edited("dtype", FIX "/gpt2", wte_as_i32, &e, NULL);
    CHECK(rc == -2 && strstr(e.msg, "'wte.weight' has dtype I32"),
          "an integer parameter is rejected: %s", e.msg);
    rc = open_edited("twice", FIX "/gpt2", twice, &e, NULL);
    CHECK(rc == -2 && strstr(e.msg, "'ln_f.bias' is stored twice"),
          "a name stored with and without the prefix is rejected: %s", e.msg);
    rc = open_edited("untied", FIX "/gpt2", untied_head_and_extra, &e, &s);
    CHECK(rc == 0 && s.lm_head == CKPT_LM_HEAD_UNTIED && s.n_params == 168192 + 64000 &&
              s.n_extra == 1 && s.n_param_tensors == 29,
          "a different lm_head is untied and counted; an unknown tensor is ignored and counted");
    rc = open_edited("boolmask", FIX "/gpt2", bool_mask_bf16_ln, &e, &s);
    CHECK(rc == 0 && s.n_params == 168192 && s.n_buffers == 2 &&
              s.dtypes == ((1u << ST_F32) | (1u << ST_BF16) | (1u << ST_BOOL)),
          "BOOL causal masks and BF16 parameters are accepted (%s)", rc ? e.msg : "ok");
    rc = open_edited("sedd_shape", FIX "/sedd/tiny_absorb_loglinear", drop_inv_freq_reshape_ada,
                     &e, NULL);
    CHECK(rc == -2 && strstr(e.msg, "'blocks.1.adaLN_modulation.weight' has shape [32, 384], "
                             "expected [384, 32]"),
          "SEDD: a transposed adaLN weight is named: %s", e.msg);
    rc = open_edited("sedd_noinv", FIX "/sedd/tiny_uniform_geometric", drop_inv_freq, &e, &s);
    CHECK(rc == 0 && s.n_buffers == 0 && s.n_params == 267112,
          "SEDD without rotary_emb.inv_freq loads (a recomputable buffer)");

    ckpt_t *c = ckpt_open("/nonexistent/dir", &e);
    CHECK(!c && strcmp(e.msg, "/nonexistent/dir: No such file or directory") == 0,
          "missing directory: %s", e.msg);
    c = ckpt_open(FIX "/gpt2/config.json", &e);
    CHECK(!c && strstr(e.msg, "not a directory"), "a file instead of a directory: %s", e.msg);
    const char *dir = make_dir("nomodel", FIX "/gpt2", NULL);
    c = ckpt_open(dir, &e);
    CHECK(!c && strstr(e.msg, "cannot open 'model.safetensors'") &&
              strncmp(e.msg, dir, strlen(dir)) == 0,
          "no model.safetensors: %s", e.msg);
    remove_dir(dir);
    /* A config claiming 1000 layers fails on the count, before building a 14k-entry table. */
    dir = make_dir("deep", FIX "/gpt2", FIX "/gpt2/model.safetensors");
    char cfgpath[700];
    snprintf(cfgpath, sizeof cfgpath, "%s/config.json", dir);
    FILE *fp = fopen(cfgpath, "w");
    fputs("{\"model_type\": \"gpt2\", \"vocab_size\": 1000, \"n_positions\": 64, "
          "\"n_embd\": 64, \"n_head\": 4, \"n_layer\": 1000}", fp);
    fclose(fp);
    c = ckpt_open(dir, &e);
    CHECK(!c && strstr(e.msg, "holds 30 tensors, fewer than the 12004 that config.json requires"),
          "n_layer far beyond the file: %s", e.msg);
    remove_dir(dir);
    /* The SEDD weights under the GPT-2 config: the first GPT-2 name is missing. */
    dir = make_dir("mixed", FIX "/gpt2", FIX "/sedd/tiny_absorb_loglinear/model.safetensors");
    c = ckpt_open(dir, &e);
    CHECK(!c && strstr(e.msg, "missing tensor 'wte.weight'"), "SEDD file, GPT-2 config: %s",
          e.msg);
    remove_dir(dir);
}

int main(void)
{
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_fixtures();
    test_variant();
    test_bad();
    rmdir(tmp);
    return tap_done();
}
