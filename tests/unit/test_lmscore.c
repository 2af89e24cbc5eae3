/* Unit tests of lmscore: MAUVE features against the GPT-2 fixture's padded.features, continuation
 * log-likelihoods against gpt2_nll / gpt2_forward, the harness's request encoding, id checks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "gpt2.h"
#include "lmscore.h"
#include "safetensors.h"
#include "sedd.h"
#include "tap.h"

#define FIX "tests/fixtures/gpt2"

/* The I64 tensor name as uint32 ids (caller frees), its numel in *n. */
static uint32_t *ids_of(st_file_t *f, const char *name, size_t *n)
{
    const st_tensor *t = st_find(f, name);
    if (!t) return NULL;
    int64_t *tmp = malloc(t->numel * sizeof *tmp);
    uint32_t *v = malloc(t->numel * sizeof *v);
    err_t e;
    if (!tmp || !v || st_tensor_to_i64(t, tmp, &e) < 0) exit(1);
    for (size_t i = 0; i < t->numel; i++) v[i] = (uint32_t)tmp[i];
    free(tmp);
    *n = t->numel;
    return v;
}

static void test_features(const gpt2_t *m, gpt2_state *s, st_file_t *cases)
{
    size_t n_ids, n_len;
    uint32_t *ids = ids_of(cases, "padded.input_ids", &n_ids), *len = ids_of(cases, "padded.lengths", &n_len);
    const st_tensor *ft = st_find(cases, "padded.features");
    CHECK(ids && len && ft && ft->numel == n_len * 64, "padded case present");
    if (!ids || !len || !ft) return;
    float *want = malloc(ft->numel * sizeof *want), got[64];
    err_t e;
    st_tensor_to_f32(ft, want, &e);
    size_t T = n_ids / n_len;
    for (size_t b = 0; b < n_len; b++) {
        int rc = lmscore_feature(m, s, ids + b * T, (int)len[b], got, &e);
        double md = 0;
        for (int c = 0; c < 64; c++) md = fmax(md, fabs((double)got[c] - want[b * 64 + c]));
        /* 5e-5: the fixture README's fp32 tolerance for ln_f outputs (observed ~1e-5) */
        CHECK(rc == 0 && md <= 5e-5, "feature of padded row %zu (length %u): max diff %.2e", b,
              len[b], md);
    }
    CHECK(lmscore_feature(m, s, ids, 0, got, &e) < 0, "empty sequence is an error");
    free(want);
    free(ids);
    free(len);
}

static void test_loglik(const gpt2_t *m, gpt2_state *s, st_file_t *cases)
{
    size_t n;
    uint32_t *ids = ids_of(cases, "full.input_ids", &n);
    CHECK(ids != NULL, "full.input_ids present");
    if (!ids) return;
    err_t e;
    int32_t seq[64];
    double nll[64], ll = 0, want = 0;
    bool greedy = true;
    /* ctx = ids[0..10), cont = ids[10..15): ll = -sum nll[10..15) of the joint sequence */
    for (int t = 0; t < 15; t++) seq[t] = (int32_t)ids[t];
    CHECK(gpt2_nll(m, s, 1, 15, seq, nll, &e) == 0, "gpt2_nll runs");
    for (int t = 10; t < 15; t++) want -= nll[t];
    CHECK(lmscore_gpt2(m, s, ids, 10, ids + 10, 5, &ll, &greedy, &e) == 0, "lmscore_gpt2 runs");
    CHECK(fabs(ll - want) <= 1e-4, "ll %.8f equals -sum nll %.8f", ll, want);
    /* a one-token context (the [eot] case) and a one-token continuation */
    want = -nll[1];
    CHECK(lmscore_gpt2(m, s, ids, 1, ids + 1, 1, &ll, NULL, &e) == 0 && fabs(ll - want) <= 1e-4,
          "one-token context: ll %.8f vs %.8f", ll, want);
    /* greedy: the argmax after ids[0..10) is greedy, any other token is not */
    float *logits = malloc(10 * 1000 * sizeof *logits);
    struct gpt2_out out = {.logits = logits};
    CHECK(gpt2_forward(m, s, 0, 1, 10, seq, 0, NULL, &out, &e) == 0, "gpt2_forward runs");
    uint32_t arg = 0, other;
    for (uint32_t v = 1; v < 1000; v++)
        if (logits[9 * 1000 + v] > logits[9 * 1000 + arg]) arg = v;
    other = arg == 0 ? 1 : 0;
    bool g1 = false, g2 = true;
    lmscore_gpt2(m, s, ids, 10, &arg, 1, &ll, &g1, &e);
    lmscore_gpt2(m, s, ids, 10, &other, 1, &ll, &g2, &e);
    CHECK(g1 && !g2, "is_greedy: argmax %u greedy, %u not", arg, other);
    free(logits);
    /* left truncation: 60 + 10 tokens > 64 + 1 still scores 10 tokens */
    uint32_t longer[70];
    for (int i = 0; i < 70; i++) longer[i] = ids[i % 64];
    CHECK(lmscore_gpt2(m, s, longer, 60, longer + 60, 10, &ll, NULL, &e) == 0 && isfinite(ll) && ll < 0,
          "left-truncated request scores (ll %.4f)", ll);
    /* reference for the truncated request: input = longer[5..69), logits at positions 54..63
     * predict longer[60..70) */
    for (int t = 0; t < 64; t++) seq[t] = (int32_t)longer[5 + t];
    float *lg = malloc(64 * 1000 * sizeof *lg);
    struct gpt2_out o64 = {.logits = lg};
    CHECK(gpt2_forward(m, s, 0, 1, 64, seq, 0, NULL, &o64, &e) == 0, "reference forward runs");
    want = 0;
    for (int t = 54; t < 64; t++) {
        const float *row = lg + t * 1000;
        double mx = row[0], z = 0;
        for (int v = 1; v < 1000; v++) mx = fmax(mx, row[v]);
        for (int v = 0; v < 1000; v++) z += exp(row[v] - mx);
        want += row[longer[6 + t]] - mx - log(z);
    }
    free(lg);
    CHECK(fabs(ll - want) <= 1e-4, "left truncation: ll %.8f equals the window's %.8f", ll, want);
    /* errors */
    uint32_t bad = 1000;
    CHECK(lmscore_gpt2(m, s, ids, 10, &bad, 1, &ll, NULL, &e) < 0 && strstr(e.msg, "vocabulary"),
          "id 1000 rejected: %s", e.msg);
    CHECK(lmscore_gpt2(m, s, ids, 10, ids, 65, &ll, NULL, &e) < 0, "continuation longer than the context rejected");
    free(ids);
}

static void test_encode(void)
{
    err_t e;
    bpe_t *bpe = bpe_load("data/gpt2", &e); /* run from the source tree */
    if (!bpe) bpe = bpe_load_default(&e);
    if (!bpe) {
        printf("ok %d - # skip no GPT-2 vocabulary (%s)\n", ++tap_count, e.msg);
        return;
    }
    bpe_enc_t *enc = bpe_enc_new(bpe, &e);
    struct bpe_ids c1 = {0}, k1 = {0}, c2 = {0}, k2 = {0}, w = {0};
    uint32_t eot = (uint32_t)bpe_token_id(bpe, BPE_EOT);
    const char *ctx = "Question: How do you do it?\nAnswer:", *cont = " Carefully, with tools.";
    CHECK(lmscore_encode_pair(enc, ctx, cont, eot, &c1, &k1, &e) == 0, "encode_pair runs");
    char joint[256];
    snprintf(joint, sizeof joint, "%s%s", ctx, cont);
    bpe_encode(enc, joint, strlen(joint), &w, &e);
    CHECK(c1.n + k1.n == w.n && memcmp(c1.v, w.v, c1.n * 4) == 0 &&
          memcmp(k1.v, w.v + c1.n, k1.n * 4) == 0, "ctx + cont is the joint tokenization");
    /* trailing whitespace of the context moves to the continuation */
    CHECK(lmscore_encode_pair(enc, "He said ", "hello", eot, &c1, &k1, &e) == 0 &&
          lmscore_encode_pair(enc, "He said", " hello", eot, &c2, &k2, &e) == 0 &&
          c1.n == c2.n && k1.n == k2.n && memcmp(c1.v, c2.v, c1.n * 4) == 0 &&
          memcmp(k1.v, k2.v, k1.n * 4) == 0, "trailing space moved to the continuation");
    CHECK(lmscore_encode_pair(enc, "", "hello", eot, &c1, &k1, &e) == 0 && c1.n == 1 &&
          c1.v[0] == eot, "empty context is [eot]");
    bpe_ids_free(&c1), bpe_ids_free(&k1), bpe_ids_free(&c2), bpe_ids_free(&k2), bpe_ids_free(&w);
    bpe_enc_free(enc);
    bpe_free(bpe);
}

/* A score function that checks what the model is shown: the context always clean, and (for the
 * greedy call, at the smallest sigma) the continuation all masked. */
struct spy {
    sedd_model_t *m;
    const int64_t *x0;
    int n_ctx, calls, dirty_ctx, moved, greedy_masked;
    int64_t mask;
};

static int spy_score(void *ctx, const int64_t *x, const float *sigma, int B, int L, float *out,
                     err_t *e)
{
    struct spy *sp = ctx;
    sp->calls++;
    for (int l = 0; l < sp->n_ctx; l++) sp->dirty_ctx += x[l] != sp->x0[l];
    int masked = 0;
    for (int l = sp->n_ctx; l < L; l++) masked += x[l] != sp->x0[l];
    sp->moved += masked;
    if (masked == L - sp->n_ctx && sigma[0] < 1e-3) sp->greedy_masked++;
    return sedd_score(sp->m, x, sigma, B, L, out, e);
}

static void test_sedd(const char *dir, bool absorb)
{
    err_t e;
    sedd_model_t *m = sedd_load(dir, NULL, &e);
    CHECK(m != NULL, "SEDD %s loads", dir);
    if (!m) return;
    const struct config_sedd *c = sedd_config(m);
    sedd_graph g;
    sedd_noise nz;
    sedd_graph_init(&g, c->graph, c->tokens);
    sedd_noise_init(&nz, c);
    uint32_t ids[24];
    int64_t x0[24];
    for (int i = 0; i < 24; i++) x0[i] = ids[i] = (uint32_t)((i * 37 + 5) % 997);
    float *ws = malloc(24 * (size_t)g.dim * sizeof *ws);
    struct spy sp = {.m = m, .x0 = x0, .n_ctx = 16, .mask = sedd_graph_mask(&g)};
    double ll, se, ll2, se2;
    bool greedy = true;
    const backend *cpu = &backend_cpu;
    int rc = lmscore_sedd(cpu, &g, &nz, spy_score, &sp, ids, 16, ids + 16, 8, 8, 3, 7, 0, 1e-5,
                          ws, &ll, &se, absorb ? &greedy : NULL, &e);
    CHECK(rc == 0 && isfinite(ll) && ll <= 0 && isfinite(se) && se >= 0,
          "%s: bound runs (ll %.4f +- %.4f) %s", dir, ll, se, rc ? e.msg : "");
    CHECK(sp.calls == 8 + (absorb ? 1 : 0), "one model call per time sample (+1 greedy): %d", sp.calls);
    CHECK(sp.dirty_ctx == 0, "the context is never perturbed");
    CHECK(sp.moved > 0, "continuation positions are perturbed (%d moves)", sp.moved);
    if (absorb) CHECK(sp.greedy_masked == 1, "greedy call: continuation fully masked at small sigma");
    lmscore_sedd(cpu, &g, &nz, sedd_score, m, ids, 16, ids + 16, 8, 8, 3, 7, 0, 1e-5, ws, &ll2,
                 &se2, NULL, &e);
    CHECK(ll2 == ll && se2 == se, "same seed, same bound");
    lmscore_sedd(cpu, &g, &nz, sedd_score, m, ids, 16, ids + 16, 8, 8, 4, 7, 0, 1e-5, ws, &ll2,
                 &se2, NULL, &e);
    CHECK(ll2 != ll, "another seed, another estimate");
    /* no context: the conditional bound is the unconditional one of sedd_sampler_bound (same
     * Philox keys: req = block, positions from 0) */
    double mean, sd;
    rc = sedd_sampler_bound(cpu, &g, &nz, sedd_score, m, x0, 24, 8, SEDD_T_STRATIFIED, 3, 7, 0, 0,
                            1, ws, &mean, &sd, &e);
    lmscore_sedd(cpu, &g, &nz, sedd_score, m, ids, 0, ids, 24, 8, 3, 7, 0, 1e-5, ws, &ll2, &se2,
                 NULL, &e);
    CHECK(rc == 0 && fabs(ll2 + mean) <= 1e-9 * fabs(mean) && fabs(se2 - sd) <= 1e-9 * sd,
          "empty context: -ll %.10f equals sedd_sampler_bound %.10f", -ll2, mean);
    if (!absorb)
        CHECK(lmscore_sedd(cpu, &g, &nz, sedd_score, m, ids, 16, ids + 16, 8, 2, 3, 7, 0, 1e-5, ws,
                           &ll2, &se2, &greedy, &e) < 0, "uniform graph: greedy is an error");
    uint32_t bad = (uint32_t)g.n;
    CHECK(lmscore_sedd(cpu, &g, &nz, sedd_score, m, ids, 16, &bad, 1, 2, 3, 7, 0, 1e-5, ws, &ll2,
                       &se2, NULL, &e) < 0 && strstr(e.msg, "vocabulary"), "id N rejected");
    free(ws);
    sedd_free(m);
}

int main(void)
{
    err_t e;
    gpt2_t *m = gpt2_load(FIX, NULL, &backend_cpu, &e);
    st_file_t *cases = st_open(FIX "/cases.safetensors", &e);
    CHECK(m && cases, "fixture model and cases load");
    if (m && cases) {
        gpt2_state *s = gpt2_state_new(m, 1, 64, 64, &e);
        CHECK(s != NULL, "state");
        if (s) {
            test_features(m, s, cases);
            test_loglik(m, s, cases);
        }
        gpt2_state_free(s);
    }
    test_encode();
    sedd_set_threads(1);
    test_sedd("tests/fixtures/sedd/tiny_absorb_loglinear", true);
    test_sedd("tests/fixtures/sedd/tiny_uniform_geometric", false);
    st_close(cases);
    gpt2_free(m);
    return tap_done();
}
