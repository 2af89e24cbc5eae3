/* mauve_gen: synthetic feature files for the mauve benchmark — a 50-component Gaussian mixture in
 * DIM dimensions, raw float32 [N, DIM] on stdout. Usage: mauve_gen N DIM SHIFT SEED */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static double gauss(void)
{
    double u = (rand() + 1.0) / (RAND_MAX + 2.0), v = (rand() + 1.0) / (RAND_MAX + 2.0);
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

int main(int argc, char **argv)
{
    if (argc != 5) return 2;
    int n = atoi(argv[1]), d = atoi(argv[2]);
    float shift = (float)atof(argv[3]);
    if (n < 1 || d < 1 || d > 4096) return 2;
    float *centres = malloc((size_t)50 * (size_t)d * sizeof *centres), *row = malloc((size_t)d * sizeof *row);
    if (!centres || !row) return 1;
    srand(7);
    for (int i = 0; i < 50 * d; i++) centres[i] = (float)gauss();
    srand((unsigned)atoi(argv[4]));
    for (int i = 0; i < n; i++) {
        int z = rand() % 50;
        for (int j = 0; j < d; j++) row[j] = centres[z * d + j] + 0.8f * (float)gauss() + shift;
        fwrite(row, sizeof *row, (size_t)d, stdout);
    }
    free(centres);
    free(row);
    return 0;
}
