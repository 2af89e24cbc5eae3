/* ckpt-info: checks a model directory (config.json + model.safetensors) against the tensors its
 * config implies and prints what it holds: kind, dimensions, parameter count, dtypes, size. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "cli.h"
#include "log.h"

static int usage(FILE *fp, int status)
{
    fprintf(fp,
            "Usage: ckpt-info [options] DIR\n"
            "Checks the model directory DIR (config.json + model.safetensors, GPT-2 or SEDD):\n"
            "every expected tensor present with the shape its config implies; then prints the\n"
            "kind, dimensions, parameter count (buffers excluded, a tied lm_head counted once),\n"
            "dtypes and file size.\n"
            "\n"
            "Options:\n"
            "      --json        print one JSON object instead of text [off]\n"
            "  -v, --verbose     log details on stderr, e.g. tensors that are ignored [off]\n"
            "  -q, --quiet       log nothing but errors [off]\n"
            "  -h, --help        print this help and exit\n"
            "      --version     print the version and build and exit\n"
            "\n" CLI_EXIT_TEXT "\n"
            "Example: ckpt-info --json tests/fixtures/sedd/tiny_absorb_loglinear\n");
    return status;
}

/* A JSON string literal (control characters escaped; other bytes as they are). */
static void put_json_str(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(fp, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(fp, "\\u%04x", *p);
        else
            fputc(*p, fp);
    }
    fputc('"', fp);
}

/* The shortest %g form that reads back as the same double. */
static const char *fmt_double(char *buf, size_t cap, double x)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    return buf;
}

enum { FIELD_INT, FIELD_REAL, FIELD_STR, FIELD_BOOL };

struct field {
    const char *key;
    int type;
    long long i;
    double r;
    const char *s;
};

static size_t config_fields(const struct config *cfg, struct field *f)
{
    size_t n = 0;
#define INT(k, v) f[n++] = (struct field){k, FIELD_INT, (long long)(v), 0, NULL}
#define REAL(k, v) f[n++] = (struct field){k, FIELD_REAL, 0, v, NULL}
#define STR(k, v) f[n++] = (struct field){k, FIELD_STR, 0, 0, v}
#define BOOL(k, v) f[n++] = (struct field){k, FIELD_BOOL, v, 0, NULL}
    if (cfg->kind == CONFIG_GPT2) {
        const struct config_gpt2 *g = &cfg->gpt2;
        INT("vocab_size", g->vocab_size);
        INT("n_positions", g->n_positions);
        INT("n_embd", g->n_embd);
        INT("n_head", g->n_head);
        INT("n_layer", g->n_layer);
        INT("head_dim", config_head_dim(cfg));
        INT("n_inner", g->n_inner);
        REAL("layer_norm_epsilon", g->layer_norm_epsilon);
        STR("activation_function", g->activation_function);
    } else {
        const struct config_sedd *s = &cfg->sedd;
        INT("tokens", s->tokens);
        INT("vocab", s->vocab);
        INT("hidden_size", s->hidden_size);
        INT("cond_dim", s->cond_dim);
        INT("n_blocks", s->n_blocks);
        INT("n_heads", s->n_heads);
        INT("head_dim", config_head_dim(cfg));
        INT("length", s->length);
        BOOL("scale_by_sigma", s->scale_by_sigma);
        STR("graph", config_graph_name(s->graph));
        STR("noise", config_noise_name(s->noise));
        REAL("sigma_min", s->sigma_min);
        REAL("sigma_max", s->sigma_max);
    }
#undef INT
#undef REAL
#undef STR
#undef BOOL
    return n;
}

static void print_value(FILE *fp, const struct field *f, int json)
{
    char buf[40];
    switch (f->type) {
    case FIELD_INT: fprintf(fp, "%lld", f->i); break;
    case FIELD_REAL: fputs(fmt_double(buf, sizeof buf, f->r), fp); break;
    case FIELD_BOOL: fputs(f->i ? "true" : "false", fp); break;
    default:
        if (json)
            put_json_str(fp, f->s);
        else
            fputs(f->s, fp);
    }
}

static void print_text(FILE *fp, const ckpt_t *ck)
{
    const struct ckpt_summary *s = ckpt_summary(ck);
    struct field f[16];
    size_t n = config_fields(ckpt_config(ck), f);
    fprintf(fp, "dir: %s\nkind: %s\n", ckpt_dir(ck), config_kind_name(s->kind));
    for (size_t i = 0; i < n; i++) {
        fprintf(fp, "%s: ", f[i].key);
        print_value(fp, &f[i], 0);
        fputc('\n', fp);
    }
    fprintf(fp, "parameters: %llu\n", (unsigned long long)s->n_params);
    fprintf(fp, "parameter_bytes: %llu\n", (unsigned long long)s->param_bytes);
    if (s->kind == CONFIG_GPT2)
        fprintf(fp, "lm_head: %s\n",
                s->lm_head == CKPT_LM_HEAD_ABSENT ? "absent (tied to wte.weight)"
                : s->lm_head == CKPT_LM_HEAD_TIED ? "tied (identical to wte.weight, counted once)"
                                                  : "untied (counted)");
    fprintf(fp, "tensors: %zu (%zu parameters, %zu buffers, %zu ignored)\n", s->n_tensors,
            s->n_param_tensors, s->n_buffers, s->n_extra);
    fputs("dtypes:", fp);
    for (int d = 0; d < ST_NDTYPES; d++)
        if (s->dtypes & (1u << d)) fprintf(fp, " %s", st_dtype_name((enum st_dtype)d));
    fprintf(fp, "\nfile_bytes: %llu\n", (unsigned long long)s->file_bytes);
}

static void print_json(FILE *fp, const ckpt_t *ck)
{
    const struct ckpt_summary *s = ckpt_summary(ck);
    struct field f[16];
    size_t n = config_fields(ckpt_config(ck), f);
    fputs("{\"dir\":", fp);
    put_json_str(fp, ckpt_dir(ck));
    fprintf(fp, ",\"kind\":\"%s\",\"config\":{", config_kind_name(s->kind));
    for (size_t i = 0; i < n; i++) {
        fprintf(fp, "%s\"%s\":", i ? "," : "", f[i].key);
        print_value(fp, &f[i], 1);
    }
    fprintf(fp, "},\"parameters\":%llu,\"parameter_bytes\":%llu",
            (unsigned long long)s->n_params, (unsigned long long)s->param_bytes);
    if (s->kind == CONFIG_GPT2) fprintf(fp, ",\"lm_head\":\"%s\"", ckpt_lm_head_name(s->lm_head));
    fprintf(fp, ",\"tensors\":%zu,\"parameter_tensors\":%zu,\"buffers\":%zu,\"ignored\":%zu",
            s->n_tensors, s->n_param_tensors, s->n_buffers, s->n_extra);
    fputs(",\"dtypes\":[", fp);
    int first = 1;
    for (int d = 0; d < ST_NDTYPES; d++)
        if (s->dtypes & (1u << d)) {
            fprintf(fp, "%s\"%s\"", first ? "" : ",", st_dtype_name((enum st_dtype)d));
            first = 0;
        }
    fprintf(fp, "],\"file_bytes\":%llu}\n", (unsigned long long)s->file_bytes);
}

int main(int argc, char **argv)
{
    cli_init("ckpt-info");
    enum { OPT_JSON = 256 };
    static const struct option opts[] = {
        {"json", no_argument, NULL, OPT_JSON},   {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'}, CLI_OPTION_HELP, CLI_OPTION_VERSION, {NULL, 0, NULL, 0},
    };
    int json = 0, c;
    while ((c = getopt_long(argc, argv, "vqh", opts, NULL)) != -1) {
        if (cli_common_option(c, optarg, NULL, NULL, usage)) continue;
        switch (c) {
        case OPT_JSON: json = 1; break;
        case 'v': log_set_level(LOG_INFO); break;
        case 'q': log_set_level(LOG_ERROR); break;
        default: return cli_short_usage(usage);
        }
    }
    if (optind != argc - 1) {
        if (optind == argc) die_usage("expected a model directory");
        die_usage("expected one model directory, got %d arguments", argc - optind);
    }

    err_t err;
    ckpt_t *ck = ckpt_open(argv[optind], &err);
    if (!ck) die("%s", err.msg);
    cli_output out;
    cli_output_open(&out, NULL, false, false);
    if (json)
        print_json(out.fp, ck);
    else
        print_text(out.fp, ck);
    ckpt_close(ck);
    cli_output_commit(&out);
    return EXIT_OK;
}
