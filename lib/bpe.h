/* bpe: GPT-2 byte-level BPE, text to token ids and back, byte-exact with OpenAI's encoder.py.
 * Ownership: a loaded bpe_t is immutable, shared by threads; each thread owns a bpe_enc_t; outputs
 * are caller-owned growable arrays. Errors: >= 0 success, else ERR_FAIL with the message in err_t.
 */
#ifndef DLM_BPE_H
#define DLM_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct bpe bpe_t;         /* vocabulary + merge ranks + compiled pre-tokenizer */
typedef struct bpe_enc bpe_enc_t; /* per-thread encoder state: match data, word cache, scratch */

/* The GPT-2 end-of-text token's text. Plain text containing it is NOT special (as encoder.py):
 * get its id with bpe_token_id() and append it yourself. */
#define BPE_EOT "<|endoftext|>"

/* A growable array of token ids. Start from {0}; bpe_encode() appends; free with bpe_ids_free(). */
struct bpe_ids {
    uint32_t *v;
    size_t n, cap;
};

/* A growable byte buffer. Start from {0}; bpe_decode() appends and keeps v NUL-terminated
 * (the NUL is not counted in n; the bytes may contain NULs); free with bpe_bytes_free(). */
struct bpe_bytes {
    char *v;
    size_t n, cap;
};

/* Loads the vocabulary from directory dir: encoder.json + vocab.bpe (OpenAI names) or, when
 * those are absent, vocab.json + merges.txt (Hugging Face names; the same files renamed).
 * @return a new bpe_t to free with bpe_free(), or NULL with the error (naming the file) in e. */
bpe_t *bpe_load(const char *dir, err_t *e);

/* Loads the vocabulary from $DLMKIT_VOCAB (a directory) when set, else from the first of
 * <dir of /proc/self/exe>/../data/gpt2 (source tree) and <exe dir>/../share/dlmkit/gpt2
 * (installed) that holds one. @return as bpe_load(); the message names where it looked and hints
 * "run `make data`". */
bpe_t *bpe_load_default(err_t *e);

/* Frees a vocabulary; NULL is a no-op. Every bpe_enc_t made from it must be freed first. */
void bpe_free(bpe_t *bpe);

/* Number of tokens (50257 for GPT-2); valid ids are 0 .. bpe_vocab_size() - 1. */
size_t bpe_vocab_size(const bpe_t *bpe);

/* The directory the vocabulary was loaded from (borrowed, valid until bpe_free). */
const char *bpe_dir(const bpe_t *bpe);

/* @return the id of the token whose bytes are exactly the NUL-terminated text
 * (bpe_token_id(b, BPE_EOT) == 50256 for GPT-2), or -1 when no token has these bytes. */
int32_t bpe_token_id(const bpe_t *bpe, const char *text);

/* @return the bytes of token id (borrowed, not NUL-terminated) with their count in *len, or NULL
 * when id is out of range. */
const char *bpe_token_bytes(const bpe_t *bpe, uint32_t id, size_t *len);

/* A new encoder state for one thread; several may share one bpe_t, which must outlive them.
 * @return the state to free with bpe_enc_free(), or NULL with the error in e. */
bpe_enc_t *bpe_enc_new(const bpe_t *bpe, err_t *e);

/* Frees an encoder state; NULL is a no-op. */
void bpe_enc_free(bpe_enc_t *enc);

/* Encodes text[0..len) (UTF-8; NULs allowed) and appends its token ids to out; no BOS/EOS.
 * Invalid UTF-8 is an error naming the byte offset (replace it first with utf8_replace()).
 * @return 0, or ERR_FAIL (out is then left as it was). */
int bpe_encode(bpe_enc_t *enc, const char *text, size_t len, struct bpe_ids *out, err_t *e);

/* Appends to out the exact bytes of ids[0..n) (not necessarily valid UTF-8 when the ids split
 * a character). An id out of range is an error naming the id and its position.
 * @return 0, or ERR_FAIL (out is then left as it was). */
int bpe_decode(const bpe_t *bpe, const uint32_t *ids, size_t n, struct bpe_bytes *out, err_t *e);

/* For tests: with on != 0, the state runs the slow reference path — every pre-token from the
 * PCRE2 regex (no ASCII fast path), merged by a literal transcription of encoder.py's loop
 * (no heap, no cache). Its results must equal the fast path's. */
void bpe_enc_set_reference(bpe_enc_t *enc, int on);

/* Appends ids[0..n) to out. @return 0, or ERR_FAIL when out of memory. */
int bpe_ids_append(struct bpe_ids *out, const uint32_t *ids, size_t n, err_t *e);

/* Chooses at most parts-1 increasing byte offsets (written to cuts) that cut text into pieces of
 * roughly len/parts bytes, each at a newline where the pre-tokenizer splits whatever the context,
 * so encoding the pieces separately and concatenating gives the ids of the whole text.
 * @return the number of cuts (fewer when the text has no such newline). */
size_t bpe_cut_points(const char *text, size_t len, size_t parts, size_t *cuts);

/* Free the arrays and reset them to {0}; NULL is a no-op. */
void bpe_ids_free(struct bpe_ids *ids);
void bpe_bytes_free(struct bpe_bytes *bytes);

#endif
