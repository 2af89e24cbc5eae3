/* diversity: per-sample token diversity (unique-unigram fraction, unigram entropy, repetition
 * within the previous W tokens) and set-level means/standard deviations over samples.
 * Ownership: a diversity_acc owns its running sums only (no allocation); diversity_sample uses a
 * caller-provided scratch (diversity_scratch_*). Errors: ERR_FAIL (in e) on OOM or empty input. */
#ifndef DLM_DIVERSITY_H
#define DLM_DIVERSITY_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* The metrics of one sample. */
typedef struct diversity_metrics {
    size_t n_tokens, n_unique, repeated_tokens;
    double unique_unigram_fraction;   /* n_unique / N */
    double unigram_entropy_nats;      /* -sum_v (c_v/N) ln(c_v/N) */
    double unigram_entropy_bits;      /* the same in log2 */
    double repetition_rate;           /* repeated / N */
    double repetition_rate_excl_first; /* repeated / (N-1); 0 when N == 1 */
} diversity_metrics;

/* Conventions the papers differ on (the defaults are the paper's: window 100, nothing filtered). */
typedef struct diversity_opts {
    size_t window;       /* a repeat counts when it occurs within the previous `window` tokens */
    int64_t drop_token;  /* a token id removed before measuring (e.g. EOS 50256); -1 = none */
} diversity_opts;

#define DIVERSITY_OPTS_DEFAULT ((diversity_opts){.window = 100, .drop_token = -1})

/* Computes the metrics of tokens[0..n). A sample that is empty (after dropping) is an error.
 * @return 0 or ERR_FAIL. */
int diversity_sample(const uint32_t *tokens /* (n) */, size_t n, const diversity_opts *o,
                     diversity_metrics *m, err_t *e);

/* Names and accessors of the real-valued metrics, in output order. */
enum { DIVERSITY_N_METRICS = 5 };
extern const char *const diversity_metric_names[DIVERSITY_N_METRICS];
double diversity_metric_value(const diversity_metrics *m, int k);

/* Running mean and standard deviation (population and sample) of each metric over samples;
 * Welford's update, so the order of samples changes the result by rounding only. */
typedef struct diversity_acc {
    size_t n;
    double mean[DIVERSITY_N_METRICS], m2[DIVERSITY_N_METRICS];
} diversity_acc;

void diversity_acc_init(diversity_acc *a);
void diversity_acc_add(diversity_acc *a, const diversity_metrics *m);
/* Population (ddof 0) or sample (ddof 1) standard deviation of metric k; 0 for too few samples. */
double diversity_acc_std(const diversity_acc *a, int k, int ddof);

#endif
