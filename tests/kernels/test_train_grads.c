/* test_train_grads: the whole training step on the backend under test against the CPU backend —
 * the loss and every parameter tensor's gradient of one batch, for the GPT-2 train model
 * (lib/gpt2_train.c: the fixture model tests/fixtures/gpt2, and a small random model whose
 * sizes are not multiples of anything) and the SEDD train model (lib/sedd_train.c: the fixtures
 * tiny_absorb_loglinear and tiny_uniform_geometric), then a few optimiser steps of train_run
 * compared through the checkpoints both write. The two sides start from the same weights (the
 * same files, or the same Philox initialisation) and draw the same SEDD noise (on the host).
 * Tolerances, per tensor: |got - ref| <= GRAD_FRAC · max|ref| over the tensor + GRAD_RTOL·|ref|:
 * both sides are fp32 end to end but sum in other orders in every op (each op agrees to ~1e-6
 * relative, see test_train_ops); through two layers, the softmax and the loss this stays near
 * 1e-5 of a tensor's scale, and 1e-3 leaves a margin while a wrong kernel (an index, a lost
 * add) is off by O(1) of that scale. Harness and exit codes: op_check.h (77 = no CUDA device;
 * --cpu-self runs it against a copy of itself). Run from the repository root. */
#include <unistd.h>

#include "op_check.h"
#include "../../lib/gpt2_train.h"
#include "../../lib/safetensors.h"
#include "../../lib/sedd_train.h"
#include "../../lib/train.h"

#define GRAD_FRAC 1e-3
#define GRAD_RTOL 1e-3
/* the mean loss: sums of fp32 terms in other orders, ~1e-6 relative */
#define LOSS_RTOL 1e-5

/* the model's gradients in host memory (caller frees) */
static float *grads_host(const train_model *m)
{
    err_t e;
    float *h = malloc(m->n_params * sizeof *h);
    if (!h || m->be->to_host(h, m->grads, m->n_params * sizeof *h, &e) < 0) {
        fprintf(stderr, "test_train_grads: cannot read the gradients\n");
        exit(1);
    }
    return h;
}

/* One batch through ref (CPU) and got (backend under test): loss without and with the backward
 * pass, then every tensor's gradient. */
static void compare_step(const char *label, train_model *ref, train_model *got,
                         const int32_t *blocks, int B, uint64_t seed, uint64_t key)
{
    err_t e;
    double lr = 0, lg = 0, lr_fwd = 0, lg_fwd = 0;
    ref->be->zero(ref->grads, ref->n_params * sizeof(float));
    got->be->zero(got->grads, got->n_params * sizeof(float));
    int rc = ref->loss(ref, blocks, B, seed, key, false, &lr_fwd, &e);
    if (rc == 0) rc = got->loss(got, blocks, B, seed, key, false, &lg_fwd, &e);
    if (rc == 0) rc = ref->loss(ref, blocks, B, seed, key, true, &lr, &e);
    if (rc == 0) rc = got->loss(got, blocks, B, seed, key, true, &lg, &e);
    CHECK(rc == 0, "%s: the losses run (%s)", label, rc ? e.msg : "ok");
    if (rc) return;
    char what[160];
    snprintf(what, sizeof what, "%s: loss without backward (%.9g)", label, lr_fwd);
    compare(what, &lg_fwd, &lr_fwd, 1, 1, 0, LOSS_RTOL);
    snprintf(what, sizeof what, "%s: loss with backward (%.9g)", label, lr);
    compare(what, &lg, &lr, 1, 1, 0, LOSS_RTOL);
    float *gr = grads_host(ref), *gg = grads_host(got);
    for (int i = 0; i < ref->n_tensors; i++) {
        const struct train_tensor *t = &ref->tensors[i];
        double mx = 0;
        for (size_t j = 0; j < t->numel; j++)
            mx = fabs(gr[t->offset + j]) > mx ? fabs(gr[t->offset + j]) : mx;
        snprintf(what, sizeof what, "%s: grad %s (max |g| %.3g)", label, t->name, mx);
        compare(what, gg + t->offset, gr + t->offset, t->numel, 0, GRAD_FRAC * mx, GRAD_RTOL);
    }
    free(gr), free(gg);
}

static int32_t *random_blocks(int B, int T, int vocab)
{
    int32_t *b = malloc((size_t)B * T * sizeof *b);
    if (!b) abort();
    for (int i = 0; i < B * T; i++) b[i] = (int32_t)((urand() + 1.0f) * 0.5f * vocab) % vocab;
    return b;
}

/* the model made twice, on the CPU and on the backend under test */
typedef train_model *(*load_fn)(const char *dir, const backend *be, err_t *e);

static void t_fixture(const char *label, load_fn load, const char *dir, int B)
{
    err_t e;
    train_model *ref = load(dir, cpu, &e), *got = ref ? load(dir, gpu, &e) : NULL;
    CHECK(ref && got, "%s: %s loads on both backends (%s)", label, dir, got ? "ok" : e.msg);
    if (ref && got) {
        int32_t *blocks = random_blocks(B, ref->block_len, ref->vocab);
        compare_step(label, ref, got, blocks, B, 5, 11);
        free(blocks);
    }
    if (ref) ref->free(ref);
    if (got) got->free(got);
}

static train_model *gpt2_fixture(const char *dir, const backend *be, err_t *e)
{
    return gpt2_train_load(dir, be, e);
}

static train_model *sedd_fixture(const char *dir, const backend *be, err_t *e)
{
    return sedd_train_load(dir, be, e);
}

/* a GPT-2 of odd sizes from its Philox initialisation: vocab 97, context 37, width 48 = 3 heads
 * of 16 */
static struct config_gpt2 odd_gpt2(void)
{
    return (struct config_gpt2){.vocab_size = 97, .n_positions = 37, .n_embd = 48, .n_head = 3,
                                .n_layer = 2, .n_inner = 192, .layer_norm_epsilon = 1e-5,
                                .act = CONFIG_ACT_GELU_TANH, .activation_function = "gelu_new",
                                .bos_token_id = 96, .eos_token_id = 96};
}

static void t_random_gpt2(void)
{
    err_t e;
    struct config_gpt2 cfg = odd_gpt2();
    train_model *ref = gpt2_train_new(&cfg, cpu, 3, &e);
    train_model *got = ref ? gpt2_train_new(&cfg, gpu, 3, &e) : NULL;
    CHECK(ref && got, "random GPT-2 made on both backends (%s)", got ? "ok" : e.msg);
    if (ref && got) {
        int32_t *blocks = random_blocks(3, ref->block_len, ref->vocab);
        compare_step("gpt2 random 97/37/48", ref, got, blocks, 3, 0, 0);
        free(blocks);
    }
    if (ref) ref->free(ref);
    if (got) got->free(got);
}

/* model.safetensors of a checkpoint directory as one float array (caller frees) */
static float *read_weights(const char *dir, const train_model *m)
{
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    err_t e;
    st_file_t *f = st_open(path, &e);
    float *w = calloc(m->n_params, sizeof *w);
    int rc = f && w ? 0 : ERR_FAIL;
    for (int i = 0; rc == 0 && i < m->n_tensors; i++) {
        const st_tensor *t = st_find(f, m->tensors[i].name);
        rc = t ? st_tensor_to_f32(t, w + m->tensors[i].offset, &e) : ERR_FAIL;
    }
    if (f) st_close(f);
    if (rc < 0) {
        free(w);
        return NULL;
    }
    return w;
}

/* A few steps of train_run (AdamW with weight decay, clipping, EMA, validation) on the random
 * GPT-2 on both backends: the saved EMA weights. Each weight moves by at most ~lr·g/eps per step
 * from the same start; the gradients differ by ~1e-5 of their scale (< 0.1), so the weights by
 * ~1e-7: 1e-6 absolute on weights of size ~0.02..1. */
static void t_train_run(void)
{
    err_t e;
    struct config_gpt2 cfg = odd_gpt2();
    train_model *m[2] = {gpt2_train_new(&cfg, cpu, 7, &e), gpt2_train_new(&cfg, gpu, 7, &e)};
    CHECK(m[0] && m[1], "train_run: models made (%s)", m[0] && m[1] ? "ok" : e.msg);
    int32_t *blocks = random_blocks(8, (int)cfg.n_positions, (int)cfg.vocab_size);
    struct train_opts o;
    train_defaults(&o);
    o.steps = 3, o.batch = 2, o.lr = 1e-3, o.ema = 0.9, o.grad_clip = 0.5, o.eval_every = 2;
    o.eval_batches = 1, o.save_every = 0, o.seed = 9;
    o.eps = 1e-2; /* above the gradients' noise: m/(sqrt(v) + eps) then does not turn a
                   * rounding-level gradient into a full ±lr step of either sign */
    char dir[2][128];
    float *w[2] = {NULL, NULL};
    for (int i = 0; i < 2 && m[0] && m[1]; i++) {
        snprintf(dir[i], sizeof dir[i], "/tmp/test_train_grads.%ld.%d", (long)getpid(), i);
        o.device = m[i]->be->name;
        int rc = train_run(m[i], &o, blocks, 8, NULL, 0, dir[i], false, &e);
        CHECK(rc == 0, "train_run on %s (%s)", m[i]->be->name, rc ? e.msg : "ok");
        if (rc == 0) w[i] = read_weights(dir[i], m[i]);
    }
    if (w[0] && w[1])
        compare("train_run: EMA weights after 3 steps", w[1], w[0], m[0]->n_params, 0, 1e-6,
                1e-5);
    for (int i = 0; i < 2; i++) {
        static const char *const files[] = {"config.json", "model.safetensors",
                                            "train_state.safetensors", "train.log.jsonl"};
        for (size_t f = 0; m[0] && m[1] && f < sizeof files / sizeof *files; f++) {
            char path[300];
            snprintf(path, sizeof path, "%s/%s", dir[i], files[f]);
            unlink(path);
        }
        if (m[0] && m[1]) rmdir(dir[i]);
        free(w[i]);
        if (m[i]) m[i]->free(m[i]);
    }
    free(blocks);
}

int main(int argc, char **argv)
{
    int status = op_check_start(argc, argv);
    if (status >= 0) return status;
    /* 9 blocks of 64: 576 rows, two chunks of the vocabulary projection (CE_CHUNK 512) */
    t_fixture("gpt2 fixture", gpt2_fixture, "tests/fixtures/gpt2", 9);
    t_random_gpt2();
    t_fixture("sedd absorb", sedd_fixture, "tests/fixtures/sedd/tiny_absorb_loglinear", 3);
    t_fixture("sedd uniform", sedd_fixture, "tests/fixtures/sedd/tiny_uniform_geometric", 3);
    t_train_run();
    NOTE("max diff over all cases: %.3g", worst_diff);
    return tap_done();
}
