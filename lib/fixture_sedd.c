/* fixture_sedd: the SEDD set — each model directory of manifest.json "models" loads as a SEDD
 * checkpoint with the manifest's graph, noise and dimensions, and every case runs through the
 * library: forward passes (and every traced intermediate), graph and noise functions, sampler
 * steps, losses, the likelihood grid and whole trajectories, replaying the stored rng.* draws.
 * One line per output tensor, at the manifest's suggested tolerance (per leading index where given).
 * An output the manifest marks ill-conditioned is compared with its float64 reference (ref64.*)
 * when stored: the library uses the stable forms (expm1, the uniform entropy's ratio) there. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "fixture.h"
#include "sedd.h"
#include "sedd_graph.h"
#include "sedd_noise.h"
#include "sedd_sampler.h"

/* The manifest's description of one model agrees with the loaded config. */
static bool model_matches(const json_t *spec, const json_t *model, const struct config_sedd *s)
{
    const struct { const json_t *src; const char *key; int64_t have; } dims[] = {
        {spec, "tokens", s->tokens},      {spec, "hidden", s->hidden_size},
        {spec, "cond", s->cond_dim},      {spec, "heads", s->n_heads},
        {spec, "blocks", s->n_blocks},    {spec, "length", s->length},
        {model, "vocab_size_model", s->vocab},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        const json_t *v = json_object_get(dims[i].src, dims[i].key);
        if (v && json_integer_value(v) != dims[i].have) return false;
    }
    const char *graph = json_string_value(json_object_get(model, "graph"));
    const char *noise = json_string_value(json_object_get(model, "noise"));
    return (!graph || strcmp(graph, config_graph_name(s->graph)) == 0) &&
           (!noise || strcmp(noise, config_noise_name(s->noise)) == 0);
}

/* One case being run: its file, manifest entry and labels. */
typedef struct fcase {
    fixture_report *r;
    st_file_t *f;
    const json_t *tensors;   /* manifest "tensors" of the case */
    char kind[64], label[256];
    const struct config_sedd *cfg;
    sedd_graph g;
    sedd_noise nz;
    sedd_model_t *model;     /* NULL when the model did not load */
    bool failed_input;       /* a missing input was already reported */
} fcase;

static void report(fcase *c, const char *tensor, double max_abs, double max_rel, bool pass,
                   const char *tol)
{
    char name[384];
    snprintf(name, sizeof name, "%s:%s", c->label, tensor);
    fixture_case(c->r, c->kind, name, max_abs, max_rel, pass, tol);
}

static const st_tensor *need(fcase *c, const char *name)
{
    const st_tensor *t = st_find(c->f, name);
    if (!t && !c->failed_input) {
        fprintf(c->r->out, "# %s: no tensor %s\n", c->label, name);
        report(c, name, INFINITY, INFINITY, false, "tensor missing");
        c->failed_input = true;
    }
    return t;
}

/* Tensor as doubles (F64 exactly, F32/F16/BF16 widened); NULL when absent. Caller frees. */
static double *get_f64(fcase *c, const char *name, size_t *n)
{
    const st_tensor *t = need(c, name);
    if (!t) return NULL;
    double *d = malloc((t->numel + 1) * sizeof *d);
    if (!d) return NULL;
    if (t->dtype == ST_F64) {
        memcpy(d, t->data, t->numel * sizeof *d);
    } else {
        float *f = malloc((t->numel + 1) * sizeof *f);
        err_t e;
        if (!f || st_tensor_to_f32(t, f, &e) < 0) {
            free(f), free(d);
            return NULL;
        }
        for (size_t i = 0; i < t->numel; i++) d[i] = f[i];
        free(f);
    }
    if (n) *n = t->numel;
    return d;
}

static float *get_f32(fcase *c, const char *name, size_t *n)
{
    const st_tensor *t = need(c, name);
    if (!t) return NULL;
    float *f = malloc((t->numel + 1) * sizeof *f);
    err_t e;
    if (!f || st_tensor_to_f32(t, f, &e) < 0) {
        free(f);
        return NULL;
    }
    if (n) *n = t->numel;
    return f;
}

static int64_t *get_i64(fcase *c, const char *name, size_t *n)
{
    const st_tensor *t = need(c, name);
    if (!t) return NULL;
    int64_t *v = malloc((t->numel + 1) * sizeof *v);
    err_t e;
    if (!v || st_tensor_to_i64(t, v, &e) < 0) {
        free(v);
        return NULL;
    }
    if (n) *n = t->numel;
    return v;
}

static double tol_of(const json_t *o, const char *key, double dflt)
{
    const json_t *v = json_object_get(o, key);
    return v ? json_number_value(v) : dflt;
}

/* Compares got (n values) with out.<name> (or, for an ill-conditioned output with a float64
 * reference, ref64.<name>) at the manifest's tolerances, and reports one line. */
static void check(fcase *c, const char *name, const double *got, size_t n)
{
    if (!got) {
        report(c, name, INFINITY, INFINITY, false, "not computed");
        return;
    }
    const json_t *fp = json_object_get(json_object_get(c->tensors, name), "fp32_vs_fp64");
    double atol = tol_of(fp, "suggested_atol", 1e-6), rtol = tol_of(fp, "suggested_rtol", 1e-6);
    const json_t *rows = json_object_get(fp, "per_leading_index");
    bool ill = json_is_true(json_object_get(fp, "ill_conditioned"));
    char ref_name[256];
    snprintf(ref_name, sizeof ref_name, "ref64.%s", name + 4);
    bool use64 = ill && st_find(c->f, ref_name);
    size_t n_ref = 0;
    double *ref = get_f64(c, use64 ? ref_name : name, &n_ref);
    if (!ref || n_ref != n) {
        report(c, name, INFINITY, INFINITY, false, ref ? "size differs" : "no reference");
        free(ref);
        return;
    }
    /* the tightest relative tolerance of the well-conditioned rows */
    double best_rtol = INFINITY;
    for (size_t i = 0; i < json_array_size(rows); i++) {
        const json_t *row = json_array_get(rows, i);
        if (!json_is_true(json_object_get(row, "ill_conditioned")))
            best_rtol = fmin(best_rtol, tol_of(row, "suggested_rtol", rtol));
    }
    size_t n_rows = json_array_size(rows), per_row = n_rows ? n / n_rows : n;
    double max_abs = 0, max_rel = 0;
    bool pass = true;
    for (size_t i = 0; i < n; i++) {
        double a = atol, rt = rtol;
        if (n_rows) {
            const json_t *row = json_array_get(rows, i / per_row);
            a = tol_of(row, "suggested_atol", atol);
            rt = tol_of(row, "suggested_rtol", rtol);
            if (use64 && json_is_true(json_object_get(row, "ill_conditioned")))
                rt = fmax(1e-5, 10 * (isfinite(best_rtol) ? best_rtol : 1e-6));
        } else if (use64) {
            rt = 1e-5;
        }
        double d = fabs(got[i] - ref[i]);
        if (isnan(got[i]) != isnan(ref[i])) d = INFINITY;
        if (isnan(got[i]) && isnan(ref[i])) d = 0;
        if (d > max_abs) max_abs = d;
        double rel = ref[i] != 0 ? d / fabs(ref[i]) : (d ? INFINITY : 0);
        if (rel > max_rel) max_rel = rel;
        if (!(d <= a + rt * fabs(ref[i]))) pass = false;
    }
    char tol[160];
    if (use64)
        snprintf(tol, sizeof tol, "vs ref64: ill-conditioned rows rtol %g, the others at the "
                 "manifest's per-row tolerance",
                 fmax(1e-5, 10 * (isfinite(best_rtol) ? best_rtol : 1e-6)));
    else
        snprintf(tol, sizeof tol, "atol %g rtol %g%s%s", atol, rtol, n_rows ? " per row" : "",
                 ill ? ", ill-conditioned" : "");
    report(c, name, max_abs, max_rel, pass, tol);
    free(ref);
}

static void check_i64(fcase *c, const char *name, const int64_t *got, size_t n)
{
    size_t n_ref = 0;
    int64_t *ref = got ? get_i64(c, name, &n_ref) : NULL;
    size_t bad = 0;
    if (!ref || n_ref != n) bad = n ? n : 1;
    else
        for (size_t i = 0; i < n; i++) bad += got[i] != ref[i];
    char tol[64];
    snprintf(tol, sizeof tol, "exact, %zu/%zu differ", bad, n);
    report(c, name, (double)bad, 0, bad == 0, tol);
    free(ref);
}

/* Shape of an input tensor (dims into shape, returns ndim; 0 when absent). */
static int shape_of(fcase *c, const char *name, int64_t *shape)
{
    const st_tensor *t = need(c, name);
    if (!t) return 0;
    for (int i = 0; i < t->ndim; i++) shape[i] = t->shape[i];
    return t->ndim;
}

/* ---- graph and noise ------------------------------------------------------------------------ */

static void run_graph(fcase *c)
{
    int64_t sh[8];
    if (shape_of(c, "in.i", sh) != 2) return;
    const size_t B = (size_t)sh[0], L = (size_t)sh[1], V = (size_t)c->g.dim, n = B * L;
    int64_t *i = get_i64(c, "in.i", NULL), *x = get_i64(c, "in.x", NULL);
    int64_t *x0 = get_i64(c, "in.x0", NULL);
    float *score = get_f32(c, "in.score", NULL), *ls = get_f32(c, "in.log_score", NULL);
    double *sigma = get_f64(c, "in.sigma", NULL), *dsigma = get_f64(c, "in.dsigma", NULL);
    double *u = get_f64(c, "rng.sample_transition.u", NULL);
    bool uni = c->g.type == CONFIG_GRAPH_UNIFORM;
    int64_t *rt = uni ? get_i64(c, "rng.sample_transition.rand_tokens", NULL) : NULL;
    int64_t *rl = uni ? get_i64(c, "rng.sample_limit.rand_tokens", NULL) : NULL;
    double *out = malloc(n * V * sizeof *out);
    if (!i || !x || !x0 || !score || !ls || !sigma || !dsigma || !u || !out || (uni && (!rt || !rl)))
        goto done;
    int64_t *iv = malloc(n * V * sizeof *iv);
    struct { const char *name; int op; } vec_ops[] = {
        {"out.rate", 0}, {"out.transp_rate", 1}, {"out.transp_transition", 2},
        {"out.transition", 3}, {"out.reverse_rate", 4}, {"out.staggered_score", 5},
    };
    for (size_t k = 0; k < sizeof vec_ops / sizeof vec_ops[0]; k++) {
        if (!st_find(c->f, vec_ops[k].name)) continue; /* transition: uniform only */
        for (size_t p = 0; p < n; p++) {
            double *o = out + p * V;
            size_t b = p / L;
            switch (vec_ops[k].op) {
            case 0: sedd_graph_rate(&c->g, i[p], o); break;
            case 1: sedd_graph_transp_rate(&c->g, i[p], o); break;
            case 2: sedd_graph_transp_transition(&c->g, i[p], sigma[b], o); break;
            case 3: sedd_graph_transition(&c->g, i[p], sigma[b], o); break;
            case 4: sedd_graph_reverse_rate(&c->g, i[p], score + p * V, o); break;
            default: sedd_graph_staggered_score(&c->g, score + p * V, dsigma[b], o); break;
            }
        }
        if (st_find(c->f, vec_ops[k].name)->dtype == ST_I64 && iv) {
            for (size_t q = 0; q < n * V; q++) iv[q] = (int64_t)out[q];
            check_i64(c, vec_ops[k].name, iv, n * V);
        } else {
            check(c, vec_ops[k].name, out, n * V);
        }
    }
    free(iv);
    for (size_t p = 0; p < n; p++)
        out[p] = sedd_graph_score_entropy(&c->g, ls + p * V, sigma[p / L], x[p], x0[p]);
    check(c, "out.score_entropy", out, n);
    for (size_t b = 0; b < B; b++) out[b] = sedd_graph_move_chance(sigma[b]);
    check(c, "out.move_chance", out, B);
    int64_t *tok = malloc(n * sizeof *tok);
    for (size_t p = 0; tok && p < n; p++)
        tok[p] = sedd_graph_sample_transition(&c->g, x0[p], sigma[p / L], u[p], uni ? rt[p] : 0);
    check_i64(c, "out.sample_transition", tok, n);
    for (size_t p = 0; tok && p < n; p++) tok[p] = sedd_graph_sample_limit(&c->g, uni ? rl[p] : 0);
    check_i64(c, "out.sample_limit", tok, n);
    free(tok);
done:
    free(i), free(x), free(x0), free(score), free(ls), free(sigma), free(dsigma), free(u);
    free(rt), free(rl), free(out);
}

static void run_noise(fcase *c)
{
    size_t n = 0;
    double *t = get_f64(c, "in.t", &n);
    double *out = malloc((n + 1) * sizeof *out);
    if (t && out) {
        for (size_t k = 0; k < n; k++) out[k] = sedd_noise_total(&c->nz, t[k]);
        check(c, "out.total_noise", out, n);
        for (size_t k = 0; k < n; k++) out[k] = sedd_noise_rate(&c->nz, t[k]);
        check(c, "out.rate_noise", out, n);
    }
    for (size_t k = 0; k < st_count(c->f); k++) {
        const st_tensor *ts = st_get(c->f, k);
        if (strncmp(ts->name, "out.timesteps_", 14) != 0) continue;
        int steps = atoi(ts->name + 14);
        float *grid = malloc((size_t)(steps + 1) * sizeof *grid);
        double *g64 = malloc((size_t)(steps + 1) * sizeof *g64);
        if (grid && g64) {
            sedd_noise_timesteps(steps, 1e-5, grid);
            for (int s = 0; s <= steps; s++) g64[s] = grid[s];
        }
        check(c, ts->name, grid && g64 ? g64 : NULL, (size_t)steps + 1);
        free(grid), free(g64);
    }
    free(t), free(out);
}

/* ---- sampler steps ------------------------------------------------------------------------- */

/* One predictor on the stored scores out.<p>.score (the model's own scores are checked too). */
enum fx_step { EULER, ANALYTIC, DENOISE };

static void run_step(fcase *c, const char *p, enum fx_step kind)
{
    char name[128], xname[64], tname[64];
    snprintf(xname, sizeof xname, "in.x_%s", p);
    snprintf(tname, sizeof tname, "in.t_%s", p);
    int64_t sh[8];
    if (shape_of(c, xname, sh) != 2) return;
    const int B = (int)sh[0], L = (int)sh[1];
    const size_t V = (size_t)c->g.dim, n = (size_t)B * (size_t)L;
    int64_t *x = get_i64(c, xname, NULL);
    double *t = get_f64(c, tname, NULL), *dt = get_f64(c, "in.dt", NULL);
    snprintf(name, sizeof name, "out.%s.score", p);
    float *score = get_f32(c, name, NULL);
    snprintf(name, sizeof name, "rng.%s.gumbel_u", p);
    size_t n_u = 0;
    float *gu = get_f32(c, name, &n_u);
    double *probs = malloc(n * V * sizeof *probs), *tmp = malloc(V * sizeof *tmp);
    double *sig = malloc((size_t)B * 2 * sizeof *sig);
    int64_t *xn = malloc(n * sizeof *xn);
    float *mine = c->model ? malloc(n * V * sizeof *mine) : NULL;
    if (!x || !t || !dt || !score || !gu || !probs || !tmp || !sig || !xn) goto done;
    /* the model's scores at this step's sigma */
    for (int b = 0; b < B; b++) sig[b] = sedd_noise_total(&c->nz, t[b]);
    if (mine) {
        float *s32 = malloc((size_t)B * sizeof *s32);
        err_t e;
        for (int b = 0; s32 && b < B; b++) s32[b] = (float)sig[b];
        double *d = malloc(n * V * sizeof *d);
        if (s32 && d && sedd_forward(c->model, x, s32, B, L, mine, NULL, NULL, &e) == 0) {
            for (size_t q = 0; q < n * V; q++) d[q] = exp((double)mine[q]);
            snprintf(name, sizeof name, "out.%s.score", p);
            check(c, name, d, n * V);
        }
        free(s32), free(d);
    } else {
        snprintf(name, sizeof name, "out.%s.score", p);
        report(c, name, INFINITY, INFINITY, false, "model not loaded");
    }
    const size_t n_w = kind == DENOISE && c->g.type == CONFIG_GRAPH_ABSORB ? V - 1 : V;
    double *tmp2 = malloc(V * sizeof *tmp2);
    for (size_t q = 0; tmp2 && q < n; q++) {
        size_t b = q / (size_t)L;
        const float *s = score + q * V;
        if (kind == EULER) {
            sedd_sampler_euler_probs(&c->g, x[q], s,
                                     (double)(float)dt[0] * sedd_noise_rate(&c->nz, t[b]), tmp);
        } else {
            double delta = kind == DENOISE ? sig[b] :
                sig[b] - sedd_noise_total(&c->nz, (double)((float)t[b] - (float)dt[0]));
            sedd_sampler_analytic_probs(&c->g, x[q], s, delta, tmp, tmp2);
        }
        memcpy(probs + q * n_w, tmp, n_w * sizeof *probs);
    }
    snprintf(name, sizeof name, "out.%s.probs", p);
    check(c, name, probs, n * n_w);
    if (kind == DENOISE) {
        double *norm = malloc(n * n_w * sizeof *norm);
        for (size_t q = 0; norm && q < n; q++) {
            double sum = 0;
            for (size_t y = 0; y < n_w; y++) sum += probs[q * n_w + y];
            for (size_t y = 0; y < n_w; y++) norm[q * n_w + y] = probs[q * n_w + y] / sum;
        }
        snprintf(name, sizeof name, "out.%s.probs_rownorm", p);
        check(c, name, norm, n * n_w);
        free(norm);
        snprintf(name, sizeof name, "out.%s.sigma", p);
        check(c, name, sig, (size_t)B);
    } else if (kind == EULER) {
        snprintf(name, sizeof name, "out.%s.sigma", p);
        check(c, name, sig, (size_t)B);
        for (int b = 0; b < B; b++) sig[B + b] = sedd_noise_rate(&c->nz, t[b]);
        snprintf(name, sizeof name, "out.%s.dsigma", p);
        check(c, name, sig + B, (size_t)B);
    } else {
        snprintf(name, sizeof name, "out.%s.curr_sigma", p);
        check(c, name, sig, (size_t)B);
        for (int b = 0; b < B; b++)
            sig[B + b] = sedd_noise_total(&c->nz, (double)((float)t[b] - (float)dt[0]));
        snprintf(name, sizeof name, "out.%s.next_sigma", p);
        check(c, name, sig + B, (size_t)B);
    }
    if (n_u != n * n_w) {
        report(c, "rng", INFINITY, 0, false, "gumbel_u has the wrong size");
    } else {
        for (size_t q = 0; q < n; q++) {
            sedd_draw d = {.precision = 32, .stored = gu + q * n_w};
            xn[q] = sedd_sampler_categorical(probs + q * n_w, (int64_t)n_w, &d);
        }
        snprintf(name, sizeof name, "out.%s.x_next", p);
        check_i64(c, name, xn, n);
    }
    free(tmp2);
done:
    free(x), free(t), free(dt), free(score), free(gu), free(probs), free(tmp), free(sig), free(xn);
    free(mine);
}

/* ---- model cases ---------------------------------------------------------------------------- */

static bool have_model(fcase *c)
{
    if (!c->model) report(c, "model", INFINITY, INFINITY, false, "model not loaded");
    return c->model != NULL;
}

static void run_forward(fcase *c)
{
    int64_t sh[8];
    if (!have_model(c) || shape_of(c, "in.x", sh) != 2) return;
    const int B = (int)sh[0], L = (int)sh[1];
    const size_t n = (size_t)B * (size_t)L * (size_t)c->g.dim;
    int64_t *x = get_i64(c, "in.x", NULL);
    float *sigma = get_f32(c, "in.sigma", NULL), *out = malloc(n * sizeof *out);
    double *d = malloc(n * sizeof *d);
    err_t e;
    if (x && sigma && out && d) {
        if (sedd_forward(c->model, x, sigma, B, L, out, NULL, NULL, &e) < 0) {
            fprintf(c->r->out, "# %s\n", e.msg);
            check(c, "out.log_score", NULL, n);
        } else {
            for (size_t i = 0; i < n; i++) d[i] = out[i];
            check(c, "out.log_score", d, n);
        }
    }
    free(x), free(sigma), free(out), free(d);
}

/* Intermediates of a traced forward pass, kept by name. */
typedef struct trace_store {
    size_t n, cap;
    char **names;
    double **data;
    size_t *len;
} trace_store;

static void trace_keep(void *ctx, const char *name, const float *data, size_t n)
{
    trace_store *ts = ctx;
    if (ts->n == ts->cap) {
        size_t cap = ts->cap ? 2 * ts->cap : 64;
        char **names = realloc(ts->names, cap * sizeof *names);
        if (names) ts->names = names;
        double **dd = realloc(ts->data, cap * sizeof *dd);
        if (dd) ts->data = dd;
        size_t *len = realloc(ts->len, cap * sizeof *len);
        if (len) ts->len = len;
        if (!names || !dd || !len) return;
        ts->cap = cap;
    }
    double *d = malloc((n + 1) * sizeof *d);
    if (!d) return;
    for (size_t i = 0; i < n; i++) d[i] = data[i];
    ts->names[ts->n] = strdup(name);
    ts->data[ts->n] = d;
    ts->len[ts->n++] = n;
}

static void run_forward_trace(fcase *c)
{
    int64_t sh[8];
    if (!have_model(c) || shape_of(c, "in.x", sh) != 2) return;
    const int B = (int)sh[0], L = (int)sh[1];
    const size_t n = (size_t)B * (size_t)L * (size_t)c->g.dim;
    int64_t *x = get_i64(c, "in.x", NULL);
    float *sigma = get_f32(c, "in.sigma", NULL), *out = malloc(n * sizeof *out);
    trace_store ts = {0};
    err_t e;
    if (x && sigma && out) {
        if (sedd_forward(c->model, x, sigma, B, L, out, trace_keep, &ts, &e) < 0) {
            fprintf(c->r->out, "# %s\n", e.msg);
        } else {
            trace_keep(&ts, "log_score", out, n);
        }
        for (size_t k = 0; k < st_count(c->f); k++) {
            const char *name = st_get(c->f, k)->name;
            if (strncmp(name, "out.", 4) != 0) continue;
            size_t j = 0;
            while (j < ts.n && strcmp(ts.names[j], name + 4) != 0) j++;
            check(c, name, j < ts.n ? ts.data[j] : NULL, j < ts.n ? ts.len[j] : 0);
        }
    }
    for (size_t j = 0; j < ts.n; j++) free(ts.names[j]), free(ts.data[j]);
    free(ts.names), free(ts.data), free(ts.len);
    free(x), free(sigma), free(out);
}

static void run_loss(fcase *c)
{
    int64_t sh[8];
    if (!have_model(c) || shape_of(c, "in.x0", sh) != 2) return;
    const int B = (int)sh[0], L = (int)sh[1];
    const size_t n = (size_t)B * (size_t)L;
    bool uni = c->g.type == CONFIG_GRAPH_UNIFORM;
    int64_t *x0 = get_i64(c, "in.x0", NULL);
    double *t = get_f64(c, "in.t", NULL), *u = get_f64(c, "rng.xt.move_u", NULL);
    int64_t *rt = uni ? get_i64(c, "rng.xt.rand_tokens", NULL) : NULL;
    float *ws = malloc((size_t)L * (size_t)c->g.dim * sizeof *ws);
    int64_t *xt = malloc(n * sizeof *xt);
    double *dse = malloc(n * sizeof *dse), *wdse = malloc(n * sizeof *wdse);
    double *loss = malloc((size_t)B * 3 * sizeof *loss);
    err_t e;
    if (x0 && t && u && (!uni || rt) && ws && xt && dse && wdse && loss) {
        bool ok = true;
        for (int b = 0; b < B && ok; b++) {
            size_t o = (size_t)b * (size_t)L;
            ok = sedd_sampler_loss(&backend_cpu, &c->g, &c->nz, sedd_score_masked, c->model,
                                   x0 + o, L, t[b], u + o, uni ? rt + o : NULL, ws, xt + o,
                                   dse + o, &loss[b], &e) == 0;
            double ds = sedd_noise_rate(&c->nz, t[b]);
            for (int l = 0; l < L; l++) wdse[o + (size_t)l] = ds * dse[o + (size_t)l];
            loss[B + b] = sedd_noise_total(&c->nz, t[b]);
            loss[2 * B + b] = ds;
        }
        if (!ok) fprintf(c->r->out, "# %s\n", e.msg);
        check(c, "out.sigma", loss + B, (size_t)B);
        check(c, "out.dsigma", loss + 2 * B, (size_t)B);
        check_i64(c, "out.xt", ok ? xt : NULL, n);
        check(c, "out.loss", ok ? loss : NULL, (size_t)B);
        check(c, "out.dse_per_token", ok ? dse : NULL, n);
        check(c, "out.weighted_dse_per_token", ok ? wdse : NULL, n);
    }
    free(x0), free(t), free(u), free(rt), free(ws), free(xt), free(dse), free(wdse), free(loss);
}

static void run_likelihood(fcase *c)
{
    int64_t sh[8];
    if (!have_model(c) || shape_of(c, "in.x0", sh) != 2) return;
    const int B = (int)sh[0], L = (int)sh[1];
    size_t K = 0;
    bool uni = c->g.type == CONFIG_GRAPH_UNIFORM;
    int64_t *x0 = get_i64(c, "in.x0", NULL);
    double *t = get_f64(c, "in.t_values", &K);
    float *ws = malloc((size_t)L * (size_t)c->g.dim * sizeof *ws);
    int64_t *xt = malloc(K * (size_t)B * (size_t)L * sizeof *xt);
    double *loss = malloc(K * (size_t)B * sizeof *loss);
    err_t e;
    bool ok = x0 && t && ws && xt && loss;
    for (size_t k = 0; k < K && ok; k++) {
        char name[64];
        snprintf(name, sizeof name, "rng.move_u.%zu", k);
        double *u = get_f64(c, name, NULL);
        snprintf(name, sizeof name, "rng.rand_tokens.%zu", k);
        int64_t *rt = uni ? get_i64(c, name, NULL) : NULL;
        ok = u && (!uni || rt);
        for (int b = 0; b < B && ok; b++) {
            size_t o = (size_t)b * (size_t)L;
            ok = sedd_sampler_loss(&backend_cpu, &c->g, &c->nz, sedd_score_masked, c->model,
                                   x0 + o, L, t[k], u + o, uni ? rt + o : NULL, ws,
                                   xt + (k * (size_t)B) * (size_t)L + o, NULL,
                                   &loss[k * (size_t)B + (size_t)b], &e) == 0;
            if (!ok) fprintf(c->r->out, "# %s\n", e.msg);
        }
        free(u), free(rt);
    }
    check_i64(c, "out.xt", ok ? xt : NULL, K * (size_t)B * (size_t)L);
    check(c, "out.loss", ok ? loss : NULL, K * (size_t)B);
    if (ok) {
        /* the aggregations: per sequence mean over k of loss/L, then both orders */
        double *per_seq = malloc((size_t)B * sizeof *per_seq), mean = 0, mean_exp = 0;
        double max_s = -INFINITY;
        const int nb = per_seq ? B : 0;
        for (int b = 0; b < nb; b++) {
            per_seq[b] = 0;
            for (size_t k = 0; k < K; k++) per_seq[b] += loss[k * (size_t)B + (size_t)b] / L;
            per_seq[b] /= (double)K;
            mean += per_seq[b] / nb;
            mean_exp += exp(per_seq[b]) / nb;
        }
        for (size_t q = 0; q < K * (size_t)B; q++) max_s = fmax(max_s, loss[q] / L);
        double lse = 0;
        for (size_t q = 0; q < K * (size_t)B; q++) lse += exp(loss[q] / L - max_s);
        double ppl = exp(mean), log_mean_exp = max_s + log(lse / (double)(K * (size_t)B));
        check(c, "out.agg.per_sequence_nats_per_token", per_seq, (size_t)nb);
        check(c, "out.agg.nats_per_token", &mean, 1);
        check(c, "out.agg.ppl_exp_of_mean", &ppl, 1);
        check(c, "out.agg.ppl_mean_of_exp_per_sequence", &mean_exp, 1);
        check(c, "out.agg.log_ppl_mean_of_exp_per_sample", &log_mean_exp, 1);
        free(per_seq);
    }
    free(x0), free(t), free(ws), free(xt), free(loss);
}

static void run_traj(fcase *c, enum sedd_predictor pred)
{
    int64_t *shape = get_i64(c, "in.shape", NULL), *steps = get_i64(c, "in.steps", NULL);
    if (!have_model(c) || !shape || !steps) {
        free(shape), free(steps);
        return;
    }
    const int B = (int)shape[0], L = (int)shape[1], S = (int)steps[0];
    const size_t n = (size_t)B * (size_t)L;
    bool uni = c->g.type == CONFIG_GRAPH_UNIFORM;
    int64_t *x_init = uni ? get_i64(c, "rng.x_init_rand_tokens", NULL) : NULL;
    float **gu = calloc((size_t)S + 1, sizeof *gu);
    bool ok = gu && (!uni || x_init);
    for (int s = 0; ok && s <= S; s++) {
        char name[64];
        snprintf(name, sizeof name, "rng.gumbel_u.%d", s);
        ok = (gu[s] = get_f32(c, name, NULL)) != NULL;
    }
    int64_t *fixed = NULL;
    if (ok && st_find(c->f, "in.cond_locs")) {
        size_t nl = 0, ni = 0;
        int64_t *locs = get_i64(c, "in.cond_locs", &nl), *tok = get_i64(c, "in.cond_ids", &ni);
        fixed = malloc(n * sizeof *fixed);
        ok = locs && tok && fixed && nl == ni;
        for (size_t p = 0; ok && p < n; p++) fixed[p] = -1;
        for (int b = 0; ok && b < B; b++)
            for (size_t j = 0; j < nl; j++) fixed[(size_t)b * (size_t)L + (size_t)locs[j]] = tok[j];
        free(locs), free(tok);
    }
    uint64_t *ids = calloc((size_t)B, sizeof *ids);
    int64_t *x = malloc(n * sizeof *x), *trace = malloc((size_t)(S + 1) * n * sizeof *trace);
    err_t e;
    if (ok && ids && x && trace) {
        sedd_sample_opts o = {.predictor = pred, .steps = S, .eps = 1e-5, .denoise = true,
                              .precision = 32};
        sedd_replay rp = {.x_init = x_init, .gumbel_u = (const float *const *)gu};
        if (sedd_sample(&backend_cpu, &c->g, &c->nz, &o, sedd_score_masked, c->model, B, L, ids,
                        fixed, &rp, x, trace, &e) < 0) {
            fprintf(c->r->out, "# %s\n", e.msg);
            check_i64(c, "out.x_after_step", NULL, 0);
        } else {
            check_i64(c, "out.x_after_step", trace, (size_t)(S + 1) * n);
            check_i64(c, "out.samples", x, n);
        }
    }
    for (int s = 0; gu && s <= S; s++) free(gu[s]);
    free(gu), free(x_init), free(fixed), free(ids), free(x), free(trace), free(shape), free(steps);
}

static void run_case(fcase *c, const char *name)
{
    if (strcmp(name, "graph") == 0) run_graph(c);
    else if (strcmp(name, "noise") == 0) run_noise(c);
    else if (strcmp(name, "steps") == 0) {
        run_step(c, "euler", EULER);
        run_step(c, "analytic", ANALYTIC);
        run_step(c, "denoiser", DENOISE);
    } else if (strcmp(name, "loss") == 0) run_loss(c);
    else if (strcmp(name, "likelihood") == 0) run_likelihood(c);
    else if (strcmp(name, "forward_trace") == 0) run_forward_trace(c);
    else if (strncmp(name, "forward", 7) == 0) run_forward(c);
    else if (strcmp(name, "traj_euler") == 0) run_traj(c, SEDD_PRED_EULER);
    else if (strncmp(name, "traj_analytic", 13) == 0) run_traj(c, SEDD_PRED_ANALYTIC);
    else fixture_unsupported(c->r, c->kind, c->label);
}

int fixture_run_sedd(const char *dir, fixture_report *r, err_t *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    json_error_t jerr;
    json_t *manifest = json_load_file(path, 0, &jerr);
    if (!manifest) return err_set(e, "%s: line %d: %s", path, jerr.line, jerr.text);
    const json_t *spec = json_object_get(manifest, "spec");
    const char *model_name;
    json_t *model;
    json_object_foreach(json_object_get(manifest, "models"), model_name, model) {
        const char *sub = json_string_value(json_object_get(model, "model_dir"));
        char mdir[4096];
        snprintf(mdir, sizeof mdir, "%s/%s", dir, sub ? sub : model_name);
        ckpt_t *ck = ckpt_open(mdir, e);
        bool ok = ck && ckpt_config(ck)->kind == CONFIG_SEDD &&
                  model_matches(spec, model, &ckpt_config(ck)->sedd);
        if (!ck) fprintf(r->out, "# %s\n", e->msg);
        fixture_case(r, "checkpoint", model_name, ok ? 0 : INFINITY, 0, ok,
                     "loads, graph/noise/dims as manifest");
        struct config cfg = ck ? *ckpt_config(ck) : (struct config){0};
        ckpt_close(ck);
        sedd_model_t *m = ok ? sedd_load(mdir, r->be, e) : NULL;
        if (ok && !m) fprintf(r->out, "# %s\n", e->msg);

        const char *case_name;
        json_t *value;
        json_object_foreach(json_object_get(model, "cases"), case_name, value) {
            fcase c = {.r = r, .tensors = json_object_get(value, "tensors"), .cfg = &cfg.sedd,
                       .model = m};
            snprintf(c.kind, sizeof c.kind, "sedd-%.*s", (int)strcspn(case_name, "_"), case_name);
            snprintf(c.label, sizeof c.label, "%s/%s", model_name, case_name);
            if (!fixture_selected(r, c.kind)) {
                fixture_case(r, c.kind, c.label, 0, 0, true, "");
                continue;
            }
            const char *file = json_string_value(json_object_get(value, "file"));
            snprintf(path, sizeof path, "%s/%s", dir, file ? file : "");
            if (!ok || !file || !(c.f = st_open(path, e))) {
                if (ok && file) fprintf(r->out, "# %s\n", e->msg);
                fixture_case(r, c.kind, c.label, INFINITY, 0, false, "case file unreadable");
                continue;
            }
            sedd_graph_init(&c.g, cfg.sedd.graph, cfg.sedd.tokens);
            sedd_noise_init(&c.nz, &cfg.sedd);
            run_case(&c, case_name);
            st_close(c.f);
        }
        sedd_free(m);
    }
    json_decref(manifest);
    return 0;
}
