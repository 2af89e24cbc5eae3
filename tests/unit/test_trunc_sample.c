/* test_trunc_sample: trunc_sample_draw against the rule written out plainly: the candidates
 * sorted by qsort (logit descending, id ascending), the kept prefix, the sums in that order.
 * Rows with many ties (logits on a coarse grid), -0 beside +0, infinities, every top-k from 1
 * to past V, top-p from tiny to 1, and uniforms across [0, 1): every draw must be the same. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "philox.h"
#include "tap.h"
#include "trunc_sample.h"

struct cand {
    float z;
    int32_t i;
};

static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->z != y->z) return x->z > y->z ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* the rule of trunc_sample.h, step by step */
static int32_t reference(const float *logits, int V, double inv_t, int64_t top_k, double top_p,
                         double u)
{
    struct cand *c = malloc((size_t)V * sizeof *c);
    double *p = malloc((size_t)V * sizeof *p);
    for (int j = 0; j < V; j++) c[j] = (struct cand){logits[j], j};
    qsort(c, (size_t)V, sizeof *c, cand_cmp);
    int n = top_k > 0 && top_k < V ? (int)top_k : V;
    float mx = -INFINITY;
    for (int j = 0; j < n; j++)
        if (c[j].z > mx) mx = c[j].z;
    double total = 0;
    for (int j = 0; j < n; j++) total += p[j] = exp(((double)c[j].z - mx) * inv_t);
    if (top_p < 1) {
        double cum = 0, kept = 0;
        int keep = n;
        for (int j = 0; j < n; j++)
            if ((cum += p[j]) >= top_p * total) {
                keep = j + 1;
                break;
            }
        n = keep;
        for (int j = 0; j < n; j++) kept += p[j];
        total = kept;
    }
    double target = u * total, cum = 0;
    int32_t tok = c[n - 1].i;
    for (int j = 0; j < n; j++)
        if ((cum += p[j]) > target) {
            tok = c[j].i;
            break;
        }
    free(c), free(p);
    return tok;
}

static double uniform(uint32_t step, uint32_t lane)
{
    uint32_t w[4];
    philox_draw(7, 1, step, 0, lane, w);
    return philox_u01_f64(w[0], w[1]);
}

/* logits of a row: kind 0 continuous, 1 on a grid of 8 values (ties everywhere), 2 the grid
 * with -0, +0 and -inf among them */
static void fill(float *x, int V, int kind, uint32_t row)
{
    for (int j = 0; j < V; j++) {
        double v = uniform(row, (uint32_t)j) * 8 - 4;
        x[j] = kind == 0 ? (float)v : (float)floor(v) * 0.5f;
        if (kind == 2 && j % 7 == 0) x[j] = j % 14 ? -0.0f : 0.0f;
        if (kind == 2 && j % 11 == 0) x[j] = -INFINITY;
    }
}

int main(void)
{
    static const int Vs[] = {1, 2, 37, 1000, 50257};
    static const int64_t ks[] = {0, 1, 2, 5, 50, 999, 1000, 60000};
    static const double ps[] = {1.0, 0.999, 0.95, 0.5, 1e-9};
    for (size_t vi = 0; vi < sizeof Vs / sizeof *Vs; vi++) {
        int V = Vs[vi];
        float *x = malloc((size_t)V * sizeof *x);
        trunc_sample_ws *w = trunc_sample_ws_new(V);
        int draws = 0, wrong = 0;
        for (int kind = 0; kind < 3; kind++) {
            fill(x, V, kind, (uint32_t)(vi * 3 + kind));
            for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++)
                for (size_t pi = 0; pi < sizeof ps / sizeof *ps; pi++)
                    for (uint32_t r = 0; r < 6; r++) {
                        double u = r == 0 ? 0 : uniform(1000 + (uint32_t)(ki * 8 + pi), r);
                        double inv_t = r % 2 ? 1.0 : 1.0 / 0.7;
                        int32_t got = trunc_sample_draw(w, x, V, inv_t, ks[ki], ps[pi], u);
                        wrong += got != reference(x, V, inv_t, ks[ki], ps[pi], u);
                        draws++;
                    }
        }
        CHECK(wrong == 0, "V=%d: %d draws (continuous, tied, signed zeros and -inf; top-k "
              "0..60000, top-p 1e-9..1) as the qsort rule gives, %d differ", V, draws, wrong);
        trunc_sample_ws_free(w);
        free(x);
    }
    /* ties: the lowest id first; -0 and +0 are one value */
    float tie[6] = {1, 3, 3, -0.0f, 0.0f, 3};
    trunc_sample_ws *w = trunc_sample_ws_new(6);
    CHECK(trunc_sample_draw(w, tie, 6, 1, 1, 1, 0.99) == 1, "top-1 of three equal maxima: id 1");
    CHECK(trunc_sample_draw(w, tie, 6, 1e6, 4, 1, 0.999999) == 5,
          "the 3rd of three equal maxima, at a sharp temperature: id 5");
    float zeros[2] = {-0.0f, 0.0f};
    CHECK(trunc_sample_draw(w, zeros, 2, 1, 1, 1, 0.5) == 0, "-0 beside +0: equal, id 0 first");
    trunc_sample_ws_free(w);
    return tap_done();
}
