/* tstream: read/write msgpack token streams, a header then one map per record (docs/stream.md).
 * Ownership: readers/writers never own their FILE*; records and headers are caller-owned, reused.
 * Errors: >= 0 success, -1 (ERR_EOF) end of input / field absent, <= -2 error in the err_t. */
#ifndef DLM_TSTREAM_H
#define DLM_TSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "tsjson.h" /* ts_record_write_json(): a record as one line of JSON */

#define TS_MAGIC          "dlmkit-tokens"
#define TS_FORMAT_VERSION 1
#define TS_KIND           "tokens"
/* Deepest nesting of arrays/maps accepted inside a value (the top-level map is depth 1). */
#define TS_MAX_DEPTH 64

/* The facts of a stream's header. tokenizer, vocab_size and eot are public; the rest is private
 * (provenance and unknown header keys, kept as packed msgpack so they pass through byte-exactly).
 * Zero-initialise ({0}); fill with ts_header_init() or ts_header_copy(); free: ts_header_free(). */
typedef struct ts_header {
    char *tokenizer;     /* e.g. "gpt2"; owned */
    uint64_t vocab_size; /* 1 .. 2^32; every token id is < vocab_size */
    int64_t eot;         /* id of end-of-text, or -1 if none */
    size_t n_provenance; /* entries in the provenance list */
    /* private */
    uint8_t *prov; /* the provenance array's elements, packed, concatenated */
    size_t prov_len;
    uint8_t *extra; /* unknown header key/value pairs, packed, in stream order */
    size_t extra_len, n_extra;
} ts_header;

/* One record. id and tokens are public (tokens may be written in place after ts_record_resize);
 * the other fields are private packed msgpack key/value pairs, reached through the functions below.
 * Zero-initialise ({0}); reuse across ts_read() calls; free with ts_record_free(). */
typedef struct ts_record {
    uint64_t id;
    uint32_t *tokens; /* n_tokens ids; owned by the record */
    size_t n_tokens;
    size_t n_fields; /* other fields (read-only) */
    /* private */
    size_t tokens_cap;
    uint8_t *fields;
    size_t fields_len, fields_cap;
} ts_record;

typedef struct ts_reader ts_reader_t;
typedef struct ts_writer ts_writer_t;

/* ---- header ------------------------------------------------------------------------------- */

/* Sets h (previous contents freed) to a fresh header with an empty provenance list.
 * vocab_size must be in 1..2^32 and eot in -1..vocab_size-1. */
int ts_header_init(ts_header *h, const char *tokenizer, uint64_t vocab_size, int64_t eot, err_t *e);
/* Deep copy of src into dst (previous contents freed): provenance and unknown keys pass through,
 * so a tool transforming a stream copies the reader's header, then appends its own provenance. */
int ts_header_copy(ts_header *dst, const ts_header *src, err_t *e);
/* Appends {tool, version, commit, argv, seed, device} to h's provenance (NULL strings: ""). */
int ts_header_add_provenance(ts_header *h, const char *tool, const char *version,
                             const char *commit, int argc, char *const argv[], uint64_t seed,
                             const char *device, err_t *e);
/* Frees what h holds and zeroes it; h itself is the caller's. NULL is a no-op. */
void ts_header_free(ts_header *h);

/* ---- reader ------------------------------------------------------------------------------- */

/* Opens a reader on fp (file or pipe; not closed by the reader) and reads and validates the header.
 * name is used in messages (NULL: "stdin" for stdin, else "stream"). Returns NULL with e set on
 * error, including an empty input ("empty stream: no header"). Free with ts_reader_free(). */
ts_reader_t *ts_reader_open(FILE *fp, const char *name, err_t *e);
/* As ts_reader_open, over len bytes at data (borrowed: must outlive the reader).
 * name NULL: "<memory>". */
ts_reader_t *ts_reader_open_mem(const void *data, size_t len, const char *name, err_t *e);
/* The first header of the stream (borrowed; valid until ts_reader_free). */
const ts_header *ts_reader_header(const ts_reader_t *rd);
/* Reads the next record into r (its previous contents are replaced, its storage reused); further
 * headers are checked against the first and skipped. @return 0 record, -1 clean EOF (only at a
 * value boundary), <= -2 error (the message names the stream, byte offset and record id).
 * Errors are sticky. */
int ts_read(ts_reader_t *rd, ts_record *r, err_t *e);
/* Byte offset in the stream just past the last value read. */
uint64_t ts_reader_offset(const ts_reader_t *rd);
/* Frees the reader (not its FILE). NULL is a no-op. */
void ts_reader_free(ts_reader_t *rd);

/* ---- writer ------------------------------------------------------------------------------- */

/* Writes h to fp (not closed by the writer) and returns a writer for records; NULL with e set on
 * error. Close with ts_writer_close(). */
ts_writer_t *ts_writer_open(FILE *fp, const ts_header *h, err_t *e);
/* on: fflush after every record (default off: buffered by stdio). */
void ts_writer_set_unbuffered(ts_writer_t *w, bool on);
/* Writes r (id, tokens, then its other fields in order). Fails on a token >= vocab_size or a
 * write error. */
int ts_write(ts_writer_t *w, const ts_record *r, err_t *e);
/* Flushes, frees w and reports any write that failed (ferror on the FILE); the FILE stays open
 * and the caller still checks fclose. NULL is a no-op returning 0. */
int ts_writer_close(ts_writer_t *w, err_t *e);

/* ---- records ------------------------------------------------------------------------------ */

/* Empties r for reuse (id 0, no tokens, no fields), keeping its storage. */
void ts_record_clear(ts_record *r);
/* Frees r's storage and zeroes it; r itself is the caller's. */
void ts_record_free(ts_record *r);
/* Sets n_tokens = n, growing storage; returns r->tokens (contents beyond the old n undefined),
 * NULL with e set when out of memory. */
uint32_t *ts_record_resize(ts_record *r, size_t n, err_t *e);
/* Copies n token ids into r. */
int ts_record_set_tokens(ts_record *r, const uint32_t *tokens, size_t n, err_t *e);

/* Set a field, replacing (and moving to the end) any field with the same key. The keys "id",
 * "tokens" and "magic" are reserved and refused. set_raw takes exactly one packed msgpack value. */
int ts_record_set_str(ts_record *r, const char *key, const char *s, size_t len, err_t *e);
int ts_record_set_f64(ts_record *r, const char *key, double v, err_t *e);
int ts_record_set_i64(ts_record *r, const char *key, int64_t v, err_t *e);
int ts_record_set_u64(ts_record *r, const char *key, uint64_t v, err_t *e);
int ts_record_set_bool(ts_record *r, const char *key, bool v, err_t *e);
int ts_record_set_f32_array(ts_record *r, const char *key, const float *v, size_t n, err_t *e);
int ts_record_set_f64_array(ts_record *r, const char *key, const double *v, size_t n, err_t *e);
int ts_record_set_raw(ts_record *r, const char *key, const void *packed, size_t len, err_t *e);

/* Get a field: @return 0 found, -1 absent (e untouched), <= -2 present but of another type.
 * get_f64 accepts ints and floats; get_i64 ints in int64 range; get_str and get_raw return
 * pointers into r (borrowed until r next changes; the string is not NUL-terminated). */
int ts_record_get_f64(const ts_record *r, const char *key, double *out, err_t *e);
int ts_record_get_i64(const ts_record *r, const char *key, int64_t *out, err_t *e);
int ts_record_get_str(const ts_record *r, const char *key, const char **s, size_t *len, err_t *e);
int ts_record_get_raw(const ts_record *r, const char *key, const uint8_t **packed, size_t *len);
/* Array of numbers into buf: @return the element count n (>= 0; the first min(n, cap) are stored,
 * so n > cap means "call again with a larger buf"), -1 absent, <= -2 not an array of numbers. */
long long ts_record_get_f64_array(const ts_record *r, const char *key, double *buf, size_t cap,
                                  err_t *e);
/* Iterates over r's other fields in order: start with *pos = 0; @return 0 with the key (not
 * NUL-terminated) and the packed value, both borrowed until r next changes; -1 after the last. */
int ts_record_next_field(const ts_record *r, size_t *pos, const char **key, size_t *klen,
                         const uint8_t **val, size_t *vlen);
/* Removes the field; @return 0 removed, -1 absent. */
int ts_record_remove(ts_record *r, const char *key);

#endif
