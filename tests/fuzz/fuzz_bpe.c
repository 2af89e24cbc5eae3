/* fuzz_bpe: libFuzzer target for lib/bpe and lib/utf8.
 * Arbitrary bytes -> utf8_replace -> bpe_encode (fast path) -> bpe_decode must give back the
 * replaced bytes exactly, every id must be in range, and the slow reference path (regex only,
 * encoder.py's merge loop, no cache) must give the same ids. Any difference aborts.
 * The vocabulary comes from $DLMKIT_VOCAB or data/gpt2 (run from the repository root). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bpe_t *bpe;
static bpe_enc_t *fast, *ref;
static struct bpe_ids ids, ids_ref;
static struct bpe_bytes back;

static void fail(const char *what, const err_t *e)
{
    fprintf(stderr, "fuzz_bpe: %s%s%s\n", what, e ? ": " : "", e ? e->msg : "");
    abort();
}

static void init(void)
{
    const char *dir = getenv("DLMKIT_VOCAB");
    err_t e = {{0}};
    bpe = bpe_load(dir && *dir ? dir : "data/gpt2", &e);
    if (!bpe)
        fail("cannot load the vocabulary (run from the repository root after `make data`)", &e);
    fast = bpe_enc_new(bpe, &e);
    ref = bpe_enc_new(bpe, &e);
    if (!fast || !ref) fail("bpe_enc_new", &e);
    bpe_enc_set_reference(ref, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!bpe) init();
    char *text = malloc(UTF8_REPLACE_BOUND(size) + 1);
    if (!text) return 0;
    size_t n = utf8_replace((const char *)data, size, text);
    if (utf8_validate(text, n) != n) fail("utf8_replace output is not valid UTF-8", NULL);
    if (utf8_validate((const char *)data, size) == size && (n != size || memcmp(text, data, n)))
        fail("utf8_replace changed valid input", NULL);
    err_t e = {{0}};
    ids.n = ids_ref.n = back.n = 0;
    if (bpe_encode(fast, text, n, &ids, &e) < 0) fail("bpe_encode", &e);
    if (bpe_encode(ref, text, n, &ids_ref, &e) < 0) fail("bpe_encode (reference)", &e);
    if (ids.n != ids_ref.n || (ids.n && memcmp(ids.v, ids_ref.v, ids.n * sizeof *ids.v)))
        fail("the fast path and the reference path disagree", NULL);
    for (size_t i = 0; i < ids.n; i++)
        if (ids.v[i] >= bpe_vocab_size(bpe)) fail("id out of range", NULL);
    if (ids.n > n) fail("more tokens than bytes", NULL);
    if (bpe_decode(bpe, ids.v, ids.n, &back, &e) < 0) fail("bpe_decode", &e);
    if (back.n != n || memcmp(back.v, text, n)) fail("decode(encode(text)) != text", NULL);
    free(text);
    return 0;
}
