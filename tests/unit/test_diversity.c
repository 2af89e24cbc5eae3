/* diversity: hand-computed metrics, the window boundary, EOS dropping, set mean and std. */
#include <math.h>

#include "../../lib/diversity.h"
#include "tap.h"

int main(void)
{
    diversity_opts o = DIVERSITY_OPTS_DEFAULT;
    diversity_metrics m;
    err_t e;
    /* a b a c: 3 unique of 4; entropy = -(.5 ln .5 + 2 * .25 ln .25) = 1.5 ln 2; one repeat */
    uint32_t t1[] = {1, 2, 1, 3};
    CHECK(diversity_sample(t1, 4, &o, &m, &e) == 0, "a b a c measured");
    CHECK(m.n_unique == 3 && m.n_tokens == 4 && m.repeated_tokens == 1, "counts 3/4/1");
    CHECK(m.unique_unigram_fraction == 0.75, "unique fraction 0.75");
    CHECK(fabs(m.unigram_entropy_nats - 1.5 * log(2.0)) < 1e-15, "entropy 1.5 ln 2");
    CHECK(fabs(m.unigram_entropy_bits - 1.5) < 1e-15, "entropy 1.5 bits");
    CHECK(m.repetition_rate == 0.25 && fabs(m.repetition_rate_excl_first - 1.0 / 3) < 1e-16,
          "repetition 1/4 and 1/3");
    /* window boundary: x at 0 and at W counts (distance W); at W+1 it does not */
    uint32_t t2[12] = {7, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12};
    o.window = 10;
    t2[10] = 7;
    CHECK(diversity_sample(t2, 11, &o, &m, &e) == 0 && m.repeated_tokens == 1,
          "repeat at distance == window counts");
    t2[10] = 11, t2[11] = 7;
    CHECK(diversity_sample(t2, 12, &o, &m, &e) == 0 && m.repeated_tokens == 0,
          "repeat at distance window+1 does not");
    /* EOS dropped on request; an all-EOS sample is then an error */
    o = DIVERSITY_OPTS_DEFAULT;
    o.drop_token = 50256;
    uint32_t t3[] = {50256, 5, 50256, 6};
    CHECK(diversity_sample(t3, 4, &o, &m, &e) == 0 && m.n_tokens == 2 && m.repeated_tokens == 0,
          "EOS dropped before measuring");
    uint32_t t4[] = {50256, 50256};
    CHECK(diversity_sample(t4, 2, &o, &m, &e) == ERR_FAIL, "nothing left is an error: %s", e.msg);
    /* set level: values 0.25 and 0.75 -> mean 0.5, population std 0.25, sample std 0.3536 */
    diversity_acc a;
    diversity_acc_init(&a);
    diversity_metrics x = {0}, y = {0};
    x.unique_unigram_fraction = 0.25, y.unique_unigram_fraction = 0.75;
    diversity_acc_add(&a, &x);
    diversity_acc_add(&a, &y);
    CHECK(a.mean[0] == 0.5 && diversity_acc_std(&a, 0, 0) == 0.25, "mean 0.5, std 0.25");
    CHECK(fabs(diversity_acc_std(&a, 0, 1) - sqrt(0.125)) < 1e-16, "sample std sqrt(1/8)");
    return tap_done();
}
