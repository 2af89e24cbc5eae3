/* sedd_noise: closed forms of the log-linear and geometric schedules and torch's linspace grid. */
#include <math.h>

#include "../../lib/sedd_noise.h"
#include "tap.h"

int main(void)
{
    struct config_sedd cfg = {.noise = CONFIG_NOISE_LOGLINEAR, .sigma_min = 1e-4, .sigma_max = 20};
    sedd_noise n;
    sedd_noise_init(&n, &cfg);
    CHECK(sedd_noise_total(&n, 0) == 0, "loglinear sigma(0) = 0");
    CHECK(fabs(sedd_noise_total(&n, 1) + log(1e-3)) < 1e-12, "loglinear sigma(1) = -log eps");
    CHECK(fabs(sedd_noise_rate(&n, 1) - 999) < 1e-9, "loglinear rate(1) = 999");
    /* P(masked at t) = 1 - e^-sigma = (1 - eps) t */
    double t = 0.37;
    CHECK(fabs(-expm1(-sedd_noise_total(&n, t)) - 0.999 * t) < 1e-15, "loglinear mask chance");
    /* rate is the derivative of total */
    double h = 1e-6, fd = (sedd_noise_total(&n, t + h) - sedd_noise_total(&n, t - h)) / (2 * h);
    CHECK(fabs(fd - sedd_noise_rate(&n, t)) < 1e-6, "loglinear rate = d sigma / dt");

    cfg.noise = CONFIG_NOISE_GEOMETRIC;
    sedd_noise_init(&n, &cfg);
    CHECK(fabs(sedd_noise_total(&n, 0) - 1e-4) < 1e-18, "geometric sigma(0) = sigma_min");
    CHECK(fabs(sedd_noise_total(&n, 1) - 20) < 1e-12, "geometric sigma(1) = sigma_max");
    fd = (sedd_noise_total(&n, t + h) - sedd_noise_total(&n, t - h)) / (2 * h);
    CHECK(fabs(fd - sedd_noise_rate(&n, t)) < 1e-6, "geometric rate = d sigma / dt");

    float grid[5];
    sedd_noise_timesteps(4, 1e-5, grid);
    CHECK(grid[0] == 1.0f && grid[4] == 1e-5f, "grid runs from 1 to eps exactly");
    CHECK(grid[1] > grid[2] && grid[2] > grid[3], "grid decreases");
    return tap_done();
}
