/* sedd_train: the training loss on the fixture checkpoints equals the original's losses.py
 * (loss.safetensors: given t and x_t); the training forward gives sedd_forward's log-scores;
 * the gradient of every parameter tensor agrees with central finite differences of the loss
 * (absorb and uniform, tiny random models); a fresh model is initialised as the original's
 * modules; a checkpoint written from the tensor table and write_config loads with sedd_load. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/config.h"
#include "../../lib/philox.h"
#include "../../lib/safetensors.h"
#include "../../lib/sedd.h"
#include "../../lib/sedd_train.h"
#include "tap.h"

#define FIX "tests/fixtures/sedd/"

static char tmp[] = "/tmp/test_sedd_train.XXXXXX";

static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
    rnd_state = rnd_state * 1664525u + 1013904223u;
    return rnd_state >> 8;
}
static double rnd_u(void) { return (double)rnd() / (double)(1u << 24); }

/* n values of a named tensor, converted (float or integer), or NULL */
static double *get_f64(const st_file_t *f, const char *name, size_t *n)
{
    const st_tensor *t = st_find(f, name);
    if (!t) return NULL;
    double *out = malloc(t->numel * sizeof *out);
    float *fl = malloc(t->numel * sizeof *fl);
    int64_t *il = malloc(t->numel * sizeof *il);
    err_t e;
    if (st_dtype_is_float(t->dtype)) {
        st_tensor_to_f32(t, fl, &e);
        for (size_t i = 0; i < t->numel; i++) out[i] = fl[i];
    } else {
        st_tensor_to_i64(t, il, &e);
        for (size_t i = 0; i < t->numel; i++) out[i] = (double)il[i];
    }
    free(fl), free(il);
    *n = t->numel;
    return out;
}

/* (a) sedd_train_loss_given with the fixture's x0, t and x_t gives out.loss */
static void test_fixture_loss(const char *model, double atol, double rtol)
{
    char dir[256], path[300];
    snprintf(dir, sizeof dir, FIX "%s", model);
    snprintf(path, sizeof path, "%s/loss.safetensors", dir);
    err_t e;
    train_model *m = sedd_train_load(dir, NULL, &e);
    st_file_t *f = st_open(path, &e);
    CHECK(m && f, "%s: model and loss fixture load%s%s", model, m && f ? "" : ": ",
          m && f ? "" : e.msg);
    if (!m || !f) {
        if (m) m->free(m);
        st_close(f);
        return;
    }
    size_t nx, nt, nxt, nl;
    double *x0d = get_f64(f, "in.x0", &nx), *t = get_f64(f, "in.t", &nt);
    double *xtd = get_f64(f, "out.xt", &nxt), *ref = get_f64(f, "out.loss", &nl);
    const int B = (int)nt;
    int64_t *x0 = malloc(nx * sizeof *x0), *xt = malloc(nx * sizeof *xt);
    for (size_t i = 0; i < nx; i++) x0[i] = (int64_t)x0d[i], xt[i] = (int64_t)xtd[i];
    double *got = malloc((size_t)B * sizeof *got), loss = 0, want = 0;
    CHECK(nx == (size_t)B * (size_t)m->block_len && nl == (size_t)B, "%s: fixture shapes",
          model);
    int rc = sedd_train_loss_given(m, x0, xt, t, B, got, &loss, false, &e);
    CHECK(rc == 0, "%s: loss computed%s%s", model, rc ? ": " : "", rc ? e.msg : "");
    double worst = 0;
    bool ok = rc == 0;
    for (int b = 0; b < B && rc == 0; b++) {
        double err = fabs(got[b] - ref[b]);
        ok = ok && err <= atol + rtol * fabs(ref[b]);
        worst = fmax(worst, err / fabs(ref[b]));
        want += ref[b] / B / m->block_len;
    }
    CHECK(ok, "%s: per-sequence loss = losses.py's out.loss (max rel %.2e; atol %g rtol %g)",
          model, worst, atol, rtol);
    CHECK(rc == 0 && fabs(loss - want) <= rtol * fabs(want) + atol,
          "%s: reported loss is the batch mean per position (%.6f vs %.6f)", model, loss, want);
    free(x0d), free(t), free(xtd), free(ref), free(x0), free(xt), free(got);
    st_close(f);
    m->free(m);
}

/* (b) the training forward's log-scores are sedd_forward's */
static void test_log_scores(void)
{
    err_t e;
    train_model *m = sedd_train_load(FIX "tiny_absorb_loglinear", NULL, &e);
    sedd_model_t *ref = sedd_load(FIX "tiny_absorb_loglinear", NULL, &e);
    if (!m || !ref) {
        CHECK(0, "absorb fixture loads: %s", e.msg);
        if (m) m->free(m);
        sedd_free(ref);
        return;
    }
    const int B = 3, L = m->block_len;
    const int64_t V = sedd_config(ref)->vocab;
    const size_t n = (size_t)B * (size_t)L * (size_t)V;
    int64_t *x = malloc((size_t)B * (size_t)L * sizeof *x);
    for (int i = 0; i < B * L; i++) x[i] = rnd_u() < 0.5 ? V - 1 : (int64_t)(rnd() % (V - 1));
    float sigma[3] = {1e-3f, 0.7f, 6.5f};
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    int rc = sedd_train_log_scores(m, x, sigma, B, a, &e) | sedd_forward(ref, x, sigma, B, L, b,
                                                                        NULL, NULL, &e);
    double worst = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        worst = fmax(worst, fabs((double)a[i] - b[i]) / (1 + fabs((double)b[i])));
    CHECK(rc == 0 && worst < 1e-5, "training forward = sedd_forward (max |diff|/(1+|ref|) %.2e)",
          worst);
    free(x), free(a), free(b);
    sedd_free(ref);
    m->free(m);
}

static struct config_sedd tiny_config(enum config_graph graph)
{
    struct config_sedd c = {0};
    c.tokens = 40;
    c.graph = graph;
    c.vocab = graph == CONFIG_GRAPH_ABSORB ? 41 : 40;
    c.hidden_size = 16;
    c.cond_dim = 8;
    c.length = 6;
    c.n_blocks = 2;
    c.n_heads = 2;
    c.scale_by_sigma = graph == CONFIG_GRAPH_ABSORB;
    c.noise = graph == CONFIG_GRAPH_ABSORB ? CONFIG_NOISE_LOGLINEAR : CONFIG_NOISE_GEOMETRIC;
    c.sigma_min = 1e-4;
    c.sigma_max = 20;
    return c;
}

/* (c) every parameter tensor: analytic gradient vs central differences at a few entries */
static void test_gradients(enum config_graph graph)
{
    const char *gname = config_graph_name(graph);
    struct config_sedd cfg = tiny_config(graph);
    err_t e;
    train_model *m = sedd_train_new(&cfg, NULL, 7, &e);
    CHECK(m != NULL, "%s: tiny model created%s%s", gname, m ? "" : ": ", m ? "" : e.msg);
    if (!m) return;
    /* every parameter non-zero so that every path carries gradient */
    for (size_t i = 0; i < m->n_params; i++) m->params[i] = (float)(rnd_u() - 0.5) * 0.8f;
    for (int k = 0; k < m->n_tensors; k++)
        if (strstr(m->tensors[k].name, "norm"))
            for (size_t j = 0; j < m->tensors[k].numel; j++)
                m->params[m->tensors[k].offset + j] += 1.0f;
    enum { B = 2, L = 6 };
    int64_t x0[B * L], xt[B * L];
    for (int i = 0; i < B * L; i++) {
        x0[i] = rnd() % 40;
        if (graph == CONFIG_GRAPH_ABSORB) xt[i] = i % 3 ? 40 : x0[i];
        else xt[i] = i % 2 ? (int64_t)(rnd() % 40) : x0[i];
    }
    double t[B] = {0.35, 0.8}, loss = 0;
    memset(m->grads, 0, m->n_params * sizeof *m->grads);
    int rc = sedd_train_loss_given(m, x0, xt, t, B, NULL, &loss, true, &e);
    CHECK(rc == 0, "%s: loss and backward%s%s", gname, rc ? ": " : "", rc ? e.msg : "");
    if (rc) {
        m->free(m);
        return;
    }
    int bad_tensors = 0;
    double worst = 0;
    char worst_name[96] = "";
    for (int k = 0; k < m->n_tensors; k++) {
        const struct train_tensor *tt = &m->tensors[k];
        bool ok = true;
        for (int q = 0; q < 3; q++) {
            /* embedding entries in rows that the batch uses (the others have no gradient) */
            size_t j = tt->offset + (strcmp(tt->name, "vocab_embed.embedding") == 0
                                         ? (size_t)xt[rnd() % (B * L)] * 16 + rnd() % 16
                                         : rnd() % tt->numel);
            float keep = m->params[j];
            const float h = 1e-2f;
            double lp = 0, lm = 0;
            m->params[j] = keep + h;
            sedd_train_loss_given(m, x0, xt, t, B, NULL, &lp, false, &e);
            m->params[j] = keep - h;
            sedd_train_loss_given(m, x0, xt, t, B, NULL, &lm, false, &e);
            m->params[j] = keep;
            double fd = (lp - lm) / (2.0 * ((double)(keep + h) - (double)keep));
            double g = m->grads[j];
            double err = fabs(g - fd) / (3e-5 * (1 + fabs(loss)) + 3e-3 * fabs(fd));
            if (err > worst) worst = err, snprintf(worst_name, sizeof worst_name, "%s", tt->name);
            if (err > 1) {
                ok = false;
                NOTE("%s %s[%zu]: grad %.6g, finite difference %.6g", gname, tt->name,
                     j - tt->offset, g, fd);
            }
        }
        bad_tensors += !ok;
    }
    CHECK(bad_tensors == 0, "%s: gradients of all %d tensors match central differences "
          "(worst %.2f of the tolerance, %s)", gname, m->n_tensors, worst, worst_name);
    m->free(m);
}

/* a fresh model: adaLN-Zero, unit norms, PyTorch's uniform bounds */
static void test_init(void)
{
    struct config_sedd cfg = tiny_config(CONFIG_GRAPH_ABSORB);
    err_t e;
    train_model *m = sedd_train_new(&cfg, NULL, 3, &e), *m2 = sedd_train_new(&cfg, NULL, 3, &e);
    if (!m || !m2) {
        CHECK(0, "tiny models created: %s", e.msg);
        if (m) m->free(m);
        if (m2) m2->free(m2);
        return;
    }
    bool zero_ok = true, norm_ok = true, bound_ok = true, spread_ok = true;
    for (int k = 0; k < m->n_tensors; k++) {
        const struct train_tensor *t = &m->tensors[k];
        const float *p = m->params + t->offset;
        bool zero = strstr(t->name, "adaLN_modulation") || strstr(t->name, "output_layer.linear");
        bool norm = strstr(t->name, "norm") != NULL;
        /* fan_in: a weight's second dimension; a bias shares its weight's */
        double fan_in = t->ndim == 2 ? (double)t->shape[1] : (double)m->tensors[k - 1].shape[1];
        double bound = 1 / sqrt(fan_in), maxabs = 0;
        for (size_t j = 0; j < t->numel; j++) {
            if (zero) zero_ok = zero_ok && p[j] == 0;
            else if (norm) norm_ok = norm_ok && p[j] == 1;
            else maxabs = fmax(maxabs, fabs(p[j]));
        }
        if (!zero && !norm) {
            bound_ok = bound_ok && maxabs <= bound;
            if (t->numel >= 64) spread_ok = spread_ok && maxabs > 0.8 * bound;
        }
    }
    CHECK(zero_ok, "adaLN_modulation and output_layer.linear start at zero");
    CHECK(norm_ok, "LayerNorm weights start at one");
    CHECK(bound_ok && spread_ok, "linear and embedding weights fill ±1/sqrt(fan_in)");
    CHECK(memcmp(m->params, m2->params, m->n_params * sizeof *m->params) == 0,
          "the same seed gives the same initial weights");
    /* train_model.loss: deterministic in (seed, key), and a different key draws differently */
    int32_t blocks[2 * 6];
    for (int i = 0; i < 12; i++) blocks[i] = (int32_t)(rnd() % 40);
    double l1 = 0, l2 = 0, l3 = 0;
    int rc = m->loss(m, blocks, 2, 9, 1, false, &l1, &e) | m->loss(m, blocks, 2, 9, 1, false, &l2, &e) |
             m->loss(m, blocks, 2, 9, 2, false, &l3, &e);
    CHECK(rc == 0 && l1 == l2 && l1 != l3 && isfinite(l1) && l1 > 0,
          "train_model.loss is a function of (seed, key) (%.4f %.4f %.4f)", l1, l2, l3);
    blocks[3] = 40; /* the mask id is not data */
    CHECK(m->loss(m, blocks, 2, 9, 1, false, &l1, &e) < 0 && strstr(e.msg, "outside"),
          "a token outside the data vocabulary is rejected (%s)", e.msg);
    m->free(m);
    m2->free(m2);
    struct config_sedd bad = tiny_config(CONFIG_GRAPH_ABSORB);
    bad.n_heads = 3;
    CHECK(!sedd_train_new(&bad, NULL, 1, &e) && strstr(e.msg, "head dimension"),
          "a config with an odd head split is rejected (%s)", e.msg);
    bad = tiny_config(CONFIG_GRAPH_UNIFORM);
    bad.vocab = 41;
    CHECK(!sedd_train_new(&bad, NULL, 1, &e) && strstr(e.msg, "vocab"),
          "a vocab that does not fit the graph is rejected (%s)", e.msg);
}

/* loss and gradients are the same bits with 1 and 2 threads (train.h's reproducibility) */
static void test_threads(void)
{
    err_t e;
    train_model *m = sedd_train_load(FIX "tiny_absorb_loglinear", NULL, &e);
    if (!m) {
        CHECK(0, "absorb fixture loads: %s", e.msg);
        return;
    }
    enum { B = 4 };
    const int L = m->block_len;
    int32_t *blocks = malloc((size_t)B * (size_t)L * sizeof *blocks);
    for (int i = 0; i < B * L; i++) blocks[i] = (int32_t)(rnd() % 1000);
    float *g1 = malloc(m->n_params * sizeof *g1);
    double l1 = 0, l2 = 0;
    sedd_set_threads(1);
    memset(m->grads, 0, m->n_params * sizeof *m->grads);
    int rc = m->loss(m, blocks, B, 5, 3, true, &l1, &e);
    memcpy(g1, m->grads, m->n_params * sizeof *g1);
    sedd_set_threads(2);
    memset(m->grads, 0, m->n_params * sizeof *m->grads);
    rc |= m->loss(m, blocks, B, 5, 3, true, &l2, &e);
    CHECK(rc == 0 && l1 == l2 && memcmp(g1, m->grads, m->n_params * sizeof *g1) == 0,
          "loss and gradients are identical with 1 and 2 threads (%.9g, %.9g)", l1, l2);
    free(blocks), free(g1);
    m->free(m);
}

/* (d) model.safetensors from the tensor table + write_config load with sedd_load */
static void test_checkpoint(void)
{
    struct config_sedd cfg = tiny_config(CONFIG_GRAPH_ABSORB);
    err_t e;
    train_model *m = sedd_train_new(&cfg, NULL, 11, &e);
    if (!m) {
        CHECK(0, "tiny model created: %s", e.msg);
        return;
    }
    for (size_t i = 0; i < m->n_params; i++) m->params[i] += (float)(rnd_u() - 0.5) * 0.2f;
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s/ckpt", tmp);
    mkdir(dir, 0777);
    st_tensor *ts = calloc((size_t)m->n_tensors, sizeof *ts);
    for (int k = 0; k < m->n_tensors; k++) {
        ts[k].name = m->tensors[k].name;
        ts[k].dtype = ST_F32;
        ts[k].ndim = m->tensors[k].ndim;
        memcpy(ts[k].shape, m->tensors[k].shape, sizeof m->tensors[k].shape);
        ts[k].data = m->params + m->tensors[k].offset;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int rc = st_write(path, ts, (size_t)m->n_tensors, NULL, 0, &e);
    free(ts);
    CHECK(rc == 0 && m->write_config(m, dir, &e) == 0, "checkpoint written%s%s", rc ? ": " : "",
          rc ? e.msg : "");
    struct config c;
    CHECK(config_read_dir(dir, &c, &e) == 0 && c.kind == CONFIG_SEDD && c.sedd.tokens == 40 &&
              c.sedd.vocab == 41 && c.sedd.hidden_size == 16 && c.sedd.cond_dim == 8 &&
              c.sedd.length == 6 && c.sedd.n_blocks == 2 && c.sedd.n_heads == 2 &&
              c.sedd.scale_by_sigma && c.sedd.graph == CONFIG_GRAPH_ABSORB &&
              c.sedd.noise == CONFIG_NOISE_LOGLINEAR,
          "config.json reads back as the model's config");
    sedd_model_t *ref = sedd_load(dir, NULL, &e);
    CHECK(ref != NULL, "sedd_load reads the checkpoint%s%s", ref ? "" : ": ", ref ? "" : e.msg);
    if (ref) {
        enum { B = 2, L = 6, V = 41 };
        int64_t x[B * L];
        for (int i = 0; i < B * L; i++) x[i] = i % 2 ? 40 : (int64_t)(rnd() % 40);
        float sigma[B] = {0.2f, 3.0f}, a[B * L * V], b[B * L * V];
        rc = sedd_train_log_scores(m, x, sigma, B, a, &e) |
             sedd_forward(ref, x, sigma, B, L, b, NULL, NULL, &e);
        double worst = 0;
        for (int i = 0; rc == 0 && i < B * L * V; i++)
            worst = fmax(worst, fabs((double)a[i] - b[i]) / (1 + fabs((double)b[i])));
        CHECK(rc == 0 && worst < 1e-5, "the loaded checkpoint scores as the trained model (%.2e)",
              worst);
        sedd_free(ref);
    }
    m->free(m);
    train_model *back = sedd_train_load(dir, NULL, &e);
    CHECK(back != NULL, "sedd_train_load reads it too%s%s", back ? "" : ": ", back ? "" : e.msg);
    if (back) back->free(back);
}

int main(void)
{
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    sedd_set_threads(2);
    test_fixture_loss("tiny_absorb_loglinear", 1e-6, 3e-6);
    test_fixture_loss("tiny_uniform_geometric", 1e-6, 2e-3);
    test_log_scores();
    test_init();
    test_gradients(CONFIG_GRAPH_ABSORB);
    test_gradients(CONFIG_GRAPH_UNIFORM);
    test_threads();
    test_checkpoint();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0) NOTE("could not remove %s", tmp);
    return tap_done();
}
