/* dataset: reads a benchmark file in its published layout and writes its records — detokenized
 * text for tokenize, normalised rows, lm-eval requests, or reference-chunked token blocks. */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpe.h"
#include "cli.h"
#include "dataset.h"
#include "detok.h"
#include "lmeval.h"
#include "tstream.h"

static int usage(FILE *fp, int status)
{
    fprintf(fp,
            "Usage: dataset [options] NAME FILE\n"
            "Reads a benchmark file as published (NAME: lambada, webtext, wikitext, ptb, lm1b,\n"
            "hellaswag, piqa, arc, winogrande; original or Hugging Face row layout, detected from\n"
            "the content) and writes its records. A malformed record is an error naming file and\n"
            "line.\n"
            "\n"
            "Options:\n"
            "  -f, --format F        text: JSON lines {\"text\",\"index\",\"detokenizer\"} for\n"
            "                        'tokenize --jsonl'; rows: the Hugging Face row of each record;\n"
            "                        requests: lm-eval requests (needs --task); blocks: a token\n"
            "                        stream of reference-chunked blocks [text]\n"
            "      --labels FILE     PIQA's label file (valid-labels.lst) for the original layout\n"
            "      --detok NAME      none, wikitext, ptb, lm1b, lambada [the dataset's reference]\n"
            "      --task NAME       lambada_openai, hellaswag, piqa, arc_easy, arc_challenge,\n"
            "                        winogrande (with --format requests)\n"
            "  blocks (specs/eval.md §3.2; EOS after every record, remainder dropped per batch):\n"
            "      --block N         tokens per block [1024]\n"
            "      --mode M          sedd or mdlm-wrap ([BOS] + N-2 tokens + [EOS]) [sedd]\n"
            "      --num-proc N      contiguous shards, as datasets.map(num_proc) [8]\n"
            "      --map-batch N     records per map batch [1000]\n"
            "      --vocab DIR       GPT-2 vocabulary [data/gpt2]\n"
            "      --force           write the binary stream to a terminal\n"
            "      --no-provenance   leave this run out of the header's provenance\n"
            "  -o, --output FILE     write here, atomically [stdout]\n"
            "  -h, --help            print this help and exit\n"
            "      --version         print the version and build and exit\n"
            "\n" CLI_EXIT_TEXT "\n"
            "Example: dataset wikitext wiki.test.raw | tokenize --jsonl --append-eos | stream-info\n");
    return status;
}

typedef struct blocks {
    ts_writer_t *w;
    ts_record rec;
    uint64_t next;
    char note[160];
} blocks;

static int write_block(const uint32_t *t, size_t n, void *ctx, err_t *e)
{
    blocks *b = ctx;
    b->rec.id = b->next++;
    if (ts_record_set_tokens(&b->rec, t, n, e) < 0 ||
        ts_record_set_str(&b->rec, "chunking", b->note, strlen(b->note), e) < 0)
        return ERR_FAIL;
    return ts_write(b->w, &b->rec, e);
}

int main(int argc, char **argv)
{
    cli_init("dataset");
    enum { OPT_LABELS = 256, OPT_DETOK, OPT_TASK, OPT_BLOCK, OPT_MODE, OPT_PROC, OPT_BATCH,
           OPT_VOCAB };
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'}, {"labels", required_argument, NULL, OPT_LABELS},
        {"detok", required_argument, NULL, OPT_DETOK}, {"task", required_argument, NULL, OPT_TASK},
        {"block", required_argument, NULL, OPT_BLOCK}, {"mode", required_argument, NULL, OPT_MODE},
        {"num-proc", required_argument, NULL, OPT_PROC},
        {"map-batch", required_argument, NULL, OPT_BATCH},
        {"vocab", required_argument, NULL, OPT_VOCAB}, CLI_OPTION_FORCE, CLI_OPTION_NO_PROVENANCE,
        CLI_OPTION_OUTPUT, CLI_OPTION_HELP, CLI_OPTION_VERSION, {NULL, 0, NULL, 0},
    };
    const char *format = "text", *labels = NULL, *detok_opt = NULL, *task_opt = NULL;
    const char *vocab = NULL;
    struct cli_common common = {0};
    dataset_chunk_opts co = DATASET_CHUNK_DEFAULT;
    err_t e;
    int c;
    while ((c = getopt_long(argc, argv, "f:o:h", longopts, NULL)) != -1) {
        if (cli_common_option(c, optarg, &common, NULL, usage)) continue;
        switch (c) {
        case 'f': format = optarg; break;
        case OPT_LABELS: labels = optarg; break;
        case OPT_DETOK: detok_opt = optarg; break;
        case OPT_TASK: task_opt = optarg; break;
        case OPT_BLOCK: co.block = (size_t)cli_parse_int("--block", optarg, 3, 1 << 24); break;
        case OPT_MODE:
            if (strcmp(optarg, "sedd") == 0) co.mode = DATASET_CHUNK_SEDD;
            else if (strcmp(optarg, "mdlm-wrap") == 0) co.mode = DATASET_CHUNK_MDLM_WRAP;
            else die_usage("--mode must be sedd or mdlm-wrap, not '%s'", optarg);
            break;
        case OPT_PROC: co.num_proc = (size_t)cli_parse_int("--num-proc", optarg, 1, 1 << 20); break;
        case OPT_BATCH:
            co.map_batch = (size_t)cli_parse_int("--map-batch", optarg, 1, 1LL << 40);
            break;
        case OPT_VOCAB: vocab = optarg; break;
        default: return cli_short_usage(usage);
        }
    }
    if (argc - optind != 2) die_usage("expected a dataset name and a file");
    dataset_kind kind;
    if (dataset_parse(argv[optind], &kind, &e)) die_usage("%s", e.msg);
    const char *path = argv[optind + 1];
    if (strcmp(path, "-") == 0 && isatty(STDIN_FILENO))
        die_usage("no input: stdin is a terminal (give a file, or pipe one into '-')");
    detok_kind dk = dataset_detokenizer(kind);
    if (detok_opt && detok_parse(detok_opt, &dk, &e)) die_usage("%s", e.msg);
    bool text = strcmp(format, "text") == 0, rows = strcmp(format, "rows") == 0;
    bool reqs = strcmp(format, "requests") == 0, blk = strcmp(format, "blocks") == 0;
    if (!text && !rows && !reqs && !blk)
        die_usage("--format must be text, rows, requests or blocks, not '%s'", format);
    lmeval_task task = LMEVAL_LAMBADA;
    if (reqs && !task_opt) die_usage("--format requests needs --task");
    if (task_opt && lmeval_parse(task_opt, &task, &e)) die_usage("%s", e.msg);
    bool textual = kind <= DATASET_LM1B;
    if ((text || blk) && !textual)
        die_usage("%s is a multiple-choice set: use --format rows or requests", argv[optind]);

    dataset_reader *rd;
    if (dataset_open(&rd, kind, path, labels, &e)) die("%s", e.msg);
    cli_output out;
    cli_output_open(&out, common.output, blk, common.force);
    bpe_t *bpe = NULL;
    bpe_enc_t *enc = NULL;
    uint32_t **toks = NULL;
    size_t *lens = NULL, n_rec = 0, cap = 0;
    if (blk) {
        bpe = vocab ? bpe_load(vocab, &e) : bpe_load_default(&e);
        if (!bpe || !(enc = bpe_enc_new(bpe, &e))) die("%s", e.msg);
    }
    json_t *row;
    int rc;
    size_t index = 0;
    while ((rc = dataset_next(rd, &row, &e)) == 0) {
        json_t *o = NULL;
        if (text || blk) {
            const char *t = dataset_row_text(kind, row);
            size_t n;
            char *d = detok_apply(dk, t, strlen(t), &n, &e);
            if (!d) die("%s:%zu: %s", path, dataset_line(rd), e.msg);
            if (text) {
                o = json_pack("{s:s%,s:I,s:s}", "text", d, n, "index", (json_int_t)index,
                              "detokenizer", detok_name(dk));
            } else {
                struct bpe_ids ids = {0};
                if (bpe_encode(enc, d, n, &ids, &e) < 0) die("%s:%zu: %s", path, dataset_line(rd), e.msg);
                if (n_rec == cap) {
                    cap = cap ? 2 * cap : 1024;
                    toks = realloc(toks, cap * sizeof *toks);
                    lens = realloc(lens, cap * sizeof *lens);
                    if (!toks || !lens) die("out of memory");
                }
                toks[n_rec] = ids.v;
                lens[n_rec++] = ids.n;
            }
            free(d);
        } else if (rows) {
            o = json_incref(row);
        } else {
            lmeval_doc d;
            if (lmeval_build(task, row, &d, &e)) die("%s:%zu: %s", path, dataset_line(rd), e.msg);
            json_t *rq = json_array(), *ch = json_array();
            for (size_t i = 0; i < d.n_req; i++) {
                json_array_append_new(rq, json_pack("[s,s]", d.context[i], d.continuation[i]));
                if (d.choices[i]) json_array_append_new(ch, json_string(d.choices[i]));
            }
            o = json_pack("{s:s,s:I,s:o,s:o,s:i}", "task", lmeval_name(task), "index",
                          (json_int_t)index, "requests", rq, "choices", ch, "gold", d.gold);
            lmeval_doc_free(&d);
        }
        if (o) {
            json_dumpf(o, out.fp, JSON_COMPACT);
            fputc('\n', out.fp);
            json_decref(o);
        }
        index++;
    }
    if (rc != ERR_EOF) die("%s", e.msg);
    if (blk) {
        ts_header h = {0};
        int32_t eot = bpe_token_id(bpe, BPE_EOT);
        if (ts_header_init(&h, "gpt2", bpe_vocab_size(bpe), eot, &e) < 0 ||
            cli_add_provenance(&h, &common, argc, argv, 0, "cpu", &e) < 0)
            die("%s", e.msg);
        blocks b = {.w = ts_writer_open(out.fp, &h, &e)};
        if (!b.w) die("%s", e.msg);
        snprintf(b.note, sizeof b.note, "%s detok=%s block=%zu num_proc=%zu map_batch=%zu",
                 co.mode == DATASET_CHUNK_SEDD ? "sedd" : "mdlm-wrap", detok_name(dk), co.block,
                 co.num_proc, co.map_batch);
        cli_output_check(&out, dataset_chunk((const uint32_t *const *)toks, lens, n_rec, &co,
                                             write_block, &b, &e), &e);
        cli_output_check(&out, ts_writer_close(b.w, &e), &e);
        ts_record_free(&b.rec);
        ts_header_free(&h);
        for (size_t i = 0; i < n_rec; i++) free(toks[i]);
    }
    cli_output_commit(&out);
    free(toks);
    free(lens);
    bpe_enc_free(enc);
    bpe_free(bpe);
    dataset_close(rd);
    return EXIT_OK;
}
