/* mauve: MAUVE (mauve-text 0.4.0) — histograms -> divergence curve -> area, the frontier integral,
 * MAUVE* on smoothed histograms; and the feature pipeline (L2 norm, PCA, faiss-compatible k-means).
 * Ownership: mauve_result and mauve_prep own their arrays (mauve_result_free, mauve_prep_free).
 * Errors: return 0 or ERR_FAIL with the message in e; never exit. */
#ifndef DLM_MAUVE_H
#define DLM_MAUVE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct mauve_opts {
    double scaling;       /* mauve_scaling_factor c [5] */
    int curve_size;       /* divergence_curve_discretization_size m [25] */
    double explained_var; /* PCA cut [0.9] */
    int kmeans_redo;      /* [5] */
    int kmeans_iter;      /* [500] */
    int threads;          /* 0 = OpenMP default */
} mauve_opts;

#define MAUVE_OPTS_DEFAULT                                                                   \
    ((mauve_opts){.scaling = 5, .curve_size = 25, .explained_var = 0.9, .kmeans_redo = 5,     \
                  .kmeans_iter = 500, .threads = 0})

typedef struct mauve_result {
    double mauve, frontier_integral, mauve_star, frontier_integral_star;
    size_t n_curve;       /* m + 2 points */
    double *curve;        /* (n_curve, 2) [x, y] */
    double *curve_star;   /* (n_curve, 2) on the smoothed histograms */
} mauve_result;

/* Number of clusters: max(2, round_half_even(min(n_p, n_q) / 10)). */
size_t mauve_num_buckets(size_t n_p, size_t n_q);

/* linspace(1e-6, 1-1e-6, m) exactly as numpy computes it. */
void mauve_mixture_weights(int m, double *w /* (m) */);

/* KL(a||b) in nats over bins where both are > 0; +inf when a > 0 where b == 0. */
double mauve_kl(const double *a, const double *b, size_t k);

/* The m+2 curve points exp(-c * [KL(q||r_w), KL(p||r_w)]) with r_w = w p + (1-w) q. */
void mauve_divergence_curve(const double *p, const double *q, size_t k, double c, int m,
                            double *curve /* (m+2, 2) */);

/* ½(trapz(y by x asc, y desc) + trapz(x by y asc, x desc)): the tie rule of the reference. */
double mauve_area(const double *curve /* (n, 2) */, size_t n);

/* 2 · Σ f(p_i, q_i) (get_fronter_integral with scaling 2). */
double mauve_frontier_integral(const double *p, const double *q, size_t k);

/* Everything from two count histograms (cluster index order). @return 0 or ERR_FAIL. */
int mauve_from_counts(const double *p_counts, const double *q_counts, size_t k,
                      const mauve_opts *o, mauve_result *r, err_t *e);
void mauve_result_free(mauve_result *r);

/* Stacked, L2-normalised, PCA-projected features: rows 0..n_q are q, then p. */
typedef struct mauve_prep {
    float *z;             /* (n, kept) */
    size_t n, n_q, n_p, dim, kept;
    double cum_before, cum_at; /* cumulative explained variance just below and at the cut */
} mauve_prep;

/* vstack([q, p]) -> L2 normalise rows -> PCA (covariance eigendecomposition in double) -> keep
 * the first components whose cumulative ratio reaches explained_var -> float32.
 * @return 0 or ERR_FAIL. */
int mauve_prepare(const float *q /* (n_q,dim) */, size_t n_q, const float *p /* (n_p,dim) */,
                  size_t n_p, size_t dim, double explained_var, mauve_prep *out, err_t *e);
void mauve_prep_free(mauve_prep *z);

/* Clusters the prepared features into k buckets with faiss seed = seed + 2 and counts the q and
 * p labels. @return 0 or ERR_FAIL. */
int mauve_cluster(const mauve_prep *z, size_t k, int64_t seed, const mauve_opts *o,
                  double *q_counts /* (k) */, double *p_counts /* (k) */, err_t *e);

#endif
