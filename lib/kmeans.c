/* kmeans: a re-implementation of faiss 1.7.3's k-means from its documented behaviour
 * (specs/eval.md §6.3): the MAUVE reference clusters with it, so matching it reproduces the
 * reference histograms for a given seed. Distances are ||x||^2 + ||c||^2 - 2<x,c> in double
 * (dgemm), not faiss's float32: this matched all 60 (case, seed) pairs of the fixtures, where a
 * float32 sgemm variant matched 58; centroid sums, the objective and the split perturbation
 * follow faiss's float32 arithmetic. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "kmeans.h"

void kmeans_mt_seed(kmeans_mt *m, uint32_t seed)
{
    m->s[0] = seed;
    for (int i = 1; i < 624; i++)
        m->s[i] = 1812433253u * (m->s[i - 1] ^ (m->s[i - 1] >> 30)) + (uint32_t)i;
    m->i = 624;
}

uint32_t kmeans_mt_next(kmeans_mt *m)
{
    if (m->i >= 624) {
        for (int i = 0; i < 624; i++) {
            uint32_t y = (m->s[i] & 0x80000000u) | (m->s[(i + 1) % 624] & 0x7fffffffu);
            m->s[i] = m->s[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        m->i = 0;
    }
    uint32_t y = m->s[m->i++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

static float mt_rand_float(kmeans_mt *m)
{
    return (float)kmeans_mt_next(m) / 4294967296.0f;
}

void kmeans_rand_perm(int *perm, size_t n, int64_t seed)
{
    for (size_t i = 0; i < n; i++) perm[i] = (int)i;
    kmeans_mt m;
    kmeans_mt_seed(&m, (uint32_t)seed);
    for (size_t i = 0; i + 1 < n; i++) {
        size_t i2 = i + kmeans_mt_next(&m) % (uint32_t)(n - i);
        int t = perm[i];
        perm[i] = perm[i2];
        perm[i2] = t;
    }
}

/* Nearest centroids with BLAS: ||x||^2 + ||c||^2 - 2<x,c> in double (xd is x in double, xn its
 * squared row norms), blocks of rows at a time; the first index wins ties. */
static int assign_blas(const double *xd, const double *xn, size_t n, size_t d, const float *c,
                       size_t k, double *cd, double *cn, double *ip, size_t block, int *labels,
                       float *dis)
{
    for (size_t i = 0; i < k * d; i++) cd[i] = c[i];
    for (size_t j = 0; j < k; j++) {
        double s = 0;
        for (size_t t = 0; t < d; t++) s += cd[j * d + t] * cd[j * d + t];
        cn[j] = s;
    }
    for (size_t i0 = 0; i0 < n; i0 += block) {
        size_t m = n - i0 < block ? n - i0 : block;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)k, (int)d, 1.0,
                    xd + i0 * d, (int)d, cd, (int)d, 0.0, ip, (int)k);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < m; i++) {
            const double *row = ip + i * k;
            double best = INFINITY;
            int bi = 0;
            for (size_t j = 0; j < k; j++) {
                double v = xn[i0 + i] + cn[j] - 2 * row[j];
                if (v < 0) v = 0;
                if (v < best) {
                    best = v;
                    bi = (int)j;
                }
            }
            labels[i0 + i] = bi;
            if (dis) dis[i0 + i] = (float)best;
        }
    }
    return 0;
}

/* faiss split_clusters: re-seeds every empty cluster from a cluster picked with probability
 * proportional to its size, with a fresh mt19937(1234) per call. @return the number of splits. */
static size_t split_clusters(size_t d, size_t k, size_t n, float *hassign, float *c)
{
    const double eps = 1.0 / 1024.0;
    kmeans_mt m;
    kmeans_mt_seed(&m, 1234);
    size_t nsplit = 0;
    for (size_t ci = 0; ci < k; ci++) {
        if (hassign[ci] != 0) continue;
        size_t cj = 0;
        for (;; cj = (cj + 1) % k) {
            float p = (float)(((double)hassign[cj] - 1.0) / (double)(float)(n - k));
            float r = mt_rand_float(&m);
            if (r < p) break;
        }
        memcpy(c + ci * d, c + cj * d, d * sizeof *c);
        for (size_t j = 0; j < d; j++) {
            double a = j % 2 == 0 ? 1 + eps : 1 - eps, b = j % 2 == 0 ? 1 - eps : 1 + eps;
            c[ci * d + j] = (float)(c[ci * d + j] * a);
            c[cj * d + j] = (float)(c[cj * d + j] * b);
        }
        hassign[ci] = hassign[cj] / 2;
        hassign[cj] -= hassign[ci];
        nsplit++;
    }
    return nsplit;
}

/* The redos on the training points x (n, d): the best centroids go to centroids. */
static int train(const float *x, size_t n, size_t d, size_t k, const kmeans_opts *o,
                 float *centroids, size_t *n_split, err_t *e)
{
    float *c = malloc(k * d * sizeof *c), *best = malloc(k * d * sizeof *best);
    float *dis = malloc(n * sizeof *dis), *hassign = malloc(k * sizeof *hassign);
    int *perm = malloc(n * sizeof *perm), *assign = malloc(n * sizeof *assign);
    int *prev = malloc(n * sizeof *prev);
    if (!c || !best || !dis || !hassign || !perm || !assign || !prev) {
        free(c), free(best), free(dis), free(hassign), free(perm), free(assign), free(prev);
        return err_set(e, "kmeans_train: out of memory");
    }
    size_t splits = 0, block = 1024;
    double best_obj = HUGE_VAL;
    double *xd = malloc(n * d * sizeof *xd), *xn = malloc(n * sizeof *xn);
    double *cd = malloc(k * d * sizeof *cd), *cn = malloc(k * sizeof *cn);
    double *ip = malloc(block * k * sizeof *ip);
    if (!xd || !xn || !cd || !cn || !ip) {
        free(xd), free(xn), free(cd), free(cn), free(ip);
        free(c), free(best), free(dis), free(hassign), free(perm), free(assign), free(prev);
        return err_set(e, "kmeans_train: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t t = 0; t < d; t++) {
            xd[i * d + t] = x[i * d + t];
            s += xd[i * d + t] * xd[i * d + t];
        }
        xn[i] = s;
    }
    if (n == k) {
        memcpy(best, x, k * d * sizeof *x);
    } else {
        int nredo = o->nredo > 0 ? o->nredo : 1;
        for (int redo = 0; redo < nredo; redo++) {
            kmeans_rand_perm(perm, n, o->seed + 1 + (int64_t)redo * 15486557LL);
            for (size_t ci = 0; ci < k; ci++)
                memcpy(c + ci * d, x + (size_t)perm[ci] * d, d * sizeof *c);
            float obj = 0;
            bool prev_split = true;
            for (int it = 0; it < o->niter; it++) {
                assign_blas(xd, xn, n, d, c, k, cd, cn, ip, block, assign, dis);
                obj = 0;
                for (size_t i = 0; i < n; i++) obj += dis[i];
                bool same = it > 0 && memcmp(prev, assign, n * sizeof *assign) == 0;
                memset(c, 0, k * d * sizeof *c);
                memset(hassign, 0, k * sizeof *hassign);
                for (size_t i = 0; i < n; i++) {
                    float *ci = c + (size_t)assign[i] * d;
                    const float *xi = x + i * d;
                    hassign[assign[i]] += 1.0f;
                    for (size_t t = 0; t < d; t++) ci[t] += xi[t];
                }
                for (size_t ci = 0; ci < k; ci++) {
                    if (hassign[ci] == 0) continue;
                    float norm = 1.0f / hassign[ci];
                    for (size_t t = 0; t < d; t++) c[ci * d + t] *= norm;
                }
                size_t ns = split_clusters(d, k, n, hassign, c);
                splits += ns;
                /* a repeated assignment with no split on either side is a fixed point */
                if (same && ns == 0 && !prev_split) break;
                prev_split = ns != 0;
                memcpy(prev, assign, n * sizeof *assign);
            }
            if (nredo == 1 || obj < best_obj) {
                memcpy(best, c, k * d * sizeof *c);
                best_obj = obj;
            }
        }
    }
    memcpy(centroids, best, k * d * sizeof *best);
    if (n_split) *n_split = splits;
    free(xd), free(xn), free(cd), free(cn), free(ip);
    free(c), free(best), free(dis), free(hassign), free(perm), free(assign), free(prev);
    return 0;
}

int kmeans_search(const float *x, size_t n, size_t d, const float *c, size_t k, int *labels,
                  float *dis, err_t *e)
{
    size_t block = 1024;
    double *xd = malloc(n * d * sizeof *xd), *xn = malloc(n * sizeof *xn);
    double *cd = malloc(k * d * sizeof *cd), *cn = malloc(k * sizeof *cn);
    double *ip = malloc(block * k * sizeof *ip);
    if (!xd || !xn || !cd || !cn || !ip) {
        free(xd), free(xn), free(cd), free(cn), free(ip);
        return err_set(e, "kmeans_search: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t t = 0; t < d; t++) {
            xd[i * d + t] = x[i * d + t];
            s += xd[i * d + t] * xd[i * d + t];
        }
        xn[i] = s;
    }
    assign_blas(xd, xn, n, d, c, k, cd, cn, ip, block, labels, dis);
    free(xd), free(xn), free(cd), free(cn), free(ip);
    return 0;
}

int kmeans_train(const float *x, size_t n, size_t d, size_t k, const kmeans_opts *o,
                 float *centroids, int *labels, size_t *n_split, err_t *e)
{
    if (k == 0 || d == 0 || n < k)
        return err_set(e, "kmeans_train: need at least k=%zu points, got %zu", k, n);
    if (n > (size_t)1 << 30 || k > (size_t)1 << 22)
        return err_set(e, "kmeans_train: too many points (%zu) or clusters (%zu)", n, k);
    const float *xt = x;
    float *sub = NULL;
    size_t nt = n;
    if (n > 256 * k) { /* faiss trains on k*256 points drawn with rand_perm(n, seed) */
        nt = 256 * k;
        int *perm = malloc(n * sizeof *perm);
        sub = malloc(nt * d * sizeof *sub);
        if (!perm || !sub) {
            free(perm);
            free(sub);
            return err_set(e, "kmeans_train: out of memory");
        }
        kmeans_rand_perm(perm, n, o->seed);
        for (size_t i = 0; i < nt; i++) memcpy(sub + i * d, x + (size_t)perm[i] * d, d * sizeof *sub);
        free(perm);
        xt = sub;
    }
    int rc = train(xt, nt, d, k, o, centroids, n_split, e);
    free(sub);
    if (rc == 0 && labels) rc = kmeans_search(x, n, d, centroids, k, labels, NULL, e);
    return rc;
}
