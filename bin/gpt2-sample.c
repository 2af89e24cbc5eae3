/* gpt2-sample: ancestral sampling from GPT-2 with a KV cache — unconditional (from
 * <|endoftext|>) or continuing the records of a prompt stream. Every draw is Philox keyed by
 * (seed, record id, position), so a sample does not depend on --batch, --threads or sharding. */
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cli.h"
#include "gpt2.h"
#include "trunc_sample.h"
#include "tstream.h"

static int usage(FILE *fp, int status)
{
    fprintf(fp,
            "Usage: gpt2-sample -m DIR [options]\n"
            "       gpt2-sample -m DIR --prompts in.msgpack|- [options]\n"
            "Samples token sequences from a GPT-2 checkpoint. Unconditional samples start from\n"
            "<|endoftext|> (not written) and get ids --first-id .. --first-id+n-1; a prompt record\n"
            "keeps its id and fields and gets prompt + continuation as tokens, with prompt_length.\n"
            "\n"
            "Options:\n"
            "  -m, --model DIR        GPT-2 directory (config.json + model.safetensors)\n"
            "      --prompts FILE     continue the records of this stream ('-' = stdin)\n"
            "  -l, --length N         tokens to sample per record [the context; required with\n"
            "                         --prompts, where prompt + N must fit in the context]\n"
            "  -n, --num N            unconditional samples [1]\n"
            "      --first-id I       id of the first unconditional sample [0]; shards of one run\n"
            "                         use disjoint ranges: -n 4 --first-id 0, -n 4 --first-id 4\n"
            "  -b, --batch N          records decoded together [8]\n"
            "  -t, --temperature T    softmax temperature; 0 = greedy [1]\n"
            "  -k, --top-k K          keep the K most likely tokens, 0 = all [0]\n"
            "  -p, --top-p P          keep the smallest set of most likely tokens with mass >= P [1]\n"
            "      --seed S           random seed [0]\n"
            "      --rng-bits 64|32   precision of each uniform draw [64]\n"
            "  -j, --threads N        threads, 0 = all cores [0]\n"
            "      --device DEV       cpu, cuda, or auto (cuda when a GPU is visible) [cpu]\n"
            "      --precision P      fp32, or bf16 (bf16 matrix products; cuda only) [fp32]\n"
            "  -o, --output FILE      write here, atomically [stdout]\n"
            "      --force            write binary output to a terminal\n"
            "      --no-provenance    do not add this run to the header\n"
            "  -h, --help             print this help and exit\n"
            "      --version          print the version and build and exit\n"
            "\n" CLI_EXIT_TEXT "\n"
            "Example: gpt2-sample -m ckpt/gpt2 -n 8 -l 128 --seed 1 | detokenize --lines\n");
    return status;
}

struct options {
    struct cli_common common;
    const char *model, *prompts;
    struct cli_device dev;
    long long length, n, first_id, batch, top_k, rng_bits;
    double temperature, top_p;
};

enum { OPT_PROMPTS = 256, OPT_FIRST_ID, OPT_RNG_BITS };

static void parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'}, {"prompts", required_argument, NULL, OPT_PROMPTS},
        {"length", required_argument, NULL, 'l'}, {"num", required_argument, NULL, 'n'},
        {"first-id", required_argument, NULL, OPT_FIRST_ID},
        {"batch", required_argument, NULL, 'b'},
        {"temperature", required_argument, NULL, 't'}, {"top-k", required_argument, NULL, 'k'},
        {"top-p", required_argument, NULL, 'p'}, CLI_OPTION_SEED,
        {"rng-bits", required_argument, NULL, OPT_RNG_BITS}, CLI_OPTION_THREADS, CLI_OPTION_DEVICE,
        CLI_OPTION_PRECISION, CLI_OPTION_OUTPUT, CLI_OPTION_FORCE, CLI_OPTION_NO_PROVENANCE,
        CLI_OPTION_HELP, CLI_OPTION_VERSION, {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->length = -1;
    o->n = -1;
    o->batch = 8;
    o->temperature = 1.0;
    o->top_p = 1.0;
    o->rng_bits = 64;
    o->dev.device = "cpu";
    int c;
    while ((c = getopt_long(argc, argv, "m:l:n:b:t:k:p:j:o:h", longopts, NULL)) != -1) {
        if (cli_common_option(c, optarg, &o->common, &o->dev, usage)) continue;
        switch (c) {
        case 'm': o->model = optarg; break;
        case OPT_PROMPTS: o->prompts = optarg; break;
        case 'l': o->length = cli_parse_int("--length", optarg, 1, 1 << 24); break;
        case 'n': o->n = cli_parse_int("--num", optarg, 0, 1LL << 40); break;
        case OPT_FIRST_ID: o->first_id = cli_parse_int("--first-id", optarg, 0, 1LL << 62); break;
        case 'b': o->batch = cli_parse_int("--batch", optarg, 1, 4096); break;
        case 't': o->temperature = cli_parse_double("--temperature", optarg, 0, 1e6); break;
        case 'k': o->top_k = cli_parse_int("--top-k", optarg, 0, 1 << 30); break;
        case 'p': o->top_p = cli_parse_double("--top-p", optarg, 1e-12, 1); break;
        case OPT_RNG_BITS:
            o->rng_bits = cli_parse_int("--rng-bits", optarg, 32, 64);
            if (o->rng_bits != 32 && o->rng_bits != 64) die_usage("--rng-bits must be 32 or 64");
            break;
        default: exit(cli_short_usage(usage));
        }
    }
    if (!o->model) die_usage("--model DIR is required");
    if (optind < argc) die_usage("unexpected argument '%s' (prompts go in --prompts)", argv[optind]);
    if (o->prompts && o->n >= 0) die_usage("-n is for unconditional samples; --prompts gives one per record");
    if (o->prompts && o->length < 0) die_usage("--prompts needs --length");
    if (o->n < 0) o->n = 1;
}

/* Whether every draw is from the full softmax (no top-k, no top-p, not greedy): then the model
 * draws the tokens itself (gpt2_decode), and on a GPU the logits and tokens stay there. */
static bool full_softmax(const struct options *o)
{
    return o->temperature > 0 && o->top_k == 0 && o->top_p >= 1;
}

/* Draws one token from logits (V, host) for record `id` at sequence position `pos`:
 * temperature, then top-k, then top-p (trunc_sample), then the inverse CDF at
 * gpt2_draw_uniform — a pure function of its arguments. From the full softmax this is the CPU's
 * draw_rows op, the draw gpt2_decode makes. ws: a workspace of this thread's. */
static int32_t sample(const float *logits, int V, const struct options *o, uint64_t id,
                      uint32_t pos, trunc_sample_ws *ws)
{
    if (o->temperature == 0) {
        int32_t best = 0;
        for (int j = 1; j < V; j++)
            if (logits[j] > logits[best]) best = j;
        return best;
    }
    double u = gpt2_draw_uniform(o->common.seed, id, pos, (int)o->rng_bits);
    if (full_softmax(o)) {
        int32_t tok;
        backend_cpu.draw_rows(&tok, logits, &u, 1, V, 1.0 / o->temperature);
        return tok;
    }
    return trunc_sample_draw(ws, logits, V, 1.0 / o->temperature, o->top_k, o->top_p, u);
}

/* Token pos[b] of each of the nb rows, sampled from its logits (V each) and written to tok and
 * the row's sequence in seq (ctx per row); rows are spread over the threads, ws[t] thread t's. */
static void sample_rows(const float *logits, int V, const struct options *o,
                        const ts_record *recs, const int *pos, int nb, int32_t *tok,
                        int32_t *seq, int ctx, trunc_sample_ws **ws)
{
#pragma omp parallel for schedule(dynamic, 1) if (nb > 1 && !full_softmax(o))
    for (int b = 0; b < nb; b++) {
        tok[b] = sample(logits + (size_t)b * V, V, o, recs[b].id, (uint32_t)pos[b],
                        ws[omp_get_thread_num()]);
        seq[(size_t)b * ctx + pos[b]] = tok[b];
    }
}

int main(int argc, char **argv)
{
    backend_cpu_blas_init(argc, argv);
    cli_init("gpt2-sample");
    struct options o;
    parse_options(argc, argv, &o);
    err_t e;
    cli_device_open(&o.dev);
    backend_cpu_set_threads(cli_threads(o.common.threads));

    gpt2_t *m = gpt2_load(o.model, NULL, o.dev.be, &e);
    if (!m) die("%s", e.msg);
    const struct config_gpt2 *g = gpt2_config(m);
    int V = (int)g->vocab_size, ctx = (int)g->n_positions, B = (int)o.batch;
    int64_t eot = g->eos_token_id >= 0 ? g->eos_token_id : g->bos_token_id;

    FILE *fp = NULL;
    ts_reader_t *rd = NULL;
    ts_header h = {0};
    if (o.prompts) {
        fp = cli_open_input(o.prompts, usage);
        if (!(rd = ts_reader_open(fp, o.prompts, &e)) ||
            ts_header_copy(&h, ts_reader_header(rd), &e) < 0)
            die("%s", e.msg);
    } else {
        if (eot < 0 || eot >= V) die("%s: config.json names no <|endoftext|> id to start from", o.model);
        if (ts_header_init(&h, "gpt2", (uint64_t)V, eot, &e) < 0) die("%s", e.msg);
    }
    if (cli_add_provenance(&h, &o.common, argc, argv, o.common.seed, o.dev.label, &e) < 0) die("%s", e.msg);
    /* the header goes out with the first batch (or at the end): a bad first prompt leaves
     * stdout empty */
    cli_output out;
    cli_output_open(&out, o.common.output, true, o.common.force);
    ts_writer_t *w = NULL;

    gpt2_state *s = gpt2_state_new(m, B, ctx, ctx > B ? ctx : B, &e);
    ts_record *recs = calloc((size_t)B, sizeof *recs);
    int32_t *seq = malloc((size_t)B * ctx * sizeof *seq), *tok = malloc((size_t)B * sizeof *tok);
    /* (steps, B): gpt2_decode's uniforms and draws */
    int32_t *drawn = malloc((size_t)B * ctx * sizeof *drawn);
    double *u = malloc((size_t)B * ctx * sizeof *u);
    int *plen = malloc((size_t)B * sizeof *plen), *pos = malloc((size_t)B * sizeof *pos);
    float *logits = malloc((size_t)B * V * sizeof *logits);
    int n_ws = omp_get_max_threads();
    trunc_sample_ws **ws = calloc((size_t)n_ws, sizeof *ws);
    if (!s || !recs || !seq || !tok || !drawn || !u || !plen || !pos || !logits || !ws)
        die("%s", s ? "out of memory" : e.msg);
    for (int t = 0; t < n_ws; t++)
        if (!(ws[t] = trunc_sample_ws_new(V))) die("out of memory");

    for (uint64_t next = 0;;) {
        int nb = 0, rc = 0, L = 0;
        while (nb < B) { /* gather a batch of prompts */
            ts_record *r = &recs[nb];
            int32_t *row = seq + (size_t)nb * ctx;
            if (rd) {
                if ((rc = ts_read(rd, r, &e)) < 0) break;
                if (r->n_tokens == 0) die("record %llu: empty prompt", (unsigned long long)r->id);
                if (r->n_tokens > (size_t)ctx)
                    die("record %llu: prompt of %zu tokens is longer than the context (%d)",
                        (unsigned long long)r->id, r->n_tokens, ctx);
                for (size_t t = 0; t < r->n_tokens; t++) {
                    if (r->tokens[t] >= (uint32_t)V)
                        die("record %llu: token id %u at position %zu is outside the vocabulary (%d)",
                            (unsigned long long)r->id, r->tokens[t], t, V);
                    row[t] = (int32_t)r->tokens[t];
                }
                plen[nb] = (int)r->n_tokens;
            } else {
                if (next >= (uint64_t)o.n) break;
                ts_record_clear(r);
                r->id = (uint64_t)o.first_id + next++;
                row[0] = (int32_t)eot;
                plen[nb] = 1;
            }
            nb++;
        }
        if (rc < ERR_EOF) die("%s", e.msg);
        if (nb == 0) break;
        L = o.length > 0 ? (int)o.length : ctx; /* unconditional default: a full context */
        for (int b = 0; b < nb; b++)
            if (rd ? plen[b] + L > ctx : L > ctx)
                die("record %llu: prompt (%d tokens) + --length %d is longer than the context (%d)",
                    (unsigned long long)recs[b].id, rd ? plen[b] : 0, L, ctx);
        /* prefill each row alone (its arithmetic then does not depend on the batch) */
        struct gpt2_out po = {.logits_last = 1};
        for (int b = 0; b < nb; b++) {
            po.logits = logits + (size_t)b * V;
            if (gpt2_forward(m, s, b, 1, plen[b], seq + (size_t)b * ctx, 0, NULL, &po, &e) < 0)
                die("record %llu: %s", (unsigned long long)recs[b].id, e.msg);
        }
        /* token 0 of each row from the prefill's logits; token k from the decoding step that
         * fed token k - 1: drawn by the model (full softmax) or from the logits it returned */
        memcpy(pos, plen, (size_t)nb * sizeof *pos);
        sample_rows(logits, V, &o, recs, pos, nb, tok, seq, ctx, ws);
        if (full_softmax(&o) && L > 1) {
            for (int k = 1; k < L; k++)
                for (int b = 0; b < nb; b++)
                    u[(size_t)(k - 1) * nb + b] = gpt2_draw_uniform(
                        o.common.seed, recs[b].id, (uint32_t)(pos[b] + k), (int)o.rng_bits);
            if (gpt2_decode(m, s, nb, tok, pos, L - 1, u, 1.0 / o.temperature, drawn, &e) < 0)
                die("%s", e.msg);
            for (int k = 1; k < L; k++)
                for (int b = 0; b < nb; b++)
                    seq[(size_t)b * ctx + pos[b] + k] = drawn[(size_t)(k - 1) * nb + b];
        } else {
            for (int k = 1; k < L; k++) {
                if (gpt2_step(m, s, nb, tok, pos, logits, &e) < 0) die("%s", e.msg);
                for (int b = 0; b < nb; b++) pos[b]++;
                sample_rows(logits, V, &o, recs, pos, nb, tok, seq, ctx, ws);
            }
        }
        for (int b = 0; b < nb; b++) {
            ts_record *r = &recs[b];
            int skip = rd ? 0 : 1, n = plen[b] + L - skip;
            uint32_t *t = ts_record_resize(r, (size_t)n, &e);
            if (!t) die("%s", e.msg);
            for (int i = 0; i < n; i++) t[i] = (uint32_t)seq[(size_t)b * ctx + skip + i];
            if (rd && ts_record_set_u64(r, "prompt_length", (uint64_t)plen[b], &e) < 0) die("%s", e.msg);
            if (!w && !(w = ts_writer_open(out.fp, &h, &e))) cli_output_check(&out, ERR_FAIL, &e);
            cli_output_check(&out, ts_write(w, r, &e), &e);
        }
    }
    if (!w && !(w = ts_writer_open(out.fp, &h, &e))) cli_output_check(&out, ERR_FAIL, &e);
    cli_output_check(&out, ts_writer_close(w, &e), &e);
    cli_output_commit(&out);
    for (int b = 0; b < B; b++) ts_record_free(&recs[b]);
    free(recs), free(seq), free(tok), free(drawn), free(u), free(plen), free(pos), free(logits);
    for (int t = 0; t < n_ws; t++) trunc_sample_ws_free(ws[t]);
    free(ws);
    gpt2_state_free(s);
    ts_header_free(&h);
    ts_reader_free(rd);
    if (fp && fp != stdin) fclose(fp);
    gpt2_free(m);
    return EXIT_OK;
}
