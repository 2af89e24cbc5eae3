/* tokenize: text on stdin to a GPT-2 token stream — one document, one record per line, or one
 * per JSON line — optionally with EOS appended and cut into fixed-size blocks. */
#include <getopt.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "chunk.h"
#include "cli.h"
#include "progress.h"
#include "textin.h"
#include "tstream.h"

static int usage(FILE *fp, int status)
{
    fprintf(fp,
            "Usage: tokenize [options] [in.txt|-]\n"
            "Encodes text with GPT-2's byte-level BPE (byte-exact with OpenAI's encoder.py) and\n"
            "writes a token stream (docs/stream.md). Record ids follow input order from 0.\n"
            "\n"
            "Options:\n"
            "      --lines             one record per line (without its newline) [whole input]\n"
            "      --jsonl             one record per JSON line, from the string in --field\n"
            "      --field NAME        JSON field holding the text [text]\n"
            "      --append-eos        append <|endoftext|> (50256) to every record [off]\n"
            "      --block N           concatenate the records and cut into N-token records\n"
            "      --remainder RULE    with --block: drop or keep a last, shorter block [drop]\n"
            "      --invalid-utf8 P    error (name the byte offset) or replace (U+FFFD) [error]\n"
            "      --vocab DIR         encoder.json+vocab.bpe or vocab.json+merges.txt [data/gpt2]\n"
            "  -j, --threads N         encoding threads, 0 = all cores [1]\n"
            "  -o, --output FILE       write here, atomically (FILE.tmp.PID, then renamed) [stdout]\n"
            "      --force             write the binary stream to a terminal\n"
            "      --no-provenance     leave this run out of the header's provenance\n"
            "      --progress          report progress on stderr even when it is not a terminal\n"
            "  -h, --help              print this help and exit\n"
            "      --version           print the version and build and exit\n"
            "\n" CLI_EXIT_TEXT "\n"
            "Example: tokenize --lines --append-eos < corpus.txt | detokenize --lines\n");
    return status;
}

struct options {
    struct cli_common common;
    textin_mode mode;
    const char *field;
    int append_eos;
    long long block;
    chunk_remainder remainder;
    textin_utf8 utf8;
    const char *vocab;
    const char *input;
};

enum { OPT_LINES = 256, OPT_JSONL, OPT_FIELD, OPT_EOS, OPT_BLOCK, OPT_REMAINDER, OPT_UTF8,
       OPT_VOCAB };

static void parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"lines", no_argument, NULL, OPT_LINES},
        {"jsonl", no_argument, NULL, OPT_JSONL},
        {"field", required_argument, NULL, OPT_FIELD},
        {"append-eos", no_argument, NULL, OPT_EOS},
        {"block", required_argument, NULL, OPT_BLOCK},
        {"remainder", required_argument, NULL, OPT_REMAINDER},
        {"invalid-utf8", required_argument, NULL, OPT_UTF8},
        {"vocab", required_argument, NULL, OPT_VOCAB},
        CLI_OPTION_THREADS,
        CLI_OPTION_OUTPUT,
        CLI_OPTION_FORCE,
        CLI_OPTION_NO_PROVENANCE,
        CLI_OPTION_PROGRESS,
        CLI_OPTION_HELP,
        CLI_OPTION_VERSION,
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->mode = TEXTIN_DOCUMENT;
    o->field = "text";
    o->common.threads = 1;
    int c, field_given = 0;
    while ((c = getopt_long(argc, argv, "j:o:h", longopts, NULL)) != -1) {
        if (cli_common_option(c, optarg, &o->common, NULL, usage)) continue;
        switch (c) {
        case OPT_LINES: o->mode = TEXTIN_LINES; break;
        case OPT_JSONL: o->mode = TEXTIN_JSONL; break;
        case OPT_FIELD: o->field = optarg; field_given = 1; break;
        case OPT_EOS: o->append_eos = 1; break;
        case OPT_BLOCK: o->block = cli_parse_int("--block", optarg, 1, 1LL << 30); break;
        case OPT_REMAINDER:
            if (strcmp(optarg, "drop") == 0) o->remainder = CHUNK_DROP;
            else if (strcmp(optarg, "keep") == 0) o->remainder = CHUNK_KEEP;
            else die_usage("invalid value '%s' for --remainder (expected drop or keep)", optarg);
            break;
        case OPT_UTF8:
            if (strcmp(optarg, "error") == 0) o->utf8 = TEXTIN_UTF8_ERROR;
            else if (strcmp(optarg, "replace") == 0) o->utf8 = TEXTIN_UTF8_REPLACE;
            else die_usage("invalid value '%s' for --invalid-utf8 (expected error or replace)", optarg);
            break;
        case OPT_VOCAB: o->vocab = optarg; break;
        default: exit(cli_short_usage(usage));
        }
    }
    if (field_given && o->mode != TEXTIN_JSONL) die_usage("--field needs --jsonl");
    if (o->remainder == CHUNK_KEEP && !o->block) die_usage("--remainder needs --block");
    if (argc - optind > 1) die_usage("expected at most one input file");
    o->input = optind < argc ? argv[optind] : NULL;
}

/* A stretch of one document that one thread encodes. */
struct unit {
    size_t doc, lo, hi;
};

/* Encodes every document, in parallel over documents; a single document is first cut where the
 * GPT-2 pre-tokenizer cuts anyway (bpe_cut_points), so its pieces encode independently and the
 * ids equal a single-threaded run's. @return one id array per document. */
static struct bpe_ids *encode_all(const bpe_t *bpe, const textin *in, int threads, bool force_progress)
{
    size_t cuts[64], n_units = in->n_docs;
    struct unit *units;
    if (in->n_docs == 1 && threads > 1) {
        size_t n_cuts = bpe_cut_points(in->docs[0].text, in->docs[0].len,
                                       threads < 64 ? (size_t)threads : 64, cuts);
        n_units = n_cuts + 1;
        units = calloc(n_units, sizeof *units);
        if (!units) die("out of memory");
        for (size_t k = 0; k < n_units; k++)
            units[k] = (struct unit){0, k ? cuts[k - 1] : 0, k < n_cuts ? cuts[k] : in->docs[0].len};
    } else {
        units = calloc(n_units ? n_units : 1, sizeof *units);
        if (!units) die("out of memory");
        for (size_t i = 0; i < n_units; i++) units[i] = (struct unit){i, 0, in->docs[i].len};
    }
    struct bpe_ids *unit_ids = calloc(n_units ? n_units : 1, sizeof *unit_ids);
    if (!unit_ids) die("out of memory");

    int failed = 0;
    err_t first_err = {{0}};
    size_t done = 0;
    progress prog;
    progress_start(&prog, "records", n_units, force_progress);
    /* many short records: 16 per claim; a few long pieces (one document cut per thread): one */
    int chunk = n_units >= 16 * (size_t)threads ? 16 : 1;
#pragma omp parallel num_threads(threads)
    {
        err_t e;
        bpe_enc_t *enc = bpe_enc_new(bpe, &e);
#pragma omp for schedule(dynamic, chunk)
        for (size_t u = 0; u < n_units; u++) {
            const textin_doc *d = &in->docs[units[u].doc];
            if (failed || !enc ||
                bpe_encode(enc, d->text + units[u].lo, units[u].hi - units[u].lo, &unit_ids[u], &e) < 0) {
#pragma omp critical
                if (!failed) { failed = 1; first_err = e; }
            }
            size_t now = __atomic_add_fetch(&done, 1, __ATOMIC_RELAXED);
            if (omp_get_thread_num() == 0) progress_update(&prog, now);
        }
        bpe_enc_free(enc);
    }
    if (failed) die("%s", first_err.msg);
    progress_update(&prog, n_units);
    progress_finish(&prog);

    if (n_units != in->n_docs) { /* join the pieces of the single document */
        struct bpe_ids *joined = calloc(1, sizeof *joined);
        if (!joined) die("out of memory");
        for (size_t u = 0; u < n_units; u++) {
            if (bpe_ids_append(joined, unit_ids[u].v, unit_ids[u].n, &first_err) < 0)
                die("%s", first_err.msg);
            bpe_ids_free(&unit_ids[u]);
        }
        free(unit_ids);
        unit_ids = joined;
    }
    free(units);
    return unit_ids;
}

struct block_sink {
    ts_writer_t *w;
    ts_record rec;
    uint64_t next_id;
};

/* chunk_emit_fn: one block becomes one record. */
static int write_block(const uint32_t *tokens, size_t n, void *ctx, err_t *e)
{
    struct block_sink *s = ctx;
    s->rec.id = s->next_id++;
    if (ts_record_set_tokens(&s->rec, tokens, n, e) < 0) return ERR_FAIL;
    return ts_write(s->w, &s->rec, e);
}

int main(int argc, char **argv)
{
    cli_init("tokenize");
    struct options o;
    parse_options(argc, argv, &o);
    err_t e;

    bpe_t *bpe = o.vocab ? bpe_load(o.vocab, &e) : bpe_load_default(&e);
    if (!bpe) die("%s", e.msg);
    int32_t eot = bpe_token_id(bpe, BPE_EOT);

    FILE *fp = cli_open_input(o.input, usage);
    textin in;
    if (textin_read(fp, o.input ? o.input : "stdin", o.mode, o.field, o.utf8, &in, &e) < 0)
        die("%s", e.msg);
    if (fp != stdin) fclose(fp);

    struct bpe_ids *ids = encode_all(bpe, &in, cli_threads(o.common.threads), o.common.progress);
    if (o.append_eos) {
        if (eot < 0) die("--append-eos: the vocabulary has no %s token", BPE_EOT);
        uint32_t eos = (uint32_t)eot;
        for (size_t i = 0; i < in.n_docs; i++)
            if (bpe_ids_append(&ids[i], &eos, 1, &e) < 0) die("%s", e.msg);
    }

    ts_header h = {0};
    if (ts_header_init(&h, "gpt2", bpe_vocab_size(bpe), eot, &e) < 0 ||
        cli_add_provenance(&h, &o.common, argc, argv, 0, "cpu", &e) < 0)
        die("%s", e.msg);
    cli_output out;
    cli_output_open(&out, o.common.output, true, o.common.force);
    struct block_sink sink = {.w = ts_writer_open(out.fp, &h, &e)};
    if (!sink.w) die("%s", e.msg);

    if (o.block) {
        chunker ch;
        chunk_init(&ch, (size_t)o.block, o.remainder);
        for (size_t i = 0; i < in.n_docs; i++)
            cli_output_check(&out, chunk_push(&ch, ids[i].v, ids[i].n, write_block, &sink, &e), &e);
        cli_output_check(&out, chunk_finish(&ch, write_block, &sink, &e), &e);
        chunk_free(&ch);
    } else {
        for (size_t i = 0; i < in.n_docs; i++) {
            sink.next_id = i;
            cli_output_check(&out, write_block(ids[i].v, ids[i].n, &sink, &e), &e);
        }
    }
    cli_output_check(&out, ts_writer_close(sink.w, &e), &e);
    cli_output_commit(&out);

    for (size_t i = 0; i < in.n_docs; i++) bpe_ids_free(&ids[i]);
    free(ids);
    ts_record_free(&sink.rec);
    ts_header_free(&h);
    textin_free(&in);
    bpe_free(bpe);
    return EXIT_OK;
}
