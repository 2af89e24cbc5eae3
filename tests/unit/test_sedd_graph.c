/* sedd_graph: identities of the absorbing and uniform graphs (rates sum to zero, transitions to
 * one, the reverse rate's diagonal) and the stable forms against the float64 references of the
 * fixture set (tests/fixtures/sedd/tiny_uniform_geometric/graph.safetensors: ref64.*). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/safetensors.h"
#include "../../lib/sedd_graph.h"
#include "tap.h"

#define FIX "tests/fixtures/sedd/tiny_uniform_geometric/graph.safetensors"

static double sum(const double *v, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    return s;
}

static void test_identities(enum config_graph type, const char *name)
{
    sedd_graph g;
    sedd_graph_init(&g, type, 10);
    double v[11];
    float s[11];
    for (int y = 0; y < 11; y++) s[y] = 0.5f + 0.1f * (float)y;
    int64_t states[] = {0, 3, 9, type == CONFIG_GRAPH_ABSORB ? 10 : 5};
    for (int k = 0; k < 4; k++) {
        int64_t i = states[k];
        sedd_graph_rate(&g, i, v);
        CHECK(fabs(sum(v, g.dim)) < 1e-12, "%s: rate(%lld) sums to 0", name, (long long)i);
        sedd_graph_transp_transition(&g, i, 0.7, v);
        if (type == CONFIG_GRAPH_UNIFORM)
            CHECK(fabs(sum(v, g.dim) - 1) < 1e-12, "%s: transition(%lld) sums to 1", name,
                  (long long)i);
        sedd_graph_reverse_rate(&g, i, s, v);
        CHECK(fabs(sum(v, g.dim)) < 1e-12, "%s: reverse_rate(%lld) sums to 0", name,
              (long long)i);
    }
    CHECK(sedd_graph_mask(&g) == (type == CONFIG_GRAPH_ABSORB ? 10 : -1), "%s: mask id", name);
    CHECK(sedd_graph_sample_transition(&g, 4, 1.0, 0.99, 7) == 4, "%s: u above 1-e^-s stays", name);
    CHECK(sedd_graph_sample_transition(&g, 4, 1.0, 0.1, 7) ==
              (type == CONFIG_GRAPH_ABSORB ? 10 : 7), "%s: u below moves", name);
    /* 1 - e^-s at s = 1e-5: expm1 keeps every digit (fp32 1 - exp would be ~3e-3 off) */
    CHECK(fabs(sedd_graph_move_chance(1e-5) - 9.99995000016666e-06) < 1e-18,
          "move chance at sigma 1e-5 is exact");
}

/* The absorbing entropy is zero at the clean token's exact score and at unmasked positions. */
static void test_absorb_entropy(void)
{
    sedd_graph g;
    sedd_graph_init(&g, CONFIG_GRAPH_ABSORB, 4);
    double sigma = 0.3, r = 1 / expm1(sigma);
    float ls[5] = {-30, -30, (float)log(r), -30, 0};
    double dse = sedd_graph_score_entropy(&g, ls, sigma, 4, 2);
    CHECK(fabs(dse - 3 * exp(-30.0)) < 1e-6, "absorb entropy ~0 at the true score (%g)", dse);
    CHECK(sedd_graph_score_entropy(&g, ls, sigma, 1, 2) == 0, "absorb entropy 0 when unmasked");
}

/* The uniform score entropy matches the float64 reference where torch fp32 is 66 % off. */
static void test_uniform_ref64(void)
{
    err_t e;
    st_file_t *f = st_open(FIX, &e);
    CHECK(f != NULL, "open %s", FIX);
    if (!f) return;
    const st_tensor *tls = st_find(f, "in.log_score"), *tref = st_find(f, "ref64.score_entropy");
    const st_tensor *tx = st_find(f, "in.x"), *tx0 = st_find(f, "in.x0"), *ts = st_find(f, "in.sigma");
    CHECK(tls && tref && tx && tx0 && ts && tref->dtype == ST_F64, "fixture tensors present");
    if (!tls || !tref || !tx || !tx0 || !ts) {
        st_close(f);
        return;
    }
    float *ls = malloc(tls->numel * sizeof *ls), sig[4];
    int64_t x[16], x0[16];
    double ref[16];
    st_tensor_to_f32(tls, ls, &e);
    st_tensor_to_f32(ts, sig, &e);
    st_tensor_to_i64(tx, x, &e);
    st_tensor_to_i64(tx0, x0, &e);
    memcpy(ref, tref->data, sizeof ref);
    sedd_graph g;
    sedd_graph_init(&g, CONFIG_GRAPH_UNIFORM, 1000);
    double worst = 0;
    for (int p = 0; p < 16; p++) {
        double d = sedd_graph_score_entropy(&g, ls + p * 1000, sig[p / 4], x[p], x0[p]);
        worst = fmax(worst, fabs(d - ref[p]) / fmax(1, fabs(ref[p])));
    }
    CHECK(worst < 1e-7, "uniform score entropy vs float64 reference: max rel %.3g", worst);
    free(ls);
    st_close(f);
}

int main(void)
{
    test_identities(CONFIG_GRAPH_ABSORB, "absorb");
    test_identities(CONFIG_GRAPH_UNIFORM, "uniform");
    test_absorb_entropy();
    test_uniform_ref64();
    return tap_done();
}
