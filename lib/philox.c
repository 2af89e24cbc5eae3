/* philox: Philox4x32-10, written from the published algorithm (see philox.h).
 * Reference: plain integer arithmetic; the 32x32->64 products are exact in uint64_t. */
#include "philox.h"

/* Multipliers and Weyl key increments of Philox4x32 (Salmon et al., Table 2). */
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t x0 = ctr[0], x1 = ctr[1], x2 = ctr[2], x3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * x0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * x2;
        uint32_t y0 = (uint32_t)(p1 >> 32) ^ x1 ^ k0;
        uint32_t y1 = (uint32_t)p1;
        uint32_t y2 = (uint32_t)(p0 >> 32) ^ x3 ^ k1;
        uint32_t y3 = (uint32_t)p0;
        x0 = y0, x1 = y1, x2 = y2, x3 = y3;
        k0 += PHILOX_W0; /* the key is bumped after each round; the last bump is unused */
        k1 += PHILOX_W1;
    }
    out[0] = x0, out[1] = x1, out[2] = x2, out[3] = x3;
}

void philox_draw(uint64_t seed, uint64_t record_id, uint32_t step, uint32_t position,
                 uint32_t lane, uint32_t out[4])
{
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32) ^ (uint32_t)(record_id >> 32)};
    const uint32_t ctr[4] = {lane, position, step, (uint32_t)record_id};
    philox4x32_10(ctr, key, out);
}
