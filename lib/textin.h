/* textin: input text cut into documents — the whole input, one per line, or one JSON string field
 * per line — with the UTF-8 policy applied (an error naming the byte offset, or U+FFFD replacement).
 * Ownership: a textin owns the input bytes and every document's text (textin_free). Errors: ERR_FAIL. */
#ifndef DLM_TEXTIN_H
#define DLM_TEXTIN_H

#include <stddef.h>
#include <stdio.h>

#include "err.h"

typedef enum {
    TEXTIN_DOCUMENT, /* the whole input is one document, newlines included */
    TEXTIN_LINES,    /* one document per line, without its '\n'; a last line may lack the '\n' */
    TEXTIN_JSONL,    /* one JSON object per line; the document is the string in one field */
} textin_mode;

typedef enum {
    TEXTIN_UTF8_ERROR,   /* invalid UTF-8 is an error naming the byte offset */
    TEXTIN_UTF8_REPLACE, /* each maximal ill-formed subsequence becomes U+FFFD (Python 'replace') */
} textin_utf8;

typedef struct textin_doc {
    const char *text; /* (len) bytes of valid UTF-8, not NUL-terminated; owned by the textin */
    size_t len;
} textin_doc;

typedef struct textin {
    textin_doc *docs; /* (n_docs) in input order */
    size_t n_docs;
    /* private */
    char *input;      /* the input bytes (after replacement) */
    char *strings;    /* decoded JSON strings, back to back */
} textin;

/* Reads all of fp (name is for messages) and cuts it into documents. field names the JSON key
 * for TEXTIN_JSONL (NULL otherwise). Empty input is an error ("empty input"), as is a JSON line
 * that is not an object with a string in field (the message names the line).
 * @return 0, or ERR_FAIL with t left empty. */
int textin_read(FILE *fp, const char *name, textin_mode mode, const char *field, textin_utf8 utf8,
                textin *t, err_t *e);

/* Frees what t holds and zeroes it; t itself is the caller's. */
void textin_free(textin *t);

#endif
