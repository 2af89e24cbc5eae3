/* diversity: token-diversity metrics of samples and their set-level summaries (specs/eval.md §5). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diversity.h"

const char *const diversity_metric_names[DIVERSITY_N_METRICS] = {
    "unique_unigram_fraction", "unigram_entropy_nats", "unigram_entropy_bits", "repetition_rate",
    "repetition_rate_excl_first"};

double diversity_metric_value(const diversity_metrics *m, int k)
{
    switch (k) {
    case 0: return m->unique_unigram_fraction;
    case 1: return m->unigram_entropy_nats;
    case 2: return m->unigram_entropy_bits;
    case 3: return m->repetition_rate;
    default: return m->repetition_rate_excl_first;
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int diversity_sample(const uint32_t *tokens, size_t n, const diversity_opts *o,
                     diversity_metrics *m, err_t *e)
{
    uint32_t *t = malloc((n ? n : 1) * sizeof *t), *sorted = malloc((n ? n : 1) * sizeof *t);
    if (!t || !sorted) {
        free(t);
        free(sorted);
        return err_set(e, "diversity_sample: out of memory");
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        if (o->drop_token < 0 || tokens[i] != (uint32_t)o->drop_token) t[len++] = tokens[i];
    if (len == 0) {
        free(t);
        free(sorted);
        return err_set(e, "diversity_sample: no tokens to measure");
    }
    memset(m, 0, sizeof *m);
    m->n_tokens = len;
    /* counts from the sorted copy; entropy summed in order of token id */
    memcpy(sorted, t, len * sizeof *t);
    qsort(sorted, len, sizeof *sorted, cmp_u32);
    double N = (double)len, h = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && sorted[j] == sorted[i]) j++;
        double p = (double)(j - i) / N;
        h -= p * log(p);
        m->n_unique++;
        i = j;
    }
    /* repeats: the last position of each token is kept in a hash table keyed by id */
    size_t cap = 16;
    while (cap < 2 * len) cap <<= 1;
    uint32_t *keys = malloc(cap * sizeof *keys);
    size_t *last = malloc(cap * sizeof *last);
    if (!keys || !last) {
        free(keys);
        free(last);
        free(t);
        free(sorted);
        return err_set(e, "diversity_sample: out of memory");
    }
    memset(last, 0xff, cap * sizeof *last); /* SIZE_MAX = empty slot */
    for (size_t i = 0; i < len; i++) {
        size_t s = (t[i] * 2654435761u) & (cap - 1);
        while (last[s] != SIZE_MAX && keys[s] != t[i]) s = (s + 1) & (cap - 1);
        if (last[s] != SIZE_MAX && i - last[s] <= o->window) m->repeated_tokens++;
        keys[s] = t[i];
        last[s] = i;
    }
    free(keys);
    free(last);
    m->unique_unigram_fraction = (double)m->n_unique / N;
    m->unigram_entropy_nats = h == 0 ? 0.0 : h;
    m->unigram_entropy_bits = m->unigram_entropy_nats / log(2.0);
    m->repetition_rate = (double)m->repeated_tokens / N;
    m->repetition_rate_excl_first = len > 1 ? (double)m->repeated_tokens / (N - 1) : 0.0;
    free(t);
    free(sorted);
    return 0;
}

void diversity_acc_init(diversity_acc *a) { memset(a, 0, sizeof *a); }

void diversity_acc_add(diversity_acc *a, const diversity_metrics *m)
{
    a->n++;
    for (int k = 0; k < DIVERSITY_N_METRICS; k++) {
        double x = diversity_metric_value(m, k), d = x - a->mean[k];
        a->mean[k] += d / (double)a->n;
        a->m2[k] += d * (x - a->mean[k]);
    }
}

double diversity_acc_std(const diversity_acc *a, int k, int ddof)
{
    if (a->n <= (size_t)ddof) return 0.0;
    return sqrt(a->m2[k] / (double)(a->n - (size_t)ddof));
}
