/* ppl: dataset perplexity from scored records (each with a summed NLL and a token count), in the
 * two orders the paper discusses, as one JSON object. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tstream.h"

static int usage(FILE *fp, int status)
{
    fprintf(fp,
            "Usage: ppl [options] [scored.msgpack|-]\n"
            "Reads a scored token stream (gpt2-score, sedd-score) and prints one JSON object:\n"
            "  records, tokens     records read and tokens scored (records with none are\n"
            "                      counted in empty_records and left out of both means)\n"
            "  nll_per_token       sum of NLL / tokens (nats)\n"
            "  ppl                 exp(nll_per_token): corpus perplexity, the paper's choice\n"
            "  ppl_mean_per_seq    mean over records of exp(nll / n): Lou et al.'s (SEDD) Gen PPL\n"
            "  ppl_hf              exp(sum nll_hf / sum n_hf) when the records carry nll_hf\n"
            "\n"
            "Options:\n"
            "      --nll KEY      field holding a record's summed NLL [nll]\n"
            "      --count KEY    field holding its number of scored tokens [n_scored]\n"
            "  -o, --output FILE  write here, atomically [stdout]\n"
            "  -h, --help         print this help and exit\n"
            "      --version      print the version and build and exit\n"
            "\n" CLI_EXIT_TEXT "\n"
            "Example: gpt2-sample -m ckpt/gpt2 -n 16 | gpt2-score -m ckpt/gpt2-large | ppl\n");
    return status;
}

enum { OPT_NLL = 256, OPT_COUNT, OPT_VERSION };

int main(int argc, char **argv)
{
    cli_init("ppl");
    static const struct option longopts[] = {
        {"nll", required_argument, NULL, OPT_NLL}, {"count", required_argument, NULL, OPT_COUNT},
        {"output", required_argument, NULL, 'o'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION}, {NULL, 0, NULL, 0},
    };
    const char *nll_key = "nll", *count_key = "n_scored", *output = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_NLL: nll_key = optarg; break;
        case OPT_COUNT: count_key = optarg; break;
        case 'o': output = optarg; break;
        case 'h': return usage(stdout, EXIT_OK);
        case OPT_VERSION: cli_print_version(); return EXIT_OK;
        default: return cli_short_usage(usage);
        }
    }
    if (argc - optind > 1) die_usage("expected at most one input file");
    const char *input = optind < argc ? argv[optind] : NULL;

    err_t e;
    FILE *fp = cli_open_input(input, usage);
    ts_reader_t *rd = ts_reader_open(fp, input, &e);
    if (!rd) die("%s", e.msg);
    ts_record r = {0};
    /* sums in double; the per-sequence mean with Kahan-free plain summation is fine at 1e-15
     * relative per term for any realistic record count */
    double nll_sum = 0, seq_ppl_sum = 0, hf_sum = 0, hf_n = 0;
    uint64_t records = 0, tokens = 0, empty = 0, with_hf = 0;
    int rc;
    while ((rc = ts_read(rd, &r, &e)) >= 0) {
        double nll, hn, hs;
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
        if (n == 0) {
            empty++;
            continue;
        }
        nll_sum += nll;
        tokens += (uint64_t)n;
        seq_ppl_sum += exp(nll / (double)n);
    }
    if (rc < ERR_EOF) die("%s", e.msg);
    if (tokens == 0) die("no scored tokens in %llu records", (unsigned long long)records);

    json_t *o = json_object();
    json_object_set_new(o, "records", json_integer((json_int_t)records));
    json_object_set_new(o, "tokens", json_integer((json_int_t)tokens));
    json_object_set_new(o, "empty_records", json_integer((json_int_t)empty));
    json_object_set_new(o, "nll_per_token", json_real(nll_sum / (double)tokens));
    json_object_set_new(o, "ppl", json_real(exp(nll_sum / (double)tokens)));
    json_object_set_new(o, "ppl_mean_per_seq", json_real(seq_ppl_sum / (double)(records - empty)));
    if (with_hf == records && hf_n > 0) json_object_set_new(o, "ppl_hf", json_real(exp(hf_sum / hf_n)));
    cli_output out;
    cli_output_open(&out, output, false, false);
    if (json_dumpf(o, out.fp, JSON_REAL_PRECISION(17)) < 0 || fputc('\n', out.fp) == EOF)
        clearerr(out.fp), fputc('\n', out.fp); /* any error is reported by commit */
    cli_output_commit(&out);
    json_decref(o);
    ts_record_free(&r);
    ts_reader_free(rd);
    if (fp != stdin) fclose(fp);
    return EXIT_OK;
}
