/* train: trains a model (GPT-2 or SEDD, through one table of architectures) on token-stream blocks and
 * writes checkpoint directories in the released layout (lib/train.h has the loop). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cli.h"
#include "config.h"
#include "device.h"
#include "gpt2_train.h"
#include "log.h"
#include "sedd_train.h"
#include "train.h"
#include "tstream.h"

static int usage(FILE *fp, int status)
{
    fprintf(fp,
            "Usage: train --arch gpt2 --data TRAIN.msgpack -o DIR [options]\n"
            "Trains a model on the records of a token stream, each one training block of exactly\n"
            "the context length (tokenize --block T makes such streams), and writes DIR:\n"
            "config.json, model.safetensors (loadable by gpt2-score etc.), train_state.safetensors\n"
            "(what --resume needs) and train.log.jsonl (one JSON line per logged step).\n"
            "Step s draws its blocks with replacement from the seed and s only, so a run is\n"
            "reproducible, and an interrupted run resumed with --resume ends bit-identical.\n"
            "\n"
            "Model:\n"
            "      --arch NAME        gpt2 or sedd (absorbing graph, log-linear noise) [gpt2]\n"
            "      --init DIR         start from this checkpoint instead of random weights\n"
            "      --layers N         blocks [12]\n"
            "      --width C          hidden size [768]\n"
            "      --heads H          attention heads [12]\n"
            "      --context T        block length = context [1024]\n"
            "      --vocab V          vocabulary [the stream's vocab_size]\n"
            "      --cond-dim N       SEDD: conditioning width [128]\n"
            "Data:\n"
            "      --data FILE        training blocks (token stream)\n"
            "      --val FILE         validation blocks [the training blocks]\n"
            "Optimisation:\n"
            "      --steps N          optimiser steps in all [1000]; 0 writes the initial model\n"
            "      --batch B          blocks per step [8]\n"
            "      --lr X             peak learning rate [3e-4]\n"
            "      --warmup N         linear warm-up steps [0]\n"
            "      --cosine           cosine decay to --lr-min after warm-up [constant]\n"
            "      --lr-min X         [0]\n"
            "      --beta1 X, --beta2 X  AdamW moments [0.9, 0.95]\n"
            "      --weight-decay X   AdamW decay of matrices and embeddings [0.1]\n"
            "      --grad-clip X      max global gradient norm, 0 = off [1]\n"
            "      --ema X            keep an EMA of the weights (decay X) and save it [0 = off]\n"
            "      --seed S           initialisation and batch draws [0]\n"
            "Output:\n"
            "  -o, --output DIR       checkpoint directory, replaced atomically at each save (an\n"
            "                         existing DIR must be empty or hold a config.json)\n"
            "                         (without --resume, an existing run there is started afresh;\n"
            "                         missing parent directories are created)\n"
            "      --resume           continue the run in DIR from its train_state.safetensors;\n"
            "                         every setting that shapes the result must be the same\n"
            "      --save-every N     also save every N steps [1000]\n"
            "      --stop-at N        stop after step N as if interrupted (the checkpoint is\n"
            "                         written; --resume later continues to --steps)\n"
            "      --eval-every N     log and validate every N steps, 0 = off [100]\n"
            "      --eval-batches N   validation batches (fixed: the val blocks in order) [8]\n"
            "      --dtype D          f32, bf16 or f16 weights in model.safetensors [f32]\n"
            "Device:\n"
            "      --device DEV       cpu, cuda or auto (cuda when a GPU is visible) [cpu]\n"
            "      --precision P      matrix products in fp32, or bf16 (CUDA only: tensor-core\n"
            "                         math, fp32 storage and accumulation) [fp32]\n"
            "  -j, --threads N        threads, 0 = all cores [0]\n"
            "      --progress         progress line even when stderr is not a terminal\n"
            "  -h, --help             print this help and exit\n"
            "      --version          print the version and build and exit\n"
            "\n" CLI_EXIT_TEXT "\n"
            "Example: tokenize --block 128 corpus.txt > blocks.msgpack\n"
            "         train --data blocks.msgpack --layers 4 --width 128 --heads 4 --context 128 \\\n"
            "               --steps 2000 --batch 16 --warmup 100 --cosine -o ckpt/small\n");
    return status;
}

/* The size flags, shared by every architecture (0: the architecture's default). */
struct sizes {
    long long layers, width, heads, context, vocab, cond_dim;
    int64_t eot;  /* the stream's end-of-text id, or -1 */
};

struct options {
    struct cli_common common;
    const char *arch, *data, *val, *init, *dtype;
    struct cli_device dev;
    struct sizes sizes;
    struct train_opts train;
    bool resume;
};

static long long or_default(long long v, long long d) { return v ? v : d; }

static int gpt2_config_from(const struct sizes *s, struct config *c, err_t *e)
{
    struct config_gpt2 *g = &c->gpt2;
    c->kind = CONFIG_GPT2;
    g->n_layer = or_default(s->layers, 12);
    g->n_embd = or_default(s->width, 768);
    g->n_head = or_default(s->heads, 12);
    g->n_positions = or_default(s->context, 1024);
    g->vocab_size = s->vocab;
    g->n_inner = 4 * g->n_embd;
    g->layer_norm_epsilon = 1e-5;
    g->act = CONFIG_ACT_GELU_TANH;
    snprintf(g->activation_function, sizeof g->activation_function, "gelu_new");
    g->bos_token_id = g->eos_token_id = s->eot >= 0 ? s->eot : g->vocab_size - 1;
    if (g->n_embd % g->n_head)
        return err_set(e, "--width %lld is not a multiple of --heads %lld", (long long)g->n_embd,
                       (long long)g->n_head);
    return 0;
}

/* SEDD (absorbing graph, log-linear noise, as the released small model) of the same flags. */
static int sedd_config_from(const struct sizes *s, struct config *c, err_t *e)
{
    struct config_sedd *d = &c->sedd;
    c->kind = CONFIG_SEDD;
    d->n_blocks = or_default(s->layers, 12);
    d->hidden_size = or_default(s->width, 768);
    d->n_heads = or_default(s->heads, 12);
    d->length = or_default(s->context, 1024);
    d->cond_dim = or_default(s->cond_dim, 128);
    d->tokens = s->vocab;
    d->vocab = s->vocab + 1;
    d->scale_by_sigma = true;
    d->graph = CONFIG_GRAPH_ABSORB;
    d->noise = CONFIG_NOISE_LOGLINEAR;
    d->sigma_min = 1e-4;
    d->sigma_max = 20;
    if (d->hidden_size % d->n_heads || (d->hidden_size / d->n_heads) % 2)
        return err_set(e, "--width %lld must be --heads %lld times an even head size",
                       (long long)d->hidden_size, (long long)d->n_heads);
    return 0;
}

/* The architectures: the config of the size flags, the random-init constructor of that config's
 * kind, and the constructor from a checkpoint directory. */
static const struct arch {
    const char *name;
    int (*config_from)(const struct sizes *s, struct config *c, err_t *e);
    train_model *(*new_gpt2)(const struct config_gpt2 *c, const backend *be, uint64_t seed,
                             err_t *e);
    train_model *(*new_sedd)(const struct config_sedd *c, const backend *be, uint64_t seed,
                             err_t *e);
    train_model *(*load)(const char *dir, const backend *be, err_t *e);
} archs[] = {
    {"gpt2", gpt2_config_from, gpt2_train_new, NULL, gpt2_train_load},
    {"sedd", sedd_config_from, NULL, sedd_train_new, sedd_train_load},
};

enum { OPT_ARCH = 256, OPT_DATA, OPT_VAL, OPT_INIT, OPT_RESUME, OPT_LAYERS, OPT_WIDTH,
       OPT_HEADS, OPT_CONTEXT, OPT_VOCAB, OPT_COND, OPT_STEPS, OPT_LR, OPT_WARMUP, OPT_COSINE,
       OPT_LR_MIN, OPT_BETA1, OPT_BETA2, OPT_WD, OPT_CLIP, OPT_EMA, OPT_EVAL_EVERY,
       OPT_EVAL_BATCHES, OPT_SAVE_EVERY, OPT_STOP_AT, OPT_DTYPE };

static void parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"arch", required_argument, NULL, OPT_ARCH}, {"data", required_argument, NULL, OPT_DATA},
        {"val", required_argument, NULL, OPT_VAL}, {"init", required_argument, NULL, OPT_INIT},
        {"resume", no_argument, NULL, OPT_RESUME},
        {"layers", required_argument, NULL, OPT_LAYERS},
        {"width", required_argument, NULL, OPT_WIDTH},
        {"heads", required_argument, NULL, OPT_HEADS},
        {"context", required_argument, NULL, OPT_CONTEXT},
        {"vocab", required_argument, NULL, OPT_VOCAB},
        {"cond-dim", required_argument, NULL, OPT_COND},
        {"steps", required_argument, NULL, OPT_STEPS}, {"batch", required_argument, NULL, 'b'},
        {"lr", required_argument, NULL, OPT_LR}, {"warmup", required_argument, NULL, OPT_WARMUP},
        {"cosine", no_argument, NULL, OPT_COSINE}, {"lr-min", required_argument, NULL, OPT_LR_MIN},
        {"beta1", required_argument, NULL, OPT_BETA1},
        {"beta2", required_argument, NULL, OPT_BETA2},
        {"weight-decay", required_argument, NULL, OPT_WD},
        {"grad-clip", required_argument, NULL, OPT_CLIP}, {"ema", required_argument, NULL, OPT_EMA},
        {"eval-every", required_argument, NULL, OPT_EVAL_EVERY},
        {"eval-batches", required_argument, NULL, OPT_EVAL_BATCHES},
        {"save-every", required_argument, NULL, OPT_SAVE_EVERY},
        CLI_OPTION_SEED, {"stop-at", required_argument, NULL, OPT_STOP_AT},
        {"dtype", required_argument, NULL, OPT_DTYPE}, CLI_OPTION_DEVICE, CLI_OPTION_PRECISION,
        CLI_OPTION_THREADS, CLI_OPTION_OUTPUT, CLI_OPTION_PROGRESS, CLI_OPTION_HELP,
        CLI_OPTION_VERSION, {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    train_defaults(&o->train);
    o->arch = "gpt2";
    o->dev.device = "cpu";
    o->sizes.eot = -1;
    struct train_opts *t = &o->train;
    const long long big = 1LL << 30;
    int c;
    bool sized = false;
    while ((c = getopt_long(argc, argv, "b:j:o:h", longopts, NULL)) != -1) {
        if (cli_common_option(c, optarg, &o->common, &o->dev, usage)) continue;
        switch (c) {
        case OPT_ARCH: o->arch = optarg; break;
        case OPT_DATA: o->data = optarg; break;
        case OPT_VAL: o->val = optarg; break;
        case OPT_INIT: o->init = optarg; break;
        case OPT_RESUME: o->resume = true; break;
        case OPT_LAYERS: o->sizes.layers = cli_parse_int("--layers", optarg, 1, 1024); sized = true; break;
        case OPT_WIDTH: o->sizes.width = cli_parse_int("--width", optarg, 1, 1 << 16); sized = true; break;
        case OPT_HEADS: o->sizes.heads = cli_parse_int("--heads", optarg, 1, 1024); sized = true; break;
        case OPT_CONTEXT: o->sizes.context = cli_parse_int("--context", optarg, 2, 1 << 20); sized = true; break;
        case OPT_VOCAB: o->sizes.vocab = cli_parse_int("--vocab", optarg, 2, INT32_MAX); sized = true; break;
        case OPT_COND: o->sizes.cond_dim = cli_parse_int("--cond-dim", optarg, 1, 1 << 16); sized = true; break;
        case OPT_STEPS: t->steps = (int)cli_parse_int("--steps", optarg, 0, INT32_MAX); break;
        case 'b': t->batch = (int)cli_parse_int("--batch", optarg, 1, 1 << 20); break;
        case OPT_LR: t->lr = cli_parse_double("--lr", optarg, 0, 10); break;
        case OPT_WARMUP: t->warmup = (int)cli_parse_int("--warmup", optarg, 0, INT32_MAX); break;
        case OPT_COSINE: t->cosine = 1; break;
        case OPT_LR_MIN: t->lr_min = cli_parse_double("--lr-min", optarg, 0, 10); break;
        case OPT_BETA1: t->beta1 = cli_parse_double("--beta1", optarg, 0, 0.999999); break;
        case OPT_BETA2: t->beta2 = cli_parse_double("--beta2", optarg, 0, 0.999999999); break;
        case OPT_WD: t->weight_decay = cli_parse_double("--weight-decay", optarg, 0, 10); break;
        case OPT_CLIP: t->grad_clip = cli_parse_double("--grad-clip", optarg, 0, 1e30); break;
        case OPT_EMA: t->ema = cli_parse_double("--ema", optarg, 0, 0.999999999); break;
        case OPT_EVAL_EVERY: t->eval_every = (int)cli_parse_int("--eval-every", optarg, 0, INT32_MAX); break;
        case OPT_EVAL_BATCHES: t->eval_batches = (int)cli_parse_int("--eval-batches", optarg, 0, big); break;
        case OPT_SAVE_EVERY: t->save_every = (int)cli_parse_int("--save-every", optarg, 0, INT32_MAX); break;
        case OPT_STOP_AT: t->stop_at = (int)cli_parse_int("--stop-at", optarg, 1, INT32_MAX); break;
        case OPT_DTYPE: t->dtype = optarg; break;
        default: exit(cli_short_usage(usage));
        }
    }
    t->seed = o->common.seed;
    t->progress = o->common.progress;
    if (optind < argc) die_usage("unexpected argument '%s'", argv[optind]);
    if (!o->common.output || strcmp(o->common.output, "-") == 0)
        die_usage("-o DIR (the checkpoint directory) is required");
    if (strlen(o->common.output) > 3000) die_usage("-o: the path is too long");
    if (!o->data && t->steps > 0) die_usage("--data FILE is required (unless --steps 0)");
    if (o->init && sized) die_usage("--init takes the model's size from its config.json: drop "
                                    "the size flags");
    if (strcmp(t->dtype, "f32") && strcmp(t->dtype, "bf16") && strcmp(t->dtype, "f16"))
        die_usage("--dtype %s: expected f32, bf16 or f16", t->dtype);
}

/* All records of a stream as blocks of exactly T ids < vocab; *n = their count. */
static int32_t *read_blocks(const char *path, int T, int vocab, size_t *n)
{
    cli_stream s;
    cli_stream_open(&s, path, usage);
    ts_record r = {0};
    err_t e;
    size_t cap = 0;
    int32_t *ids = NULL;
    int rc;
    *n = 0;
    while ((rc = ts_read(s.rd, &r, &e)) == 0) {
        if (r.n_tokens != (size_t)T)
            die("%s: record %zu (id %llu) has %zu tokens; every block must be exactly the "
                "context length (%d)", path, *n, (unsigned long long)r.id, r.n_tokens, T);
        for (size_t i = 0; i < r.n_tokens; i++)
            if (r.tokens[i] >= (uint32_t)vocab)
                die("%s: record %zu (id %llu): token id %u at position %zu is outside the "
                    "vocabulary (%d)", path, *n, (unsigned long long)r.id, r.tokens[i], i, vocab);
        if (*n == cap) {
            cap = cap ? 2 * cap : 256;
            ids = realloc(ids, cap * (size_t)T * sizeof *ids);
            if (!ids) die("out of memory reading %s", path);
        }
        for (size_t i = 0; i < r.n_tokens; i++) ids[*n * (size_t)T + i] = (int32_t)r.tokens[i];
        (*n)++;
    }
    if (rc < ERR_EOF) die("%s", e.msg);
    ts_record_free(&r);
    cli_stream_close(&s);
    if (*n == 0) die("%s: no records (an empty stream has no training blocks)", path);
    return ids;
}

/* The stream's header facts (vocab_size, eot) without reading its records. */
static void stream_facts(const char *path, struct sizes *s)
{
    cli_stream st;
    cli_stream_open(&st, path, usage);
    const ts_header *h = ts_reader_header(st.rd);
    if (!s->vocab) s->vocab = h->vocab_size > INT32_MAX ? INT32_MAX : (long long)h->vocab_size;
    s->eot = h->eot;
    cli_stream_close(&st);
}

int main(int argc, char **argv)
{
    backend_cpu_blas_init(argc, argv);
    cli_init("train");
    struct options o;
    parse_options(argc, argv, &o);
    const struct arch *a = NULL;
    for (size_t i = 0; i < sizeof archs / sizeof *archs; i++)
        if (strcmp(archs[i].name, o.arch) == 0) a = &archs[i];
    if (!a) die_usage("--arch %s: unknown (gpt2, sedd)", o.arch);
    backend_cpu_set_threads(cli_threads(o.common.threads));
    log_set_level(LOG_INFO);

    err_t e;
    cli_device_open(&o.dev);
    const backend *be = o.dev.be;
    o.train.device = device_name(o.dev.kind);
    if (o.dev.precision) o.train.precision = o.dev.precision;
    train_model *m;
    if (o.init) {
        m = a->load(o.init, be, &e);
    } else {
        if (o.data) stream_facts(o.data, &o.sizes);
        if (!o.sizes.vocab) die_usage("--vocab V is required without --data");
        struct config cfg = {0};
        if (a->config_from(&o.sizes, &cfg, &e) < 0) die_usage("%s", e.msg);
        m = cfg.kind == CONFIG_GPT2 ? a->new_gpt2(&cfg.gpt2, be, o.train.seed, &e)
                                    : a->new_sedd(&cfg.sedd, be, o.train.seed, &e);
    }
    if (!m) die("%s", e.msg);
    if (strcmp(m->arch, o.arch) != 0)
        die("--init %s: a %s checkpoint, not %s", o.init, m->arch, o.arch);
    size_t n_train = 0, n_val = 0;
    int32_t *train = o.data ? read_blocks(o.data, m->block_len, m->vocab, &n_train) : NULL;
    int32_t *val = o.val ? read_blocks(o.val, m->block_len, m->vocab, &n_val) : NULL;
    log_info("%s: %zu parameters, %zu training blocks of %d tokens%s, on %s (%s)", m->arch,
             m->n_params, n_train, m->block_len, o.val ? "" : " (also used for validation)",
             o.train.device, o.train.precision);
    int rc = train_run(m, &o.train, train, n_train, val, n_val, o.common.output, o.resume, &e);
    free(train);
    free(val);
    m->free(m);
    if (rc < 0) die("%s", e.msg);
    return EXIT_OK;
}
