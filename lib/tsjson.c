/* tsjson: ts_record_write_json, a record as one line of JSON (see tsjson.h; docs/stream.md).
 * Values are rendered straight from the record's packed msgpack fields through a small staging
 * buffer: no intermediate tree, no allocation. Input is trusted to be well-formed (tstream checks
 * every field when it is stored), but a malformed value still only fails the call. */
#include "tsjson.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpack.h"
#include "tstream.h"
#include "utf8.h"

/* JSON output to a FILE through a staging buffer. */
typedef struct jout {
    FILE *fp;
    uint8_t *p;
    size_t len, cap;
    bool fail;
} jout;

static void jput(jout *o, const void *s, size_t n)
{
    if (o->len + n > o->cap) {
        if (o->len && fwrite(o->p, 1, o->len, o->fp) != o->len) o->fail = true;
        o->len = 0;
        if (n > o->cap) {
            if (fwrite(s, 1, n, o->fp) != n) o->fail = true;
            return;
        }
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

#define JLIT(o, s) jput(o, s, sizeof s - 1)

static void json_uint(jout *o, uint64_t v)
{
    char s[24], *q = s + sizeof s;
    do *--q = (char)('0' + v % 10);
    while (v /= 10);
    jput(o, q, (size_t)(s + sizeof s - q));
}

/* Shortest %.Ng that reads back as the same value; NaN and infinities become null. */
static void json_float(jout *o, double v, bool single)
{
    char s[40] = "null";
    if (!isfinite(v)) {
        jput(o, s, 4);
        return;
    }
    for (int prec = single ? 6 : 15;; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, v);
        if (prec >= (single ? 9 : 17) ||
            (single ? strtof(s, NULL) == (float)v : strtod(s, NULL) == v))
            break;
    }
    jput(o, s, strlen(s));
}

static void json_str(jout *o, const uint8_t *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    JLIT(o, "\"");
    size_t run = 0; /* start of the pending run of bytes copied as they are */
    for (size_t k = 0; k < n;) {
        uint8_t c = s[k];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            k++;
            continue;
        }
        int len = c >= 0x80 ? utf8_seq_len((const char *)s + k, n - k) : 0;
        if (len > 1) { /* well-formed multi-byte sequence: copied as it is */
            k += (size_t)len;
            continue;
        }
        jput(o, s + run, k - run);
        if (c == '"')
            JLIT(o, "\\\"");
        else if (c == '\\')
            JLIT(o, "\\\\");
        else if (c < 0x20)
            jput(o, (char[]){'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]}, 6);
        else
            JLIT(o, "\\ufffd");
        run = ++k;
    }
    jput(o, s + run, n - run);
    JLIT(o, "\"");
}

static void json_base64(jout *o, const uint8_t *s, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    JLIT(o, "\"");
    for (size_t k = 0; k < n; k += 3) {
        uint32_t v = (uint32_t)s[k] << 16 | (k + 1 < n ? (uint32_t)s[k + 1] << 8 : 0) |
                     (k + 2 < n ? s[k + 2] : 0);
        char q[4] = {b64[v >> 18], b64[(v >> 12) & 63], k + 1 < n ? b64[(v >> 6) & 63] : '=',
                     k + 2 < n ? b64[v & 63] : '='};
        jput(o, q, 4);
    }
    JLIT(o, "\"");
}

static uint64_t json_value(jout *o, const uint8_t *p, size_t avail);

/* Writes the map key at p as a JSON string: a str as itself, bin as base64, a scalar as its JSON
 * text, an array/map/ext as "<array>"/"<map>"/"<ext>" (not its text: escaping nested keys once per
 * level would grow the output exponentially with depth). @return the key's size, 0 on error. */
static uint64_t json_key(jout *o, const uint8_t *p, size_t avail)
{
    struct mpack_item it = {0};
    uint64_t want, n = mpack_decode(p, avail, &it, &want);
    if (n == 0 || n == MPACK_BAD) return o->fail = true, 0;
    if (it.type == MPACK_STR || it.type == MPACK_BIN) return json_value(o, p, avail);
    if (it.type == MPACK_ARRAY || it.type == MPACK_MAP || it.type == MPACK_EXT) {
        const char *s = it.type == MPACK_ARRAY ? "\"<array>\""
                        : it.type == MPACK_MAP ? "\"<map>\""
                                               : "\"<ext>\"";
        jput(o, s, strlen(s));
        if (!(n = mpack_value_size(p, avail))) o->fail = true;
        return n;
    }
    JLIT(o, "\"");
    n = json_value(o, p, avail);
    JLIT(o, "\"");
    return n;
}

/* Writes the complete value at p as JSON; @return its size, 0 on malformed input. Recursion is
 * bounded by TS_MAX_DEPTH, which every stored value was checked against. */
static uint64_t json_value(jout *o, const uint8_t *p, size_t avail)
{
    struct mpack_item it = {0};
    uint64_t want, n = mpack_decode(p, avail, &it, &want);
    if (n == 0 || n == MPACK_BAD) return o->fail = true, 0;
    switch (it.type) {
    case MPACK_NIL: JLIT(o, "null"); break;
    case MPACK_BOOL: it.b ? JLIT(o, "true") : JLIT(o, "false"); break;
    case MPACK_UINT: json_uint(o, it.u); break;
    case MPACK_INT: JLIT(o, "-"), json_uint(o, (uint64_t)(-(it.i + 1)) + 1); break;
    case MPACK_F32: json_float(o, it.f, true); break;
    case MPACK_F64: json_float(o, it.f, false); break;
    case MPACK_STR: json_str(o, it.ptr, it.u); break;
    case MPACK_BIN: json_base64(o, it.ptr, it.u); break;
    case MPACK_EXT:
        JLIT(o, "{\"ext\":");
        if (it.ext < 0) JLIT(o, "-");
        json_uint(o, (uint64_t)(it.ext < 0 ? -it.ext : it.ext));
        JLIT(o, ",\"data\":");
        json_base64(o, it.ptr, it.u);
        JLIT(o, "}");
        break;
    case MPACK_ARRAY:
    case MPACK_MAP: {
        bool map = it.type == MPACK_MAP;
        jput(o, map ? "{" : "[", 1);
        for (uint64_t k = 0; k < it.u; k++) {
            uint64_t m;
            if (k) JLIT(o, ",");
            if (map) {
                if (!(m = json_key(o, p + n, avail - n))) return 0;
                n += m;
                JLIT(o, ":");
            }
            if (!(m = json_value(o, p + n, avail - n))) return 0;
            n += m;
        }
        jput(o, map ? "}" : "]", 1);
        break;
    }
    }
    return n;
}

int ts_record_write_json(FILE *fp, const ts_record *r, err_t *e)
{
    uint8_t stage[8192];
    jout o = {.fp = fp, .p = stage, .cap = sizeof stage};
    JLIT(&o, "{\"id\":");
    json_uint(&o, r->id);
    JLIT(&o, ",\"tokens\":[");
    for (size_t k = 0; k < r->n_tokens; k++) {
        if (k) JLIT(&o, ",");
        json_uint(&o, r->tokens[k]);
    }
    JLIT(&o, "]");
    for (size_t off = 0; off < r->fields_len && !o.fail;) {
        JLIT(&o, ",");
        uint64_t m = json_key(&o, r->fields + off, r->fields_len - off);
        if (!m) break;
        off += m;
        JLIT(&o, ":");
        if (!(m = json_value(&o, r->fields + off, r->fields_len - off))) break;
        off += m;
    }
    JLIT(&o, "}\n");
    if (o.len && fwrite(o.p, 1, o.len, fp) != o.len) o.fail = true;
    if (o.fail || ferror(fp))
        return err_set_errno(e, "record %" PRIu64 ": writing JSON failed", r->id);
    return 0;
}
