/* trunc_sample: top-k / top-p draws (see trunc_sample.h). */
#include "trunc_sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { DIGIT_BITS = 11, BUCKETS = 1 << DIGIT_BITS };

struct trunc_sample_ws {
    int V;
    uint32_t *key, *key2;  /* (V) sort keys: ascending key = descending logit */
    int32_t *idx, *idx2;   /* (V) the candidates' token ids, in key order after the sort */
    double *p;             /* (V) the kept candidates' unnormalised probabilities */
};

trunc_sample_ws *trunc_sample_ws_new(int V)
{
    trunc_sample_ws *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    size_t n = V > 0 ? (size_t)V : 1;
    w->V = V;
    w->key = malloc(n * sizeof *w->key), w->key2 = malloc(n * sizeof *w->key2);
    w->idx = malloc(n * sizeof *w->idx), w->idx2 = malloc(n * sizeof *w->idx2);
    w->p = malloc(n * sizeof *w->p);
    if (!w->key || !w->key2 || !w->idx || !w->idx2 || !w->p) {
        trunc_sample_ws_free(w);
        return NULL;
    }
    return w;
}

void trunc_sample_ws_free(trunc_sample_ws *w)
{
    if (!w) return;
    free(w->key), free(w->key2), free(w->idx), free(w->idx2), free(w->p);
    free(w);
}

/* A key whose ascending order is z's descending order (-0 and +0 map to one key). */
static uint32_t descending_key(float z)
{
    uint32_t b;
    memcpy(&b, &z, sizeof b);
    if (b == 0x80000000u) b = 0;
    uint32_t ascending = b & 0x80000000u ? ~b : b | 0x80000000u;
    return ~ascending;
}

/* w->idx[0..V) = the token ids by descending logit, ties by ascending id: an LSD radix sort on
 * the keys, stable, of ids that start in ascending order. */
static void sort_candidates(trunc_sample_ws *w, const float *logits, int V)
{
    for (int j = 0; j < V; j++) w->key[j] = descending_key(logits[j]), w->idx[j] = j;
    static const int shift[] = {0, DIGIT_BITS, 2 * DIGIT_BITS};
    for (int pass = 0; pass < 3; pass++) {
        int s = shift[pass];
        size_t count[BUCKETS] = {0};
        for (int j = 0; j < V; j++) count[(w->key[j] >> s) & (BUCKETS - 1)]++;
        size_t at = 0;
        for (int b = 0; b < BUCKETS; b++) {
            size_t c = count[b];
            count[b] = at;
            at += c;
        }
        for (int j = 0; j < V; j++) {
            size_t to = count[(w->key[j] >> s) & (BUCKETS - 1)]++;
            w->key2[to] = w->key[j];
            w->idx2[to] = w->idx[j];
        }
        uint32_t *k = w->key;
        int32_t *i = w->idx;
        w->key = w->key2, w->idx = w->idx2;
        w->key2 = k, w->idx2 = i;
    }
}

int32_t trunc_sample_draw(trunc_sample_ws *w, const float *logits, int V, double inv_t,
                          int64_t top_k, double top_p, double u)
{
    sort_candidates(w, logits, V);
    const int32_t *c = w->idx;
    double *p = w->p;
    int n = top_k > 0 && top_k < V ? (int)top_k : V;
    float mx = -INFINITY;
    for (int j = 0; j < n; j++)
        if (logits[c[j]] > mx) mx = logits[c[j]];
    double total = 0;
    for (int j = 0; j < n; j++) total += p[j] = exp(((double)logits[c[j]] - mx) * inv_t);
    if (top_p < 1) { /* the smallest prefix with mass >= top_p */
        double cum = 0, keep_total = 0;
        int keep = n;
        for (int j = 0; j < n; j++) {
            cum += p[j];
            if (cum >= top_p * total) {
                keep = j + 1;
                break;
            }
        }
        n = keep;
        for (int j = 0; j < n; j++) keep_total += p[j];
        total = keep_total;
    }
    double target = u * total, cum = 0;
    for (int j = 0; j < n; j++) {
        cum += p[j];
        if (cum > target) return c[j];
    }
    return c[n - 1];
}
