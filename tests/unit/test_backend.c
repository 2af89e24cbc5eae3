/* test_backend: every op of the CPU backend against a straightforward double-precision loop on
 * small random inputs, at two shapes each (one not a multiple of any block or vector width).
 * Tolerances: atol + rtol*|ref| with the reason beside each; fp32 ops on O(1) inputs with sums
 * of at most ~100 terms land near 1e-6, so 1e-5/1e-4 bounds catch any wrong index or formula
 * (which give O(1) errors) without flaking on summation order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/backend.h"
#include "philox.h"
#include "tap.h"

static const backend *be = &backend_cpu;

static void fill(float *x, size_t n, uint32_t salt)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t w[4];
        philox_draw(42, salt, 0, (uint32_t)i, 0, w);
        x[i] = 2.0f * philox_u01_f32(w[0]) - 1.0f;
    }
}

/* max |got - ref| / (atol + rtol |ref|) <= 1 */
static bool close_to(const float *got, const double *ref, size_t n, double atol, double rtol,
                     double *worst)
{
    *worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - ref[i]);
        if (!(d <= *worst)) *worst = d;
        if (!(d <= atol + rtol * fabs(ref[i]))) return false;
    }
    return true;
}

static void test_matmul(int n, int in, int out)
{
    float *x = malloc(sizeof(float) * n * in), *w = malloc(sizeof(float) * in * out),
          *wt = malloc(sizeof(float) * in * out), *b = malloc(sizeof(float) * out),
          *y = malloc(sizeof(float) * n * out), *y0 = malloc(sizeof(float) * n * out);
    double *ref = malloc(sizeof(double) * n * out), worst;
    fill(x, (size_t)n * in, 1), fill(w, (size_t)in * out, 2), fill(b, out, 3), fill(y0, (size_t)n * out, 4);
    for (int k = 0; k < in; k++)
        for (int j = 0; j < out; j++) wt[(size_t)j * in + k] = w[(size_t)k * out + j];
    for (int acc = 0; acc < 2; acc++) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < out; j++) {
                double s = b[j] + (acc ? y0[(size_t)i * out + j] : 0);
                for (int k = 0; k < in; k++) s += (double)x[(size_t)i * in + k] * w[(size_t)k * out + j];
                ref[(size_t)i * out + j] = s;
            }
        /* sums of `in` products of values in [-1,1]: fp32 error ~ in * 6e-8 */
        double atol = 1e-6 * in;
        for (int rows = 0; rows < 2; rows++)
            for (int lay = 0; lay < 2; lay++) {
                memcpy(y, y0, sizeof(float) * n * out);
                (rows ? be->matmul_rows : be->matmul)(y, x, lay ? wt : w, b, n, in, out,
                                                      lay ? BE_OUT_IN : BE_IN_OUT, acc);
                CHECK(close_to(y, ref, (size_t)n * out, atol, 0, &worst),
                      "%s %s n=%d in=%d out=%d accumulate=%d (max %.2g)",
                      rows ? "matmul_rows" : "matmul", lay ? "out_in" : "in_out", n, in, out, acc, worst);
            }
    }
    /* matmul_rows is batch-invariant: row 0 alone gives the same bits as within the batch */
    be->matmul_rows(y, x, w, b, n, in, out, BE_IN_OUT, false);
    be->matmul_rows(y0, x, w, b, 1, in, out, BE_IN_OUT, false);
    CHECK(memcmp(y, y0, sizeof(float) * out) == 0, "matmul_rows in_out: row 0 alone == in a batch of %d", n);
    be->matmul_rows(y, x, wt, b, n, in, out, BE_OUT_IN, false);
    be->matmul_rows(y0, x, wt, b, 1, in, out, BE_OUT_IN, false);
    CHECK(memcmp(y, y0, sizeof(float) * out) == 0, "matmul_rows out_in: row 0 alone == in a batch of %d", n);
    free(x), free(w), free(wt), free(b), free(y), free(y0), free(ref);
}

static void test_pointwise(int n, int c)
{
    size_t N = (size_t)n * c;
    float *x = malloc(N * 4), *y = malloc(N * 4), *w = malloc(c * 4), *b = malloc(c * 4),
          *a2 = malloc(N * 4);
    double *ref = malloc(N * 8), worst;
    fill(x, N, 10), fill(w, c, 11), fill(b, c, 12), fill(a2, N, 13);
    for (int variant = 0; variant < 2; variant++) {
        for (int i = 0; i < n; i++) {
            double m = 0, v = 0;
            for (int j = 0; j < c; j++) m += x[(size_t)i * c + j];
            m /= c;
            for (int j = 0; j < c; j++) v += pow(x[(size_t)i * c + j] - m, 2);
            v /= c;
            for (int j = 0; j < c; j++)
                ref[(size_t)i * c + j] = (x[(size_t)i * c + j] - m) / sqrt(v + 1e-5) * w[j] + (variant ? 0 : b[j]);
        }
        be->layernorm(y, x, w, variant ? NULL : b, n, c, 1e-5f);
        /* normalised values are O(3): fp32 rounding of (x-m)*rstd*w + b ~ 1e-6 */
        CHECK(close_to(y, ref, N, 1e-5, 1e-5, &worst), "layernorm %s n=%d c=%d (max %.2g)",
              variant ? "weight-only" : "with bias", n, c, worst);
    }
    for (size_t i = 0; i < N; i++) {
        double v = 4 * x[i]; /* cover [-4,4], the non-linear range */
        ref[i] = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
        y[i] = (float)v;
    }
    be->gelu_tanh(y, y, N);
    /* expf-based identity vs tanh: a few ulp of values up to 4 */
    CHECK(close_to(y, ref, N, 1e-6, 1e-6, &worst), "gelu_tanh in place, %zu values (max %.2g)", N, worst);
    for (size_t i = 0; i < N; i++) ref[i] = 4 * x[i] / (1 + exp(-4.0 * x[i])), y[i] = 4 * x[i];
    be->silu(y, y, N);
    CHECK(close_to(y, ref, N, 1e-6, 1e-6, &worst), "silu (max %.2g)", worst);
    for (size_t i = 0; i < N; i++) ref[i] = (double)x[i] + a2[i];
    be->add(y, x, a2, N);
    CHECK(close_to(y, ref, N, 0, 1e-7, &worst), "add (exact up to one rounding)");
    /* adaLN: B = n rows of T = 1..; use T = 3 and B = n, C = c with a (B, 6C) modulation */
    int B = n, T = 3;
    float *xx = malloc((size_t)B * T * c * 4), *yy = malloc((size_t)B * T * c * 4),
          *mod = malloc((size_t)B * 6 * c * 4);
    double *rr = malloc((size_t)B * T * c * 8);
    fill(xx, (size_t)B * T * c, 14), fill(mod, (size_t)B * 6 * c, 15), fill(yy, (size_t)B * T * c, 16);
    for (int bb = 0; bb < B; bb++)
        for (int t = 0; t < T; t++)
            for (int j = 0; j < c; j++) {
                size_t o = ((size_t)bb * T + t) * c + j;
                rr[o] = xx[o] * (1.0 + mod[(size_t)bb * 6 * c + c + j]) + mod[(size_t)bb * 6 * c + j];
            }
    float *zz = malloc((size_t)B * T * c * 4);
    be->modulate(zz, xx, mod, mod + c, 6 * (size_t)c, B, T, c);
    CHECK(close_to(zz, rr, (size_t)B * T * c, 1e-6, 1e-6, &worst), "modulate B=%d T=%d C=%d", B, T, c);
    for (int bb = 0; bb < B; bb++)
        for (int t = 0; t < T; t++)
            for (int j = 0; j < c; j++) {
                size_t o = ((size_t)bb * T + t) * c + j;
                rr[o] = xx[o] + (double)mod[(size_t)bb * 6 * c + 2 * c + j] * yy[o];
            }
    be->gated_add(xx, mod + 2 * c, 6 * (size_t)c, yy, B, T, c);
    CHECK(close_to(xx, rr, (size_t)B * T * c, 1e-6, 1e-6, &worst), "gated_add B=%d T=%d C=%d", B, T, c);
    /* softmax / log_softmax */
    for (int i = 0; i < n; i++) {
        double mx = -INFINITY, s = 0;
        for (int j = 0; j < c; j++) mx = fmax(mx, 8.0 * x[(size_t)i * c + j]);
        for (int j = 0; j < c; j++) s += exp(8.0 * x[(size_t)i * c + j] - mx);
        for (int j = 0; j < c; j++) ref[(size_t)i * c + j] = 8.0 * x[(size_t)i * c + j] - mx - log(s);
    }
    for (size_t i = 0; i < N; i++) y[i] = 8 * x[i];
    be->log_softmax(y, y, n, c);
    CHECK(close_to(y, ref, N, 1e-5, 1e-6, &worst), "log_softmax n=%d c=%d (max %.2g)", n, c, worst);
    for (size_t i = 0; i < N; i++) ref[i] = exp(ref[i]), y[i] = 8 * x[i];
    be->softmax(y, y, n, c);
    CHECK(close_to(y, ref, N, 1e-7, 1e-5, &worst), "softmax n=%d c=%d (max %.2g)", n, c, worst);
    {
        int32_t *tg = malloc(n * sizeof *tg);
        double *lp = malloc(n * sizeof *lp), dmax = 0;
        for (int i = 0; i < n; i++) tg[i] = (i * 31) % c;
        for (size_t i = 0; i < N; i++) y[i] = 8 * x[i];
        be->log_softmax_pick(lp, y, tg, n, c);
        for (int i = 0; i < n; i++) dmax = fmax(dmax, fabs(lp[i] - log(ref[(size_t)i * c + tg[i]])));
        /* float exponentials summed in double: ~1e-7 relative on the log-sum */
        CHECK(dmax < 1e-5, "log_softmax_pick n=%d c=%d (max %.2g)", n, c, dmax);
        free(tg), free(lp);
    }
    free(x), free(y), free(w), free(b), free(a2), free(ref), free(xx), free(yy), free(mod), free(rr), free(zz);
}

/* embed, rotary, kv_store and attention (causal with a past, key mask, non-causal) */
static void test_attention(int B, int T, int H, int d, int past)
{
    int C = H * d, Tk = past + T, cap = Tk + 3, V = 11;
    size_t NT = (size_t)B * T;
    float *qkv = malloc(NT * 3 * C * 4), *k = calloc((size_t)B * H * cap * d, 4),
          *v = calloc((size_t)B * H * cap * d, 4), *out = malloc(NT * C * 4),
          *pastq = malloc((size_t)B * past * 3 * C * 4 + 4);
    double *ref = malloc(NT * C * 8), worst;
    uint8_t *mask = malloc((size_t)B * Tk);
    fill(qkv, NT * 3 * C, 20), fill(pastq, (size_t)B * past * 3 * C, 21);
    be->kv_store(k, v, pastq, B, past, H, d, 0, cap);
    be->kv_store(k, v, qkv, B, T, H, d, past, cap);
    for (size_t i = 0; i < (size_t)B * Tk; i++) mask[i] = (i % 5) != 3;
    for (int variant = 0; variant < 3; variant++) { /* causal, causal + mask, non-causal */
        const uint8_t *km = variant == 1 ? mask : NULL;
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int t = 0; t < T; t++) {
                    int n = variant == 2 ? Tk : past + t + 1;
                    double s[256], mx = -INFINITY, sum = 0;
                    const float *q = qkv + ((size_t)b * T + t) * 3 * C + h * d;
                    for (int j = 0; j < n; j++) {
                        const float *kr = j < past ? pastq + ((size_t)b * past + j) * 3 * C + C + h * d
                                                   : qkv + ((size_t)b * T + j - past) * 3 * C + C + h * d;
                        s[j] = 0;
                        for (int e = 0; e < d; e++) s[j] += (double)q[e] * kr[e];
                        s[j] /= sqrt(d);
                        if ((!km || km[b * Tk + j]) && s[j] > mx) mx = s[j];
                    }
                    for (int j = 0; j < n; j++) sum += s[j] = (!km || km[b * Tk + j]) ? exp(s[j] - mx) : 0;
                    for (int e = 0; e < d; e++) {
                        double o = 0;
                        for (int j = 0; j < n; j++) {
                            const float *vr = j < past ? pastq + ((size_t)b * past + j) * 3 * C + 2 * C + h * d
                                                       : qkv + ((size_t)b * T + j - past) * 3 * C + 2 * C + h * d;
                            o += s[j] * vr[e];
                        }
                        ref[((size_t)b * T + t) * C + h * d + e] = mx == -INFINITY ? 0 : o / sum;
                    }
                }
        be->attention(out, qkv, 3 * (size_t)C, k, v, B, T, Tk, cap, H, d, variant == 2 ? -1 : past, km,
                      1.0f / sqrtf((float)d));
        /* convex combinations of values in [-1,1]; scores ~ sqrt(d)/3: fp32 error ~1e-6 */
        CHECK(close_to(out, ref, NT * C, 2e-6 * sqrt(Tk), 0, &worst),
              "attention %s B=%d T=%d past=%d H=%d d=%d (max %.2g)",
              variant == 0 ? "causal" : variant == 1 ? "causal+mask" : "non-causal", B, T, past, H, d, worst);
    }
    /* rotary on q of the packed rows, against the formula with double angles */
    float *cs = malloc((size_t)T * d * 4), *sn = malloc((size_t)T * d * 4), *x = malloc(NT * 3 * C * 4);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < d; j++) {
            double th = t * pow(10000.0, -2.0 * (j % (d / 2)) / d);
            cs[t * d + j] = (float)cos(th), sn[t * d + j] = (float)sin(th);
        }
    memcpy(x, qkv, NT * 3 * C * 4);
    be->rotary(x, 3 * (size_t)C, cs, sn, B, T, H, d);
    for (size_t r = 0; r < NT; r++) {
        int t = (int)(r % T);
        for (int h = 0; h < H; h++)
            for (int j = 0; j < d; j++) {
                const float *u = qkv + r * 3 * C + h * d;
                int hf = d / 2;
                double val = j < hf ? u[j] * (double)cs[t * d + j] - u[j + hf] * (double)sn[t * d + j]
                                    : u[j] * (double)cs[t * d + j] + u[j - hf] * (double)sn[t * d + j];
                ref[r * C + h * d + j] = val;
                out[r * C + h * d + j] = x[r * 3 * C + h * d + j];
            }
    }
    CHECK(close_to(out, ref, NT * C, 1e-6, 0, &worst), "rotary B=%d T=%d H=%d d=%d (max %.2g)", B, T, H, d, worst);
    CHECK(memcmp(x + C, qkv + C, 2 * C * 4) == 0, "rotary leaves k and v alone");
    /* embed: wte[ids] + wpe[past + t] */
    float *wte = malloc((size_t)V * C * 4), *wpe = malloc((size_t)(Tk + 1) * C * 4);
    int32_t *ids = malloc(NT * 4);
    fill(wte, (size_t)V * C, 22), fill(wpe, (size_t)(Tk + 1) * C, 23);
    for (size_t i = 0; i < NT; i++) ids[i] = (int32_t)((i * 7) % V);
    be->embed(out, wte, wpe, ids, (int)NT, T, past, C);
    for (size_t i = 0; i < NT; i++)
        for (int j = 0; j < C; j++)
            ref[i * C + j] = (double)wte[(size_t)ids[i] * C + j] + wpe[(size_t)(past + i % T) * C + j];
    CHECK(close_to(out, ref, NT * C, 0, 1e-7, &worst), "embed with positions from %d", past);
    free(qkv), free(k), free(v), free(out), free(pastq), free(ref), free(mask), free(cs), free(sn);
    free(x), free(wte), free(wpe), free(ids);
}

int main(void)
{
    test_matmul(5, 37, 70);
    test_matmul(17, 64, 300);
    test_pointwise(3, 64);
    test_pointwise(7, 129);
    test_attention(2, 5, 3, 8, 4);   /* per-query loop (decode path) */
    test_attention(2, 19, 2, 16, 7); /* GEMM path */
    test_attention(1, 200, 2, 16, 40); /* GEMM path, two query blocks (the second partial) */
    test_attention(1, 1, 4, 16, 30); /* one step */
    void *p = be->alloc(100);
    CHECK(p && (uintptr_t)p % 64 == 0, "alloc is 64-byte aligned");
    float h[4] = {1, 2, 3, 4}, dv[4], back[4];
    err_t e;
    CHECK(be->to_device(dv, h, sizeof h, &e) == 0 && be->to_host(back, dv, sizeof h, &e) == 0 &&
              memcmp(back, h, sizeof h) == 0, "to_device/to_host round trip");
    float c[4] = {0, 0, 0, 0};
    be->copy(c + 1, h, 2 * sizeof *h);
    CHECK(c[0] == 0 && c[1] == 1 && c[2] == 2 && c[3] == 0, "copy moves exactly the bytes asked");
    be->free(p);
    be->free(NULL);
    return tap_done();
}
