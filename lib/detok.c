/* detok: ports of the reference detokenizers, rule by rule (specs/eval.md §3.1). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "detok.h"

static const char *const names[] = {"none", "wikitext", "ptb", "lm1b", "lambada"};

int detok_parse(const char *name, detok_kind *out, err_t *e)
{
    for (int i = 0; i < 5; i++)
        if (strcmp(name, names[i]) == 0) return *out = (detok_kind)i, 0;
    if (strcmp(name, "wt") == 0) return *out = DETOK_WIKITEXT, 0;
    return err_set(e, "unknown detokenizer '%s' (none, wikitext, ptb, lm1b, lambada)", name);
}

const char *detok_name(detok_kind k) { return names[k]; }

/* A growable string. */
typedef struct str {
    char *s;
    size_t n;
    bool oom;
} str;

/* Python str.replace(from, to): all non-overlapping occurrences, left to right. */
static void replace(str *t, const char *from, const char *to)
{
    if (t->oom) return;
    size_t fl = strlen(from), tl = strlen(to), cnt = 0;
    for (const char *p = t->s; (p = strstr(p, from)); p += fl) cnt++;
    if (!cnt) return;
    size_t nn = t->n - cnt * fl + cnt * tl;
    char *o = malloc(nn + 1), *w = o;
    if (!o) {
        t->oom = true;
        return;
    }
    const char *p = t->s, *q;
    while ((q = strstr(p, from))) {
        memcpy(w, p, (size_t)(q - p));
        w += q - p;
        memcpy(w, to, tl);
        w += tl;
        p = q + fl;
    }
    size_t rest = t->n - (size_t)(p - t->s);
    memcpy(w, p, rest);
    w[rest] = 0;
    free(t->s);
    t->s = o;
    t->n = nn;
}

/* Python re.sub(pattern, repl) with repl in PCRE2 syntax ($1, $$). */
static int sub(str *t, const char *pattern, const char *repl, err_t *e)
{
    if (t->oom) return 0;
    int ec;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &ec, &off, NULL);
    if (!re) return err_set(e, "detok: bad pattern %s", pattern);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    PCRE2_SIZE cap = t->n * 2 + 64;
    char *o = NULL;
    int rc;
    for (;;) {
        o = malloc(cap);
        if (!o) break;
        PCRE2_SIZE len = cap;
        rc = pcre2_substitute(re, (PCRE2_SPTR)t->s, t->n, 0,
                              PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH, md, NULL,
                              (PCRE2_SPTR)repl, PCRE2_ZERO_TERMINATED, (PCRE2_UCHAR *)o, &len);
        if (rc == PCRE2_ERROR_NOMEMORY) {
            free(o);
            o = NULL;
            cap = len + 1;
            continue;
        }
        if (rc < 0) {
            free(o);
            o = NULL;
            pcre2_match_data_free(md);
            pcre2_code_free(re);
            return err_set(e, "detok: substitution failed (%d) for %s", rc, pattern);
        }
        free(t->s);
        t->s = o;
        t->n = len;
        break;
    }
    if (!o) t->oom = true;
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return 0;
}

/* Length of the UTF-8 whitespace character (Python str.isspace) at p, 0 if none. */
static size_t space_at(const unsigned char *p, size_t n)
{
    if (n >= 1 && ((p[0] >= 9 && p[0] <= 13) || (p[0] >= 0x1c && p[0] <= 0x20))) return 1;
    if (n >= 2 && p[0] == 0xc2 && (p[1] == 0x85 || p[1] == 0xa0)) return 2;
    if (n >= 3 && p[0] == 0xe1 && p[1] == 0x9a && p[2] == 0x80) return 3;
    if (n >= 3 && p[0] == 0xe2 && p[1] == 0x80 &&
        ((p[2] >= 0x80 && p[2] <= 0x8a) || p[2] == 0xa8 || p[2] == 0xa9 || p[2] == 0xaf))
        return 3;
    if (n >= 3 && p[0] == 0xe2 && p[1] == 0x81 && p[2] == 0x9f) return 3;
    if (n >= 3 && p[0] == 0xe3 && p[1] == 0x80 && p[2] == 0x80) return 3;
    return 0;
}

/* Python str.strip(): whitespace removed from both ends. */
static void strip(str *t)
{
    if (t->oom) return;
    const unsigned char *s = (const unsigned char *)t->s;
    size_t a = 0, b = t->n, l;
    while (a < b && (l = space_at(s + a, b - a))) a += l;
    /* trailing: scan forward for the last non-space character */
    size_t end = a, i = a;
    while (i < b) {
        l = space_at(s + i, b - i);
        if (l) i += l;
        else {
            i++;
            while (i < b && (s[i] & 0xc0) == 0x80) i++;
            end = i;
        }
    }
    memmove(t->s, t->s + a, end - a);
    t->n = end - a;
    t->s[t->n] = 0;
}

size_t detok_strip(char *s)
{
    str t = {s, strlen(s), false};
    strip(&t);
    return t.n;
}

static int wikitext(str *t, err_t *e)
{
    replace(t, "s '", "s'");
    if (sub(t, "/' [0-9]/", "/'[0-9]/", e)) return ERR_FAIL;
    replace(t, " @-@ ", "-");
    replace(t, " @,@ ", ",");
    replace(t, " @.@ ", ".");
    replace(t, " : ", ": ");
    replace(t, " ; ", "; ");
    replace(t, " . ", ". ");
    replace(t, " ! ", "! ");
    replace(t, " ? ", "? ");
    replace(t, " , ", ", ");
    if (sub(t, "\\(\\s*([^\\)]*?)\\s*\\)", "($1)", e) || sub(t, "\\[\\s*([^\\]]*?)\\s*\\]", "[$1]", e) ||
        sub(t, "{\\s*([^}]*?)\\s*}", "{$1}", e) || sub(t, "\"\\s*([^\"]*?)\\s*\"", "\"$1\"", e) ||
        sub(t, "'\\s*([^']*?)\\s*'", "'$1'", e))
        return ERR_FAIL;
    replace(t, "= = = =", "====");
    replace(t, "= = =", "===");
    replace(t, "= =", "==");
    replace(t, " \xc2\xb0 ", "\xc2\xb0");
    replace(t, " \n", "\n");
    replace(t, "\n ", "\n");
    replace(t, " N ", " 1 ");
    replace(t, " 's", "'s");
    return 0;
}

static int ptb(str *t)
{
    replace(t, " 's", "'s");
    replace(t, "s ' ", "s' ");
    replace(t, " n't", "n't");
    replace(t, " \n ", "\n");
    replace(t, "\\/", "/");
    for (int i = 0; i < 10; i++) replace(t, " N ", " 1 ");
    replace(t, "$ 1", "$1");
    replace(t, "# 1", "#1");
    replace(t, "<unk>", "?");
    return 0;
}

static int lm1b(str *t, err_t *e)
{
    replace(t, "http : / / ", "http://");
    replace(t, "https : / / ", "https://");
    if (sub(t, " '(\\w+)", "'$1", e) || sub(t, " (\\w+) \\. ", " $1. ", e) ||
        sub(t, " (\\w+) \\.$", " $1.", e))
        return ERR_FAIL;
    replace(t, " ? ", "? ");
    if (sub(t, " \\?$", "?", e)) return ERR_FAIL;
    replace(t, " ! ", "! ");
    if (sub(t, " \\!$", "!", e)) return ERR_FAIL;
    replace(t, " , ", ", ");
    replace(t, " : ", ": ");
    replace(t, " ; ", "; ");
    replace(t, " / ", "/");
    if (sub(t, "\" ([^\"]+) \"", "\"$1\"", e) || sub(t, "' ([^']+) '", "'$1'", e) ||
        sub(t, "\\( ([^\\(\\)]+) \\)", "($1)", e) || sub(t, "\\[ ([^\\[\\]]+) \\]", "[$1]", e))
        return ERR_FAIL;
    replace(t, "$ ", "$");
    replace(t, "\xc2\xa3 ", "\xc2\xa3");
    return 0;
}

static int lambada(str *t)
{
    replace(t, "\xe2\x80\x9c", "\"");
    replace(t, "\xe2\x80\x9d", "\"");
    strip(t);
    if (t->oom) return 0;
    char *o = malloc(t->n + 2);
    if (!o) {
        t->oom = true;
        return 0;
    }
    o[0] = '\n';
    memcpy(o + 1, t->s, t->n + 1);
    free(t->s);
    t->s = o;
    t->n++;
    return 0;
}

char *detok_apply(detok_kind k, const char *text, size_t n, size_t *out_len, err_t *e)
{
    if (memchr(text, 0, n)) {
        err_set(e, "detok: text contains a NUL byte");
        return NULL;
    }
    str t = {malloc(n + 1), n, false};
    if (!t.s) {
        err_set(e, "detok: out of memory");
        return NULL;
    }
    memcpy(t.s, text, n);
    t.s[n] = 0;
    int rc = 0;
    switch (k) {
    case DETOK_NONE: break;
    case DETOK_WIKITEXT: rc = wikitext(&t, e); break;
    case DETOK_PTB: rc = ptb(&t); break;
    case DETOK_LM1B: rc = lm1b(&t, e); break;
    case DETOK_LAMBADA: rc = lambada(&t); break;
    }
    if (rc == 0 && t.oom) rc = err_set(e, "detok: out of memory");
    if (rc) {
        free(t.s);
        return NULL;
    }
    if (out_len) *out_len = t.n;
    return t.s;
}
