/* detok: the reference detokenizers (SEDD data.py: wikitext, ptb, lm1b, lambada) with Python
 * str.replace / re.sub semantics (PCRE2, Unicode \w and \s).
 * Ownership: detok_apply returns a malloc'd string the caller frees. Errors: NULL + e on failure. */
#ifndef DLM_DETOK_H
#define DLM_DETOK_H

#include <stddef.h>

#include "err.h"

typedef enum { DETOK_NONE, DETOK_WIKITEXT, DETOK_PTB, DETOK_LM1B, DETOK_LAMBADA } detok_kind;

/* Parses "none", "wikitext" (or "wt"), "ptb", "lm1b", "lambada". @return 0 or ERR_FAIL. */
int detok_parse(const char *name, detok_kind *out, err_t *e);
const char *detok_name(detok_kind k);

/* Applies the detokenizer to text[0..n) (UTF-8). @return a new NUL-terminated string (its length
 * in *out_len when not NULL), or NULL with e set. */
char *detok_apply(detok_kind k, const char *text, size_t n, size_t *out_len, err_t *e);

/* Python str.strip() in place: Unicode whitespace removed from both ends of s (NUL-terminated).
 * @return the new length. */
size_t detok_strip(char *s);

#endif
