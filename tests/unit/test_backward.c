/* test_backward: every training op of the CPU backend against an independent computation.
 * Backward ops: the scalar L = Σ r·y (r fixed random) of a double-precision forward written here
 * from backend.h's contracts, differentiated by central finite differences over every input
 * element; the op's gradient is compared after starting from a random gradient buffer g0 (so the
 * "adds into" contract is checked too), at small shapes that are not multiples of any tile.
 * Larger-than-one-tile shapes check matmul_backward against the direct double products, and every
 * op for identical bits with 1 and 2 threads. Optimiser ops against the formulas in double.
 *
 * Tolerances: the FD reference is a double forward with h = 1e-4, so its error is ~h²·f''' ≈ 1e-8
 * plus rounding 1e-16/h ≈ 1e-12; the ops are fp32 with sums of at most a few hundred O(1) terms,
 * whose rounding is ≤ ~1e-5 relative. TOL_ABS = 5e-5 and TOL_REL = 2e-4 therefore never flake,
 * while a wrong index, sign or missing term gives errors of 1e-2..1. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/backend.h"
#include "philox.h"
#include "tap.h"

static const backend *be = &backend_cpu;

#define FD_H 1e-4
#define TOL_ABS 5e-5
#define TOL_REL 2e-4

static void fill(float *x, size_t n, uint32_t salt, float amp)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t w[4];
        philox_draw(7, salt, 0, (uint32_t)i, 0, w);
        x[i] = amp * (2.0f * philox_u01_f32(w[0]) - 1.0f);
    }
}

static float *rnd(size_t n, uint32_t salt, float amp)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    fill(x, n, salt, amp);
    return x;
}

static double *dbl(const float *x, size_t n)
{
    double *d = malloc((n ? n : 1) * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static float *dup(const float *x, size_t n)
{
    float *d = malloc((n ? n : 1) * sizeof *d);
    memcpy(d, x, n * sizeof *d);
    return d;
}

/* g[i] = dL/dp[i] by central differences (p is restored) */
static void fd_grad(double *p, size_t n, double (*L)(void *), void *ctx, double *g)
{
    for (size_t i = 0; i < n; i++) {
        double s = p[i];
        p[i] = s + FD_H;
        double lp = L(ctx);
        p[i] = s - FD_H;
        double lm = L(ctx);
        p[i] = s;
        g[i] = (lp - lm) / (2 * FD_H);
    }
}

/* CHECKs that got - g0 (what the op added) matches the FD gradient of L over p (n elements) */
static void check_grad(const char *what, const float *got, const float *g0, double *p, size_t n,
                       double (*L)(void *), void *ctx)
{
    double *fd = malloc(n * sizeof *fd), worst = 0;
    fd_grad(p, n, L, ctx, fd);
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(((double)got[i] - (g0 ? g0[i] : 0.0)) - fd[i]);
        if (!(d <= worst)) worst = d;
        if (!(d <= TOL_ABS + TOL_REL * fabs(fd[i]))) ok = false;
    }
    CHECK(ok, "%s vs finite differences, %zu elements (max err %.2g)", what, n, worst);
    free(fd);
}

static double dot(const double *r, const double *y, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += r[i] * y[i];
    return s;
}

// ---- matmul ---------------------------------------------------------------------------------

struct mm { int n, in, out; enum be_layout lay; double *x, *w, *b, *r; };

static double mm_loss(void *vc)
{
    struct mm *c = vc;
    double L = 0;
    for (int i = 0; i < c->n; i++)
        for (int j = 0; j < c->out; j++) {
            double y = c->b ? c->b[j] : 0;
            for (int k = 0; k < c->in; k++)
                y += c->x[i * c->in + k] *
                     (c->lay == BE_IN_OUT ? c->w[k * c->out + j] : c->w[j * c->in + k]);
            L += c->r[i * c->out + j] * y;
        }
    return L;
}

static void test_matmul_fd(int n, int in, int out, enum be_layout lay, bool bias)
{
    float *x = rnd(n * in, 1, 1), *w = rnd(in * out, 2, 1), *b = rnd(out, 3, 1), *r = rnd(n * out, 4, 1);
    float *dx0 = rnd(n * in, 5, 1), *dw0 = rnd(in * out, 6, 1), *db0 = rnd(out, 7, 1);
    float *dx = dup(dx0, n * in), *dw = dup(dw0, in * out), *db = dup(db0, out);
    be->matmul_backward(dx, dw, bias ? db : NULL, r, x, w, n, in, out, lay);
    struct mm c = {n, in, out, lay, dbl(x, n * in), dbl(w, in * out), bias ? dbl(b, out) : NULL, dbl(r, n * out)};
    char what[96];
    const char *ln = lay == BE_IN_OUT ? "in_out" : "out_in";
    snprintf(what, sizeof what, "matmul_backward %s%s dx", ln, bias ? "+bias" : "");
    check_grad(what, dx, dx0, c.x, n * in, mm_loss, &c);
    snprintf(what, sizeof what, "matmul_backward %s%s dw", ln, bias ? "+bias" : "");
    check_grad(what, dw, dw0, c.w, in * out, mm_loss, &c);
    if (bias) check_grad("matmul_backward dbias", db, db0, c.b, out, mm_loss, &c);
    else CHECK(memcmp(db, db0, out * sizeof *db) == 0, "matmul_backward without dbias leaves it alone");
    /* dx only / dw only: the NULL gradients are skipped, the others unchanged */
    float *dx2 = dup(dx0, n * in);
    be->matmul_backward(dx2, NULL, NULL, r, x, w, n, in, out, lay);
    CHECK(memcmp(dx2, dx, n * in * sizeof *dx) == 0, "matmul_backward %s dx alone == dx with dw", ln);
    free(x), free(w), free(b), free(r), free(dx0), free(dw0), free(db0), free(dx), free(dw), free(db), free(dx2);
    free(c.x), free(c.w), free(c.b), free(c.r);
}

/* Shapes over several GEMM tiles (so the fixed tiling is exercised) vs the products in double. */
static void test_matmul_big(int n, int in, int out, enum be_layout lay)
{
    float *x = rnd((size_t)n * in, 11, 1), *w = rnd((size_t)in * out, 12, 1), *dy = rnd((size_t)n * out, 13, 1);
    float *dx = calloc((size_t)n * in, 4), *dw = calloc((size_t)in * out, 4), *db = calloc(out, 4);
    be->matmul_backward(dx, dw, db, dy, x, w, n, in, out, lay);
    double ex = 0, ew = 0, eb = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < in; k++) {
            double s = 0;
            for (int j = 0; j < out; j++)
                s += (double)dy[(size_t)i * out + j] *
                     (lay == BE_IN_OUT ? w[(size_t)k * out + j] : w[(size_t)j * in + k]);
            ex = fmax(ex, fabs(s - dx[(size_t)i * in + k]));
        }
    for (int k = 0; k < in; k++)
        for (int j = 0; j < out; j++) {
            double s = 0;
            for (int i = 0; i < n; i++) s += (double)x[(size_t)i * in + k] * dy[(size_t)i * out + j];
            ew = fmax(ew, fabs(s - dw[lay == BE_IN_OUT ? (size_t)k * out + j : (size_t)j * in + k]));
        }
    for (int j = 0; j < out; j++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += dy[(size_t)i * out + j];
        eb = fmax(eb, fabs(s - db[j]));
    }
    /* sums of up to 520 products of [-1,1] values: fp32 error ~ sqrt(K)·|terms|·6e-8 << 1e-4 */
    CHECK(ex < 1e-4 && ew < 1e-4 && eb < 1e-4,
          "matmul_backward %s n=%d in=%d out=%d vs double products (dx %.2g dw %.2g db %.2g)",
          lay == BE_IN_OUT ? "in_out" : "out_in", n, in, out, ex, ew, eb);
    free(x), free(w), free(dy), free(dx), free(dw), free(db);
}

// ---- layernorm and pointwise ----------------------------------------------------------------

struct ln { int n, c; double eps, *x, *w, *b, *r; };

static double ln_loss(void *vc)
{
    struct ln *c = vc;
    double L = 0;
    for (int i = 0; i < c->n; i++) {
        const double *xi = c->x + i * c->c;
        double m = 0, v = 0;
        for (int j = 0; j < c->c; j++) m += xi[j];
        m /= c->c;
        for (int j = 0; j < c->c; j++) v += (xi[j] - m) * (xi[j] - m);
        v /= c->c;
        for (int j = 0; j < c->c; j++) {
            double y = (xi[j] - m) / sqrt(v + c->eps);
            if (c->w) y *= c->w[j];
            if (c->b) y += c->b[j];
            L += c->r[i * c->c + j] * y;
        }
    }
    return L;
}

/* variant 0: w and b; 1: w only (SEDD); 2: w given, only dx wanted; 3: no w, no b */
static void test_layernorm(int n, int C, int variant)
{
    static const char *names[] = {"w+b", "w only", "dx only", "no w"};
    float *x = rnd(n * C, 21, 2), *w = rnd(C, 22, 1), *b = rnd(C, 23, 1), *r = rnd(n * C, 24, 1);
    for (int j = 0; j < C; j++) w[j] += 1.5f; /* weights away from 0, like trained ones */
    float *dx0 = rnd(n * C, 25, 1), *dw0 = rnd(C, 26, 1), *db0 = rnd(C, 27, 1);
    float *dx = dup(dx0, n * C), *dw = dup(dw0, C), *db = dup(db0, C);
    bool has_w = variant != 3, has_b = variant == 0;
    bool want_dw = variant <= 1;
    be->layernorm_backward(dx, want_dw ? dw : NULL, has_b ? db : NULL, r, x, has_w ? w : NULL, n, C, 1e-5f);
    struct ln c = {n, C, (double)1e-5f, dbl(x, n * C), has_w ? dbl(w, C) : NULL, has_b ? dbl(b, C) : NULL, dbl(r, n * C)};
    char what[80];
    snprintf(what, sizeof what, "layernorm_backward (%s) n=%d c=%d dx", names[variant], n, C);
    check_grad(what, dx, dx0, c.x, n * C, ln_loss, &c);
    if (want_dw) {
        snprintf(what, sizeof what, "layernorm_backward (%s) dw", names[variant]);
        check_grad(what, dw, dw0, c.w, C, ln_loss, &c);
    } else {
        CHECK(memcmp(dw, dw0, C * sizeof *dw) == 0, "layernorm_backward (%s) leaves dw alone", names[variant]);
    }
    if (has_b) check_grad("layernorm_backward (w+b) db", db, db0, c.b, C, ln_loss, &c);
    else CHECK(memcmp(db, db0, C * sizeof *db) == 0, "layernorm_backward (%s) leaves db alone", names[variant]);
    free(x), free(w), free(b), free(r), free(dx0), free(dw0), free(db0), free(dx), free(dw), free(db);
    free(c.x), free(c.w), free(c.b), free(c.r);
}

struct pw { size_t n; bool gelu; double *x, *r; };

static double pw_loss(void *vc)
{
    struct pw *c = vc;
    double L = 0;
    for (size_t i = 0; i < c->n; i++) {
        double v = c->x[i];
        double y = c->gelu ? 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)))
                           : v / (1 + exp(-v));
        L += c->r[i] * y;
    }
    return L;
}

static void test_pointwise(bool gelu)
{
    size_t n = 53;
    float *x = rnd(n, 31, 5), *r = rnd(n, 32, 1), *dx0 = rnd(n, 33, 1), *dx = dup(dx0, n);
    (gelu ? be->gelu_tanh_backward : be->silu_backward)(dx, x, r, n);
    struct pw c = {n, gelu, dbl(x, n), dbl(r, n)};
    check_grad(gelu ? "gelu_tanh_backward on [-5,5]" : "silu_backward on [-5,5]", dx, dx0, c.x, n, pw_loss, &c);
    free(x), free(r), free(dx0), free(dx), free(c.x), free(c.r);
}

// ---- adaLN modulate and gated residual ------------------------------------------------------

struct ada { int B, T, C; size_t ms; double *x, *mod, *y, *r; };

/* modulate with shift = mod, scale = mod + C */
static double modulate_loss(void *vc)
{
    struct ada *c = vc;
    double L = 0;
    for (int b = 0; b < c->B; b++)
        for (int t = 0; t < c->T; t++)
            for (int j = 0; j < c->C; j++) {
                size_t o = ((size_t)b * c->T + t) * c->C + j;
                double y = c->x[o] * (1 + c->mod[b * c->ms + c->C + j]) + c->mod[b * c->ms + j];
                L += c->r[o] * y;
            }
    return L;
}

/* x_new = x + gate * y with gate = mod + 2C */
static double gated_loss(void *vc)
{
    struct ada *c = vc;
    double L = 0;
    for (int b = 0; b < c->B; b++)
        for (int t = 0; t < c->T; t++)
            for (int j = 0; j < c->C; j++) {
                size_t o = ((size_t)b * c->T + t) * c->C + j;
                L += c->r[o] * (c->x[o] + c->mod[b * c->ms + 2 * c->C + j] * c->y[o]);
            }
    return L;
}

static void test_adaln(int B, int T, int C)
{
    size_t N = (size_t)B * T * C, ms = 6 * (size_t)C, M = B * ms;
    float *x = rnd(N, 41, 1), *mod = rnd(M, 42, 1), *y = rnd(N, 43, 1), *r = rnd(N, 44, 1);
    float *dx0 = rnd(N, 45, 1), *dmod0 = rnd(M, 46, 1), *dy0 = rnd(N, 47, 1);
    float *dx = dup(dx0, N), *dmod = dup(dmod0, M), *dy = dup(dy0, N);
    struct ada c = {B, T, C, ms, dbl(x, N), dbl(mod, M), dbl(y, N), dbl(r, N)};
    be->modulate_backward(dx, dmod, dmod + C, r, x, mod + C, ms, B, T, C);
    check_grad("modulate_backward dx", dx, dx0, c.x, N, modulate_loss, &c);
    /* over the whole (B,6C) modulation: the other four chunks must get nothing */
    check_grad("modulate_backward dshift, dscale at stride 6C", dmod, dmod0, c.mod, M, modulate_loss, &c);
    memcpy(dmod, dmod0, M * sizeof *dmod);
    be->gated_add_backward(dmod + 2 * C, dy, mod + 2 * C, ms, r, y, B, T, C);
    check_grad("gated_add_backward dgate at stride 6C", dmod, dmod0, c.mod, M, gated_loss, &c);
    check_grad("gated_add_backward dy", dy, dy0, c.y, N, gated_loss, &c);
    free(x), free(mod), free(y), free(r), free(dx0), free(dmod0), free(dy0), free(dx), free(dmod), free(dy);
    free(c.x), free(c.mod), free(c.y), free(c.r);
}

// ---- embedding, rotary, kv_store ------------------------------------------------------------

struct emb { int n, T, c; const int32_t *ids; double *table, *pos, *r; };

static double embed_loss(void *vc)
{
    struct emb *c = vc;
    double L = 0;
    for (int i = 0; i < c->n; i++)
        for (int j = 0; j < c->c; j++)
            L += c->r[i * c->c + j] * (c->table[c->ids[i] * c->c + j] + c->pos[(i % c->T) * c->c + j]);
    return L;
}

static void test_embed(void)
{
    enum { V = 6, T = 4, NB = 3, N = NB * T, Cc = 7 };
    const int32_t ids[N] = {2, 0, 5, 2, 2, 3, 0, 1, 5, 5, 2, 4}; /* repeats, one row unused */
    float *table = rnd(V * Cc, 51, 1), *pos = rnd(T * Cc, 52, 1), *r = rnd(N * Cc, 53, 1);
    float *dt0 = rnd(V * Cc, 54, 1), *dp0 = rnd(T * Cc, 55, 1), *dt = dup(dt0, V * Cc), *dp = dup(dp0, T * Cc);
    be->embed_backward(dt, dp, ids, r, N, T, Cc);
    struct emb c = {N, T, Cc, ids, dbl(table, V * Cc), dbl(pos, T * Cc), dbl(r, N * Cc)};
    check_grad("embed_backward dtable (repeated ids)", dt, dt0, c.table, V * Cc, embed_loss, &c);
    check_grad("embed_backward dpos", dp, dp0, c.pos, T * Cc, embed_loss, &c);
    float *dt2 = dup(dt0, V * Cc);
    be->embed_backward(dt2, NULL, ids, r, N, T, Cc);
    CHECK(memcmp(dt2, dt, sizeof(float) * V * Cc) == 0, "embed_backward with dpos NULL: same dtable");
    free(table), free(pos), free(r), free(dt0), free(dp0), free(dt), free(dp), free(dt2);
    free(c.table), free(c.pos), free(c.r);
}

/* cos/sin (T,d) tables, both halves the same angle t·10000^(-2j/d) */
static void rotary_tables(float *cs, float *sn, int T, int d)
{
    for (int t = 0; t < T; t++)
        for (int j = 0; j < d; j++) {
            double th = t * pow(10000.0, -2.0 * (j % (d / 2)) / d);
            cs[t * d + j] = (float)cos(th), sn[t * d + j] = (float)sin(th);
        }
}

struct rot { int B, T, H, d; size_t stride, len; const float *cs, *sn; double *x, *r; };

/* rotary on the q part of a packed (B,T,3C) buffer; L over the whole buffer */
static double rotary_loss(void *vc)
{
    struct rot *c = vc;
    double L = dot(c->r, c->x, c->len);
    int half = c->d / 2;
    for (int b = 0; b < c->B; b++)
        for (int t = 0; t < c->T; t++)
            for (int h = 0; h < c->H; h++) {
                size_t o = ((size_t)b * c->T + t) * c->stride + (size_t)h * c->d;
                for (int j = 0; j < half; j++) {
                    double x1 = c->x[o + j], x2 = c->x[o + j + half];
                    double c1 = c->cs[t * c->d + j], s1 = c->sn[t * c->d + j];
                    double c2 = c->cs[t * c->d + j + half], s2 = c->sn[t * c->d + j + half];
                    L += c->r[o + j] * (x1 * c1 - x2 * s1 - x1) + c->r[o + j + half] * (x2 * c2 + x1 * s2 - x2);
                }
            }
    return L;
}

static void test_rotary(void)
{
    enum { B = 2, T = 5, H = 3, D = 6, C = H * D };
    size_t len = (size_t)B * T * 3 * C;
    float cs[T * D], sn[T * D];
    rotary_tables(cs, sn, T, D);
    float *x = rnd(len, 61, 1), *r = rnd(len, 62, 1), *g = dup(r, len);
    be->rotary_backward(g, 3 * C, cs, sn, B, T, H, D);
    struct rot c = {B, T, H, D, 3 * C, len, cs, sn, dbl(x, len), dbl(r, len)};
    check_grad("rotary_backward (q of packed qkv, row_stride 3C)", g, NULL, c.x, len, rotary_loss, &c);
    /* backward undoes forward (the rotation is orthogonal) */
    float *y = dup(x, len);
    be->rotary(y + C, 3 * C, cs, sn, B, T, H, D);
    be->rotary_backward(y + C, 3 * C, cs, sn, B, T, H, D);
    double worst = 0;
    for (size_t i = 0; i < len; i++) worst = fmax(worst, fabs((double)y[i] - x[i]));
    CHECK(worst < 1e-6, "rotary_backward inverts rotary on k of packed qkv (max %.2g)", worst);
    free(x), free(r), free(g), free(y), free(c.x), free(c.r);
}

struct kvs { int B, T, H, d; double *qkv, *rk, *rv; };

static double kv_loss(void *vc)
{
    struct kvs *c = vc;
    int C = c->H * c->d;
    double L = 0;
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->H; h++)
            for (int t = 0; t < c->T; t++)
                for (int e = 0; e < c->d; e++) {
                    size_t o = (((size_t)b * c->H + h) * c->T + t) * c->d + e;
                    const double *row = c->qkv + ((size_t)b * c->T + t) * 3 * C + h * c->d + e;
                    L += c->rk[o] * row[C] + c->rv[o] * row[2 * C];
                }
    return L;
}

static void test_kv_store(void)
{
    enum { B = 2, T = 3, H = 2, D = 5 };
    size_t len = (size_t)B * T * 3 * H * D, kn = (size_t)B * H * T * D;
    float *qkv = rnd(len, 71, 1), *rk = rnd(kn, 72, 1), *rv = rnd(kn, 73, 1);
    float *g0 = rnd(len, 74, 1), *g = dup(g0, len);
    be->kv_store_backward(g, rk, rv, B, T, H, D);
    struct kvs c = {B, T, H, D, dbl(qkv, len), dbl(rk, kn), dbl(rv, kn)};
    check_grad("kv_store_backward into dqkv", g, g0, c.qkv, len, kv_loss, &c);
    free(qkv), free(rk), free(rv), free(g0), free(g), free(c.qkv), free(c.rk), free(c.rv);
}

// ---- attention ------------------------------------------------------------------------------

struct att { int B, T, H, d; bool causal; double scale, *qkv, *k, *v, *r; };

/* out (B,T,C) in double; returns Σ r·out */
static double att_loss(void *vc)
{
    struct att *c = vc;
    int C = c->H * c->d, T = c->T;
    double L = 0, *p = malloc(T * sizeof *p);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->H; h++)
            for (int t = 0; t < T; t++) {
                const double *q = c->qkv + ((size_t)b * T + t) * 3 * C + h * c->d;
                const double *kh = c->k + ((size_t)b * c->H + h) * T * c->d;
                const double *vh = c->v + ((size_t)b * c->H + h) * T * c->d;
                int nv = c->causal ? t + 1 : T;
                double mx = -INFINITY, s = 0;
                for (int j = 0; j < nv; j++) {
                    double z = 0;
                    for (int e = 0; e < c->d; e++) z += q[e] * kh[j * c->d + e];
                    p[j] = z * c->scale;
                    mx = fmax(mx, p[j]);
                }
                for (int j = 0; j < nv; j++) s += (p[j] = exp(p[j] - mx));
                for (int e = 0; e < c->d; e++) {
                    double o = 0;
                    for (int j = 0; j < nv; j++) o += p[j] / s * vh[j * c->d + e];
                    L += c->r[((size_t)b * T + t) * C + h * c->d + e] * o;
                }
            }
    free(p);
    return L;
}

static void test_attention(int B, int T, int H, int d, bool causal)
{
    int C = H * d;
    size_t len = (size_t)B * T * 3 * C, kn = (size_t)B * H * T * d, on = (size_t)B * T * C;
    float scale = 1.0f / sqrtf((float)d);
    /* q, k of amplitude 2: peaked enough softmaxes that a wrong mask or term shows */
    float *qkv = rnd(len, 81, 2), *k = rnd(kn, 82, 2), *v = rnd(kn, 83, 1), *r = rnd(on, 84, 1);
    float *dqkv0 = rnd(len, 85, 1), *dk0 = rnd(kn, 86, 1), *dv0 = rnd(kn, 87, 1);
    float *dqkv = dup(dqkv0, len), *dk = dup(dk0, kn), *dv = dup(dv0, kn), *out = malloc(on * 4);
    struct att c = {B, T, H, d, causal, scale, dbl(qkv, len), dbl(k, kn), dbl(v, kn), dbl(r, on)};
    /* the reference forward is the op's forward: Σ r·out agrees */
    be->attention(out, qkv, 3 * C, k, v, B, T, T, T, H, d, causal ? 0 : -1, NULL, scale);
    double lf = 0;
    for (size_t i = 0; i < on; i++) lf += (double)r[i] * out[i];
    double lref = att_loss(&c);
    CHECK(fabs(lf - lref) < 1e-4, "attention %s B=%d T=%d H=%d d=%d: double reference == forward op (%.3g)",
          causal ? "causal" : "full", B, T, H, d, fabs(lf - lref));
    be->attention_backward(dqkv, dk, dv, r, qkv, 3 * C, k, v, B, T, H, d, causal, scale);
    char what[96];
    snprintf(what, sizeof what, "attention_backward %s T=%d H=%d d=%d dq in dqkv (q_stride 3C)",
             causal ? "causal" : "full", T, H, d);
    check_grad(what, dqkv, dqkv0, c.qkv, len, att_loss, &c);
    snprintf(what, sizeof what, "attention_backward %s T=%d dk", causal ? "causal" : "full", T);
    check_grad(what, dk, dk0, c.k, kn, att_loss, &c);
    snprintf(what, sizeof what, "attention_backward %s T=%d dv", causal ? "causal" : "full", T);
    check_grad(what, dv, dv0, c.v, kn, att_loss, &c);
    free(qkv), free(k), free(v), free(r), free(dqkv0), free(dk0), free(dv0), free(dqkv), free(dk), free(dv), free(out);
    free(c.qkv), free(c.k), free(c.v), free(c.r);
}

// ---- cross-entropy --------------------------------------------------------------------------

struct ce { int n, c; const int32_t *tg; double dscale, *x; };

static double ce_row(const double *x, int c, int tg)
{
    double mx = -INFINITY, s = 0;
    for (int j = 0; j < c; j++) mx = fmax(mx, x[j]);
    for (int j = 0; j < c; j++) s += exp(x[j] - mx);
    return log(s) + mx - x[tg];
}

static double ce_loss(void *vc)
{
    struct ce *c = vc;
    double L = 0;
    for (int i = 0; i < c->n; i++)
        if (c->tg[i] >= 0) L += c->dscale * ce_row(c->x + (size_t)i * c->c, c->c, c->tg[i]);
    return L;
}

static void test_cross_entropy(int C)
{
    enum { N = 5 };
    const int32_t tg[N] = {3, -1, 0, C - 1, C / 2};
    size_t len = (size_t)N * C;
    float *x = rnd(len, 91, 4), *dx = malloc(len * 4), *al = dup(x, len);
    double loss[N], loss2[N];
    float dscale = 1.0f / 4; /* the mean over the 4 counted rows */
    be->cross_entropy(loss, dx, x, tg, N, C, dscale);
    struct ce c = {N, C, tg, dscale, dbl(x, len)};
    double worst = 0;
    bool ok = true;
    for (int i = 0; i < N; i++) {
        double ref = tg[i] < 0 ? 0 : ce_row(c.x + (size_t)i * C, C, tg[i]);
        worst = fmax(worst, fabs(loss[i] - ref));
        ok = ok && fabs(loss[i] - ref) <= 1e-5 * (1 + ref); /* fp32 exp terms, double sums */
    }
    CHECK(ok, "cross_entropy c=%d loss vs double, an ignored row (max %.2g)", C, worst);
    check_grad("cross_entropy dx (ignored row all 0)", dx, NULL, c.x, len, ce_loss, &c);
    be->cross_entropy(loss2, al, al, tg, N, C, dscale);
    CHECK(memcmp(al, dx, len * 4) == 0 && memcmp(loss, loss2, sizeof loss) == 0,
          "cross_entropy with dx aliasing x: same bits");
    be->cross_entropy(loss2, NULL, x, tg, N, C, dscale);
    CHECK(memcmp(loss, loss2, sizeof loss) == 0, "cross_entropy with dx NULL: same losses");
    free(x), free(dx), free(al), free(c.x);
}

// ---- optimiser ------------------------------------------------------------------------------

static void test_optimiser(void)
{
    enum { N = 70 };
    float *p = rnd(N, 101, 1), *m = calloc(N, 4), *v = calloc(N, 4);
    double pr[N], mr[N] = {0}, vr[N] = {0};
    for (int i = 0; i < N; i++) pr[i] = p[i];
    const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
    for (int step = 1; step <= 3; step++) {
        float *g = rnd(N, 110 + step, 1);
        be->adamw(p, g, m, v, N, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, step);
        for (int i = 0; i < N; i++) { /* torch.optim.AdamW, by hand */
            double b1f = (float)b1, b2f = (float)b2, lrf = (float)lr, wdf = (float)wd;
            pr[i] *= 1 - lrf * wdf;
            mr[i] = b1f * mr[i] + (1 - b1f) * g[i];
            vr[i] = b2f * vr[i] + (1 - b2f) * g[i] * g[i];
            double mh = mr[i] / (1 - pow(b1f, step)), vh = vr[i] / (1 - pow(b2f, step));
            pr[i] -= lrf * mh / (sqrt(vh) + (float)eps);
        }
        free(g);
    }
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(p[i] - pr[i]));
    /* p ~ 1 and steps ~ lr: fp32 rounding of a few operations ~ 1e-7 */
    CHECK(worst < 1e-6, "adamw: 3 steps with weight decay vs the PyTorch formula in double (max %.2g)", worst);

    float *e = rnd(N, 120, 1), *q = rnd(N, 121, 1);
    double er[N];
    for (int i = 0; i < N; i++) er[i] = 0.999 * e[i] + (1 - 0.999) * q[i];
    be->ema(e, q, N, 0.999f);
    worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(e[i] - er[i]));
    CHECK(worst < 1e-6, "ema decay 0.999 vs double (max %.2g)", worst);

    size_t n = 100003; /* several sumsq tiles */
    float *x = rnd(n, 130, 1);
    double ref = 0;
    for (size_t i = 0; i < n; i++) ref += (double)x[i] * x[i];
    double got = be->sumsq(x, n);
    CHECK(fabs(got - ref) <= 1e-12 * ref, "sumsq of %zu values vs double (%.17g vs %.17g)", n, got, ref);
    CHECK(be->sumsq(x, 0) == 0, "sumsq of nothing is 0");
    float x3 = x[3];
    be->scale(x, -0.5f, n);
    CHECK(x[3] == -0.5f * x3 && be->sumsq(x, n) == 0.25 * got, "scale by -0.5 (exact)");
    free(p), free(m), free(v), free(e), free(q), free(x);
}

// ---- thread-count independence --------------------------------------------------------------

/* Every gradient op on shapes over several tiles/blocks; returns one buffer with all outputs. */
static float *run_all(int threads, size_t *len)
{
    backend_cpu_set_threads(threads);
    enum { n = 300, in = 200, out = 530, Bq = 2, Tq = 40, Hq = 3, Dq = 16, Cq = Hq * Dq, V = 3001 };
    enum { LB = 4, LT = 100, LC = 210 };
    size_t sz_mm = 2 * ((size_t)n * in + in * out + out), sz_ln = (size_t)LB * LT * LC + 2 * LC;
    size_t sz_ada = 2 * ((size_t)LB * LT * LC) + 2 * (size_t)LB * 6 * LC;
    size_t sz_att = (size_t)Bq * Tq * 3 * Cq + 2 * (size_t)Bq * Hq * Tq * Dq;
    size_t sz_ce = (size_t)8 * V + 2 * 8, sz_emb = (size_t)50 * LC + LT * LC;
    *len = sz_mm + sz_ln + sz_ada + sz_att + sz_ce + sz_emb + 2;
    float *o = calloc(*len, 4), *p = o;
    float *x = rnd((size_t)n * in, 201, 1), *w = rnd((size_t)in * out, 202, 1), *dy = rnd((size_t)n * out, 203, 1);
    for (int lay = 0; lay < 2; lay++, p += (size_t)n * in + in * out + out)
        be->matmul_backward(p, p + n * in, p + n * in + in * out, dy, x, w, n, in, out, lay ? BE_OUT_IN : BE_IN_OUT);
    size_t N = (size_t)LB * LT * LC;
    float *lx = rnd(N, 204, 1), *lw = rnd(LC, 205, 1), *ldy = rnd(N, 206, 1), *mod = rnd((size_t)LB * 6 * LC, 207, 1);
    be->layernorm_backward(p, p + N, p + N + LC, ldy, lx, lw, LB * LT, LC, 1e-5f);
    p += sz_ln;
    be->modulate_backward(p, p + N, p + N + LC, ldy, lx, mod + LC, 6 * LC, LB, LT, LC);
    be->gated_add_backward(p + N + 2 * LC, p + N + 6 * LB * LC, mod + 2 * LC, 6 * LC, ldy, lx, LB, LT, LC);
    p += sz_ada;
    float *qkv = rnd((size_t)Bq * Tq * 3 * Cq, 208, 2), *dout = rnd((size_t)Bq * Tq * Cq, 209, 1);
    size_t kn = (size_t)Bq * Hq * Tq * Dq;
    be->attention_backward(p, p + Bq * Tq * 3 * Cq, p + Bq * Tq * 3 * Cq + kn, dout, qkv, 3 * Cq, lx, ldy, Bq, Tq, Hq,
                           Dq, true, 0.25f);
    p += sz_att;
    float *logits = rnd((size_t)8 * V, 210, 4);
    int32_t tg[8] = {1, 2, -1, 3000, 7, 0, 11, 2999};
    double loss[8];
    be->cross_entropy(loss, p, logits, tg, 8, V, 0.125f);
    memcpy(p + (size_t)8 * V, loss, sizeof loss);
    p += sz_ce;
    int32_t ids[LB * LT];
    for (int i = 0; i < LB * LT; i++) ids[i] = (i * 7) % 50;
    be->embed_backward(p, p + 50 * LC, ids, ldy, LB * LT, LT, LC);
    p += sz_emb;
    double s = be->sumsq(dy, (size_t)n * out);
    memcpy(p, &s, sizeof s);
    free(x), free(w), free(dy), free(lx), free(lw), free(ldy), free(mod), free(qkv), free(dout), free(logits);
    return o;
}

static void test_threads(void)
{
    int saved = omp_get_max_threads();
    size_t n1, n2;
    float *a = run_all(1, &n1), *b = run_all(2, &n2);
    CHECK(n1 == n2 && memcmp(a, b, n1 * 4) == 0, "every backward op: same bits with 1 and 2 threads (%zu values)", n1);
    backend_cpu_set_threads(saved);
    free(a), free(b);
}

int main(void)
{
    for (int lay = 0; lay < 2; lay++)
        for (int bias = 0; bias < 2; bias++) test_matmul_fd(7, 5, 9, lay ? BE_OUT_IN : BE_IN_OUT, bias);
    test_matmul_big(300, 131, 520, BE_IN_OUT);
    test_matmul_big(300, 131, 520, BE_OUT_IN);
    for (int variant = 0; variant < 4; variant++) test_layernorm(4, 13, variant);
    test_pointwise(true);
    test_pointwise(false);
    test_adaln(2, 3, 5);
    test_embed();
    test_rotary();
    test_kv_store();
    test_attention(2, 5, 2, 4, true);
    test_attention(2, 9, 3, 6, true);
    test_attention(1, 7, 3, 4, false);
    test_attention(2, 8, 2, 6, false);
    test_cross_entropy(11);
    test_cross_entropy(2100); /* over the 1024-column summing blocks */
    test_optimiser();
    test_threads();
    return tap_done();
}
