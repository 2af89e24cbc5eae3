/* mpack: the bounded msgpack decoder behind tstream (see mpack.h).
 *
 * Used instead of msgpack-c's unpacker, which allocates an array from its claimed length before the
 * bytes arrive (5 bytes of input can ask for gigabytes), builds a 24-byte object per item, and
 * reports no byte offsets. Here a value is first scanned until it is complete (chunk by chunk,
 * never reading past it), then parsed in place; nothing is allocated. */
#include "mpack.h"

#include <string.h>

static const char *const type_names[] = {"nil",     "bool",    "uint", "negative int",
                                         "float32", "float64", "str",  "bin",
                                         "array",   "map",     "ext"};

const char *mpack_type_name(enum mpack_type t) { return type_names[t]; }

/* ---- the decoder: one msgpack item at a time ------------------------------------------------ */

static uint64_t load_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned k = 0; k < n; k++) v = v << 8 | p[k];
    return v;
}

/* Bytes after the type byte that hold a length or value, for type bytes 0xc4..0xdf. */
static const uint8_t nbytes[28] = {1, 2, 4, 1, 2, 4, 4, 8, 1, 2, 4, 8, 1, 2,
                                   4, 8, 0, 0, 0, 0, 0, 1, 2, 4, 2, 4, 2, 4};

uint64_t mpack_decode(const uint8_t *p, size_t avail, struct mpack_item *it, uint64_t *want)
{
    if (avail == 0) return *want = 1, 0;
    uint8_t c = p[0];
    uint64_t hs = 1, len;
    if (c <= 0x7f) return it->type = MPACK_UINT, it->u = c, 1;
    if (c >= 0xe0) return it->type = MPACK_INT, it->i = (int64_t)c - 256, 1;
    if (c <= 0x8f) return it->type = MPACK_MAP, it->u = c & 0x0f, 1;
    if (c <= 0x9f) return it->type = MPACK_ARRAY, it->u = c & 0x0f, 1;
    if (c <= 0xbf) {
        it->type = MPACK_STR;
        len = c & 0x1f;
    } else if (c <= 0xc3) {
        if (c == 0xc1) return MPACK_BAD;
        if (c == 0xc0) return it->type = MPACK_NIL, 1;
        return it->type = MPACK_BOOL, it->b = c == 0xc3, 1;
    } else {
        unsigned n = nbytes[c - 0xc4];
        hs = 1 + n + ((c >= 0xc7 && c <= 0xc9) || (c >= 0xd4 && c <= 0xd8));
        if (avail < hs) return *want = hs, 0;
        uint64_t v = load_be(p + 1, n);
        if (c <= 0xc6) {
            it->type = MPACK_BIN;
            len = v;
        } else if (c <= 0xc9) {
            it->type = MPACK_EXT;
            it->ext = (int8_t)((int)p[1 + n] - (p[1 + n] >= 0x80 ? 256 : 0));
            len = v;
        } else if (c == 0xca) {
            uint32_t b = (uint32_t)v;
            float f;
            memcpy(&f, &b, 4);
            return it->type = MPACK_F32, it->f = f, hs;
        } else if (c == 0xcb) {
            double d;
            memcpy(&d, &v, 8);
            return it->type = MPACK_F64, it->f = d, hs;
        } else if (c <= 0xcf) {
            return it->type = MPACK_UINT, it->u = v, hs;
        } else if (c <= 0xd3) {
            /* sign-extend the n-byte two's complement value without implementation-defined casts */
            uint64_t sign = (uint64_t)1 << (8 * n - 1);
            int64_t s = (v & sign) ? -(int64_t)(~v & (sign - 1)) - 1 : (int64_t)v;
            if (s >= 0) return it->type = MPACK_UINT, it->u = (uint64_t)s, hs;
            return it->type = MPACK_INT, it->i = s, hs;
        } else if (c <= 0xd8) {
            it->type = MPACK_EXT;
            it->ext = (int8_t)((int)p[1] - (p[1] >= 0x80 ? 256 : 0));
            len = (uint64_t)1 << (c - 0xd4);
        } else if (c <= 0xdb) {
            it->type = MPACK_STR;
            len = v;
        } else {
            it->type = c <= 0xdd ? MPACK_ARRAY : MPACK_MAP;
            return it->u = v, hs;
        }
    }
    it->u = len;
    if (avail - hs < len) return *want = hs + len, 0;
    it->ptr = p + hs;
    return hs + len;
}

/* ---- the scanner: is a whole value there yet? ------------------------------------------------ */

void mpack_scan_start(struct mpack_scan *s, int max_depth)
{
    s->max_depth = max_depth;
    s->off = 0;
    s->pending = 1;
    s->depth = 0;
    s->rem[0] = 1;
}

int mpack_scan_step(struct mpack_scan *s, const uint8_t *p, size_t avail, uint64_t *need)
{
    while (s->pending) {
        struct mpack_item it = {0};
        uint64_t want, n = mpack_decode(p + s->off, avail - s->off, &it, &want);
        if (n == MPACK_BAD) return MPACK_SCAN_BAD;
        if (n == 0) {
            *need = (want - (avail - s->off)) + (s->pending - 1);
            return MPACK_SCAN_MORE;
        }
        if (it.type == MPACK_ARRAY || it.type == MPACK_MAP) {
            if (s->depth + 1 > s->max_depth) return MPACK_SCAN_DEEP;
            s->off += n;
            s->rem[s->depth]--;
            s->pending--;
            uint64_t k = it.type == MPACK_MAP ? 2 * it.u : it.u;
            if (k) s->rem[++s->depth] = k, s->pending += k;
        } else {
            s->off += n;
            s->rem[s->depth]--;
            s->pending--;
        }
        while (s->depth > 0 && s->rem[s->depth] == 0) s->depth--;
    }
    return MPACK_SCAN_DONE;
}

uint64_t mpack_value_size(const uint8_t *p, size_t avail)
{
    struct mpack_scan s;
    uint64_t need;
    mpack_scan_start(&s, MPACK_MAX_DEPTH);
    return mpack_scan_step(&s, p, avail, &need) == MPACK_SCAN_DONE ? s.off : 0;
}

enum mpack_type mpack_type_of_byte(uint8_t c)
{
    struct mpack_item it = {0};
    uint64_t want;
    uint8_t pad[24] = {c}; /* zero lengths: every item is complete within 24 bytes */
    return mpack_decode(pad, sizeof pad, &it, &want) == MPACK_BAD ? MPACK_NIL : it.type;
}
