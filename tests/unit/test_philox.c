/* Philox4x32-10 against the Random123 known-answer vectors (kat_vectors, "philox4x32 10"),
 * and the properties dlmkit relies on: draws are pure functions of their tuple, and the
 * uniform conversions stay inside the open interval (0,1). */
#include <math.h>
#include <string.h>

#include "../../lib/philox.h"
#include "tap.h"

static const struct {
    uint32_t ctr[4], key[2], expect[4];
} kat[] = {
    {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

int main(void)
{
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        uint32_t out[4];
        philox4x32_10(kat[i].ctr, kat[i].key, out);
        CHECK(memcmp(out, kat[i].expect, sizeof out) == 0,
              "philox4x32_10 known answer %zu: %08x %08x %08x %08x", i, out[0], out[1], out[2],
              out[3]);
    }

    /* philox_draw is the documented layout over philox4x32_10. */
    uint32_t a[4], b[4];
    philox_draw(0x0123456789abcdefull, 7, 3, 11, 2, a);
    const uint32_t ctr[4] = {2, 11, 3, 7}, key[2] = {0x89abcdef, 0x01234567};
    philox4x32_10(ctr, key, b);
    CHECK(memcmp(a, b, sizeof a) == 0, "philox_draw maps (seed,id,step,pos,lane) as documented");
    philox_draw(0x0123456789abcdefull, 7, 3, 12, 2, b);
    CHECK(memcmp(a, b, sizeof a) != 0, "a different position gives a different block");

    /* Extremes of the conversions: never 0 or 1, so logs of them are finite. */
    CHECK(philox_u01_f64(0, 0) > 0.0 && philox_u01_f64(0xffffffff, 0xffffffff) < 1.0,
          "u01_f64 stays in (0,1) at the extremes");
    CHECK(philox_u01_f32(0) > 0.0f && philox_u01_f32(0xffffffff) < 1.0f,
          "u01_f32 stays in (0,1) at the extremes");

    /* Mean and variance of 2^18 draws: a broken word order or shift would move them far
     * more than the 6-sigma band (sd of the mean = sqrt(1/12/n) = 5.6e-4). */
    const int n = 1 << 18;
    double sum = 0, sum2 = 0;
    for (int i = 0; i < n / 2; i++) {
        uint32_t w[4];
        philox_draw(42, 1, 0, 0, (uint32_t)i, w);
        double u = philox_u01_f64(w[0], w[1]), v = philox_u01_f64(w[2], w[3]);
        sum += u + v;
        sum2 += u * u + v * v;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    CHECK(fabs(mean - 0.5) < 6 * 5.6e-4, "uniform mean %.5f close to 1/2", mean);
    CHECK(fabs(var - 1.0 / 12) < 0.003, "uniform variance %.5f close to 1/12", var);
    return tap_done();
}
