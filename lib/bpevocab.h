/* bpevocab: a GPT-2 BPE vocabulary (token bytes, merge ranks), read from its files in a directory.
 * Ownership: a struct bpevocab owns its tables (bpevocab_free); lookups only read it (any thread).
 * Errors: >= 0 success, else ERR_FAIL with the message (naming the file) in err_t; never exit(). */
#ifndef DLM_BPEVOCAB_H
#define DLM_BPEVOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "err.h"

/* bpevocab_merge_rank() of a pair that never merges. */
#define BPEVOCAB_NO_RANK UINT32_MAX

/* One merge rule: tokens a and b, adjacent, become token out. */
struct bpevocab_merge {
    uint32_t a, b, out;
};

/* The vocabulary, its tokens kept as raw bytes (the files' byte-level unicode undone). Fields are
 * read directly by bpe.c's merge loops; fill with bpevocab_load(), free with bpevocab_free(). */
struct bpevocab {
    uint32_t n_vocab;
    uint32_t *tok_off; /* (n_vocab + 1) offsets of each token's bytes in blob */
    char *blob;
    uint32_t *vocab_slots; /* bytes -> id hash table: id + 1, 0 = empty */
    uint32_t vocab_mask;
    uint32_t byte_id[256]; /* the token of each single byte */
    uint32_t n_merges;
    struct bpevocab_merge *merges; /* by rank */
    uint64_t *merge_keys;          /* (a << 32 | b) -> rank hash table; UINT64_MAX = empty */
    uint32_t *merge_rank;
    uint32_t merge_mask;
};

/* Fills v (zeroed or freed before) from directory dir: encoder.json + vocab.bpe (OpenAI names) or,
 * when those are absent, vocab.json + merges.txt (Hugging Face names; the same files renamed).
 * @return 0, or ERR_FAIL with v left empty and the error (naming the file) in e. */
int bpevocab_load(struct bpevocab *v, const char *dir, err_t *e);

/* Frees v's tables and zeroes it; v itself is the caller's. NULL is a no-op. */
void bpevocab_free(struct bpevocab *v);

/* Where the default vocabulary is: $DLMKIT_VOCAB when set (*from_env = true; the pointer is the
 * environment's), else the first of <dir of /proc/self/exe>/../data/gpt2 (source tree) and
 * <exe dir>/../share/dlmkit/gpt2 (installed) that holds a vocabulary, written to buf (cap bytes).
 * @return the directory, or NULL with the error in e (naming where it looked, hinting "run
 * `make data`"). */
const char *bpevocab_default_dir(char *buf, size_t cap, bool *from_env, err_t *e);

/* @return the id of the token whose bytes are s[0..n), or -1 when there is none. */
int32_t bpevocab_token_id(const struct bpevocab *v, const char *s, size_t n);

/* ---- fast paths, shared with bpe.c's word cache ------------------------------------------- */

static inline uint64_t bpevocab_mix64(uint64_t x)
{
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ull;
    x ^= x >> 32;
    return x;
}

/* A fast hash of short byte strings: 8 bytes at a time, multiply-xorshift. */
static inline uint64_t bpevocab_hash(const unsigned char *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = bpevocab_mix64(h ^ w) * 0x9e3779b97f4a7c15ull;
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = bpevocab_mix64(h ^ w) * 0x9e3779b97f4a7c15ull;
    }
    return bpevocab_mix64(h);
}

/* @return the rank of merging tokens x then y (lower merges first), BPEVOCAB_NO_RANK if none. */
static inline uint32_t bpevocab_merge_rank(const struct bpevocab *v, uint32_t x, uint32_t y)
{
    uint64_t key = (uint64_t)x << 32 | y;
    for (uint32_t i = (uint32_t)bpevocab_mix64(key) & v->merge_mask;; i = (i + 1) & v->merge_mask) {
        if (v->merge_keys[i] == key) return v->merge_rank[i];
        if (v->merge_keys[i] == UINT64_MAX) return BPEVOCAB_NO_RANK;
    }
}

#endif
