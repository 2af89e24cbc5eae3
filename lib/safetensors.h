/* safetensors: read (mmap, validated, zero-copy) and write safetensors files; dtype conversion.
 * Ownership: st_file_t owns mapping, names, metadata; views borrow it (st_parse: the caller's buf).
 * Errors: return NULL / ERR_FAIL with "<file>: tensor '<name>': what" in the caller's err_t. */
#ifndef DLM_SAFETENSORS_H
#define DLM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum { ST_MAX_DIMS = 8 };
/* Headers longer than this are rejected (the limit of the reference implementation). */
#define ST_MAX_HEADER ((uint64_t)100000000)

enum st_dtype {
    ST_F64, ST_F32, ST_F16, ST_BF16, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL,
    ST_NDTYPES
};

/* A tensor: in a file (a view: name and data borrowed from the st_file_t) or, for st_write,
 * described by the caller (name, dtype, ndim, shape, data; nbytes and numel are ignored). */
typedef struct st_tensor {
    const char *name;
    enum st_dtype dtype;
    int ndim;                      /* 0..ST_MAX_DIMS; 0 is a scalar with one element */
    int64_t shape[ST_MAX_DIMS];
    const void *data;              /* little-endian, possibly unaligned: memcpy, never cast */
    size_t nbytes;                 /* numel * st_dtype_size(dtype) */
    size_t numel;
} st_tensor;

/* One "__metadata__" entry (strings borrowed from the file or, for st_write, the caller). */
typedef struct st_meta {
    const char *key, *value;
} st_meta;

typedef struct st_file st_file_t;

/* Maps `path` read-only and validates the header and every tensor entry.
 * @return the file, to be freed with st_close(); NULL on error (e says why). */
st_file_t *st_open(const char *path, err_t *e);

/* As st_open(), naming the file `name` in messages instead of its path. */
st_file_t *st_open_named(const char *path, const char *name, err_t *e);

/* As st_open() for `len` bytes at `buf` (borrowed, not copied); `name` names it in messages. */
st_file_t *st_parse(const void *buf, size_t len, const char *name, err_t *e);

/* Unmaps and frees; st_close(NULL) is a no-op. Every view taken from f becomes invalid. */
void st_close(st_file_t *f);

/* The name given to st_open()/st_parse(). */
const char *st_name(const st_file_t *f);
/* Total size of the file in bytes, and the JSON header length (the u64 of the first 8 bytes). */
size_t st_file_size(const st_file_t *f);
size_t st_header_len(const st_file_t *f);

/* Number of tensors, and the i-th in header order (i < st_count(f)). */
size_t st_count(const st_file_t *f);
const st_tensor *st_get(const st_file_t *f, size_t i);
/* The tensor called `name`, or NULL when there is none. */
const st_tensor *st_find(const st_file_t *f, const char *name);

/* The "__metadata__" map: count, i-th entry, and the value of `key` (NULL when absent). */
size_t st_meta_count(const st_file_t *f);
const st_meta *st_meta_get(const st_file_t *f, size_t i);
const char *st_meta_find(const st_file_t *f, const char *key);

/* "F32", "BF16", ...; "?" for an out-of-range value. */
const char *st_dtype_name(enum st_dtype dt);
/* Bytes per element (BOOL is 1); 0 for an out-of-range value. */
size_t st_dtype_size(enum st_dtype dt);
/* The dtype called `name` (exact, case-sensitive, as in headers) or ERR_FAIL. */
int st_dtype_parse(const char *name);
/* True for F64, F32, F16 and BF16. */
int st_dtype_is_float(enum st_dtype dt);

/* Converts t's numel elements to float into dst (numel floats). F32, F16 and BF16 are exact;
 * F64 rounds to nearest (overflow gives inf); inf, nan and F16 subnormals are kept.
 * @return 0, or ERR_FAIL for an integer dtype (the message names the tensor). */
int st_tensor_to_f32(const st_tensor *t, float *dst, err_t *e);

/* Converts an integer tensor (I64, I32, I16, I8, U8, BOOL as 0/1) to int64 into dst.
 * @return 0, or ERR_FAIL for a float dtype. */
int st_tensor_to_i64(const st_tensor *t, int64_t *dst, err_t *e);

/* Half and bfloat16 bit patterns to float (exact). */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t b);

/* Writes n tensors (data packed in the given order) and n_meta metadata entries to path,
 * atomically (path.tmp.<pid>, then rename), the header padded with spaces to a multiple of 8.
 * Each tensor needs a unique non-empty name, a valid dtype, 0..8 non-negative dims and
 * numel * size bytes at data (data may be NULL when that is 0).
 * @return 0, or ERR_FAIL (nothing is left at path or at the temporary name). */
int st_write(const char *path, const st_tensor *tensors, size_t n, const st_meta *meta,
             size_t n_meta, err_t *e);

#endif
