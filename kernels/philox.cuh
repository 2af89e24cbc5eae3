/* philox (device): lib/philox.c's Philox4x32-10, philox_draw counter layout and uniform
 * conversions, written once for host and device code (CUDA __host__ __device__; plain static
 * inline functions when a C file includes it, as tests/kernels/test_sedd_ops.c does to check
 * the transcription against lib/philox.c). Every function gives lib/philox.[ch]'s bits: integer
 * arithmetic with exact 32x32->64 products, and conversions that are exact in float/double.
 * Ownership: pure functions. Errors: none. */
#ifndef DLM_KERNELS_PHILOX_CUH
#define DLM_KERNELS_PHILOX_CUH

#include <stdint.h>

#ifdef __CUDACC__
#define CU_PHILOX_FN __host__ __device__ static inline
#else
#define CU_PHILOX_FN static inline
#endif

/* one block of 10 rounds on counter c with key k (lib/philox.c philox4x32_10) */
CU_PHILOX_FN void cu_philox4x32_10(const uint32_t c[4], const uint32_t k[2], uint32_t out[4])
{
    uint32_t x0 = c[0], x1 = c[1], x2 = c[2], x3 = c[3], k0 = k[0], k1 = k[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * x0, p1 = (uint64_t)0xCD9E8D57u * x2;
        uint32_t y0 = (uint32_t)(p1 >> 32) ^ x1 ^ k0, y1 = (uint32_t)p1;
        uint32_t y2 = (uint32_t)(p0 >> 32) ^ x3 ^ k1, y3 = (uint32_t)p0;
        x0 = y0, x1 = y1, x2 = y2, x3 = y3;
        k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
    }
    out[0] = x0, out[1] = x1, out[2] = x2, out[3] = x3;
}

/* the block `lane` of the draw of (seed, record id, step, position) (lib/philox.c philox_draw) */
CU_PHILOX_FN void cu_philox_draw(uint64_t seed, uint64_t record, uint32_t step, uint32_t position,
                                 uint32_t lane, uint32_t out[4])
{
    const uint32_t k[2] = {(uint32_t)seed, (uint32_t)(seed >> 32) ^ (uint32_t)(record >> 32)};
    const uint32_t c[4] = {lane, position, step, (uint32_t)record};
    cu_philox4x32_10(c, k, out);
}

/* (k + 0.5) / 2^52 from the top 52 bits of hi:lo (philox_u01_f64; exact) */
CU_PHILOX_FN double cu_philox_u01_f64(uint32_t hi, uint32_t lo)
{
    uint64_t k = (((uint64_t)hi << 32) | lo) >> 12;
    return ((double)k + 0.5) * (1.0 / 4503599627370496.0);
}

/* (k + 0.5) / 2^23 from the top 23 bits of w (philox_u01_f32; exact) */
CU_PHILOX_FN float cu_philox_u01_f32(uint32_t w)
{
    return ((float)(w >> 9) + 0.5f) * (1.0f / 8388608.0f);
}

#endif
