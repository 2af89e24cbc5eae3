/* test_ops: every op of the CUDA backend (kernels/) against the CPU backend (lib/backend_cpu.c,
 * the reference itself, not a copy) on random inputs at two or more shapes each, one of them not
 * a multiple of the block size (CU_BLOCK = 256 threads, 128 for per-query attention, 64-query
 * and 64-key tiles for tiled attention, blocks of 8 rows in matmul_rows, 32-lane warps).
 * Tolerance: |cuda - cpu| <= atol + rtol·|cpu| per element, written beside each case with its
 * reason. Prints the first 5 mismatches and the max diff of every case, TAP lines, exit 1 on any
 * failure. No CUDA device: prints "SKIP: no CUDA device" and a TAP skip line and exits 77 (the
 * documented "skipped" status; tests/run.sh counts it as skipped, tests/gpu-check.sh as a
 * failure, since a GPU machine must see its GPU). Built only when CUDA is on. */
#include "op_check.h"

// ---- matmul -----------------------------------------------------------------------------------

static void t_matmul(int n, int in, int out)
{
    float *x = rnd((size_t)n * in, 1), *w = rnd((size_t)in * out, 1), *b = rnd(out, 1);
    float *y0 = rnd((size_t)n * out, 1);
    float *dx = up(x, sizeof(float) * n * in), *dw = up(w, sizeof(float) * in * out),
          *db = up(b, sizeof(float) * out);
    for (int rows = 0; rows < 2; rows++)
        for (int lay = 0; lay < 2; lay++)
            for (int acc = 0; acc < 2; acc++)
                for (int bias = 0; bias < 2; bias++) {
                    enum be_layout L = lay ? BE_OUT_IN : BE_IN_OUT;
                    float *ref = copy_of(y0, sizeof(float) * n * out);
                    float *dy = up(y0, sizeof(float) * n * out);
                    (rows ? cpu->matmul_rows : cpu->matmul)(ref, x, w, bias ? b : NULL, n, in,
                                                            out, L, acc);
                    (rows ? gpu->matmul_rows : gpu->matmul)(dy, dx, dw, bias ? db : NULL, n, in,
                                                            out, L, acc);
                    float *got = down(dy, sizeof(float) * n * out);
                    char what[128];
                    snprintf(what, sizeof what, "%s %s%s%s n=%d in=%d out=%d",
                             rows ? "matmul_rows" : "matmul", lay ? "out_in" : "in_out",
                             acc ? " accumulate" : "", bias ? " bias" : "", n, in, out);
                    /* sums of `in` products of values in [-1,1] in different orders (OpenBLAS
                     * blocks vs cuBLAS tiles vs a k loop), both fp32: rounding errors of
                     * ~sqrt(in)·1e-6 at most (4e-5 at in = 771), the bound is 10x that. TF32
                     * (2^-11 per product) would give ~sqrt(in)·1e-4 and fail it, as it should */
                    compare(what, got, ref, (size_t)n * out, 0, 5e-7 * in, 1e-5);
                    free(ref), free(got);
                }
    gpu->free(dx), gpu->free(dw), gpu->free(db);
    free(x), free(w), free(b), free(y0);
}

/* matmul_rows is batch-invariant (lib/backend.h): a row computed alone or inside blocks of 3 or
 * n rows (the CUDA kernels read W once per block of up to 8 rows) gives the same bits */
static void t_matmul_rows_invariant(int n, int in, int out)
{
    float *x = rnd((size_t)n * in, 1), *w = rnd((size_t)in * out, 1), *b = rnd(out, 1);
    float *dx = up(x, sizeof(float) * n * in), *dw = up(w, sizeof(float) * in * out),
          *db = up(b, sizeof(float) * out);
    for (int lay = 0; lay < 2; lay++) {
        enum be_layout L = lay ? BE_OUT_IN : BE_IN_OUT;
        float *dall = gpu->alloc(sizeof(float) * n * out);
        gpu->matmul_rows(dall, dx, dw, db, n, in, out, L, false);
        float *all = down(dall, sizeof(float) * n * out);
        int firsts[] = {0, n - 1, n - 3}, counts[] = {1, 1, 3};
        for (int c = 0; c < 3; c++) {
            int r = firsts[c], m = counts[c];
            float *dy = gpu->alloc(sizeof(float) * m * out);
            gpu->matmul_rows(dy, dx + (size_t)r * in, dw, db, m, in, out, L, false);
            float *got = down(dy, sizeof(float) * m * out);
            char what[112];
            snprintf(what, sizeof what, "matmul_rows %s rows %d..%d alone = in a batch of %d",
                     lay ? "out_in" : "in_out", r, r + m - 1, n);
            compare(what, got, all + (size_t)r * out, (size_t)m * out, 0, 0, 0);
            free(got);
        }
        free(all);
    }
    gpu->free(dx), gpu->free(dw), gpu->free(db);
    free(x), free(w), free(b);
}

// ---- normalisation and pointwise --------------------------------------------------------------

static void t_layernorm(int n, int c)
{
    float *x = rnd((size_t)n * c, 3), *w = rnd(c, 1), *b = rnd(c, 1);
    float *dx = up(x, sizeof(float) * n * c), *dw = up(w, sizeof(float) * c),
          *db = up(b, sizeof(float) * c);
    static const char *names[] = {"w+b", "w only", "no affine"};
    for (int v = 0; v < 3; v++) {
        float *ref = malloc(sizeof(float) * n * c), *dy = gpu->alloc(sizeof(float) * n * c);
        cpu->layernorm(ref, x, v < 2 ? w : NULL, v < 1 ? b : NULL, n, c, 1e-5f);
        gpu->layernorm(dy, dx, v < 2 ? dw : NULL, v < 1 ? db : NULL, n, c, 1e-5f);
        float *got = down(dy, sizeof(float) * n * c);
        char what[96];
        snprintf(what, sizeof what, "layernorm %s n=%d c=%d", names[v], n, c);
        /* mean and variance in double on both sides; what differs is the float rstd's last bit
         * and FMA contraction in (x-m)*rstd*w+b: a few ulp of values up to ~4 */
        compare(what, got, ref, (size_t)n * c, 0, 1e-5, 1e-5);
        free(ref), free(got);
    }
    /* in place (y == x) on the device */
    float *ref = copy_of(x, sizeof(float) * n * c), *dy = up(x, sizeof(float) * n * c);
    cpu->layernorm(ref, ref, w, b, n, c, 1e-5f);
    gpu->layernorm(dy, dy, dw, db, n, c, 1e-5f);
    float *got = down(dy, sizeof(float) * n * c);
    compare("layernorm in place", got, ref, (size_t)n * c, 0, 1e-5, 1e-5);
    free(ref), free(got);
    gpu->free(dx), gpu->free(dw), gpu->free(db);
    free(x), free(w), free(b);
}

static void t_unary(size_t n)
{
    float *x = rnd(n, 8), *x2 = rnd(n, 8); /* [-8, 8]: both tails of gelu and silu */
    float *dx = up(x, sizeof(float) * n), *dx2 = up(x2, sizeof(float) * n);
    for (int op = 0; op < 3; op++) {
        float *ref = malloc(sizeof(float) * n), *dy = gpu->alloc(sizeof(float) * n);
        const char *name = op == 0 ? "gelu_tanh" : op == 1 ? "silu" : "add";
        if (op == 0) cpu->gelu_tanh(ref, x, n), gpu->gelu_tanh(dy, dx, n);
        if (op == 1) cpu->silu(ref, x, n), gpu->silu(dy, dx, n);
        if (op == 2) cpu->add(ref, x, x2, n), gpu->add(dy, dx, dx2, n);
        float *got = down(dy, sizeof(float) * n);
        char what[64];
        snprintf(what, sizeof what, "%s n=%zu", name, n);
        if (op < 2) /* CPU exp_vec and CUDA expf are each within 2 ulp of exp, and nvcc contracts
                     * the cubic into FMAs: a few ulp of outputs up to 8, near 0 an absolute 1e-7 */
            compare(what, got, ref, n, 0, 1e-6, 2e-6);
        else /* one correctly rounded addition on both sides: bit-identical */
            compare(what, got, ref, n, 0, 0, 0);
        free(ref), free(got);
    }
    gpu->free(dx), gpu->free(dx2);
    free(x), free(x2);
}

static void t_modulate(int B, int T, int C)
{
    size_t nx = (size_t)B * T * C, nm = (size_t)B * 6 * C, st = 6 * (size_t)C;
    float *x = rnd(nx, 2), *y = rnd(nx, 2), *mod = rnd(nm, 1);
    float *dx = up(x, sizeof(float) * nx), *dy = up(y, sizeof(float) * nx),
          *dm = up(mod, sizeof(float) * nm);
    /* shift = chunk 0, scale = chunk 1, gate = chunk 2 of the (B,6C) adaLN output */
    float *ref = malloc(sizeof(float) * nx), *dout = gpu->alloc(sizeof(float) * nx);
    cpu->modulate(ref, x, mod, mod + C, st, B, T, C);
    gpu->modulate(dout, dx, dm, dm + C, st, B, T, C);
    float *got = down(dout, sizeof(float) * nx);
    char what[64];
    snprintf(what, sizeof what, "modulate B=%d T=%d C=%d", B, T, C);
    /* x*(1+s)+h: one FMA contraction on the GPU, values up to ~6: 1 ulp ≈ 5e-7 */
    compare(what, got, ref, nx, 0, 1e-6, 1e-6);
    free(ref), free(got);

    ref = copy_of(x, sizeof(float) * nx);
    cpu->gated_add(ref, mod + 2 * C, st, y, B, T, C);
    gpu->gated_add(dx, dm + 2 * C, st, dy, B, T, C);
    got = down(dx, sizeof(float) * nx);
    snprintf(what, sizeof what, "gated_add B=%d T=%d C=%d", B, T, C);
    /* x + g*y: the same single FMA contraction */
    compare(what, got, ref, nx, 0, 1e-6, 1e-6);
    free(ref), free(got);
    gpu->free(dy), gpu->free(dm);
    free(x), free(y), free(mod);
}

// ---- embedding, rotary, kv_store, attention -----------------------------------------------

static void t_embed(int B, int T, int c)
{
    int V = 97, P = T + 8, n = B * T, pos0 = 5;
    float *table = rnd((size_t)V * c, 1), *pos = rnd((size_t)P * c, 1);
    int32_t *ids = malloc(sizeof *ids * n);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)((urand() + 1.0f) * 0.5f * V) % V;
    float *dt = up(table, sizeof(float) * V * c), *dp = up(pos, sizeof(float) * P * c);
    int32_t *di = up(ids, sizeof *ids * n);
    for (int wp = 0; wp < 2; wp++) {
        float *ref = malloc(sizeof(float) * n * c), *dy = gpu->alloc(sizeof(float) * n * c);
        cpu->embed(ref, table, wp ? pos : NULL, ids, n, T, pos0, c);
        gpu->embed(dy, dt, wp ? dp : NULL, di, n, T, pos0, c);
        float *got = down(dy, sizeof(float) * n * c);
        char what[64];
        snprintf(what, sizeof what, "embed%s B=%d T=%d c=%d", wp ? " +pos" : "", B, T, c);
        compare(what, got, ref, (size_t)n * c, 0, 0, 0); /* a copy or one add: bit-identical */
        free(ref), free(got);
    }
    gpu->free(dt), gpu->free(dp), gpu->free(di);
    free(table), free(pos), free(ids);
}

static void t_rotary_kv(int B, int T, int H, int d)
{
    size_t C = (size_t)H * d, nq = (size_t)B * T * 3 * C;
    float *qkv = rnd(nq, 1), *cs = malloc(sizeof(float) * T * d),
          *sn = malloc(sizeof(float) * T * d);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < d; j++) {
            double ang = t * pow(10000.0, -2.0 * (j % (d / 2)) / d);
            cs[(size_t)t * d + j] = (float)cos(ang), sn[(size_t)t * d + j] = (float)sin(ang);
        }
    float *ref = copy_of(qkv, sizeof(float) * nq), *dq = up(qkv, sizeof(float) * nq),
          *dc = up(cs, sizeof(float) * T * d), *ds = up(sn, sizeof(float) * T * d);
    cpu->rotary(ref, 3 * C, cs, sn, B, T, H, d);
    cpu->rotary(ref + C, 3 * C, cs, sn, B, T, H, d);
    gpu->rotary(dq, 3 * C, dc, ds, B, T, H, d);
    gpu->rotary(dq + C, 3 * C, dc, ds, B, T, H, d);
    float *got = down(dq, sizeof(float) * nq);
    char what[80];
    snprintf(what, sizeof what, "rotary q,k B=%d T=%d H=%d d=%d", B, T, H, d);
    /* x1 c - x2 s: two products and a difference, contracted into an FMA on the GPU */
    compare(what, got, ref, nq, 0, 1e-6, 1e-6);
    free(got);

    int past = 3, cap = past + T + 2;
    size_t ncache = (size_t)B * H * cap * d;
    float *k0 = rnd(ncache, 1), *v0 = rnd(ncache, 1);
    float *kr = copy_of(k0, sizeof(float) * ncache), *vr = copy_of(v0, sizeof(float) * ncache);
    float *dk = up(k0, sizeof(float) * ncache), *dv = up(v0, sizeof(float) * ncache);
    float *dq2 = up(ref, sizeof(float) * nq);
    cpu->kv_store(kr, vr, ref, B, T, H, d, past, cap);
    gpu->kv_store(dk, dv, dq2, B, T, H, d, past, cap);
    float *kg = down(dk, sizeof(float) * ncache), *vg = down(dv, sizeof(float) * ncache);
    snprintf(what, sizeof what, "kv_store k B=%d T=%d H=%d d=%d past=%d", B, T, H, d, past);
    compare(what, kg, kr, ncache, 0, 0, 0); /* copies: bit-identical, untouched slots too */
    snprintf(what, sizeof what, "kv_store v B=%d T=%d H=%d d=%d past=%d", B, T, H, d, past);
    compare(what, vg, vr, ncache, 0, 0, 0);
    gpu->free(dq2), gpu->free(dc), gpu->free(ds);
    free(qkv), free(cs), free(sn), free(ref), free(k0), free(v0);
    free(kr), free(vr), free(kg), free(vg);
}

/* mask: 0 none, 1 random holes (~25%) with batch row 1 fully hidden (zero output) */
static void t_attention(int B, int Tq, int Tk, int H, int d, int past, int mask)
{
    size_t C = (size_t)H * d, nq = (size_t)B * Tq * 3 * C;
    int cap = Tk + 3;
    size_t ncache = (size_t)B * H * cap * d, nout = (size_t)B * Tq * C;
    float *qkv = rnd(nq, 1), *k = rnd(ncache, 1), *v = rnd(ncache, 1);
    uint8_t *km = NULL;
    if (mask) {
        km = malloc((size_t)B * Tk);
        for (int i = 0; i < B * Tk; i++) km[i] = (i / Tk == 1) ? 0 : urand() > -0.5f;
    }
    float scale = 1.0f / sqrtf((float)d);
    float *ref = malloc(sizeof(float) * nout);
    cpu->attention(ref, qkv, 3 * C, k, v, B, Tq, Tk, cap, H, d, past, km, scale);
    float *dq = up(qkv, sizeof(float) * nq), *dk = up(k, sizeof(float) * ncache),
          *dv = up(v, sizeof(float) * ncache), *dout = gpu->alloc(sizeof(float) * nout);
    uint8_t *dm = up(km, (size_t)B * Tk);
    gpu->attention(dout, dq, 3 * C, dk, dv, B, Tq, Tk, cap, H, d, past, dm, scale);
    float *got = down(dout, sizeof(float) * nout);
    char what[112];
    snprintf(what, sizeof what, "attention %s%s B=%d Tq=%d Tk=%d H=%d d=%d past=%d",
             past >= 0 ? "causal" : "full", mask ? " masked" : "", B, Tq, Tk, H, d, past);
    /* scores are d-term dot products in different orders (sgemm vs a loop), |score| <= ~3, so
     * exp(score) carries ~1e-6 relative error; the output is a convex combination of v in
     * [-1,1] over up to Tk terms summed in float: ~1e-6 absolute, 1e-5 leaves room.
     * The tiled kernel (Tq >= 32) sums in another order again: p·v in float per lane over the
     * key tiles, rescaled by exp(m_old - m_new) (one rounding each time the max grows, a few
     * times per row), the softmax sum in float (32 lanes of Tk/32 terms, where the CPU sums in
     * double): ~1e-6 relative to sums that are >= 1 (the max key's p is 1), so still ~1e-6
     * absolute at Tk = 1024. The bound still catches real errors: one key too many or too few
     * (causal off-by-one, a wrong mask) moves the outputs of a row seeing n keys by
     * ~|v_j - out| / n, ~5e-4 for most of them even at n = 1024, and a wrong row or tile
     * offset by O(1) */
    compare(what, got, ref, nout, 0, 1e-5, 1e-4);
    gpu->free(dq), gpu->free(dk), gpu->free(dv);
    if (dm) gpu->free(dm);
    free(qkv), free(k), free(v), free(km), free(ref), free(got);
}

// ---- rows -------------------------------------------------------------------------------------

static void t_softmax(int n, int c)
{
    float *x = rnd((size_t)n * c, 10); /* logits in [-10, 10]: exp spans 9 decades */
    float *dx = up(x, sizeof(float) * n * c);
    for (int lg = 0; lg < 2; lg++) {
        float *ref = malloc(sizeof(float) * n * c), *dy = gpu->alloc(sizeof(float) * n * c);
        (lg ? cpu->log_softmax : cpu->softmax)(ref, x, n, c);
        (lg ? gpu->log_softmax : gpu->softmax)(dy, dx, n, c);
        float *got = down(dy, sizeof(float) * n * c);
        char what[64];
        snprintf(what, sizeof what, "%s n=%d c=%d", lg ? "log_softmax" : "softmax", n, c);
        if (lg) /* x - lse, lse from a double sum (only its order differs) rounded to float:
                 * at most 1 ulp of values up to ~30, 4e-6 */
            compare(what, got, ref, (size_t)n * c, 0, 1e-5, 1e-6);
        else /* exp in double, one float rounding: relative 1e-7; atol covers tiny values */
            compare(what, got, ref, (size_t)n * c, 0, 1e-9, 1e-5);
        free(ref), free(got);
    }
    int32_t *tg = malloc(sizeof *tg * n);
    for (int i = 0; i < n; i++) tg[i] = (int32_t)((urand() + 1.0f) * 0.5f * c) % c;
    int32_t *dt = up(tg, sizeof *tg * n);
    double *ref = malloc(sizeof(double) * n), *dlp = gpu->alloc(sizeof(double) * n);
    cpu->log_softmax_pick(ref, x, tg, n, c);
    gpu->log_softmax_pick(dlp, dx, dt, n, c);
    double *got = down(dlp, sizeof(double) * n);
    char what[64];
    snprintf(what, sizeof what, "log_softmax_pick n=%d c=%d", n, c);
    /* float exp terms (CPU exp_vec vs CUDA expf, each <= 2 ulp) summed in double: log(sum)
     * agrees to ~3e-7; the float x - max is exact on both sides */
    compare(what, got, ref, n, 1, 2e-6, 1e-6);
    gpu->free(dt), gpu->free(dx);
    free(tg), free(ref), free(got), free(x);
}

/* draw_rows: the same token for every row (the sums differ only in rounding, so a token could
 * differ only where u·total lies within ~1e-16 of a boundary: not at these draws). Rows: random
 * logits at two scales and temperatures; with n >= 3 also a row holding a NaN (both sides: the
 * last index) and a row that is -inf but for one entry (that entry, whatever u). */
static void t_draw_rows(int n, int c)
{
    float *x = rnd((size_t)n * c, 1);
    double *u = malloc(sizeof *u * n);
    for (int i = 0; i < n; i++) u[i] = (urand() + 1.0) * 0.5;
    if (n >= 3) {
        x[(size_t)1 * c + c / 3] = NAN;
        for (int j = 0; j < c; j++) x[(size_t)2 * c + j] = j == c / 2 ? 0.5f : -INFINITY;
    }
    for (int v = 0; v < 4; v++) {
        float scale = v & 1 ? 10.0f : 1.0f; /* peaked rows and flat ones */
        double inv_t = v & 2 ? 1.0 / 0.7 : 1.0;
        float *xs = copy_of(x, sizeof(float) * n * c);
        for (size_t i = 0; i < (size_t)n * c; i++) xs[i] *= scale;
        float *dx = up(xs, sizeof(float) * n * c);
        double *du = up(u, sizeof *u * n);
        int32_t *ref = malloc(sizeof *ref * n), *dtok = gpu->alloc(sizeof *dtok * n);
        cpu->draw_rows(ref, xs, u, n, c, inv_t);
        gpu->draw_rows(dtok, dx, du, n, c, inv_t);
        int32_t *got = down(dtok, sizeof *got * n);
        int bad = 0;
        for (int i = 0; i < n; i++)
            if (got[i] != ref[i]) {
                if (bad++ < 5) NOTE("  row %d: cuda %d cpu %d", i, got[i], ref[i]);
            }
        bool specials = n < 3 || (ref[1] == c - 1 && ref[2] == c / 2);
        CHECK(bad == 0 && specials, "draw_rows n=%d c=%d scale %g inv_t %.3g: %d of %d tokens "
              "differ%s", n, c, scale, inv_t, bad, n, specials ? "" : "; NaN or one-entry row wrong");
        gpu->free(dx), gpu->free(du);
        free(xs), free(ref), free(got);
    }
    free(x), free(u);
}

// ---- main -------------------------------------------------------------------------------------

int main(int argc, char **argv)
{
    int status = op_check_start(argc, argv);
    if (status >= 0) return status;

    /* shapes: the first of each pair is block-aligned, the second is not (771 = 3·257,
     * 37 rows, d = 34 whose half 17 is odd, Tk = 257) */
    t_matmul(64, 256, 512);
    t_matmul(37, 771, 333);
    t_matmul(1, 768, 2304); /* decoding: one row */
    t_matmul(3, 100, 70);   /* 3 rows: a block of 4 with one clamped row */
    t_matmul_rows_invariant(37, 771, 333);
    t_layernorm(4, 768);
    t_layernorm(37, 771);
    t_unary(1 << 16);
    t_unary(100003);
    t_modulate(2, 5, 256);
    t_modulate(3, 7, 771);
    t_embed(2, 16, 256);
    t_embed(3, 13, 771);
    t_rotary_kv(2, 16, 4, 64);
    t_rotary_kv(3, 13, 3, 34);
    t_attention(2, 1, 38, 3, 64, 37, 0);   /* KV-cache decoding: CPU per-query path */
    t_attention(2, 11, 16, 3, 64, 5, 0);   /* a prompt block after a past: CPU GEMM path */
    t_attention(1, 130, 130, 4, 32, 0, 0); /* causal from scratch */
    t_attention(2, 100, 100, 4, 32, -1, 1); /* SEDD, padding mask, batch row 1 all masked */
    t_attention(1, 257, 257, 2, 64, -1, 0); /* SEDD, Tk not a multiple of 128 */
    t_attention(1, 4, 700, 2, 64, -1, 1);   /* short query block, CPU per-query masked path */
    /* the CUDA tiled kernel (Tq >= 32; 64 queries and 64 keys per tile): */
    t_attention(2, 32, 51, 3, 34, 19, 1);    /* smallest tiled block, after a past, d = 34, mask */
    t_attention(2, 70, 70, 2, 128, -1, 1);   /* d = 128 (the largest tiled d), 2 query tiles */
    t_attention(1, 65, 65, 2, 96, 0, 0);     /* d = 96, causal, a 1-query last tile */
    t_attention(1, 1024, 1024, 4, 64, -1, 0); /* Figure 1 shapes (H = 4 of the 32 heads): SEDD */
    t_attention(1, 1024, 1024, 4, 64, 0, 0);  /* ... and GPT-2's causal prompt */
    t_softmax(4, 50257);
    t_softmax(37, 771);
    t_draw_rows(5, 50257);
    t_draw_rows(37, 771);
    t_draw_rows(2, 7); /* fewer entries than threads: most slices empty */
    NOTE("max diff over all cases: %.3g", worst_diff);
    return tap_done();
}
