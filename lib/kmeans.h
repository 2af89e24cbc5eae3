/* kmeans: Lloyd k-means compatible with faiss 1.7.3 Clustering (std::mt19937 random-subset init,
 * fixed iteration count, nredo restarts keeping the lowest objective, empty-cluster splitting).
 * Ownership: the caller owns every array. Errors: ERR_FAIL (in e) on bad sizes or OOM. */
#ifndef DLM_KMEANS_H
#define DLM_KMEANS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* std::mt19937, as faiss's RandomGenerator uses it. */
typedef struct kmeans_mt {
    uint32_t s[624];
    int i;
} kmeans_mt;

void kmeans_mt_seed(kmeans_mt *m, uint32_t seed);
uint32_t kmeans_mt_next(kmeans_mt *m);

/* faiss rand_perm: perm = [0..n) shuffled with mt19937((uint32_t)seed). */
void kmeans_rand_perm(int *perm /* (n) */, size_t n, int64_t seed);

typedef struct kmeans_opts {
    int niter;     /* iterations per redo (faiss: 500 in MAUVE) */
    int nredo;     /* restarts (5 in MAUVE) */
    int64_t seed;  /* faiss seed (MAUVE seed + 2) */
} kmeans_opts;

/* Clusters x (n, d) float32 into k centroids (training on k*256 points drawn as faiss does when
 * n > 256k). Writes the best centroids (k, d) and, when labels is not NULL, the nearest-centroid
 * label of every point under them (first index on ties). Returns the number of empty-cluster
 * splits done in *n_split when not NULL. Threads: OpenMP and BLAS defaults.
 * @return 0 or ERR_FAIL. */
int kmeans_train(const float *x /* (n,d) */, size_t n, size_t d, size_t k, const kmeans_opts *o,
                 float *centroids /* (k,d) */, int *labels /* (n) */, size_t *n_split, err_t *e);

/* Nearest centroid of every point: squared L2 as ||x||^2 + ||c||^2 - 2<x,c> in double (BLAS),
 * clamped at 0, first index on ties. When dis is not NULL, the distance (as float) is written
 * too. @return 0 or ERR_FAIL (OOM). */
int kmeans_search(const float *x /* (n,d) */, size_t n, size_t d, const float *c /* (k,d) */,
                  size_t k, int *labels /* (n) */, float *dis /* (n) */, err_t *e);

#endif
