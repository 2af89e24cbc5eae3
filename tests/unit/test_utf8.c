/* test_utf8: validation offsets and U+FFFD replacement against Python's errors='replace'
 * (tests/fixtures/tokenizer/invalid_utf8.jsonl, produced by CPython and cross-checked with the
 * WHATWG TextDecoder), plus hand-written boundary cases of Unicode Table 3-7. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "utf8.h"

#define FIXTURE "tests/fixtures/tokenizer/invalid_utf8.jsonl"

static size_t unhex(const char *hex, char *out)
{
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (char)v;
    }
    return n;
}

/* Replacement of the literal s (length n) gives exactly want (length wn). */
static int replaces_to(const char *s, size_t n, const char *want, size_t wn)
{
    char out[64];
    size_t k = utf8_replace(s, n, out);
    return k == wn && memcmp(out, want, wn) == 0;
}

static void test_fixture(void)
{
    FILE *f = fopen(FIXTURE, "r");
    CHECK(f != NULL, "open %s", FIXTURE);
    if (!f) return;
    char line[4096];
    int cases = 0, good = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!o) continue;
        const char *id = json_string_value(json_object_get(o, "id"));
        const char *hex = json_string_value(json_object_get(o, "bytes_hex"));
        json_t *want = json_object_get(o, "text_after_replace");
        char in[1024], out[3 * 1024];
        size_t n = unhex(hex, in);
        size_t k = utf8_replace(in, n, out);
        int ok = k == json_string_length(want) && memcmp(out, json_string_value(want), k) == 0;
        CHECK(ok, "replace %s (%s)", id, hex);
        CHECK(utf8_validate(out, k) == k, "replacement of %s is valid UTF-8", id);
        CHECK(utf8_validate(in, n) < n, "%s is reported invalid", id);
        cases++;
        good += ok;
        json_decref(o);
    }
    fclose(f);
    CHECK(cases == 12, "%d invalid-UTF-8 cases read (12 expected)", cases);
    NOTE("%d/%d replacement cases agree with Python", good, cases);
}

static void test_validate(void)
{
    static const struct {
        const char *s;
        size_t n, bad; /* bad == n: valid */
    } v[] = {
        {"", 0, 0},
        {"plain ascii", 11, 11},
        {"\x00\x7f", 2, 2},
        {"caf\xc3\xa9", 5, 5},
        {"\xe2\x82\xac", 3, 3},     /* U+20AC */
        {"\xf0\x9f\x98\x80", 4, 4}, /* U+1F600 */
        {"\xf4\x8f\xbf\xbf", 4, 4}, /* U+10FFFF, the last */
        {"\xed\x9f\xbf", 3, 3},     /* U+D7FF, before the surrogates */
        {"\xee\x80\x80", 3, 3},     /* U+E000, after them */
        {"\xef\xbb\xbf", 3, 3},     /* BOM is just a character */
        {"abc\x80", 4, 3},          /* lone continuation */
        {"ab\xc0\xaf", 4, 2},       /* overlong '/' */
        {"ab\xc1\xbf", 4, 2},       /* overlong */
        {"\xe0\x9f\xbf", 3, 0},     /* overlong 3-byte */
        {"x\xed\xa0\x80", 4, 1},    /* surrogate U+D800 */
        {"\xf0\x8f\xbf\xbf", 4, 0}, /* overlong 4-byte */
        {"\xf4\x90\x80\x80", 4, 0}, /* above U+10FFFF */
        {"\xf5\x80\x80\x80", 4, 0},
        {"\xff", 1, 0},
        {"12345678\xe2\x82", 10, 8}, /* truncated at the end, after the 8-byte fast path */
        {"1234567\xc3\xa9z\x80", 11, 10},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        CHECK(utf8_validate(v[i].s, v[i].n) == v[i].bad, "validate case %zu: first bad byte %zu", i,
              v[i].bad);
}

static void test_replace(void)
{
#define R UTF8_REPLACEMENT
    CHECK(replaces_to("", 0, "", 0), "empty");
    CHECK(replaces_to("ok \xc3\xa9", 5, "ok \xc3\xa9", 5), "valid input is unchanged");
    CHECK(replaces_to("\xe0\x80\x80", 3, R R R, 9), "E0 80 80: E0 is not a prefix with 80 -> 3");
    CHECK(replaces_to("\xe0\xa0", 2, R, 3), "E0 A0 truncated -> 1");
    CHECK(replaces_to("\xf4\x8f\xbf", 3, R, 3), "F4 8F BF truncated -> 1");
    CHECK(replaces_to("\xf4\x90", 2, R R, 6), "F4 90 -> 2");
    CHECK(replaces_to("\xf0\x9f\x98\xf0\x9f\x98\x80", 7, R "\xf0\x9f\x98\x80", 7),
          "truncated then valid 4-byte");
    CHECK(replaces_to("a\xc3", 2, "a" R, 4), "truncated 2-byte at the end");
    CHECK(replaces_to("\x80\x80", 2, R R, 6), "one U+FFFD per lone continuation");
    CHECK(replaces_to("\xc3\xc3\xa9", 3, R "\xc3\xa9", 5),
          "a lead byte interrupted by a lead byte");
#undef R
    CHECK(utf8_seq_len("\xf0\x9f\x98", 3) == -3, "seq_len of a truncated 4-byte prefix is -3");
    CHECK(utf8_seq_len("\xf0\x9f\x98\x80", 4) == 4, "seq_len of a 4-byte character is 4");
}

/* Every 1- to 3-byte sequence over a set of interesting bytes: replacement output is valid,
 * and valid input is reproduced exactly. */
static void test_exhaustive_short(void)
{
    static const unsigned char bytes[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
                                          0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee,
                                          0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff};
    size_t nb = sizeof bytes, bad = 0;
    for (size_t a = 0; a < nb; a++)
        for (size_t b = 0; b <= nb; b++)
            for (size_t c = 0; c <= nb; c++) {
                char in[3], out[9];
                size_t n = 0;
                in[n++] = (char)bytes[a];
                if (b < nb) in[n++] = (char)bytes[b];
                if (b < nb && c < nb) in[n++] = (char)bytes[c];
                size_t k = utf8_replace(in, n, out);
                if (utf8_validate(out, k) != k) bad++;
                if (utf8_validate(in, n) == n && (k != n || memcmp(in, out, n))) bad++;
            }
    CHECK(bad == 0, "short sequences: replacement always valid, valid input unchanged (%zu bad)",
          bad);
}

int main(void)
{
    test_fixture();
    test_validate();
    test_replace();
    test_exhaustive_short();
    return tap_done();
}
