/* bpevocab: GPT-2 vocabulary files to lookup tables (see bpevocab.h).
 * encoder.json/vocab.json map byte-level-unicode token strings to ids; vocab.bpe/merges.txt list
 * the merges by rank. The byte-level unicode (GPT-2's bytes_to_unicode) is undone here, so every
 * table holds raw bytes. Both lookups are open-addressing hash tables at most half full. */
#include "bpevocab.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>

#include "utf8.h"

int32_t bpevocab_token_id(const struct bpevocab *v, const char *s, size_t n)
{
    for (uint32_t i = (uint32_t)bpevocab_hash((const unsigned char *)s, n) & v->vocab_mask;;
         i = (i + 1) & v->vocab_mask) {
        uint32_t slot = v->vocab_slots[i];
        if (!slot) return -1;
        uint32_t id = slot - 1, off = v->tok_off[id];
        if (v->tok_off[id + 1] - off == n && memcmp(v->blob + off, s, n) == 0) return (int32_t)id;
    }
}

/* ---- loading ------------------------------------------------------------------------------ */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes
 * are U+0100.. in byte order. Fills the inverse: code point (< 324) -> byte, -1 if none. */
static void byte_level_inverse(int16_t inv[324])
{
    for (int i = 0; i < 324; i++) inv[i] = -1;
    int k = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        inv[printable ? b : 256 + k++] = (int16_t)b;
    }
}

/* Converts byte-level unicode s[0..n) (UTF-8) to raw bytes in out (at most n bytes).
 * @return the byte count, or -1 when s holds a character outside the byte-level alphabet. */
static long byte_level_decode(const int16_t inv[324], const char *s, size_t n, char *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        int k = utf8_seq_len(s + i, n - i);
        if (k < 0) return -1;
        const unsigned char *p = (const unsigned char *)s + i;
        uint32_t cp = k == 1   ? p[0]
                      : k == 2 ? (uint32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F)
                               : 0xFFFF;
        if (cp >= 324 || inv[cp] < 0) return -1;
        out[o++] = (char)inv[cp];
        i += (size_t)k;
    }
    return (long)o;
}

static char *read_file(const char *path, size_t *len, err_t *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) return err_set_errno(e, "%s", path), NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            cap = cap ? cap * 2 : 1 << 20;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                err_set(e, "%s: out of memory", path);
                goto fail;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        err_set(e, "%s: read error", path);
        goto fail;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
fail:
    fclose(f);
    free(buf);
    return NULL;
}

static int file_exists(const char *path) { return access(path, R_OK) == 0; }

static int load_vocab(struct bpevocab *v, const char *path, const int16_t inv[324], err_t *e)
{
    /* one read, then parse from memory: json_load_file reads a character at a time */
    size_t bytes;
    char *text = read_file(path, &bytes, e);
    if (!text) return ERR_FAIL;
    json_error_t je;
    json_t *root = json_loadb(text, bytes, 0, &je);
    free(text);
    if (!root) return err_set(e, "%s:%d: %s", path, je.line, je.text);
    int rc = ERR_FAIL;
    if (!json_is_object(root)) {
        err_set(e, "%s: not a JSON object", path);
        goto out;
    }
    size_t n = json_object_size(root);
    if (n < 256 || n > (1u << 24)) {
        err_set(e, "%s: %zu tokens is not a vocabulary", path, n);
        goto out;
    }
    v->n_vocab = (uint32_t)n;
    uint32_t *len = calloc(n, sizeof *len);
    v->tok_off = calloc(n + 1, sizeof *v->tok_off);
    size_t blob_cap = 0;
    const char *key;
    json_t *val;
    json_object_foreach (root, key, val) blob_cap += strlen(key);
    v->blob = malloc(blob_cap + 1);
    char *tmp = malloc(blob_cap + 1);
    uint32_t *order = calloc(n, sizeof *order); /* id -> tmp offset */
    if (!len || !v->tok_off || !v->blob || !tmp || !order) {
        err_set(e, "%s: out of memory", path);
        goto out2;
    }
    size_t t = 0;
    json_object_foreach (root, key, val) {
        json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
        if (id < 0 || (size_t)id >= n) {
            err_set(e, "%s: token \"%.100s\": id must be an integer in 0..%zu", path, key, n - 1);
            goto out2;
        }
        if (len[id] || order[id]) {
            err_set(e, "%s: id %lld is given to two tokens", path, (long long)id);
            goto out2;
        }
        long k = byte_level_decode(inv, key, strlen(key), tmp + t);
        if (k <= 0) {
            err_set(e, "%s: token \"%.100s\" is not byte-level unicode", path, key);
            goto out2;
        }
        order[id] = (uint32_t)t + 1;
        len[id] = (uint32_t)k;
        t += (size_t)k;
    }
    uint32_t off = 0;
    for (size_t i = 0; i < n; i++) {
        v->tok_off[i] = off;
        memcpy(v->blob + off, tmp + order[i] - 1, len[i]);
        off += len[i];
    }
    v->tok_off[n] = off;
    uint32_t slots = 1;
    while (slots < 2 * n) slots <<= 1;
    v->vocab_mask = slots - 1;
    v->vocab_slots = calloc(slots, sizeof *v->vocab_slots);
    if (!v->vocab_slots) {
        err_set(e, "%s: out of memory", path);
        goto out2;
    }
    for (uint32_t id = 0; id < n; id++) {
        const char *s = v->blob + v->tok_off[id];
        size_t k = v->tok_off[id + 1] - v->tok_off[id];
        if (bpevocab_token_id(v, s, k) >= 0) {
            err_set(e, "%s: two tokens have the same bytes (id %u)", path, id);
            goto out2;
        }
        uint32_t i = (uint32_t)bpevocab_hash((const unsigned char *)s, k) & v->vocab_mask;
        while (v->vocab_slots[i]) i = (i + 1) & v->vocab_mask;
        v->vocab_slots[i] = id + 1;
    }
    for (int c = 0; c < 256; c++) {
        char ch = (char)c;
        int32_t id = bpevocab_token_id(v, &ch, 1);
        if (id < 0) {
            err_set(e, "%s: no token for byte 0x%02x", path, c);
            goto out2;
        }
        v->byte_id[c] = (uint32_t)id;
    }
    rc = 0;
out2:
    free(len);
    free(tmp);
    free(order);
out:
    json_decref(root);
    return rc;
}

/* Parses merges: an optional "#version" first line, then "A B" per line (byte-level unicode).
 * A pair listed twice keeps its later rank, as encoder.py's dict does. */
static int load_merges(struct bpevocab *v, const char *path, const int16_t inv[324], err_t *e)
{
    size_t len;
    char *text = read_file(path, &len, e);
    if (!text) return ERR_FAIL;
    int rc = ERR_FAIL;
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    v->merges = malloc(lines * sizeof *v->merges);
    uint32_t slots = 1;
    while (slots < 2 * lines) slots <<= 1;
    v->merge_mask = slots - 1;
    v->merge_keys = malloc(slots * sizeof *v->merge_keys);
    v->merge_rank = malloc(slots * sizeof *v->merge_rank);
    char *buf = malloc(len + 1);
    if (!v->merges || !v->merge_keys || !v->merge_rank || !buf) {
        err_set(e, "%s: out of memory", path);
        goto out;
    }
    memset(v->merge_keys, 0xFF, slots * sizeof *v->merge_keys);
    size_t lineno = 0;
    for (char *p = text, *end = text + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        lineno++;
        char *line = p;
        p = nl ? nl + 1 : end;
        if (le > line && le[-1] == '\r') le--;
        if (le == line) continue;
        if (lineno == 1 && le - line >= 8 && memcmp(line, "#version", 8) == 0) continue;
        char *sp = memchr(line, ' ', (size_t)(le - line));
        if (!sp || sp == line || sp + 1 == le || memchr(sp + 1, ' ', (size_t)(le - sp - 1))) {
            err_set(e, "%s:%zu: expected two tokens separated by one space", path, lineno);
            goto out;
        }
        long ka = byte_level_decode(inv, line, (size_t)(sp - line), buf);
        long kb = ka > 0 ? byte_level_decode(inv, sp + 1, (size_t)(le - sp - 1), buf + ka) : -1;
        if (kb <= 0) {
            err_set(e, "%s:%zu: not byte-level unicode", path, lineno);
            goto out;
        }
        int32_t ia = bpevocab_token_id(v, buf, (size_t)ka),
                ib = bpevocab_token_id(v, buf + ka, (size_t)kb);
        int32_t io = bpevocab_token_id(v, buf, (size_t)(ka + kb));
        if (ia < 0 || ib < 0 || io < 0) {
            err_set(e, "%s:%zu: %s is not in the vocabulary", path, lineno,
                    ia < 0   ? "the first token"
                    : ib < 0 ? "the second token"
                             : "the merged token");
            goto out;
        }
        uint32_t r = v->n_merges++;
        v->merges[r] = (struct bpevocab_merge){(uint32_t)ia, (uint32_t)ib, (uint32_t)io};
        uint64_t key = (uint64_t)ia << 32 | (uint32_t)ib;
        uint32_t i = (uint32_t)bpevocab_mix64(key) & v->merge_mask;
        while (v->merge_keys[i] != UINT64_MAX && v->merge_keys[i] != key)
            i = (i + 1) & v->merge_mask;
        v->merge_keys[i] = key;
        v->merge_rank[i] = r;
    }
    if (v->n_merges == 0) {
        err_set(e, "%s: no merges", path);
        goto out;
    }
    rc = 0;
out:
    free(buf);
    free(text);
    return rc;
}

int bpevocab_load(struct bpevocab *v, const char *dir, err_t *e)
{
    size_t dl = strlen(dir);
    char *vocab = malloc(dl + 16), *merges = malloc(dl + 16);
    int rc = ERR_FAIL;
    if (!vocab || !merges) {
        err_set(e, "out of memory");
        goto out;
    }
    sprintf(vocab, "%s/encoder.json", dir);
    sprintf(merges, "%s/vocab.bpe", dir);
    if (!file_exists(vocab)) {
        sprintf(vocab, "%s/vocab.json", dir);
        sprintf(merges, "%s/merges.txt", dir);
        if (!file_exists(vocab)) {
            err_set(e,
                    "%s: no GPT-2 vocabulary here (encoder.json + vocab.bpe, or vocab.json + "
                    "merges.txt)",
                    dir);
            goto out;
        }
    }
    int16_t inv[324];
    byte_level_inverse(inv);
    rc = load_vocab(v, vocab, inv, e) < 0 || load_merges(v, merges, inv, e) < 0 ? ERR_FAIL : 0;
out:
    free(vocab);
    free(merges);
    if (rc < 0) bpevocab_free(v);
    return rc;
}

void bpevocab_free(struct bpevocab *v)
{
    if (!v) return;
    free(v->tok_off);
    free(v->blob);
    free(v->vocab_slots);
    free(v->merges);
    free(v->merge_keys);
    free(v->merge_rank);
    memset(v, 0, sizeof *v);
}

/* ---- the default location ----------------------------------------------------------------- */

const char *bpevocab_default_dir(char *buf, size_t cap, bool *from_env, err_t *e)
{
    const char *env = getenv("DLMKIT_VOCAB");
    *from_env = env && *env;
    if (*from_env) return env;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return err_set_errno(e, "GPT-2 vocabulary: $DLMKIT_VOCAB is unset and "
                                "/proc/self/exe cannot be read"),
               NULL;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    static const char *const rel[] = {"data/gpt2", "share/dlmkit/gpt2"};
    char cand[2][PATH_MAX + 32], probe[PATH_MAX + 64];
    for (int i = 0; i < 2; i++) {
        if (snprintf(cand[i], sizeof cand[i], "%s/../%s", exe, rel[i]) >= (int)sizeof cand[i])
            return err_set(e, "GPT-2 vocabulary: path too long: %.200s", exe), NULL;
        int here = snprintf(probe, sizeof probe, "%s/encoder.json", cand[i]) < (int)sizeof probe &&
                   file_exists(probe);
        if (!here)
            here = snprintf(probe, sizeof probe, "%s/vocab.json", cand[i]) < (int)sizeof probe &&
                   file_exists(probe);
        if (here) {
            if (snprintf(buf, cap, "%s", cand[i]) >= (int)cap)
                return err_set(e, "GPT-2 vocabulary: path too long: %.200s", cand[i]), NULL;
            return buf;
        }
    }
    err_set(e,
            "GPT-2 vocabulary not found: $DLMKIT_VOCAB is unset and neither %.200s nor %.200s "
            "holds encoder.json + vocab.bpe; hint: run `make data` (or set DLMKIT_VOCAB)",
            cand[0], cand[1]);
    return NULL;
}
