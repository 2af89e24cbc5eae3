/* backend_cpu_train: the training ops of the CPU backend — the backward of every forward op a
 * model trains through, cross-entropy, and the optimiser (AdamW, EMA, gradient norm). Contracts
 * in backend.h: backward ops ADD into their gradients and skip NULL ones.
 *
 * Reproducibility: no result depends on the thread count. Matrix products go to single-threaded
 * sgemm calls on FIXED tiles of the output (GEMM_TILE square), one tile per OpenMP iteration, so
 * a reduction (over n for dw, over `out` for dx) is never split across threads; every other
 * reduction over rows (dw of layernorm, dbias, dshift ...) runs over fixed column blocks, each
 * summing its rows in index order; attention is one (b,h) per iteration. Sums of many terms are
 * accumulated in double. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "backend.h"
#include "backend_cpu_internal.h"

/* Output tile (rows and columns) of one sgemm call in gemm_add_tiled. */
enum { GEMM_TILE = 128 };

/* Column block of the row reductions (layernorm's dw/db, dbias, modulate, embedding). */
enum { COL_BLOCK = 64 };

/* Elements per partial sum of sumsq. */
enum { SUMSQ_TILE = 16384 };

/* Below this much work (elements) an elementwise op stays on one thread. */
enum { PAR_MIN = 65536 };

// ---- linear algebra -------------------------------------------------------------------------

/* c (m,n) += op(a) · op(b), op(a) (m,k), op(b) (k,n), op = transpose when ta / tb: one
 * single-threaded sgemm per GEMM_TILE x GEMM_TILE tile of c, tiles spread over the OpenMP
 * threads. The tiles are fixed, so each element is computed by the same call whatever the
 * thread count. */
static void gemm_add_tiled(bool ta, bool tb, int m, int n, int k, const float *a, int lda,
                           const float *b, int ldb, float *c, int ldc)
{
    int mt = (m + GEMM_TILE - 1) / GEMM_TILE, nt = (n + GEMM_TILE - 1) / GEMM_TILE;
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if ((double)m * n * k > 4e6)
    for (int ti = 0; ti < mt; ti++)
        for (int tj = 0; tj < nt; tj++) {
            int i0 = ti * GEMM_TILE, j0 = tj * GEMM_TILE;
            int mi = m - i0 < GEMM_TILE ? m - i0 : GEMM_TILE;
            int nj = n - j0 < GEMM_TILE ? n - j0 : GEMM_TILE;
            const float *ai = ta ? a + i0 : a + (size_t)i0 * lda;
            const float *bj = tb ? b + (size_t)j0 * ldb : b + j0;
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                        tb ? CblasTrans : CblasNoTrans, mi, nj, k, 1.0f, ai, lda, bj, ldb, 1.0f,
                        c + (size_t)i0 * ldc + j0, ldc);
        }
}

void cpu_matmul_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x,
                         const float *w, int n, int in, int out, enum be_layout layout)
{
    if (n <= 0 || in <= 0 || out <= 0) return;
    if (dx) { /* dx (n,in) += dy (n,out) · Wᵀ; Wᵀ is (out,in): W itself for BE_OUT_IN */
        if (layout == BE_OUT_IN) gemm_add_tiled(false, false, n, in, out, dy, out, w, in, dx, in);
        else gemm_add_tiled(false, true, n, in, out, dy, out, w, out, dx, in);
    }
    if (dw) {
        if (layout == BE_IN_OUT) /* dw (in,out) += xᵀ · dy */
            gemm_add_tiled(true, false, in, out, n, x, in, dy, out, dw, out);
        else /* dw (out,in) += dyᵀ · x */
            gemm_add_tiled(true, false, out, in, n, dy, out, x, in, dw, in);
    }
    if (dbias) {
        int nb = (out + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)n * out > PAR_MIN)
        for (int blk = 0; blk < nb; blk++) {
            int j0 = blk * COL_BLOCK, j1 = j0 + COL_BLOCK < out ? j0 + COL_BLOCK : out;
            double acc[COL_BLOCK] = {0};
            for (int i = 0; i < n; i++) {
                const float *dyi = dy + (size_t)i * out;
                for (int j = j0; j < j1; j++) acc[j - j0] += dyi[j];
            }
            for (int j = j0; j < j1; j++) dbias[j] += (float)acc[j - j0];
        }
    }
}

// ---- normalisation and pointwise ------------------------------------------------------------

/* Mean and 1/std of row x (c), as the forward layernorm computes them (double sums, biased). */
static void row_stats(const float *x, int c, float eps, float *mean, float *rstd)
{
    double sum = 0, sq = 0;
    for (int j = 0; j < c; j++) sum += x[j];
    double m = sum / c;
    for (int j = 0; j < c; j++) {
        double d = x[j] - m;
        sq += d * d;
    }
    *mean = (float)m;
    *rstd = (float)(1.0 / sqrt(sq / c + eps));
}

/* With xhat = (x - mean) rstd and g = dy·w (dy without w):
 * dx = rstd (g - mean(g) - xhat mean(g xhat)); dw += Σ_rows dy xhat; db += Σ_rows dy. */
void cpu_layernorm_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                            const float *w, int n, int c, float eps)
{
    if (n <= 0 || c <= 0) return;
    if (!w) dw = NULL;
    float *stats = malloc((size_t)n * 2 * sizeof *stats); /* mean, rstd per row */
    if (!stats) abort(); /* ops cannot fail (backend.h); a caller workspace would remove this */
#pragma omp parallel for schedule(static) if (n > 4)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * c, *dyi = dy + (size_t)i * c;
        float m, rs;
        row_stats(xi, c, eps, &m, &rs);
        stats[2 * i] = m, stats[2 * i + 1] = rs;
        if (!dx) continue;
        double sg = 0, sgx = 0;
        for (int j = 0; j < c; j++) {
            float g = w ? dyi[j] * w[j] : dyi[j];
            sg += g;
            sgx += (double)g * ((xi[j] - m) * rs);
        }
        float mg = (float)(sg / c), mgx = (float)(sgx / c);
        float *dxi = dx + (size_t)i * c;
        for (int j = 0; j < c; j++) {
            float g = w ? dyi[j] * w[j] : dyi[j];
            float xhat = (xi[j] - m) * rs;
            dxi[j] += rs * (g - mg - xhat * mgx);
        }
    }
    if (dw || db) {
        int nb = (c + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)n * c > PAR_MIN)
        for (int blk = 0; blk < nb; blk++) {
            int j0 = blk * COL_BLOCK, j1 = j0 + COL_BLOCK < c ? j0 + COL_BLOCK : c;
            double aw[COL_BLOCK] = {0}, ab[COL_BLOCK] = {0};
            for (int i = 0; i < n; i++) {
                const float *xi = x + (size_t)i * c, *dyi = dy + (size_t)i * c;
                float m = stats[2 * i], rs = stats[2 * i + 1];
                for (int j = j0; j < j1; j++) {
                    aw[j - j0] += (double)dyi[j] * ((xi[j] - m) * rs);
                    ab[j - j0] += dyi[j];
                }
            }
            for (int j = j0; j < j1; j++) {
                if (dw) dw[j] += (float)aw[j - j0];
                if (db) db[j] += (float)ab[j - j0];
            }
        }
    }
    free(stats);
}

/* gelu_tanh(x) = x s with s = sigmoid(2u), u = k (x + a x^3) (the forward's identity), so
 * f'(x) = s + x s (1 - s) 2 k (1 + 3 a x^2). One span of the elementwise loop (the clones are
 * static: clang names an exported multi-versioned function differently from its declaration). */
HOT static void gelu_tanh_backward_span(float *dx, const float *x, const float *dy, size_t n)
{
    const float k = 0.7978845608028654f, a = 0.044715f; /* sqrt(2/pi) */
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float v = x[i], u = k * (v + a * v * v * v);
        float s = 1.0f / (1.0f + exp_vec(-2.0f * u));
        float du = 2.0f * k * (1.0f + 3.0f * a * v * v);
        dx[i] += dy[i] * (s + v * s * (1.0f - s) * du);
    }
}

void cpu_gelu_tanh_backward(float *dx, const float *x, const float *dy, size_t n)
{
    size_t nspan = (n + PAR_MIN - 1) / PAR_MIN;
#pragma omp parallel for schedule(static) if (nspan > 1)
    for (size_t t = 0; t < nspan; t++) {
        size_t i0 = t * PAR_MIN;
        gelu_tanh_backward_span(dx + i0, x + i0, dy + i0, n - i0 < PAR_MIN ? n - i0 : PAR_MIN);
    }
}

/* silu'(x) = s (1 + x (1 - s)), s = sigmoid(x) */
void cpu_silu_backward(float *dx, const float *x, const float *dy, size_t n)
{
#pragma omp parallel for schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf(-x[i]));
        dx[i] += dy[i] * (s * (1.0f + x[i] * (1.0f - s)));
    }
}

void cpu_modulate_backward(float *dx, float *dshift, float *dscale, const float *dy,
                           const float *x, const float *scale, size_t mod_stride, int B, int T,
                           int C)
{
    int nb = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * C > PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int blk = 0; blk < nb; blk++) {
            int j0 = blk * COL_BLOCK, j1 = j0 + COL_BLOCK < C ? j0 + COL_BLOCK : C;
            const float *sc = scale + (size_t)b * mod_stride;
            double ash[COL_BLOCK] = {0}, asc[COL_BLOCK] = {0};
            for (int t = 0; t < T; t++) {
                size_t o = ((size_t)b * T + t) * C;
                for (int j = j0; j < j1; j++) {
                    if (dx) dx[o + j] += dy[o + j] * (1.0f + sc[j]);
                    ash[j - j0] += dy[o + j];
                    asc[j - j0] += (double)dy[o + j] * x[o + j];
                }
            }
            for (int j = j0; j < j1; j++) {
                if (dshift) dshift[(size_t)b * mod_stride + j] += (float)ash[j - j0];
                if (dscale) dscale[(size_t)b * mod_stride + j] += (float)asc[j - j0];
            }
        }
}

void cpu_gated_add_backward(float *dgate, float *dy, const float *gate, size_t mod_stride,
                            const float *dx, const float *y, int B, int T, int C)
{
    int nb = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * C > PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int blk = 0; blk < nb; blk++) {
            int j0 = blk * COL_BLOCK, j1 = j0 + COL_BLOCK < C ? j0 + COL_BLOCK : C;
            const float *g = gate + (size_t)b * mod_stride;
            double ag[COL_BLOCK] = {0};
            for (int t = 0; t < T; t++) {
                size_t o = ((size_t)b * T + t) * C;
                for (int j = j0; j < j1; j++) {
                    if (dy) dy[o + j] += g[j] * dx[o + j];
                    ag[j - j0] += (double)dx[o + j] * y[o + j];
                }
            }
            if (dgate)
                for (int j = j0; j < j1; j++) dgate[(size_t)b * mod_stride + j] += (float)ag[j - j0];
        }
}

// ---- embedding, rotary, attention -----------------------------------------------------------

/* Threads take column blocks; each block adds the rows in index order (no atomics, and a
 * repeated id gets its contributions in the same order whatever the thread count). */
void cpu_embed_backward(float *dtable, float *dpos, const int32_t *ids, const float *dy, int n,
                        int T, int c)
{
    int nb = (c + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)n * c > PAR_MIN)
    for (int blk = 0; blk < nb; blk++) {
        int j0 = blk * COL_BLOCK, j1 = j0 + COL_BLOCK < c ? j0 + COL_BLOCK : c;
        for (int i = 0; i < n; i++) {
            const float *dyi = dy + (size_t)i * c;
            if (dtable) {
                float *dt = dtable + (size_t)ids[i] * c;
                for (int j = j0; j < j1; j++) dt[j] += dyi[j];
            }
            if (dpos) {
                float *dp = dpos + (size_t)(i % T) * c;
                for (int j = j0; j < j1; j++) dp[j] += dyi[j];
            }
        }
    }
}

/* The forward maps (x1, x2) -> (x1 c1 - x2 s1, x2 c2 + x1 s2) with c1, s1 at index j and c2, s2
 * at j + d/2; the gradient goes back through the transposed map
 * (g1, g2) -> (g1 c1 + g2 s2, g2 c2 - g1 s1), the inverse rotation when both halves share the
 * angle (as backend.h requires of the tables). */
void cpu_rotary_backward(float *dx, size_t row_stride, const float *cos, const float *sin, int B,
                         int T, int H, int d)
{
    int half = d / 2;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * H * d > PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *ct = cos + (size_t)t * d, *st = sin + (size_t)t * d;
            for (int h = 0; h < H; h++) {
                float *u = dx + ((size_t)b * T + t) * row_stride + (size_t)h * d;
                for (int j = 0; j < half; j++) {
                    float g1 = u[j], g2 = u[j + half];
                    u[j] = g1 * ct[j] + g2 * st[j + half];
                    u[j + half] = g2 * ct[j + half] - g1 * st[j];
                }
            }
        }
}

void cpu_kv_store_backward(float *dqkv, const float *dk, const float *dv, int B, int T, int H,
                           int d)
{
    size_t C = (size_t)H * d;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * C > PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                float *row = dqkv + ((size_t)b * T + t) * 3 * C + (size_t)h * d;
                size_t o = (((size_t)b * H + h) * T + t) * d;
                for (int e = 0; e < d; e++) {
                    if (dk) row[C + e] += dk[o + e];
                    if (dv) row[2 * C + e] += dv[o + e];
                }
            }
}

/* Per (b,h), with S = scale Q Kᵀ, P = softmax(S) over the visible keys (0..t when causal):
 * dV += Pᵀ dO; dP = dO Vᵀ; dS = P ∘ (dP - rowsum(P ∘ dP)); dQ += scale dS K; dK += scale dSᵀ Q.
 * P and dP are T x T per thread; the products are single-threaded sgemm calls. */
void cpu_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                            size_t q_stride, const float *k, const float *v, int B, int T, int H,
                            int d, bool causal, float scale)
{
    if (B <= 0 || T <= 0 || H <= 0 || d <= 0) return;
    size_t C = (size_t)H * d;
#pragma omp parallel
    {
        float *P = malloc((size_t)T * T * 2 * sizeof *P);
        if (!P) abort(); /* ops cannot fail (backend.h); a caller workspace would remove this */
        float *dP = P + (size_t)T * T;
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                const float *qh = q + (size_t)b * T * q_stride + (size_t)h * d;
                const float *kh = k + ((size_t)b * H + h) * T * d;
                const float *vh = v + ((size_t)b * H + h) * T * d;
                const float *doh = dout + (size_t)b * T * C + (size_t)h * d;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, d, scale, qh,
                            (int)q_stride, kh, d, 0.0f, P, T);
                for (int t = 0; t < T; t++) {
                    float *pt = P + (size_t)t * T;
                    int nvis = causal ? t + 1 : T;
                    float mx = -INFINITY;
                    for (int j = 0; j < nvis; j++) mx = pt[j] > mx ? pt[j] : mx;
                    double sum = 0;
                    for (int j = 0; j < nvis; j++) {
                        pt[j] = exp_vec(pt[j] - mx);
                        sum += pt[j];
                    }
                    float inv = (float)(1.0 / sum);
                    for (int j = 0; j < nvis; j++) pt[j] *= inv;
                    for (int j = nvis; j < T; j++) pt[j] = 0.0f;
                }
                if (dv)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, d, T, 1.0f, P, T, doh,
                                (int)C, 1.0f, dv + ((size_t)b * H + h) * T * d, d);
                if (!dq && !dk) continue;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, d, 1.0f, doh, (int)C,
                            vh, d, 0.0f, dP, T);
                for (int t = 0; t < T; t++) { /* dP becomes dS */
                    float *pt = P + (size_t)t * T, *gt = dP + (size_t)t * T;
                    int nvis = causal ? t + 1 : T;
                    double dot = 0;
                    for (int j = 0; j < nvis; j++) dot += (double)pt[j] * gt[j];
                    float fd = (float)dot;
                    for (int j = 0; j < nvis; j++) gt[j] = pt[j] * (gt[j] - fd);
                    for (int j = nvis; j < T; j++) gt[j] = 0.0f;
                }
                if (dq)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, d, T, scale, dP, T,
                                kh, d, 1.0f, dq + (size_t)b * T * q_stride + (size_t)h * d,
                                (int)q_stride);
                if (dk)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, d, T, scale, dP, T,
                                qh, (int)q_stride, 1.0f, dk + ((size_t)b * H + h) * T * d, d);
            }
        free(P);
    }
}

// ---- rows -----------------------------------------------------------------------------------

/* One row of cross_entropy, as log_softmax_pick computes it: the max, then the sum of
 * exponentials in float lanes over blocks of 1024, each block added in double; the gradient row
 * is written (not added) after the target logit has been read, so dx may alias x. */
HOT static double cross_entropy_row(float *dx, const float *x, int tg, int c, float dscale)
{
    if (tg < 0) {
        if (dx) memset(dx, 0, (size_t)c * sizeof *dx);
        return 0.0;
    }
    float mx = -INFINITY;
    for (int j = 0; j < c; j++) mx = x[j] > mx ? x[j] : mx;
    double sum = 0;
    for (int j0 = 0; j0 < c; j0 += 1024) {
        int j1 = j0 + 1024 < c ? j0 + 1024 : c;
        float part = 0.0f;
#pragma omp simd reduction(+ : part)
        for (int j = j0; j < j1; j++) part += exp_vec(x[j] - mx);
        sum += part;
    }
    double loss = log(sum) - (double)(x[tg] - mx);
    if (dx) {
        float f = (float)(dscale / sum);
#pragma omp simd
        for (int j = 0; j < c; j++) dx[j] = exp_vec(x[j] - mx) * f;
        dx[tg] -= dscale;
    }
    return loss;
}

void cpu_cross_entropy(double *loss, float *dx, const float *x, const int32_t *target, int n,
                       int c, float dscale)
{
#pragma omp parallel for schedule(static) if (n > 1)
    for (int i = 0; i < n; i++)
        loss[i] = cross_entropy_row(dx ? dx + (size_t)i * c : NULL, x + (size_t)i * c, target[i],
                                    c, dscale);
}

// ---- optimiser ------------------------------------------------------------------------------

double cpu_sumsq(const float *x, size_t n)
{
    size_t nt = (n + SUMSQ_TILE - 1) / SUMSQ_TILE;
    if (nt <= 1) {
        double s = 0;
        for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
        return s;
    }
    double *part = malloc(nt * sizeof *part);
    if (!part) abort(); /* ops cannot fail (backend.h) */
#pragma omp parallel for schedule(static)
    for (size_t t = 0; t < nt; t++) {
        size_t i0 = t * SUMSQ_TILE, i1 = i0 + SUMSQ_TILE < n ? i0 + SUMSQ_TILE : n;
        double s = 0;
        for (size_t i = i0; i < i1; i++) s += (double)x[i] * x[i];
        part[t] = s;
    }
    double s = 0;
    for (size_t t = 0; t < nt; t++) s += part[t];
    free(part);
    return s;
}

void cpu_scale(float *x, float a, size_t n)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] *= a;
}

/* PyTorch's order of operations: decay first, then the moments, then the bias-corrected step
 * (the corrections in double, as Python computes them). */
void cpu_adamw(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
               float beta2, float eps, float weight_decay, int step)
{
    const float decay = 1.0f - lr * weight_decay;
    const float step_size = (float)(lr / (1.0 - pow(beta1, step)));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(beta2, step));
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] = p[i] * decay - step_size * m[i] / denom;
    }
}

void cpu_ema(float *ema, const float *p, size_t n, float decay)
{
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) ema[i] = decay * ema[i] + (1.0f - decay) * p[i];
}
