/* mpack: bounded msgpack decoding, one item at a time in place, plus a scanner for whole values.
 * Ownership: nothing is allocated; decoded items point into the caller's bytes (borrowed).
 * Errors: none raised; short or malformed input is told by return values (0, MPACK_BAD, ...). */
#ifndef DLM_MPACK_H
#define DLM_MPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest nesting of arrays/maps the scanner can follow (the top-level value is depth 1). */
#define MPACK_MAX_DEPTH 64

/* mpack_decode()'s answer for the never-used type byte 0xc1. */
#define MPACK_BAD UINT64_MAX

/* The kind of one item; ints >= 0 are always MPACK_UINT, MPACK_INT is negative only. */
enum mpack_type {
    MPACK_NIL,
    MPACK_BOOL,
    MPACK_UINT,
    MPACK_INT,
    MPACK_F32,
    MPACK_F64,
    MPACK_STR,
    MPACK_BIN,
    MPACK_ARRAY,
    MPACK_MAP,
    MPACK_EXT
};

/* One decoded item; an array or map is its header only (the elements follow it). */
struct mpack_item {
    enum mpack_type type;
    uint64_t u;         /* UINT value; STR/BIN/EXT length; ARRAY/MAP element/pair count */
    int64_t i;          /* INT value (negative) */
    double f;           /* F32/F64 */
    bool b;             /* BOOL */
    int8_t ext;         /* EXT type */
    const uint8_t *ptr; /* STR/BIN/EXT payload (borrowed from the decoded bytes) */
};

/* Decodes the item at p (avail bytes) into *it. @return its size in bytes (ARRAY/MAP: the header
 * only), 0 when avail is too short (*want = the bytes it needs, > avail), MPACK_BAD for 0xc1. */
uint64_t mpack_decode(const uint8_t *p, size_t avail, struct mpack_item *it, uint64_t *want);

/* The type a value starting with byte c has (MPACK_NIL for 0xc1). */
enum mpack_type mpack_type_of_byte(uint8_t c);

/* The type's name for messages: "nil", "uint", "negative int", "float32", "map", ... */
const char *mpack_type_name(enum mpack_type t);

/* Scanner state over one value that may arrive in pieces. Start with mpack_scan_start(). */
struct mpack_scan {
    uint64_t off;     /* bytes of the value scanned so far */
    uint64_t pending; /* items still to read, all levels together */
    int depth, max_depth;
    uint64_t rem[MPACK_MAX_DEPTH + 1]; /* items left per level */
};

enum { MPACK_SCAN_DONE, MPACK_SCAN_MORE, MPACK_SCAN_BAD, MPACK_SCAN_DEEP };

/* Starts a scan of a value that may nest max_depth levels of arrays/maps (<= MPACK_MAX_DEPTH). */
void mpack_scan_start(struct mpack_scan *s, int max_depth);
/* Continues over p[0..avail), the value's bytes so far (the same p every call, avail growing).
 * @return MPACK_SCAN_DONE: the value is s->off bytes; MPACK_SCAN_MORE: *need is a lower bound on
 * the bytes still missing (reading that many never reads past the value); MPACK_SCAN_BAD or
 * MPACK_SCAN_DEEP: malformed (0xc1) or nested too deeply at p + s->off. */
int mpack_scan_step(struct mpack_scan *s, const uint8_t *p, size_t avail, uint64_t *need);

/* Size of the complete value at p (nesting up to MPACK_MAX_DEPTH), 0 if p[0..avail) does not
 * start with one. */
uint64_t mpack_value_size(const uint8_t *p, size_t avail);

#endif
