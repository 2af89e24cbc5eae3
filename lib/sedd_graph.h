/* sedd_graph: the absorbing and uniform SEDD graphs (spec sedd.md §2), one position at a time.
 * Ownership: sedd_graph is plain caller-owned data; vectors are caller buffers of g->dim entries.
 * Errors: none (inputs are trusted: token ids < dim); functions are pure and thread-safe. */
#ifndef DLM_SEDD_GRAPH_H
#define DLM_SEDD_GRAPH_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

typedef struct sedd_graph {
    enum config_graph type;
    int64_t n;     /* N, data tokens */
    int64_t dim;   /* V: N + 1 for absorb (mask = N), N for uniform */
} sedd_graph;

/* Fills g for `type` over n_tokens data tokens. */
void sedd_graph_init(sedd_graph *g, enum config_graph type, int64_t n_tokens);

/* The mask (absorbing state) id N for absorb, -1 for uniform. */
int64_t sedd_graph_mask(const sedd_graph *g);

/* e^σ − 1, stable everywhere (expm1); the original switches to exp(σ) − 1 at σ >= 0.5, which
 * agrees to a few ulps there. */
double sedd_graph_esigm1(double sigma);

/* 1 − e^{−σ} (= −expm1(−σ)): the probability that a position moves by total noise σ. */
double sedd_graph_move_chance(double sigma);

/* Forward rate Q column of state i: out (dim). */
void sedd_graph_rate(const sedd_graph *g, int64_t i, double *out /* (V) */);
/* Transposed rate (row i of Qᵀ): out (dim). */
void sedd_graph_transp_rate(const sedd_graph *g, int64_t i, double *out /* (V) */);
/* Transition probabilities exp(σQ) from i (uniform only; the absorbing original has none:
 * returns false and leaves out untouched). */
bool sedd_graph_transition(const sedd_graph *g, int64_t i, double sigma, double *out /* (V) */);
/* Transposed transition exp(σQ)ᵀ at row i; the 1 − e^{−σ} factor is computed with expm1. */
void sedd_graph_transp_transition(const sedd_graph *g, int64_t i, double sigma,
                                  double *out /* (V) */);
/* Reverse rate at state i given scores s (exp space, dim entries). */
void sedd_graph_reverse_rate(const sedd_graph *g, int64_t i, const float *s /* (V) */,
                             double *out /* (V) */);
/* Staggered score ŝ for a step of Δσ = delta (1 − e^Δ with expm1). */
void sedd_graph_staggered_score(const sedd_graph *g, const float *s /* (V) */, double delta,
                                double *out /* (V) */);
/* Denoising score entropy at one position, in double with the stable forms: log_score (V) is
 * the model's log-score at x_t = x, x0 the clean token, sigma the total noise. */
double sedd_graph_score_entropy(const sedd_graph *g, const float *log_score /* (V) */,
                                double sigma, int64_t x, int64_t x0);
/* The same, and when grad is not NULL grad (V) = w · ∂DSE/∂log_score (overwritten): for absorb
 * at x = MASK, w (e^{ls_y} − [y = x0]/esigm1) for y < MASK and 0 at MASK; all 0 at an unmasked
 * position; for uniform 0 at x (ls_x cancels out). Training's loss gradient. */
double sedd_graph_score_entropy_grad(const sedd_graph *g, const float *log_score /* (V) */,
                                     double sigma, int64_t x, int64_t x0, double w,
                                     float *grad /* (V) */);
/* Forward noising of one clean token: moves iff u < 1 − e^{−σ}; absorb moves to the mask,
 * uniform to rand_token (in [0,N), may equal x0). */
int64_t sedd_graph_sample_transition(const sedd_graph *g, int64_t x0, double sigma, double u,
                                     int64_t rand_token);
/* The limit distribution's state of one position: the mask (absorb) or rand_token (uniform). */
int64_t sedd_graph_sample_limit(const sedd_graph *g, int64_t rand_token);

#endif
