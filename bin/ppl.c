/* ppl: dataset perplexity from scored records (each with a summed NLL and a token count), under
 * every aggregation rule in use (lib/pplagg.h), each named in the one JSON object it prints. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pplagg.h"
#include "tstream.h"

static int usage(FILE *fp, int status)
{
    fprintf(fp,
            "Usage: ppl [options] [scored.msgpack|-]\n"
            "Reads a scored token stream (gpt2-score, sedd-score) and prints one JSON object:\n"
            "  records, tokens     records read and tokens scored (records with none are\n"
            "                      counted in empty_records and left out of every mean)\n"
            "  nll_per_token       sum of NLL / tokens (nats)\n"
            "  ppl, ppl_rule       the headline number and the rule that gave it (exp_of_mean)\n"
            "  ppl_exp_of_mean     exp(nll_per_token): corpus perplexity, the paper's A.mean().exp()\n"
            "  ppl_mean_per_seq    mean over records of exp(nll / n): Lou et al.'s A.exp().mean()\n"
            "  ppl_sedd            SEDD run_train.py's Gen PPL: that mean per batch of --batch records,\n"
            "                      then over the full batches (the last partial batch is dropped;\n"
            "                      null when there is no full batch); sedd_batch, sedd_batches,\n"
            "                      sedd_dropped_records say how\n"
            "  ppl_sdtt            exp(mean over records of nll / n) (the SDTT code)\n"
            "  ppl_mdlm            MDLM's Gen PPL, when every record carries logprobs (gpt2-score\n"
            "                      --logprobs): token-weighted over the scored targets that are not\n"
            "                      --eos, or are the record's first --eos; mdlm_tokens counts them.\n"
            "                      MDLM retokenizes: score detokenize | tokenize --append-eos output\n"
            "  nll_per_token_stderr, ppl_ci95\n"
            "                      when every record carries nll_stderr (sedd-score -K >= 2): the\n"
            "                      standard error of nll_per_token and exp(nll_per_token +- 1.96 se)\n"
            "  ppl_hf              exp(sum nll_hf / sum n_hf) when the records carry nll_hf\n"
            "\n"
            "Options:\n"
            "      --nll KEY      field holding a record's summed NLL [nll]\n"
            "      --count KEY    field holding its number of scored tokens [n_scored]\n"
            "      --batch B      batch size of the SEDD rule [32]\n"
            "      --eos ID       end-of-text id of the MDLM mask [the stream's eot]\n"
            "  -o, --output FILE  write here, atomically [stdout]\n"
            "  -h, --help         print this help and exit\n"
            "      --version      print the version and build and exit\n"
            "\n" CLI_EXIT_TEXT "\n"
            "Example: gpt2-sample -m ckpt/gpt2 -n 16 | gpt2-score -m ckpt/gpt2-large | ppl\n");
    return status;
}

enum { OPT_NLL = 256, OPT_COUNT, OPT_BATCH, OPT_EOS };

/* A number, or null when the rule is undefined (NaN). */
static json_t *jreal(double x) { return isfinite(x) ? json_real(x) : json_null(); }

/* Adds the MDLM-masked NLL of r's scored tokens (logprobs for positions score_from ...) to *sum
 * and their count to *count. @return false when r has no usable logprobs. */
static bool mdlm_add(const ts_record *r, int64_t n, int64_t eos, double **buf, size_t *cap,
                     double *sum, double *count)
{
    err_t e;
    int64_t from = 0;
    if (ts_record_get_i64(r, "score_from", &from, &e) != 0) from = (int64_t)r->n_tokens - n;
    if (n == 0) return true;
    if ((size_t)n > *cap) {
        double *nb = realloc(*buf, (size_t)n * sizeof **buf);
        if (!nb) die("out of memory");
        *buf = nb, *cap = (size_t)n;
    }
    long long got = ts_record_get_f64_array(r, "logprobs", *buf, *cap, &e);
    if (got != n || from < 0 || (uint64_t)from + (uint64_t)n > r->n_tokens) return false;
    size_t first = eos >= 0 ? pplagg_first_eos(r->tokens, r->n_tokens, (uint32_t)eos) : r->n_tokens;
    for (int64_t i = 0; i < n; i++) {
        size_t p = (size_t)(from + i);
        if (eos < 0 || pplagg_mdlm_counts(r->tokens, p, first, (uint32_t)eos)) {
            *sum -= (*buf)[i];
            *count += 1;
        }
    }
    return true;
}

int main(int argc, char **argv)
{
    cli_init("ppl");
    static const struct option longopts[] = {
        {"nll", required_argument, NULL, OPT_NLL}, {"count", required_argument, NULL, OPT_COUNT},
        {"batch", required_argument, NULL, OPT_BATCH}, {"eos", required_argument, NULL, OPT_EOS},
        CLI_OPTION_OUTPUT, CLI_OPTION_HELP, CLI_OPTION_VERSION, {NULL, 0, NULL, 0},
    };
    const char *nll_key = "nll", *count_key = "n_scored";
    struct cli_common common = {0};
    size_t batch = 32;
    int64_t eos = -2; /* -2: the stream's eot */
    int c;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        if (cli_common_option(c, optarg, &common, NULL, usage)) continue;
        switch (c) {
        case OPT_NLL: nll_key = optarg; break;
        case OPT_COUNT: count_key = optarg; break;
        case OPT_BATCH: batch = (size_t)cli_parse_int("--batch", optarg, 1, 1 << 30); break;
        case OPT_EOS: eos = cli_parse_int("--eos", optarg, 0, UINT32_MAX); break;
        default: return cli_short_usage(usage);
        }
    }
    if (argc - optind > 1) die_usage("expected at most one input file");
    const char *input = optind < argc ? argv[optind] : NULL;

    err_t e;
    cli_stream src;
    cli_stream_open(&src, input, usage);
    ts_reader_t *rd = src.rd;
    if (eos == -2) eos = ts_reader_header(rd)->eot;
    ts_record r = {0};
    pplagg agg;
    pplagg_init(&agg, batch);
    double hf_sum = 0, hf_n = 0, mdlm_sum = 0, mdlm_n = 0, *lp = NULL;
    size_t lp_cap = 0;
    uint64_t records = 0, with_hf = 0, with_lp = 0;
    int rc;
    while ((rc = ts_read(rd, &r, &e)) >= 0) {
        double nll, hn, hs, se;
        int64_t n;
        if (ts_record_get_f64(&r, nll_key, &nll, &e) != 0 || ts_record_get_i64(&r, count_key, &n, &e) != 0)
            die("record %llu: needs the fields %s and %s (run gpt2-score first)",
                (unsigned long long)r.id, nll_key, count_key);
        if (n < 0 || !isfinite(nll)) die("record %llu: bad %s/%s", (unsigned long long)r.id, nll_key, count_key);
        records++;
        if (ts_record_get_f64(&r, "nll_hf", &hs, &e) == 0 && ts_record_get_f64(&r, "n_hf", &hn, &e) == 0) {
            hf_sum += hs;
            hf_n += hn;
            with_hf++;
        }
        if (ts_record_get_f64(&r, "nll_stderr", &se, &e) != 0 || !(se >= 0)) se = NAN;
        if (with_lp + 1 == records && mdlm_add(&r, n, eos, &lp, &lp_cap, &mdlm_sum, &mdlm_n)) with_lp++;
        pplagg_add(&agg, nll, (double)n, se);
    }
    free(lp);
    if (rc < ERR_EOF) die("%s", e.msg);
    if (agg.tokens == 0) die("no scored tokens in %llu records", (unsigned long long)records);

    double nll_tok = pplagg_nll_per_token(&agg), se = pplagg_nll_per_token_stderr(&agg);
    json_t *o = json_object();
    json_object_set_new(o, "records", json_integer((json_int_t)records));
    json_object_set_new(o, "tokens", json_integer((json_int_t)agg.tokens));
    json_object_set_new(o, "empty_records", json_integer((json_int_t)agg.empty));
    json_object_set_new(o, "nll_per_token", json_real(nll_tok));
    json_object_set_new(o, "ppl", jreal(pplagg_exp_of_mean(&agg)));
    json_object_set_new(o, "ppl_rule", json_string("exp_of_mean"));
    json_object_set_new(o, "ppl_exp_of_mean", jreal(pplagg_exp_of_mean(&agg)));
    json_object_set_new(o, "ppl_mean_per_seq", jreal(pplagg_mean_of_exp(&agg)));
    json_object_set_new(o, "ppl_sedd", jreal(pplagg_sedd(&agg)));
    json_object_set_new(o, "sedd_batch", json_integer((json_int_t)batch));
    json_object_set_new(o, "sedd_batches", json_integer((json_int_t)agg.batches));
    json_object_set_new(o, "sedd_dropped_records", json_integer((json_int_t)pplagg_sedd_dropped(&agg)));
    json_object_set_new(o, "ppl_sdtt", jreal(pplagg_sdtt(&agg)));
    if (with_lp == records && mdlm_n > 0) {
        json_object_set_new(o, "ppl_mdlm", jreal(exp(mdlm_sum / mdlm_n)));
        json_object_set_new(o, "mdlm_tokens", json_integer((json_int_t)mdlm_n));
    }
    if (isfinite(se)) {
        json_object_set_new(o, "nll_per_token_stderr", json_real(se));
        json_t *ci = json_array();
        json_array_append_new(ci, jreal(exp(nll_tok - 1.96 * se)));
        json_array_append_new(ci, jreal(exp(nll_tok + 1.96 * se)));
        json_object_set_new(o, "ppl_ci95", ci);
    }
    if (with_hf == records && hf_n > 0) json_object_set_new(o, "ppl_hf", json_real(exp(hf_sum / hf_n)));
    cli_output out;
    cli_output_open(&out, common.output, false, false);
    if (json_dumpf(o, out.fp, JSON_REAL_PRECISION(17)) < 0 || fputc('\n', out.fp) == EOF)
        clearerr(out.fp), fputc('\n', out.fp); /* any error is reported by commit */
    cli_output_commit(&out);
    json_decref(o);
    ts_record_free(&r);
    cli_stream_close(&src);
    return EXIT_OK;
}
