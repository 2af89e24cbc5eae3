/* sedd_noise: noise schedules and the time grid (see sedd_noise.h). */
#include "sedd_noise.h"

#include <math.h>

void sedd_noise_init(sedd_noise *n, const struct config_sedd *cfg)
{
    n->type = cfg->noise;
    n->eps = SEDD_NOISE_LOGLINEAR_EPS;
    n->sigma_min = cfg->sigma_min;
    n->sigma_max = cfg->sigma_max;
}

double sedd_noise_total(const sedd_noise *n, double t)
{
    if (n->type == CONFIG_NOISE_LOGLINEAR) return -log1p(-(1 - n->eps) * t);
    return exp((1 - t) * log(n->sigma_min) + t * log(n->sigma_max));
}

double sedd_noise_rate(const sedd_noise *n, double t)
{
    if (n->type == CONFIG_NOISE_LOGLINEAR) return (1 - n->eps) / (1 - (1 - n->eps) * t);
    return sedd_noise_total(n, t) * (log(n->sigma_max) - log(n->sigma_min));
}

void sedd_noise_timesteps(int steps, double eps, float *t)
{
    int count = steps + 1;
    if (count == 1) {
        t[0] = 1.0f;
        return;
    }
    /* torch's CPU linspace: start + i·step for the first half, end − (count−1−i)·step after */
    float start = 1.0f, end = (float)eps, step = (end - start) / (float)(count - 1);
    for (int i = 0; i < count; i++)
        t[i] = i < count / 2 ? start + step * (float)i : end - step * (float)(count - 1 - i);
}
