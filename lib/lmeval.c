/* lmeval: the harness's task definitions (v0.4.2 YAML/utils), re-stated from specs/eval.md §7. */
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include "detok.h"
#include "lmeval.h"

static const char *const names[LMEVAL_N] = {"lambada_openai", "hellaswag", "piqa",
                                            "arc_easy", "arc_challenge", "winogrande"};

int lmeval_parse(const char *name, lmeval_task *out, err_t *e)
{
    for (int i = 0; i < LMEVAL_N; i++)
        if (strcmp(name, names[i]) == 0) return *out = (lmeval_task)i, 0;
    return err_set(e, "unknown task '%s' (lambada_openai, hellaswag, piqa, arc_easy, "
                      "arc_challenge, winogrande)", name);
}

const char *lmeval_name(lmeval_task t) { return names[t]; }

size_t lmeval_utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static char *cat3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = malloc(la + lb + lc + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
    return s;
}

/* Python str.replace(from, to) into a new string. */
static char *py_replace(const char *s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    for (const char *p = s; (p = strstr(p, from)); p += fl) n++;
    char *o = malloc(strlen(s) + n * tl + 1), *w = o;
    if (!o) return NULL;
    const char *p = s, *q;
    while ((q = strstr(p, from))) {
        memcpy(w, p, (size_t)(q - p));
        w += q - p;
        memcpy(w, to, tl);
        w += tl;
        p = q + fl;
    }
    strcpy(w, p);
    return o;
}

/* Python str.capitalize(): first code point upper-cased, the rest lower-cased. */
static char *py_capitalize(const char *s)
{
    locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    size_t n = strlen(s);
    char *o = malloc(4 * n + 1), *w = o;
    if (!o) {
        if (loc) freelocale(loc);
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; p[i];) {
        uint32_t c = p[i];
        size_t l = 1;
        if (c >= 0xf0 && p[i + 1] && p[i + 2] && p[i + 3])
            c = (c & 7) << 18 | (p[i + 1] & 63u) << 12 | (p[i + 2] & 63u) << 6 | (p[i + 3] & 63u), l = 4;
        else if (c >= 0xe0 && p[i + 1] && p[i + 2])
            c = (c & 15) << 12 | (p[i + 1] & 63u) << 6 | (p[i + 2] & 63u), l = 3;
        else if (c >= 0xc0 && p[i + 1])
            c = (c & 31) << 6 | (p[i + 1] & 63u), l = 2;
        uint32_t m = c;
        if (loc) m = (uint32_t)(i == 0 ? towupper_l((wint_t)c, loc) : towlower_l((wint_t)c, loc));
        else if (c < 128) m = (uint32_t)(i == 0 ? (c >= 'a' && c <= 'z' ? c - 32 : c)
                                                : (c >= 'A' && c <= 'Z' ? c + 32 : c));
        if (m < 0x80) *w++ = (char)m;
        else if (m < 0x800) *w++ = (char)(0xc0 | m >> 6), *w++ = (char)(0x80 | (m & 63));
        else if (m < 0x10000)
            *w++ = (char)(0xe0 | m >> 12), *w++ = (char)(0x80 | (m >> 6 & 63)),
            *w++ = (char)(0x80 | (m & 63));
        else
            *w++ = (char)(0xf0 | m >> 18), *w++ = (char)(0x80 | (m >> 12 & 63)),
            *w++ = (char)(0x80 | (m >> 6 & 63)), *w++ = (char)(0x80 | (m & 63));
        i += l;
    }
    *w = 0;
    if (loc) freelocale(loc);
    return o;
}

/* HellaSwag preprocess: strip, " [title]" -> ". ", drop "[...]" (not across lines), "  " -> " ". */
static char *hs_preprocess(const char *text)
{
    char *t = strdup(text);
    if (!t) return NULL;
    detok_strip(t);
    char *u = py_replace(t, " [title]", ". ");
    free(t);
    if (!u) return NULL;
    char *w = u;
    for (char *p = u; *p;) {
        if (*p == '[') {
            char *q = p + 1;
            while (*q && *q != ']' && *q != '\n') q++;
            if (*q == ']') {
                p = q + 1;
                continue;
            }
        }
        *w++ = *p++;
    }
    *w = 0;
    char *v = py_replace(u, "  ", " ");
    free(u);
    return v;
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int alloc_doc(lmeval_doc *d, lmeval_task t, size_t n, err_t *e)
{
    memset(d, 0, sizeof *d);
    d->task = t;
    d->n_req = n;
    d->gold = -1;
    d->context = calloc(n, sizeof *d->context);
    d->continuation = calloc(n, sizeof *d->continuation);
    d->choices = calloc(n, sizeof *d->choices);
    if (!d->context || !d->continuation || !d->choices) {
        lmeval_doc_free(d);
        return err_set(e, "lmeval: out of memory");
    }
    return 0;
}

void lmeval_doc_free(lmeval_doc *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->n_req; i++) {
        if (d->context) free(d->context[i]);
        if (d->continuation) free(d->continuation[i]);
        if (d->choices) free(d->choices[i]);
    }
    free(d->context);
    free(d->continuation);
    free(d->choices);
    memset(d, 0, sizeof *d);
}

/* Sets the multiple-choice requests: one shared context, " " + choice each. */
static int set_choices(lmeval_doc *d, const char *ctx, err_t *e)
{
    for (size_t i = 0; i < d->n_req; i++) {
        d->context[i] = strdup(ctx);
        d->continuation[i] = cat3(" ", d->choices[i], "");
        if (!d->context[i] || !d->continuation[i]) return err_set(e, "lmeval: out of memory");
    }
    return 0;
}

static int build(lmeval_task t, const json_t *row, lmeval_doc *d, err_t *e)
{
    switch (t) {
    case LMEVAL_LAMBADA: {
        const char *text = jstr(row, "text");
        if (!text) return err_set(e, "lambada: missing 'text'");
        if (alloc_doc(d, t, 1, e)) return ERR_FAIL;
        const char *sp = strrchr(text, ' ');
        size_t cut = sp ? (size_t)(sp - text) : 0;
        d->context[0] = strndup(text, cut);
        d->continuation[0] = cat3(" ", sp ? sp + 1 : text, "");
        if (!d->context[0] || !d->continuation[0]) return err_set(e, "lmeval: out of memory");
        return 0;
    }
    case LMEVAL_HELLASWAG: {
        const char *al = jstr(row, "activity_label"), *a = jstr(row, "ctx_a"),
                   *b = jstr(row, "ctx_b"), *label = jstr(row, "label");
        const json_t *end = json_object_get(row, "endings");
        if (!al || !a || !b || !label || !json_is_array(end))
            return err_set(e, "hellaswag: missing activity_label, ctx_a, ctx_b, label or endings");
        if (alloc_doc(d, t, json_array_size(end), e)) return ERR_FAIL;
        d->gold = atoi(label);
        char *cap = py_capitalize(b), *ctx = cap ? cat3(a, " ", cap) : NULL;
        char *full = ctx ? cat3(al, ": ", ctx) : NULL, *query = full ? hs_preprocess(full) : NULL;
        free(cap), free(ctx), free(full);
        if (!query) return err_set(e, "lmeval: out of memory");
        for (size_t i = 0; i < d->n_req; i++) {
            const char *s = json_string_value(json_array_get(end, i));
            d->choices[i] = s ? hs_preprocess(s) : NULL;
            if (!d->choices[i]) {
                free(query);
                return err_set(e, "hellaswag: bad ending %zu", i);
            }
        }
        int rc = set_choices(d, query, e);
        free(query);
        return rc;
    }
    case LMEVAL_PIQA: {
        const char *goal = jstr(row, "goal"), *s1 = jstr(row, "sol1"), *s2 = jstr(row, "sol2");
        const json_t *l = json_object_get(row, "label");
        if (!goal || !s1 || !s2 || !json_is_integer(l))
            return err_set(e, "piqa: missing goal, sol1, sol2 or label");
        if (alloc_doc(d, t, 2, e)) return ERR_FAIL;
        d->gold = (int)json_integer_value(l);
        d->choices[0] = strdup(s1);
        d->choices[1] = strdup(s2);
        char *ctx = cat3("Question: ", goal, "\nAnswer:");
        int rc = ctx && d->choices[0] && d->choices[1] ? set_choices(d, ctx, e)
                                                       : err_set(e, "lmeval: out of memory");
        free(ctx);
        return rc;
    }
    case LMEVAL_ARC_EASY:
    case LMEVAL_ARC_CHALLENGE: {
        const char *q = jstr(row, "question"), *key = jstr(row, "answerKey");
        const json_t *ch = json_object_get(row, "choices"), *text = json_object_get(ch, "text"),
                     *label = json_object_get(ch, "label");
        if (!q || !key || !json_is_array(text) || !json_is_array(label))
            return err_set(e, "arc: missing question, answerKey or choices");
        if (alloc_doc(d, t, json_array_size(text), e)) return ERR_FAIL;
        for (size_t i = 0; i < d->n_req; i++) {
            const char *s = json_string_value(json_array_get(text, i)),
                       *lb = json_string_value(json_array_get(label, i));
            if (!s) return err_set(e, "arc: choice %zu is not a string", i);
            d->choices[i] = strdup(s);
            if (lb && d->gold < 0 && strcmp(lb, key) == 0) d->gold = (int)i;
        }
        if (d->gold < 0) return err_set(e, "arc: answerKey '%s' is not a label", key);
        char *ctx = cat3("Question: ", q, "\nAnswer:");
        int rc = ctx ? set_choices(d, ctx, e) : err_set(e, "lmeval: out of memory");
        free(ctx);
        return rc;
    }
    case LMEVAL_WINOGRANDE: {
        const char *s = jstr(row, "sentence"), *o1 = jstr(row, "option1"),
                   *o2 = jstr(row, "option2"), *ans = jstr(row, "answer");
        const char *us = s ? strchr(s, '_') : NULL;
        if (!us || !o1 || !o2 || !ans || (strcmp(ans, "1") && strcmp(ans, "2")))
            return err_set(e, "winogrande: missing or bad sentence, option1, option2 or answer");
        if (alloc_doc(d, t, 2, e)) return ERR_FAIL;
        d->gold = ans[0] - '1';
        char *pre = strndup(s, (size_t)(us - s)), *rest = strdup(us + 1);
        if (!pre || !rest) {
            free(pre), free(rest);
            return err_set(e, "lmeval: out of memory");
        }
        detok_strip(rest);
        const char *opt[2] = {o1, o2};
        for (int i = 0; i < 2; i++) {
            d->choices[i] = cat3(pre, opt[i], "");
            d->context[i] = cat3(pre, opt[i], "");
            d->continuation[i] = cat3(" ", rest, "");
        }
        free(pre), free(rest);
        return 0;
    }
    default: return err_set(e, "lmeval: unknown task");
    }
}

int lmeval_build(lmeval_task t, const json_t *row, lmeval_doc *d, err_t *e)
{
    memset(d, 0, sizeof *d);
    int rc = build(t, row, d, e);
    if (rc) lmeval_doc_free(d);
    return rc;
}

void lmeval_score(const lmeval_doc *d, const double *ll, const bool *is_greedy,
                  lmeval_scores *s)
{
    memset(s, 0, sizeof *s);
    if (d->task == LMEVAL_LAMBADA) {
        s->acc = is_greedy[0] ? 1.0 : 0.0;
        s->ll = ll[0];
        s->pred = s->pred_norm = -1;
        return;
    }
    double best = -INFINITY, best_n = -INFINITY;
    for (size_t i = 0; i < d->n_req; i++) {
        double n = ll[i] / (double)lmeval_utf8_len(d->choices[i]);
        if (i == 0 || ll[i] > best) best = ll[i], s->pred = (int)i;
        if (i == 0 || n > best_n) best_n = n, s->pred_norm = (int)i;
    }
    s->acc = s->pred == d->gold ? 1.0 : 0.0;
    s->acc_norm = s->pred_norm == d->gold ? 1.0 : 0.0;
}

int lmeval_agg_add(lmeval_agg *a, const lmeval_scores *s, err_t *e)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        double *x = realloc(a->acc, cap * sizeof *x);
        if (x) a->acc = x;
        double *y = x ? realloc(a->norm, cap * sizeof *y) : NULL;
        if (!x || !y) return err_set(e, "lmeval: out of memory");
        a->norm = y;
        a->cap = cap;
    }
    a->acc[a->n] = s->acc;
    a->norm[a->n] = s->acc_norm;
    a->n++;
    a->sum_ll += s->ll;
    return 0;
}

void lmeval_agg_free(lmeval_agg *a)
{
    if (!a) return;
    free(a->acc);
    free(a->norm);
    memset(a, 0, sizeof *a);
}

static double mean_of(const double *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s / (double)n;
}

/* lm-eval mean_stderr: sample_stddev / sqrt(n). */
static double stderr_of(const double *x, size_t n)
{
    if (n < 2) return NAN;
    double mu = mean_of(x, n), ss = 0;
    for (size_t i = 0; i < n; i++) ss += (x[i] - mu) * (x[i] - mu);
    return sqrt(ss / (double)(n - 1)) / sqrt((double)n);
}

json_t *lmeval_agg_json(const lmeval_agg *a, lmeval_task t)
{
    json_t *o = json_object();
    double n = (double)a->n;
    json_object_set_new(o, "acc", json_real(mean_of(a->acc, a->n)));
    json_object_set_new(o, "acc_stderr", json_real(stderr_of(a->acc, a->n)));
    if (t == LMEVAL_LAMBADA) {
        json_object_set_new(o, "perplexity", json_real(exp(-a->sum_ll / n)));
    } else if (t != LMEVAL_WINOGRANDE) {
        json_object_set_new(o, "acc_norm", json_real(mean_of(a->norm, a->n)));
        json_object_set_new(o, "acc_norm_stderr", json_real(stderr_of(a->norm, a->n)));
    }
    return o;
}
