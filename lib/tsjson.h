/* tsjson: a token-stream record as one line of JSON (the msgpack-to-JSON mapping: docs/stream.md).
 * Ownership: reads the caller's record, writes to the caller's FILE; nothing is allocated or kept.
 * Errors: 0 success, ERR_FAIL (<= -2) on a write error, with the message in err_t; never exit(). */
#ifndef DLM_TSJSON_H
#define DLM_TSJSON_H

#include <stdio.h>

#include "err.h"

/* tstream.h defines the record (and includes this header, so its callers see the function). */
struct ts_record;

/* Prints r as one line of JSON: {"id":..,"tokens":[..],<other fields in order>}\n (docs/stream.md
 * gives the msgpack-to-JSON mapping). Fails on a write error. */
int ts_record_write_json(FILE *fp, const struct ts_record *r, err_t *e);

#endif
