/* fixture-check: runs a reference fixture set (the formats of ../shared/fixtures/<set>/) through
 * the library and prints one line per case; exit 1 if any case fails or is not supported. */
#include <getopt.h>
#include <stdlib.h>

#include "cli.h"
#include "fixture.h"

static int usage(FILE *fp, int status)
{
    fprintf(fp,
            "Usage: fixture-check [options] DIR\n"
            "Detects the fixture set in DIR (tokenizer, gpt2, sedd or eval), runs every case and\n"
            "prints one line per case: PASS/FAIL, kind, name, max abs and rel error, tolerance.\n"
            "A case of a kind this build cannot run yet is UNSUPPORTED and counts as a failure.\n"
            "\n"
            "Options:\n"
            "      --kinds LIST    run only these comma-separated kinds (e.g. tokenizer,checkpoint);\n"
            "                      the others are skipped, not failed [all]\n"
            "      --vocab DIR     tokenizer files for the tokenizer set [data/gpt2]\n"
            "      --device DEV    where the model cases (gpt2, sedd sets) run: cpu, cuda, or\n"
            "                      auto (cuda when a GPU is visible); same tolerances [cpu]\n"
            "  -h, --help          print this help and exit\n"
            "      --version       print the version and build and exit\n"
            "\n" CLI_EXIT_TEXT "\n"
            "Example: fixture-check --device cuda tests/fixtures/gpt2\n");
    return status;
}

enum { OPT_KINDS = 256, OPT_VOCAB };

int main(int argc, char **argv)
{
    cli_init("fixture-check");
    static const struct option longopts[] = {
        {"kinds", required_argument, NULL, OPT_KINDS},
        {"vocab", required_argument, NULL, OPT_VOCAB},
        CLI_OPTION_DEVICE,
        CLI_OPTION_HELP,
        CLI_OPTION_VERSION,
        {NULL, 0, NULL, 0},
    };
    fixture_report r = {.out = stdout};
    struct cli_device dev = {.device = "cpu"};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (cli_common_option(c, optarg, NULL, &dev, usage)) continue;
        switch (c) {
        case OPT_KINDS: r.kinds = optarg; break;
        case OPT_VOCAB: r.vocab = optarg; break;
        default: return cli_short_usage(usage);
        }
    }
    if (argc - optind != 1) die_usage("expected one fixture directory");
    cli_device_open(&dev);
    r.be = dev.be;
    err_t e;
    if (fixture_run(argv[optind], &r, &e) < 0) die("%s", e.msg);
    printf("%d passed, %d failed, %d unsupported, %d skipped\n", r.n_pass, r.n_fail,
           r.n_unsupported, r.n_skipped);
    cli_output out = {.fp = stdout};
    cli_output_commit(&out);
    return r.n_fail || r.n_unsupported || r.n_pass == 0 ? EXIT_DATA : EXIT_OK;
}
