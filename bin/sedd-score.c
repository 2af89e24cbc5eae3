/* sedd-score: the SEDD perplexity bound of every record — the diffusion ELBO from the
 * score-entropy loss, estimated with K loss times per block — with its standard error. */
#include <getopt.h>
#include <math.h>
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
            "Usage: sedd-score --model DIR [options] [in.msgpack|-]\n"
            "Adds to every record of a token stream the SEDD upper bound on its negative\n"
            "log-likelihood: the score-entropy ELBO (t in [1e-3, 1]) estimated with K loss times,\n"
            "each with its own noised sequence. Fields added (docs/stream.md, \"SEDD fields\"):\n"
            "  nll         bound on -log p(tokens) in nats (sum over the record's blocks)\n"
            "  n_scored    tokens scored (all of the record's tokens)\n"
            "  nll_stderr  standard error of nll (K >= 2)\n"
            "  t_samples   K\n"
            "A record longer than --block is scored in consecutive blocks of --block tokens (the\n"
            "last one shorter, at its own length); their bounds and variances add up.\n"
            "\n"
            "Options:\n"
            "  -m, --model DIR         SEDD checkpoint directory (required)\n"
            "  -K, --t-samples K       loss times per block [16]\n"
            "      --t-sampling MODE   stratified (one uniform time per stratum), grid (stratum\n"
            "                          midpoints, as the fixtures) or iid [stratified]\n"
            "      --block N           block length for long records [the model's length]\n"
            "      --seed S            random seed (times and noised tokens) [0]\n"
            "      --device DEV        cpu, cuda, or auto (cuda when a GPU is visible) [cpu]\n"
            "      --precision P       fp32, or bf16 (bf16 matrix products; cuda only) [fp32]\n"
            "  -j, --threads N         threads, 0 = all cores [0]\n"
            "  -o, --output FILE       write here, atomically [stdout]\n"
            "      --force             write the binary stream to a terminal\n"
            "      --no-provenance     leave this run out of the header's provenance\n"
            "      --progress          report progress on stderr even when not a terminal\n"
            "  -h, --help              print this help and exit\n"
            "      --version           print the version and build and exit\n"
            "\n" CLI_EXIT_TEXT "\n"
            "Example: tokenize --lines --append-eos --block 1024 < wiki.txt |\n"
            "         sedd-score --model ckpt/sedd-small -K 32 | ppl\n");
    return status;
}

struct options {
    struct cli_common common;
    const char *model, *input;
    struct cli_device dev;
    int K;
    long long block;
    enum sedd_tgrid grid;
};

enum { OPT_TGRID = 256, OPT_BLOCK };

static void parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'}, {"t-samples", required_argument, NULL, 'K'},
        {"t-sampling", required_argument, NULL, OPT_TGRID},
        {"block", required_argument, NULL, OPT_BLOCK}, CLI_OPTION_SEED, CLI_OPTION_DEVICE,
        CLI_OPTION_PRECISION, CLI_OPTION_THREADS, CLI_OPTION_OUTPUT, CLI_OPTION_FORCE,
        CLI_OPTION_NO_PROVENANCE, CLI_OPTION_PROGRESS, CLI_OPTION_HELP, CLI_OPTION_VERSION,
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->dev.device = "cpu";
    o->K = 16;
    o->grid = SEDD_T_STRATIFIED;
    int c;
    while ((c = getopt_long(argc, argv, "m:K:j:o:h", longopts, NULL)) != -1) {
        if (cli_common_option(c, optarg, &o->common, &o->dev, usage)) continue;
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'K': o->K = (int)cli_parse_int("--t-samples", optarg, 1, 1 << 20); break;
        case OPT_TGRID:
            if (strcmp(optarg, "stratified") == 0) o->grid = SEDD_T_STRATIFIED;
            else if (strcmp(optarg, "grid") == 0) o->grid = SEDD_T_GRID;
            else if (strcmp(optarg, "iid") == 0) o->grid = SEDD_T_IID;
            else die_usage("invalid value '%s' for --t-sampling (expected stratified, grid or iid)",
                           optarg);
            break;
        case OPT_BLOCK: o->block = cli_parse_int("--block", optarg, 1, 1 << 20); break;
        default: exit(cli_short_usage(usage));
        }
    }
    if (!o->model) die_usage("--model DIR is required");
    if (argc - optind > 1) die_usage("expected at most one input stream");
    o->input = optind < argc ? argv[optind] : NULL;
}

int main(int argc, char **argv)
{
    cli_init("sedd-score");
    backend_cpu_blas_init(argc, argv);
    struct options o;
    parse_options(argc, argv, &o);
    cli_device_open(&o.dev);
    sedd_set_threads(cli_threads(o.common.threads));
    err_t e;
    sedd_model_t *m = sedd_load(o.model, o.dev.be, &e);
    if (!m) die("%s", e.msg);
    const struct config_sedd *cfg = sedd_config(m);
    const int block = (int)(o.block ? o.block : cfg->length);
    sedd_graph g;
    sedd_graph_init(&g, cfg->graph, cfg->tokens);
    sedd_noise nz;
    sedd_noise_init(&nz, cfg);

    FILE *in = cli_open_input(o.input, usage);
    const char *name = o.input && strcmp(o.input, "-") != 0 ? o.input : "stdin";
    ts_reader_t *rd = ts_reader_open(in, name, &e);
    ts_header h = {0};
    if (!rd || ts_header_copy(&h, ts_reader_header(rd), &e) < 0) die("%s", e.msg);
    if (cli_add_provenance(&h, &o.common, argc, argv, o.common.seed, o.dev.label, &e) < 0)
        die("%s", e.msg);
    cli_output out;
    cli_output_open(&out, o.common.output, true, o.common.force);
    ts_writer_t *w = ts_writer_open(out.fp, &h, &e);
    if (!w) die("%s", e.msg);

    /* the K noised copies of a block go through the model together, as many as fit 8 MiB of
     * log-scores, in calls of equal size (the bound has the same bits for any such batch) */
    const size_t block_bytes = (size_t)block * (size_t)cfg->vocab * sizeof(float);
    const size_t fit = ((size_t)8 << 20) / block_bytes, per_call = fit < 1 ? 1 : fit;
    const size_t calls = ((size_t)o.K + per_call - 1) / per_call;
    const int batch = (int)(((size_t)o.K + calls - 1) / calls);
    const backend *be = sedd_backend(m);  /* the log-scores stay where the model runs */
    float *ws = be->alloc((size_t)batch * block_bytes);
    int64_t *x0 = malloc((size_t)block * sizeof *x0);
    if (!ws || !x0) die("out of memory for a block of %d tokens", block);
    progress prog;
    progress_start(&prog, "records", 0, o.common.progress);
    ts_record r = {0};
    int rc;
    uint64_t n_rec = 0;
    while ((rc = ts_read(rd, &r, &e)) >= 0) {
        double nll = 0, var = 0;
        for (size_t lo = 0, j = 0; lo < r.n_tokens; lo += (size_t)block, j++) {
            size_t n = r.n_tokens - lo < (size_t)block ? r.n_tokens - lo : (size_t)block;
            for (size_t i = 0; i < n; i++) {
                x0[i] = r.tokens[lo + i];
                if (x0[i] >= cfg->tokens)
                    die("%s: record %llu: token %lld at position %zu is outside the model's %lld "
                        "tokens", name, (unsigned long long)r.id, (long long)x0[i], lo + i,
                        (long long)cfg->tokens);
            }
            double mean, se;
            if (sedd_sampler_bound(be, &g, &nz, sedd_score_device_masked, m, x0, (int)n, o.K,
                                   o.grid, o.common.seed, r.id, (uint32_t)lo, (uint32_t)j, batch,
                                   ws, &mean, &se, &e) < 0)
                die("%s: record %llu: %s", name, (unsigned long long)r.id, e.msg);
            nll += mean;
            var += se * se;
        }
        if (ts_record_set_f64(&r, "nll", nll, &e) < 0 ||
            ts_record_set_u64(&r, "n_scored", r.n_tokens, &e) < 0 ||
            (o.K > 1 && ts_record_set_f64(&r, "nll_stderr", sqrt(var), &e) < 0) ||
            ts_record_set_u64(&r, "t_samples", (uint64_t)o.K, &e) < 0)
            die("%s", e.msg);
        cli_output_check(&out, ts_write(w, &r, &e), &e);
        progress_update(&prog, ++n_rec);
    }
    if (rc != ERR_EOF) die("%s", e.msg);
    progress_finish(&prog);
    cli_output_check(&out, ts_writer_close(w, &e), &e);
    cli_output_commit(&out);
    ts_record_free(&r);
    ts_header_free(&h);
    ts_reader_free(rd);
    if (in != stdin) fclose(in);
    be->free(ws);
    free(x0);
    sedd_free(m);
    return EXIT_OK;
}
