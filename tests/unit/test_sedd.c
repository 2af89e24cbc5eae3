/* sedd: the transformer loads the fixture checkpoints (and a BF16 copy without
 * rotary_emb.inv_freq), gives the same bits for a sequence alone or in a batch (all rows, and
 * the masked rows of sedd_score_masked), runs past the training length, and its likelihood bound agrees with the fixture's fixed-grid estimate
 * (likelihood.safetensors, computed by the original code) within the error bars.
 * The forward pass itself is checked against the original by fixture-check (forward_*). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/ckpt.h"
#include "../../lib/safetensors.h"
#include "../../lib/sedd.h"
#include "../../lib/sedd_sampler.h"
#include "tap.h"

#define ABSORB "tests/fixtures/sedd/tiny_absorb_loglinear"

static char tmp[] = "/tmp/test_sedd.XXXXXX";

/* tmp/bf16: config.json and the absorb model in BF16 (rounded to nearest even), without
 * rotary_emb.inv_freq. */
static int write_bf16(char *dir, size_t cap)
{
    snprintf(dir, cap, "%s/bf16", tmp);
    mkdir(dir, 0777);
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *in = fopen(ABSORB "/config.json", "rb"), *out = fopen(path, "wb");
    char buf[8192];
    size_t n;
    while (in && out && (n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    if (in) fclose(in);
    if (out) fclose(out);
    err_t e;
    st_file_t *f = st_open(ABSORB "/model.safetensors", &e);
    if (!f) return -1;
    size_t cnt = st_count(f), k = 0;
    st_tensor *ts = calloc(cnt, sizeof *ts);
    void **data = calloc(cnt, sizeof *data);
    for (size_t i = 0; i < cnt; i++) {
        const st_tensor *t = st_get(f, i);
        if (strcmp(t->name, "rotary_emb.inv_freq") == 0) continue;
        float *v = malloc(t->numel * sizeof *v);
        uint16_t *h = malloc(t->numel * sizeof *h + 2);
        st_tensor_to_f32(t, v, &e);
        for (size_t j = 0; j < t->numel; j++) {
            uint32_t u;
            memcpy(&u, &v[j], 4);
            u += 0x7fff + ((u >> 16) & 1);
            h[j] = (uint16_t)(u >> 16);
        }
        free(v);
        ts[k] = *t;
        ts[k].dtype = ST_BF16;
        ts[k].data = h;
        data[k++] = h;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int rc = st_write(path, ts, k, NULL, 0, &e);
    for (size_t i = 0; i < k; i++) free(data[i]);
    free(ts), free(data);
    st_close(f);
    return rc;
}

static void test_bf16(const sedd_model_t *ref32)
{
    char dir[512], path[600];
    CHECK(write_bf16(dir, sizeof dir) == 0, "BF16 copy written");
    err_t e;
    sedd_model_t *m = sedd_load(dir, NULL, &e);
    CHECK(m != NULL, "BF16 checkpoint without rotary_emb.inv_freq loads%s%s", m ? "" : ": ",
          m ? "" : e.msg);
    if (m) {
        enum { L = 8 };
        const size_t V = (size_t)sedd_config(m)->vocab;
        int64_t x[L] = {1, 5, 1000, 7, 1000, 1000, 3, 2};
        float sigma = 0.3f, *a = malloc(L * V * sizeof *a), *b = malloc(L * V * sizeof *b);
        sedd_forward(m, x, &sigma, 1, L, a, NULL, NULL, &e);
        sedd_forward((sedd_model_t *)ref32, x, &sigma, 1, L, b, NULL, NULL, &e);
        double worst = 0;
        for (size_t i = 0; i < L * V; i++) worst = fmax(worst, fabs(a[i] - b[i]));
        CHECK(worst < 0.5 && worst > 0, "BF16 log-scores near the F32 ones (max abs %.3g)", worst);
        free(a), free(b);
    }
    sedd_free(m);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
}

static void test_batch(sedd_model_t *m)
{
    enum { B = 3, L = 40 }; /* longer than the training length 32: no learned positions */
    const size_t V = (size_t)sedd_config(m)->vocab;
    int64_t x[B * L];
    float sigma[B] = {0.01f, 1.0f, 5.0f};
    for (int i = 0; i < B * L; i++) x[i] = (i * 37) % 1001;
    float *all = malloc(B * L * V * sizeof *all), *one = malloc(L * V * sizeof *one);
    err_t e;
    CHECK(sedd_forward(m, x, sigma, B, L, all, NULL, NULL, &e) == 0, "forward of 3 x 40 tokens");
    int same = 1;
    for (int b = 0; b < B; b++) {
        sedd_forward(m, x + b * L, sigma + b, 1, L, one, NULL, NULL, &e);
        same &= memcmp(one, all + (size_t)b * L * V, L * V * sizeof *one) == 0;
    }
    CHECK(same, "each sequence gives the same bits alone and in the batch");
    int zero = 1;
    for (int i = 0; i < B * L; i++) zero &= all[(size_t)i * V + (size_t)x[i]] == 0;
    CHECK(zero, "log-score 0 at the current token");
    x[5] = 1001;
    CHECK(sedd_forward(m, x, sigma, 1, L, one, NULL, NULL, &e) < 0 && strstr(e.msg, "1001"),
          "a token outside the vocabulary is an error naming it");
    free(all), free(one);
}

/* sedd_score_masked: the masked rows (mask id 1000) only, near sedd_score's, the same bits for
 * a sequence alone or in a batch (the other rows are scratch). */
static void test_masked(sedd_model_t *m)
{
    enum { B = 3, L = 40 };
    const size_t V = (size_t)sedd_config(m)->vocab;
    int64_t x[B * L];
    float sigma[B] = {0.02f, 0.9f, 4.0f};
    for (int i = 0; i < B * L; i++) x[i] = i % 3 == 0 || i % 7 == 0 ? 1000 : (i * 53) % 1000;
    float *full = malloc(B * L * V * sizeof *full), *part = malloc(B * L * V * sizeof *part);
    float *one = malloc(L * V * sizeof *one);
    err_t e;
    CHECK(sedd_score(m, x, sigma, B, L, full, &e) == 0 &&
              sedd_score_masked(m, x, sigma, B, L, part, &e) == 0,
          "full and masked-row scores of 3 x 40 tokens");
    double worst = 0;
    int same = 1;
    for (int i = 0; i < B * L; i++)
        for (size_t y = 0; y < V; y++) {
            float a = full[(size_t)i * V + y], b = part[(size_t)i * V + y];
            if (x[i] == 1000) worst = fmax(worst, fabs((double)a - b) / (1 + fabs((double)a)));
        }
    CHECK(worst < 1e-5, "masked rows as sedd_score's (max |diff|/(1+|ref|) %.2e)", worst);
    for (int b = 0; b < B; b++) {
        sedd_score_masked(m, x + b * L, sigma + b, 1, L, one, &e);
        for (int l = 0; l < L; l++)
            if (x[b * L + l] == 1000)
                same &= memcmp(one + (size_t)l * V, part + ((size_t)b * L + l) * V,
                               V * sizeof *one) == 0;
    }
    CHECK(same, "each sequence's masked rows have the same bits alone and in the batch");
    free(full), free(part), free(one);
}

/* The bound with many stratified times agrees with the original's 8-point grid estimate. */
static void test_bound(sedd_model_t *m)
{
    err_t e;
    st_file_t *f = st_open(ABSORB "/likelihood.safetensors", &e);
    CHECK(f != NULL, "open likelihood fixture");
    if (!f) return;
    const st_tensor *tx = st_find(f, "in.x0"), *tl = st_find(f, "out.loss");
    int64_t x0[64];
    float loss[16];
    st_tensor_to_i64(tx, x0, &e);
    st_tensor_to_f32(tl, loss, &e);
    const struct config_sedd *cfg = sedd_config(m);
    sedd_graph g;
    sedd_graph_init(&g, cfg->graph, cfg->tokens);
    sedd_noise nz;
    sedd_noise_init(&nz, cfg);
    float *ws = malloc(32 * (size_t)cfg->vocab * sizeof *ws);
    for (int b = 0; b < 2; b++) {
        double fm = 0, fs = 0; /* the fixture's mean and standard error over its 8 times */
        for (int k = 0; k < 8; k++) fm += loss[k * 2 + b] / 8.0;
        for (int k = 0; k < 8; k++) fs += (loss[k * 2 + b] - fm) * (loss[k * 2 + b] - fm);
        fs = sqrt(fs / 7 / 8);
        double se_first = 0, mean = 0, se = 0;
        for (int K = 8; K <= 128; K *= 4) {
            sedd_sampler_bound(&backend_cpu, &g, &nz, sedd_score, m, x0 + 32 * b, 32, K,
                               SEDD_T_STRATIFIED, 1, (uint64_t)b, 0, 0, 1, ws, &mean, &se, &e);
            NOTE("record %d K %d: %.3f +- %.3f (fixture %.3f +- %.3f)", b, K, mean, se, fm, fs);
            if (K == 8) se_first = se;
        }
        CHECK(se < se_first, "record %d: the standard error shrinks from K 8 to 128 (%.1f, %.1f)",
              b, se_first, se);
        /* the 128 noised copies 5 at a time (chunks of 5 and a last one of 3): the same bits */
        double mean5 = 0, se5 = 0;
        float *ws5 = malloc(5 * 32 * (size_t)cfg->vocab * sizeof *ws5);
        CHECK(ws5 && sedd_sampler_bound(&backend_cpu, &g, &nz, sedd_score, m, x0 + 32 * b, 32,
                                        128, SEDD_T_STRATIFIED, 1, (uint64_t)b, 0, 0, 5, ws5,
                                        &mean5, &se5, &e) == 0 && mean5 == mean && se5 == se,
              "record %d: the bound has the same bits with 5 loss times per forward call", b);
        free(ws5);
        CHECK(fabs(mean - fm) < 3 * sqrt(se * se + fs * fs),
              "record %d: bound %.2f agrees with the fixture's %.2f within the error bars", b,
              mean, fm);
    }
    free(ws);
    st_close(f);
}

int main(void)
{
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    err_t e;
    sedd_model_t *m = sedd_load(ABSORB, NULL, &e);
    CHECK(m != NULL, "absorb fixture loads%s%s", m ? "" : ": ", m ? "" : e.msg);
    if (m) {
        CHECK(sedd_config(m)->vocab == 1001 && sedd_config(m)->scale_by_sigma, "absorb config");
        test_batch(m);
        test_masked(m);
        test_bf16(m);
        test_bound(m);
    }
    sedd_free(m);
    CHECK(sedd_load("tests/fixtures/sedd", NULL, &e) == NULL, "a directory without a model fails");
    rmdir(tmp);
    return tap_done();
}
