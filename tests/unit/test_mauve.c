/* mauve: closed forms (identical -> 1, disjoint -> 0.004072096261961258 for c=5, m=25), round
 * half to even for K, the tie rule, the frontier integral; mt19937 and faiss's rand_perm. */
#include <math.h>
#include <stdlib.h>

#include "../../lib/kmeans.h"
#include "../../lib/mauve.h"
#include "tap.h"

int main(void)
{
    CHECK(mauve_num_buckets(45, 60) == 4, "round(4.5) = 4");
    CHECK(mauve_num_buckets(250, 300) == 25 && mauve_num_buckets(65, 70) == 6, "25, round(6.5)=6");
    CHECK(mauve_num_buckets(12, 12) == 2 && mauve_num_buckets(5, 100) == 2, "at least 2");
    mauve_opts o = MAUVE_OPTS_DEFAULT;
    mauve_result r;
    err_t e;
    double same[4] = {5, 5, 5, 5}, a[4] = {3, 3, 0, 0}, b[4] = {0, 0, 4, 4};
    CHECK(mauve_from_counts(same, same, 4, &o, &r, &e) == 0 && r.mauve == 1.0 &&
              r.frontier_integral == 0.0,
          "identical histograms: MAUVE 1 (tie rule), FI 0 (got %.17g)", r.mauve);
    CHECK(r.n_curve == 27 && r.curve[0] == 1 && r.curve[1] == 0 && r.curve[52] == 0 &&
              r.curve[53] == 1, "curve ends at (1,0) and (0,1)");
    mauve_result_free(&r);
    CHECK(mauve_from_counts(a, b, 4, &o, &r, &e) == 0 &&
              fabs(r.mauve - 0.004072096261961258) < 1e-15,
          "disjoint closed form (got %.17g)", r.mauve);
    CHECK(fabs(r.frontier_integral - 1.0) < 1e-15, "disjoint FI = 2 * (1/4 + 1/4)");
    mauve_result_free(&r);
    double w[25];
    mauve_mixture_weights(25, w);
    CHECK(w[0] == 1e-6 && w[24] == 1 - 1e-6 && w[12] == 0.49999999999999994,
          "numpy linspace values");
    /* std::mt19937 default seed 5489: the 10000th output is 4123659995 (C++ standard) */
    kmeans_mt m;
    kmeans_mt_seed(&m, 5489);
    uint32_t v = 0;
    for (int i = 0; i < 10000; i++) v = kmeans_mt_next(&m);
    CHECK(v == 4123659995u, "mt19937 10000th value (got %u)", v);
    int perm[10];
    kmeans_rand_perm(perm, 10, 27);
    int seen[10] = {0}, ok = 1;
    for (int i = 0; i < 10; i++) ok &= perm[i] >= 0 && perm[i] < 10 && !seen[perm[i]]++;
    CHECK(ok, "rand_perm is a permutation");
    /* two separated blobs -> two clusters of 3 */
    float x[12] = {0, 0, 0.1f, 0, 0, 0.1f, 10, 10, 10.1f, 10, 10, 10.1f};
    float c[4];
    int lab[6];
    kmeans_opts ko = {.niter = 20, .nredo = 2, .seed = 27};
    CHECK(kmeans_train(x, 6, 2, 2, &ko, c, lab, NULL, &e) == 0 && lab[0] == lab[1] &&
              lab[1] == lab[2] && lab[3] == lab[4] && lab[4] == lab[5] && lab[0] != lab[3],
          "two blobs separated");
    return tap_done();
}
