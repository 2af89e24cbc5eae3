/* sedd_noise: SEDD noise schedules σ̄(t) and σ̄'(t) — log-linear and geometric (spec §3) — and the
 * sampler's time grid (spec §4.1). Ownership: plain caller-owned data. Errors: none. */
#ifndef DLM_SEDD_NOISE_H
#define DLM_SEDD_NOISE_H

#include "config.h"

/* The log-linear ε of the original (a hard-coded default, not read from the config). */
#define SEDD_NOISE_LOGLINEAR_EPS 1e-3

typedef struct sedd_noise {
    enum config_noise type;
    double eps;                   /* loglinear */
    double sigma_min, sigma_max;  /* geometric */
} sedd_noise;

/* From a SEDD config (noise.type, noise.sigma_min/max). */
void sedd_noise_init(sedd_noise *n, const struct config_sedd *cfg);

/* Total noise σ̄(t) (log-linear with log1p) and its rate σ̄'(t), in double. */
double sedd_noise_total(const sedd_noise *n, double t);
double sedd_noise_rate(const sedd_noise *n, double t);

/* The sampler grid torch.linspace(1, eps, steps + 1) in fp32 (torch's two-sided formula),
 * written to t (steps + 1 floats). */
void sedd_noise_timesteps(int steps, double eps, float *t /* (steps+1) */);

#endif
