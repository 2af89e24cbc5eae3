/* backend_cpu: the CPU reference backend — plain C loops (the specification of every op), BLAS
 * (OpenBLAS cblas_sgemm) for the large matrix products, OpenMP across rows, heads and columns;
 * decoding's short, frequent loops (matmul_rows, single-query attention) on lib/pool.h's team,
 * whose waits cost ~1 us instead of an OpenMP region's ~48 us.
 * No intrinsics: the only machine-specific step is target_clones, which compiles the few hot
 * loops (matmul_rows, attention dot products) for AVX-512/AVX2/baseline and picks one at load;
 * the arithmetic (and so every bit of the result) is the same in each clone, because the loops
 * are written with a fixed summation order and ISO C forbids contraction into FMAs (-std=c11).
 *
 * Batch invariance (for byte-identical sampling at any --batch): every op except `matmul` and
 * the GEMM path of `attention` (Tq >= ATT_GEMM_MIN) computes each row with a loop whose order
 * depends only on that row's sizes, never on n or on the thread count. Decoding uses
 * matmul_rows and single-query attention, so a sampled token does not depend on the batch.
 * The training ops (backward, cross-entropy, optimiser) are in backend_cpu_train.c. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cblas.h>

#include "backend.h"
#include "backend_cpu_internal.h"
#include "log.h"
#include "pool.h"

/* OpenBLAS extensions (declared in its cblas.h too, but not in every BLAS's). */
char *openblas_get_corename(void);
void openblas_set_num_threads(int n);

/* Below this many queries attention runs the per-query loop (decoding, batch-invariant); at or
 * above it the score and value products go through sgemm. */
enum { ATT_GEMM_MIN = 8 };

/* Queries per block of the GEMM path of attention: the unit of work of a thread and, causal,
 * the granularity at which the masked upper triangle of the scores is skipped. */
enum { ATT_QBLOCK = 128 };

/* matmul_rows (BE_IN_OUT) sums the k range in this many fixed chunks (see there); also the most
 * threads that product uses (it is memory-bound: a few cores saturate the bus). */
enum { ROWS_KCHUNKS = 8 };

// ---- memory ---------------------------------------------------------------------------------

static void *cpu_alloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    return p;
}

static void cpu_free(void *p) { free(p); }

static int cpu_copy(void *dst, const void *src, size_t bytes, err_t *e)
{
    (void)e;
    if (bytes) memmove(dst, src, bytes);
    return 0;
}

static void cpu_zero(void *p, size_t bytes)
{
    if (bytes) memset(p, 0, bytes);
}

static void cpu_copy_within(void *dst, const void *src, size_t bytes)
{
    if (bytes) memcpy(dst, src, bytes);
}

// ---- linear algebra -------------------------------------------------------------------------

/* Fills each of the n rows of y (n,out) with bias, or zeros. */
static void fill_bias(float *y, const float *bias, int n, int out)
{
#pragma omp parallel for if ((size_t)n * out > 65536)
    for (int i = 0; i < n; i++) {
        if (bias) memcpy(y + (size_t)i * out, bias, (size_t)out * sizeof *y);
        else memset(y + (size_t)i * out, 0, (size_t)out * sizeof *y);
    }
}

/* Columns per thread slice of a GEMM are multiples of this, so every slice starts on a
 * micro-kernel tile boundary and an element's arithmetic does not depend on the split. */
enum { GEMM_COL_ALIGN = 64 };

/* y (n,out) = alpha x·W + beta y through cblas_sgemm, split by output columns across the
 * OpenMP threads, each calling a single-threaded OpenBLAS: one thread pool instead of two
 * (OpenMP and OpenBLAS pthreads spinning against each other measured 2x slower on 2 shared
 * cores), and each element is computed by one sgemm call whatever the thread count. */
static void gemm_cols(float *y, const float *x, const float *w, int n, int in, int out,
                      enum be_layout layout, float beta)
{
    int nt = omp_get_max_threads();
    int per = (out + nt - 1) / nt;
    per = (per + GEMM_COL_ALIGN - 1) / GEMM_COL_ALIGN * GEMM_COL_ALIGN;
    if ((double)n * in * out < 4e6 || nt == 1 || per >= out) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, layout == BE_IN_OUT ? CblasNoTrans : CblasTrans,
                    n, out, in, 1.0f, x, in, w, layout == BE_IN_OUT ? out : in, beta, y, out);
        return;
    }
#pragma omp parallel for schedule(static, 1)
    for (int j0 = 0; j0 < out; j0 += per) {
        int nj = out - j0 < per ? out - j0 : per;
        const float *wj = layout == BE_IN_OUT ? w + j0 : w + (size_t)j0 * in;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, layout == BE_IN_OUT ? CblasNoTrans : CblasTrans,
                    n, nj, in, 1.0f, x, in, wj, layout == BE_IN_OUT ? out : in, beta, y + j0, out);
    }
}

static void cpu_matmul(float *y, const float *x, const float *w, const float *bias, int n,
                       int in, int out, enum be_layout layout, bool accumulate)
{
    if (n <= 0 || out <= 0) return;
    float beta = 1.0f;
    if (accumulate) {
        if (bias) {
#pragma omp parallel for if ((size_t)n * out > 65536)
            for (int i = 0; i < n; i++)
                for (int j = 0; j < out; j++) y[(size_t)i * out + j] += bias[j];
        }
    } else if (bias) {
        fill_bias(y, bias, n, out);
    } else {
        beta = 0.0f;
    }
    gemm_cols(y, x, w, n, in, out, layout, beta);
}

/* The dot product of a and b (n floats) in a fixed order: 16 partial sums over k ≡ i mod 16,
 * then combined pairwise. Same bits whatever the vector width the clone uses. */
static inline float dot_fixed(const float *a, const float *b, int n)
{
    float acc[16] = {0};
    int k = 0;
    for (; k + 16 <= n; k += 16) {
#pragma omp simd
        for (int i = 0; i < 16; i++) acc[i] += a[k + i] * b[k + i];
    }
    for (int i = 0; k + i < n; i++) acc[i] += a[k + i] * b[k + i];
    for (int w = 8; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) acc[i] += acc[i + w];
    return acc[0];
}

/* y (n,out) (+)= (p_0 + p_1 + ... + p_{nch-1}) + bias, the (n,out) partial products p_c of
 * matmul_rows at part + c·n·out, added in chunk order. */
HOT static void combine_chunks(float *y, float *part, const float *bias, int nch, int n, int out,
                               bool accumulate)
{
    size_t tot = (size_t)n * out;
    for (int c = 1; c < nch; c++) { /* p_0 += p_c in chunk order, in place */
        const float *pc = part + (size_t)c * tot;
#pragma omp simd
        for (size_t i = 0; i < tot; i++) part[i] += pc[i];
    }
    for (int r = 0; r < n; r++) {
        float *yr = y + (size_t)r * out;
        const float *p0 = part + (size_t)r * out;
        for (int j = 0; j < out; j++) {
            float sv = p0[j] + (bias ? bias[j] : 0.0f);
            yr[j] = accumulate ? yr[j] + sv : sv;
        }
    }
}

/* matmul_rows' arguments, for the pool's tasks */
struct rows_job {
    float *y;
    const float *x, *w, *bias;
    int n, in, out;
    bool accumulate;
    float *part; /* BE_IN_OUT: the chunks' partial products */
    int kper;    /* BE_IN_OUT: k per chunk */
};

/* BE_OUT_IN, output columns [lo, hi): y[r][j] (+)= dot(x[r], W[j]) + bias[j], one W row read
 * once for all n rows */
HOT static void rows_out_in(void *ctx, int lo, int hi)
{
    const struct rows_job *a = ctx;
    for (int j = lo; j < hi; j++) {
        const float *wj = a->w + (size_t)j * a->in;
        for (int r = 0; r < a->n; r++) {
            float s = dot_fixed(a->x + (size_t)r * a->in, wj, a->in) + (a->bias ? a->bias[j] : 0.0f);
            float *yr = a->y + (size_t)r * a->out + j;
            *yr = a->accumulate ? *yr + s : s;
        }
    }
}

/* BE_IN_OUT, chunks [lo, hi): p_c[r][j] = sum over the chunk's k, ascending, of x[r][k] W[k][j] */
HOT static void rows_in_out(void *ctx, int lo, int hi)
{
    const struct rows_job *a = ctx;
    int n = a->n, in = a->in, out = a->out;
    for (int c = lo; c < hi; c++) {
        int k0 = c * a->kper, k1 = k0 + a->kper < in ? k0 + a->kper : in;
        float *pc = a->part + (size_t)c * n * out;
        memset(pc, 0, (size_t)n * out * sizeof *pc);
        int k = k0;
        /* four rows of W per pass: the same left-to-right additions as one row at a time, a
         * quarter of the accumulator loads and stores */
        for (; k + 4 <= k1; k += 4) {
            const float *w0 = a->w + (size_t)k * out, *w1 = w0 + out, *w2 = w1 + out,
                        *w3 = w2 + out;
            for (int r = 0; r < n; r++) {
                const float *xr = a->x + (size_t)r * in + k;
                const float x0 = xr[0], x1 = xr[1], x2 = xr[2], x3 = xr[3];
                float *ar = pc + (size_t)r * out;
#pragma omp simd
                for (int j = 0; j < out; j++)
                    ar[j] = ar[j] + x0 * w0[j] + x1 * w1[j] + x2 * w2[j] + x3 * w3[j];
            }
        }
        for (; k < k1; k++) {
            const float *wk = a->w + (size_t)k * out;
            for (int r = 0; r < n; r++) {
                const float xk = a->x[(size_t)r * in + k];
                float *ar = pc + (size_t)r * out;
#pragma omp simd
                for (int j = 0; j < out; j++) ar[j] += xk * wk[j];
            }
        }
    }
}

/* Decoding's products (lib/pool.h: a pool job, not an OpenMP region, as these come some 50 per
 * token). BE_IN_OUT: the k range is cut into ROWS_KCHUNKS fixed chunks (a function of `in`
 * only); chunk c gives p_c, and y[r][j] = (p_0 + p_1 + ...) + bias[j], chunks in order. A task
 * takes whole chunks, each a contiguous block of W read front to back (one sequential stream per
 * thread, W read once: splitting by columns instead made every thread jump between row segments
 * of 1.5-6 KB and ran 1.8x slower per byte). The arithmetic depends only on `in`, not on n or
 * the threads. */
HOT static void cpu_matmul_rows(float *y, const float *x, const float *w, const float *bias,
                                int n, int in, int out, enum be_layout layout, bool accumulate)
{
    if (n <= 0 || out <= 0) return;
    struct rows_job a = {y, x, w, bias, n, in, out, accumulate, NULL, 0};
    if (layout == BE_OUT_IN) {
        pool_run(rows_out_in, &a, out);
        return;
    }
    int nch = in < ROWS_KCHUNKS ? (in > 0 ? in : 1) : ROWS_KCHUNKS;
    a.kper = in > 0 ? (in + nch - 1) / nch : 0;
    if (in > 0) nch = (in + a.kper - 1) / a.kper; /* no empty chunk */
    a.part = malloc((size_t)nch * n * out * sizeof *a.part);
    if (!a.part) abort(); /* TODO: a caller-provided workspace */
    pool_run(rows_in_out, &a, nch);
    combine_chunks(y, a.part, bias, nch, n, out, accumulate);
    free(a.part);
}

// ---- normalisation and pointwise ------------------------------------------------------------

/* Σ (x[i] - shift)^power (power 1 or 2) over x[0..n) in double, in a fixed order like
 * dot_fixed's: 16 partial sums over i ≡ k mod 16, combined pairwise (vectorised, the same bits
 * at any vector width). */
static inline double sum_fixed(const float *x, int n, double shift, int power)
{
    double acc[16] = {0};
    int k = 0;
    for (; k + 16 <= n; k += 16) {
#pragma omp simd
        for (int i = 0; i < 16; i++) {
            double d = x[k + i] - shift;
            acc[i] += power == 2 ? d * d : d;
        }
    }
    for (int i = 0; k + i < n; i++) {
        double d = x[k + i] - shift;
        acc[i] += power == 2 ? d * d : d;
    }
    for (int w = 8; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) acc[i] += acc[i + w];
    return acc[0];
}

HOT static void cpu_layernorm(float *y, const float *x, const float *w, const float *b, int n,
                              int c, float eps)
{
#pragma omp parallel for schedule(static) if (n > 4)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * c;
        float *yi = y + (size_t)i * c;
        double mean = sum_fixed(xi, c, 0.0, 1) / c, sq = sum_fixed(xi, c, mean, 2);
        float m = (float)mean, rstd = (float)(1.0 / sqrt(sq / c + eps));
        for (int j = 0; j < c; j++) {
            float v = (xi[j] - m) * rstd;
            if (w) v *= w[j];
            if (b) v += b[j];
            yi[j] = v;
        }
    }
}

/* gelu_tanh(x) = 0.5x(1 + tanh(u)) with u = sqrt(2/pi)(x + 0.044715x^3), computed through the
 * identity 0.5(1 + tanh u) = 1 / (1 + exp(-2u)): one exp instead of tanhf (vectorised),
 * no cancellation near u = 0, and exp overflow for very negative x gives the right limit -0. */
HOT static void cpu_gelu_tanh(float *y, const float *x, size_t n)
{
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
#pragma omp parallel for simd schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) {
        float v = x[i], u = k * (v + 0.044715f * v * v * v);
        y[i] = v / (1.0f + exp_vec(-2.0f * u));
    }
}

static void cpu_silu(float *y, const float *x, size_t n)
{
#pragma omp parallel for schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
}

static void cpu_add(float *y, const float *a, const float *b, size_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

static void cpu_modulate(float *y, const float *x, const float *shift, const float *scale,
                         size_t mod_stride, int B, int T, int C)
{
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * C > 65536)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *sh = shift + (size_t)b * mod_stride, *sc = scale + (size_t)b * mod_stride;
            size_t o = ((size_t)b * T + t) * C;
            for (int j = 0; j < C; j++) y[o + j] = x[o + j] * (1.0f + sc[j]) + sh[j];
        }
}

static void cpu_gated_add(float *x, const float *gate, size_t mod_stride, const float *y, int B,
                          int T, int C)
{
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * C > 65536)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *g = gate + (size_t)b * mod_stride;
            size_t o = ((size_t)b * T + t) * C;
            for (int j = 0; j < C; j++) x[o + j] += g[j] * y[o + j];
        }
}

// ---- embedding, rotary, attention -----------------------------------------------------------

static void cpu_embed(float *y, const float *table, const float *pos, const int32_t *ids, int n,
                      int T, int pos0, int c)
{
#pragma omp parallel for schedule(static) if (n > 64)
    for (int i = 0; i < n; i++) {
        const float *te = table + (size_t)ids[i] * c;
        float *yi = y + (size_t)i * c;
        if (pos) {
            const float *pe = pos + (size_t)(pos0 + i % T) * c;
            for (int j = 0; j < c; j++) yi[j] = te[j] + pe[j];
        } else {
            memcpy(yi, te, (size_t)c * sizeof *yi);
        }
    }
}

static void cpu_rotary(float *x, size_t row_stride, const float *cos, const float *sin, int B,
                       int T, int H, int d)
{
    int half = d / 2;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * H * d > 65536)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *ct = cos + (size_t)t * d, *st = sin + (size_t)t * d;
            for (int h = 0; h < H; h++) {
                float *u = x + ((size_t)b * T + t) * row_stride + (size_t)h * d;
                for (int j = 0; j < half; j++) {
                    float x1 = u[j], x2 = u[j + half];
                    u[j] = x1 * ct[j] - x2 * st[j];
                    u[j + half] = x2 * ct[j + half] + x1 * st[j + half];
                }
            }
        }
}

static void cpu_kv_store(float *k, float *v, const float *qkv, int B, int T, int H, int d,
                         int past, int cap)
{
    size_t C = (size_t)H * d;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * C > 65536)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const float *row = qkv + ((size_t)b * T + t) * 3 * C + (size_t)h * d;
                size_t o = (((size_t)b * H + h) * cap + past + t) * d;
                memcpy(k + o, row + C, (size_t)d * sizeof *k);
                memcpy(v + o, row + 2 * C, (size_t)d * sizeof *v);
            }
}

static void cpu_ids_from_tokens(int32_t *ids, const int64_t *tokens, size_t n)
{
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)tokens[i];
}

/* The largest of s[0..n) (-inf when n = 0), in 16 lanes: vectorised without reassociating a
 * reduction (and max is exact: the same value in any order). */
static inline float max_lanes(const float *s, int n)
{
    float m[16];
    for (int i = 0; i < 16; i++) m[i] = -INFINITY;
    int k = 0;
    for (; k + 16 <= n; k += 16) {
#pragma omp simd
        for (int i = 0; i < 16; i++) m[i] = s[k + i] > m[i] ? s[k + i] : m[i];
    }
    for (int i = 0; k + i < n; i++) m[i] = s[k + i] > m[i] ? s[k + i] : m[i];
    float mx = m[0];
    for (int i = 1; i < 16; i++) mx = m[i] > mx ? m[i] : mx;
    return mx;
}

/* Softmax of s[0..n) in place (keys with mask 0 excluded: set to 0); returns 1/sum, or 0 when
 * no key is visible. */
HOT static float softmax_visible(float *s, int n, const uint8_t *mask)
{
    float mx = -INFINITY;
    double sum = 0;
    if (!mask) { /* the common case, vectorised; the sum in float vector lanes (n/16 or
                  * n/8 terms each: well under 1e-5 relative for n = 1024, typically 1e-7) */
        mx = max_lanes(s, n);
        float fsum = 0.0f;
#pragma omp simd reduction(+ : fsum)
        for (int j = 0; j < n; j++) {
            s[j] = exp_vec(s[j] - mx);
            fsum += s[j];
        }
        sum = fsum;
        return n ? (float)(1.0 / sum) : 0.0f;
    }
    for (int j = 0; j < n; j++)
        if (mask[j] && s[j] > mx) mx = s[j];
    if (mx == -INFINITY) return 0.0f;
    for (int j = 0; j < n; j++) {
        float p = mask[j] ? expf(s[j] - mx) : 0.0f;
        s[j] = p;
        sum += p;
    }
    return (float)(1.0 / sum);
}

/* One query against keys 0..n-1 of one head: the decode path, fixed order (batch-invariant). */
HOT static void attend_one(float *o, const float *q, const float *k, const float *v, int n, int d,
                           const uint8_t *mask, float scale, float *s)
{
    for (int j = 0; j < n; j++) s[j] = dot_fixed(q, k + (size_t)j * d, d) * scale;
    float inv = softmax_visible(s, n, mask);
    for (int e = 0; e < d; e++) o[e] = 0.0f;
    for (int j = 0; j < n; j++) {
        float p = s[j] * inv;
        if (p == 0.0f) continue;
        const float *vj = v + (size_t)j * d;
#pragma omp simd
        for (int e = 0; e < d; e++) o[e] += p * vj[e];
    }
}

/* The short-query path of cpu_attention, for the pool's tasks: items are (b, h, t) in order. */
struct attend_job {
    float *out;
    const float *q;
    size_t q_stride;
    const float *k, *v;
    int Tq, Tk, cap, H, d, past;
    const uint8_t *key_mask;
    float scale;
};

static void attend_range(void *ctx, int lo, int hi)
{
    const struct attend_job *a = ctx;
    size_t C = (size_t)a->H * a->d;
    float *s = malloc((size_t)(a->Tk > 0 ? a->Tk : 1) * sizeof *s);
    if (!s) abort(); /* TODO: ops cannot fail today; a caller-provided workspace would */
    for (int i = lo; i < hi; i++) {
        int t = i % a->Tq, h = i / a->Tq % a->H, b = i / a->Tq / a->H;
        int n = a->past >= 0 ? a->past + t + 1 : a->Tk;
        const float *kh = a->k + ((size_t)b * a->H + h) * a->cap * a->d;
        const float *vh = a->v + ((size_t)b * a->H + h) * a->cap * a->d;
        attend_one(a->out + ((size_t)b * a->Tq + t) * C + (size_t)h * a->d,
                   a->q + ((size_t)b * a->Tq + t) * a->q_stride + (size_t)h * a->d, kh, vh, n,
                   a->d, a->key_mask ? a->key_mask + (size_t)b * a->Tk : NULL, a->scale, s);
    }
    free(s);
}

static void cpu_attention(float *out, const float *q, size_t q_stride, const float *k,
                          const float *v, int B, int Tq, int Tk, int cap, int H, int d, int past,
                          const uint8_t *key_mask, float scale)
{
    size_t C = (size_t)H * d;
    if (Tq < ATT_GEMM_MIN) {
        struct attend_job a = {out, q, q_stride, k, v, Tq, Tk, cap, H, d, past, key_mask, scale};
        pool_run(attend_range, &a, B * H * Tq);
        return;
    }
    /* Long query blocks: per (b, h) and block of ATT_QBLOCK queries, S = Q Kᵀ and O = P V
     * through sgemm with the masked softmax between. A causal block multiplies only the keys
     * its last query sees (at past = 0 about half of the full square); the few masked scores
     * left in its upper corner are computed and zeroed. Blocks are taken largest first (dynamic
     * schedule); each is one thread's, so the result does not depend on the thread count. */
    int nqb = (Tq + ATT_QBLOCK - 1) / ATT_QBLOCK;
#pragma omp parallel
    {
        float *S = malloc((size_t)(Tq < ATT_QBLOCK ? Tq : ATT_QBLOCK) * Tk * sizeof *S);
        if (!S) abort(); /* TODO: ops cannot fail today; a caller-provided workspace would */
#pragma omp for collapse(3) schedule(dynamic, 1)
        for (int blk = nqb - 1; blk >= 0; blk--)
            for (int b = 0; b < B; b++)
                for (int h = 0; h < H; h++) {
                    int t0 = blk * ATT_QBLOCK, nq = Tq - t0 < ATT_QBLOCK ? Tq - t0 : ATT_QBLOCK;
                    int nk = past >= 0 ? past + t0 + nq : Tk; /* keys the last query sees */
                    const float *qh = q + ((size_t)b * Tq + t0) * q_stride + (size_t)h * d;
                    const float *kh = k + ((size_t)b * H + h) * cap * d;
                    const float *vh = v + ((size_t)b * H + h) * cap * d;
                    const uint8_t *mask = key_mask ? key_mask + (size_t)b * Tk : NULL;
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, d, scale, qh,
                                (int)q_stride, kh, d, 0.0f, S, nk);
                    float inv[ATT_QBLOCK];
                    for (int t = 0; t < nq; t++) {
                        float *st = S + (size_t)t * nk;
                        int n = past >= 0 ? past + t0 + t + 1 : Tk;
                        inv[t] = softmax_visible(st, n, mask);
                        for (int j = inv[t] == 0.0f ? 0 : n; j < nk; j++) st[j] = 0.0f;
                    }
                    /* O = (exp(S - max) V) / sum: the normalisation on the d outputs of a row
                     * instead of its nk probabilities */
                    float *ob = out + ((size_t)b * Tq + t0) * C + (size_t)h * d;
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, d, nk, 1.0f, S, nk,
                                vh, d, 0.0f, ob, (int)C);
                    for (int t = 0; t < nq; t++)
                        for (int e = 0; e < d; e++) ob[(size_t)t * C + e] *= inv[t];
                }
        free(S);
    }
}

// ---- rows -----------------------------------------------------------------------------------

static void cpu_softmax_rows(float *y, const float *x, int n, int c, bool log_space)
{
#pragma omp parallel for schedule(static) if (n > 1)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * c;
        float *yi = y + (size_t)i * c;
        float mx = -INFINITY;
        for (int j = 0; j < c; j++)
            if (xi[j] > mx) mx = xi[j];
        double sum = 0;
        for (int j = 0; j < c; j++) sum += exp((double)xi[j] - mx);
        if (log_space) {
            float lse = (float)(mx + log(sum));
            for (int j = 0; j < c; j++) yi[j] = xi[j] - lse;
        } else {
            double inv = 1.0 / sum;
            for (int j = 0; j < c; j++) yi[j] = (float)(exp((double)xi[j] - mx) * inv);
        }
    }
}

static void cpu_softmax(float *y, const float *x, int n, int c)
{
    cpu_softmax_rows(y, x, n, c, false);
}

static void cpu_log_softmax(float *y, const float *x, int n, int c)
{
    cpu_softmax_rows(y, x, n, c, true);
}

HOT static void cpu_log_softmax_pick(double *lp, const float *x, const int32_t *target, int n,
                                     int c)
{
#pragma omp parallel for schedule(static) if (n > 1)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * c;
        float mx = max_lanes(xi, c);
        /* float lanes over blocks of 1024, each block's sum added in double */
        double sum = 0;
        for (int j0 = 0; j0 < c; j0 += 1024) {
            int j1 = j0 + 1024 < c ? j0 + 1024 : c;
            float part = 0.0f;
#pragma omp simd reduction(+ : part)
            for (int j = j0; j < j1; j++) part += exp_vec(xi[j] - mx);
            sum += part;
        }
        lp[i] = (double)(xi[target[i]] - mx) - log(sum);
    }
}

/* One row's draw (see draw_rows in backend.h), every sum in index order. The exponentials are
 * computed twice (for the total, then up to the token) rather than stored: the same function of
 * the same inputs, so the same bits, and no allocation on the decoding path. */
static int32_t draw_row(const float *x, int c, double u, double inv_t)
{
    float mx = -INFINITY;
    for (int j = 0; j < c; j++)
        if (x[j] > mx) mx = x[j];
    double total = 0;
    for (int j = 0; j < c; j++) total += exp(((double)x[j] - mx) * inv_t);
    double target = u * total, cum = 0;
    for (int j = 0; j < c; j++)
        if ((cum += exp(((double)x[j] - mx) * inv_t)) > target) return j;
    return c - 1;
}

static void cpu_draw_rows(int32_t *tok, const float *x, const double *u, int n, int c,
                          double inv_t)
{
#pragma omp parallel for schedule(static) if (n > 1)
    for (int i = 0; i < n; i++) tok[i] = draw_row(x + (size_t)i * c, c, u[i], inv_t);
}

/* ops run as they are called: a step is its ops */
static int cpu_run_step(int (*enqueue)(void *ctx, err_t *e), void *ctx, err_t *e)
{
    return enqueue(ctx, e);
}

const backend backend_cpu = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .to_device = cpu_copy,
    .to_host = cpu_copy,
    .zero = cpu_zero,
    .copy = cpu_copy_within,
    .matmul = cpu_matmul,
    .matmul_rows = cpu_matmul_rows,
    .layernorm = cpu_layernorm,
    .gelu_tanh = cpu_gelu_tanh,
    .silu = cpu_silu,
    .add = cpu_add,
    .modulate = cpu_modulate,
    .gated_add = cpu_gated_add,
    .embed = cpu_embed,
    .rotary = cpu_rotary,
    .kv_store = cpu_kv_store,
    .ids_from_tokens = cpu_ids_from_tokens,
    .attention = cpu_attention,
    .softmax = cpu_softmax,
    .log_softmax = cpu_log_softmax,
    .log_softmax_pick = cpu_log_softmax_pick,
    .draw_rows = cpu_draw_rows,
    .matmul_backward = cpu_matmul_backward,
    .layernorm_backward = cpu_layernorm_backward,
    .gelu_tanh_backward = cpu_gelu_tanh_backward,
    .silu_backward = cpu_silu_backward,
    .modulate_backward = cpu_modulate_backward,
    .gated_add_backward = cpu_gated_add_backward,
    .embed_backward = cpu_embed_backward,
    .rotary_backward = cpu_rotary_backward,
    .kv_store_backward = cpu_kv_store_backward,
    .attention_backward = cpu_attention_backward,
    .cross_entropy = cpu_cross_entropy,
    .sumsq = cpu_sumsq,
    .scale = cpu_scale,
    .adamw = cpu_adamw,
    .ema = cpu_ema,
    .sedd_finish = cpu_sedd_finish,
    .sedd_project = cpu_sedd_project,
    .sedd_step = cpu_sedd_step,
    .sedd_score_entropy = cpu_sedd_score_entropy,
    .run_step = cpu_run_step,
};

/* OpenBLAS runs single-threaded inside our OpenMP threads (see gemm_cols); this runs after
 * OpenBLAS's own initialisation (a shared library is initialised before the program). */
__attribute__((constructor)) static void blas_single_threaded(void)
{
    openblas_set_num_threads(1);
}

// ---- BLAS kernel selection ------------------------------------------------------------------

const char *backend_cpu_blas_core(void)
{
    const char *name = openblas_get_corename();
    return name ? name : "?";
}

void backend_cpu_set_threads(int n)
{
    if (n < 1) n = 1;
    omp_set_num_threads(n);
    pool_set_threads(n);
    openblas_set_num_threads(1); /* parallel GEMMs are split by gemm_cols, one pool */
}

/* Cores OpenBLAS picks itself that already have AVX2-or-better kernels. */
static bool core_is_fast(const char *core)
{
    static const char *const fast[] = {"haswell", "zen", "skylakex", "cooperlake",
                                       "sapphirerapids"};
    for (size_t i = 0; i < sizeof fast / sizeof fast[0]; i++)
        if (strcasecmp(core, fast[i]) == 0) return true;
    return false;
}

void backend_cpu_blas_init(int argc, char **argv)
{
    (void)argc;
    if (getenv("DLM_NO_REEXEC")) return;
    bool change = false;
    /* OpenMP threads that wait passively: with spinning waits (libgomp's default) every
     * parallel region on a shared 2-core machine waited for a descheduled spinner; measured
     * 1.8 s vs 5.4 s (32 sampled tokens, 2 threads, machine under load), 3.0 vs 3.7 s scoring */
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        change = true;
    }
    const char *want = NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        want = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        want = "Haswell";
    const char *core = backend_cpu_blas_core();
    if (!getenv("OPENBLAS_CORETYPE") && want && !core_is_fast(core)) {
        log_info("OpenBLAS chose the %s kernel on a CPU with %s: using OPENBLAS_CORETYPE=%s",
                 core, want, want);
        setenv("OPENBLAS_CORETYPE", want, 1);
        change = true;
    }
    if (!change) return;
    setenv("DLM_NO_REEXEC", "1", 1); /* once, whatever the libraries make of the variables */
    execv("/proc/self/exe", argv);
    log_warn("cannot re-execute /proc/self/exe; running with the default BLAS kernel and "
             "OpenMP wait policy");
}
