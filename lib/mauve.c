/* mauve: MAUVE as mauve-text 0.4.0 computes it (specs/eval.md §6.2), written from the spec.
 * Build with -ffp-contract=off semantics in mind: r = w·p + (1−w)·q is two multiplies and an add. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kmeans.h"
#include "mauve.h"

/* LAPACK symmetric eigensolver (from OpenBLAS). */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
             double *w, double *work, const int *lwork, int *iwork, const int *liwork, int *info);

size_t mauve_num_buckets(size_t n_p, size_t n_q)
{
    size_t n = n_p < n_q ? n_p : n_q;
    double k = rint((double)n / 10.0); /* round half to even under the default rounding mode */
    return k < 2 ? 2 : (size_t)k;
}

void mauve_mixture_weights(int m, double *w)
{
    const double start = 1e-6, stop = 1 - 1e-6;
    if (m == 1) {
        w[0] = start;
        return;
    }
    double step = (stop - start) / (double)(m - 1);
    for (int i = 0; i < m; i++) w[i] = (double)i * step + start;
    w[m - 1] = stop;
}

double mauve_kl(const double *a, const double *b, size_t k)
{
    double s = 0;
    for (size_t i = 0; i < k; i++) {
        if (a[i] != 0 && b[i] == 0) return INFINITY;
        if (a[i] != 0 && b[i] != 0) s += a[i] * log(a[i] / b[i]);
    }
    return s;
}

void mauve_divergence_curve(const double *p, const double *q, size_t k, double c, int m,
                            double *curve)
{
    double *w = malloc((size_t)m * sizeof *w), *r = malloc((k ? k : 1) * sizeof *r);
    if (!w || !r) abort();
    mauve_mixture_weights(m, w);
    curve[0] = exp(-c * 0.0);
    curve[1] = exp(-c * INFINITY);
    for (int j = 0; j < m; j++) {
        for (size_t i = 0; i < k; i++) {
            volatile double a = w[j] * p[i], b = (1 - w[j]) * q[i]; /* no FMA */
            r[i] = a + b;
        }
        curve[2 * (j + 1)] = exp(-c * mauve_kl(q, r, k));
        curve[2 * (j + 1) + 1] = exp(-c * mauve_kl(p, r, k));
    }
    curve[2 * (m + 1)] = exp(-c * INFINITY);
    curve[2 * (m + 1) + 1] = exp(-c * 0.0);
    free(w);
    free(r);
}

/* Sort keys for the two areas. */
typedef struct pt {
    double a, b; /* primary ascending, secondary descending */
} pt;

static int cmp_pt(const void *x, const void *y)
{
    const pt *u = x, *v = y;
    if (u->a != v->a) return u->a < v->a ? -1 : 1;
    if (u->b != v->b) return u->b > v->b ? -1 : 1;
    return 0;
}

static double trapz_sorted(pt *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_pt);
    double s = 0;
    for (size_t i = 1; i < n; i++) s += (v[i].a - v[i - 1].a) * (v[i].b + v[i - 1].b) / 2.0;
    return s;
}

double mauve_area(const double *curve, size_t n)
{
    pt *v = malloc((n ? n : 1) * sizeof *v);
    if (!v) abort();
    for (size_t i = 0; i < n; i++) v[i] = (pt){curve[2 * i], curve[2 * i + 1]};
    double a1 = trapz_sorted(v, n);
    for (size_t i = 0; i < n; i++) v[i] = (pt){curve[2 * i + 1], curve[2 * i]};
    double a2 = trapz_sorted(v, n);
    free(v);
    return 0.5 * (a1 + a2);
}

double mauve_frontier_integral(const double *p, const double *q, size_t k)
{
    double total = 0;
    for (size_t i = 0; i < k; i++) {
        double a = p[i], b = q[i];
        if (a == 0 && b == 0) continue;
        if (a == 0) total += b / 4;
        else if (b == 0) total += a / 4;
        else if (fabs(a - b) > 1e-8) {
            double t1 = a + b, t2 = a * b * (log(a) - log(b)) / (a - b);
            total += 0.25 * t1 - 0.5 * t2;
        }
    }
    return total * 2;
}

static double normalise(const double *counts, double add, size_t k, double *h)
{
    double s = 0;
    for (size_t i = 0; i < k; i++) s += counts[i] + add;
    for (size_t i = 0; i < k; i++) h[i] = (counts[i] + add) / s;
    return s;
}

int mauve_from_counts(const double *p_counts, const double *q_counts, size_t k,
                      const mauve_opts *o, mauve_result *r, err_t *e)
{
    memset(r, 0, sizeof *r);
    if (k == 0 || o->curve_size < 1) return err_set(e, "mauve: empty histogram or curve");
    double *h = malloc(4 * k * sizeof *h);
    r->n_curve = (size_t)o->curve_size + 2;
    r->curve = malloc(2 * r->n_curve * sizeof *r->curve);
    r->curve_star = malloc(2 * r->n_curve * sizeof *r->curve_star);
    if (!h || !r->curve || !r->curve_star) {
        free(h);
        mauve_result_free(r);
        return err_set(e, "mauve: out of memory");
    }
    double *p = h, *q = h + k, *ps = h + 2 * k, *qs = h + 3 * k;
    if (normalise(p_counts, 0, k, p) <= 0 || normalise(q_counts, 0, k, q) <= 0) {
        free(h);
        mauve_result_free(r);
        return err_set(e, "mauve: a histogram has no mass");
    }
    normalise(p_counts, 0.5, k, ps);
    normalise(q_counts, 0.5, k, qs);
    mauve_divergence_curve(p, q, k, o->scaling, o->curve_size, r->curve);
    r->mauve = mauve_area(r->curve, r->n_curve);
    r->frontier_integral = mauve_frontier_integral(p, q, k);
    mauve_divergence_curve(ps, qs, k, o->scaling, o->curve_size, r->curve_star);
    r->mauve_star = mauve_area(r->curve_star, r->n_curve);
    r->frontier_integral_star = mauve_frontier_integral(ps, qs, k);
    free(h);
    return 0;
}

void mauve_result_free(mauve_result *r)
{
    if (!r) return;
    free(r->curve);
    free(r->curve_star);
    r->curve = r->curve_star = NULL;
}

int mauve_prepare(const float *q, size_t n_q, const float *p, size_t n_p, size_t dim,
                  double explained_var, mauve_prep *out, err_t *e)
{
    memset(out, 0, sizeof *out);
    size_t n = n_q + n_p;
    if (n < 2 || dim == 0) return err_set(e, "mauve: need at least 2 feature rows");
    if (dim > 65536) return err_set(e, "mauve: feature dimension %zu is too large", dim);
    double *x = malloc(n * dim * sizeof *x), *mean = calloc(dim, sizeof *mean);
    double *cov = malloc(dim * dim * sizeof *cov), *ev = malloc(dim * sizeof *ev);
    if (!x || !mean || !cov || !ev) goto oom;
    /* stack q then p, L2-normalise each row (a zero row stays zero) */
    for (size_t i = 0; i < n; i++) {
        const float *src = i < n_q ? q + i * dim : p + (i - n_q) * dim;
        double s = 0;
        for (size_t j = 0; j < dim; j++) s += (double)src[j] * (double)src[j];
        double nrm = sqrt(s);
        if (nrm == 0) nrm = 1;
        for (size_t j = 0; j < dim; j++) x[i * dim + j] = (double)src[j] / nrm;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++) mean[j] += x[i * dim + j];
    for (size_t j = 0; j < dim; j++) mean[j] /= (double)n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++) x[i * dim + j] -= mean[j];
    /* covariance (upper triangle in column-major = lower in row-major; dsyevd reads 'L') */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)dim, (int)n, 1.0 / (double)(n - 1),
                x, (int)dim, 0.0, cov, (int)dim);
    int nd = (int)dim, info = 0, lwork = -1, liwork = -1, iwq = 0;
    double wq = 0;
    dsyevd_("V", "L", &nd, cov, &nd, ev, &wq, &lwork, &iwq, &liwork, &info);
    if (info != 0) goto eig;
    lwork = (int)wq;
    liwork = iwq;
    double *work = malloc((size_t)lwork * sizeof *work);
    int *iwork = malloc((size_t)liwork * sizeof *iwork);
    if (!work || !iwork) {
        free(work);
        free(iwork);
        goto oom;
    }
    dsyevd_("V", "L", &nd, cov, &nd, ev, work, &lwork, iwork, &liwork, &info);
    free(work);
    free(iwork);
    if (info != 0) goto eig;
    /* eigenvalues ascending; column-major eigenvectors: vector j is cov[j*dim .. j*dim+dim) */
    double total = 0;
    for (size_t j = 0; j < dim; j++) total += ev[j] > 0 ? ev[j] : 0;
    if (!(total > 0)) {
        err_set(e, "mauve: the features have no variance");
        goto fail;
    }
    double cum = 0, before = 0;
    size_t kept = 0;
    for (size_t r = 0; r < dim; r++) {
        double v = ev[dim - 1 - r];
        before = cum;
        cum += (v > 0 ? v : 0) / total;
        kept = r + 1;
        if ((float)cum >= (float)explained_var) break;
    }
    out->z = malloc(n * kept * sizeof *out->z);
    double *v = malloc(dim * kept * sizeof *v), *zd = malloc(n * kept * sizeof *zd);
    if (!out->z || !v || !zd) {
        free(v);
        free(zd);
        goto oom;
    }
    for (size_t r = 0; r < kept; r++)
        for (size_t j = 0; j < dim; j++) v[j * kept + r] = cov[(dim - 1 - r) * dim + j];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)kept, (int)dim, 1.0, x,
                (int)dim, v, (int)kept, 0.0, zd, (int)kept);
    for (size_t i = 0; i < n * kept; i++) out->z[i] = (float)zd[i];
    free(v);
    free(zd);
    out->n = n;
    out->n_q = n_q;
    out->n_p = n_p;
    out->dim = dim;
    out->kept = kept;
    out->cum_before = before;
    out->cum_at = cum;
    free(x), free(mean), free(cov), free(ev);
    return 0;
oom:
    err_set(e, "mauve: out of memory");
    goto fail;
eig:
    err_set(e, "mauve: eigendecomposition failed (info %d)", info);
fail:
    free(x), free(mean), free(cov), free(ev);
    mauve_prep_free(out);
    return ERR_FAIL;
}

void mauve_prep_free(mauve_prep *z)
{
    if (!z) return;
    free(z->z);
    z->z = NULL;
}

int mauve_cluster(const mauve_prep *z, size_t k, int64_t seed, const mauve_opts *o,
                  double *q_counts, double *p_counts, err_t *e)
{
    float *c = malloc(k * z->kept * sizeof *c);
    int *labels = malloc(z->n * sizeof *labels);
    if (!c || !labels) {
        free(c);
        free(labels);
        return err_set(e, "mauve: out of memory");
    }
    kmeans_opts ko = {.niter = o->kmeans_iter, .nredo = o->kmeans_redo, .seed = seed + 2};
    int rc = kmeans_train(z->z, z->n, z->kept, k, &ko, c, labels, NULL, e);
    if (rc == 0) {
        memset(q_counts, 0, k * sizeof *q_counts);
        memset(p_counts, 0, k * sizeof *p_counts);
        for (size_t i = 0; i < z->n; i++) {
            if (i < z->n_q) q_counts[labels[i]] += 1;
            else p_counts[labels[i]] += 1;
        }
    }
    free(c);
    free(labels);
    return rc;
}
