/* test_train_ops: every training op of the CUDA backend (kernels/backward.cu, kernels/optim.cu)
 * against the CPU backend (lib/backend_cpu_train.c, the reference itself) on random inputs at
 * two or more shapes each, one of them not a multiple of the block sizes (CU_BLOCK = 256, the
 * 32 x 32 column-sum blocks, 128-thread attention blocks). Beside the values, each case checks
 * the contract of lib/backend.h: gradients start from random non-zero values, since backward
 * ops ADD into them; NULL gradient pointers are skipped (the other outputs still right);
 * cross_entropy with dx aliasing x; causal and non-causal attention; attention_backward leaves
 * the q part of dqkv's neighbours (K and V) alone. Reductions must not depend on the launch:
 * two runs of the same op give the same bits.
 * Tolerance: |cuda - cpu| <= atol + rtol·|cpu| per element, written beside each case with its
 * reason. Harness and exit codes: op_check.h (77 = no CUDA device, skipped; --cpu-self runs
 * the CPU backend against itself). */
#include "op_check.h"

/* host copy of n random floats in [-scale, scale) and its upload */
static float *pair(size_t n, float scale, float **dev)
{
    float *h = rnd(n, scale);
    *dev = up(h, n * sizeof *h);
    return h;
}

static float *fcopy(const float *p, size_t n) { return copy_of(p, n * sizeof *p); }

/* downloads dev (freeing it) and compares it with ref */
static void check_down(const char *what, float *dev, const float *ref, size_t n, double atol,
                       double rtol)
{
    float *got = down(dev, n * sizeof *got);
    compare(what, got, ref, n, 0, atol, rtol);
    free(got);
}

// ---- matmul -----------------------------------------------------------------------------------

/* want: bit 0 dx, bit 1 dw, bit 2 dbias */
static void t_matmul_backward(int n, int in, int out)
{
    size_t nx = (size_t)n * in, nw = (size_t)in * out, ny = (size_t)n * out;
    float *gx, *gw, *gy;
    float *x = pair(nx, 1, &gx), *w = pair(nw, 1, &gw), *dy = pair(ny, 1, &gy);
    static const int wants[] = {7, 6, 1};
    for (int lay = 0; lay < 2; lay++)
        for (size_t k = 0; k < sizeof wants / sizeof *wants; k++) {
            int want = wants[k];
            enum be_layout L = lay ? BE_OUT_IN : BE_IN_OUT;
            float *gdx, *gdw, *gdb;
            float *dx = pair(nx, 1, &gdx), *dw = pair(nw, 1, &gdw), *db = pair(out, 1, &gdb);
            cpu->matmul_backward(want & 1 ? dx : NULL, want & 2 ? dw : NULL,
                                 want & 4 ? db : NULL, dy, x, w, n, in, out, L);
            gpu->matmul_backward(want & 1 ? gdx : NULL, want & 2 ? gdw : NULL,
                                 want & 4 ? gdb : NULL, gy, gx, gw, n, in, out, L);
            char what[128];
            const char *ls = lay ? "out_in" : "in_out";
            /* fp32 sums of `out` (dx) or `n` (dw) products of values in [-1,1] in different
             * orders (OpenBLAS tiles vs cuBLAS): ~sqrt(k)·1e-6, the bound is 10x that, as in
             * test_ops' matmul; an untouched (NULL) gradient must come back bit-identical */
            snprintf(what, sizeof what, "matmul_backward %s dx%s n=%d in=%d out=%d", ls,
                     want & 1 ? "" : " (NULL)", n, in, out);
            check_down(what, gdx, dx, nx, 5e-7 * out, 1e-5);
            snprintf(what, sizeof what, "matmul_backward %s dw%s n=%d in=%d out=%d", ls,
                     want & 2 ? "" : " (NULL)", n, in, out);
            check_down(what, gdw, dw, nw, 5e-7 * n, 1e-5);
            /* dbias: n terms summed in double on both sides, one float rounding */
            snprintf(what, sizeof what, "matmul_backward %s dbias%s n=%d out=%d", ls,
                     want & 4 ? "" : " (NULL)", n, out);
            check_down(what, gdb, db, out, 1e-6, 1e-6);
            free(dx), free(dw), free(db);
        }
    gpu->free(gx), gpu->free(gw), gpu->free(gy);
    free(x), free(w), free(dy);
}

// ---- normalisation and pointwise --------------------------------------------------------------

static void t_layernorm_backward(int n, int c)
{
    size_t nx = (size_t)n * c;
    float *gx, *gy, *gw;
    float *x = pair(nx, 3, &gx), *dy = pair(nx, 1, &gy), *w = pair(c, 1, &gw);
    static const char *names[] = {"w+b", "w, db NULL", "no w", "dx NULL"};
    for (int v = 0; v < 4; v++) {
        float *gdx, *gdw, *gdb;
        float *dx = pair(nx, 1, &gdx), *dw = pair(c, 1, &gdw), *db = pair(c, 1, &gdb);
        float *dxp = v == 3 ? NULL : dx, *dbp = v == 1 ? NULL : db;
        const float *wp = v == 2 ? NULL : w;
        cpu->layernorm_backward(dxp, dw, dbp, dy, x, wp, n, c, 1e-5f);
        gpu->layernorm_backward(v == 3 ? NULL : gdx, gdw, v == 1 ? NULL : gdb, gy, gx,
                                v == 2 ? NULL : gw, n, c, 1e-5f);
        char what[96];
        /* dx = rstd (g - mean g - xhat mean(g xhat)): double sums in another order, so mean and
         * rstd may differ in the last float bit, plus FMA contraction: a few ulp of terms ~3 */
        snprintf(what, sizeof what, "layernorm_backward %s dx n=%d c=%d", names[v], n, c);
        check_down(what, gdx, dx, nx, 1e-5, 1e-5);
        /* dw, db: n terms in double; xhat carries the ulp differences above (n <= 37 terms ~3) */
        snprintf(what, sizeof what, "layernorm_backward %s dw n=%d c=%d", names[v], n, c);
        check_down(what, gdw, dw, c, 1e-5, 1e-5);
        snprintf(what, sizeof what, "layernorm_backward %s db n=%d c=%d", names[v], n, c);
        check_down(what, gdb, db, c, 1e-6, 1e-6);
        free(dx), free(dw), free(db);
    }
    /* the same op twice on the device: the column sums have a fixed shape */
    float *g1 = up(dy, c * sizeof(float)), *g2 = up(dy, c * sizeof(float));
    gpu->layernorm_backward(NULL, g1, NULL, gy, gx, gw, n, c, 1e-5f);
    gpu->layernorm_backward(NULL, g2, NULL, gy, gx, gw, n, c, 1e-5f);
    float *h1 = down(g1, c * sizeof(float));
    char what[96];
    snprintf(what, sizeof what, "layernorm_backward dw twice n=%d c=%d", n, c);
    check_down(what, g2, h1, c, 0, 0);
    free(h1);
    gpu->free(gx), gpu->free(gy), gpu->free(gw);
    free(x), free(dy), free(w);
}

static void t_unary_backward(size_t n)
{
    float *gx, *gy;
    float *x = pair(n, 8, &gx), *dy = pair(n, 1, &gy); /* [-8, 8]: both tails */
    for (int op = 0; op < 2; op++) {
        float *gdx, *dx = pair(n, 1, &gdx);
        if (op == 0) cpu->gelu_tanh_backward(dx, x, dy, n), gpu->gelu_tanh_backward(gdx, gx, gy, n);
        else cpu->silu_backward(dx, x, dy, n), gpu->silu_backward(gdx, gx, gy, n);
        char what[64];
        snprintf(what, sizeof what, "%s_backward n=%zu", op ? "silu" : "gelu_tanh", n);
        /* expf vs exp_vec (<= 2 ulp each) in s; 1 - s near s = 1 carries ulp(1) = 6e-8 absolute,
         * multiplied by x·du up to ~120 in gelu's derivative: ~1e-5 absolute at worst */
        check_down(what, gdx, dx, n, 2e-5, 1e-5);
        free(dx);
    }
    gpu->free(gx), gpu->free(gy);
    free(x), free(dy);
}

static void t_modulate_backward(int B, int T, int C)
{
    size_t nx = (size_t)B * T * C, nm = (size_t)B * 6 * C, st = 6 * (size_t)C;
    float *gx, *gy, *gm;
    float *x = pair(nx, 2, &gx), *dy = pair(nx, 1, &gy), *mod = pair(nm, 1, &gm);
    for (int v = 0; v < 2; v++) { /* v = 1: dx NULL */
        float *gdx, *gdm;
        float *dx = pair(nx, 1, &gdx), *dmod = pair(nm, 1, &gdm);
        /* shift = chunk 0, scale = chunk 1 of the (B,6C) adaLN output, as SEDD passes them */
        cpu->modulate_backward(v ? NULL : dx, dmod, dmod + C, dy, x, mod + C, st, B, T, C);
        gpu->modulate_backward(v ? NULL : gdx, gdm, gdm + C, gy, gx, gm + C, st, B, T, C);
        char what[96];
        /* dy (1 + s) added: one FMA contraction, values up to ~3 */
        snprintf(what, sizeof what, "modulate_backward dx%s B=%d T=%d C=%d", v ? " (NULL)" : "",
                 B, T, C);
        check_down(what, gdx, dx, nx, 1e-6, 1e-6);
        /* dshift, dscale: T terms in double, one float rounding; the other chunks untouched */
        snprintf(what, sizeof what, "modulate_backward dmod B=%d T=%d C=%d", B, T, C);
        check_down(what, gdm, dmod, nm, 1e-6, 1e-6);
        free(dx), free(dmod);
    }
    for (int v = 0; v < 2; v++) { /* gated_add, gate = chunk 2; v = 1: dgate NULL */
        float *gdy2, *gdm;
        float *dy2 = pair(nx, 1, &gdy2), *dmod = pair(nm, 1, &gdm);
        cpu->gated_add_backward(v ? NULL : dmod + 2 * C, dy2, mod + 2 * C, st, dy, x, B, T, C);
        gpu->gated_add_backward(v ? NULL : gdm + 2 * C, gdy2, gm + 2 * C, st, gy, gx, B, T, C);
        char what[96];
        snprintf(what, sizeof what, "gated_add_backward dy B=%d T=%d C=%d", B, T, C);
        check_down(what, gdy2, dy2, nx, 1e-6, 1e-6); /* g·dx added: one FMA */
        snprintf(what, sizeof what, "gated_add_backward dmod%s B=%d T=%d C=%d",
                 v ? " (dgate NULL)" : "", B, T, C);
        check_down(what, gdm, dmod, nm, 1e-6, 1e-6); /* T terms in double */
        free(dy2), free(dmod);
    }
    gpu->free(gx), gpu->free(gy), gpu->free(gm);
    free(x), free(dy), free(mod);
}

// ---- embedding, rotary, kv_store, attention -----------------------------------------------

static void t_embed_backward(int B, int T, int c)
{
    int V = 13, n = B * T; /* a small vocabulary: every id repeats */
    int32_t *ids = malloc(sizeof *ids * n);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)((urand() + 1.0f) * 0.5f * V) % V;
    int32_t *gi = up(ids, sizeof *ids * n);
    float *gy, *dy = pair((size_t)n * c, 1, &gy);
    for (int wp = 0; wp < 3; wp++) { /* 0: table and pos, 1: table only, 2: pos only */
        float *gdt, *gdp;
        float *dt = pair((size_t)V * c, 1, &gdt), *dp = pair((size_t)T * c, 1, &gdp);
        cpu->embed_backward(wp == 2 ? NULL : dt, wp == 1 ? NULL : dp, ids, dy, n, T, c);
        gpu->embed_backward(wp == 2 ? NULL : gdt, wp == 1 ? NULL : gdp, gi, gy, n, T, c);
        char what[96];
        /* float additions in index order on both sides: bit-identical */
        snprintf(what, sizeof what, "embed_backward table%s B=%d T=%d c=%d",
                 wp == 2 ? " (NULL)" : "", B, T, c);
        check_down(what, gdt, dt, (size_t)V * c, 0, 0);
        snprintf(what, sizeof what, "embed_backward pos%s B=%d T=%d c=%d",
                 wp == 1 ? " (NULL)" : "", B, T, c);
        check_down(what, gdp, dp, (size_t)T * c, 0, 0);
        free(dt), free(dp);
    }
    gpu->free(gi), gpu->free(gy);
    free(ids), free(dy);
}

static void t_rotary_kv_backward(int B, int T, int H, int d)
{
    size_t C = (size_t)H * d, nq = (size_t)B * T * 3 * C, nkv = (size_t)B * H * T * d;
    float *cs = malloc(sizeof(float) * T * d), *sn = malloc(sizeof(float) * T * d);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < d; j++) {
            double ang = t * pow(10000.0, -2.0 * (j % (d / 2)) / d);
            cs[(size_t)t * d + j] = (float)cos(ang), sn[(size_t)t * d + j] = (float)sin(ang);
        }
    float *gc = up(cs, sizeof(float) * T * d), *gs = up(sn, sizeof(float) * T * d);
    float *gq, *dqkv = pair(nq, 1, &gq);
    cpu->rotary_backward(dqkv, 3 * C, cs, sn, B, T, H, d);
    cpu->rotary_backward(dqkv + C, 3 * C, cs, sn, B, T, H, d);
    gpu->rotary_backward(gq, 3 * C, gc, gs, B, T, H, d);
    gpu->rotary_backward(gq + C, 3 * C, gc, gs, B, T, H, d);
    char what[96];
    /* g1 c + g2 s: two products and a sum, contracted into an FMA on the GPU; V untouched */
    snprintf(what, sizeof what, "rotary_backward q,k B=%d T=%d H=%d d=%d", B, T, H, d);
    check_down(what, gq, dqkv, nq, 1e-6, 1e-6);
    free(dqkv);
    float *gk, *gv;
    float *dk = pair(nkv, 1, &gk), *dv = pair(nkv, 1, &gv);
    for (int v = 0; v < 3; v++) { /* 0: dk and dv, 1: dk NULL, 2: dv NULL */
        float *gd, *d3 = pair(nq, 1, &gd);
        cpu->kv_store_backward(d3, v == 1 ? NULL : dk, v == 2 ? NULL : dv, B, T, H, d);
        gpu->kv_store_backward(gd, v == 1 ? NULL : gk, v == 2 ? NULL : gv, B, T, H, d);
        snprintf(what, sizeof what, "kv_store_backward%s B=%d T=%d H=%d d=%d",
                 v == 1 ? " dk NULL" : v == 2 ? " dv NULL" : "", B, T, H, d);
        check_down(what, gd, d3, nq, 0, 0); /* one float addition: bit-identical */
        free(d3);
    }
    gpu->free(gc), gpu->free(gs), gpu->free(gk), gpu->free(gv);
    free(cs), free(sn), free(dk), free(dv);
}

/* want: bit 0 dq, bit 1 dk, bit 2 dv */
static void t_attention_backward(int B, int T, int H, int d, bool causal, int want)
{
    size_t C = (size_t)H * d, nq = (size_t)B * T * 3 * C, nkv = (size_t)B * H * T * d;
    size_t nout = (size_t)B * T * C;
    float *gq, *gk, *gv, *go;
    float *qkv = pair(nq, 1, &gq), *k = pair(nkv, 1, &gk), *v = pair(nkv, 1, &gv);
    float *dout = pair(nout, 1, &go);
    float *gdq, *gdk, *gdv;
    float *dq = pair(nq, 1, &gdq), *dk = pair(nkv, 1, &gdk), *dv = pair(nkv, 1, &gdv);
    float scale = 1.0f / sqrtf((float)d);
    cpu->attention_backward(want & 1 ? dq : NULL, want & 2 ? dk : NULL, want & 4 ? dv : NULL,
                            dout, qkv, 3 * C, k, v, B, T, H, d, causal, scale);
    gpu->attention_backward(want & 1 ? gdq : NULL, want & 2 ? gdk : NULL, want & 4 ? gdv : NULL,
                            go, gq, 3 * C, gk, gv, B, T, H, d, causal, scale);
    char what[128], shape[64];
    snprintf(shape, sizeof shape, "%s B=%d T=%d H=%d d=%d", causal ? "causal" : "full", B, T, H,
             d);
    /* scores are d-term dot products (|s| <~ 1) in other orders (sgemm vs a loop), expf vs
     * exp_vec: P to ~1e-6 relative; dP = dO·v to ~1e-6 of its size (~sqrt(d)); dv, dq, dk are
     * sums over up to T keys/queries of such products in float: ~1e-5 absolute, 5e-5 leaves
     * room. dq's stride-3C rows: the K and V parts of dqkv must come back untouched */
    snprintf(what, sizeof what, "attention_backward dq (in dqkv)%s %s",
             want & 1 ? "" : " (NULL)", shape);
    check_down(what, gdq, dq, nq, 5e-5, 1e-4);
    snprintf(what, sizeof what, "attention_backward dk%s %s", want & 2 ? "" : " (NULL)", shape);
    check_down(what, gdk, dk, nkv, 5e-5, 1e-4);
    snprintf(what, sizeof what, "attention_backward dv%s %s", want & 4 ? "" : " (NULL)", shape);
    check_down(what, gdv, dv, nkv, 5e-5, 1e-4);
    if (want == 7) { /* twice on the device from the same start: the same bits */
        float *g1 = up(dq, nq * sizeof(float)), *g2 = up(dq, nq * sizeof(float));
        float *k1 = up(dk, nkv * sizeof(float)), *k2 = up(dk, nkv * sizeof(float));
        gpu->attention_backward(g1, k1, NULL, go, gq, 3 * C, gk, gv, B, T, H, d, causal, scale);
        gpu->attention_backward(g2, k2, NULL, go, gq, 3 * C, gk, gv, B, T, H, d, causal, scale);
        float *h1 = down(g1, nq * sizeof(float)), *hk = down(k1, nkv * sizeof(float));
        snprintf(what, sizeof what, "attention_backward dq twice %s", shape);
        check_down(what, g2, h1, nq, 0, 0);
        snprintf(what, sizeof what, "attention_backward dk twice %s", shape);
        check_down(what, k2, hk, nkv, 0, 0);
        free(h1), free(hk);
    }
    gpu->free(gq), gpu->free(gk), gpu->free(gv), gpu->free(go);
    free(qkv), free(k), free(v), free(dout), free(dq), free(dk), free(dv);
}

// ---- cross-entropy ----------------------------------------------------------------------------

static void t_cross_entropy(int n, int c)
{
    size_t nx = (size_t)n * c;
    float *gx, *x = pair(nx, 10, &gx); /* logits in [-10, 10]: exp spans 9 decades */
    int32_t *tg = malloc(sizeof *tg * n);
    for (int i = 0; i < n; i++) /* every fifth row ignored */
        tg[i] = i % 5 == 3 ? -1 : (int32_t)((urand() + 1.0f) * 0.5f * c) % c;
    int32_t *gt = up(tg, sizeof *tg * n);
    const float dscale = 0.37f;
    static const char *names[] = {"dx", "no dx", "dx aliasing x"};
    for (int v = 0; v < 3; v++) {
        double *loss = malloc(sizeof(double) * n), *gl = gpu->alloc(sizeof(double) * n);
        float *gdx, *dx = pair(nx, 1, &gdx); /* overwritten (not added), even ignored rows */
        float *ga = up(x, nx * sizeof(float)), *xa = fcopy(x, nx);
        if (v == 0) cpu->cross_entropy(loss, dx, x, tg, n, c, dscale);
        if (v == 1) cpu->cross_entropy(loss, NULL, x, tg, n, c, dscale);
        if (v == 2) cpu->cross_entropy(loss, xa, xa, tg, n, c, dscale);
        if (v == 0) gpu->cross_entropy(gl, gdx, gx, gt, n, c, dscale);
        if (v == 1) gpu->cross_entropy(gl, NULL, gx, gt, n, c, dscale);
        if (v == 2) gpu->cross_entropy(gl, ga, ga, gt, n, c, dscale);
        double *got = down(gl, sizeof(double) * n);
        char what[96];
        /* float exp terms summed in double (CPU exp_vec vs expf, each <= 2 ulp): log(sum) to
         * ~3e-7, as test_ops' log_softmax_pick; ignored rows exactly 0 */
        snprintf(what, sizeof what, "cross_entropy loss (%s) n=%d c=%d", names[v], n, c);
        compare(what, got, loss, n, 1, 2e-6, 1e-6);
        free(got);
        /* softmax·dscale: a few ulp relative; at the target p - dscale cancels, so ~ulp(dscale)
         * absolute */
        snprintf(what, sizeof what, "cross_entropy dx (%s) n=%d c=%d", names[v], n, c);
        check_down(what, gdx, dx, nx, 1e-7, 1e-5);
        snprintf(what, sizeof what, "cross_entropy x after (%s) n=%d c=%d", names[v], n, c);
        check_down(what, ga, xa, nx, 1e-7, 1e-5);
        free(loss), free(dx), free(xa);
    }
    gpu->free(gx), gpu->free(gt);
    free(x), free(tg);
}

// ---- optimiser --------------------------------------------------------------------------------

static void t_optim(size_t n)
{
    float *gx, *x = pair(n, 2, &gx);
    double ref = cpu->sumsq(x, n), got = gpu->sumsq(gx, n);
    char what[96];
    snprintf(what, sizeof what, "sumsq n=%zu", n);
    /* double sums of fixed 16384-element tiles, tile sums added in order on both sides; only
     * the order inside a tile differs: ~1e-16 relative */
    compare(what, &got, &ref, 1, 1, 0, 1e-12);

    float *xs = fcopy(x, n);
    cpu->scale(xs, 0.3f, n);
    gpu->scale(gx, 0.3f, n);
    snprintf(what, sizeof what, "scale n=%zu", n);
    check_down(what, gx, xs, n, 0, 0); /* one correctly rounded product */

    /* AdamW written with explicitly rounded operations in the CPU's order: expected to be
     * bit-identical; 2 ulp allowed (should sqrt or a division round otherwise) */
    float *gp, *gg, *gm, *gv;
    float *p = pair(n, 1, &gp), *g = pair(n, 1, &gg), *m = pair(n, 0.1f, &gm);
    float *v = rnd(n, 0.01f);
    for (size_t i = 0; i < n; i++) v[i] = fabsf(v[i]); /* a second moment is >= 0 */
    gv = up(v, n * sizeof *v);
    static const int steps[] = {1, 7};
    for (int s = 0; s < 2; s++) {
        float wd = s ? 0.1f : 0.0f;
        cpu->adamw(p, g, m, v, n, 3e-4f, 0.9f, 0.95f, 1e-8f, wd, steps[s]);
        gpu->adamw(gp, gg, gm, gv, n, 3e-4f, 0.9f, 0.95f, 1e-8f, wd, steps[s]);
        float *hp = down(gp, n * sizeof *hp), *hm = down(gm, n * sizeof *hm),
              *hv = down(gv, n * sizeof *hv);
        snprintf(what, sizeof what, "adamw p step %d wd %g n=%zu", steps[s], wd, n);
        compare(what, hp, p, n, 0, 0, 2.5e-7);
        snprintf(what, sizeof what, "adamw m step %d n=%zu", steps[s], n);
        compare(what, hm, m, n, 0, 0, 2.5e-7);
        snprintf(what, sizeof what, "adamw v step %d n=%zu", steps[s], n);
        compare(what, hv, v, n, 0, 0, 2.5e-7);
        /* the next step starts from the CPU's state on both sides */
        gp = up(p, n * sizeof *p), gm = up(m, n * sizeof *m), gv = up(v, n * sizeof *v);
        free(hp), free(hm), free(hv);
    }
    float *ge, *ema = pair(n, 1, &ge);
    cpu->ema(ema, p, n, 0.999f);
    gpu->ema(ge, gp, n, 0.999f);
    snprintf(what, sizeof what, "ema n=%zu", n);
    check_down(what, ge, ema, n, 0, 2.5e-7); /* as adamw: rounded like the CPU */
    gpu->free(gp), gpu->free(gg), gpu->free(gm), gpu->free(gv);
    free(x), free(xs), free(p), free(g), free(m), free(v), free(ema);
}

// ---- main -------------------------------------------------------------------------------------

int main(int argc, char **argv)
{
    int status = op_check_start(argc, argv);
    if (status >= 0) return status;

    /* shapes: the first of each pair is block-aligned, the second is not (771 = 3·257, 37 rows,
     * d = 34 whose half 17 is odd, T = 257 and 130 against 128-thread blocks) */
    t_matmul_backward(64, 256, 512);
    t_matmul_backward(37, 771, 333);
    t_layernorm_backward(4, 768);
    t_layernorm_backward(37, 771);
    t_unary_backward(1 << 16);
    t_unary_backward(100003);
    t_modulate_backward(2, 5, 256);
    t_modulate_backward(3, 37, 771);
    t_modulate_backward(70000, 1, 3); /* B above gridDim.y's 65535: col_sums in two launches */
    t_embed_backward(2, 16, 256);
    t_embed_backward(3, 13, 771);
    t_rotary_kv_backward(2, 16, 4, 64);
    t_rotary_kv_backward(3, 13, 3, 34);
    t_attention_backward(1, 130, 4, 32, true, 7);
    t_attention_backward(2, 100, 3, 34, false, 7);
    t_attention_backward(1, 257, 2, 64, true, 7);
    t_attention_backward(1, 257, 2, 64, false, 7);
    t_attention_backward(2, 64, 2, 64, true, 1);  /* dq only */
    t_attention_backward(2, 64, 2, 64, false, 6); /* dk and dv only */
    t_attention_backward(1, 1024, 1, 64, true, 7); /* GPT-2's context, the row kernels' size */
    t_cross_entropy(4, 50257);
    t_cross_entropy(37, 771);
    t_optim(1000);
    t_optim(1 << 16);
    t_optim(100003);
    NOTE("max diff over all cases: %.3g", worst_diff);
    return tap_done();
}
