/* bpe: GPT-2 byte-level BPE (see bpe.h).
 * Encoding = pre-tokenize with the GPT-2 regex, then BPE-merge each pre-token ("word") by rank,
 * exactly as OpenAI's encoder.py does: repeatedly take the lowest-ranked adjacent pair and merge
 * all of its occurrences left to right (short words: that loop with pair ranks kept in an array;
 * long words: a heap, O(n log n)). Words are cached per encoder state. Pure ASCII stretches
 * are pre-tokenized by a hand-written scanner equivalent to the regex (ascii_pretoken); anything
 * touching a non-ASCII character goes through PCRE2 (JIT). Tokens are kept as raw bytes: the
 * vocabulary (bpevocab.h) undoes the files' byte-level unicode at load time. */
#include "bpe.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "bpevocab.h"
#include "log.h"
#include "utf8.h"

/* Python `regex`'s \s is the Unicode White_Space property (contains U+0085, not U+FEFF); PCRE2's
 * UCP \s lacks U+0085, so the class is written out. (?!\S) becomes (?![^WS]). The pattern is
 * anchored: every position starts a match (the alternatives cover every character), so anchored
 * matching at the end of the previous match is the same as findall. */
/* clang-format off */
#define WS "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}" \
           "\\x{202F}\\x{205F}\\x{3000}"
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS
    "])|[" WS "]+";
/* clang-format on */

enum { DEAD = UINT32_MAX }; /* a symbol merged into its left neighbour */

struct bpe {
    char *dir;
    struct bpevocab v;
    pcre2_code *re;
    int jit; /* pcre2_jit_compile succeeded */
};

/* A word-cache slot (16 bytes, four to a cache line). A word of up to 8 bytes is compared by
 * head and len alone; a longer one also by its tail, kept in the arena. */
struct cache_slot {
    uint64_t head; /* the word's first 8 bytes, zero-padded */
    uint32_t val;  /* len <= 8 and n_tok == 1: the token; else the entry's offset in the arena:
                    * the tail bytes w[8..len) padded to 4-byte words (len > 8), then n_tok ids */
    uint8_t len;   /* 2..CACHE_MAX_WORD; 0 = empty slot */
    uint8_t n_tok; /* 1..len */
    uint16_t tag;  /* 16 more bits of the hash: most mismatches of long words skip the memcmp */
};

struct bpe_enc {
    const bpe_t *bpe;
    pcre2_match_data *md;
    int reference; /* bpe_enc_set_reference() */
    /* word cache: open addressing over slots; long keys and token lists in one arena */
    struct cache_slot *slots;
    size_t mask, used;
    uint32_t *arena;
    size_t arena_n, arena_cap;
    /* merge scratch, sized for the longest word seen */
    uint32_t *sym, *prev, *next, *pend;
    uint64_t *heap;
    size_t scratch_cap;
    uint32_t *word; /* result of the last bpe_word() */
    size_t word_n;
};

/* Words longer than this are merged but not cached (long whitespace runs, fuzz input); the cache
 * starts over when it holds CACHE_MAX_ENTRIES words or CACHE_MAX_ARENA arena words (bounded
 * memory, about 24 MB per state at most). */
enum {
    CACHE_MAX_WORD = 128,
    CACHE_MAX_ENTRIES = 1 << 18,
    CACHE_MAX_ARENA = 1 << 21,
    CACHE_MIN_SLOTS = 1 << 12
};

/* ---- loading ------------------------------------------------------------------------------ */

static int compile_regex(bpe_t *b, err_t *e)
{
    int code;
    PCRE2_SIZE off;
    b->re = pcre2_compile((PCRE2_SPTR)GPT2_PATTERN, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &code, &off, NULL);
    if (!b->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return err_set(e, "pre-tokenizer regex, offset %zu: %s", (size_t)off, (char *)msg);
    }
    b->jit = pcre2_jit_compile(b->re, PCRE2_JIT_COMPLETE) == 0;
    if (!b->jit) log_debug("PCRE2 JIT unavailable; using the interpreter");
    return 0;
}

bpe_t *bpe_load(const char *dir, err_t *e)
{
    bpe_t *b = calloc(1, sizeof *b);
    if (!b || !(b->dir = strdup(dir))) {
        err_set(e, "out of memory");
        bpe_free(b);
        return NULL;
    }
    if (bpevocab_load(&b->v, dir, e) < 0 || compile_regex(b, e) < 0) {
        bpe_free(b);
        return NULL;
    }
    return b;
}

bpe_t *bpe_load_default(err_t *e)
{
    char buf[PATH_MAX + 32];
    bool from_env;
    const char *dir = bpevocab_default_dir(buf, sizeof buf, &from_env, e);
    bpe_t *b = dir ? bpe_load(dir, e) : NULL;
    if (!b && from_env) err_prefix(e, "$DLMKIT_VOCAB");
    return b;
}

void bpe_free(bpe_t *b)
{
    if (!b) return;
    free(b->dir);
    bpevocab_free(&b->v);
    pcre2_code_free(b->re);
    free(b);
}

size_t bpe_vocab_size(const bpe_t *b) { return b->v.n_vocab; }
const char *bpe_dir(const bpe_t *b) { return b->dir; }

int32_t bpe_token_id(const bpe_t *b, const char *text)
{
    return bpevocab_token_id(&b->v, text, strlen(text));
}

const char *bpe_token_bytes(const bpe_t *b, uint32_t id, size_t *len)
{
    if (id >= b->v.n_vocab) return NULL;
    *len = b->v.tok_off[id + 1] - b->v.tok_off[id];
    return b->v.blob + b->v.tok_off[id];
}

/* ---- encoder state ------------------------------------------------------------------------ */

bpe_enc_t *bpe_enc_new(const bpe_t *b, err_t *e)
{
    bpe_enc_t *s = calloc(1, sizeof *s);
    if (!s) return err_set(e, "out of memory"), NULL;
    s->bpe = b;
    s->md = pcre2_match_data_create(1, NULL);
    s->slots = calloc(CACHE_MIN_SLOTS, sizeof *s->slots);
    s->mask = CACHE_MIN_SLOTS - 1;
    if (!s->md || !s->slots) {
        bpe_enc_free(s);
        return err_set(e, "out of memory"), NULL;
    }
    return s;
}

void bpe_enc_free(bpe_enc_t *s)
{
    if (!s) return;
    pcre2_match_data_free(s->md);
    free(s->slots);
    free(s->arena);
    free(s->sym);
    free(s->prev);
    free(s->next);
    free(s->pend);
    free(s->heap);
    free(s);
}

void bpe_enc_set_reference(bpe_enc_t *s, int on) { s->reference = on; }

/* Grows *p (elements of size sz) to hold at least need elements. */
static int grow(void *pp, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*(void **)pp, c * sz);
    if (!q) return ERR_FAIL;
    *(void **)pp = q;
    *cap = c;
    return 0;
}

static inline int emit(struct bpe_ids *out, const uint32_t *ids, size_t n)
{
    if (out->cap - out->n < n && grow(&out->v, &out->cap, out->n + n, sizeof *out->v) < 0)
        return ERR_FAIL;
    memcpy(out->v + out->n, ids, n * sizeof *ids);
    out->n += n;
    return 0;
}

/* ---- BPE merge of one word ---------------------------------------------------------------- */

static inline void heap_push(uint64_t *h, size_t *n, uint64_t v)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static inline uint64_t heap_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0], v = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1] < h[c]) c++;
        if (v <= h[c]) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = v;
    return top;
}

/* Pushes the pair starting at symbol p, if it has a rank. Heap entries are rank << 32 | position,
 * so the minimum is the lowest rank and, among equal ranks, the leftmost position. */
static inline void push_pair(bpe_enc_t *s, size_t *nh, uint32_t p, uint32_t n)
{
    uint32_t q = s->next[p];
    if (q >= n) return;
    uint32_t r = bpevocab_merge_rank(&s->bpe->v, s->sym[p], s->sym[q]);
    if (r != BPEVOCAB_NO_RANK) heap_push(s->heap, nh, (uint64_t)r << 32 | p);
}

/* Sizes the merge scratch for words of n bytes. */
static int scratch_reserve(bpe_enc_t *s, size_t n)
{
    if (n <= s->scratch_cap) return 0;
    size_t c = s->scratch_cap ? s->scratch_cap : 64;
    while (c < n) c *= 2;
    free(s->sym), free(s->prev), free(s->next), free(s->pend), free(s->heap);
    s->sym = malloc(c * sizeof *s->sym);
    s->prev = malloc(c * sizeof *s->prev);
    s->next = malloc(c * sizeof *s->next);
    s->pend = malloc(c * sizeof *s->pend);
    s->heap = malloc(3 * c * sizeof *s->heap); /* n - 1 initial pairs + 2 per merge */
    s->scratch_cap = s->sym && s->prev && s->next && s->pend && s->heap ? c : 0;
    return s->scratch_cap ? 0 : ERR_FAIL;
}

/* bpe_word() for short words: encoder.py's loop itself, with the rank of every adjacent pair kept
 * in an array so that a pass looks up only the pairs it changed. O(n^2) compares, but for short
 * words cheaper than the heap. */
enum { SMALL_WORD = 32 };

static void small_word(bpe_enc_t *s, const unsigned char *w, uint32_t n)
{
    const bpe_t *b = s->bpe;
    uint32_t *sym = s->sym, *rank = s->next, *from = s->prev; /* scratch reused */
    for (uint32_t i = 0; i < n; i++) sym[i] = b->v.byte_id[w[i]];
    for (uint32_t i = 0; i + 1 < n; i++) rank[i] = bpevocab_merge_rank(&b->v, sym[i], sym[i + 1]);
    while (n > 1) {
        uint32_t best = BPEVOCAB_NO_RANK;
        for (uint32_t i = 0; i + 1 < n; i++)
            if (rank[i] < best) best = rank[i];
        if (best == BPEVOCAB_NO_RANK) break;
        uint32_t out = b->v.merges[best].out, k = 0;
        /* Rebuild in place (k <= i): merge each occurrence left to right; from[k] is the old
         * index of an unchanged symbol, UINT32_MAX for a merged one. rank[i] == best exactly when
         * the pair at i is the best pair (one rank per pair). */
        for (uint32_t i = 0; i < n; k++) {
            if (i + 1 < n && rank[i] == best) {
                sym[k] = out;
                from[k] = UINT32_MAX;
                i += 2;
            } else {
                sym[k] = sym[i];
                from[k] = i++;
            }
        }
        /* Two unchanged neighbours were neighbours before, so keep their rank (from[j] >= j, so
         * it is read before being overwritten); other pairs are looked up. */
        for (uint32_t j = 0; j + 1 < k; j++)
            rank[j] = from[j] != UINT32_MAX && from[j + 1] != UINT32_MAX
                          ? rank[from[j]]
                          : bpevocab_merge_rank(&b->v, sym[j], sym[j + 1]);
        n = k;
    }
    s->word = sym;
    s->word_n = n;
}

/* Merges word w[0..n) (n >= 2) into s->word[0..word_n). encoder.py semantics: take the
 * lowest-ranked pair present, merge all its occurrences left to right without overlap, repeat.
 * All heap entries of that rank are popped (in position order) before any pair they create is
 * pushed, so a new pair of lower rank cannot cut in; stale entries are recognised because the
 * symbols at their position no longer spell the rank's pair (dead symbols are DEAD). */
static int bpe_word(bpe_enc_t *s, const unsigned char *w, size_t len)
{
    const bpe_t *b = s->bpe;
    if (len > UINT32_MAX / 4 || scratch_reserve(s, len) < 0) return ERR_FAIL;
    uint32_t n = (uint32_t)len;
    if (n <= SMALL_WORD) {
        small_word(s, w, n);
        return 0;
    }
    for (uint32_t i = 0; i < n; i++) {
        s->sym[i] = b->v.byte_id[w[i]];
        s->prev[i] = i - 1; /* UINT32_MAX for the first: no left neighbour */
        s->next[i] = i + 1;
    }
    size_t nh = 0;
    for (uint32_t i = 0; i + 1 < n; i++) push_pair(s, &nh, i, n);
    while (nh) {
        uint32_t r = (uint32_t)(s->heap[0] >> 32);
        const struct bpevocab_merge *m = &b->v.merges[r];
        size_t np = 0;
        while (nh && (uint32_t)(s->heap[0] >> 32) == r) {
            uint32_t p = (uint32_t)heap_pop(s->heap, &nh);
            uint32_t q = s->next[p];
            if (s->sym[p] != m->a || q >= n || s->sym[q] != m->b) continue;
            s->sym[p] = m->out;
            s->sym[q] = DEAD;
            s->next[p] = s->next[q];
            if (s->next[q] < n) s->prev[s->next[q]] = p;
            s->pend[np++] = p;
        }
        /* New pairs: (left neighbour, merged) and (merged, right neighbour), from the state
         * after the whole pass. A merged symbol never dies in its own pass (only right partners
         * die, and positions are visited left to right). Duplicates are harmless. */
        for (size_t k = 0; k < np; k++) {
            uint32_t p = s->pend[k];
            if (s->prev[p] != UINT32_MAX) push_pair(s, &nh, s->prev[p], n);
            push_pair(s, &nh, p, n);
        }
    }
    s->word_n = 0;
    for (uint32_t i = 0; i < n; i = s->next[i]) s->sym[s->word_n++] = s->sym[i];
    s->word = s->sym;
    return 0;
}

/* The reference merge for tests: encoder.py's loop transcribed literally (find the lowest-ranked
 * pair, rebuild the word merging its occurrences left to right, repeat), O(n^2), no cache.
 * Words over REFERENCE_MAX_WORD bytes use bpe_word() so that fuzzing stays fast. */
enum { REFERENCE_MAX_WORD = 2048 };

static int reference_word(bpe_enc_t *s, const unsigned char *w, size_t n, struct bpe_ids *out)
{
    const bpe_t *b = s->bpe;
    if (n > REFERENCE_MAX_WORD) {
        if (bpe_word(s, w, n) < 0) return ERR_FAIL;
    } else {
        if (scratch_reserve(s, n) < 0) return ERR_FAIL;
        uint32_t *word = s->pend;
        for (size_t i = 0; i < n; i++) word[i] = b->v.byte_id[w[i]];
        for (;;) {
            uint32_t best = BPEVOCAB_NO_RANK;
            for (size_t i = 0; i + 1 < n; i++) {
                uint32_t r = bpevocab_merge_rank(&b->v, word[i], word[i + 1]);
                if (r < best) best = r;
            }
            if (best == BPEVOCAB_NO_RANK) break;
            const struct bpevocab_merge *m = &b->v.merges[best];
            size_t k = 0;
            for (size_t i = 0; i < n;) {
                if (i + 1 < n && word[i] == m->a && word[i + 1] == m->b) {
                    word[k++] = m->out;
                    i += 2;
                } else {
                    word[k++] = word[i++];
                }
            }
            n = k;
        }
        s->word = word;
        s->word_n = n;
    }
    return emit(out, s->word, s->word_n);
}

/* ---- word cache --------------------------------------------------------------------------- */

/* The first min(n, 8) bytes of w, zero-padded; avail >= n bytes are readable at w. */
static inline uint64_t word_head(const unsigned char *w, size_t n, size_t avail)
{
    uint64_t h = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (avail >= 8) { /* one load, then keep the first n bytes */
        memcpy(&h, w, 8);
        return n >= 8 ? h : h & ((1ull << (8 * n)) - 1);
    }
#else
    (void)avail;
#endif
    memcpy(&h, w, n < 8 ? n : 8);
    return h;
}

static inline uint64_t cache_hash(const unsigned char *w, size_t n, uint64_t head)
{
    if (n <= 8) return bpevocab_mix64((head ^ (uint64_t)n << 59) * 0x9e3779b97f4a7c15ull);
    return bpevocab_hash(w, n);
}

static void cache_clear(bpe_enc_t *s)
{
    memset(s->slots, 0, (s->mask + 1) * sizeof *s->slots);
    s->used = s->arena_n = 0;
}

static int cache_rehash(bpe_enc_t *s)
{
    size_t cap = (s->mask + 1) * 2;
    struct cache_slot *ns = calloc(cap, sizeof *ns);
    if (!ns) return ERR_FAIL;
    for (size_t i = 0; i <= s->mask; i++) {
        const struct cache_slot *c = &s->slots[i];
        if (!c->len) continue;
        const unsigned char *tail = (const unsigned char *)(s->arena + c->val);
        unsigned char w[CACHE_MAX_WORD];
        memcpy(w, &c->head, 8);
        if (c->len > 8) memcpy(w + 8, tail, c->len - 8u);
        size_t j = cache_hash(w, c->len, c->head) & (cap - 1);
        while (ns[j].len) j = (j + 1) & (cap - 1);
        ns[j] = *c;
    }
    free(s->slots);
    s->slots = ns;
    s->mask = cap - 1;
    return 0;
}

/* Appends the tokens of word w[0..n) (n >= 2; avail >= n bytes readable at w) to out, through
 * the cache. */
static int encode_word(bpe_enc_t *s, const unsigned char *w, size_t n, size_t avail,
                       struct bpe_ids *out)
{
    if (n > CACHE_MAX_WORD) {
        if (bpe_word(s, w, n) < 0) return ERR_FAIL;
        return emit(out, s->word, s->word_n);
    }
    uint64_t head = word_head(w, n, avail), h = cache_hash(w, n, head);
    uint16_t tag = (uint16_t)(h >> 48);
    size_t i;
    for (i = h & s->mask; s->slots[i].len; i = (i + 1) & s->mask) {
        const struct cache_slot *c = &s->slots[i];
        if (c->head != head || c->len != n || c->tag != tag) continue;
        if (n <= 8) {
            if (c->n_tok == 1) return emit(out, &c->val, 1);
            return emit(out, s->arena + c->val, c->n_tok);
        }
        if (memcmp(s->arena + c->val, w + 8, n - 8) == 0)
            return emit(out, s->arena + c->val + (n - 8 + 3) / 4, c->n_tok);
    }
    if (bpe_word(s, w, n) < 0 || emit(out, s->word, s->word_n) < 0) return ERR_FAIL;
    /* Insert at slot i, where the failed lookup stopped, unless the table changes first. */
    size_t tail_words = n > 8 ? (n - 8 + 3) / 4 : 0;
    size_t need = (n > 8 || s->word_n > 1) ? tail_words + s->word_n : 0;
    if (s->used >= CACHE_MAX_ENTRIES || s->arena_n + need > CACHE_MAX_ARENA) {
        cache_clear(s);
        for (i = h & s->mask; s->slots[i].len; i = (i + 1) & s->mask) {}
    } else if (2 * (s->used + 1) > s->mask + 1) {
        if (cache_rehash(s) < 0) return ERR_FAIL;
        for (i = h & s->mask; s->slots[i].len; i = (i + 1) & s->mask) {}
    }
    struct cache_slot c = {head, 0, (uint8_t)n, (uint8_t)s->word_n, tag};
    if (need) {
        if (grow(&s->arena, &s->arena_cap, s->arena_n + need, sizeof *s->arena) < 0)
            return ERR_FAIL;
        c.val = (uint32_t)s->arena_n;
        uint32_t *a = s->arena + s->arena_n;
        if (tail_words) {
            a[tail_words - 1] = 0;
            memcpy(a, w + 8, n - 8);
        }
        memcpy(a + tail_words, s->word, s->word_n * sizeof *a);
        s->arena_n += need;
    } else {
        c.val = s->word[0];
    }
    s->slots[i] = c;
    s->used++;
    return 0;
}

/* ---- pre-tokenizer ------------------------------------------------------------------------ */

/* ASCII classes under the regex: letters are \p{L}, digits \p{N}, "\t\n\v\f\r " White_Space;
 * every other ASCII character (punctuation, controls, DEL) is none of the three. */
enum { C_O = 0, C_L = 1, C_N = 2, C_S = 3 };
/* clang-format off */
static const unsigned char ascii_class[128] = {
    ['\t'] = C_S, ['\n'] = C_S, ['\v'] = C_S, ['\f'] = C_S, ['\r'] = C_S, [' '] = C_S,
    ['0'] = C_N, ['1'] = C_N, ['2'] = C_N, ['3'] = C_N, ['4'] = C_N,
    ['5'] = C_N, ['6'] = C_N, ['7'] = C_N, ['8'] = C_N, ['9'] = C_N,
    ['A'] = C_L, ['B'] = C_L, ['C'] = C_L, ['D'] = C_L, ['E'] = C_L, ['F'] = C_L, ['G'] = C_L,
    ['H'] = C_L, ['I'] = C_L, ['J'] = C_L, ['K'] = C_L, ['L'] = C_L, ['M'] = C_L, ['N'] = C_L,
    ['O'] = C_L, ['P'] = C_L, ['Q'] = C_L, ['R'] = C_L, ['S'] = C_L, ['T'] = C_L, ['U'] = C_L,
    ['V'] = C_L, ['W'] = C_L, ['X'] = C_L, ['Y'] = C_L, ['Z'] = C_L,
    ['a'] = C_L, ['b'] = C_L, ['c'] = C_L, ['d'] = C_L, ['e'] = C_L, ['f'] = C_L, ['g'] = C_L,
    ['h'] = C_L, ['i'] = C_L, ['j'] = C_L, ['k'] = C_L, ['l'] = C_L, ['m'] = C_L, ['n'] = C_L,
    ['o'] = C_L, ['p'] = C_L, ['q'] = C_L, ['r'] = C_L, ['s'] = C_L, ['t'] = C_L, ['u'] = C_L,
    ['v'] = C_L, ['w'] = C_L, ['x'] = C_L, ['y'] = C_L, ['z'] = C_L,
};
/* clang-format on */

/* End of the run of class cls starting at i, or 0 when it reaches a non-ASCII byte (whose
 * class the table does not know, so the run's end is undecided). */
static inline size_t run_end(const unsigned char *s, size_t n, size_t i, int cls)
{
    while (i < n && s[i] < 0x80 && ascii_class[s[i]] == cls) i++;
    return i < n && s[i] >= 0x80 ? 0 : i;
}

/* The end of the regex match starting at i, decided from ASCII characters alone, or 0 when a
 * non-ASCII character could change it. Mirrors the alternatives in order:
 *   's|'t|'re|'ve|'m|'ll|'d   | ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+
 * A whitespace run [i, j) followed by a non-space: \s+(?!\S) backtracks to [i, j-1) when that is
 * not empty, else \s+ takes the single character; at the end of the text it takes all. A space
 * followed by a letter, digit or other character is taken by the earlier alternatives. */
static size_t ascii_pretoken(const unsigned char *s, size_t n, size_t i)
{
    unsigned c = s[i];
    if (c >= 0x80) return 0;
    switch (ascii_class[c]) {
    case C_L:
        return run_end(s, n, i + 1, C_L);
    case C_N:
        return run_end(s, n, i + 1, C_N);
    case C_O:
        if (c == '\'' && i + 1 < n) {
            unsigned d = s[i + 1];
            if (d == 's' || d == 't' || d == 'm' || d == 'd') return i + 2;
            if (i + 2 < n &&
                ((s[i + 2] == 'e' && (d == 'r' || d == 'v')) || (d == 'l' && s[i + 2] == 'l')))
                return i + 3;
        }
        return run_end(s, n, i + 1, C_O);
    default: /* C_S */
        if (c == ' ' && i + 1 < n) {
            unsigned d = s[i + 1];
            if (d >= 0x80) return 0;
            if (ascii_class[d] != C_S) return run_end(s, n, i + 2, ascii_class[d]);
        }
        size_t j = run_end(s, n, i + 1, C_S);
        if (j == 0) return 0;
        if (j == n || j - i == 1) return j;
        return j - 1;
    }
}

/* The regex match starting at i: its end, or ERR_FAIL. */
static long regex_pretoken(bpe_enc_t *s, const char *text, size_t n, size_t i, err_t *e)
{
    const bpe_t *b = s->bpe;
    int rc = b->jit
                 ? pcre2_jit_match(b->re, (PCRE2_SPTR)text, n, i, PCRE2_NO_UTF_CHECK, s->md, NULL)
                 : pcre2_match(b->re, (PCRE2_SPTR)text, n, i, PCRE2_NO_UTF_CHECK, s->md, NULL);
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        return err_set(e, "pre-tokenizer at byte %zu: %s", i, (char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
    ASSERT(ov[0] == i && ov[1] > i);
    return (long)ov[1];
}

/* ---- encode / decode ---------------------------------------------------------------------- */

int bpe_encode(bpe_enc_t *s, const char *text, size_t len, struct bpe_ids *out, err_t *e)
{
    size_t bad = utf8_validate(text, len);
    if (bad < len) return err_set(e, "invalid UTF-8 at byte offset %zu", bad);
    const unsigned char *u = (const unsigned char *)text;
    const bpe_t *b = s->bpe;
    size_t n0 = out->n;
    for (size_t i = 0; i < len;) {
        size_t end = s->reference ? 0 : ascii_pretoken(u, len, i);
        if (!end) {
            long r = regex_pretoken(s, text, len, i, e);
            if (r < 0) goto fail;
            end = (size_t)r;
        }
        if (end - i == 1) {
            if (out->n == out->cap && grow(&out->v, &out->cap, out->n + 1, sizeof *out->v) < 0)
                goto oom;
            out->v[out->n++] = b->v.byte_id[u[i]];
        } else if ((s->reference ? reference_word(s, u + i, end - i, out)
                                 : encode_word(s, u + i, end - i, len - i, out)) < 0) {
            goto oom;
        }
        i = end;
    }
    return 0;
oom:
    err_set(e, "out of memory encoding %zu bytes", len);
fail:
    out->n = n0;
    return ERR_FAIL;
}

int bpe_decode(const bpe_t *b, const uint32_t *ids, size_t n, struct bpe_bytes *out, err_t *e)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= b->v.n_vocab)
            return err_set(e, "token id %u at position %zu is out of range (vocabulary of %u)",
                           ids[i], i, b->v.n_vocab);
        total += b->v.tok_off[ids[i] + 1] - b->v.tok_off[ids[i]];
    }
    if (grow(&out->v, &out->cap, out->n + total + 1, 1) < 0)
        return err_set(e, "out of memory decoding %zu tokens", n);
    char *o = out->v + out->n;
    for (size_t i = 0; i < n; i++) {
        uint32_t a = b->v.tok_off[ids[i]], k = b->v.tok_off[ids[i] + 1] - a;
        memcpy(o, b->v.blob + a, k);
        o += k;
    }
    *o = '\0';
    out->n += total;
    return 0;
}

void bpe_ids_free(struct bpe_ids *ids)
{
    if (!ids) return;
    free(ids->v);
    *ids = (struct bpe_ids){0};
}

void bpe_bytes_free(struct bpe_bytes *bytes)
{
    if (!bytes) return;
    free(bytes->v);
    *bytes = (struct bpe_bytes){0};
}

int bpe_ids_append(struct bpe_ids *out, const uint32_t *ids, size_t n, err_t *e)
{
    return emit(out, ids, n) < 0 ? err_set(e, "out of memory") : 0;
}

/* A cut before text[p] is safe when text[p-1] is '\n' between two printable ASCII characters:
 * that newline is then a pre-token of its own in every context (the whitespace alternatives stop
 * at the non-space after it, no other alternative takes a newline, and the pre-token before it
 * ends at it), so the pieces' pre-tokens are exactly the whole text's. */
static int safe_cut(const char *text, size_t len, size_t p)
{
    if (p < 2 || p >= len) return 0;
    unsigned char before = (unsigned char)text[p - 2], after = (unsigned char)text[p];
    return text[p - 1] == '\n' && before > 0x20 && before < 0x7f && after > 0x20 && after < 0x7f;
}

size_t bpe_cut_points(const char *text, size_t len, size_t parts, size_t *cuts)
{
    size_t n = 0;
    for (size_t k = 1; k < parts; k++) {
        size_t p = len / parts * k;
        if (n && p <= cuts[n - 1]) p = cuts[n - 1] + 1;
        while (p < len && !safe_cut(text, len, p)) {
            const char *nl = memchr(text + p, '\n', len - p);
            p = nl ? (size_t)(nl - text) + 1 : len;
        }
        if (p >= len) break;
        cuts[n++] = p;
    }
    return n;
}
