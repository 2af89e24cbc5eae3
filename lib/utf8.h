/* utf8: UTF-8 validation; U+FFFD replacement exactly like Python's decode('utf-8', 'replace').
 * Ownership: nothing is allocated; callers pass the buffers (see UTF8_REPLACE_BOUND).
 * Errors: none; ill-formed input is data: utf8_validate says where, utf8_replace repairs it. */
#ifndef DLM_UTF8_H
#define DLM_UTF8_H

#include <stddef.h>

/* Largest output of utf8_replace() for n input bytes: each byte may become U+FFFD (3 bytes). */
#define UTF8_REPLACE_BOUND(n) ((n)*3)

/* The encoding of U+FFFD REPLACEMENT CHARACTER. */
#define UTF8_REPLACEMENT "\xEF\xBF\xBD"

/* Checks that s[0..n) is well-formed UTF-8 (Unicode Table 3-7: no overlongs, no surrogates,
 * nothing above U+10FFFF, no truncated sequence at the end).
 * @return n when it is, else the byte offset where the first ill-formed subsequence starts. */
size_t utf8_validate(const char *s, size_t n);

/* Writes s[0..n) to out with every maximal ill-formed subsequence replaced by one U+FFFD (Unicode
 * "best practice", = Python errors='replace' = WHATWG TextDecoder); out must hold
 * UTF8_REPLACE_BOUND(n) bytes and must not overlap s. Valid input is copied unchanged.
 * @return the number of bytes written (no NUL is added). */
size_t utf8_replace(const char *s, size_t n, char *out);

/* Length of the well-formed sequence starting s[0] (n >= 1 bytes available): 1-4, or -k where k
 * (1-3) is the length of the maximal ill-formed subsequence there (what one U+FFFD replaces). */
int utf8_seq_len(const char *s, size_t n);

#endif
