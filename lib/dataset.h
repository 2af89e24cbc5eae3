/* dataset: readers for the benchmark files in their published layouts (original and Hugging Face
 * rows), normalised to the Hugging Face row layout, and the reference chunking protocol (EOS per
 * record, contiguous shards, map batches, fixed blocks, remainder dropped per batch).
 * Ownership: a dataset_reader owns its FILEs and the row it last returned (valid until the next
 * dataset_next). Errors: ERR_FAIL with "file:line: message" in e; ERR_EOF at the end. */
#ifndef DLM_DATASET_H
#define DLM_DATASET_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "detok.h"
#include "err.h"

typedef enum {
    DATASET_LAMBADA, DATASET_WEBTEXT, DATASET_WIKITEXT, DATASET_PTB, DATASET_LM1B,
    DATASET_HELLASWAG, DATASET_PIQA, DATASET_ARC, DATASET_WINOGRANDE, DATASET_N
} dataset_kind;

/* Parses a dataset name (lambada, webtext, wikitext, ptb, lm1b, hellaswag, piqa, arc,
 * winogrande). @return 0 or ERR_FAIL. */
int dataset_parse(const char *name, dataset_kind *out, err_t *e);
const char *dataset_name(dataset_kind k);
/* The reference detokenizer of a perplexity dataset (DETOK_NONE for the others). */
detok_kind dataset_detokenizer(dataset_kind k);

typedef struct dataset_reader dataset_reader;

/* Opens path (the layout is detected from the content: a JSON line or raw text). labels is the
 * PIQA label file of the original layout (NULL otherwise). @return 0 or ERR_FAIL. */
int dataset_open(dataset_reader **r, dataset_kind k, const char *path, const char *labels,
                 err_t *e);
/* Next record as a row in the Hugging Face layout ({"text"} for the text sets, {"sentence"}
 * for PTB, the task fields for the benchmarks; borrowed). @return 0, ERR_EOF or ERR_FAIL. */
int dataset_next(dataset_reader *r, json_t **row, err_t *e);
/* 1-based line of the record last returned. */
size_t dataset_line(const dataset_reader *r);
void dataset_close(dataset_reader *r);

/* The text of a row of a text dataset (the field the reference uses). */
const char *dataset_row_text(dataset_kind k, const json_t *row);

/* The reference chunking. */
typedef enum { DATASET_CHUNK_SEDD, DATASET_CHUNK_MDLM_WRAP } dataset_chunk_mode;
typedef struct dataset_chunk_opts {
    dataset_chunk_mode mode;
    size_t block;      /* [1024] */
    size_t num_proc;   /* contiguous shards [8] */
    size_t map_batch;  /* records per map batch [1000] */
    uint32_t eos, bos; /* [50256] */
} dataset_chunk_opts;

#define DATASET_CHUNK_DEFAULT                                                                 \
    ((dataset_chunk_opts){.mode = DATASET_CHUNK_SEDD, .block = 1024, .num_proc = 8,           \
                          .map_batch = 1000, .eos = 50256, .bos = 50256})

typedef int (*dataset_block_fn)(const uint32_t *tokens /* (n) */, size_t n, void *ctx, err_t *e);

/* Applies the protocol to n_records token records (each without EOS), calling emit per block in
 * order. @return 0 or the first error. */
int dataset_chunk(const uint32_t *const *records, const size_t *lens, size_t n_records,
                  const dataset_chunk_opts *o, dataset_block_fn emit, void *ctx, err_t *e);

#endif
