/* lm-eval: zero-shot lm-evaluation-harness v0.4.2 tasks (specs/eval.md §7) on the requests that
 * `dataset -f requests` writes: each (context, continuation) is encoded as the harness does and
 * scored by GPT-2's teacher-forced log-likelihood or SEDD's conditional bound; per-document
 * scores go to a JSONL file and the task's summary (acc, acc_norm with stderr; LAMBADA acc and
 * perplexity) to stdout. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bpe.h"
#include "cli.h"
#include "config.h"
#include "gpt2.h"
#include "lmeval.h"
#include "lmscore.h"
#include "sedd.h"

static int usage(FILE *fp, int status)
{
    fprintf(fp,
            "Usage: lm-eval -m DIR --task T [options] [requests.jsonl|-]\n"
            "Scores lm-eval-harness requests (JSON lines of `dataset -f requests`) with a model\n"
            "and prints the task's summary as JSON: acc, acc_norm and their stderr (acc only for\n"
            "winogrande), or for lambada_openai acc (greedy match) and the last-word perplexity.\n"
            "GPT-2: teacher-forced log-likelihood of each continuation, context and continuation\n"
            "encoded as the harness's _encode_pair does. SEDD: ll = -(conditional likelihood\n"
            "bound) with K stratified times, only continuation positions perturbed; LAMBADA's\n"
            "greedy match masks the whole continuation and takes the argmax at every position in\n"
            "parallel at t = 1e-5 (absorbing models only). The tokenizer is GPT-2's, so the model\n"
            "needs its vocabulary (a smaller one, e.g. a test model, is an error).\n"
            "\n"
            "Options:\n"
            "  -m, --model DIR        model directory (config.json + model.safetensors)\n"
            "      --task T           lambada_openai, hellaswag, piqa, arc_easy, arc_challenge,\n"
            "                         winogrande; every request line must be of this task\n"
            "      --limit N          score the first N documents only [all]\n"
            "      --bos              prepend <|endoftext|> to every context (sdtt's GPT-2 script)\n"
            "  -K, --t-samples K      SEDD: time samples of the bound [32]\n"
            "      --seed S           SEDD: random seed of the bound's draws [0]\n"
            "      --vocab DIR        GPT-2 vocabulary [data/gpt2]\n"
            "  -o, --docs FILE        write per-document scores as JSON lines here, atomically\n"
            "  -j, --threads N        threads, 0 = all cores [0]\n"
            "      --device DEV       cpu, cuda, or auto (cuda when a GPU is visible) [cpu]\n"
            "      --precision P      fp32, or bf16 (bf16 matrix products; cuda only) [fp32]\n"
            "  -h, --help             print this help and exit\n"
            "      --version          print the version and build and exit\n"
            "\n" CLI_EXIT_TEXT "\n"
            "Example: dataset -f requests --task piqa piqa valid.jsonl --labels valid-labels.lst |\n"
            "         lm-eval -m ckpt/gpt2 --task piqa --docs piqa.docs.jsonl\n");
    return status;
}

enum { OPT_TASK = 256, OPT_LIMIT, OPT_BOS, OPT_VOCAB };

/* The model behind the requests: GPT-2 or SEDD. */
struct scorer {
    gpt2_t *gpt2;
    gpt2_state *state;
    sedd_model_t *sedd;
    sedd_graph g;
    sedd_noise nz;
    float *ws;      /* (max_len, V) SEDD log-scores, in the model's backend memory */
    int max_len;    /* tokens per sequence */
    int K;
    uint64_t seed;
};

/* Scores one request; SEDD drops context tokens from the left to fit max_len, as the harness
 * does for GPT-2. se is NaN for GPT-2. */
static int score(struct scorer *sc, const uint32_t *c, int nc, const uint32_t *k, int nk,
                 uint64_t doc, uint32_t req, bool want_greedy, double *ll, double *se,
                 bool *greedy, err_t *e)
{
    *se = NAN;
    *greedy = false;
    if (sc->gpt2) return lmscore_gpt2(sc->gpt2, sc->state, c, nc, k, nk, ll, greedy, e);
    if (nk > sc->max_len) return err_set(e, "continuation of %d tokens is longer than the model's %d", nk, sc->max_len);
    if (nc + nk > sc->max_len) {
        c += nc + nk - sc->max_len;
        nc = sc->max_len - nk;
    }
    return lmscore_sedd(sedd_backend(sc->sedd), &sc->g, &sc->nz, sedd_score_device, sc->sedd, c,
                        nc, k, nk, sc->K, sc->seed, doc, req, 1e-5, sc->ws, ll, se,
                        want_greedy ? greedy : NULL, e);
}

/* Fills d with pointers borrowed from the request line o (valid while o lives). */
static int doc_from_json(json_t *o, lmeval_task task, lmeval_doc *d, err_t *e)
{
    json_t *rq = json_object_get(o, "requests"), *ch = json_object_get(o, "choices");
    json_t *tk = json_object_get(o, "task"), *gold = json_object_get(o, "gold");
    if (!json_is_string(tk) || strcmp(json_string_value(tk), lmeval_name(task)) != 0)
        return err_set(e, "not a %s request (field \"task\")", lmeval_name(task));
    if (!json_is_array(rq) || json_array_size(rq) == 0)
        return err_set(e, "field \"requests\" must be a non-empty array");
    if (!json_is_integer(gold)) return err_set(e, "field \"gold\" must be an integer");
    size_t n = json_array_size(rq);
    bool lambada = task == LMEVAL_LAMBADA;
    if (!lambada && (!json_is_array(ch) || json_array_size(ch) != n))
        return err_set(e, "field \"choices\" must hold one string per request");
    d->task = task;
    d->n_req = n;
    d->gold = (int)json_integer_value(gold);
    if (!lambada && (d->gold < 0 || (size_t)d->gold >= n)) return err_set(e, "gold out of range");
    d->context = calloc(n, sizeof *d->context);
    d->continuation = calloc(n, sizeof *d->continuation);
    d->choices = calloc(n, sizeof *d->choices);
    if (!d->context || !d->continuation || !d->choices) return err_set(e, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(rq, i);
        json_t *c0 = json_array_get(p, 0), *c1 = json_array_get(p, 1);
        if (!json_is_array(p) || json_array_size(p) != 2 || !json_is_string(c0) || !json_is_string(c1))
            return err_set(e, "request %zu must be [context, continuation]", i);
        d->context[i] = (char *)json_string_value(c0);
        d->continuation[i] = (char *)json_string_value(c1);
        if (!lambada) {
            json_t *c = json_array_get(ch, i);
            if (!json_is_string(c)) return err_set(e, "choice %zu must be a string", i);
            d->choices[i] = (char *)json_string_value(c);
        }
    }
    return 0;
}

static void doc_release(lmeval_doc *d)
{
    free(d->context);
    free(d->continuation);
    free(d->choices);
    memset(d, 0, sizeof *d);
}

int main(int argc, char **argv)
{
    backend_cpu_blas_init(argc, argv);
    cli_init("lm-eval");
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'}, {"task", required_argument, NULL, OPT_TASK},
        {"limit", required_argument, NULL, OPT_LIMIT}, {"bos", no_argument, NULL, OPT_BOS},
        {"t-samples", required_argument, NULL, 'K'}, CLI_OPTION_SEED,
        {"vocab", required_argument, NULL, OPT_VOCAB}, {"docs", required_argument, NULL, 'o'},
        CLI_OPTION_OUTPUT, CLI_OPTION_THREADS, CLI_OPTION_DEVICE, CLI_OPTION_PRECISION,
        CLI_OPTION_HELP, CLI_OPTION_VERSION, {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *task_name = NULL, *vocab = NULL;
    long long limit = -1, t_samples = 0;
    struct cli_common common = {0};
    bool bos = false;
    struct cli_device dev = {.device = "cpu"};
    int c;
    err_t e;
    while ((c = getopt_long(argc, argv, "m:o:j:K:h", longopts, NULL)) != -1) {
        if (cli_common_option(c, optarg, &common, &dev, usage)) continue;
        switch (c) {
        case 'm': model = optarg; break;
        case OPT_TASK: task_name = optarg; break;
        case OPT_LIMIT: limit = cli_parse_int("--limit", optarg, 0, 1LL << 40); break;
        case OPT_BOS: bos = true; break;
        case 'K': t_samples = cli_parse_int("--t-samples", optarg, 1, 1 << 20); break;
        case OPT_VOCAB: vocab = optarg; break;
        default: return cli_short_usage(usage);
        }
    }
    const char *docs = common.output;
    if (!model) die_usage("--model DIR is required");
    if (!task_name) die_usage("--task T is required");
    lmeval_task task;
    if (lmeval_parse(task_name, &task, &e) < 0) die_usage("--task: %s", e.msg);
    if (docs && strcmp(docs, "-") == 0) die_usage("--docs -: stdout carries the summary; name a file");
    if (argc - optind > 1) die_usage("expected at most one input file");
    const char *input = optind < argc ? argv[optind] : NULL;
    FILE *fp = cli_open_input(input, usage);
    cli_device_open(&dev);
    backend_cpu_set_threads(cli_threads(common.threads));

    struct config cfg;
    if (config_read_dir(model, &cfg, &e) < 0) die("%s", e.msg);
    bool is_sedd = cfg.kind == CONFIG_SEDD;
    if (!is_sedd && (t_samples || common.seed_given))
        die_usage("--t-samples and --seed apply to SEDD models; %s is GPT-2", model);
    int64_t model_vocab = is_sedd ? cfg.sedd.tokens : cfg.gpt2.vocab_size;
    bpe_t *bpe = vocab ? bpe_load(vocab, &e) : bpe_load_default(&e);
    if (!bpe) die("%s", e.msg);
    if ((int64_t)bpe_vocab_size(bpe) > model_vocab)
        die("%s: the model's vocabulary (%lld tokens) is smaller than the tokenizer's (%zu): "
            "GPT-2 token ids would not fit", model, (long long)model_vocab,
            bpe_vocab_size(bpe));
    int32_t eot = bpe_token_id(bpe, BPE_EOT);
    if (eot < 0) die("%s: the vocabulary has no %s token", bpe_dir(bpe), BPE_EOT);
    bpe_enc_t *enc = bpe_enc_new(bpe, &e);
    if (!enc) die("%s", e.msg);
    struct scorer sc = {.K = t_samples ? (int)t_samples : 32, .seed = common.seed};
    if (is_sedd) {
        sedd_set_threads(cli_threads(common.threads));
        if (!(sc.sedd = sedd_load(model, dev.be, &e))) die("%s", e.msg);
        const struct config_sedd *sc_cfg = sedd_config(sc.sedd);
        sedd_graph_init(&sc.g, sc_cfg->graph, sc_cfg->tokens);
        sedd_noise_init(&sc.nz, sc_cfg);
        sc.max_len = (int)sc_cfg->length;
        /* the log-scores stay where the model runs */
        size_t ws_bytes = (size_t)sc.max_len * (size_t)sc.g.dim * sizeof *sc.ws;
        sc.ws = sedd_backend(sc.sedd)->alloc(ws_bytes);
        if (!sc.ws) die("out of memory");
        if (task == LMEVAL_LAMBADA && sc.g.type != CONFIG_GRAPH_ABSORB)
            die("%s: LAMBADA's greedy match needs an absorbing (masked) SEDD model", model);
    } else {
        if (!(sc.gpt2 = gpt2_load(model, NULL, dev.be, &e))) die("%s", e.msg);
        sc.max_len = (int)gpt2_config(sc.gpt2)->n_positions;
        if (!(sc.state = gpt2_state_new(sc.gpt2, 1, sc.max_len, sc.max_len, &e))) die("%s", e.msg);
    }

    const char *name = input && strcmp(input, "-") != 0 ? input : "<stdin>";
    cli_output out = {0};
    if (docs) cli_output_open(&out, docs, false, false);
    lmeval_agg agg = {0};
    struct bpe_ids ci = {0}, ki = {0}, cb = {0};
    double *ll = NULL, *se = NULL;
    bool *greedy = NULL;
    char *line = NULL;
    size_t lcap = 0, lineno = 0;
    ssize_t len;
    long long ndoc = 0;
    while ((limit < 0 || ndoc < limit) && (len = getline(&line, &lcap, fp)) >= 0) {
        lineno++;
        if (len <= 1 && (len == 0 || line[0] == '\n')) continue;
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)len, 0, &je);
        if (!o || !json_is_object(o)) die("%s:%zu: not a JSON object: %s", name, lineno, o ? "" : je.text);
        lmeval_doc d = {0};
        if (doc_from_json(o, task, &d, &e) < 0) die("%s:%zu: %s", name, lineno, e.msg);
        ll = realloc(ll, d.n_req * sizeof *ll);
        greedy = realloc(greedy, d.n_req * sizeof *greedy);
        se = realloc(se, d.n_req * sizeof *se);
        if (!ll || !greedy || !se) die("out of memory");
        for (size_t i = 0; i < d.n_req; i++) {
            if (lmscore_encode_pair(enc, d.context[i], d.continuation[i], (uint32_t)eot, &ci, &ki, &e) < 0)
                die("%s:%zu: request %zu: %s", name, lineno, i, e.msg);
            cb.n = 0;
            uint32_t b = (uint32_t)eot;
            if ((bos && bpe_ids_append(&cb, &b, 1, &e) < 0) || bpe_ids_append(&cb, ci.v, ci.n, &e) < 0)
                die("%s", e.msg);
            if (score(&sc, cb.v, (int)cb.n, ki.v, (int)ki.n, (uint64_t)(lineno - 1), (uint32_t)i,
                      task == LMEVAL_LAMBADA, &ll[i], &se[i], &greedy[i], &e) < 0)
                die("%s:%zu: request %zu: %s", name, lineno, i, e.msg);
        }
        lmeval_scores ds;
        lmeval_score(&d, ll, greedy, &ds);
        if (lmeval_agg_add(&agg, &ds, &e) < 0) die("%s", e.msg);
        if (docs) {
            json_t *lla = json_array(), *ga = json_array(), *sa = json_array();
            for (size_t i = 0; i < d.n_req; i++) {
                json_array_append_new(lla, json_real(ll[i]));
                json_array_append_new(ga, json_boolean(greedy[i]));
                json_array_append_new(sa, json_real(se[i]));
            }
            json_t *r = json_pack("{s:O,s:O,s:o,s:o,s:f}", "task", json_object_get(o, "task"),
                                  "index", json_object_get(o, "index"), "ll", lla,
                                  "is_greedy", ga, "acc", ds.acc);
            if (is_sedd) json_object_set_new(r, "ll_stderr", sa);
            else json_decref(sa);
            if (task != LMEVAL_LAMBADA)
                json_object_update_new(r, json_pack("{s:i,s:i}", "gold", d.gold, "pred", ds.pred));
            if (task != LMEVAL_LAMBADA && task != LMEVAL_WINOGRANDE) /* no acc_norm there */
                json_object_update_new(r, json_pack("{s:i,s:f}", "pred_norm", ds.pred_norm,
                                                    "acc_norm", ds.acc_norm));
            if (json_dumpf(r, out.fp, JSON_COMPACT | JSON_REAL_PRECISION(17)) < 0 || fputc('\n', out.fp) == EOF)
                die_errno("writing output failed");
            json_decref(r);
        }
        doc_release(&d);
        json_decref(o);
        ndoc++;
    }
    if (ferror(fp)) die_errno("%s: read error", name);
    if (ndoc == 0) die("%s: no requests", name);
    if (docs) cli_output_commit(&out);
    json_t *sum = lmeval_agg_json(&agg, task);
    if (!sum) die("out of memory");
    json_object_update_new(sum, json_pack("{s:s,s:I,s:s,s:s,s:b,s:s}", "task", lmeval_name(task),
                                          "n", (json_int_t)ndoc, "model", model, "scoring",
                                          is_sedd ? "sedd-conditional-bound" : "gpt2-teacher-forced",
                                          "bos", bos, "device", dev.label));
    if (is_sedd)
        json_object_update_new(sum, json_pack("{s:i,s:I}", "t_samples", sc.K, "seed",
                                              (json_int_t)sc.seed));
    if (is_sedd && task == LMEVAL_LAMBADA) /* not the autoregressive notion: say which */
        json_object_set_new(sum, "greedy", json_string("parallel argmax, continuation masked, t=1e-5"));
    json_dumpf(sum, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    putchar('\n');
    json_decref(sum);
    lmeval_agg_free(&agg);
    bpe_ids_free(&ci);
    bpe_ids_free(&ki);
    bpe_ids_free(&cb);
    free(ll);
    free(greedy);
    free(se);
    if (sc.sedd) sedd_backend(sc.sedd)->free(sc.ws);
    sedd_free(sc.sedd);
    free(line);
    gpt2_state_free(sc.state);
    gpt2_free(sc.gpt2);
    bpe_enc_free(enc);
    bpe_free(bpe);
    if (fp != stdin) fclose(fp);
    if (fflush(stdout) != 0 || ferror(stdout)) die_errno("writing output failed");
    return EXIT_OK;
}
