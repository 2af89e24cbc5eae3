/* pplagg: each aggregation rule on hand-computed values, the SEDD batch drop, the error bar, the
 * MDLM first-EOS mask and the bound orders A-D with their Jensen ordering. */
#include <math.h>

#include "../../lib/pplagg.h"
#include "tap.h"

static int close_rel(double a, double b) { return fabs(a - b) <= 1e-14 * fabs(b); }

int main(void)
{
    /* two sequences: mean NLLs 1 (n 2) and 3 (n 6), one empty record between them */
    pplagg a;
    pplagg_init(&a, 1);
    pplagg_add(&a, 2.0, 2, NAN);
    pplagg_add(&a, 5.0, 0, NAN);
    pplagg_add(&a, 18.0, 6, NAN);
    CHECK(a.seqs == 2 && a.empty == 1 && a.tokens == 8, "2 sequences, 1 empty, 8 tokens");
    CHECK(close_rel(pplagg_nll_per_token(&a), 20.0 / 8), "nll/token 2.5");
    CHECK(close_rel(pplagg_exp_of_mean(&a), exp(2.5)), "exp of mean exp(2.5) (token-weighted)");
    CHECK(close_rel(pplagg_mean_of_exp(&a), (exp(1) + exp(3)) / 2), "mean of exp");
    CHECK(close_rel(pplagg_sdtt(&a), exp(2.0)), "sdtt exp(mean of sequence means) = exp(2)");
    CHECK(close_rel(pplagg_sedd(&a), pplagg_mean_of_exp(&a)), "SEDD rule with batch 1 = mean of exp");
    CHECK(isnan(pplagg_nll_per_token_stderr(&a)), "no error bar without stderr");

    /* SEDD: batches of 2 over 5 sequences -> 2 batches, the 5th dropped */
    pplagg s;
    pplagg_init(&s, 2);
    double m[5] = {1, 2, 3, 4, 5};
    for (int i = 0; i < 5; i++) pplagg_add(&s, 10 * m[i], 10, 0.5);
    double want = ((exp(1) + exp(2)) / 2 + (exp(3) + exp(4)) / 2) / 2;
    CHECK(close_rel(pplagg_sedd(&s), want), "SEDD mean of batch means of exp");
    CHECK(s.batches == 2 && pplagg_sedd_dropped(&s) == 1, "2 full batches, 1 record dropped");
    CHECK(close_rel(pplagg_nll_per_token_stderr(&s), sqrt(5 * 0.25) / 50), "stderr in quadrature");
    pplagg_init(&s, 32);
    pplagg_add(&s, 1, 1, NAN);
    CHECK(isnan(pplagg_sedd(&s)), "no full batch: undefined");
    pplagg_add(&s, 1, 1, 0.1);
    CHECK(isnan(pplagg_nll_per_token_stderr(&s)), "error bar needs every record's stderr");
    pplagg_init(&s, 1);
    CHECK(isnan(pplagg_exp_of_mean(&s)) && isnan(pplagg_sdtt(&s)), "empty: undefined");

    /* MDLM mask: E at 0 is the first EOS (not a target); later EOS are out */
    enum { E = 9 };
    uint32_t t1[] = {E, 1, 2, E, 3};
    unsigned char mk[8];
    CHECK(pplagg_first_eos_mask(t1, 5, E, mk) == 3 && mk[0] && mk[1] && !mk[2] && mk[3],
          "first EOS at 0: the later EOS target is masked");
    uint32_t t2[] = {1, 2, E, E, 4};
    CHECK(pplagg_first_eos_mask(t2, 5, E, mk) == 3 && mk[0] && mk[1] && !mk[2] && mk[3],
          "first EOS target counts, the second does not");
    uint32_t t3[] = {1, 2, 3};
    CHECK(pplagg_first_eos_mask(t3, 3, E, mk) == 2, "no EOS: every target");
    CHECK(pplagg_first_eos_mask(t3, 1, E, mk) == 0, "one token: no target");

    /* bound orders: 3 blocks of L = 2, K = 2, batch 2 (third block dropped from C) */
    double b[6] = {2, 4, 0, 2, 6, 6}, out[4], per[3];
    pplagg_bound_orders(b, 3, 2, 2.0, 2, out, per);
    CHECK(per[0] == 1.5 && per[1] == 0.5 && per[2] == 3, "per-token bound per block");
    CHECK(close_rel(out[0], exp(5.0 / 3)), "A exp of mean");
    CHECK(close_rel(out[1], (exp(1.5) + exp(0.5) + exp(3)) / 3), "B mean of exp per block");
    CHECK(close_rel(out[2], exp(1.0)), "C exp of the one full batch's mean");
    CHECK(close_rel(out[3], (exp(1) + exp(2) + exp(0) + exp(1) + 2 * exp(3)) / 6), "D per draw");
    CHECK(out[0] <= out[1] && out[1] <= out[3], "Jensen: A <= B <= D");
    pplagg_bound_orders(b, 1, 2, 2.0, 2, out, NULL);
    CHECK(isnan(out[2]) && close_rel(out[0], exp(1.5)), "no full batch: C undefined");
    return tap_done();
}
