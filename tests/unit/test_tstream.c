/* Unit tests of lib/tstream: round trips, pass-through, cat, truncation at every byte, every
 * error case of docs/stream.md, record reuse, a 1e6-token record, fields, JSON. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "tap.h"
#include "tstream.h"

/* ---- helpers ------------------------------------------------------------------------------- */

typedef struct bytes {
    char *p;
    size_t n;
} bytes;

static void bytes_free(bytes *b)
{
    free(b->p);
    b->p = NULL;
    b->n = 0;
}

/* Crafting raw msgpack by hand (to build streams the writer would refuse to write). */
static msgpack_sbuffer sb;
static msgpack_packer pk;
static void craft_begin(void)
{
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
}
static void ps(const char *s) { msgpack_pack_str_with_body(&pk, s, strlen(s)); }
static void pu(uint64_t v) { msgpack_pack_uint64(&pk, v); }

/* A header as the writer packs it (same field order and encodings), n_extra extra keys to follow.
 */
static void craft_header(const char *magic, uint64_t version, const char *tok, uint64_t vocab,
                         int64_t eot, size_t n_extra)
{
    msgpack_pack_map(&pk, 7 + n_extra);
    ps("magic"), ps(magic);
    ps("format_version"), pu(version);
    ps("kind"), ps("tokens");
    ps("tokenizer"), ps(tok);
    ps("vocab_size"), pu(vocab);
    ps("eot"), msgpack_pack_int64(&pk, eot);
    ps("provenance"), msgpack_pack_array(&pk, 0);
}
static void craft_gpt2_header(void) { craft_header("dlmkit-tokens", 1, "gpt2", 50257, 50256, 0); }
static void craft_record(uint64_t id, size_t n, const uint32_t *t)
{
    msgpack_pack_map(&pk, 2);
    ps("id"), pu(id);
    ps("tokens"), msgpack_pack_array(&pk, n);
    for (size_t k = 0; k < n; k++) msgpack_pack_uint32(&pk, t[k]);
}

/* Reads all of p; @return the final status (ERR_EOF or ERR_FAIL), the message in e, the count. */
static int read_all(const void *p, size_t n, err_t *e, size_t *count)
{
    ts_record r = {0};
    int rc = ERR_FAIL;
    *count = 0;
    e->msg[0] = '\0';
    ts_reader_t *rd = ts_reader_open_mem(p, n, "t.msgpack", e);
    while (rd && (rc = ts_read(rd, &r, e)) >= 0) ++*count;
    ts_reader_free(rd);
    ts_record_free(&r);
    return rc;
}

/* The crafted buffer must fail with a message containing phrase (and phrase2 if non-NULL). */
static void expect_error(const char *what, const char *phrase, const char *phrase2)
{
    err_t e;
    size_t count;
    int rc = read_all(sb.data, sb.size, &e, &count);
    int ok = rc == ERR_FAIL && strstr(e.msg, phrase) && (!phrase2 || strstr(e.msg, phrase2));
    for (char *q = e.msg; (q = strchr(q, '\n'));) *q = '|'; /* one TAP line */
    CHECK(ok, "error: %s -> \"%s\"", what, e.msg);
    msgpack_sbuffer_destroy(&sb);
}

/* A small valid stream from the writer, with the byte offset after the header and each record. */
static bytes make_stream(size_t n_records, size_t *bounds)
{
    bytes b = {0};
    err_t e;
    FILE *fp = open_memstream(&b.p, &b.n);
    ts_header h = {0};
    ts_header_init(&h, "gpt2", 50257, 50256, &e);
    char *argv[] = {"tokenize", "--seed", "3"};
    ts_header_add_provenance(&h, "tokenize", "0.1.0", "abc123", 3, argv, 3, "cpu", &e);
    ts_writer_t *w = ts_writer_open(fp, &h, &e);
    fflush(fp);
    bounds[0] = b.n;
    ts_record r = {0};
    for (size_t k = 0; k < n_records; k++) {
        uint32_t t[5] = {(uint32_t)k, 464, 50256, 1000, (uint32_t)(7 * k)};
        r.id = 10 + k;
        ts_record_set_tokens(&r, t, 2 + k, &e);
        ts_record_set_f64(&r, "score", -1.5 * (double)k, &e);
        if (k % 2)
            ts_record_set_str(&r, "text", "hi", 2, &e);
        else
            ts_record_remove(&r, "text");
        ts_write(w, &r, &e);
        fflush(fp);
        bounds[k + 1] = b.n;
    }
    ts_writer_close(w, &e);
    fclose(fp);
    ts_record_free(&r);
    ts_header_free(&h);
    return b;
}

static FILE *file_with(const void *p, size_t n)
{
    FILE *fp = tmpfile();
    if (n) fwrite(p, 1, n, fp);
    rewind(fp);
    return fp;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_round_trip_passthrough(void)
{
    /* Input packed exactly the way the writer packs, so the rewrite must be byte-identical. */
    craft_begin();
    msgpack_pack_map(&pk, 8);
    ps("magic"), ps("dlmkit-tokens");
    ps("format_version"), pu(1);
    ps("kind"), ps("tokens");
    ps("tokenizer"), ps("gpt2");
    ps("vocab_size"), pu(50257);
    ps("eot"), msgpack_pack_int64(&pk, -1);
    ps("provenance"), msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 2), ps("tool"), ps("other"), ps("future"), msgpack_pack_double(&pk, 2.5);
    ps("x-unknown-header"), msgpack_pack_map(&pk, 1), ps("a"), msgpack_pack_array(&pk, 2), pu(1),
        msgpack_pack_nil(&pk);
    uint32_t t[3] = {15496, 11, 50000};
    msgpack_pack_map(&pk, 9);
    ps("id"), pu(42);
    ps("tokens"), msgpack_pack_array(&pk, 3);
    for (int k = 0; k < 3; k++) msgpack_pack_uint32(&pk, t[k]);
    ps("text"), ps("h\xc3\xa9llo");
    ps("logp"), msgpack_pack_array(&pk, 2), msgpack_pack_float(&pk, -0.25f),
        msgpack_pack_float(&pk, NAN);
    ps("meta"), msgpack_pack_map(&pk, 2), pu(7), msgpack_pack_true(&pk), ps("k"),
        msgpack_pack_array(&pk, 0);
    ps("blob"), msgpack_pack_bin_with_body(&pk, "\0\1\2", 3);
    ps("ext"), msgpack_pack_ext_with_body(&pk, "abcd", 4, 5);
    ps("big"), pu(UINT64_MAX);
    ps("neg"), msgpack_pack_int64(&pk, -123456789);
    craft_record(43, 0, NULL);

    err_t e;
    ts_reader_t *rd = ts_reader_open_mem(sb.data, sb.size, NULL, &e);
    CHECK(rd != NULL, "open a stream with unknown header keys");
    if (!rd) return;
    const ts_header *h = ts_reader_header(rd);
    CHECK(!strcmp(h->tokenizer, "gpt2") && h->vocab_size == 50257 && h->eot == -1 &&
              h->n_provenance == 1,
          "header facts read");
    ts_header out = {0};
    CHECK(ts_header_copy(&out, h, &e) == 0, "copy the header");
    bytes b = {0};
    FILE *fp = open_memstream(&b.p, &b.n);
    ts_writer_t *w = ts_writer_open(fp, &out, &e);
    ts_record r = {0};
    int rc, n = 0;
    while ((rc = ts_read(rd, &r, &e)) >= 0) {
        if (n == 0)
            CHECK(r.id == 42 && r.n_tokens == 3 && r.tokens[2] == 50000 && r.n_fields == 7,
                  "record with unknown fields read (%zu fields)", r.n_fields);
        CHECK(ts_write(w, &r, &e) == 0, "write record %d back", n);
        n++;
    }
    CHECK(rc == ERR_EOF && n == 2, "clean EOF after 2 records");
    CHECK(ts_writer_close(w, &e) == 0, "writer closes cleanly");
    fclose(fp);
    CHECK(b.n == sb.size && memcmp(b.p, sb.data, sb.size) == 0,
          "rewrite is byte-identical (%zu vs %zu bytes): unknown fields pass through", b.n,
          sb.size);

    /* A tool appends its provenance; the old entry's bytes pass through. */
    char *argv[] = {"ppl", "-"};
    CHECK(ts_header_add_provenance(&out, "ppl", "0.1.0", "dev", 2, argv, 0, "cpu", &e) == 0,
          "append provenance");
    bytes b2 = {0};
    fp = open_memstream(&b2.p, &b2.n);
    w = ts_writer_open(fp, &out, &e);
    ts_writer_close(w, &e);
    fclose(fp);
    ts_reader_t *rd2 = ts_reader_open_mem(b2.p, b2.n, NULL, &e);
    CHECK(rd2 && ts_reader_header(rd2)->n_provenance == 2 &&
              ts_reader_header(rd2)->extra_len == h->extra_len &&
              !memcmp(ts_reader_header(rd2)->prov, h->prov, h->prov_len),
          "provenance appended after the passed-through entry; unknown header key kept");
    ts_reader_free(rd2);

    /* A field before id keeps its bytes (it moves after tokens when rewritten). */
    msgpack_sbuffer_destroy(&sb);
    craft_begin();
    craft_gpt2_header();
    msgpack_pack_map(&pk, 3), ps("pre"), msgpack_pack_double(&pk, 0.1), ps("id"), pu(1),
        ps("tokens"), msgpack_pack_array(&pk, 0);
    ts_reader_t *rd3 = ts_reader_open_mem(sb.data, sb.size, NULL, &e);
    const uint8_t *raw;
    size_t rawlen;
    CHECK(rd3 && ts_read(rd3, &r, &e) == 0 && ts_record_get_raw(&r, "pre", &raw, &rawlen) == 0 &&
              rawlen == 9 && raw[0] == 0xcb,
          "field before id kept as raw float64");
    ts_reader_free(rd3);

    msgpack_sbuffer_destroy(&sb);
    ts_record_free(&r);
    ts_reader_free(rd);
    ts_header_free(&out);
    bytes_free(&b);
    bytes_free(&b2);
}

static void test_cat(void)
{
    size_t ba[4], bb[3];
    bytes a = make_stream(3, ba), b = make_stream(2, bb);
    bytes ab = {malloc(a.n + b.n), a.n + b.n};
    memcpy(ab.p, a.p, a.n);
    memcpy(ab.p + a.n, b.p, b.n);
    err_t e;
    ts_reader_t *rd = ts_reader_open_mem(ab.p, ab.n, NULL, &e);
    ts_record r = {0};
    uint64_t ids[8];
    int n = 0, rc = ERR_FAIL;
    while (rd && (rc = ts_read(rd, &r, &e)) >= 0 && n < 8) ids[n++] = r.id;
    CHECK(rd && rc == ERR_EOF && n == 5 && ids[2] == 12 && ids[3] == 10 && ids[4] == 11,
          "cat a b reads as one stream of 5 records");
    CHECK(rd && ts_reader_header(rd)->n_provenance == 1, "the second header is consumed");
    ts_reader_free(rd);

    /* Same stream, tokenizer changed in the second header. */
    craft_begin();
    msgpack_sbuffer_write(&sb, a.p, a.n);
    craft_header("dlmkit-tokens", 1, "llama", 50257, 50256, 0);
    expect_error("conflicting tokenizer in a second header", "disagrees", "\"gpt2\" vs \"llama\"");
    craft_begin();
    msgpack_sbuffer_write(&sb, a.p, a.n);
    craft_header("dlmkit-tokens", 1, "gpt2", 32000, 0, 0);
    expect_error("conflicting vocab_size", "disagrees", "vocab_size 50257 vs 32000");
    craft_begin();
    msgpack_sbuffer_write(&sb, a.p, a.n);
    craft_header("dlmkit-tokens", 1, "gpt2", 50257, -1, 0);
    expect_error("conflicting eot", "disagrees", "eot 50256 vs -1");
    ts_record_free(&r);
    bytes_free(&a);
    bytes_free(&b);
    bytes_free(&ab);
}

/* Every prefix of a stream is EOF exactly at value boundaries and an error elsewhere. */
static void test_truncation(void)
{
    size_t bounds[4];
    bytes s = make_stream(3, bounds);
    int bad_mem = 0, bad_file = 0;
    for (size_t k = 0; k <= s.n; k++) {
        int boundary = 0;
        size_t records = 0;
        for (int j = 0; j < 4; j++)
            if (k == bounds[j]) boundary = 1, records = (size_t)j;
        err_t e;
        size_t count;
        int rc = read_all(s.p, k, &e, &count);
        int ok = boundary
                     ? (rc == ERR_EOF && count == records)
                     : (rc == ERR_FAIL && (k == 0 ? strstr(e.msg, "empty stream: no header") != NULL
                                                  : strstr(e.msg, "truncated") != NULL));
        if (!ok && bad_mem++ < 3)
            NOTE("memory prefix %zu: rc %d count %zu: %s", k, rc, count, e.msg);

        FILE *fp = file_with(s.p, k);
        ts_record r = {0};
        ts_reader_t *rd = ts_reader_open(fp, "cut.msgpack", &e);
        int rc2 = rd ? 0 : ERR_FAIL;
        size_t count2 = 0;
        while (rd && (rc2 = ts_read(rd, &r, &e)) >= 0) count2++;
        if (rc2 != rc || count2 != count) {
            if (bad_file++ < 3) NOTE("file prefix %zu: rc %d count %zu: %s", k, rc2, count2, e.msg);
        }
        ts_reader_free(rd);
        ts_record_free(&r);
        fclose(fp);
    }
    CHECK(bad_mem == 0, "memory: all %zu prefixes are EOF at boundaries, an error elsewhere",
          s.n + 1);
    CHECK(bad_file == 0, "FILE: all %zu prefixes read the same as from memory", s.n + 1);

    err_t e;
    size_t count;
    read_all(s.p, bounds[1] + 3, &e, &count);
    char want[64];
    snprintf(want, sizeof want, "byte %zu: truncated value (after record 10)", bounds[1]);
    CHECK(strstr(e.msg, want) != NULL, "truncation message gives the offset: %s", e.msg);
    bytes_free(&s);
}

static void test_errors(void)
{
    uint32_t t4[4] = {1, 2, 3, 70000};

    craft_begin();
    expect_error("empty input", "t.msgpack: empty stream: no header", NULL);

    craft_begin();
    craft_gpt2_header();
    msgpack_sbuffer_write(&sb, "\x82\xa2id\x01\xc1", 6);
    {
        char want[64];
        snprintf(want, sizeof want, "byte %zu: malformed msgpack", sb.size - 1);
        expect_error("invalid byte 0xc1", want, NULL);
    }

    craft_begin();
    craft_gpt2_header();
    msgpack_pack_array(&pk, 2), pu(1), pu(2);
    expect_error("top-level array", "top-level value is not a map (got array)", NULL);

    craft_begin();
    msgpack_sbuffer_write(&sb, "hello world\n", 12);
    expect_error("text input", "byte 0: top-level value is not a map", NULL);

    craft_begin();
    craft_record(1, 4, t4);
    expect_error("stream without a header", "does not start with a header", "hint:");

    craft_begin();
    craft_header("dlmkit-tokenz", 1, "gpt2", 50257, 50256, 0);
    expect_error("bad magic", "bad magic \"dlmkit-tokenz\"", "\nhint: ");

    craft_begin();
    craft_header("dlmkit-tokens", 2, "gpt2", 50257, 50256, 0);
    expect_error("format_version 2", "unsupported format_version 2", "\nhint: ");

    craft_begin();
    msgpack_pack_map(&pk, 3), ps("magic"), ps("dlmkit-tokens"), ps("format_version"), pu(1),
        ps("kind"), ps("tokens");
    expect_error("header without tokenizer", "header has no \"tokenizer\" field", NULL);

    craft_begin();
    craft_header("dlmkit-tokens", 1, "gpt2", 50257, 50257, 0);
    expect_error("eot out of range", "eot is not -1 or a token id", NULL);

    craft_begin();
    craft_header("dlmkit-tokens", 1, "gpt2", 50257, 50256, 1);
    ps("vocab_size"), pu(3);
    expect_error("duplicate header key", "header: duplicate key \"vocab_size\"", NULL);

    craft_begin();
    craft_gpt2_header();
    msgpack_pack_map(&pk, 1), ps("tokens"), msgpack_pack_array(&pk, 0);
    expect_error("record without id", "record has no \"id\" field", NULL);

    craft_begin();
    craft_gpt2_header();
    msgpack_pack_map(&pk, 1), ps("id"), pu(3);
    expect_error("record without tokens", "record 3 has no \"tokens\" field", NULL);

    craft_begin();
    craft_gpt2_header();
    msgpack_pack_map(&pk, 2), ps("id"), ps("seven"), ps("tokens"), msgpack_pack_array(&pk, 0);
    expect_error("string id", "record id is not a non-negative integer (got str)", NULL);

    craft_begin();
    craft_gpt2_header();
    msgpack_pack_map(&pk, 2), ps("id"), msgpack_pack_double(&pk, 1.0), ps("tokens"),
        msgpack_pack_array(&pk, 0);
    expect_error("float id", "record id is not a non-negative integer (got float64)", NULL);

    craft_begin();
    craft_gpt2_header();
    msgpack_pack_map(&pk, 2), ps("id"), msgpack_pack_int64(&pk, -3), ps("tokens"),
        msgpack_pack_array(&pk, 0);
    expect_error("negative id", "record id -3 is negative", NULL);

    craft_begin();
    craft_gpt2_header();
    msgpack_pack_map(&pk, 2), ps("id"), pu(5), ps("tokens"), ps("1 2 3");
    expect_error("tokens as a string", "record 5: tokens is not an array (got str)", NULL);

    craft_begin();
    craft_gpt2_header();
    msgpack_pack_map(&pk, 2), ps("id"), pu(5), ps("tokens"), msgpack_pack_array(&pk, 2), pu(1),
        msgpack_pack_double(&pk, 2.0);
    expect_error("float token",
                 "record 5: tokens is not an array of non-negative integers "
                 "(position 1 holds a float64)",
                 NULL);

    craft_begin();
    craft_gpt2_header();
    msgpack_pack_map(&pk, 2), ps("id"), pu(5), ps("tokens"), msgpack_pack_array(&pk, 2), pu(1),
        msgpack_pack_int64(&pk, -5);
    expect_error("negative token", "record 5: token -5 at position 1 is negative", NULL);

    craft_begin();
    craft_gpt2_header();
    craft_record(7, 4, t4);
    expect_error("token out of range",
                 "record 7: token 70000 at position 3 is out of range (vocab_size 50257)", NULL);

    craft_begin();
    craft_gpt2_header();
    msgpack_pack_map(&pk, 4), ps("id"), pu(9), ps("x"), pu(1), ps("tokens"),
        msgpack_pack_array(&pk, 0), ps("x"), pu(2);
    expect_error("duplicate key", "record 9: duplicate key \"x\"", NULL);

    craft_begin();
    craft_gpt2_header();
    msgpack_pack_map(&pk, 2), ps("id"), pu(9), pu(1), msgpack_pack_array(&pk, 0);
    expect_error("non-string key", "record 9: key 1 is not a string (got uint)", NULL);

    craft_begin();
    craft_gpt2_header();
    msgpack_pack_map(&pk, 3), ps("id"), pu(9), ps("tokens"), msgpack_pack_array(&pk, 0), ps("deep");
    for (int k = 0; k < TS_MAX_DEPTH; k++) msgpack_pack_array(&pk, 1);
    pu(1);
    expect_error("nesting too deep", "nested deeper than 64 levels", NULL);

    /* Exactly at the limit is fine. */
    craft_begin();
    craft_gpt2_header();
    msgpack_pack_map(&pk, 3), ps("id"), pu(9), ps("tokens"), msgpack_pack_array(&pk, 0), ps("deep");
    for (int k = 0; k < TS_MAX_DEPTH - 1; k++) msgpack_pack_array(&pk, 1);
    pu(1);
    err_t e;
    size_t count;
    CHECK(read_all(sb.data, sb.size, &e, &count) == ERR_EOF && count == 1,
          "nesting at the limit (%d levels) is accepted", TS_MAX_DEPTH);
    msgpack_sbuffer_destroy(&sb);

    /* Claimed lengths far beyond the input are a truncation, not a huge allocation. */
    craft_begin();
    craft_gpt2_header();
    msgpack_sbuffer_write(&sb, "\x82\xa2id\x01\xa6tokens\xdd\xff\xff\xff\xff", 17);
    expect_error("array claiming 2^32-1 elements", "truncated value", NULL);

    /* Errors are sticky. */
    craft_begin();
    craft_gpt2_header();
    craft_record(7, 4, t4);
    craft_record(8, 0, NULL);
    ts_reader_t *rd = ts_reader_open_mem(sb.data, sb.size, NULL, &e);
    ts_record r = {0};
    int rc1 = ts_read(rd, &r, &e);
    err_t e2;
    int rc2 = ts_read(rd, &r, &e2);
    CHECK(rc1 == ERR_FAIL && rc2 == ERR_FAIL && !strcmp(e.msg, e2.msg), "errors are sticky");
    ts_reader_free(rd);
    ts_record_free(&r);
    msgpack_sbuffer_destroy(&sb);
}

static void test_reuse(void)
{
    size_t bounds[4];
    bytes s = make_stream(3, bounds);
    err_t e;
    ts_reader_t *rd = ts_reader_open_mem(s.p, s.n, NULL, &e);
    ts_record r = {0};
    int ok = 1, n = 0;
    const char *str;
    size_t len;
    double f;
    while (ts_read(rd, &r, &e) >= 0) {
        ok &= r.id == (uint64_t)(10 + n) && r.n_tokens == (size_t)(2 + n) &&
              r.tokens[0] == (uint32_t)n;
        ok &= ts_record_get_f64(&r, "score", &f, &e) == 0 && f == -1.5 * n;
        /* "text" is only in odd records: no leftovers from the previous record. */
        ok &= (ts_record_get_str(&r, "text", &str, &len, &e) == 0) == (n % 2 == 1);
        ok &= r.n_fields == (size_t)(1 + n % 2);
        n++;
    }
    CHECK(ok && n == 3, "one record reused across reads holds each record exactly");
    CHECK(ts_read(rd, &r, &e) == ERR_EOF, "EOF again after EOF");
    ts_reader_free(rd);

    /* Steady state: reading the same stream again does not grow the record's storage. */
    uint32_t *tok = r.tokens;
    uint8_t *fields = r.fields;
    rd = ts_reader_open_mem(s.p, s.n, NULL, &e);
    while (ts_read(rd, &r, &e) >= 0) {
    }
    CHECK(r.tokens == tok && r.fields == fields, "no reallocation in the steady state");
    ts_reader_free(rd);
    ts_record_free(&r);
    bytes_free(&s);
}

static void test_large(void)
{
    const size_t n = 1000000;
    err_t e;
    ts_header h = {0};
    ts_header_init(&h, "gpt2", 50257, 50256, &e);
    ts_record r = {0};
    uint32_t *t = ts_record_resize(&r, n, &e);
    for (size_t k = 0; k < n; k++) t[k] = (uint32_t)((k * 2654435761u) % 50257);
    r.id = 1;
    FILE *fp = tmpfile();
    ts_writer_t *w = ts_writer_open(fp, &h, &e);
    int wrc = ts_write(w, &r, &e);
    r.id = 2;
    r.n_tokens = 3;
    wrc |= ts_write(w, &r, &e);
    CHECK(wrc == 0 && ts_writer_close(w, &e) == 0, "write a 1e6-token record");
    rewind(fp);
    ts_reader_t *rd = ts_reader_open(fp, "big", &e);
    ts_record q = {0};
    int rc = rd ? ts_read(rd, &q, &e) : ERR_FAIL;
    CHECK(rc == 0 && q.id == 1 && q.n_tokens == n && !memcmp(q.tokens, r.tokens, n * 4),
          "read it back through a FILE: %s", rc ? e.msg : "ok");
    CHECK(rd && ts_read(rd, &q, &e) == 0 && q.id == 2 && q.n_tokens == 3 &&
              ts_read(rd, &q, &e) == ERR_EOF,
          "then the small record and EOF");
    ts_reader_free(rd);
    fclose(fp);
    ts_record_free(&q);
    ts_record_free(&r);
    ts_header_free(&h);
}

static void test_fields(void)
{
    err_t e;
    ts_record r = {0};
    double f;
    int64_t i;
    const char *s;
    size_t len;
    CHECK(ts_record_set_f64(&r, "a", 0.5, &e) == 0 && ts_record_set_i64(&r, "b", -7, &e) == 0 &&
              ts_record_set_u64(&r, "c", UINT64_MAX, &e) == 0 &&
              ts_record_set_bool(&r, "d", true, &e) == 0 &&
              ts_record_set_str(&r, "e", "xyz", 3, &e) == 0 && r.n_fields == 5,
          "set five fields");
    CHECK(ts_record_get_f64(&r, "a", &f, &e) == 0 && f == 0.5, "get f64");
    CHECK(ts_record_get_f64(&r, "b", &f, &e) == 0 && f == -7.0, "get f64 accepts an int");
    CHECK(ts_record_get_i64(&r, "b", &i, &e) == 0 && i == -7, "get i64");
    CHECK(ts_record_get_i64(&r, "c", &i, &e) == ERR_FAIL && strstr(e.msg, "int64 range"),
          "get i64 of UINT64_MAX is an error: %s", e.msg);
    CHECK(ts_record_get_str(&r, "e", &s, &len, &e) == 0 && len == 3 && !memcmp(s, "xyz", 3),
          "get str");
    CHECK(ts_record_get_str(&r, "a", &s, &len, &e) == ERR_FAIL &&
              strstr(e.msg, "field \"a\" is a float64, not a str"),
          "wrong type: %s", e.msg);
    CHECK(ts_record_get_f64(&r, "zz", &f, &e) == ERR_EOF, "absent field is -1");
    CHECK(ts_record_set_f64(&r, "a", 2.0, &e) == 0 && r.n_fields == 5 &&
              ts_record_get_f64(&r, "a", &f, &e) == 0 && f == 2.0,
          "set replaces an existing key");
    CHECK(ts_record_remove(&r, "b") == 0 && r.n_fields == 4 && ts_record_remove(&r, "b") == ERR_EOF,
          "remove");
    float fa[3] = {0.5f, -1.25f, 3.0f};
    double da[2] = {1e-300, 2.0}, got[3];
    CHECK(ts_record_set_f32_array(&r, "fa", fa, 3, &e) == 0 &&
              ts_record_get_f64_array(&r, "fa", got, 3, &e) == 3 && got[1] == -1.25,
          "f32 array round trip");
    CHECK(ts_record_set_f64_array(&r, "da", da, 2, &e) == 0 &&
              ts_record_get_f64_array(&r, "da", got, 1, &e) == 2 && got[0] == 1e-300,
          "f64 array: count returned beyond cap");
    CHECK(ts_record_get_f64_array(&r, "e", got, 3, &e) == ERR_FAIL, "array get of a str fails");
    CHECK(ts_record_set_raw(&r, "raw", "\x92\x01\xa1x", 4, &e) == 0 &&
              ts_record_get_f64_array(&r, "raw", got, 3, &e) == ERR_FAIL &&
              strstr(e.msg, "element 1 is a str"),
          "raw value set; array of mixed types refused: %s", e.msg);
    CHECK(ts_record_set_raw(&r, "bad", "\x92\x01", 2, &e) == ERR_FAIL &&
              ts_record_set_raw(&r, "bad", "\x01\x02", 2, &e) == ERR_FAIL &&
              ts_record_set_raw(&r, "bad", "\xc1", 1, &e) == ERR_FAIL,
          "raw values that are not one msgpack value are refused");
    CHECK(ts_record_set_f64(&r, "id", 1, &e) == ERR_FAIL &&
              ts_record_set_f64(&r, "tokens", 1, &e) == ERR_FAIL &&
              ts_record_set_f64(&r, "magic", 1, &e) == ERR_FAIL && strstr(e.msg, "reserved"),
          "reserved keys refused");
    /* A field value sits inside the record's map, so it may nest TS_MAX_DEPTH - 1 levels. */
    uint8_t nest[TS_MAX_DEPTH + 1];
    memset(nest, 0x91, sizeof nest);
    nest[TS_MAX_DEPTH] = 0x01; /* TS_MAX_DEPTH arrays around 1 */
    CHECK(ts_record_set_raw(&r, "deep", nest, TS_MAX_DEPTH + 1, &e) == ERR_FAIL,
          "a raw value nested %d levels is refused: %s", TS_MAX_DEPTH, e.msg);
    nest[TS_MAX_DEPTH - 1] = 0x01;
    CHECK(ts_record_set_raw(&r, "deep", nest, TS_MAX_DEPTH, &e) == 0,
          "a raw value nested %d levels is accepted", TS_MAX_DEPTH - 1);
    {
        ts_header h = {0};
        bytes b = {0};
        FILE *fp = open_memstream(&b.p, &b.n);
        ts_header_init(&h, "gpt2", 10, -1, &e);
        ts_writer_t *w = ts_writer_open(fp, &h, &e);
        ts_write(w, &r, &e);
        ts_writer_close(w, &e);
        fclose(fp);
        size_t count;
        CHECK(read_all(b.p, b.n, &e, &count) == ERR_EOF && count == 1,
              "and a record holding it reads back: %s", e.msg);
        bytes_free(&b);
        ts_header_free(&h);
        ts_record_remove(&r, "deep");
    }
    {
        static const char *const order[] = {"c", "d", "e", "a", "fa", "da", "raw"};
        size_t pos = 0, n = 0, klen, vlen;
        const char *key;
        const uint8_t *val;
        int ok = 1;
        while (ts_record_next_field(&r, &pos, &key, &klen, &val, &vlen) == 0 && n < 7)
            ok &= klen == strlen(order[n]) && !memcmp(key, order[n], klen) && vlen > 0, n++;
        CHECK(ok && n == 7 && n == r.n_fields, "next_field walks the fields in order");
    }
    const uint8_t *raw;
    CHECK(ts_record_get_raw(&r, "raw", &raw, &len) == 0 && len == 4 && raw[0] == 0x92, "get raw");
    ts_record_clear(&r);
    CHECK(r.n_fields == 0 && r.n_tokens == 0 && ts_record_get_raw(&r, "raw", &raw, &len) == ERR_EOF,
          "clear empties the record");
    ts_record_free(&r);
}

static void test_json(void)
{
    err_t e;
    ts_record r = {0};
    uint32_t t[2] = {1, 50256};
    r.id = 7;
    ts_record_set_tokens(&r, t, 2, &e);
    ts_record_set_str(&r, "s", "a\"b\\c\n\x01\xc3\xa9\xff\xed\xa0\x80z", 14, &e);
    ts_record_set_f64(&r, "f", 0.1, &e);
    ts_record_set_f64(&r, "nan", NAN, &e);
    ts_record_set_f64(&r, "inf", -INFINITY, &e);
    ts_record_set_i64(&r, "i", INT64_MIN, &e);
    ts_record_set_bool(&r, "b", false, &e);
    float fa[2] = {0.5f, 1.1f};
    ts_record_set_f32_array(&r, "fa", fa, 2, &e);
    ts_record_set_raw(&r, "bin",
                      "\xc4\x04"
                      "abcd",
                      6, &e);
    ts_record_set_raw(&r, "m", "\x82\x01\xc0\xa1k\x90", 6, &e);
    ts_record_set_raw(&r, "x", "\xd4\xff\x10", 3, &e);
    bytes b = {0};
    FILE *fp = open_memstream(&b.p, &b.n);
    int rc = ts_record_write_json(fp, &r, &e);
    fclose(fp);
    const char *want =
        "{\"id\":7,\"tokens\":[1,50256],\"s\":"
        "\"a\\\"b\\\\c\\u000a\\u0001\xc3\xa9\\ufffd\\ufffd\\ufffd"
        "\\ufffdz\",\"f\":0.1,\"nan\":null,\"inf\":null,\"i\":-9223372036854775808,\"b\":false,"
        "\"fa\":[0.5,1.1],\"bin\":\"YWJjZA==\",\"m\":{\"1\":null,\"k\":[]},"
        "\"x\":{\"ext\":-1,\"data\":\"EA==\"}}\n";
    CHECK(rc == 0 && b.n == strlen(want) && !memcmp(b.p, want, b.n),
          "JSON line:\n# got  %.*s# want %s", (int)b.n, b.p, want);
    bytes_free(&b);

    /* Fuzz finding: map keys that are maps, nested deeply, used to be rendered as escaped JSON
     * text, which doubles the backslashes at every level (minutes and gigabytes for 2 KB). */
    ts_record k = {0};
    uint8_t deep[3 * 62];
    size_t dn = 0;
    for (int l = 0; l < 61; l++) deep[dn++] = 0x81; /* {key: nil} with the key the next map */
    deep[dn++] = 0x01, deep[dn++] = 0xc0;
    for (int l = 0; l < 60; l++) deep[dn++] = 0xc0;
    CHECK(ts_record_set_raw(&k, "k", deep, dn, &e) == 0, "set a field of maps keyed by maps");
    b = (bytes){0};
    fp = open_memstream(&b.p, &b.n);
    rc = ts_record_write_json(fp, &k, &e);
    fclose(fp);
    want = "{\"id\":0,\"tokens\":[],\"k\":{\"<map>\":null}}\n";
    CHECK(rc == 0 && b.n == strlen(want) && !memcmp(b.p, want, b.n),
          "a map key that is a map prints as \"<map>\": %.*s", (int)b.n, b.p);
    bytes_free(&b);
    ts_record_free(&k);

    FILE *full = fopen("/dev/full", "w");
    if (full) {
        setvbuf(full, NULL, _IONBF, 0);
        CHECK(ts_record_write_json(full, &r, &e) == ERR_FAIL &&
                  strstr(e.msg, "writing JSON failed"),
              "JSON to /dev/full fails: %s", e.msg);
        fclose(full);
    }
    ts_record_free(&r);
}

static void test_writer(void)
{
    err_t e;
    ts_header h = {0};
    CHECK(ts_header_init(&h, "gpt2", 0, -1, &e) == ERR_FAIL && strstr(e.msg, "vocab_size"),
          "vocab_size 0 refused");
    CHECK(ts_header_init(&h, "gpt2", 100, 100, &e) == ERR_FAIL && strstr(e.msg, "eot"),
          "eot >= vocab refused");
    ts_header_init(&h, "gpt2", 100, 99, &e);
    ts_record r = {0};
    uint32_t t[2] = {5, 100};
    r.id = 3;
    ts_record_set_tokens(&r, t, 2, &e);

    bytes b = {0};
    FILE *fp = open_memstream(&b.p, &b.n);
    ts_writer_t *w = ts_writer_open(fp, &h, &e);
    CHECK(ts_write(w, &r, &e) == ERR_FAIL &&
              strstr(e.msg, "record 3: token 100 at position 1 is out of range (vocab_size 100)"),
          "writer refuses an out-of-range token: %s", e.msg);
    r.n_tokens = 1;
    fflush(fp);
    size_t before = b.n;
    ts_writer_set_unbuffered(w, true);
    ts_write(w, &r, &e);
    CHECK(b.n > before, "unbuffered: the record is flushed at once");
    CHECK(ts_writer_close(w, &e) == 0, "close");
    fclose(fp);
    bytes_free(&b);

    FILE *full = fopen("/dev/full", "w");
    if (full) {
        w = ts_writer_open(full, &h, &e);
        int rc = 0;
        for (int k = 0; k < 2000 && rc == 0; k++) rc = ts_write(w, &r, &e);
        rc = ts_writer_close(w, &e);
        CHECK(rc == ERR_FAIL && strstr(e.msg, "writing token stream failed"),
              "a failed write is reported by close: %s", e.msg);
        fclose(full);
    }
    ts_record_free(&r);
    ts_header_free(&h);
}

int main(void)
{
    test_round_trip_passthrough();
    test_cat();
    test_truncation();
    test_errors();
    test_reuse();
    test_large();
    test_fields();
    test_json();
    test_writer();
    return tap_done();
}
