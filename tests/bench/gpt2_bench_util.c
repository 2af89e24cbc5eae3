/* gpt2_bench_util: the pieces bench_gpt2.sh needs that no tool provides (benchmark-only).
 *   gpt2_bench_util ckpt DIR L H C V NP   random GPT-2 checkpoint (hub layout, F32, N(0, 0.02)
 *                                         weights from Philox, LayerNorm weights 1, biases 0)
 *   gpt2_bench_util stream N T V          N records of T random token ids < V, on stdout
 *   gpt2_bench_util peak [SIZE]           best-of-5 sgemm GFLOP/s at SIZE^3 (default 2048)
 *                                         with the OpenBLAS kernel the project selects */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#include <omp.h>

#include "backend.h"
#include "philox.h"
#include "safetensors.h"
#include "tstream.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* N(0, sd) by Box-Muller from Philox keyed by (tensor index, element). */
static void normal(float *x, size_t n, uint32_t tensor, float sd)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i += 2) {
        uint32_t w[4];
        philox_draw(1234, tensor, (uint32_t)(i >> 32), (uint32_t)i, 0, w);
        double u = philox_u01_f64(w[0], w[1]), v = philox_u01_f64(w[2], w[3]);
        double r = sqrt(-2 * log(u));
        x[i] = (float)(sd * r * cos(2 * M_PI * v));
        if (i + 1 < n) x[i + 1] = (float)(sd * r * sin(2 * M_PI * v));
    }
}

static int make_ckpt(const char *dir, int L, int H, int C, int V, int NP)
{
    enum { MAXT = 4 + 12 * 64 };
    if (L > 64) return 1;
    st_tensor t[MAXT];
    char names[MAXT][64];
    size_t n = 0;
    float *bufs[MAXT];
#define ADD(name_fmt, idx, d0, d1, kind)                                                   \
    do {                                                                                  \
        snprintf(names[n], sizeof names[n], name_fmt, idx);                               \
        size_t numel = (size_t)(d0) * ((d1) > 0 ? (size_t)(d1) : 1);                      \
        float *b = malloc(numel * sizeof *b);                                             \
        if (!b) return 1;                                                                 \
        if ((kind) == 0) normal(b, numel, (uint32_t)n, 0.02f);                            \
        for (size_t q = 0; (kind) != 0 && q < numel; q++) b[q] = (kind) == 1 ? 1.0f : 0.0f; \
        t[n] = (st_tensor){.name = names[n], .dtype = ST_F32, .ndim = (d1) > 0 ? 2 : 1,   \
                           .shape = {(d0), (d1) > 0 ? (d1) : 0}, .data = b};              \
        bufs[n++] = b;                                                                    \
    } while (0)
    ADD("wte.weight%.0d", 0, V, C, 0);
    ADD("wpe.weight%.0d", 0, NP, C, 0);
    for (int i = 0; i < L; i++) {
        ADD("h.%d.ln_1.weight", i, C, 0, 1);
        ADD("h.%d.ln_1.bias", i, C, 0, 2);
        ADD("h.%d.attn.c_attn.weight", i, C, 3 * C, 0);
        ADD("h.%d.attn.c_attn.bias", i, 3 * C, 0, 2);
        ADD("h.%d.attn.c_proj.weight", i, C, C, 0);
        ADD("h.%d.attn.c_proj.bias", i, C, 0, 2);
        ADD("h.%d.ln_2.weight", i, C, 0, 1);
        ADD("h.%d.ln_2.bias", i, C, 0, 2);
        ADD("h.%d.mlp.c_fc.weight", i, C, 4 * C, 0);
        ADD("h.%d.mlp.c_fc.bias", i, 4 * C, 0, 2);
        ADD("h.%d.mlp.c_proj.weight", i, 4 * C, C, 0);
        ADD("h.%d.mlp.c_proj.bias", i, C, 0, 2);
    }
    ADD("ln_f.weight%.0d", 0, C, 0, 1);
    ADD("ln_f.bias%.0d", 0, C, 0, 2);
#undef ADD
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *fp = fopen(path, "w");
    if (!fp) return perror(path), 1;
    fprintf(fp,
            "{\"activation_function\": \"gelu_new\", \"architectures\": [\"GPT2LMHeadModel\"],\n"
            " \"bos_token_id\": %d, \"eos_token_id\": %d, \"layer_norm_epsilon\": 1e-05,\n"
            " \"model_type\": \"gpt2\", \"n_ctx\": %d, \"n_embd\": %d, \"n_head\": %d,\n"
            " \"n_layer\": %d, \"n_positions\": %d, \"vocab_size\": %d}\n",
            V - 1, V - 1, NP, C, H, L, NP, V);
    if (fclose(fp) != 0) return perror(path), 1;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_meta meta = {"format", "pt"};
    err_t e;
    int rc = st_write(path, t, n, &meta, 1, &e);
    if (rc < 0) fprintf(stderr, "%s\n", e.msg);
    for (size_t i = 0; i < n; i++) free(bufs[i]);
    return rc < 0;
}

static int make_stream(long n, long T, long V)
{
    err_t e;
    ts_header h = {0};
    ts_record r = {0};
    ts_writer_t *w;
    if (ts_header_init(&h, "gpt2", (uint64_t)V, V - 1, &e) < 0 || !(w = ts_writer_open(stdout, &h, &e)))
        return fprintf(stderr, "%s\n", e.msg), 1;
    for (long i = 0; i < n; i++) {
        uint32_t *tok = ts_record_resize(&r, (size_t)T, &e);
        if (!tok) return 1;
        r.id = (uint64_t)i;
        for (long t = 0; t < T; t++) {
            uint32_t x[4];
            philox_draw(99, (uint64_t)i, 0, (uint32_t)t, 0, x);
            tok[t] = x[0] % (uint32_t)(V - 1);
        }
        if (ts_write(w, &r, &e) < 0) return fprintf(stderr, "%s\n", e.msg), 1;
    }
    int rc = ts_writer_close(w, &e);
    ts_record_free(&r);
    ts_header_free(&h);
    return rc < 0;
}

static int peak(int n)
{
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
          *c = malloc(sizeof(float) * n * n);
    if (!a || !b || !c) return 1;
    normal(a, (size_t)n * n, 1, 1), normal(b, (size_t)n * n, 2, 1);
    /* the best of OpenBLAS's own threading and the backend's column split (one single-threaded
     * sgemm per OpenMP thread), whichever the machine runs faster */
    double best = 0;
    for (int way = 0; way < 2; way++) {
        openblas_set_num_threads(way == 0 ? omp_get_max_threads() : 1);
        for (int r = 0; r < 6; r++) {
            double t0 = now();
            if (way == 0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
            else
                backend_cpu.matmul(c, a, b, NULL, n, n, n, BE_IN_OUT, false);
            double g = 2.0 * n * n * n / (now() - t0) / 1e9;
            if (r > 0 && g > best) best = g; /* the first run warms up the threads */
        }
    }
    printf("%.1f %s\n", best, backend_cpu_blas_core());
    free(a), free(b), free(c);
    return 0;
}

int main(int argc, char **argv)
{
    backend_cpu_blas_init(argc, argv);
    if (argc == 8 && strcmp(argv[1], "ckpt") == 0)
        return make_ckpt(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), atoi(argv[7]));
    if (argc == 5 && strcmp(argv[1], "stream") == 0)
        return make_stream(atol(argv[2]), atol(argv[3]), atol(argv[4]));
    if ((argc == 2 || argc == 3) && strcmp(argv[1], "peak") == 0) return peak(argc == 3 ? atoi(argv[2]) : 2048);
    fprintf(stderr, "usage: gpt2_bench_util ckpt DIR L H C V NP | stream N T V | peak [SIZE]\n");
    return 2;
}
