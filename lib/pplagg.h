/* pplagg: the ways perplexity is aggregated over a set of scored sequences (or bound blocks), each
 * under the name the evaluation spec (eval.md §3.5, §4) gives it:
 *
 *   A  exp of the mean       exp(Σ nll / Σ n): corpus perplexity, the paper's "A.mean().exp()";
 *                            MDLM's generative perplexity when the targets are masked first-EOS
 *   B  mean of exp           mean_i exp(nll_i / n_i): Lou et al.'s "A.exp().mean()"
 *   C  mean over batches     of exp(batch mean per-token bound), full batches only (bound blocks)
 *   D  mean over draws       mean_{j,k} exp(b_jk / L) (bound draws only)
 *   SEDD                     run_train.py's generative perplexity: per batch of B sequences the
 *                            mean of exp(nll_i / n_i), then the mean over the full batches; an
 *                            incomplete last batch is dropped (B = 1: rule B)
 *   SDTT                     exp(mean_i nll_i / n_i)
 *
 * The accumulator takes one sequence at a time, so a stream of any length aggregates in O(1)
 * memory; the array functions serve the fixtures and the unit tests. */
#ifndef DLM_PPLAGG_H
#define DLM_PPLAGG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pplagg {
    size_t batch;            /* B of the SEDD rule (>= 1) */
    double nll, tokens;      /* Σ nll, Σ n over the sequences with n > 0 */
    double exp_sum;          /* Σ exp(nll_i / n_i) */
    double mean_nll_sum;     /* Σ nll_i / n_i */
    uint64_t seqs, empty;    /* sequences with n > 0; with n == 0 (left out of every mean) */
    double batch_exp_sum;    /* Σ exp(nll_i / n_i) in the current, unfinished batch */
    size_t in_batch;         /* sequences in it */
    double batches_sum;      /* Σ over finished batches of their mean */
    uint64_t batches;        /* finished batches */
    double var_sum;          /* Σ stderr_i² over the sequences that carry one */
    uint64_t with_stderr;    /* how many carry one (all of them: the error bar is defined) */
} pplagg;

/* Starts an empty accumulator whose SEDD rule uses batches of `batch` (0 counts as 1). */
void pplagg_init(pplagg *a, size_t batch);
/* Adds one sequence: summed NLL (nats), n scored tokens (n == 0: counted in empty only) and the
 * standard error of nll (NAN when the record has none). */
void pplagg_add(pplagg *a, double nll, double n, double nll_stderr);

/* Results; NAN when undefined (no tokens, no full batch, no error bar). */
double pplagg_nll_per_token(const pplagg *a);
double pplagg_exp_of_mean(const pplagg *a);     /* A */
double pplagg_mean_of_exp(const pplagg *a);     /* B */
double pplagg_sedd(const pplagg *a);            /* SEDD rule, last partial batch dropped */
double pplagg_sdtt(const pplagg *a);            /* exp(mean_i nll_i / n_i) */
/* Standard error of nll_per_token: sqrt(Σ stderr_i²) / Σ n (independent sequences); NAN unless
 * every sequence with tokens carried a standard error. */
double pplagg_nll_per_token_stderr(const pplagg *a);
/* Sequences that the SEDD rule dropped (the incomplete last batch). */
uint64_t pplagg_sedd_dropped(const pplagg *a);

/* MDLM's target mask (compute_generative_perplexity): target j (token j + 1, j = 0..n-2) counts
 * when that token is not eos, or is the first eos of the row counting from position 0. Writes
 * n - 1 entries of 0/1 into mask; @return how many are 1. */
size_t pplagg_first_eos_mask(const uint32_t *tokens, size_t n, uint32_t eos, unsigned char *mask);
/* The position of the first eos in tokens[0..n), n when there is none. */
size_t pplagg_first_eos(const uint32_t *tokens, size_t n, uint32_t eos);
/* Whether the token at position p (first: pplagg_first_eos of its row) counts under that mask. */
static inline bool pplagg_mdlm_counts(const uint32_t *tokens, size_t p, size_t first, uint32_t eos)
{
    return tokens[p] != eos || p == first;
}

/* Orders A–D over Monte-Carlo bound draws b[j*K + k] (nats summed over L tokens per block) of
 * `blocks` blocks, C over batches of `batch` blocks (last partial batch dropped; NAN if none). out[0..3] = A..D;
 * per_block (optional, `blocks` entries) receives mean_k b_jk / L. */
void pplagg_bound_orders(const double *b, size_t blocks, size_t K, double L, size_t batch,
                         double out[4], double *per_block);

#endif
