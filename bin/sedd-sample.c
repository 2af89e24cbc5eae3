/* sedd-sample: samples from a SEDD model with the original sampler (Euler or analytic predictor,
 * final denoiser); unconditional, or conditioned on the tokens of an input stream kept at a prefix,
 * a suffix or any positions (docs/stream.md, "Conditioning"). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cli.h"
#include "progress.h"
#include "sedd.h"
#include "sedd_sampler.h"
#include "tstream.h"

static int usage(FILE *fp, int status)
{
    fprintf(fp,
            "Usage: sedd-sample --model DIR [options] [cond.msgpack|-]\n"
            "Samples token sequences from a SEDD checkpoint (config.json + model.safetensors) with\n"
            "the sampler of the original code and writes a token stream (docs/stream.md).\n"
            "Without an input: -n unconditional samples, ids --first-id.. on. With an input stream\n"
            "(a file, or - for stdin): one sample per record, same id, keeping its tokens fixed\n"
            "(a prefix; or at \"positions\"; plus an optional \"suffix\"; see docs/stream.md).\n"
            "Randomness is Philox keyed by (seed, record id, step, position): the same record id\n"
            "gives the same sample whatever --batch, --threads or sharding.\n"
            "\n"
            "Options:\n"
            "  -m, --model DIR              SEDD checkpoint directory (required)\n"
            "      --steps K                predictor steps; K+1 model calls with the denoiser [1024]\n"
            "      --sampler euler|analytic predictor [analytic]\n"
            "      --length L               tokens per sample [the model's length]\n"
            "  -n, --count N                unconditional samples [1]\n"
            "      --first-id ID            id of the first unconditional sample (shards) [0]\n"
            "      --seed S                 random seed [0]\n"
            "  -b, --batch B                sequences sampled together (their scores take\n"
            "                               B x length x vocab x 4 bytes) [1]\n"
            "      --sampling-precision P   64, or 32 to reproduce the original's fp32 Gumbel draws [64]\n"
            "      --eps E                  final time of the grid [1e-5]\n"
            "      --keep-prefix N          keep only the first N tokens of each input record [all]\n"
            "      --keep-suffix N          put the last N tokens of each input record at the end\n"
            "                               of the sample (infilling between prefix and suffix) [0]\n"
            "      --no-denoise             skip the final denoiser step\n"
            "      --device DEV             cpu, cuda, or auto (cuda when a GPU is visible) [cpu]\n"
            "      --precision P            fp32, or bf16 (bf16 matrix products; cuda only) [fp32]\n"
            "  -j, --threads N              threads, 0 = all cores [0]\n"
            "  -o, --output FILE            write here, atomically [stdout]\n"
            "      --force                  write the binary stream to a terminal\n"
            "      --no-provenance          leave this run out of the header's provenance\n"
            "      --progress               report progress on stderr even when not a terminal\n"
            "  -h, --help                   print this help and exit\n"
            "      --version                print the version and build and exit\n"
            "\n" CLI_EXIT_TEXT "\n"
            "Example: sedd-sample --model ckpt/sedd-small --steps 256 -n 8 | detokenize --lines\n");
    return status;
}

struct options {
    struct cli_common common;
    const char *model, *input;
    struct cli_device dev;
    int steps, batch, precision, denoise;
    long long keep_prefix, keep_suffix; /* -1: all (prefix) */
    long long length, count;
    uint64_t first_id;
    enum sedd_predictor predictor;
    double eps;
};

enum { OPT_STEPS = 256, OPT_SAMPLER, OPT_LENGTH, OPT_FIRST, OPT_PREC, OPT_EPS,
       OPT_NO_DENOISE, OPT_KEEP_PREFIX, OPT_KEEP_SUFFIX };

static void parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'}, {"steps", required_argument, NULL, OPT_STEPS},
        {"sampler", required_argument, NULL, OPT_SAMPLER},
        {"length", required_argument, NULL, OPT_LENGTH},
        {"count", required_argument, NULL, 'n'}, {"first-id", required_argument, NULL, OPT_FIRST},
        CLI_OPTION_SEED, {"batch", required_argument, NULL, 'b'},
        {"sampling-precision", required_argument, NULL, OPT_PREC},
        {"eps", required_argument, NULL, OPT_EPS},
        {"no-denoise", no_argument, NULL, OPT_NO_DENOISE},
        {"keep-prefix", required_argument, NULL, OPT_KEEP_PREFIX},
        {"keep-suffix", required_argument, NULL, OPT_KEEP_SUFFIX}, CLI_OPTION_DEVICE,
        CLI_OPTION_PRECISION, CLI_OPTION_THREADS, CLI_OPTION_OUTPUT, CLI_OPTION_FORCE,
        CLI_OPTION_NO_PROVENANCE, CLI_OPTION_PROGRESS, CLI_OPTION_HELP, CLI_OPTION_VERSION,
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->dev.device = "cpu";
    o->steps = 1024;
    o->batch = 1;
    o->precision = 64;
    o->denoise = 1;
    o->keep_prefix = -1;
    o->count = 1;
    o->predictor = SEDD_PRED_ANALYTIC;
    o->eps = 1e-5;
    int c, count_given = 0;
    while ((c = getopt_long(argc, argv, "m:n:b:j:o:h", longopts, NULL)) != -1) {
        if (cli_common_option(c, optarg, &o->common, &o->dev, usage)) continue;
        switch (c) {
        case 'm': o->model = optarg; break;
        case OPT_STEPS: o->steps = (int)cli_parse_int("--steps", optarg, 1, 1 << 20); break;
        case OPT_SAMPLER:
            if (strcmp(optarg, "euler") == 0) o->predictor = SEDD_PRED_EULER;
            else if (strcmp(optarg, "analytic") == 0) o->predictor = SEDD_PRED_ANALYTIC;
            else die_usage("invalid value '%s' for --sampler (expected euler or analytic)", optarg);
            break;
        case OPT_LENGTH: o->length = cli_parse_int("--length", optarg, 1, 1 << 20); break;
        case 'n': o->count = cli_parse_int("--count", optarg, 0, 1LL << 40); count_given = 1; break;
        case OPT_FIRST: o->first_id = (uint64_t)cli_parse_int("--first-id", optarg, 0, INT64_MAX); break;
        case 'b': o->batch = (int)cli_parse_int("--batch", optarg, 1, 4096); break;
        case OPT_PREC: o->precision = (int)cli_parse_int("--sampling-precision", optarg, 32, 64);
            if (o->precision != 32 && o->precision != 64)
                die_usage("invalid value '%s' for --sampling-precision (expected 32 or 64)", optarg);
            break;
        case OPT_EPS: o->eps = cli_parse_double("--eps", optarg, 1e-12, 0.5); break;
        case OPT_NO_DENOISE: o->denoise = 0; break;
        case OPT_KEEP_PREFIX: o->keep_prefix = cli_parse_int("--keep-prefix", optarg, 0, 1 << 20); break;
        case OPT_KEEP_SUFFIX: o->keep_suffix = cli_parse_int("--keep-suffix", optarg, 0, 1 << 20); break;
        default: exit(cli_short_usage(usage));
        }
    }
    if (!o->model) die_usage("--model DIR is required");
    if (argc - optind > 1) die_usage("expected at most one input stream");
    o->input = optind < argc ? argv[optind] : NULL;
    if (!o->input && (o->keep_prefix >= 0 || o->keep_suffix))
        die_usage("--keep-prefix and --keep-suffix apply to an input stream");
    if (o->input && count_given) die_usage("-n counts unconditional samples; with an input stream "
                                           "every record gets one sample");
}

/* One batch of sequences of a common length, and its records. */
struct batch {
    int n, cap, L;
    uint64_t *ids;
    int64_t *fixed, *x;  /* (cap, L) */
    ts_record *recs;     /* conditional: the input records (fields pass through) */
    bool any_fixed;
};

struct progress_ctx {
    progress *p;
    uint64_t base;
};

static void on_step(void *ctx, int k)
{
    struct progress_ctx *pc = ctx;
    progress_update(pc->p, pc->base + (uint64_t)k);
}

/* Reads the conditioning fields of r into fixed (L entries, -1 = free); dies naming the record
 * on a bad field. */
static void read_condition(const ts_record *r, int L, int64_t V, long long keep_prefix,
                           long long keep_suffix, int64_t *fixed)
{
    err_t e;
    for (int l = 0; l < L; l++) fixed[l] = -1;
    size_t n = r->n_tokens;
    double *pos = NULL;
    long long np = ts_record_get_f64_array(r, "positions", NULL, 0, &e);
    if (np <= -2) die("record %llu: positions: %s", (unsigned long long)r->id, e.msg);
    if (np >= 0) {
        if ((size_t)np != n)
            die("record %llu: %lld positions for %zu tokens (they pair up one to one)",
                (unsigned long long)r->id, np, n);
        pos = malloc(((size_t)np + 1) * sizeof *pos);
        if (!pos) die("out of memory");
        ts_record_get_f64_array(r, "positions", pos, (size_t)np, &e);
    }
    /* without positions: the last keep_suffix tokens go to the end, keep_prefix lead */
    size_t n_suf = 0, n_pre = n;
    if (!pos) {
        n_suf = (size_t)keep_suffix < n ? (size_t)keep_suffix : n;
        n_pre = n - n_suf;
        if (keep_prefix >= 0 && (size_t)keep_prefix < n_pre) n_pre = (size_t)keep_prefix;
        if ((long long)(n_pre + n_suf) > L)
            die("record %llu: %zu kept tokens do not fit in --length %d",
                (unsigned long long)r->id, n_pre + n_suf, L);
    }
    for (size_t i = 0; i < n; i++) {
        if (!pos && i >= n_pre && i < n - n_suf) continue;
        double p = pos ? pos[i] : i < n_pre ? (double)i : (double)(L - (long long)(n - i));
        if (!(p >= 0 && p < L) || p != (double)(long long)p)
            die("record %llu: position %g is not an integer in 0..%d", (unsigned long long)r->id,
                p, L - 1);
        if (r->tokens[i] >= (uint64_t)V)
            die("record %llu: token %u is outside the model's %lld tokens",
                (unsigned long long)r->id, r->tokens[i], (long long)V);
        fixed[(long long)p] = r->tokens[i];
    }
    free(pos);
    long long ns = ts_record_get_f64_array(r, "suffix", NULL, 0, &e);
    if (ns <= -2) die("record %llu: suffix: %s", (unsigned long long)r->id, e.msg);
    if (ns > L)
        die("record %llu: a suffix of %lld tokens does not fit in --length %d",
            (unsigned long long)r->id, ns, L);
    double *suf = malloc(((size_t)(ns > 0 ? ns : 0) + 1) * sizeof *suf);
    if (!suf) die("out of memory");
    if (ns > 0) ts_record_get_f64_array(r, "suffix", suf, (size_t)ns, &e);
    for (long long i = 0; i < ns; i++) {
        if (!(suf[i] >= 0 && suf[i] < (double)V) || suf[i] != (double)(long long)suf[i])
            die("record %llu: suffix token %g is not a token id", (unsigned long long)r->id, suf[i]);
        fixed[L - ns + i] = (int64_t)suf[i];
    }
    free(suf);
}

int main(int argc, char **argv)
{
    cli_init("sedd-sample");
    backend_cpu_blas_init(argc, argv);
    struct options o;
    parse_options(argc, argv, &o);
    cli_device_open(&o.dev);
    sedd_set_threads(cli_threads(o.common.threads));
    err_t e;
    sedd_model_t *m = sedd_load(o.model, o.dev.be, &e);
    if (!m) die("%s", e.msg);
    const struct config_sedd *cfg = sedd_config(m);
    const int L = (int)(o.length ? o.length : cfg->length);
    sedd_graph g;
    sedd_graph_init(&g, cfg->graph, cfg->tokens);
    sedd_noise nz;
    sedd_noise_init(&nz, cfg);

    ts_reader_t *rd = NULL;
    FILE *in = NULL;
    ts_header h = {0};
    if (o.input) {
        in = cli_open_input(o.input, usage);
        if (!(rd = ts_reader_open(in, o.input, &e)) || ts_header_copy(&h, ts_reader_header(rd), &e) < 0)
            die("%s", e.msg);
    } else if (ts_header_init(&h, cfg->tokens == 50257 ? "gpt2" : "none", (uint64_t)cfg->tokens,
                              cfg->tokens == 50257 ? 50256 : -1, &e) < 0) {
        die("%s", e.msg);
    }
    /* without the denoiser an absorbing sample may keep mask tokens (id N): widen the vocabulary */
    if (!o.denoise && cfg->graph == CONFIG_GRAPH_ABSORB && h.vocab_size < (uint64_t)cfg->vocab)
        h.vocab_size = (uint64_t)cfg->vocab;
    if (cli_add_provenance(&h, &o.common, argc, argv, o.common.seed, o.dev.label, &e) < 0)
        die("%s", e.msg);
    cli_output out;
    cli_output_open(&out, o.common.output, true, o.common.force);
    ts_writer_t *w = ts_writer_open(out.fp, &h, &e);
    if (!w) die("%s", e.msg);

    struct batch b = {.cap = o.batch, .L = L};
    b.ids = calloc((size_t)o.batch, sizeof *b.ids);
    b.fixed = malloc((size_t)o.batch * (size_t)L * sizeof *b.fixed);
    b.x = malloc((size_t)o.batch * (size_t)L * sizeof *b.x);
    b.recs = calloc((size_t)o.batch, sizeof *b.recs);
    uint32_t *toks = malloc((size_t)L * sizeof *toks);
    if (!b.ids || !b.fixed || !b.x || !b.recs || !toks) die("out of memory");
    sedd_sample_opts so = {.predictor = o.predictor, .steps = o.steps, .eps = o.eps,
                           .denoise = o.denoise, .precision = o.precision, .seed = o.common.seed,
                           .progress = on_step};
    progress prog;
    int calls = o.steps + o.denoise;
    progress_start(&prog, "steps", o.input ? 0 : (uint64_t)((o.count + o.batch - 1) / o.batch) *
                                                    (uint64_t)calls, o.common.progress);
    struct progress_ctx pc = {.p = &prog};
    so.progress_ctx = &pc;

    uint64_t made = 0;
    bool eof = false;
    while (!eof) {
        b.n = 0;
        b.any_fixed = false;
        while (b.n < b.cap) {
            int64_t *fx = b.fixed + (size_t)b.n * (size_t)L;
            if (rd) {
                int rc = ts_read(rd, &b.recs[b.n], &e);
                if (rc == ERR_EOF) { eof = true; break; }
                if (rc < 0) die("%s", e.msg);
                read_condition(&b.recs[b.n], L, cfg->tokens, o.keep_prefix, o.keep_suffix, fx);
                b.ids[b.n] = b.recs[b.n].id;
                b.any_fixed = true;
            } else {
                if (made == (uint64_t)o.count) { eof = true; break; }
                for (int l = 0; l < L; l++) fx[l] = -1;
                b.ids[b.n] = o.first_id + made++;
            }
            b.n++;
        }
        if (b.n == 0) break;
        if (sedd_sample(sedd_backend(m), &g, &nz, &so, sedd_score_device_masked, m, b.n, L, b.ids,
                        b.any_fixed ? b.fixed : NULL, NULL, b.x, NULL, &e) < 0)
            die("%s", e.msg);
        pc.base += (uint64_t)calls;
        for (int i = 0; i < b.n; i++) {
            ts_record *r = &b.recs[i];
            if (!rd) ts_record_clear(r);
            r->id = b.ids[i];
            for (int l = 0; l < L; l++) toks[l] = (uint32_t)b.x[(size_t)i * (size_t)L + (size_t)l];
            cli_output_check(&out, ts_record_set_tokens(r, toks, (size_t)L, &e), &e);
            cli_output_check(&out, ts_write(w, r, &e), &e);
        }
    }
    progress_finish(&prog);
    cli_output_check(&out, ts_writer_close(w, &e), &e);
    cli_output_commit(&out);
    for (int i = 0; i < o.batch; i++) ts_record_free(&b.recs[i]);
    free(b.ids), free(b.fixed), free(b.x), free(b.recs), free(toks);
    ts_header_free(&h);
    ts_reader_free(rd);
    if (in && in != stdin) fclose(in);
    sedd_free(m);
    return EXIT_OK;
}
