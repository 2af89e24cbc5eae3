/* utf8: validation and U+FFFD replacement (see utf8.h). Table 3-7 of the Unicode standard
 * written out as ranges of the second byte; an ASCII fast path checks 8 bytes at a time. */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

int utf8_seq_len(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int need;
    unsigned lo = 0x80, hi = 0xBF; /* range of the second byte; later bytes are 80..BF */
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0; /* no overlongs */
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0)
            lo = 0x90; /* no overlongs */
        else if (c == 0xF4)
            hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        return -1; /* 80..C1, F5..FF never start a sequence */
    }
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n) return -k;
        unsigned b = s[k];
        if (b < lo || b > hi) return -k;
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

/* Length of the ASCII prefix of s[0..n). */
static size_t ascii_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull) break;
    }
    while (i < n && s[i] < 0x80) i++;
    return i;
}

size_t utf8_validate(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        i += ascii_prefix(s + i, n - i);
        while (i < n && s[i] >= 0x80) {
            int k = utf8_seq_len(str + i, n - i);
            if (k < 0) return i;
            i += (size_t)k;
        }
    }
    return n;
}

size_t utf8_replace(const char *s, size_t n, char *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        size_t good = utf8_validate(s + i, n - i);
        memcpy(out + o, s + i, good);
        o += good;
        i += good;
        if (i == n) break;
        int k = utf8_seq_len(s + i, n - i);
        i += (size_t)-k;
        memcpy(out + o, UTF8_REPLACEMENT, 3);
        o += 3;
    }
    return o;
}
