/* detokenize: a GPT-2 token stream back to text — the records' exact bytes, or one JSON object per
 * record with all its fields plus "text". */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "cli.h"
#include "tstream.h"

static int usage(FILE *fp, int status)
{
    fprintf(fp,
            "Usage: detokenize [options] [in.msgpack|-]\n"
            "Decodes every record of a token stream with GPT-2's vocabulary and writes its exact\n"
            "bytes, records one after another (the inverse of tokenize).\n"
            "\n"
            "Options:\n"
            "      --lines          end every record's text with a newline (inverse of tokenize --lines)\n"
            "      --jsonl          one JSON object per record: all its fields plus \"text\"\n"
            "                       (bytes that are not valid UTF-8 become U+FFFD)\n"
            "      --vocab DIR      encoder.json+vocab.bpe or vocab.json+merges.txt [data/gpt2]\n"
            "  -o, --output FILE    write here, atomically [stdout]\n"
            "  -h, --help           print this help and exit\n"
            "      --version        print the version and build and exit\n"
            "\n" CLI_EXIT_TEXT "\n"
            "Example: tokenize --lines < corpus.txt | detokenize --lines | cmp - corpus.txt\n");
    return status;
}

enum { OPT_LINES = 256, OPT_JSONL, OPT_VOCAB };

int main(int argc, char **argv)
{
    cli_init("detokenize");
    static const struct option longopts[] = {
        {"lines", no_argument, NULL, OPT_LINES},
        {"jsonl", no_argument, NULL, OPT_JSONL},
        {"vocab", required_argument, NULL, OPT_VOCAB},
        CLI_OPTION_OUTPUT,
        CLI_OPTION_HELP,
        CLI_OPTION_VERSION,
        {NULL, 0, NULL, 0},
    };
    int lines = 0, jsonl = 0, c;
    const char *vocab = NULL;
    struct cli_common common = {0};
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        if (cli_common_option(c, optarg, &common, NULL, usage)) continue;
        switch (c) {
        case OPT_LINES: lines = 1; break;
        case OPT_JSONL: jsonl = 1; break;
        case OPT_VOCAB: vocab = optarg; break;
        default: return cli_short_usage(usage);
        }
    }
    if (lines && jsonl) die_usage("--lines and --jsonl exclude each other");
    if (argc - optind > 1) die_usage("expected at most one input file");
    const char *input = optind < argc ? argv[optind] : NULL;

    err_t e;
    bpe_t *bpe = vocab ? bpe_load(vocab, &e) : bpe_load_default(&e);
    if (!bpe) die("%s", e.msg);
    cli_stream src;
    cli_stream_open(&src, input, usage);
    ts_reader_t *rd = src.rd;
    const ts_header *h = ts_reader_header(rd);
    if (strcmp(h->tokenizer, "gpt2") != 0 || h->vocab_size > bpe_vocab_size(bpe))
        die("the stream's tokenizer '%s' (vocab_size %llu) is not the vocabulary in %s (gpt2, %zu)",
            h->tokenizer, (unsigned long long)h->vocab_size, bpe_dir(bpe), bpe_vocab_size(bpe));

    cli_output out;
    cli_output_open(&out, common.output, false, false);
    ts_record r = {0};
    struct bpe_bytes text = {0};
    int rc;
    while ((rc = ts_read(rd, &r, &e)) >= 0) {
        text.n = 0;
        if (bpe_decode(bpe, r.tokens, r.n_tokens, &text, &e) < 0)
            die("record %llu: %s", (unsigned long long)r.id, e.msg);
        if (jsonl) {
            if (ts_record_set_str(&r, "text", text.v, text.n, &e) < 0 ||
                ts_record_write_json(out.fp, &r, &e) < 0)
                die("%s", e.msg);
        } else {
            fwrite(text.v, 1, text.n, out.fp);
            if (lines) fputc('\n', out.fp);
        }
        if (ferror(out.fp)) break; /* reported by cli_output_commit */
    }
    if (rc < ERR_EOF) die("%s", e.msg);
    cli_output_commit(&out);
    bpe_bytes_free(&text);
    ts_record_free(&r);
    cli_stream_close(&src);
    bpe_free(bpe);
    return EXIT_OK;
}
