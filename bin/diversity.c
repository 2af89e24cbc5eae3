/* diversity: token diversity of the samples in a stream — unique-unigram fraction, unigram
 * entropy, repetition within a window — per record or as set means and standard deviations. */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "diversity.h"
#include "tstream.h"

static int usage(FILE *fp, int status)
{
    fprintf(fp,
            "Usage: diversity [options] [in.msgpack|-]\n"
            "Measures each record's tokens (specs/eval.md §5): unique-unigram fraction, unigram\n"
            "entropy (nats and bits), and the rate of tokens repeated within the previous W\n"
            "tokens (denominator N, and N-1). Records with no tokens are counted in\n"
            "empty_records and left out. Prints one JSON object with the mean and standard\n"
            "deviation of each metric over the records (the paper's Table 4), or with\n"
            "--per-record one JSON line per record.\n"
            "\n"
            "Options:\n"
            "  -w, --window N        a repeat counts within the previous N tokens [100]\n"
            "      --drop-eos        remove the stream's EOT token before measuring [kept]\n"
            "      --std KIND        population (numpy std) or sample (ddof 1) [population]\n"
            "      --per-record      one JSON line per record instead of the summary\n"
            "  -o, --output FILE     write here, atomically [stdout]\n"
            "  -h, --help            print this help and exit\n"
            "      --version         print the version and build and exit\n"
            "\n" CLI_EXIT_TEXT "\n"
            "Example: sedd-sample --model ckpt/sedd-small -n 100 | diversity\n");
    return status;
}

static json_t *metrics_json(const diversity_metrics *m)
{
    json_t *o = json_pack("{s:I,s:I,s:I}", "n_tokens", (json_int_t)m->n_tokens, "n_unique",
                          (json_int_t)m->n_unique, "repeated_tokens",
                          (json_int_t)m->repeated_tokens);
    for (int k = 0; k < DIVERSITY_N_METRICS; k++)
        json_object_set_new(o, diversity_metric_names[k], json_real(diversity_metric_value(m, k)));
    return o;
}

int main(int argc, char **argv)
{
    cli_init("diversity");
    enum { OPT_DROP = 256, OPT_STD, OPT_PER };
    static const struct option longopts[] = {
        {"window", required_argument, NULL, 'w'}, {"drop-eos", no_argument, NULL, OPT_DROP},
        {"std", required_argument, NULL, OPT_STD}, {"per-record", no_argument, NULL, OPT_PER},
        CLI_OPTION_OUTPUT, CLI_OPTION_HELP, CLI_OPTION_VERSION, {NULL, 0, NULL, 0},
    };
    diversity_opts o = DIVERSITY_OPTS_DEFAULT;
    bool drop = false, per = false;
    int ddof = 0, c;
    struct cli_common common = {0};
    while ((c = getopt_long(argc, argv, "w:o:h", longopts, NULL)) != -1) {
        if (cli_common_option(c, optarg, &common, NULL, usage)) continue;
        switch (c) {
        case 'w': o.window = (size_t)cli_parse_int("--window", optarg, 1, 1LL << 40); break;
        case OPT_DROP: drop = true; break;
        case OPT_STD:
            if (strcmp(optarg, "population") == 0) ddof = 0;
            else if (strcmp(optarg, "sample") == 0) ddof = 1;
            else die_usage("--std must be population or sample, not '%s'", optarg);
            break;
        case OPT_PER: per = true; break;
        default: return cli_short_usage(usage);
        }
    }
    if (argc - optind > 1) die_usage("expected at most one input file");
    const char *input = optind < argc ? argv[optind] : NULL;

    err_t e;
    cli_stream src;
    cli_stream_open(&src, input, usage);
    ts_reader_t *rd = src.rd;
    if (drop) {
        int64_t eot = ts_reader_header(rd)->eot;
        if (eot < 0) die("--drop-eos: the stream header names no EOT token");
        o.drop_token = eot;
    }
    cli_output out;
    cli_output_open(&out, common.output, false, false);
    diversity_acc acc;
    diversity_acc_init(&acc);
    ts_record r = {0};
    int rc;
    size_t empty = 0;
    while ((rc = ts_read(rd, &r, &e)) >= 0) {
        diversity_metrics m;
        size_t kept = r.n_tokens;
        if (o.drop_token >= 0)
            for (size_t i = 0; i < r.n_tokens; i++) kept -= r.tokens[i] == (uint32_t)o.drop_token;
        if (kept == 0) { /* nothing to measure: counted, left out of the means */
            empty++;
            continue;
        }
        if (diversity_sample(r.tokens, r.n_tokens, &o, &m, &e))
            die("%s: record id %llu: %s", input ? input : "<stdin>", (unsigned long long)r.id,
                e.msg);
        diversity_acc_add(&acc, &m);
        if (per) {
            json_t *j = metrics_json(&m);
            json_object_set_new(j, "id", json_integer((json_int_t)r.id));
            json_dumpf(j, out.fp, JSON_COMPACT | JSON_REAL_PRECISION(17));
            fputc('\n', out.fp);
            json_decref(j);
        }
    }
    if (rc < ERR_EOF) die("%s", e.msg);
    if (acc.n == 0)
        die("%s: no records with tokens to measure (%zu empty)", input ? input : "<stdin>", empty);
    if (!per) {
        json_t *metrics = json_object();
        for (int k = 0; k < DIVERSITY_N_METRICS; k++)
            json_object_set_new(metrics, diversity_metric_names[k],
                                json_pack("{s:f,s:f}", "mean", acc.mean[k], "std",
                                          diversity_acc_std(&acc, k, ddof)));
        json_t *s = json_pack("{s:I,s:I,s:{s:I,s:b,s:s,s:s,s:s},s:o}", "records",
                              (json_int_t)acc.n, "empty_records", (json_int_t)empty,
                              "conventions", "window", (json_int_t)o.window, "drop_eos", drop,
                              "set_level", "mean over records (tokens not pooled)", "std",
                              ddof ? "sample (ddof 1)" : "population (ddof 0)", "entropy_log",
                              "natural (nats); bits also given", "metrics", metrics);
        json_dumpf(s, out.fp, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
        fputc('\n', out.fp);
        json_decref(s);
    }
    cli_output_commit(&out);
    ts_record_free(&r);
    cli_stream_close(&src);
    return EXIT_OK;
}
