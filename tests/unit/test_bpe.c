/* test_bpe: GPT-2 BPE against ids produced by OpenAI's encoder.py
 * (tests/fixtures/tokenizer/cases.jsonl and invalid_utf8.jsonl; see their README), through both
 * pre-tokenizer paths, decoding back to the exact bytes, the Hugging Face file layout, errors,
 * long and adversarial inputs, and several threads sharing one vocabulary.
 * The vocabulary comes from $DLMKIT_VOCAB or data/gpt2 (run from the repository root). */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpe.h"
#include "tap.h"
#include "utf8.h"

#define CASES "tests/fixtures/tokenizer/cases.jsonl"
#define INVALID "tests/fixtures/tokenizer/invalid_utf8.jsonl"

struct tcase {
    char id[16];
    char *text; /* exact bytes from text_hex */
    size_t len;
    uint32_t *ids;
    size_t n_ids;
};

static struct tcase cases[256];
static size_t n_cases;

static char *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    char *out = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (char)v;
    }
    out[n] = '\0';
    *len = n;
    return out;
}

/* Reads a JSONL fixture; hex_field names the field holding the input bytes. */
static size_t read_cases(const char *path, const char *hex_field, struct tcase *out, size_t max)
{
    json_error_t je;
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0 && n < max) {
        json_t *o = json_loads(line, JSON_ALLOW_NUL, &je);
        if (!o) fprintf(stderr, "%s: %s\n", path, je.text);
        if (!o) continue;
        struct tcase *c = &out[n++];
        snprintf(c->id, sizeof c->id, "%s", json_string_value(json_object_get(o, "id")));
        c->text = unhex(json_string_value(json_object_get(o, hex_field)), &c->len);
        json_t *ids = json_object_get(o, "ids");
        c->n_ids = json_array_size(ids);
        c->ids = malloc((c->n_ids + 1) * sizeof *c->ids);
        for (size_t i = 0; i < c->n_ids; i++)
            c->ids[i] = (uint32_t)json_integer_value(json_array_get(ids, i));
        json_decref(o);
    }
    free(line);
    fclose(f);
    return n;
}

static int same_ids(const struct bpe_ids *got, const uint32_t *want, size_t n)
{
    return got->n == n && (n == 0 || memcmp(got->v, want, n * sizeof *want) == 0);
}

static void report_diff(const struct bpe_ids *got, const uint32_t *want, size_t n)
{
    size_t i = 0;
    while (i < got->n && i < n && got->v[i] == want[i]) i++;
    NOTE("  got %zu ids, want %zu; first difference at %zu: got %d want %d", got->n, n, i,
         i < got->n ? (int)got->v[i] : -1, i < n ? (int)want[i] : -1);
}

/* Every case: the reference ids with the fast path and with the regex only; decoding gives back
 * the exact bytes. @return the number of cases that passed all three. */
static size_t check_cases(const bpe_t *b, const char *label)
{
    err_t e = {{0}};
    bpe_enc_t *fast = bpe_enc_new(b, &e), *slow = bpe_enc_new(b, &e);
    bpe_enc_set_reference(slow, 1);
    size_t pass = 0;
    for (size_t k = 0; k < n_cases; k++) {
        struct tcase *c = &cases[k];
        struct bpe_ids a = {0}, r = {0};
        struct bpe_bytes d = {0};
        int rc = bpe_encode(fast, c->text, c->len, &a, &e);
        int ok1 = rc == 0 && same_ids(&a, c->ids, c->n_ids);
        int ok2 = bpe_encode(slow, c->text, c->len, &r, &e) == 0 && same_ids(&r, c->ids, c->n_ids);
        int ok3 = bpe_decode(b, c->ids, c->n_ids, &d, &e) == 0 && d.n == c->len &&
                  memcmp(d.v, c->text, c->len) == 0;
        if (!ok1) report_diff(&a, c->ids, c->n_ids);
        if (!ok2) report_diff(&r, c->ids, c->n_ids);
        CHECK(ok1 && ok2 && ok3, "%s %s: %zu ids (fast path %s, reference %s, decode %s)", label,
              c->id, c->n_ids, ok1 ? "ok" : "WRONG", ok2 ? "ok" : "WRONG", ok3 ? "ok" : "WRONG");
        pass += ok1 && ok2 && ok3;
        bpe_ids_free(&a);
        bpe_ids_free(&r);
        bpe_bytes_free(&d);
    }
    bpe_enc_free(fast);
    bpe_enc_free(slow);
    return pass;
}

static void check_invalid_utf8(const bpe_t *b)
{
    struct tcase inv[32];
    size_t n = read_cases(INVALID, "bytes_hex", inv, 32);
    CHECK(n == 12, "%zu invalid-UTF-8 cases read (12 expected)", n);
    err_t e = {{0}};
    bpe_enc_t *enc = bpe_enc_new(b, &e);
    size_t pass = 0;
    for (size_t k = 0; k < n; k++) {
        struct tcase *c = &inv[k];
        struct bpe_ids ids = {0};
        CHECK(bpe_encode(enc, c->text, c->len, &ids, &e) < 0 && strstr(e.msg, "invalid UTF-8"),
              "%s raw: encode refuses invalid UTF-8 (%s)", c->id, e.msg);
        char *fixed = malloc(UTF8_REPLACE_BOUND(c->len) + 1);
        size_t fl = utf8_replace(c->text, c->len, fixed);
        int ok = bpe_encode(enc, fixed, fl, &ids, &e) == 0 && same_ids(&ids, c->ids, c->n_ids);
        CHECK(ok, "%s: replaced then encoded gives the reference ids", c->id);
        pass += ok;
        bpe_ids_free(&ids);
        free(fixed);
        free(c->text);
        free(c->ids);
    }
    NOTE("%zu/%zu invalid-UTF-8 cases pass", pass, n);
    bpe_enc_free(enc);
}

static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    int ok = a && b;
    char buf[65536];
    size_t k;
    while (ok && (k = fread(buf, 1, sizeof buf, a)) > 0) ok = fwrite(buf, 1, k, b) == k;
    if (a) fclose(a);
    if (b && fclose(b) != 0) ok = 0;
    return ok;
}

static void check_hf_layout(const char *dir)
{
    char tmp[] = "/tmp/test_bpe_hf.XXXXXX", p1[512], p2[512], q1[512], q2[512];
    CHECK(mkdtemp(tmp) != NULL, "temporary directory");
    snprintf(p1, sizeof p1, "%s/encoder.json", dir);
    snprintf(p2, sizeof p2, "%s/vocab.bpe", dir);
    snprintf(q1, sizeof q1, "%s/vocab.json", tmp);
    snprintf(q2, sizeof q2, "%s/merges.txt", tmp);
    CHECK(copy_file(p1, q1) && copy_file(p2, q2), "Hugging Face layout written to %s", tmp);
    err_t e = {{0}};
    bpe_t *b = bpe_load(tmp, &e);
    CHECK(b != NULL, "load the Hugging Face layout (vocab.json + merges.txt): %s",
          b ? "ok" : e.msg);
    if (b) {
        CHECK(bpe_vocab_size(b) == 50257, "HF layout: 50257 tokens");
        size_t pass = check_cases(b, "hf");
        CHECK(pass == n_cases, "HF layout agrees on %zu/%zu cases", pass, n_cases);
        bpe_free(b);
    }
    unlink(q1);
    unlink(q2);
    b = bpe_load(tmp, &e);
    CHECK(b == NULL && strstr(e.msg, tmp) && strstr(e.msg, "merges.txt"),
          "an empty directory is an error naming it: %s", e.msg);
    rmdir(tmp);
}

static void check_errors(const bpe_t *b)
{
    err_t e = {{0}};
    struct bpe_bytes d = {0};
    uint32_t ids[] = {15496, 50257, 11};
    CHECK(bpe_decode(b, ids, 3, &d, &e) < 0 && strstr(e.msg, "50257") &&
              strstr(e.msg, "position 1"),
          "decode of an out-of-range id names it and its position: %s", e.msg);
    CHECK(d.n == 0, "a failed decode appends nothing");
    bpe_enc_t *enc = bpe_enc_new(b, &e);
    struct bpe_ids out = {0};
    CHECK(bpe_encode(enc, "ok", 2, &out, &e) == 0 && out.n == 1, "\"ok\" is one token");
    CHECK(bpe_encode(enc, "abc\xff", 4, &out, &e) < 0 && strstr(e.msg, "offset 3") && out.n == 1,
          "invalid UTF-8 is refused at its offset, output untouched: %s", e.msg);
    CHECK(bpe_encode(enc, "", 0, &out, &e) == 0 && out.n == 1, "empty text appends nothing");
    bpe_ids_free(&out);
    bpe_enc_free(enc);
    CHECK(bpe_load("/nonexistent/dlmkit", &e) == NULL && strstr(e.msg, "/nonexistent/dlmkit"),
          "a missing directory is an error naming it: %s", e.msg);
    size_t len = 0;
    const char *t = bpe_token_bytes(b, 50256, &len);
    CHECK(t && len == 13 && memcmp(t, BPE_EOT, 13) == 0, "token 50256 is <|endoftext|>");
    CHECK(bpe_token_bytes(b, 50257, &len) == NULL, "token 50257 does not exist");
    CHECK(bpe_token_id(b, " the") == 262 && bpe_token_id(b, "no such token here") == -1,
          "bpe_token_id(\" the\") == 262, unknown text -1");
}

/* Round trip and fast path == regex on one text. */
static int round_trip(const bpe_t *b, const char *text, size_t len)
{
    err_t e = {{0}};
    bpe_enc_t *fast = bpe_enc_new(b, &e), *slow = bpe_enc_new(b, &e);
    bpe_enc_set_reference(slow, 1);
    struct bpe_ids a = {0}, r = {0};
    struct bpe_bytes d = {0};
    int ok = bpe_encode(fast, text, len, &a, &e) == 0 && bpe_encode(slow, text, len, &r, &e) == 0 &&
             a.n == r.n && memcmp(a.v, r.v, a.n * sizeof *a.v) == 0 &&
             bpe_decode(b, a.v, a.n, &d, &e) == 0 && d.n == len && memcmp(d.v, text, len) == 0;
    bpe_ids_free(&a);
    bpe_ids_free(&r);
    bpe_bytes_free(&d);
    bpe_enc_free(fast);
    bpe_enc_free(slow);
    return ok;
}

static void check_long_inputs(const bpe_t *b)
{
    size_t n = 1 << 20;
    char *s = malloc(n + 64);
    const char *fills[] = {" ",  "a",  "\n",       "7",  "!",    " \xc2\x85", "\xe4\xb8\xad",
                           "ab", "'s", "\xc2\xa0", "x ", "\t\n "};
    for (size_t f = 0; f < sizeof fills / sizeof fills[0]; f++) {
        size_t k = strlen(fills[f]), m = 0;
        while (m + k <= n) memcpy(s + m, fills[f], k), m += k;
        char hex[32] = "";
        for (size_t i = 0; i < k; i++) sprintf(hex + 2 * i, "%02x", (unsigned char)fills[f][i]);
        CHECK(round_trip(b, s, m), "1 MiB of bytes %s repeated: round trip, fast path == reference",
              hex);
    }
    /* Words that stress the merge order: no merge pair at all, and highly repetitive pairs. */
    size_t m = 0;
    for (size_t i = 0; m < 100000; i++) s[m++] = "qzxj"[i % 4];
    CHECK(round_trip(b, s, m), "100 kB word without common merges");
    free(s);
}

/* Many distinct words, so the word cache clears itself, twice: results stay the same. */
static void check_cache_reset(const bpe_t *b)
{
    size_t cap = 3u << 20, n = 0;
    char *s = malloc(cap);
    for (unsigned i = 0; i < 300000; i++) {
        s[n++] = ' ';
        for (unsigned v = i * 2654435761u; v; v /= 26) s[n++] = (char)('a' + v % 26);
    }
    err_t e = {{0}};
    bpe_enc_t *enc = bpe_enc_new(b, &e);
    struct bpe_ids a = {0}, c = {0};
    int ok = bpe_encode(enc, s, n, &a, &e) == 0 && bpe_encode(enc, s, n, &c, &e) == 0 &&
             a.n == c.n && memcmp(a.v, c.v, a.n * sizeof *a.v) == 0;
    CHECK(ok, "300000 distinct words encoded twice by one state (cache reset) agree: %zu ids", a.n);
    bpe_ids_free(&a);
    bpe_ids_free(&c);
    bpe_enc_free(enc);
    free(s);
}

/* bpe_load_default: $DLMKIT_VOCAB wins; without it the search next to the executable (none here:
 * test binaries live under build/) fails with a message naming the places and `make data`. */
static void check_load_default(const char *dir)
{
    err_t e = {{0}};
    char *saved = getenv("DLMKIT_VOCAB") ? strdup(getenv("DLMKIT_VOCAB")) : NULL;
    setenv("DLMKIT_VOCAB", dir, 1);
    bpe_t *b = bpe_load_default(&e);
    CHECK(b && strcmp(bpe_dir(b), dir) == 0, "bpe_load_default uses $DLMKIT_VOCAB=%s", dir);
    bpe_free(b);
    setenv("DLMKIT_VOCAB", "/nonexistent/vocab", 1);
    b = bpe_load_default(&e);
    CHECK(!b && strstr(e.msg, "$DLMKIT_VOCAB") && strstr(e.msg, "/nonexistent/vocab"),
          "a bad $DLMKIT_VOCAB is an error naming it: %s", e.msg);
    unsetenv("DLMKIT_VOCAB");
    b = bpe_load_default(&e);
    if (b) {
        NOTE("a vocabulary was found next to the test binary: %s", bpe_dir(b));
    } else {
        CHECK(strstr(e.msg, "make data") && strstr(e.msg, "share/dlmkit/gpt2"),
              "not found: the message names where it looked and `make data`: %s", e.msg);
    }
    bpe_free(b);
    if (saved) setenv("DLMKIT_VOCAB", saved, 1);
    free(saved);
}

struct job {
    const bpe_t *b;
    size_t pass;
};

static void *thread_main(void *arg)
{
    struct job *j = arg;
    err_t e = {{0}};
    bpe_enc_t *enc = bpe_enc_new(j->b, &e);
    for (int rep = 0; rep < 20; rep++)
        for (size_t k = 0; k < n_cases; k++) {
            struct bpe_ids ids = {0};
            j->pass += bpe_encode(enc, cases[k].text, cases[k].len, &ids, &e) == 0 &&
                       same_ids(&ids, cases[k].ids, cases[k].n_ids);
            bpe_ids_free(&ids);
        }
    bpe_enc_free(enc);
    return NULL;
}

static void check_threads(const bpe_t *b)
{
    pthread_t t[4];
    struct job j[4];
    for (int i = 0; i < 4; i++) {
        j[i] = (struct job){b, 0};
        pthread_create(&t[i], NULL, thread_main, &j[i]);
    }
    size_t pass = 0;
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL), pass += j[i].pass;
    CHECK(pass == 4 * 20 * n_cases, "4 threads sharing one vocabulary: %zu/%zu encodings right",
          pass, 4 * 20 * n_cases);
}

int main(void)
{
    const char *dir = getenv("DLMKIT_VOCAB");
    if (!dir || !*dir) dir = "data/gpt2";
    err_t e = {{0}};
    bpe_t *b = bpe_load(dir, &e);
    CHECK(b != NULL, "load the GPT-2 vocabulary from %s%s%s (run `make data`)", dir, b ? "" : ": ",
          b ? "" : e.msg);
    if (!b) return tap_done();
    CHECK(bpe_vocab_size(b) == 50257, "50257 tokens");
    CHECK(bpe_token_id(b, BPE_EOT) == 50256, "<|endoftext|> is 50256");

    n_cases = read_cases(CASES, "text_hex", cases, 256);
    CHECK(n_cases == 150, "%zu cases read from %s (150 expected)", n_cases, CASES);
    size_t pass = check_cases(b, "case");
    NOTE("%zu/%zu encode cases pass", pass, n_cases);
    check_invalid_utf8(b);
    check_hf_layout(dir);
    check_errors(b);
    check_load_default(dir);
    check_long_inputs(b);
    check_cache_reset(b);
    check_threads(b);

    for (size_t k = 0; k < n_cases; k++) free(cases[k].text), free(cases[k].ids);
    bpe_free(b);
    return tap_done();
}
