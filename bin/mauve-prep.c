/* mauve-prep: the MAUVE featurization (specs/eval.md §6.1, §6.5) — for every record of a token
 * stream, GPT-2's ln_f output at the last token, computed on the record alone (no padding, no
 * BOS), written as a safetensors file that `mauve` reads: features F32 [n, C] and ids I64 [n]
 * in input order. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "cli.h"
#include "gpt2.h"
#include "lmscore.h"
#include "safetensors.h"
#include "tstream.h"

static int usage(FILE *fp, int status)
{
    fprintf(fp,
            "Usage: mauve-prep -m DIR [options] [in.msgpack|-]\n"
            "Writes the MAUVE feature of every record of a token stream: the last token's hidden\n"
            "state after the final layer norm of a GPT-2 model (GPT-2 large in the paper), each\n"
            "record run alone, its tokens fed as they are (no BOS). Output: a safetensors file\n"
            "with 'features' (F32 [n, n_embd]) and 'ids' (I64 [n], the record ids) in input\n"
            "order, and metadata {format, model, max_tokens, device}.\n"
            "\n"
            "Options:\n"
            "  -m, --model DIR        GPT-2 directory (config.json + model.safetensors)\n"
            "      --max-tokens N     keep the first N tokens of a record (MAUVE's\n"
            "                         max_text_length) [1024, at most the model's context]\n"
            "  -j, --threads N        threads, 0 = all cores [0]\n"
            "      --device DEV       cpu, cuda, or auto (cuda when a GPU is visible) [cpu]\n"
            "      --precision P      fp32, or bf16 (bf16 matrix products; cuda only) [fp32]\n"
            "  -o, --output FILE      write here, atomically [stdout]\n"
            "      --force            write binary output to a terminal\n"
            "  -h, --help             print this help and exit\n"
            "      --version          print the version and build and exit\n"
            "\n" CLI_EXIT_TEXT "\n"
            "Example: mauve-prep -m ckpt/gpt2-large -o q.safetensors sedd.msgpack &&\n"
            "         mauve -p p.safetensors -q q.safetensors\n");
    return status;
}

enum { OPT_MAX = 256 };

/* Copies the finished file at tmp to stdout; dies like every tool on a write error. */
static void copy_to_stdout(const char *tmp)
{
    FILE *in = fopen(tmp, "rb");
    if (!in) die_errno("cannot reopen '%s'", tmp);
    char buf[1 << 16];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, k, stdout) != k) break;
    fclose(in);
    unlink(tmp);
    if (fflush(stdout) != 0 || ferror(stdout)) die_errno("writing output failed");
}

int main(int argc, char **argv)
{
    backend_cpu_blas_init(argc, argv);
    cli_init("mauve-prep");
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'}, {"max-tokens", required_argument, NULL, OPT_MAX},
        CLI_OPTION_THREADS, CLI_OPTION_OUTPUT, CLI_OPTION_DEVICE, CLI_OPTION_PRECISION,
        CLI_OPTION_FORCE, CLI_OPTION_HELP, CLI_OPTION_VERSION, {NULL, 0, NULL, 0},
    };
    const char *model = NULL;
    long long max_tokens = 0;
    struct cli_common common = {0};
    int c;
    struct cli_device dev = {.device = "cpu"};
    while ((c = getopt_long(argc, argv, "m:j:o:h", longopts, NULL)) != -1) {
        if (cli_common_option(c, optarg, &common, &dev, usage)) continue;
        switch (c) {
        case 'm': model = optarg; break;
        case OPT_MAX: max_tokens = cli_parse_int("--max-tokens", optarg, 1, 1 << 20); break;
        default: return cli_short_usage(usage);
        }
    }
    const char *output = common.output;
    if (!model) die_usage("--model DIR is required");
    if (argc - optind > 1) die_usage("expected at most one input file");
    const char *input = optind < argc ? argv[optind] : NULL;
    FILE *fp = cli_open_input(input, usage);
    bool to_stdout = !output || strcmp(output, "-") == 0;
    struct stat sb;
    if (!to_stdout && stat(output, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        /* a device or a pipe (/dev/null, a fifo): written to like stdout, since renaming the
         * finished file over it would replace the device with a regular file */
        if (!freopen(output, "wb", stdout)) die_errno("cannot open '%s'", output);
        to_stdout = true;
    }
    if (to_stdout && !common.force && isatty(STDOUT_FILENO))
        die_usage("refusing to write binary output to a terminal (use -o FILE or --force)");
    cli_device_open(&dev);
    backend_cpu_set_threads(cli_threads(common.threads));

    err_t e;
    gpt2_t *m = gpt2_load(model, NULL, dev.be, &e);
    if (!m) die("%s", e.msg);
    const struct config_gpt2 *g = gpt2_config(m);
    if (max_tokens > g->n_positions)
        die_usage("--max-tokens %lld is longer than the model's context (%lld)", max_tokens,
                  (long long)g->n_positions);
    int maxT = (int)(max_tokens ? max_tokens : g->n_positions < 1024 ? g->n_positions : 1024);
    size_t C = (size_t)g->n_embd;

    ts_reader_t *rd = ts_reader_open(fp, input, &e);
    if (!rd) die("%s", e.msg);
    gpt2_state *s = gpt2_state_new(m, 1, maxT, maxT, &e);
    if (!s) die("%s", e.msg);

    ts_record r = {0};
    float *feat = NULL;
    int64_t *ids = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = ts_read(rd, &r, &e)) == 0) {
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            feat = realloc(feat, cap * C * sizeof *feat);
            ids = realloc(ids, cap * sizeof *ids);
            if (!feat || !ids) die("out of memory");
        }
        int T = r.n_tokens > (size_t)maxT ? maxT : (int)r.n_tokens;
        if (lmscore_feature(m, s, r.tokens, T, feat + n * C, &e) < 0)
            die("record %llu: %s", (unsigned long long)r.id, e.msg);
        ids[n++] = (int64_t)r.id;
    }
    if (rc != ERR_EOF) die("%s", e.msg);
    if (n == 0) die("%s: no records: nothing to featurize", input ? input : "<stdin>");

    char maxs[32], tmpl[] = "/tmp/mauve-prep.XXXXXX";
    snprintf(maxs, sizeof maxs, "%d", maxT);
    st_meta meta[] = {{"format", "dlmkit-mauve-features"}, {"model", model}, {"max_tokens", maxs},
                      {"device", dev.label}};
    st_tensor t[2] = {
        {.name = "features", .dtype = ST_F32, .ndim = 2, .shape = {(int64_t)n, (int64_t)C}, .data = feat},
        {.name = "ids", .dtype = ST_I64, .ndim = 1, .shape = {(int64_t)n}, .data = ids},
    };
    const char *path = output;
    if (to_stdout) {
        /* st_write writes a named file atomically; stdout gets a copy of a private temporary */
        const char *dir = getenv("TMPDIR");
        char *tmp = NULL;
        if (dir && *dir && asprintf(&tmp, "%s/mauve-prep.XXXXXX", dir) < 0) die("out of memory");
        int fd = mkstemp(tmp ? tmp : tmpl);
        if (fd < 0) die_errno("cannot create a temporary file");
        close(fd);
        path = tmp ? tmp : tmpl;
        if (st_write(path, t, 2, meta, sizeof meta / sizeof *meta, &e) < 0) {
            unlink(path);
            die("%s", e.msg);
        }
        copy_to_stdout(path);
        free(tmp);
    } else if (st_write(path, t, 2, meta, sizeof meta / sizeof *meta, &e) < 0) {
        die("%s", e.msg);
    }
    ts_record_free(&r);
    free(feat);
    free(ids);
    gpt2_state_free(s);
    ts_reader_free(rd);
    if (fp != stdin) fclose(fp);
    gpt2_free(m);
    return EXIT_OK;
}
