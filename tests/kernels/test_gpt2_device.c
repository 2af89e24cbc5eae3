/* test_gpt2_device: the fixture GPT-2 (tests/fixtures/gpt2: C = 64, 4 heads, 2 layers, V = 1000,
 * 64 positions) run by lib/gpt2.c on the CPU backend (the reference) and on the backend under
 * test (op_check.h), through the public API only: full-forward logits, hidden states, ln_f
 * output and the pre-ln_f stream (with and without a padding mask, one batch over gpt2_nll's
 * 512-row logits chunk), logits of the last positions after a past, KV-cache decoding with
 * gpt2_step at a different position per row (and the cache it leaves), gpt2_nll, and the
 * backend's copy op. With --cpu-self the backend under test is a copy of the CPU table at another
 * address, which lib/gpt2.c treats as a device: the staging path (weights uploaded, ids, masks
 * and targets copied in, outputs fetched with to_host, logits in chunks) runs on this machine.
 * Tolerances are the fixture set's own against PyTorch (README: logits and log-probabilities
 * 1e-4, hidden states 5e-5): the backend under test must be as close to the CPU as the CPU is
 * to the reference. No CUDA device: exit 77. */
#include "op_check.h"

#include "../../lib/gpt2.h"

#define FIX "tests/fixtures/gpt2"

/* fixture tolerances (tests/fixtures/gpt2/README.md) */
static const double TOL_LOGITS = 1e-4, TOL_HIDDEN = 5e-5;

static gpt2_t *mc, *mg; /* the model on the CPU and on the backend under test */
static int C, V, L, P;

static int32_t *rand_ids(size_t n)
{
    int32_t *ids = malloc(n * sizeof *ids);
    if (!ids) abort();
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)((urand() + 1.0f) * 0.5f * (float)(V - 1));
    return ids;
}

static gpt2_state *state(gpt2_t *m, int rows, int cap, int tokens)
{
    err_t e;
    gpt2_state *s = gpt2_state_new(m, rows, cap, tokens, &e);
    if (!s) {
        fprintf(stderr, "test_gpt2_device: %s\n", e.msg);
        exit(1);
    }
    return s;
}

/* Every output of one full forward of a (B,T) batch from position 0; rows b >= 1 padded after
 * T - 3b tokens when masked. */
static void t_forward(int B, int T, bool masked)
{
    size_t N = (size_t)B * T, plane = N * C;
    int32_t *ids = rand_ids(N);
    uint8_t *mask = malloc(N);
    if (!mask) abort();
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) mask[(size_t)b * T + t] = t < T - 3 * b;
    float *out[2][4];
    for (int k = 0; k < 2; k++) {
        gpt2_t *m = k ? mg : mc;
        gpt2_state *s = state(m, B, T, (int)N);
        out[k][0] = malloc(N * V * sizeof(float));
        out[k][1] = malloc((size_t)(L + 1) * plane * sizeof(float));
        out[k][2] = malloc(plane * sizeof(float));
        out[k][3] = malloc(plane * sizeof(float));
        struct gpt2_out o = {.logits = out[k][0], .hidden_states = out[k][1],
                             .last_hidden = out[k][2], .pre_ln_f = out[k][3]};
        err_t e;
        CHECK(gpt2_forward(m, s, 0, B, T, ids, 0, masked ? mask : NULL, &o, &e) == 0,
              "gpt2_forward B=%d T=%d on %s", B, T, k ? gpu->name : "cpu");
        gpt2_state_free(s);
    }
    char what[96];
    snprintf(what, sizeof what, "forward logits B=%d T=%d%s", B, T, masked ? " masked" : "");
    compare(what, out[1][0], out[0][0], N * V, 0, TOL_LOGITS, 0);
    snprintf(what, sizeof what, "forward hidden_states B=%d T=%d%s", B, T, masked ? " masked" : "");
    compare(what, out[1][1], out[0][1], (size_t)(L + 1) * plane, 0, TOL_HIDDEN, 0);
    snprintf(what, sizeof what, "forward last_hidden B=%d T=%d%s", B, T, masked ? " masked" : "");
    compare(what, out[1][2], out[0][2], plane, 0, TOL_HIDDEN, 0);
    snprintf(what, sizeof what, "forward pre_ln_f B=%d T=%d%s", B, T, masked ? " masked" : "");
    compare(what, out[1][3], out[0][3], plane, 0, TOL_HIDDEN, 0);
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 4; j++) free(out[k][j]);
    free(ids), free(mask);
}

/* Rows row0..row0+B-1 of a larger cache: a prompt of T0 tokens, then T1 more after it with the
 * logits of each row's last position only. */
static void t_continue(int rows, int row0, int B, int T0, int T1)
{
    int32_t *ids = rand_ids((size_t)B * (T0 + T1)), *more = ids + (size_t)B * T0;
    float *logits[2];
    for (int k = 0; k < 2; k++) {
        gpt2_t *m = k ? mg : mc;
        gpt2_state *s = state(m, rows, T0 + T1, B * T0);
        logits[k] = malloc((size_t)B * V * sizeof(float));
        struct gpt2_out none = {0}, o = {.logits = logits[k], .logits_last = 1};
        err_t e;
        CHECK(gpt2_forward(m, s, row0, B, T0, ids, 0, NULL, &none, &e) == 0 &&
                  gpt2_forward(m, s, row0, B, T1, more, T0, NULL, &o, &e) == 0,
              "prompt and continuation on %s", k ? gpu->name : "cpu");
        gpt2_state_free(s);
    }
    char what[96];
    snprintf(what, sizeof what, "last-position logits rows %d..%d after %d of %d", row0,
             row0 + B - 1, T1, T0 + T1);
    compare(what, logits[1], logits[0], (size_t)B * V, 0, TOL_LOGITS, 0);
    free(logits[0]), free(logits[1]), free(ids);
}

/* KV-cache decoding: row b gets a prompt of 5 + stagger·b tokens (one gpt2_forward per row),
 * then `steps` gpt2_step calls, each row at its own position (stagger 0: all rows at one
 * position, which gpt2_step runs as one call per op); every step's logits and, at the end,
 * every layer's K and V cache are compared. */
static void t_decode(int B, int steps, int stagger)
{
    int cap = 5 + stagger * (B - 1) + steps;
    int32_t *prompt = rand_ids((size_t)B * cap), *tok = rand_ids((size_t)steps * B);
    size_t n_logits = (size_t)(steps + 1) * B * V, cache = (size_t)B * cap * C;
    float *logits[2], *caches[2];
    for (int k = 0; k < 2; k++) {
        gpt2_t *m = k ? mg : mc;
        const backend *be = k ? gpu : cpu;
        gpt2_state *s = state(m, B, cap, cap);
        logits[k] = malloc(n_logits * sizeof(float));
        caches[k] = malloc((size_t)L * 2 * cache * sizeof(float));
        int pos[64];
        bool ok = true;
        err_t e;
        for (int b = 0; b < B; b++) {
            pos[b] = 5 + stagger * b;
            struct gpt2_out o = {.logits = logits[k] + (size_t)b * V, .logits_last = 1};
            ok = ok && gpt2_forward(m, s, b, 1, pos[b], prompt + (size_t)b * cap, 0, NULL, &o,
                                    &e) == 0;
        }
        for (int j = 0; j < steps; j++) {
            ok = ok && gpt2_step(m, s, B, tok + (size_t)j * B, pos,
                                 logits[k] + (size_t)(j + 1) * B * V, &e) == 0;
            for (int b = 0; b < B; b++) pos[b]++;
        }
        for (int l = 0; l < L && ok; l++)
            for (int kv = 0; kv < 2 && ok; kv++)
                ok = be->to_host(caches[k] + ((size_t)l * 2 + kv) * cache,
                                 gpt2_state_cache(s, l, kv), cache * sizeof(float), &e) == 0;
        CHECK(ok, "prompts, %d decoding steps and the cache read back on %s", steps,
              k ? gpu->name : "cpu");
        gpt2_state_free(s);
    }
    char what[96];
    snprintf(what, sizeof what, "gpt2_step logits B=%d, %d steps, prompts 5 + %d*b", B, steps,
             stagger);
    compare(what, logits[1], logits[0], n_logits, 0, TOL_LOGITS, 0);
    /* positions past a row's last are never written: both sides hold whatever alloc gave, so
     * only the written ones are compared */
    int H = (int)gpt2_config(mc)->n_head, d = C / H;
    size_t bad = 0;
    double maxd = 0;
    for (int l = 0; l < L; l++)
        for (int kv = 0; kv < 2; kv++)
            for (int b = 0; b < B; b++)
                for (int h = 0; h < H; h++)
                    for (int p = 0; p < 5 + stagger * b + steps; p++)
                        for (int i = 0; i < d; i++) {
                            size_t at = ((size_t)l * 2 + kv) * cache +
                                        (((size_t)b * H + h) * cap + p) * d + i;
                            double diff = fabs((double)caches[1][at] - caches[0][at]);
                            if (!(diff <= TOL_HIDDEN)) bad++;
                            if (diff > maxd || diff != diff) maxd = diff;
                        }
    CHECK(bad == 0, "KV cache after decoding: max diff %.3g (atol %.1g), %zu mismatched", maxd,
          TOL_HIDDEN, bad);
    free(logits[0]), free(logits[1]), free(caches[0]), free(caches[1]), free(prompt), free(tok);
}

/* gpt2_nll of a (B,T) batch */
static void t_nll(int B, int T)
{
    int32_t *ids = rand_ids((size_t)B * T);
    double *nll[2];
    for (int k = 0; k < 2; k++) {
        gpt2_t *m = k ? mg : mc;
        gpt2_state *s = state(m, B, T, B * T);
        nll[k] = malloc((size_t)B * T * sizeof(double));
        err_t e;
        CHECK(gpt2_nll(m, s, B, T, ids, nll[k], &e) == 0, "gpt2_nll B=%d T=%d on %s", B, T,
              k ? gpu->name : "cpu");
        gpt2_state_free(s);
    }
    char what[64];
    snprintf(what, sizeof what, "gpt2_nll B=%d T=%d", B, T);
    compare(what, nll[1], nll[0], (size_t)B * T, 1, TOL_LOGITS, 0);
    free(nll[0]), free(nll[1]), free(ids);
}

/* the backend's device-to-device copy, at an offset that is not a multiple of 4 bytes */
static void t_copy(size_t n)
{
    float *x = rnd(n, 1);
    float *dx = up(x, n * sizeof *x), *dy = gpu->alloc(n * sizeof *x);
    gpu->copy(dy, dx, n * sizeof *x);
    gpu->copy((char *)dy + 1, (char *)dx + 5, n * sizeof *x - 8);
    float *got = down(dy, n * sizeof *x);
    unsigned char *want = copy_of(x, n * sizeof *x);
    memcpy(want + 1, (unsigned char *)x + 5, n * sizeof *x - 8);
    CHECK(memcmp(got, want, n * sizeof *x) == 0, "copy of %zu bytes, and of unaligned bytes",
          n * sizeof *x);
    gpu->free(dx);
    free(x), free(got), free(want);
}

int main(int argc, char **argv)
{
    int status = op_check_start(argc, argv);
    if (status >= 0) return status;
    err_t e;
    mc = gpt2_load(FIX, NULL, cpu, &e);
    CHECK(mc != NULL, "the fixture model loads on the CPU (%s)", mc ? "ok" : e.msg);
    mg = mc ? gpt2_load(FIX, NULL, gpu, &e) : NULL;
    CHECK(mg != NULL, "the fixture model loads on %s (%s)", gpu->name, mg ? "ok" : e.msg);
    if (!mg) return tap_done();
    const struct config_gpt2 *g = gpt2_config(mc);
    C = (int)g->n_embd, V = (int)g->vocab_size, L = (int)g->n_layer, P = (int)g->n_positions;

    t_copy(1000);
    t_forward(2, 17, true);
    t_forward(10, 60, false); /* 600 rows: more than one 512-row logits chunk */
    t_forward(1, P, false);   /* the whole context */
    t_continue(4, 1, 2, 20, 7);
    t_decode(3, 9, 4);
    t_decode(4, 6, 0);
    t_nll(3, 41);
    t_nll(9, 64);             /* 576 rows: two chunks */

    /* errors come back as errors, before anything runs on the device */
    gpt2_state *s = state(mg, 1, 8, 8);
    int32_t bad[2] = {1, V};
    CHECK(gpt2_nll(mg, s, 1, 2, bad, (double[2]){0}, &e) < 0, "an id outside the vocabulary: %s",
          e.msg);
    gpt2_state_free(s);
    gpt2_free(mg);
    gpt2_free(mc);
    NOTE("max diff over all cases: %.3g", worst_diff);
    return tap_done();
}
