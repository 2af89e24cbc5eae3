/* latency: wall time to generate B sequences of L tokens — GPT-2 with a KV cache (a prefill of
 * <|endoftext|>, then one decoding step per further token, each drawn from the full softmax)
 * against SEDD's sampler of the original code at k steps (k predictor calls of the model on the
 * whole (B, L) batch, then the denoiser) — as in the paper's Figure 1 (specs/eval.md §8).
 * Warm-up runs, then the median and the 10th/90th percentiles of R timed runs; model loading is
 * not timed. On --device cuda the models run on the GPU; a run ends with its tokens in host
 * memory (both models' tokens stay on the device between steps and come back at the end), so
 * each timed run includes the device's synchronisation. Prints CSV or JSON rows (model, steps,
 * batch, length, median_s, p10, p90, repeats, device, precision). */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "cli.h"
#include "device.h"
#include "gpt2.h"
#include "sedd.h"
#include "sedd_graph.h"
#include "sedd_noise.h"
#include "sedd_sampler.h"

static int usage(FILE *fp, int status)
{
    fprintf(fp,
            "Usage: latency [--gpt2 DIR] [--sedd DIR] [options]\n"
            "Times the generation of one batch of B sequences of L tokens, from the start of\n"
            "sampling until the tokens are in host memory (loading is not timed):\n"
            "  gpt2  GPT-2 with a KV cache: the prefill of <|endoftext|>, then L-1 decoding\n"
            "        steps; every token drawn from the full softmax (row steps = L)\n"
            "  sedd  SEDD's sampler at k steps (--sampler, 64-bit draws) plus the denoiser:\n"
            "        k+1 forward passes of the model on (B, L), one row per k of --steps\n"
            "W warm-up runs, then R timed runs per row; median_s, p10 and p90 are their median\n"
            "and 10th/90th percentiles (linear interpolation, as numpy) in seconds.\n"
            "\n"
            "Options:\n"
            "      --gpt2 DIR         GPT-2 directory (config.json + model.safetensors)\n"
            "      --sedd DIR         SEDD directory (released layout); at least one of the two\n"
            "      --steps LIST       SEDD step counts, comma-separated [16,32,64,128]\n"
            "      --batch LIST       batch sizes, comma-separated [1]\n"
            "  -l, --length L         tokens per sequence [the smallest context of the models]\n"
            "      --sampler S        analytic or euler (SEDD predictor) [analytic]\n"
            "  -r, --repeats R        timed runs per row [5]\n"
            "  -w, --warmup W         untimed runs before them [1]\n"
            "  -f, --format F         csv or json [csv]\n"
            "      --device DEV       cpu, cuda or auto (models and KV cache on the GPU) [cpu]\n"
            "      --precision P      fp32 or bf16 (cuda only: bf16 tensor-core matrix products,\n"
            "                         fp32 storage and accumulation) [fp32]\n"
            "      --seed S           random seed of the draws [0]\n"
            "  -j, --threads N        threads, 0 = all cores [0]\n"
            "  -o, --output FILE      write here, atomically [stdout]\n"
            "  -h, --help             print this help and exit\n"
            "      --version          print the version and build and exit\n"
            "\n" CLI_EXIT_TEXT "\n"
            "Example: latency --gpt2 ckpt/gpt2 --sedd ckpt/sedd-small --steps 8,64,256 -l 1024\n");
    return status;
}

enum { MAX_LIST = 64 };

struct options {
    struct cli_common common;
    const char *gpt2, *sedd, *format;
    struct cli_device dev;  /* --device, --precision */
    int steps[MAX_LIST], n_steps, batch[MAX_LIST], n_batch;
    long long length, repeats, warmup;
    enum sedd_predictor predictor;
};

enum { OPT_GPT2 = 256, OPT_SEDD, OPT_STEPS, OPT_BATCH, OPT_SAMPLER };

/* Parses a comma-separated list of integers in [lo, hi] into out (at most MAX_LIST), or dies
 * with exit 2 naming the option. @return the count. */
static int parse_list(const char *option, const char *value, long long lo, long long hi, int *out)
{
    int n = 0;
    char *copy = strdup(value), *save = NULL;
    if (!copy) die("out of memory");
    if (!*value || *value == ',' || strstr(value, ",,") || value[strlen(value) - 1] == ',') die_usage("%s '%s': an empty item", option, value);
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        if (n == MAX_LIST) die_usage("%s: more than %d items", option, MAX_LIST);
        out[n++] = (int)cli_parse_int(option, item, lo, hi);
    }
    free(copy);
    if (n == 0) die_usage("%s '%s': an empty list", option, value);
    return n;
}

static void parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"gpt2", required_argument, NULL, OPT_GPT2}, {"sedd", required_argument, NULL, OPT_SEDD},
        {"steps", required_argument, NULL, OPT_STEPS}, {"batch", required_argument, NULL, OPT_BATCH},
        {"length", required_argument, NULL, 'l'}, {"sampler", required_argument, NULL, OPT_SAMPLER},
        {"repeats", required_argument, NULL, 'r'}, {"warmup", required_argument, NULL, 'w'},
        {"format", required_argument, NULL, 'f'}, CLI_OPTION_DEVICE, CLI_OPTION_PRECISION,
        CLI_OPTION_SEED, CLI_OPTION_THREADS, CLI_OPTION_OUTPUT, CLI_OPTION_HELP, CLI_OPTION_VERSION,
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->steps[0] = 16, o->steps[1] = 32, o->steps[2] = 64, o->steps[3] = 128, o->n_steps = 4;
    o->batch[0] = 1, o->n_batch = 1;
    o->repeats = 5;
    o->warmup = 1;
    o->format = "csv";
    o->dev.device = "cpu";
    o->predictor = SEDD_PRED_ANALYTIC;
    int c;
    while ((c = getopt_long(argc, argv, "l:r:w:f:j:o:h", longopts, NULL)) != -1) {
        if (cli_common_option(c, optarg, &o->common, &o->dev, usage)) continue;
        switch (c) {
        case OPT_GPT2: o->gpt2 = optarg; break;
        case OPT_SEDD: o->sedd = optarg; break;
        case OPT_STEPS: o->n_steps = parse_list("--steps", optarg, 1, 1 << 20, o->steps); break;
        case OPT_BATCH: o->n_batch = parse_list("--batch", optarg, 1, 4096, o->batch); break;
        case 'l': o->length = cli_parse_int("--length", optarg, 1, 1 << 20); break;
        case OPT_SAMPLER:
            if (strcmp(optarg, "analytic") == 0) o->predictor = SEDD_PRED_ANALYTIC;
            else if (strcmp(optarg, "euler") == 0) o->predictor = SEDD_PRED_EULER;
            else die_usage("--sampler must be analytic or euler, not '%s'", optarg);
            break;
        case 'r': o->repeats = cli_parse_int("--repeats", optarg, 1, 1000000); break;
        case 'w': o->warmup = cli_parse_int("--warmup", optarg, 0, 1000000); break;
        case 'f':
            if (strcmp(optarg, "csv") != 0 && strcmp(optarg, "json") != 0)
                die_usage("--format must be csv or json, not '%s'", optarg);
            o->format = optarg;
            break;
        default: exit(cli_short_usage(usage));
        }
    }
    if (optind < argc) die_usage("unexpected argument '%s'", argv[optind]);
    if (!o->gpt2 && !o->sedd) die_usage("give --gpt2 DIR, --sedd DIR or both");
}

/* The --precision value as printed ("fp32" when not given). */
static const char *precision_of(const struct options *o)
{
    return o->dev.precision ? o->dev.precision : "fp32";
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* What one timed run generates: the models and the buffers of the largest batch. */
struct bench {
    gpt2_t *gpt2;
    gpt2_state *state;
    float *logits;      /* (B,V) the prefill's */
    int32_t *tok, *drawn;
    double *u;
    int *pos;
    sedd_model_t *sedd;
    sedd_graph graph;
    sedd_noise noise;
    uint64_t *ids;
    int64_t *x;
    int L;
    uint64_t seed;
};

/* One GPT-2 run: B sequences of L tokens from <|endoftext|>, each drawn from the full softmax by
 * the inverse CDF (draw_rows): the first from the prefill's logits on the host, the others by
 * gpt2_decode where the model runs (on a GPU the logits and tokens stay there until the end).
 * Dies on a model error. */
static void run_gpt2(struct bench *b, int B)
{
    const struct config_gpt2 *g = gpt2_config(b->gpt2);
    int V = (int)g->vocab_size;
    err_t e;
    for (int r = 0; r < B; r++) b->tok[r] = (int32_t)(g->eos_token_id >= 0 ? g->eos_token_id : g->bos_token_id);
    struct gpt2_out po = {.logits = b->logits, .logits_last = 1};
    if (gpt2_forward(b->gpt2, b->state, 0, B, 1, b->tok, 0, NULL, &po, &e) < 0) die("%s", e.msg);
    for (int r = 0; r < B; r++) b->u[r] = gpt2_draw_uniform(b->seed, (uint64_t)r, 1, 64);
    backend_cpu.draw_rows(b->tok, b->logits, b->u, B, V, 1.0);
    if (b->L < 2) return;
    for (int r = 0; r < B; r++) b->pos[r] = 1;  /* decoding step k - 1 feeds position k */
    for (int k = 1; k < b->L; k++)
        for (int r = 0; r < B; r++)
            b->u[(size_t)(k - 1) * B + r] =
                gpt2_draw_uniform(b->seed, (uint64_t)r, (uint32_t)k + 1, 64);
    if (gpt2_decode(b->gpt2, b->state, B, b->tok, b->pos, b->L - 1, b->u, 1.0, b->drawn, &e) < 0)
        die("%s", e.msg);
}

/* One SEDD run: B unconditional sequences of L tokens at `steps` steps. */
static void run_sedd(struct bench *b, int B, int steps, enum sedd_predictor predictor)
{
    sedd_sample_opts so = {.predictor = predictor, .steps = steps, .eps = 1e-5, .denoise = true,
                           .precision = 64, .seed = b->seed};
    err_t e;
    if (sedd_sample(sedd_backend(b->sedd), &b->graph, &b->noise, &so, sedd_score_device, b->sedd,
                    B, b->L, b->ids, NULL, NULL, b->x, NULL, &e) < 0)
        die("%s", e.msg);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of sorted t (n >= 1), interpolated linearly between order statistics. */
static double quantile(const double *t, int n, double q)
{
    double h = q * (n - 1);
    int lo = (int)floor(h), hi = lo + 1 < n ? lo + 1 : lo;
    return t[lo] + (h - lo) * (t[hi] - t[lo]);
}

struct row {
    const char *model;
    int steps, batch;
    double median, p10, p90;
};

/* The output is written row by row as each is measured (flushed), so what a run that is stopped
 * early has measured is on stdout: print_head, then print_row for row i = 0, 1, ..., then
 * print_tail. */
static void print_head(FILE *fp, const struct options *o, int threads)
{
    if (strcmp(o->format, "csv") == 0)
        fprintf(fp, "model,steps,batch,length,median_s,p10,p90,repeats,device,precision\n");
    else
        fprintf(fp, "{\"tool\": \"latency\", \"device\": \"%s\", \"precision\": \"%s\", "
                    "\"threads\": %d, \"warmup\": %lld, \"sampler\": \"%s\", \"rows\": [",
                device_name(o->dev.kind), precision_of(o), threads, o->warmup,
                o->predictor == SEDD_PRED_ANALYTIC ? "analytic" : "euler");
    fflush(fp);
}

static void print_row(FILE *fp, const struct options *o, const struct row *r, int i, int L)
{
    if (strcmp(o->format, "csv") == 0)
        fprintf(fp, "%s,%d,%d,%d,%.6g,%.6g,%.6g,%lld,%s,%s\n", r->model, r->steps, r->batch, L,
                r->median, r->p10, r->p90, o->repeats, device_name(o->dev.kind), precision_of(o));
    else
        fprintf(fp, "%s\n  {\"model\": \"%s\", \"steps\": %d, \"batch\": %d, \"length\": %d, "
                    "\"median_s\": %.6g, \"p10\": %.6g, \"p90\": %.6g, \"repeats\": %lld}",
                i ? "," : "", r->model, r->steps, r->batch, L, r->median, r->p10, r->p90,
                o->repeats);
    fflush(fp);
}

static void print_tail(FILE *fp, const struct options *o)
{
    if (strcmp(o->format, "json") == 0) fprintf(fp, "\n]}\n");
}

int main(int argc, char **argv)
{
    backend_cpu_blas_init(argc, argv);
    cli_init("latency");
    struct options o;
    parse_options(argc, argv, &o);
    int threads = cli_threads(o.common.threads);
    backend_cpu_set_threads(threads);
    sedd_set_threads(threads);
    err_t e;
    cli_device_open(&o.dev);
    const backend *be = o.dev.be;
    struct bench b = {.seed = o.common.seed};
    int maxB = 0, ctx = 1 << 30;
    for (int i = 0; i < o.n_batch; i++)
        if (o.batch[i] > maxB) maxB = o.batch[i];
    if (o.gpt2) {
        if (!(b.gpt2 = gpt2_load(o.gpt2, NULL, be, &e))) die("%s", e.msg);
        ctx = (int)gpt2_config(b.gpt2)->n_positions;
    }
    if (o.sedd) {
        if (!(b.sedd = sedd_load(o.sedd, be, &e))) die("%s", e.msg);
        const struct config_sedd *cfg = sedd_config(b.sedd);
        if (cfg->length < ctx) ctx = (int)cfg->length;
        sedd_graph_init(&b.graph, cfg->graph, cfg->tokens);
        sedd_noise_init(&b.noise, cfg);
    }
    b.L = o.length ? (int)o.length : ctx;
    if (b.gpt2 && b.L > (int)gpt2_config(b.gpt2)->n_positions)
        die_usage("--length %d is longer than GPT-2's context (%lld)", b.L,
                  (long long)gpt2_config(b.gpt2)->n_positions);
    if (b.gpt2) {
        size_t V = (size_t)gpt2_config(b.gpt2)->vocab_size;
        b.state = gpt2_state_new(b.gpt2, maxB, b.L, maxB, &e);
        if (!b.state) die("%s", e.msg);
        b.logits = malloc((size_t)maxB * V * sizeof *b.logits);
        b.tok = malloc((size_t)maxB * sizeof *b.tok);
        b.drawn = malloc((size_t)maxB * b.L * sizeof *b.drawn);  /* (L - 1, B) draws */
        b.u = malloc((size_t)maxB * b.L * sizeof *b.u);
        b.pos = malloc((size_t)maxB * sizeof *b.pos);
        if (!b.logits || !b.tok || !b.drawn || !b.u || !b.pos) die("out of memory");
    }
    if (b.sedd) {
        b.ids = malloc((size_t)maxB * sizeof *b.ids);
        b.x = malloc((size_t)maxB * (size_t)b.L * sizeof *b.x);
        if (!b.ids || !b.x) die("out of memory");
        for (int r = 0; r < maxB; r++) b.ids[r] = (uint64_t)r;
    }

    double *t = malloc((size_t)o.repeats * sizeof *t);
    if (!t) die("out of memory");
    cli_output out;
    cli_output_open(&out, o.common.output, false, false);
    print_head(out.fp, &o, threads);
    int n = 0;
    for (int bi = 0; bi < o.n_batch; bi++) {
        int B = o.batch[bi];
        for (int si = -1; si < (b.sedd ? o.n_steps : 0); si++) {
            if (si < 0 && !b.gpt2) continue;
            for (long long rep = -o.warmup; rep < o.repeats; rep++) {
                double t0 = now_s();
                if (si < 0) run_gpt2(&b, B);
                else run_sedd(&b, B, o.steps[si], o.predictor);
                if (rep >= 0) t[rep] = now_s() - t0;
            }
            qsort(t, (size_t)o.repeats, sizeof *t, cmp_double);
            int R = (int)o.repeats;
            struct row r = {si < 0 ? "gpt2" : "sedd", si < 0 ? b.L : o.steps[si], B,
                            quantile(t, R, 0.5), quantile(t, R, 0.1), quantile(t, R, 0.9)};
            print_row(out.fp, &o, &r, n++, b.L);
        }
    }
    print_tail(out.fp, &o);
    cli_output_commit(&out);
    free(t), free(b.logits), free(b.tok), free(b.drawn), free(b.u), free(b.pos), free(b.ids);
    free(b.x);
    gpt2_state_free(b.state);
    gpt2_free(b.gpt2);
    sedd_free(b.sedd);
    return EXIT_OK;
}
