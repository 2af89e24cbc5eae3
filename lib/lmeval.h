/* lmeval: lm-evaluation-harness v0.4.2 zero-shot tasks without the model — request construction
 * (exact prompt strings and continuation splits per task), per-document scoring from
 * log-likelihoods, and aggregation (means, stderr = sample std / sqrt(n), LAMBADA perplexity).
 * Ownership: lmeval_doc owns its strings (lmeval_doc_free). Errors: ERR_FAIL with e set. */
#ifndef DLM_LMEVAL_H
#define DLM_LMEVAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"

typedef enum {
    LMEVAL_LAMBADA, LMEVAL_HELLASWAG, LMEVAL_PIQA, LMEVAL_ARC_EASY, LMEVAL_ARC_CHALLENGE,
    LMEVAL_WINOGRANDE, LMEVAL_N
} lmeval_task;

/* Parses the harness task name (lambada_openai, hellaswag, piqa, arc_easy, arc_challenge,
 * winogrande). @return 0 or ERR_FAIL. */
int lmeval_parse(const char *name, lmeval_task *out, err_t *e);
const char *lmeval_name(lmeval_task t);

/* The requests of one document: n_req (context, continuation) pairs for loglikelihood. */
typedef struct lmeval_doc {
    lmeval_task task;
    size_t n_req;
    char **context, **continuation; /* (n_req) */
    char **choices;                 /* (n_req) choice strings (NULL for LAMBADA) */
    int gold;                       /* -1 for LAMBADA */
} lmeval_doc;

/* Builds the requests of a document given as a Hugging Face row (dataset_next's layout).
 * @return 0 or ERR_FAIL (a field missing or malformed). */
int lmeval_build(lmeval_task t, const json_t *row, lmeval_doc *d, err_t *e);
void lmeval_doc_free(lmeval_doc *d);

/* Per-document scores from the model's outputs. */
typedef struct lmeval_scores {
    int pred, pred_norm;  /* argmax (first on ties) of ll and of ll / len(choice) */
    double acc, acc_norm; /* for LAMBADA: acc = all greedy, acc_norm unused */
    double ll;            /* LAMBADA: the continuation's log-likelihood */
} lmeval_scores;

/* ll and is_greedy hold one value per request. */
void lmeval_score(const lmeval_doc *d, const double *ll, const bool *is_greedy,
                  lmeval_scores *s);

/* Number of Unicode code points of a UTF-8 string (acc_norm's length). */
size_t lmeval_utf8_len(const char *s);

/* Aggregates over documents, as the harness does (mean = sum/n in document order, stderr =
 * sqrt(sum((x-mean)^2)/(n-1))/sqrt(n)); zero-initialise, free with lmeval_agg_free. */
typedef struct lmeval_agg {
    size_t n, cap;
    double *acc, *norm; /* (n) per-document values */
    double sum_ll;
} lmeval_agg;

/* @return 0 or ERR_FAIL on OOM. */
int lmeval_agg_add(lmeval_agg *a, const lmeval_scores *s, err_t *e);
void lmeval_agg_free(lmeval_agg *a);
/* Writes {acc, acc_stderr, acc_norm, acc_norm_stderr} (or {acc, acc_stderr, perplexity} for
 * LAMBADA; acc only for WinoGrande) into a new JSON object. */
json_t *lmeval_agg_json(const lmeval_agg *a, lmeval_task t);

#endif
