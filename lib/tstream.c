/* tstream: msgpack token streams (see tstream.h; the format is docs/stream.md).
 *
 * Encoding goes through msgpack-c's packer. Decoding goes through mpack (mpack.h), a bounded
 * decoder: a value is first scanned until it is complete (chunk by chunk, never reading past it),
 * then parsed in place; tokens go straight into the record's reused uint32 array. The JSON view
 * of a record is in tsjson.c. */
#include "tstream.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "mpack.h"

#define READ_MAX ((size_t)1 << 20) /* largest single fread */
#define BUF_INIT ((size_t)1 << 16)

_Static_assert(TS_MAX_DEPTH == MPACK_MAX_DEPTH, "mpack_value_size() must check TS_MAX_DEPTH");

/* Grows an array of elem-sized items to hold need; returns the (maybe moved) array, NULL when out
 * of memory (p is then untouched). */
static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need == 0) need = 1;
    if (p && need <= *cap) return p;
    size_t n = *cap > 16 ? *cap : 16;
    while (n < need) n = n > SIZE_MAX / 2 ? need : n * 2;
    if (n > SIZE_MAX / elem) return NULL;
    void *q = realloc(p, n * elem);
    if (q) *cap = n;
    return q;
}

/* A growable byte array reached through pointers, so msgpack-c can pack into a record's fields. */
typedef struct sink {
    uint8_t **p;
    size_t *len, *cap;
} sink_t;

static int sink_write(void *data, const char *src, size_t n)
{
    sink_t *s = data;
    uint8_t *q = grow(*s->p, s->cap, *s->len + n, 1);
    if (!q) return -1;
    *s->p = q;
    memcpy(q + *s->len, src, n);
    *s->len += n;
    return 0;
}

/* Copies s into dst for a message: printable ASCII kept, other bytes shown as '?', cut at 40. */
static const char *show(char *dst, size_t cap, const uint8_t *s, size_t n)
{
    size_t k = 0, lim = n > 40 ? 40 : n;
    for (; k < lim && k + 4 < cap; k++) dst[k] = (s[k] >= 0x20 && s[k] < 0x7f) ? (char)s[k] : '?';
    if (lim < n) memcpy(dst + k, "...", 3), k += 3;
    dst[k] = '\0';
    return dst;
}

/* ---- header ---------------------------------------------------------------------------------- */

void ts_header_free(ts_header *h)
{
    if (!h) return;
    free(h->tokenizer);
    free(h->prov);
    free(h->extra);
    memset(h, 0, sizeof *h);
}

static int check_header_facts(const char *tokenizer, uint64_t vocab_size, int64_t eot, err_t *e)
{
    if (!tokenizer || !*tokenizer) return err_set(e, "header: tokenizer name is empty");
    if (vocab_size == 0 || vocab_size > ((uint64_t)1 << 32))
        return err_set(e, "header: vocab_size %" PRIu64 " is out of range (1..2^32)", vocab_size);
    if (eot < -1 || (eot >= 0 && (uint64_t)eot >= vocab_size))
        return err_set(e, "header: eot %" PRId64 " is out of range (-1..%" PRIu64 ")", eot,
                       vocab_size - 1);
    return 0;
}

int ts_header_init(ts_header *h, const char *tokenizer, uint64_t vocab_size, int64_t eot, err_t *e)
{
    ts_header_free(h);
    if (check_header_facts(tokenizer, vocab_size, eot, e) < 0) return ERR_FAIL;
    if (!(h->tokenizer = strdup(tokenizer))) return err_set(e, "out of memory");
    h->vocab_size = vocab_size;
    h->eot = eot;
    return 0;
}

static int copy_bytes(uint8_t **dst, size_t *dst_len, const uint8_t *src, size_t n)
{
    *dst = NULL;
    *dst_len = 0;
    if (n == 0) return 0;
    if (!(*dst = malloc(n))) return -1;
    memcpy(*dst, src, n);
    *dst_len = n;
    return 0;
}

int ts_header_copy(ts_header *dst, const ts_header *src, err_t *e)
{
    if (dst == src) return 0;
    if (ts_header_init(dst, src->tokenizer, src->vocab_size, src->eot, e) < 0) return ERR_FAIL;
    if (copy_bytes(&dst->prov, &dst->prov_len, src->prov, src->prov_len) ||
        copy_bytes(&dst->extra, &dst->extra_len, src->extra, src->extra_len)) {
        ts_header_free(dst);
        return err_set(e, "out of memory");
    }
    dst->n_provenance = src->n_provenance;
    dst->n_extra = src->n_extra;
    return 0;
}

static int pack_cstr(msgpack_packer *pk, const char *s)
{
    if (!s) s = "";
    return msgpack_pack_str_with_body(pk, s, strlen(s));
}

int ts_header_add_provenance(ts_header *h, const char *tool, const char *version,
                             const char *commit, int argc, char *const argv[], uint64_t seed,
                             const char *device, err_t *e)
{
    size_t cap = h->prov_len, old = h->prov_len;
    sink_t s = {&h->prov, &h->prov_len, &cap};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &s, sink_write);
    int rc = msgpack_pack_map(&pk, 6);
    rc |= pack_cstr(&pk, "tool") | pack_cstr(&pk, tool);
    rc |= pack_cstr(&pk, "version") | pack_cstr(&pk, version);
    rc |= pack_cstr(&pk, "commit") | pack_cstr(&pk, commit);
    rc |= pack_cstr(&pk, "argv") | msgpack_pack_array(&pk, argc > 0 ? (size_t)argc : 0);
    for (int k = 0; k < argc; k++) rc |= pack_cstr(&pk, argv[k]);
    rc |= pack_cstr(&pk, "seed") | msgpack_pack_uint64(&pk, seed);
    rc |= pack_cstr(&pk, "device") | pack_cstr(&pk, device);
    if (rc) {
        h->prov_len = old;
        return err_set(e, "out of memory");
    }
    h->n_provenance++;
    return 0;
}

/* ---- reader ---------------------------------------------------------------------------------- */

typedef struct pair {
    const uint8_t *key; /* key bytes (a str) */
    size_t klen;
    size_t start, val, end; /* offsets in the map's bytes: key, value, end of value */
} pair_t;

struct ts_reader {
    FILE *fp; /* NULL for a memory reader */
    char *name;
    const uint8_t *data; /* the window: buf, or the caller's memory */
    uint8_t *buf;
    size_t cap, len, pos; /* window capacity and length; start of the next value */
    uint64_t base;        /* stream offset of data[0] */
    bool eof, at_end, failed;
    err_t err; /* the sticky error */
    struct mpack_scan scan;
    ts_header hdr, later;
    uint64_t n_records, last_id;
    pair_t *pairs;
    size_t pairs_cap, n_pairs;
    pair_t *sorted;
    size_t sorted_cap;
};

/* Sets the reader's error "NAME: byte AT: <message>"; returns ERR_FAIL. */
static int rd_fail(ts_reader_t *rd, uint64_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int rd_fail(ts_reader_t *rd, uint64_t at, const char *fmt, ...)
{
    char msg[sizeof rd->err.msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(&rd->err, "%s: byte %" PRIu64 ": %s", rd->name, at, msg);
}

/* Reads up to need bytes (at most READ_MAX, at least 1). @return 1 read some, 0 at end of input. */
static int fill(ts_reader_t *rd, uint64_t need)
{
    if (!rd->fp || rd->eof) return 0;
    size_t want = need > READ_MAX ? READ_MAX : need ? (size_t)need : 1;
    if (rd->cap - rd->len < want) {
        if (rd->pos > 0) {
            memmove(rd->buf, rd->buf + rd->pos, rd->len - rd->pos);
            rd->base += rd->pos;
            rd->len -= rd->pos;
            rd->pos = 0;
        }
        if (rd->cap - rd->len < want) {
            uint8_t *q = grow(rd->buf, &rd->cap, rd->len + want, 1);
            if (!q) return err_set(&rd->err, "%s: out of memory", rd->name);
            rd->buf = q;
            rd->data = q;
        }
    }
    size_t got = fread(rd->buf + rd->len, 1, want, rd->fp);
    rd->len += got;
    if (got < want) {
        if (ferror(rd->fp))
            return err_set_errno(&rd->err, "%s: read error at byte %" PRIu64, rd->name,
                                 rd->base + rd->len);
        rd->eof = true;
    }
    return got > 0;
}

/* Finds the next complete top-level value. @return 0 (it is at data + pos, *n bytes), ERR_EOF,
 * or ERR_FAIL. */
static int next_value(ts_reader_t *rd, size_t *n)
{
    mpack_scan_start(&rd->scan, TS_MAX_DEPTH);
    for (;;) {
        const uint8_t *p = rd->data + rd->pos;
        size_t avail = rd->len - rd->pos;
        uint64_t at = rd->base + rd->pos, need = 1;
        if (avail > 0 && rd->scan.off == 0 && p[0] != 0xc1 && mpack_type_of_byte(p[0]) != MPACK_MAP)
            return rd_fail(rd, at,
                           "top-level value is not a map (got %s); a token stream"
                           " is a sequence of msgpack maps",
                           mpack_type_name(mpack_type_of_byte(p[0])));
        int st = mpack_scan_step(&rd->scan, p, avail, &need);
        if (st == MPACK_SCAN_DONE) return *n = rd->scan.off, 0;
        if (st == MPACK_SCAN_BAD)
            return rd_fail(rd, at + rd->scan.off, "malformed msgpack (invalid byte 0xc1)");
        if (st == MPACK_SCAN_DEEP)
            return rd_fail(rd, at + rd->scan.off, "value nested deeper than %d levels",
                           TS_MAX_DEPTH);
        int rc = fill(rd, need);
        if (rc < 0) return rc;
        if (rc == 0) {
            if (avail == 0) return ERR_EOF;
            char after[64] = "";
            if (rd->n_records)
                snprintf(after, sizeof after, " (after record %" PRIu64 ")", rd->last_id);
            return rd_fail(rd, at,
                           "truncated value%s: the stream ends at byte %" PRIu64
                           " before the value is complete",
                           after, rd->base + rd->len);
        }
    }
}

static int cmp_pair(const void *a, const void *b)
{
    const pair_t *x = a, *y = b;
    if (x->klen != y->klen) return x->klen < y->klen ? -1 : 1;
    return memcmp(x->key, y->key, x->klen);
}

/* Splits the complete map v into rd->pairs. @return -1, or the index of the first key that is not
 * a str (collection stops there; *bad_type is its type). */
static long collect_pairs(ts_reader_t *rd, const uint8_t *v, size_t vlen, enum mpack_type *bad_type)
{
    struct mpack_item it = {0};
    uint64_t want, off = mpack_decode(v, vlen, &it, &want);
    uint64_t n = it.u;
    rd->n_pairs = 0;
    pair_t *q = grow(rd->pairs, &rd->pairs_cap, (size_t)n, sizeof *q);
    if (!q) return -2;
    rd->pairs = q;
    for (uint64_t k = 0; k < n; k++) {
        pair_t *pr = &rd->pairs[k];
        uint64_t ks = mpack_decode(v + off, vlen - off, &it, &want);
        if (it.type != MPACK_STR) return *bad_type = it.type, (long)k;
        pr->key = it.ptr;
        pr->klen = it.u;
        pr->start = off;
        pr->val = off + ks;
        pr->end = pr->val + mpack_value_size(v + pr->val, vlen - pr->val);
        off = pr->end;
        rd->n_pairs++;
    }
    return -1;
}

static pair_t *find_pair(ts_reader_t *rd, const char *key)
{
    size_t kl = strlen(key);
    for (size_t k = 0; k < rd->n_pairs; k++)
        if (rd->pairs[k].klen == kl && memcmp(rd->pairs[k].key, key, kl) == 0) return &rd->pairs[k];
    return NULL;
}

/* @return the first duplicated key among the pairs, or NULL (-1 in *oom when out of memory). */
static const pair_t *find_duplicate(ts_reader_t *rd, int *oom)
{
    *oom = 0;
    if (rd->n_pairs < 2) return NULL;
    pair_t *s = grow(rd->sorted, &rd->sorted_cap, rd->n_pairs, sizeof *s);
    if (!s) return *oom = 1, NULL;
    rd->sorted = s;
    memcpy(s, rd->pairs, rd->n_pairs * sizeof *s);
    qsort(s, rd->n_pairs, sizeof *s, cmp_pair);
    for (size_t k = 1; k < rd->n_pairs; k++)
        if (cmp_pair(&s[k - 1], &s[k]) == 0) return &s[k];
    return NULL;
}

static struct mpack_item item_at(const uint8_t *v, size_t vlen, const pair_t *pr)
{
    struct mpack_item it = {0};
    uint64_t want;
    mpack_decode(v + pr->val, vlen - pr->val, &it, &want);
    return it;
}

#define HINT_NOT_STREAM                                                                            \
    "\nhint: this is not a dlmkit token stream; token streams are written by "                     \
    "dlmkit tools such as tokenize"

/* Parses the header map v (pairs already collected) into h. */
static int parse_header(ts_reader_t *rd, const uint8_t *v, size_t vlen, uint64_t at, ts_header *h)
{
    err_t *e = &rd->err;
    char a[48];
    const char *nm = rd->name;
    int oom;
    const pair_t *dup = find_duplicate(rd, &oom), *pr;
    if (oom) return err_set(e, "%s: out of memory", nm);
    if (dup)
        return rd_fail(rd, at, "header: duplicate key \"%s\"",
                       show(a, sizeof a, dup->key, dup->klen));
    struct mpack_item it = item_at(v, vlen, find_pair(rd, "magic"));
    if (it.type != MPACK_STR || it.u != strlen(TS_MAGIC) || memcmp(it.ptr, TS_MAGIC, it.u) != 0)
        return rd_fail(rd, at, "bad magic \"%s\" (expected \"%s\")" HINT_NOT_STREAM,
                       it.type == MPACK_STR ? show(a, sizeof a, it.ptr, it.u)
                                            : mpack_type_name(it.type),
                       TS_MAGIC);
    static const char *const need[] = {"format_version", "kind", "tokenizer",
                                       "vocab_size",     "eot",  "provenance"};
    for (size_t k = 0; k < sizeof need / sizeof *need; k++)
        if (!find_pair(rd, need[k])) return rd_fail(rd, at, "header has no \"%s\" field", need[k]);
    it = item_at(v, vlen, find_pair(rd, "format_version"));
    if (it.type != MPACK_UINT || it.u != TS_FORMAT_VERSION) {
        if (it.type == MPACK_UINT) snprintf(a, sizeof a, "%" PRIu64, it.u);
        return rd_fail(rd, at,
                       "unsupported format_version %s (this dlmkit reads version %d)"
                       "\nhint: regenerate the stream with this dlmkit, or read it with "
                       "the dlmkit version that wrote it",
                       it.type == MPACK_UINT ? a : mpack_type_name(it.type), TS_FORMAT_VERSION);
    }
    it = item_at(v, vlen, find_pair(rd, "kind"));
    if (it.type != MPACK_STR || it.u != strlen(TS_KIND) || memcmp(it.ptr, TS_KIND, it.u) != 0)
        return rd_fail(rd, at, "unsupported kind \"%s\" (expected \"%s\")",
                       it.type == MPACK_STR ? show(a, sizeof a, it.ptr, it.u)
                                            : mpack_type_name(it.type),
                       TS_KIND);
    struct mpack_item tok = item_at(v, vlen, find_pair(rd, "tokenizer"));
    if (tok.type != MPACK_STR || tok.u == 0 || memchr(tok.ptr, 0, tok.u))
        return rd_fail(rd, at, "header: tokenizer is not a non-empty string");
    struct mpack_item vs = item_at(v, vlen, find_pair(rd, "vocab_size"));
    if (vs.type != MPACK_UINT || vs.u == 0 || vs.u > ((uint64_t)1 << 32))
        return rd_fail(rd, at, "header: vocab_size is not an integer in 1..2^32");
    struct mpack_item eot = item_at(v, vlen, find_pair(rd, "eot"));
    if (!((eot.type == MPACK_UINT && eot.u < vs.u) || (eot.type == MPACK_INT && eot.i == -1)))
        return rd_fail(rd, at, "header: eot is not -1 or a token id below vocab_size %" PRIu64,
                       vs.u);
    pr = find_pair(rd, "provenance");
    struct mpack_item pv = item_at(v, vlen, pr);
    if (pv.type != MPACK_ARRAY)
        return rd_fail(rd, at, "header: provenance is not an array (got %s)",
                       mpack_type_name(pv.type));
    uint64_t want, off = pr->val + mpack_decode(v + pr->val, vlen - pr->val, &pv, &want);
    size_t prov_start = off;
    for (uint64_t k = 0; k < pv.u; k++) {
        if (mpack_type_of_byte(v[off]) != MPACK_MAP)
            return rd_fail(rd, at, "header: provenance entry %" PRIu64 " is not a map", k);
        off += mpack_value_size(v + off, vlen - off);
    }

    ts_header_free(h);
    h->vocab_size = vs.u;
    h->eot = eot.type == MPACK_INT ? -1 : (int64_t)eot.u;
    h->n_provenance = pv.u;
    size_t xcap = 0;
    sink_t xs = {&h->extra, &h->extra_len, &xcap};
    int rc = (h->tokenizer = strndup((const char *)tok.ptr, tok.u)) ? 0 : -1;
    rc |= copy_bytes(&h->prov, &h->prov_len, v + prov_start, off - prov_start);
    static const char *const known[] = {
        "magic", "format_version", "kind", "tokenizer", "vocab_size", "eot", "provenance"};
    for (size_t k = 0; k < rd->n_pairs && !rc; k++) {
        bool is_known = false;
        for (size_t j = 0; j < sizeof known / sizeof *known; j++)
            is_known |= rd->pairs[k].klen == strlen(known[j]) &&
                        memcmp(rd->pairs[k].key, known[j], rd->pairs[k].klen) == 0;
        if (is_known) continue;
        rc |= sink_write(&xs, (const char *)v + rd->pairs[k].start,
                         rd->pairs[k].end - rd->pairs[k].start);
        h->n_extra++;
    }
    if (rc) return err_set(e, "%s: out of memory", nm);
    return 0;
}

/* Parses the record map v (pairs already collected) into r. */
static int parse_record(ts_reader_t *rd, const uint8_t *v, size_t vlen, uint64_t at, long bad_key,
                        enum mpack_type bad_type, ts_record *r)
{
    err_t *e = &rd->err;
    const char *nm = rd->name;
    char who[48] = "record", a[48];
    const pair_t *idp = find_pair(rd, "id"), *tp = find_pair(rd, "tokens");
    if (idp) {
        struct mpack_item it = item_at(v, vlen, idp);
        if (it.type == MPACK_INT) return rd_fail(rd, at, "record id %" PRId64 " is negative", it.i);
        if (it.type != MPACK_UINT)
            return rd_fail(rd, at, "record id is not a non-negative integer (got %s)",
                           mpack_type_name(it.type));
        r->id = it.u;
        snprintf(who, sizeof who, "record %" PRIu64, it.u);
    }
    if (bad_key >= 0)
        return rd_fail(rd, at, "%s: key %ld is not a string (got %s)", who, bad_key,
                       mpack_type_name(bad_type));
    if (!idp) return rd_fail(rd, at, "record has no \"id\" field");
    int oom;
    const pair_t *dup = find_duplicate(rd, &oom);
    if (oom) return err_set(e, "%s: out of memory", nm);
    if (dup)
        return rd_fail(rd, at, "%s: duplicate key \"%s\"", who,
                       show(a, sizeof a, dup->key, dup->klen));
    if (!tp) return rd_fail(rd, at, "%s has no \"tokens\" field", who);

    struct mpack_item it = {0};
    uint64_t want, off = tp->val + mpack_decode(v + tp->val, vlen - tp->val, &it, &want);
    if (it.type != MPACK_ARRAY)
        return rd_fail(rd, at, "%s: tokens is not an array (got %s)", who,
                       mpack_type_name(it.type));
    if (!ts_record_resize(r, (size_t)it.u, e)) return ERR_FAIL;
    const uint64_t vocab = rd->hdr.vocab_size;
    uint32_t *t = r->tokens;
    for (size_t k = 0; k < r->n_tokens; k++) {
        uint64_t x;
        if (v[off] < 0x80) {
            x = v[off++];
        } else {
            off += mpack_decode(v + off, vlen - off, &it, &want);
            if (it.type == MPACK_INT)
                return rd_fail(rd, at, "%s: token %" PRId64 " at position %zu is negative", who,
                               it.i, k);
            if (it.type != MPACK_UINT)
                return rd_fail(rd, at,
                               "%s: tokens is not an array of non-negative integers "
                               "(position %zu holds a %s)",
                               who, k, mpack_type_name(it.type));
            x = it.u;
        }
        if (x >= vocab)
            return rd_fail(rd, at,
                           "%s: token %" PRIu64 " at position %zu is out of range "
                           "(vocab_size %" PRIu64 ")",
                           who, x, k, vocab);
        t[k] = (uint32_t)x;
    }
    r->fields_len = 0;
    r->n_fields = 0;
    sink_t fs = {&r->fields, &r->fields_len, &r->fields_cap};
    for (size_t k = 0; k < rd->n_pairs; k++) {
        const pair_t *pr = &rd->pairs[k];
        if (pr == idp || pr == tp) continue;
        if (sink_write(&fs, (const char *)v + pr->start, pr->end - pr->start))
            return err_set(e, "%s: out of memory", nm);
        r->n_fields++;
    }
    return 0;
}

/* Reads values until a record (r != NULL) or the first header (r == NULL) has been parsed. */
static int read_value(ts_reader_t *rd, ts_record *r)
{
    for (;;) {
        size_t n = 0;
        int rc = next_value(rd, &n);
        if (rc == ERR_EOF && !r) return err_set(&rd->err, "%s: empty stream: no header", rd->name);
        if (rc < 0) return rc;
        const uint8_t *v = rd->data + rd->pos;
        uint64_t at = rd->base + rd->pos;
        rd->pos += n;
        enum mpack_type bad_type = MPACK_NIL;
        long bad = collect_pairs(rd, v, n, &bad_type);
        if (bad == -2) return err_set(&rd->err, "%s: out of memory", rd->name);
        bool is_header = find_pair(rd, "magic") != NULL;
        if (is_header && bad >= 0)
            return rd_fail(rd, at, "header: key %ld is not a string (got %s)", bad,
                           mpack_type_name(bad_type));
        if (!r) {
            if (!is_header)
                return rd_fail(rd, at,
                               "stream does not start with a header (the first map"
                               " has no \"magic\" key)" HINT_NOT_STREAM);
            return parse_header(rd, v, n, at, &rd->hdr);
        }
        if (!is_header) return parse_record(rd, v, n, at, bad, bad_type, r);
        if (parse_header(rd, v, n, at, &rd->later) < 0) return ERR_FAIL;
        const ts_header *f = &rd->hdr, *l = &rd->later;
        char what[160] = "", a[48], b[48];
        if (strcmp(f->tokenizer, l->tokenizer) != 0)
            snprintf(what, sizeof what, "tokenizer \"%s\" vs \"%s\"",
                     show(a, sizeof a, (const uint8_t *)f->tokenizer, strlen(f->tokenizer)),
                     show(b, sizeof b, (const uint8_t *)l->tokenizer, strlen(l->tokenizer)));
        else if (f->vocab_size != l->vocab_size)
            snprintf(what, sizeof what, "vocab_size %" PRIu64 " vs %" PRIu64, f->vocab_size,
                     l->vocab_size);
        else if (f->eot != l->eot)
            snprintf(what, sizeof what, "eot %" PRId64 " vs %" PRId64, f->eot, l->eot);
        if (*what)
            return rd_fail(rd, at,
                           "header disagrees with the first header: %s (only streams with "
                           "the same tokenizer, vocab_size and eot can be concatenated)",
                           what);
    }
}

static ts_reader_t *reader_start(ts_reader_t *rd, const char *name, err_t *e)
{
    if (!rd || !(rd->name = strdup(name)) || (rd->fp && !rd->buf)) {
        err_set(e, "out of memory");
        ts_reader_free(rd);
        return NULL;
    }
    if (read_value(rd, NULL) < 0) {
        if (e) *e = rd->err;
        ts_reader_free(rd);
        return NULL;
    }
    return rd;
}

ts_reader_t *ts_reader_open(FILE *fp, const char *name, err_t *e)
{
    if (!fp) return err_set(e, "%s: no input", name ? name : "stream"), NULL;
    ts_reader_t *rd = calloc(1, sizeof *rd);
    if (rd) {
        rd->fp = fp;
        rd->data = rd->buf = malloc(BUF_INIT);
        rd->cap = rd->buf ? BUF_INIT : 0;
    }
    return reader_start(rd, name ? name : fp == stdin ? "stdin" : "stream", e);
}

ts_reader_t *ts_reader_open_mem(const void *data, size_t len, const char *name, err_t *e)
{
    ts_reader_t *rd = calloc(1, sizeof *rd);
    if (rd) {
        rd->data = data ? data : (const void *)"";
        rd->len = data ? len : 0;
        rd->eof = true;
    }
    return reader_start(rd, name ? name : "<memory>", e);
}

const ts_header *ts_reader_header(const ts_reader_t *rd) { return &rd->hdr; }

uint64_t ts_reader_offset(const ts_reader_t *rd) { return rd->base + rd->pos; }

int ts_read(ts_reader_t *rd, ts_record *r, err_t *e)
{
    if (rd->failed) return e ? (*e = rd->err, ERR_FAIL) : ERR_FAIL;
    if (rd->at_end) return ERR_EOF;
    int rc = read_value(rd, r);
    if (rc == ERR_EOF) {
        rd->at_end = true;
        return ERR_EOF;
    }
    if (rc < 0) {
        rd->failed = true;
        if (e) *e = rd->err;
        return ERR_FAIL;
    }
    rd->n_records++;
    rd->last_id = r->id;
    return 0;
}

void ts_reader_free(ts_reader_t *rd)
{
    if (!rd) return;
    free(rd->name);
    free(rd->buf);
    ts_header_free(&rd->hdr);
    ts_header_free(&rd->later);
    free(rd->pairs);
    free(rd->sorted);
    free(rd);
}

/* ---- writer ---------------------------------------------------------------------------------- */

struct ts_writer {
    FILE *fp;
    bool unbuffered, failed;
    int saved_errno;
    uint64_t vocab_size;
    uint8_t *buf; /* one packed value */
    size_t len, cap;
    sink_t sink;
    msgpack_packer pk;
};

static int writer_flush(ts_writer_t *w, err_t *e)
{
    if (fwrite(w->buf, 1, w->len, w->fp) != w->len || (w->unbuffered && fflush(w->fp) != 0)) {
        if (!w->failed) w->saved_errno = errno;
        w->failed = true;
        errno = w->saved_errno;
        return err_set_errno(e, "writing token stream failed");
    }
    w->len = 0;
    return 0;
}

ts_writer_t *ts_writer_open(FILE *fp, const ts_header *h, err_t *e)
{
    if (check_header_facts(h->tokenizer, h->vocab_size, h->eot, e) < 0) return NULL;
    ts_writer_t *w = calloc(1, sizeof *w);
    if (!w) return err_set(e, "out of memory"), NULL;
    w->fp = fp;
    w->vocab_size = h->vocab_size;
    w->sink = (sink_t){&w->buf, &w->len, &w->cap};
    msgpack_packer_init(&w->pk, &w->sink, sink_write);
    msgpack_packer *pk = &w->pk;
    int rc = msgpack_pack_map(pk, 7 + h->n_extra);
    rc |= pack_cstr(pk, "magic") | pack_cstr(pk, TS_MAGIC);
    rc |= pack_cstr(pk, "format_version") | msgpack_pack_uint64(pk, TS_FORMAT_VERSION);
    rc |= pack_cstr(pk, "kind") | pack_cstr(pk, TS_KIND);
    rc |= pack_cstr(pk, "tokenizer") | pack_cstr(pk, h->tokenizer);
    rc |= pack_cstr(pk, "vocab_size") | msgpack_pack_uint64(pk, h->vocab_size);
    rc |= pack_cstr(pk, "eot") | msgpack_pack_int64(pk, h->eot);
    rc |= pack_cstr(pk, "provenance") | msgpack_pack_array(pk, h->n_provenance);
    if (h->prov_len) rc |= sink_write(&w->sink, (const char *)h->prov, h->prov_len);
    if (h->extra_len) rc |= sink_write(&w->sink, (const char *)h->extra, h->extra_len);
    if (rc) err_set(e, "out of memory");
    if (rc || writer_flush(w, e) < 0) {
        free(w->buf);
        free(w);
        return NULL;
    }
    return w;
}

void ts_writer_set_unbuffered(ts_writer_t *w, bool on) { w->unbuffered = on; }

int ts_write(ts_writer_t *w, const ts_record *r, err_t *e)
{
    if (w->failed) return err_set(e, "writing token stream failed earlier");
    for (size_t k = 0; k < r->n_tokens; k++)
        if (r->tokens[k] >= w->vocab_size)
            return err_set(e,
                           "record %" PRIu64 ": token %" PRIu32 " at position %zu is out of range "
                           "(vocab_size %" PRIu64 ")",
                           r->id, r->tokens[k], k, w->vocab_size);
    msgpack_packer *pk = &w->pk;
    w->len = 0;
    int rc = msgpack_pack_map(pk, 2 + r->n_fields);
    rc |= pack_cstr(pk, "id") | msgpack_pack_uint64(pk, r->id);
    rc |= pack_cstr(pk, "tokens") | msgpack_pack_array(pk, r->n_tokens);
    for (size_t k = 0; k < r->n_tokens && !rc; k++) rc = msgpack_pack_uint32(pk, r->tokens[k]);
    if (r->fields_len) rc |= sink_write(&w->sink, (const char *)r->fields, r->fields_len);
    if (rc) return err_set(e, "record %" PRIu64 ": out of memory", r->id);
    return writer_flush(w, e);
}

int ts_writer_close(ts_writer_t *w, err_t *e)
{
    if (!w) return 0;
    if (fflush(w->fp) != 0 && !w->failed) w->failed = true, w->saved_errno = errno;
    if (ferror(w->fp) && !w->failed) w->failed = true, w->saved_errno = EIO;
    bool failed = w->failed;
    int saved = w->saved_errno;
    free(w->buf);
    free(w);
    if (!failed) return 0;
    errno = saved;
    return err_set_errno(e, "writing token stream failed");
}

/* ---- records --------------------------------------------------------------------------------- */

void ts_record_clear(ts_record *r)
{
    r->id = 0;
    r->n_tokens = 0;
    r->n_fields = 0;
    r->fields_len = 0;
}

void ts_record_free(ts_record *r)
{
    if (!r) return;
    free(r->tokens);
    free(r->fields);
    memset(r, 0, sizeof *r);
}

uint32_t *ts_record_resize(ts_record *r, size_t n, err_t *e)
{
    uint32_t *t = grow(r->tokens, &r->tokens_cap, n, sizeof *t);
    if (!t) return err_set(e, "out of memory for %zu tokens", n), NULL;
    r->tokens = t;
    r->n_tokens = n;
    return t;
}

int ts_record_set_tokens(ts_record *r, const uint32_t *tokens, size_t n, err_t *e)
{
    if (!ts_record_resize(r, n, e)) return ERR_FAIL;
    if (n) memcpy(r->tokens, tokens, n * sizeof *tokens);
    return 0;
}

int ts_record_next_field(const ts_record *r, size_t *pos, const char **key, size_t *klen,
                         const uint8_t **val, size_t *vlen)
{
    if (*pos >= r->fields_len) return ERR_EOF;
    struct mpack_item it = {0};
    uint64_t want, off = *pos, ks = mpack_decode(r->fields + off, r->fields_len - off, &it, &want);
    uint64_t vs = ks && ks != MPACK_BAD && it.type == MPACK_STR
                      ? mpack_value_size(r->fields + off + ks, r->fields_len - off - ks)
                      : 0;
    if (vs == 0) return ERR_EOF; /* cannot happen: fields are checked when stored */
    *key = (const char *)it.ptr;
    *klen = it.u;
    *val = r->fields + off + ks;
    *vlen = vs;
    *pos = off + ks + vs;
    return 0;
}

/* Finds key among r's fields: @return 1 with the offsets of the pair and its value, 0 if absent. */
static int field_find(const ts_record *r, const char *key, size_t *start, size_t *val, size_t *end)
{
    size_t kl = strlen(key), pos = 0, at = 0, klen, vlen;
    const char *k;
    const uint8_t *v;
    for (; ts_record_next_field(r, &pos, &k, &klen, &v, &vlen) == 0; at = pos)
        if (klen == kl && memcmp(k, key, kl) == 0)
            return *start = at, *val = (size_t)(v - r->fields), *end = pos, 1;
    return 0;
}

int ts_record_remove(ts_record *r, const char *key)
{
    size_t s, v, end;
    if (!field_find(r, key, &s, &v, &end)) return ERR_EOF;
    memmove(r->fields + s, r->fields + end, r->fields_len - end);
    r->fields_len -= end - s;
    r->n_fields--;
    return 0;
}

/* Starts a set: refuses reserved keys, removes the old field. *mark = the rollback point. */
/* Starts a set: refuses reserved keys, removes the old field, points the packer at r's fields.
 * *mark is where the new pair starts (the rollback point). */
static int field_begin(ts_record *r, const char *key, sink_t *s, msgpack_packer *pk, size_t *mark,
                       err_t *e)
{
    if (!key || !strcmp(key, "id") || !strcmp(key, "tokens") || !strcmp(key, "magic"))
        return err_set(e, "field name \"%s\" is reserved", key ? key : "(null)");
    ts_record_remove(r, key);
    *s = (sink_t){&r->fields, &r->fields_len, &r->fields_cap};
    *mark = r->fields_len;
    msgpack_packer_init(pk, s, sink_write);
    return 0;
}

static int field_end(ts_record *r, int rc, size_t mark, err_t *e)
{
    if (rc) {
        r->fields_len = mark;
        return err_set(e, "record %" PRIu64 ": out of memory", r->id);
    }
    r->n_fields++;
    return 0;
}

/* The shape shared by the setters: begin, pack the key, then the value with PACK (sets rc_). */
#define FIELD_SET(r, key, e, PACK)                                                                 \
    do {                                                                                           \
        sink_t s_;                                                                                 \
        msgpack_packer pk_, *pk = &pk_;                                                            \
        size_t mark_;                                                                              \
        if (field_begin(r, key, &s_, pk, &mark_, e) < 0) return ERR_FAIL;                          \
        int rc_ = pack_cstr(pk, key);                                                              \
        if (rc_ == 0) PACK;                                                                        \
        return field_end(r, rc_, mark_, e);                                                        \
    } while (0)

int ts_record_set_str(ts_record *r, const char *key, const char *s, size_t len, err_t *e)
{
    FIELD_SET(r, key, e, rc_ = msgpack_pack_str_with_body(pk, s, len));
}
int ts_record_set_f64(ts_record *r, const char *key, double v, err_t *e)
{
    FIELD_SET(r, key, e, rc_ = msgpack_pack_double(pk, v));
}
int ts_record_set_i64(ts_record *r, const char *key, int64_t v, err_t *e)
{
    FIELD_SET(r, key, e, rc_ = msgpack_pack_int64(pk, v));
}
int ts_record_set_u64(ts_record *r, const char *key, uint64_t v, err_t *e)
{
    FIELD_SET(r, key, e, rc_ = msgpack_pack_uint64(pk, v));
}
int ts_record_set_bool(ts_record *r, const char *key, bool v, err_t *e)
{
    FIELD_SET(r, key, e, rc_ = v ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
}
int ts_record_set_f32_array(ts_record *r, const char *key, const float *v, size_t n, err_t *e)
{
    FIELD_SET(r, key, e, {
        rc_ = msgpack_pack_array(pk, n);
        for (size_t k = 0; k < n && !rc_; k++) rc_ = msgpack_pack_float(pk, v[k]);
    });
}
int ts_record_set_f64_array(ts_record *r, const char *key, const double *v, size_t n, err_t *e)
{
    FIELD_SET(r, key, e, {
        rc_ = msgpack_pack_array(pk, n);
        for (size_t k = 0; k < n && !rc_; k++) rc_ = msgpack_pack_double(pk, v[k]);
    });
}
int ts_record_set_raw(ts_record *r, const char *key, const void *packed, size_t len, err_t *e)
{
    struct mpack_scan sc;
    uint64_t need;
    mpack_scan_start(&sc, TS_MAX_DEPTH - 1); /* the value sits inside the record's map */
    int st = mpack_scan_step(&sc, packed, len, &need);
    if (st != MPACK_SCAN_DONE || sc.off != len)
        return err_set(e, "field \"%s\": %s", key ? key : "(null)",
                       st == MPACK_SCAN_DEEP ? "value nested too deeply"
                                             : "not exactly one well-formed msgpack value");
    FIELD_SET(r, key, e, rc_ = sink_write(&s_, packed, len));
}

/* Finds key and decodes its value's first item. @return 0 found, -1 absent. */
static int field_item(const ts_record *r, const char *key, struct mpack_item *it, size_t *val,
                      size_t *end)
{
    size_t s;
    uint64_t want;
    if (!field_find(r, key, &s, val, end)) return ERR_EOF;
    mpack_decode(r->fields + *val, *end - *val, it, &want);
    return 0;
}

static int wrong_type(const ts_record *r, const char *key, enum mpack_type got,
                      const char *expected, err_t *e)
{
    return err_set(e, "record %" PRIu64 ": field \"%s\" is a %s, not %s", r->id, key,
                   mpack_type_name(got), expected);
}

int ts_record_get_f64(const ts_record *r, const char *key, double *out, err_t *e)
{
    struct mpack_item it = {0};
    size_t v, end;
    if (field_item(r, key, &it, &v, &end) < 0) return ERR_EOF;
    if (it.type == MPACK_UINT) return *out = (double)it.u, 0;
    if (it.type == MPACK_INT) return *out = (double)it.i, 0;
    if (it.type == MPACK_F32 || it.type == MPACK_F64) return *out = it.f, 0;
    return wrong_type(r, key, it.type, "a number", e);
}

int ts_record_get_i64(const ts_record *r, const char *key, int64_t *out, err_t *e)
{
    struct mpack_item it = {0};
    size_t v, end;
    if (field_item(r, key, &it, &v, &end) < 0) return ERR_EOF;
    if (it.type == MPACK_UINT && it.u <= INT64_MAX) return *out = (int64_t)it.u, 0;
    if (it.type == MPACK_INT) return *out = it.i, 0;
    return wrong_type(r, key, it.type, "an integer in int64 range", e);
}

int ts_record_get_str(const ts_record *r, const char *key, const char **s, size_t *len, err_t *e)
{
    struct mpack_item it = {0};
    size_t v, end;
    if (field_item(r, key, &it, &v, &end) < 0) return ERR_EOF;
    if (it.type != MPACK_STR) return wrong_type(r, key, it.type, "a str", e);
    *s = (const char *)it.ptr;
    *len = it.u;
    return 0;
}

int ts_record_get_raw(const ts_record *r, const char *key, const uint8_t **packed, size_t *len)
{
    struct mpack_item it = {0};
    size_t v, end;
    if (field_item(r, key, &it, &v, &end) < 0) return ERR_EOF;
    *packed = r->fields + v;
    *len = end - v;
    return 0;
}

long long ts_record_get_f64_array(const ts_record *r, const char *key, double *buf, size_t cap,
                                  err_t *e)
{
    struct mpack_item it = {0};
    size_t v, end;
    uint64_t want;
    if (field_item(r, key, &it, &v, &end) < 0) return ERR_EOF;
    if (it.type != MPACK_ARRAY) return wrong_type(r, key, it.type, "an array of numbers", e);
    uint64_t n = it.u, off = v + mpack_decode(r->fields + v, end - v, &it, &want);
    for (uint64_t k = 0; k < n; k++) {
        off += mpack_decode(r->fields + off, end - off, &it, &want);
        if (it.type != MPACK_UINT && it.type != MPACK_INT && it.type != MPACK_F32 &&
            it.type != MPACK_F64)
            return err_set(e,
                           "record %" PRIu64 ": field \"%s\": element %" PRIu64 " is a %s, not a "
                           "number",
                           r->id, key, k, mpack_type_name(it.type));
        if (k < cap)
            buf[k] = it.type == MPACK_UINT  ? (double)it.u
                     : it.type == MPACK_INT ? (double)it.i
                                            : it.f;
    }
    return (long long)n;
}
