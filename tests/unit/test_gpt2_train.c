/* test_gpt2_train: the GPT-2 train_model — (a) the training forward's mean next-token loss on the
 * fixture model equals the reference NLL of tests/fixtures/gpt2 (README tolerance 1e-4); (b) the
 * gradient of every parameter tensor, at a few random elements, against central finite
 * differences of the loss on a tiny random model; (c) a checkpoint written by train_export loads
 * with gpt2_load and gives the training forward's logits; (d) fp16/bf16 export round trip. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "gpt2.h"
#include "gpt2_train.h"
#include "philox.h"
#include "safetensors.h"
#include "tap.h"
#include "train.h"

#define FIX "tests/fixtures/gpt2"

static const backend *be; /* set in main */

/* (a) loss of the fixture's `full` case vs the mean of its reference -log p(next token). */
static void test_fixture_loss(void)
{
    err_t e = {{0}};
    train_model *m = gpt2_train_load(FIX, be, &e);
    st_file_t *cases = st_open(FIX "/cases.safetensors", &e);
    CHECK(m && cases, "fixture model and cases load (%s)", e.msg);
    if (!m || !cases) return;
    const st_tensor *ids = st_find(cases, "full.input_ids");
    const st_tensor *lp = st_find(cases, "full.logprobs_next");
    int B = (int)ids->shape[0], T = (int)ids->shape[1];
    CHECK(T == m->block_len, "blocks fill the context (%d)", T);
    int64_t *ids64 = malloc(ids->numel * sizeof *ids64);
    int32_t *blocks = malloc(ids->numel * sizeof *blocks);
    float *ref = malloc(lp->numel * sizeof *ref);
    st_tensor_to_i64(ids, ids64, &e);
    st_tensor_to_f32(lp, ref, &e);
    for (size_t i = 0; i < ids->numel; i++) blocks[i] = (int32_t)ids64[i];
    double want = 0;
    for (size_t i = 0; i < lp->numel; i++) want -= ref[i];
    want /= (double)lp->numel;
    double loss = 0, loss_bw = 0;
    int rc = m->loss(m, blocks, B, 0, 0, false, &loss, &e);
    CHECK(rc == 0 && fabs(loss - want) <= 1e-4, "loss %.7f vs reference mean NLL %.7f (%s)", loss,
          want, e.msg);
    memset(m->grads, 0, m->n_params * sizeof *m->grads);
    rc = m->loss(m, blocks, B, 0, 0, true, &loss_bw, &e);
    CHECK(rc == 0 && loss_bw == loss, "the backward pass reports the same loss (%.9g)", loss_bw);
    /* each row alone: the per-sequence means of the reference */
    bool rows_ok = true;
    for (int b = 0; b < B && rows_ok; b++) {
        double w = 0, l = 0;
        for (int t = 0; t < T - 1; t++) w -= ref[(size_t)b * (T - 1) + t];
        w /= T - 1;
        rows_ok = m->loss(m, blocks + (size_t)b * T, 1, 0, 0, false, &l, &e) == 0 &&
                  fabs(l - w) <= 1e-4;
    }
    CHECK(rows_ok, "single-block losses match the per-sequence reference means");
    blocks[5] = m->vocab;
    CHECK(m->loss(m, blocks, B, 0, 0, false, &loss, &e) < 0 && strstr(e.msg, "vocabulary"),
          "an id outside the vocabulary is refused (%s)", e.msg);
    free(ids64);
    free(blocks);
    free(ref);
    st_close(cases);
    m->free(m);
}

static struct config_gpt2 tiny_config(void)
{
    return (struct config_gpt2){.vocab_size = 53, .n_positions = 6, .n_embd = 8, .n_head = 2,
                                .n_layer = 2, .n_inner = 32, .layer_norm_epsilon = 1e-5,
                                .act = CONFIG_ACT_GELU_TANH,
                                .activation_function = "gelu_new", .bos_token_id = 52,
                                .eos_token_id = 52};
}

static uint32_t draw(uint64_t key, uint32_t i)
{
    uint32_t w[4];
    philox_draw(12345, key, 0, i, 0, w);
    return w[0];
}

/* (b) analytic gradient vs central differences. GPT-2's init (std 0.02) makes the network
 * nearly linear, so the weights are redrawn with larger scales (matrices std 0.3, biases 0.1,
 * LayerNorm weights 1 ± 0.2) to exercise every non-linearity. The loss is an fp32 forward pass
 * accumulated in double: with step h = 1e-2 its rounding noise (~1e-6 absolute at loss ~4,
 * a few ulps of float through ~30 ops) costs ~1e-6 / (2h) = 5e-5 in a difference quotient and
 * the O(h²) truncation a similar amount, so the check is |fd - g| <= 2e-2 · |fd| + 3e-4 — an
 * error in any backward op (a missing term, a wrong transpose) is off by O(|g|). */
static void test_gradients(void)
{
    err_t e = {{0}};
    struct config_gpt2 cfg = tiny_config();
    train_model *m = gpt2_train_new(&cfg, be, 7, &e);
    CHECK(m != NULL, "tiny model (%s)", e.msg);
    if (!m) return;
    for (int i = 0; i < m->n_tensors; i++) {
        const struct train_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        bool ln_w = strstr(t->name, ".ln_") && strstr(t->name, ".weight");
        double scale = t->ndim == 2 ? 0.3 : ln_w ? 0.2 : 0.1;
        for (size_t j = 0; j < t->numel; j++) {
            double u = (draw(100 + (uint64_t)i, (uint32_t)j) + 0.5) / 4294967296.0;
            p[j] = (float)((ln_w ? 1 : 0) + scale * 1.7320508 * (2 * u - 1)); /* std = scale */
        }
    }
    int B = 2, T = m->block_len;
    int32_t blocks[12];
    for (int i = 0; i < B * T; i++) blocks[i] = (int32_t)(draw(1, (uint32_t)i) % (uint32_t)m->vocab);
    memset(m->grads, 0, m->n_params * sizeof *m->grads);
    double loss;
    CHECK(m->loss(m, blocks, B, 0, 0, true, &loss, &e) == 0, "loss and backward (%.6f)", loss);
    const double h = 1e-2;
    int bad = 0, checked = 0;
    double worst = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const struct train_tensor *t = &m->tensors[i];
        for (int k = 0; k < 4; k++) {
            size_t j = draw(200 + (uint64_t)i, (uint32_t)k) % t->numel;
            if (i == 0 && k < 2) /* wte: also rows that occur in the input */
                j = (size_t)blocks[k] * t->shape[1] + draw(300, (uint32_t)k) % t->shape[1];
            float *p = m->params + t->offset + j, saved = *p;
            double lp, lm;
            *p = saved + (float)h;
            m->loss(m, blocks, B, 0, 0, false, &lp, &e);
            *p = saved - (float)h;
            m->loss(m, blocks, B, 0, 0, false, &lm, &e);
            *p = saved;
            double fd = (lp - lm) / (2 * h), g = m->grads[t->offset + j];
            double err = fabs(fd - g), tol = 2e-2 * fabs(fd) + 3e-4;
            if (err / tol > worst) worst = err / tol;
            checked++;
            if (err > tol) {
                bad++;
                NOTE("%s[%zu]: analytic %.6g, finite difference %.6g", t->name, j, g, fd);
            }
        }
    }
    CHECK(bad == 0, "%d of %d gradient elements (4 per tensor, %d tensors) agree with central "
          "differences (worst error/tolerance %.2f)", checked - bad, checked, m->n_tensors, worst);
    m->free(m);
}

/* (c) train_export -> gpt2_load: the inference path's logits equal the training forward's. */
static void test_export_roundtrip(void)
{
    err_t e = {{0}};
    struct config_gpt2 cfg = tiny_config();
    cfg.n_positions = 16;
    train_model *m = gpt2_train_new(&cfg, be, 3, &e);
    char dir[] = "/tmp/test_gpt2_train.XXXXXX";
    CHECK(m && mkdtemp(dir), "model and temporary directory (%s)", e.msg);
    if (!m) return;
    int B = 2, T = m->block_len, V = m->vocab;
    int32_t blocks[32];
    for (int i = 0; i < B * T; i++) blocks[i] = (int32_t)(draw(2, (uint32_t)i) % (uint32_t)V);
    float *want = malloc((size_t)B * T * V * sizeof *want);
    float *got = malloc((size_t)B * T * V * sizeof *got);
    CHECK(gpt2_train_logits(m, blocks, B, want, &e) == 0, "training forward logits");
    CHECK(train_export(m, m->params, dir, "f32", NULL, 0, &e) == 0, "export f32 (%s)", e.msg);
    gpt2_t *g = gpt2_load(dir, NULL, be, &e);
    CHECK(g != NULL, "gpt2_load reads the exported checkpoint (%s)", e.msg);
    if (g) {
        gpt2_state *s = gpt2_state_new(g, B, T, B * T, &e);
        struct gpt2_out out = {.logits = got};
        int rc = s ? gpt2_forward(g, s, 0, B, T, blocks, 0, NULL, &out, &e) : ERR_FAIL;
        double d = 0;
        for (size_t i = 0; i < (size_t)B * T * V; i++) d = fmax(d, fabs(got[i] - want[i]));
        CHECK(rc == 0 && d <= 1e-5, "gpt2_forward logits equal the training forward's (max "
              "|diff| %.3g)", d);
        gpt2_state_free(s);
        gpt2_free(g);
    }
    /* reduced precision: the loaded values are the f32 weights rounded to nearest */
    const char *dtypes[2] = {"bf16", "f16"};
    for (int k = 0; k < 2; k++) {
        train_model *r = NULL;
        int rc = train_export(m, m->params, dir, dtypes[k], NULL, 0, &e);
        if (rc == 0) r = gpt2_train_load(dir, be, &e);
        /* half an ulp: 2^-8 (bf16), 2^-11 (f16) relative; f16 subnormals: 2^-25 absolute */
        double half_ulp = k == 0 ? 1.0 / 256 : 1.0 / 2048, floor = k == 0 ? 0 : ldexp(1, -25);
        double worst = 0;
        for (size_t i = 0; r && i < m->n_params; i++) {
            double x = m->params[i], tol = fmax(half_ulp * fabs(x), floor);
            if (tol > 0) worst = fmax(worst, fabs(r->params[i] - x) / tol);
            else if (r->params[i] != x) worst = INFINITY;
        }
        CHECK(r && worst <= 1.0, "export %s reloads within half an ulp (worst %.3g of it; %s)",
              dtypes[k], worst, e.msg);
        if (r) r->free(r);
    }
    char path[128];
    const char *files[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    free(want);
    free(got);
    m->free(m);
}

int main(void)
{
    be = &backend_cpu;
    test_fixture_loss();
    test_gradients();
    test_export_roundtrip();
    return tap_done();
}
