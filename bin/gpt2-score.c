/* gpt2-score: adds GPT-2's log-likelihood of each record's tokens to the record — the summed NLL,
 * the number of scored tokens and, optionally, every per-token log-probability. Records longer
 * than the window are scored with the sliding window of the Hugging Face perplexity loop. */
#include <ctype.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cli.h"
#include "gpt2.h"
#include "tstream.h"

static int usage(FILE *fp, int status)
{
    fprintf(fp,
            "Usage: gpt2-score -m DIR [options] [in.msgpack|-]\n"
            "Scores every record of a token stream under a GPT-2 checkpoint and adds the fields\n"
            "  nll (float: summed negative log-likelihood, nats), n_scored (uint: tokens scored),\n"
            "  score_from (uint: the first scored position), logprobs (with --logprobs)\n"
            "and, with --hf-weighting, nll_hf and n_hf (docs/stream.md, \"Scores\").\n"
            "Token t is scored given tokens 0..t-1, so without --bos token 0 is context only.\n"
            "\n"
            "Options:\n"
            "  -m, --model DIR        GPT-2 directory (config.json + model.safetensors)\n"
            "      --bos              prepend <|endoftext|> (the stream's eot) so token 0 is scored\n"
            "      --first N          score only the first N tokens of each record\n"
            "      --from P|FIELD     score positions P.. only (earlier tokens are context); a field\n"
            "                         name takes P from each record (e.g. prompt_length)\n"
            "      --window W         longest window in tokens [the model's context]\n"
            "      --stride S         sliding-window stride for longer records [W/2]; every token\n"
            "                         is scored once with at least W-S tokens of context\n"
            "      --hf-weighting     also write nll_hf/n_hf: the Hugging Face perplexity docs'\n"
            "                         weighting (each window after the first counts one token less)\n"
            "      --logprobs         add logprobs: float32 log p of each scored token, in order\n"
            "  -b, --batch N          records per forward pass (short records only) [8]\n"
            "  -j, --threads N        threads, 0 = all cores [0]\n"
            "      --device DEV       cpu, cuda, or auto (cuda when a GPU is visible) [cpu]\n"
            "      --precision P      fp32, or bf16 (bf16 matrix products; cuda only) [fp32]\n"
            "  -o, --output FILE      write here, atomically [stdout]\n"
            "      --force            write binary output to a terminal\n"
            "      --no-provenance    do not add this run to the header\n"
            "  -h, --help             print this help and exit\n"
            "      --version          print the version and build and exit\n"
            "\n" CLI_EXIT_TEXT "\n"
            "Example: gpt2-sample -m ckpt/gpt2 -n 16 | gpt2-score -m ckpt/gpt2-large | ppl\n");
    return status;
}

struct options {
    struct cli_common common;
    const char *model, *from_field, *input;
    struct cli_device dev;
    long long first, from, window, stride, batch;
    bool bos, hf, logprobs;
};

enum { OPT_BOS = 256, OPT_FIRST, OPT_FROM, OPT_WINDOW, OPT_STRIDE, OPT_HF, OPT_LOGPROBS };

static void parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'}, {"bos", no_argument, NULL, OPT_BOS},
        {"first", required_argument, NULL, OPT_FIRST}, {"from", required_argument, NULL, OPT_FROM},
        {"window", required_argument, NULL, OPT_WINDOW},
        {"stride", required_argument, NULL, OPT_STRIDE},
        {"hf-weighting", no_argument, NULL, OPT_HF}, {"logprobs", no_argument, NULL, OPT_LOGPROBS},
        {"batch", required_argument, NULL, 'b'}, CLI_OPTION_THREADS, CLI_OPTION_DEVICE,
        CLI_OPTION_PRECISION, CLI_OPTION_OUTPUT, CLI_OPTION_FORCE, CLI_OPTION_NO_PROVENANCE,
        CLI_OPTION_HELP, CLI_OPTION_VERSION, {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->first = -1;
    o->batch = 8;
    o->dev.device = "cpu";
    int c;
    while ((c = getopt_long(argc, argv, "m:b:j:o:h", longopts, NULL)) != -1) {
        if (cli_common_option(c, optarg, &o->common, &o->dev, usage)) continue;
        switch (c) {
        case 'm': o->model = optarg; break;
        case OPT_BOS: o->bos = true; break;
        case OPT_FIRST: o->first = cli_parse_int("--first", optarg, 0, 1LL << 40); break;
        case OPT_FROM:
            if (isdigit((unsigned char)optarg[0])) o->from = cli_parse_int("--from", optarg, 0, 1LL << 40);
            else o->from_field = optarg;
            break;
        case OPT_WINDOW: o->window = cli_parse_int("--window", optarg, 2, 1 << 20); break;
        case OPT_STRIDE: o->stride = cli_parse_int("--stride", optarg, 1, 1 << 20); break;
        case OPT_HF: o->hf = true; break;
        case OPT_LOGPROBS: o->logprobs = true; break;
        case 'b': o->batch = cli_parse_int("--batch", optarg, 1, 4096); break;
        default: exit(cli_short_usage(usage));
        }
    }
    if (!o->model) die_usage("--model DIR is required");
    if (argc - optind > 1) die_usage("expected at most one input file");
    o->input = optind < argc ? argv[optind] : NULL;
}

/* One record in flight: its scoring sequence ([bos] + tokens[0..first)) and targets [lo, hi). */
struct job {
    ts_record rec;
    int32_t *seq;
    int lo, hi, off;
    double *nll;  /* (hi) */
    struct gpt2_sliding sum;
};

static void prepare(struct job *j, const struct options *o, int64_t bos, err_t *e)
{
    ts_record *r = &j->rec;
    int64_t n = (int64_t)r->n_tokens, from = o->from;
    if (o->first >= 0 && o->first < n) n = o->first;
    e->msg[0] = 0;
    if (o->from_field && ts_record_get_i64(r, o->from_field, &from, e) != 0)
        die("record %llu: --from %s: %s", (unsigned long long)r->id, o->from_field,
            e->msg[0] ? e->msg : "field absent");
    if (n > (1 << 30)) die("record %llu: too long", (unsigned long long)r->id);
    j->off = o->bos ? 1 : 0;
    j->hi = (int)n + j->off;
    int64_t lo = (from < 0 ? 0 : from) + j->off;
    j->lo = lo < 1 ? 1 : lo > j->hi ? j->hi : (int)lo;
    j->seq = realloc(j->seq, (size_t)(j->hi + 1) * sizeof *j->seq);
    j->nll = realloc(j->nll, (size_t)(j->hi + 1) * sizeof *j->nll);
    if (!j->seq || !j->nll) die("out of memory");
    if (o->bos) j->seq[0] = (int32_t)bos;
    for (int t = 0; t + j->off < j->hi; t++) {
        if (r->tokens[t] > INT32_MAX) die("record %llu: token id out of range", (unsigned long long)r->id);
        j->seq[t + j->off] = (int32_t)r->tokens[t];
    }
    memset(&j->sum, 0, sizeof j->sum);
}

/* Adds the fields to j->rec. */
static void finish(struct job *j, const struct options *o, err_t *e)
{
    ts_record *r = &j->rec;
    int n = j->hi - j->lo;
    bool ok = ts_record_set_f64(r, "nll", j->sum.nll_sum, e) >= 0 &&
              ts_record_set_u64(r, "n_scored", (uint64_t)(n > 0 ? n : 0), e) >= 0 &&
              ts_record_set_u64(r, "score_from", (uint64_t)(j->lo - j->off), e) >= 0;
    if (ok && o->hf)
        ok = ts_record_set_f64(r, "nll_hf", j->sum.hf_sum, e) >= 0 &&
             ts_record_set_u64(r, "n_hf", (uint64_t)j->sum.hf_n, e) >= 0;
    if (ok && o->logprobs) {
        float *lp = malloc((size_t)(n > 0 ? n : 1) * sizeof *lp);
        if (!lp) die("out of memory");
        for (int t = 0; t < n; t++) lp[t] = (float)-j->nll[j->lo + t];
        ok = ts_record_set_f32_array(r, "logprobs", lp, (size_t)(n > 0 ? n : 0), e) >= 0;
        free(lp);
    }
    if (!ok) die("record %llu: %s", (unsigned long long)r->id, e->msg);
}

int main(int argc, char **argv)
{
    backend_cpu_blas_init(argc, argv);
    cli_init("gpt2-score");
    struct options o;
    parse_options(argc, argv, &o);
    err_t e;
    cli_device_open(&o.dev);
    backend_cpu_set_threads(cli_threads(o.common.threads));

    gpt2_t *m = gpt2_load(o.model, NULL, o.dev.be, &e);
    if (!m) die("%s", e.msg);
    const struct config_gpt2 *g = gpt2_config(m);
    int window = o.window ? (int)o.window : (int)g->n_positions;
    if (window > g->n_positions)
        die_usage("--window %d is longer than the model's context (%lld)", window,
                  (long long)g->n_positions);
    int stride = o.stride ? (int)o.stride : window / 2;
    if (stride > window) die_usage("--stride %d is longer than the window (%d)", stride, window);

    cli_stream src;
    cli_stream_open(&src, o.input, usage);
    ts_reader_t *rd = src.rd;
    ts_header h = {0};
    if (ts_header_copy(&h, ts_reader_header(rd), &e) < 0 ||
        cli_add_provenance(&h, &o.common, argc, argv, 0, o.dev.label, &e) < 0)
        die("%s", e.msg);
    int64_t bos = h.eot >= 0 ? h.eot : g->eos_token_id;
    if (o.bos && (bos < 0 || bos >= g->vocab_size))
        die("--bos: neither the stream nor the model names an <|endoftext|> id");

    /* the header is written with the first scored record (or at the end), so a bad first
     * record leaves stdout empty */
    cli_output out;
    cli_output_open(&out, o.common.output, true, o.common.force);
    ts_writer_t *w = NULL;

    int B = (int)o.batch, rc = 0;
    struct job *jobs = calloc((size_t)B, sizeof *jobs);
    int32_t *pad = NULL;
    double *nll = NULL;
    gpt2_state *batch_state = NULL, *slide_state = NULL;
    int batch_cap = 0;
    if (!jobs) die("out of memory");
    for (bool eof = false; !eof;) {
        int nb = 0;
        while (nb < B && (rc = ts_read(rd, &jobs[nb].rec, &e)) == 0) prepare(&jobs[nb++], &o, bos, &e);
        if (rc < ERR_EOF) die("%s", e.msg);
        eof = rc == ERR_EOF;
        /* short records: one right-padded forward pass */
        int Tmax = 0, nshort = 0;
        for (int i = 0; i < nb; i++)
            if (jobs[i].hi <= window && jobs[i].hi > jobs[i].lo) {
                nshort++;
                if (jobs[i].hi > Tmax) Tmax = jobs[i].hi;
            }
        if (nshort) {
            if (Tmax > batch_cap) {
                gpt2_state_free(batch_state);
                batch_cap = Tmax;
                batch_state = gpt2_state_new(m, B, batch_cap, B * batch_cap, &e);
                pad = realloc(pad, (size_t)B * batch_cap * sizeof *pad);
                nll = realloc(nll, (size_t)B * batch_cap * sizeof *nll);
                if (!batch_state || !pad || !nll) die("%s", batch_state ? "out of memory" : e.msg);
            }
            int b = 0;
            for (int i = 0; i < nb; i++)
                if (jobs[i].hi <= window && jobs[i].hi > jobs[i].lo) {
                    memcpy(pad + (size_t)b * Tmax, jobs[i].seq, (size_t)jobs[i].hi * sizeof *pad);
                    for (int t = jobs[i].hi; t < Tmax; t++) pad[(size_t)b * Tmax + t] = 0;
                    b++;
                }
            if (gpt2_nll(m, batch_state, nshort, Tmax, pad, nll, &e) < 0) {
                for (int i = 0; i < nb; i++) /* name the record at fault */
                    if (jobs[i].hi <= window && jobs[i].hi > jobs[i].lo &&
                        gpt2_nll(m, batch_state, 1, jobs[i].hi, jobs[i].seq, nll, &e) < 0)
                        die("record %llu: %s", (unsigned long long)jobs[i].rec.id, e.msg);
                die("%s", e.msg);
            }
            b = 0;
            for (int i = 0; i < nb; i++)
                if (jobs[i].hi <= window && jobs[i].hi > jobs[i].lo) {
                    struct job *j = &jobs[i];
                    for (int t = j->lo; t < j->hi; t++) {
                        j->nll[t] = nll[(size_t)b * Tmax + t];
                        j->sum.nll_sum += j->nll[t];
                    }
                    j->sum.n = j->sum.hf_n = j->hi - j->lo;
                    j->sum.hf_sum = j->sum.nll_sum;
                    b++;
                }
        }
        for (int i = 0; i < nb; i++) {
            struct job *j = &jobs[i];
            if (j->hi > window && j->hi > j->lo) {
                if (!slide_state && !(slide_state = gpt2_state_new(m, 1, window, window, &e)))
                    die("%s", e.msg);
                if (gpt2_nll_sliding(m, slide_state, j->seq, j->hi, window, stride, j->lo, j->hi,
                                     j->nll, &j->sum, &e) < 0)
                    die("record %llu: %s", (unsigned long long)j->rec.id, e.msg);
            }
            finish(j, &o, &e);
            if (!w && !(w = ts_writer_open(out.fp, &h, &e))) cli_output_check(&out, ERR_FAIL, &e);
            cli_output_check(&out, ts_write(w, &j->rec, &e), &e);
        }
    }
    if (!w && !(w = ts_writer_open(out.fp, &h, &e))) cli_output_check(&out, ERR_FAIL, &e);
    cli_output_check(&out, ts_writer_close(w, &e), &e);
    cli_output_commit(&out);
    for (int i = 0; i < B; i++) {
        ts_record_free(&jobs[i].rec);
        free(jobs[i].seq);
        free(jobs[i].nll);
    }
    free(jobs);
    free(pad);
    free(nll);
    gpt2_state_free(batch_state);
    gpt2_state_free(slide_state);
    ts_header_free(&h);
    cli_stream_close(&src);
    gpt2_free(m);
    return EXIT_OK;
}
