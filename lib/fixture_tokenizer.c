/* fixture_tokenizer: the tokenizer set — cases.jsonl (text_hex -> ids, and back to the bytes) and
 * invalid_utf8.jsonl (bytes -> U+FFFD replacement -> ids). Ids must match exactly. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "fixture.h"
#include "utf8.h"

/* Decodes lowercase/uppercase hex into out (n/2 bytes). @return the byte count, -1 if not hex. */
static long hex_decode(const char *hex, char *out)
{
    size_t n = strlen(hex);
    if (n % 2) return -1;
    for (size_t i = 0; i < n; i += 2) {
        char pair[3] = {hex[i], hex[i + 1], 0}, *end;
        long v = strtol(pair, &end, 16);
        if (*end) return -1;
        out[i / 2] = (char)v;
    }
    return (long)(n / 2);
}

/* Number of positions where got and want differ, counting a length difference. */
static size_t id_mismatches(const struct bpe_ids *got, const json_t *want)
{
    size_t n = json_array_size(want), bad = got->n > n ? got->n - n : n - got->n;
    for (size_t i = 0; i < n && i < got->n; i++)
        bad += (json_int_t)got->v[i] != json_integer_value(json_array_get(want, i));
    return bad;
}

/* Runs one case: encode bytes (after replacement when `replace`), compare ids, decode back. */
static void run_case(fixture_report *r, bpe_enc_t *enc, const bpe_t *bpe, const char *kind,
                     const json_t *c, const char *hex_key, bool replace)
{
    const char *name = json_string_value(json_object_get(c, "id"));
    const char *hex = json_string_value(json_object_get(c, hex_key));
    const json_t *want = json_object_get(c, "ids");
    if (!name || !hex || !json_is_array(want)) {
        fixture_unsupported(r, kind, name ? name : "(case without id)");
        return;
    }
    size_t n = strlen(hex) / 2;
    char *bytes = malloc(n + 1), *text = malloc(UTF8_REPLACE_BOUND(n) + 1);
    struct bpe_ids ids = {0};
    struct bpe_bytes back = {0};
    err_t e;
    long len = bytes && text ? hex_decode(hex, bytes) : -1;
    bool ok = len >= 0;
    size_t text_len = 0;
    if (ok) {
        text_len = replace ? utf8_replace(bytes, (size_t)len, text) : (size_t)len;
        if (!replace) memcpy(text, bytes, text_len);
        ok = bpe_encode(enc, text, text_len, &ids, &e) == 0;
    }
    size_t bad = ok ? id_mismatches(&ids, want) : json_array_size(want) + 1;
    /* decoding the reference ids must give back the exact (replaced) bytes */
    if (ok && bad == 0)
        ok = bpe_decode(bpe, ids.v, ids.n, &back, &e) == 0 && back.n == text_len &&
             memcmp(back.v, text, text_len) == 0;
    fixture_case(r, kind, name, (double)bad, 0, ok && bad == 0, "ids exact, bytes round-trip");
    bpe_ids_free(&ids);
    bpe_bytes_free(&back);
    free(bytes);
    free(text);
}

static int run_file(const char *dir, const char *file, const char *kind, const char *hex_key,
                    bool replace, fixture_report *r, const bpe_t *bpe, bpe_enc_t *enc, err_t *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *fp = fopen(path, "r");
    if (!fp) return err_set_errno(e, "%s", path);
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t got;
    int rc = 0;
    while ((got = getline(&line, &cap, fp)) > 0) {
        lineno++;
        json_error_t jerr;
        json_t *c = json_loadb(line, (size_t)got, JSON_ALLOW_NUL, &jerr);
        if (!c) {
            rc = err_set(e, "%s: line %zu: %s", path, lineno, jerr.text);
            break;
        }
        run_case(r, enc, bpe, kind, c, hex_key, replace);
        json_decref(c);
    }
    free(line);
    fclose(fp);
    return rc;
}

int fixture_run_tokenizer(const char *dir, fixture_report *r, err_t *e)
{
    bpe_t *bpe = r->vocab ? bpe_load(r->vocab, e) : bpe_load_default(e);
    if (!bpe) return ERR_FAIL;
    bpe_enc_t *enc = bpe_enc_new(bpe, e);
    int rc = enc ? 0 : ERR_FAIL;
    if (rc == 0) rc = run_file(dir, "cases.jsonl", "tokenizer", "text_hex", false, r, bpe, enc, e);
    if (rc == 0)
        rc = run_file(dir, "invalid_utf8.jsonl", "utf8-replace", "bytes_hex", true, r, bpe, enc, e);
    bpe_enc_free(enc);
    bpe_free(bpe);
    return rc;
}
