/* stream-info: validates a token stream from end to end and summarises it as one JSON object —
 * tokenizer, records, tokens, record lengths, distinct ids, the fields records carry. */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tstream.h"

static int usage(FILE *fp, int status)
{
    fprintf(fp,
            "Usage: stream-info [options] [in.msgpack|-]\n"
            "Reads a whole token stream (docs/stream.md), checking every record, and prints one\n"
            "JSON object: tokenizer, vocab_size, eot, provenance entries, records, tokens,\n"
            "min/mean/max record length, distinct token ids, and the extra fields of the records.\n"
            "\n"
            "Options:\n"
            "  -o, --output FILE write here, atomically [stdout]\n"
            "  -h, --help        print this help and exit\n"
            "      --version     print the version and build and exit\n"
            "\n" CLI_EXIT_TEXT "\n"
            "Example: tokenize --lines < data/brown/brown.txt | stream-info\n");
    return status;
}

/* Adds the keys of r's other fields to the set `fields` (a JSON object used as a set). */
static void note_fields(const ts_record *r, json_t *fields)
{
    size_t pos = 0, klen, vlen;
    const char *key;
    const uint8_t *val;
    while (ts_record_next_field(r, &pos, &key, &klen, &val, &vlen) == 0)
        json_object_setn_new(fields, key, klen, json_true());
}

int main(int argc, char **argv)
{
    cli_init("stream-info");
    static const struct option longopts[] = {
        CLI_OPTION_OUTPUT,
        CLI_OPTION_HELP,
        CLI_OPTION_VERSION,
        {NULL, 0, NULL, 0},
    };
    int c;
    struct cli_common common = {0};
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        if (!cli_common_option(c, optarg, &common, NULL, usage)) return cli_short_usage(usage);
    }
    if (argc - optind > 1) die_usage("expected at most one input file");
    const char *input = optind < argc ? argv[optind] : NULL;

    err_t e;
    cli_stream src;
    cli_stream_open(&src, input, usage);
    ts_reader_t *rd = src.rd;
    const ts_header *h = ts_reader_header(rd);
    uint8_t *seen = calloc(h->vocab_size, 1);
    if (!seen) die("out of memory");

    ts_record r = {0};
    uint64_t records = 0, tokens = 0, distinct = 0, min_len = UINT64_MAX, max_len = 0;
    json_t *fields = json_object();
    int rc;
    while ((rc = ts_read(rd, &r, &e)) >= 0) {
        records++;
        tokens += r.n_tokens;
        if (r.n_tokens < min_len) min_len = r.n_tokens;
        if (r.n_tokens > max_len) max_len = r.n_tokens;
        for (size_t i = 0; i < r.n_tokens; i++) {
            distinct += !seen[r.tokens[i]];
            seen[r.tokens[i]] = 1;
        }
        note_fields(&r, fields);
    }
    if (rc < ERR_EOF) die("%s", e.msg);

    json_t *field_names = json_array();
    const char *key;
    json_t *value;
    json_object_foreach(fields, key, value) json_array_append_new(field_names, json_string(key));
    json_t *summary = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:I, s:o}", "tokenizer", h->tokenizer,
        "vocab_size", (json_int_t)h->vocab_size, "eot", (json_int_t)h->eot, "provenance_entries",
        (json_int_t)h->n_provenance, "records", (json_int_t)records, "tokens", (json_int_t)tokens,
        "min_length", (json_int_t)(records ? min_len : 0), "mean_length",
        records ? (double)tokens / (double)records : 0.0, "max_length", (json_int_t)max_len,
        "distinct_tokens", (json_int_t)distinct, "fields", field_names);
    if (!summary) die("out of memory");
    cli_output out;
    cli_output_open(&out, common.output, false, false);
    json_dumpf(summary, out.fp, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    fputc('\n', out.fp);
    cli_output_commit(&out);

    json_decref(summary);
    json_decref(fields);
    free(seen);
    ts_record_free(&r);
    cli_stream_close(&src);
    return EXIT_OK;
}
