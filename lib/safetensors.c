/* safetensors: reader, validator, converter and writer (see safetensors.h).
 * Layout: u64 little-endian header length n, n bytes of JSON
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
 * then the data section; offsets are relative to its first byte. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors data are little-endian; this reader assumes a little-endian host");

struct name_ix {
    const char *name;
    size_t ix;
};

struct st_file {
    char *name;
    const uint8_t *base;   /* whole file (mapped or borrowed) */
    size_t size;
    bool mapped;
    size_t header_len;
    st_tensor *t;          /* header order */
    size_t n;
    struct name_ix *by_name;  /* sorted by name, for st_find */
    st_meta *meta;
    size_t n_meta;
};

static const struct {
    const char *name;
    size_t size;
} dtypes[ST_NDTYPES] = {
    [ST_F64] = {"F64", 8}, [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2},
    [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4}, [ST_I16] = {"I16", 2}, [ST_I8] = {"I8", 1},
    [ST_U8] = {"U8", 1},   [ST_BOOL] = {"BOOL", 1},
};

const char *st_dtype_name(enum st_dtype dt)
{
    return (unsigned)dt < ST_NDTYPES ? dtypes[dt].name : "?";
}

size_t st_dtype_size(enum st_dtype dt)
{
    return (unsigned)dt < ST_NDTYPES ? dtypes[dt].size : 0;
}

int st_dtype_parse(const char *name)
{
    for (int i = 0; i < ST_NDTYPES; i++)
        if (strcmp(name, dtypes[i].name) == 0) return i;
    return ERR_FAIL;
}

int st_dtype_is_float(enum st_dtype dt)
{
    return dt == ST_F64 || dt == ST_F32 || dt == ST_F16 || dt == ST_BF16;
}

/* ---- validation ----------------------------------------------------------------------- */

/* Element count of a shape and its size in bytes; false on overflow of size_t. */
static bool shape_size(const int64_t *shape, int ndim, size_t elsize, size_t *numel,
                       size_t *nbytes)
{
    size_t n = 1;
    for (int d = 0; d < ndim; d++) {
        uint64_t dim = (uint64_t)shape[d];
        if (dim > SIZE_MAX) return false;
        if (dim && n > SIZE_MAX / dim) return false;
        n *= (size_t)dim;
    }
    if (elsize && n > SIZE_MAX / elsize) return false;
    *numel = n;
    *nbytes = n * elsize;
    return true;
}

/* Reads a non-negative JSON integer. */
static bool json_uint(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static int parse_entry(st_file_t *f, const char *key, json_t *v, st_tensor *t,
                       uint64_t *begin, uint64_t *end, size_t data_len, err_t *e)
{
    const char *fn = f->name;
    if (!*key) return err_set(e, "%s: a tensor has an empty name", fn);
    if (!json_is_object(v))
        return err_set(e, "%s: tensor '%s': entry is not a JSON object", fn, key);

    json_t *jd = json_object_get(v, "dtype");
    if (!jd) return err_set(e, "%s: tensor '%s': no \"dtype\"", fn, key);
    if (!json_is_string(jd))
        return err_set(e, "%s: tensor '%s': \"dtype\" is not a string", fn, key);
    int dt = st_dtype_parse(json_string_value(jd));
    if (dt < 0)
        return err_set(e, "%s: tensor '%s': unknown dtype '%.32s'", fn, key, json_string_value(jd));
    t->dtype = (enum st_dtype)dt;

    json_t *js = json_object_get(v, "shape");
    if (!js) return err_set(e, "%s: tensor '%s': no \"shape\"", fn, key);
    if (!json_is_array(js))
        return err_set(e, "%s: tensor '%s': \"shape\" is not an array", fn, key);
    size_t rank = json_array_size(js);
    if (rank > ST_MAX_DIMS)
        return err_set(e, "%s: tensor '%s': rank %zu exceeds the limit of %d", fn, key, rank,
                       ST_MAX_DIMS);
    t->ndim = (int)rank;
    for (size_t d = 0; d < rank; d++) {
        uint64_t dim;
        if (!json_uint(json_array_get(js, d), &dim))
            return err_set(e, "%s: tensor '%s': shape[%zu] is not a non-negative integer", fn,
                           key, d);
        t->shape[d] = (int64_t)dim;
    }
    if (!shape_size(t->shape, t->ndim, st_dtype_size(t->dtype), &t->numel, &t->nbytes))
        return err_set(e, "%s: tensor '%s': shape overflows the size of a tensor", fn, key);

    json_t *jo = json_object_get(v, "data_offsets");
    if (!jo) return err_set(e, "%s: tensor '%s': no \"data_offsets\"", fn, key);
    if (!json_is_array(jo) || json_array_size(jo) != 2 ||
        !json_uint(json_array_get(jo, 0), begin) || !json_uint(json_array_get(jo, 1), end))
        return err_set(e, "%s: tensor '%s': \"data_offsets\" is not [begin, end] of two "
                       "non-negative integers", fn, key);
    if (*begin > *end)
        return err_set(e, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] end before "
                       "they begin", fn, key, *begin, *end);
    if (*end > data_len)
        return err_set(e, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] run past "
                       "the end of the data section (%zu bytes; file truncated?)", fn, key,
                       *begin, *end, data_len);
    if (*end - *begin != t->nbytes)
        return err_set(e, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] hold %"
                       PRIu64 " bytes but shape x %s needs %zu", fn, key, *begin, *end,
                       *end - *begin, st_dtype_name(t->dtype), t->nbytes);
    return 0;
}

static int parse_meta(st_file_t *f, json_t *m, err_t *e)
{
    if (!json_is_object(m)) return err_set(e, "%s: \"__metadata__\" is not a JSON object", f->name);
    size_t n = json_object_size(m);
    f->meta = calloc(n ? n : 1, sizeof *f->meta);
    if (!f->meta) return err_set(e, "%s: out of memory", f->name);
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) {
        if (!json_is_string(v))
            return err_set(e, "%s: \"__metadata__\" entry '%s' is not a string", f->name, k);
        st_meta *sm = &f->meta[f->n_meta];
        sm->key = strdup(k);
        sm->value = sm->key ? strdup(json_string_value(v)) : NULL;
        if (!sm->key || !sm->value) {
            free((void *)sm->key);
            sm->key = NULL;
            return err_set(e, "%s: out of memory", f->name);
        }
        f->n_meta++;
    }
    return 0;
}

struct span {
    uint64_t begin, end;
    size_t ix;
};

static int cmp_span(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct name_ix *)a)->name, ((const struct name_ix *)b)->name);
}

/* Validates f->base[0..size) and fills the tensor table. */
static int parse(st_file_t *f, err_t *e)
{
    const char *fn = f->name;
    if (f->size < 8)
        return err_set(e, "%s: file too short (%zu bytes) to hold the 8-byte header length", fn,
                       f->size);
    uint64_t hlen;
    memcpy(&hlen, f->base, 8);
    if (hlen > f->size - 8)
        return err_set(e, "%s: header length %" PRIu64 " runs past the end of the file (%zu "
                       "bytes; truncated or not a safetensors file?)", fn, hlen, f->size);
    if (hlen > ST_MAX_HEADER)
        return err_set(e, "%s: header length %" PRIu64 " exceeds the limit of %" PRIu64, fn,
                       hlen, ST_MAX_HEADER);
    if (hlen < 2)
        return err_set(e, "%s: header length %" PRIu64 " is too short for a JSON object", fn,
                       hlen);
    f->header_len = (size_t)hlen;
    const char *hdr = (const char *)f->base + 8;
    size_t data_len = f->size - 8 - f->header_len;
    const uint8_t *data = f->base + 8 + f->header_len;

    json_error_t jerr;
    json_t *root = json_loadb(hdr, f->header_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (json_error_code(&jerr) == json_error_duplicate_key)
            return err_set(e, "%s: header names a tensor or key twice (%s, byte %d)", fn,
                           jerr.text, jerr.position);
        return err_set(e, "%s: header is not valid JSON: %s (byte %d)", fn, jerr.text,
                       jerr.position);
    }
    int rc = 0;
    struct span *spans = NULL;
    if (!json_is_object(root)) {
        rc = err_set(e, "%s: header is not a JSON object", fn);
        goto out;
    }
    size_t cap = json_object_size(root);
    f->t = calloc(cap ? cap : 1, sizeof *f->t);
    f->by_name = calloc(cap ? cap : 1, sizeof *f->by_name);
    spans = calloc(cap ? cap : 1, sizeof *spans);
    if (!f->t || !f->by_name || !spans) {
        rc = err_set(e, "%s: out of memory", fn);
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((rc = parse_meta(f, v, e)) < 0) goto out;
            continue;
        }
        st_tensor *t = &f->t[f->n];
        struct span *s = &spans[f->n];
        if ((rc = parse_entry(f, key, v, t, &s->begin, &s->end, data_len, e)) < 0) goto out;
        if (!(t->name = strdup(key))) {
            rc = err_set(e, "%s: out of memory", fn);
            goto out;
        }
        t->data = data + s->begin;
        s->ix = f->n;
        f->by_name[f->n] = (struct name_ix){t->name, f->n};
        f->n++;
    }

    /* Tensors must not share bytes (empty ones occupy none). Gaps are tolerated. */
    qsort(spans, f->n, sizeof *spans, cmp_span);
    const struct span *prev = NULL;
    for (size_t i = 0; i < f->n; i++) {
        const struct span *s = &spans[i];
        if (s->begin == s->end) continue;
        if (prev && s->begin < prev->end) {
            rc = err_set(e, "%s: tensors '%s' [%" PRIu64 ", %" PRIu64 "] and '%s' [%" PRIu64
                         ", %" PRIu64 "] overlap", fn, f->t[prev->ix].name, prev->begin,
                         prev->end, f->t[s->ix].name, s->begin, s->end);
            goto out;
        }
        if (!prev || s->end > prev->end) prev = s;
    }
    /* Unique by construction (JSON_REJECT_DUPLICATES); sorted for st_find. */
    qsort(f->by_name, f->n, sizeof *f->by_name, cmp_name);
out:
    free(spans);
    json_decref(root);
    return rc;
}

/* ---- open / close / access -------------------------------------------------------------- */

static st_file_t *file_new(const char *name, err_t *e)
{
    st_file_t *f = calloc(1, sizeof *f);
    if (f) f->name = strdup(name ? name : "(buffer)");
    if (!f || !f->name) {
        free(f);
        err_set(e, "%s: out of memory", name ? name : "(buffer)");
        return NULL;
    }
    return f;
}

st_file_t *st_parse(const void *buf, size_t len, const char *name, err_t *e)
{
    st_file_t *f = file_new(name, e);
    if (!f) return NULL;
    f->base = buf;
    f->size = len;
    if (parse(f, e) < 0) {
        st_close(f);
        return NULL;
    }
    return f;
}

st_file_t *st_open(const char *path, err_t *e)
{
    return st_open_named(path, path, e);
}

st_file_t *st_open_named(const char *path, const char *name, err_t *e)
{
    st_file_t *f = file_new(name, e);
    if (!f) return NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_set_errno(e, "cannot open '%s'", name);
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        err_set_errno(e, "cannot stat '%s'", name);
        close(fd);
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        err_set(e, "%s: not a regular file", name);
        close(fd);
        goto fail;
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        err_set(e, "%s: file too large to map", name);
        close(fd);
        goto fail;
    }
    f->size = (size_t)sb.st_size;
    if (f->size >= 8) {
        void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            err_set_errno(e, "cannot map '%s'", name);
            close(fd);
            goto fail;
        }
        f->base = p;
        f->mapped = true;
    } else {
        f->base = (const uint8_t *)"";  /* parse() reports the short file */
    }
    close(fd);
    if (parse(f, e) < 0) goto fail;
    return f;
fail:
    st_close(f);
    return NULL;
}

void st_close(st_file_t *f)
{
    if (!f) return;
    if (f->mapped) munmap((void *)f->base, f->size);
    if (f->t)
        for (size_t i = 0; i < f->n; i++) free((void *)f->t[i].name);
    if (f->meta)
        for (size_t i = 0; i < f->n_meta; i++) {
            free((void *)f->meta[i].key);
            free((void *)f->meta[i].value);
        }
    free(f->t);
    free(f->by_name);
    free(f->meta);
    free(f->name);
    free(f);
}

const char *st_name(const st_file_t *f) { return f->name; }
size_t st_file_size(const st_file_t *f) { return f->size; }
size_t st_header_len(const st_file_t *f) { return f->header_len; }
size_t st_count(const st_file_t *f) { return f->n; }

const st_tensor *st_get(const st_file_t *f, size_t i)
{
    return i < f->n ? &f->t[i] : NULL;
}

const st_tensor *st_find(const st_file_t *f, const char *name)
{
    struct name_ix key = {name, 0};
    const struct name_ix *hit = bsearch(&key, f->by_name, f->n, sizeof key, cmp_name);
    return hit ? &f->t[hit->ix] : NULL;
}

size_t st_meta_count(const st_file_t *f) { return f->n_meta; }

const st_meta *st_meta_get(const st_file_t *f, size_t i)
{
    return i < f->n_meta ? &f->meta[i] : NULL;
}

const char *st_meta_find(const st_file_t *f, const char *key)
{
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

/* ---- conversion ------------------------------------------------------------------------- */

float st_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in float */
        float v = ldexpf((float)mant, -24);
        return sign ? -v : v;
    }
    if (exp == 31)
        bits = sign | 0x7f800000u | (mant << 13);  /* inf, or nan keeping its payload */
    else
        bits = sign | ((exp + 112u) << 23) | (mant << 13);  /* rebias 15 -> 127 */
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float st_bf16_to_f32(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int st_tensor_to_f32(const st_tensor *t, float *dst, err_t *e)
{
    const uint8_t *p = t->data;
    size_t n = t->numel;
    switch (t->dtype) {
    case ST_F32:
        if (n) memcpy(dst, p, n * 4);
        return 0;
    case ST_F16:
    case ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = t->dtype == ST_F16 ? st_f16_to_f32(h) : st_bf16_to_f32(h);
        }
        return 0;
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            dst[i] = (float)d;
        }
        return 0;
    default:
        return err_set(e, "tensor '%s': dtype %s is not a floating-point type", t->name,
                       st_dtype_name(t->dtype));
    }
}

int st_tensor_to_i64(const st_tensor *t, int64_t *dst, err_t *e)
{
    const uint8_t *p = t->data;
    size_t n = t->numel;
    switch (t->dtype) {
    case ST_I64:
        if (n) memcpy(dst, p, n * 8);
        return 0;
    case ST_I32:
        for (size_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            dst[i] = v;
        }
        return 0;
    case ST_I16:
        for (size_t i = 0; i < n; i++) {
            int16_t v;
            memcpy(&v, p + 2 * i, 2);
            dst[i] = v;
        }
        return 0;
    case ST_I8:
        for (size_t i = 0; i < n; i++) dst[i] = (int8_t)p[i];
        return 0;
    case ST_U8:
        for (size_t i = 0; i < n; i++) dst[i] = p[i];
        return 0;
    case ST_BOOL:
        for (size_t i = 0; i < n; i++) dst[i] = p[i] != 0;
        return 0;
    default:
        return err_set(e, "tensor '%s': dtype %s is not an integer type", t->name,
                       st_dtype_name(t->dtype));
    }
}

/* ---- writer ------------------------------------------------------------------------------ */

/* Builds the padded JSON header; returns a malloc'd string of length *len (a multiple of 8). */
static char *build_header(const char *path, const st_tensor *ts, size_t n, const st_meta *meta,
                          size_t n_meta, size_t *len, err_t *e)
{
    json_t *root = json_object(), *m = NULL;
    char *text = NULL, *out = NULL;
    if (!root) goto oom;
    if (n_meta) {
        if (!(m = json_object()) || json_object_set_new(root, "__metadata__", m) < 0) goto oom;
        for (size_t i = 0; i < n_meta; i++) {
            if (!meta[i].key || !meta[i].value) {
                err_set(e, "%s: metadata entry %zu has no key or value", path, i);
                goto fail;
            }
            if (json_object_set_new(m, meta[i].key, json_string(meta[i].value)) < 0) {
                err_set(e, "%s: metadata entry '%s' is not valid UTF-8", path, meta[i].key);
                goto fail;
            }
        }
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        const st_tensor *t = &ts[i];
        const char *nm = t->name ? t->name : "";
        size_t numel, nbytes;
        if (!*nm || strcmp(nm, "__metadata__") == 0) {
            err_set(e, "%s: tensor %zu: invalid name '%s'", path, i, nm);
            goto fail;
        }
        if (json_object_get(root, nm)) {
            err_set(e, "%s: tensor '%s': duplicate name", path, nm);
            goto fail;
        }
        if ((unsigned)t->dtype >= ST_NDTYPES || t->ndim < 0 || t->ndim > ST_MAX_DIMS) {
            err_set(e, "%s: tensor '%s': invalid dtype or rank", path, nm);
            goto fail;
        }
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] < 0) {
                err_set(e, "%s: tensor '%s': negative dimension", path, nm);
                goto fail;
            }
        if (!shape_size(t->shape, t->ndim, st_dtype_size(t->dtype), &numel, &nbytes) ||
            (nbytes && !t->data)) {
            err_set(e, "%s: tensor '%s': shape overflows or data missing", path, nm);
            goto fail;
        }
        json_t *ent = json_object(), *shape = json_array(), *offs = json_array();
        if (!ent || !shape || !offs) {
            json_decref(ent), json_decref(shape), json_decref(offs);
            goto oom;
        }
        for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
        json_array_append_new(offs, json_integer((json_int_t)offset));
        json_array_append_new(offs, json_integer((json_int_t)(offset + nbytes)));
        offset += nbytes;
        json_object_set_new(ent, "dtype", json_string(st_dtype_name(t->dtype)));
        json_object_set_new(ent, "shape", shape);
        json_object_set_new(ent, "data_offsets", offs);
        if (json_object_set_new(root, nm, ent) < 0) {
            err_set(e, "%s: tensor name '%s' is not valid UTF-8", path, nm);
            goto fail;
        }
    }
    if (!(text = json_dumps(root, JSON_COMPACT))) goto oom;
    size_t tl = strlen(text), padded = (tl + 7) / 8 * 8;
    if (!(out = malloc(padded))) goto oom;
    memcpy(out, text, tl);
    memset(out + tl, ' ', padded - tl);
    *len = padded;
    free(text);
    json_decref(root);
    return out;
oom:
    err_set(e, "%s: out of memory", path);
fail:
    free(text);
    json_decref(root);
    return NULL;
}

int st_write(const char *path, const st_tensor *tensors, size_t n, const st_meta *meta,
             size_t n_meta, err_t *e)
{
    size_t hlen;
    char *hdr = build_header(path, tensors, n, meta, n_meta, &hlen, e);
    if (!hdr) return ERR_FAIL;
    char tmp[4096];
    int k = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (k < 0 || (size_t)k >= sizeof tmp) {
        free(hdr);
        return err_set(e, "%s: path too long", path);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    FILE *fp = fd < 0 ? NULL : fdopen(fd, "wb");
    if (!fp) {
        err_set_errno(e, "cannot create '%s'", tmp);
        if (fd >= 0) close(fd), unlink(tmp);
        free(hdr);
        return ERR_FAIL;
    }
    uint64_t h64 = hlen;
    bool ok = fwrite(&h64, 8, 1, fp) == 1 && fwrite(hdr, 1, hlen, fp) == hlen;
    for (size_t i = 0; ok && i < n; i++) {
        size_t numel = 0, nbytes = 0;
        shape_size(tensors[i].shape, tensors[i].ndim, st_dtype_size(tensors[i].dtype), &numel,
                   &nbytes);
        ok = !nbytes || fwrite(tensors[i].data, 1, nbytes, fp) == nbytes;
    }
    free(hdr);
    ok = ok && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    int saved = errno;
    if (fclose(fp) != 0 && ok) ok = false, saved = errno;
    if (!ok) {
        unlink(tmp);
        errno = saved;
        return err_set_errno(e, "cannot write '%s'", tmp);
    }
    if (rename(tmp, path) < 0) {
        saved = errno;
        unlink(tmp);
        errno = saved;
        return err_set_errno(e, "cannot rename '%s' to '%s'", tmp, path);
    }
    log_debug("wrote %zu tensors to %s", n, path);
    return 0;
}
