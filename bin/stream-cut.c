/* stream-cut: selects records of a token stream (skip I, then every K-th, at most N) and cuts each kept
 * record's tokens to a position range — the prompts and subsets of the reproduction pipeline.
 * Every other field of a kept record passes through untouched. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tstream.h"

static int usage(FILE *fp, int status)
{
    fprintf(fp,
            "Usage: stream-cut [options] [in.msgpack|-]\n"
            "Copies a token stream: after the first I records, every K-th record, at most N of\n"
            "them, each cut to its tokens at positions A..B-1 (a record shorter than B keeps\n"
            "what it has from A on). Ids and other fields are kept. --skip I --every K for\n"
            "I = 0..K-1 splits a stream into K interleaved shards.\n"
            "\n"
            "Options:\n"
            "      --skip I           pass over the first I records [0]\n"
            "      --every K          keep one record in K, from the first one not skipped [1]\n"
            "  -n, --records N        keep at most N records [all]\n"
            "      --tokens A:B       keep token positions A..B-1; A: and :B leave one end open\n"
            "                         [all]\n"
            "  -o, --output FILE      write here, atomically [stdout]\n"
            "      --force            write the binary stream to a terminal\n"
            "      --no-provenance    leave this run out of the header's provenance\n"
            "  -h, --help             print this help and exit\n"
            "      --version          print the version and build and exit\n"
            "\n" CLI_EXIT_TEXT "\n"
            "Example: tokenize --jsonl --block 100 < test.jsonl | stream-cut --every 20 -n 64 \\\n"
            "             --tokens :50 > prompts.msgpack\n");
    return status;
}

struct options {
    struct cli_common common;
    long long skip, every, records, from, to; /* to < 0: open end */
};

enum { OPT_SKIP = 256, OPT_EVERY, OPT_TOKENS };

/* Parses "A:B", "A:" or ":B" (0 <= A < B) into o->from / o->to, or dies with exit 2. */
static void parse_range(const char *v, struct options *o)
{
    const char *colon = strchr(v, ':');
    if (!colon) die_usage("--tokens '%s': expected A:B, A: or :B", v);
    char a[32] = "", *b = (char *)colon + 1;
    size_t alen = (size_t)(colon - v);
    if (alen >= sizeof a) die_usage("--tokens '%s': start too long", v);
    memcpy(a, v, alen);
    o->from = alen ? cli_parse_int("--tokens start", a, 0, 1LL << 32) : 0;
    o->to = *b ? cli_parse_int("--tokens end", b, 1, 1LL << 32) : -1;
    if (o->to >= 0 && o->to <= o->from) die_usage("--tokens '%s': the end must exceed the start", v);
}

static const char *parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"skip", required_argument, NULL, OPT_SKIP},
        {"every", required_argument, NULL, OPT_EVERY}, {"records", required_argument, NULL, 'n'},
        {"tokens", required_argument, NULL, OPT_TOKENS}, CLI_OPTION_OUTPUT, CLI_OPTION_FORCE,
        CLI_OPTION_NO_PROVENANCE, CLI_OPTION_HELP, CLI_OPTION_VERSION, {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->every = 1;
    o->records = -1;
    o->to = -1;
    int c;
    while ((c = getopt_long(argc, argv, "n:o:h", longopts, NULL)) != -1) {
        if (cli_common_option(c, optarg, &o->common, NULL, usage)) continue;
        switch (c) {
        case OPT_SKIP: o->skip = cli_parse_int("--skip", optarg, 0, 1LL << 40); break;
        case OPT_EVERY: o->every = cli_parse_int("--every", optarg, 1, 1LL << 40); break;
        case 'n': o->records = cli_parse_int("--records", optarg, 0, 1LL << 40); break;
        case OPT_TOKENS: parse_range(optarg, o); break;
        default: exit(cli_short_usage(usage));
        }
    }
    if (argc - optind > 1) die_usage("expected at most one input file");
    return optind < argc ? argv[optind] : NULL;
}

int main(int argc, char **argv)
{
    cli_init("stream-cut");
    struct options o;
    const char *input = parse_options(argc, argv, &o);
    err_t e;
    cli_stream src;
    cli_stream_open(&src, input, usage);
    ts_header h = {0};
    if (ts_header_copy(&h, ts_reader_header(src.rd), &e) < 0 ||
        cli_add_provenance(&h, &o.common, argc, argv, 0, "cpu", &e) < 0)
        die("%s", e.msg);
    cli_output out;
    cli_output_open(&out, o.common.output, true, o.common.force);
    ts_writer_t *w = ts_writer_open(out.fp, &h, &e);
    if (!w) cli_output_check(&out, ERR_FAIL, &e);

    ts_record r = {0};
    int rc = 0;
    long long seen = 0, kept = 0;
    while ((o.records < 0 || kept < o.records) && (rc = ts_read(src.rd, &r, &e)) >= 0) {
        if (seen++ < o.skip || (seen - 1 - o.skip) % o.every != 0) continue;
        size_t n = r.n_tokens, from = (size_t)o.from < n ? (size_t)o.from : n;
        size_t to = o.to >= 0 && (size_t)o.to < n ? (size_t)o.to : n;
        memmove(r.tokens, r.tokens + from, (to - from) * sizeof *r.tokens);
        r.n_tokens = to - from;
        cli_output_check(&out, ts_write(w, &r, &e), &e);
        kept++;
    }
    if ((o.records < 0 || kept < o.records) && rc < ERR_EOF) die("%s", e.msg);
    cli_output_check(&out, ts_writer_close(w, &e), &e);
    cli_output_commit(&out);
    ts_record_free(&r);
    ts_header_free(&h);
    cli_stream_close(&src);
    return EXIT_OK;
}
