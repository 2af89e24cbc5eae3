/* philox: the Philox4x32-10 counter-based generator (Salmon et al., SC'11) and its use in dlmkit.
 * Ownership: pure functions of (counter, key); no state, no allocation, safe from any thread.
 * Errors: none. Every random draw in dlmkit is philox_draw(seed, record id, step, position, lane). */
#ifndef DLM_PHILOX_H
#define DLM_PHILOX_H

#include <stdint.h>

/* One block: 10 rounds of Philox4x32 on counter ctr with key; writes 4 words to out.
 * Matches the Random123 known-answer vectors (tests/unit/test_philox.c). */
void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* The draw that a (seed, record id, step, position) tuple owns, lane by lane: lane L yields the
 * 4 words of block L. Layout: key = (seed low 32 bits, seed high 32 bits XOR record id high
 * 32 bits), counter = (lane, position, step, record id low 32 bits). Ids below 2^32 therefore
 * never share a block; ids above alias only with a different seed. A sample drawn this way
 * does not depend on batch size, threads, shards or device. */
void philox_draw(uint64_t seed, uint64_t record_id, uint32_t step, uint32_t position,
                 uint32_t lane, uint32_t out[4]);

/* Uniform double in the open interval (0,1) from two words: 52 random bits k, returned as
 * (k + 0.5) / 2^52, which is exact in a double (53-bit significand), so log(u) and log(-log(u))
 * are always finite. */
static inline double philox_u01_f64(uint32_t hi, uint32_t lo)
{
    uint64_t k = (((uint64_t)hi << 32) | lo) >> 12;
    return ((double)k + 0.5) * (1.0 / 4503599627370496.0);
}

/* Uniform float in the open interval (0,1) from one word: 23 random bits, (k + 0.5) / 2^23,
 * exact in a float (24-bit significand). */
static inline float philox_u01_f32(uint32_t w)
{
    return ((float)(w >> 9) + 0.5f) * (1.0f / 8388608.0f);
}

#endif
