/* sedd_graph: absorbing and uniform graphs of SEDD (see sedd_graph.h; spec sedd.md §2).
 * Everything is computed in double from the fp32 inputs; where the original's fp32 formula
 * cancels (1 − e^{−σ}, 1 − e^{Δ}, the uniform entropy's ratio) the stable form is used, which
 * matches the float64 references of the fixtures. */
#include "sedd_graph.h"

#include <math.h>
#include <string.h>

void sedd_graph_init(sedd_graph *g, enum config_graph type, int64_t n_tokens)
{
    g->type = type;
    g->n = n_tokens;
    g->dim = type == CONFIG_GRAPH_ABSORB ? n_tokens + 1 : n_tokens;
}

int64_t sedd_graph_mask(const sedd_graph *g)
{
    return g->type == CONFIG_GRAPH_ABSORB ? g->n : -1;
}

double sedd_graph_esigm1(double sigma)
{
    return expm1(sigma);
}

double sedd_graph_move_chance(double sigma)
{
    return -expm1(-sigma);
}

void sedd_graph_rate(const sedd_graph *g, int64_t i, double *out)
{
    if (g->type == CONFIG_GRAPH_ABSORB) {
        memset(out, 0, (size_t)g->dim * sizeof *out);
        out[g->n] += 1;
        out[i] -= 1;
        return;
    }
    sedd_graph_transp_rate(g, i, out);
}

void sedd_graph_transp_rate(const sedd_graph *g, int64_t i, double *out)
{
    if (g->type == CONFIG_GRAPH_ABSORB) {
        memset(out, 0, (size_t)g->dim * sizeof *out);
        if (i == g->n) {
            for (int64_t y = 0; y < g->n; y++) out[y] = 1;
        } else {
            out[i] = -1;
        }
        return;
    }
    double inv = 1.0 / (double)g->n;
    for (int64_t y = 0; y < g->dim; y++) out[y] = inv;
    out[i] = -(double)(g->n - 1) * inv;
}

bool sedd_graph_transition(const sedd_graph *g, int64_t i, double sigma, double *out)
{
    if (g->type == CONFIG_GRAPH_ABSORB) return false;
    sedd_graph_transp_transition(g, i, sigma, out); /* symmetric */
    return true;
}

void sedd_graph_transp_transition(const sedd_graph *g, int64_t i, double sigma, double *out)
{
    double move = sedd_graph_move_chance(sigma), stay = exp(-sigma);
    if (g->type == CONFIG_GRAPH_ABSORB) {
        if (i == g->n) {
            for (int64_t y = 0; y < g->n; y++) out[y] = move;
            out[g->n] = 1;
        } else {
            memset(out, 0, (size_t)g->dim * sizeof *out);
            out[i] = stay;
        }
        return;
    }
    double off = move / (double)g->n;
    for (int64_t y = 0; y < g->dim; y++) out[y] = off;
    out[i] = stay + off;
}

void sedd_graph_reverse_rate(const sedd_graph *g, int64_t i, const float *s, double *out)
{
    double sum = 0;
    if (g->type == CONFIG_GRAPH_ABSORB) {
        memset(out, 0, (size_t)g->dim * sizeof *out);
        if (i != g->n) return; /* an unmasked position never moves */
        for (int64_t y = 0; y < g->n; y++) {
            out[y] = s[y];
            sum += s[y];
        }
        out[g->n] = -sum;
        return;
    }
    double inv = 1.0 / (double)g->n;
    for (int64_t y = 0; y < g->dim; y++) {
        out[y] = (double)s[y] * inv;
        if (y != i) sum += out[y];
    }
    out[i] = -sum;
}

void sedd_graph_staggered_score(const sedd_graph *g, const float *s, double delta, double *out)
{
    double e = exp(delta), one_minus = -expm1(delta), sum = 0;
    for (int64_t y = 0; y < g->dim; y++) sum += s[y];
    for (int64_t y = 0; y < g->dim; y++) out[y] = e * s[y];
    if (g->type == CONFIG_GRAPH_ABSORB) {
        out[g->n] += one_minus * sum;
        return;
    }
    double add = one_minus / (double)g->n * sum;
    for (int64_t y = 0; y < g->dim; y++) out[y] += add;
}

double sedd_graph_score_entropy(const sedd_graph *g, const float *ls, double sigma, int64_t x,
                                int64_t x0)
{
    return sedd_graph_score_entropy_grad(g, ls, sigma, x, x0, 0, NULL);
}

double sedd_graph_score_entropy_grad(const sedd_graph *g, const float *ls, double sigma,
                                     int64_t x, int64_t x0, double w, float *grad)
{
    double esigm1 = sedd_graph_esigm1(sigma);
    if (grad) memset(grad, 0, (size_t)g->dim * sizeof *grad);
    if (g->type == CONFIG_GRAPH_ABSORB) {
        if (x != g->n) return 0;
        double r = 1.0 / esigm1, pos = 0;
        /* ∂/∂ls_y = e^{ls_y} − r [y = x0] for y < MASK; the mask column is not used */
        for (int64_t y = 0; y < g->n; y++) {
            double ey = exp((double)ls[y]);
            pos += ey;
            if (grad) grad[y] = (float)(w * ey);
        }
        if (grad) grad[x0] = (float)(w * (exp((double)ls[x0]) - r));
        /* K(r) = r (log r − 1) with log r = −log(esigm1) */
        return pos - r * ls[x0] + r * (-log(esigm1) - 1);
    }
    double n = (double)g->n;
    /* ratio = esigm1 / (esigm1 + N): the original's 1 − N/(esigm1 + N) cancels in fp32 */
    double ratio = esigm1 / (esigm1 + n), log_ratio = log(esigm1) - log(esigm1 + n);
    double sum_ls = 0, sum_exp = 0;
    for (int64_t y = 0; y < g->dim; y++) {
        sum_ls += ls[y];
        sum_exp += exp((double)ls[y]);
    }
    double neg = sum_ls / n - ls[x] / n, cst;
    /* ∂/∂ls_y for y ≠ x: e^{ls_y}/N − ratio/N (x = x0), or e^{ls_y}/N − 1/N − [y = x0]/esigm1
     * (x ≠ x0); ls_x cancels out of every term */
    double lin = x == x0 ? ratio / n : 1 / n;
    if (grad) {
        for (int64_t y = 0; y < g->dim; y++) grad[y] = (float)(w * (exp((double)ls[y]) / n - lin));
        if (x != x0) grad[x0] = (float)(w * (exp((double)ls[x0]) / n - lin - 1 / esigm1));
        grad[x] = 0;
    }
    if (x == x0) {
        neg = ratio * neg;
        cst = (n - 1) / n * ratio * (log_ratio - 1);
    } else {
        neg = ls[x0] / esigm1 + neg;
        cst = ((-log_ratio - 1) / ratio - (n - 2)) / n;
    }
    double pos = sum_exp / n - exp((double)ls[x]) / n;
    return pos - neg + cst;
}

int64_t sedd_graph_sample_transition(const sedd_graph *g, int64_t x0, double sigma, double u,
                                     int64_t rand_token)
{
    if (!(u < sedd_graph_move_chance(sigma))) return x0;
    return g->type == CONFIG_GRAPH_ABSORB ? g->n : rand_token;
}

int64_t sedd_graph_sample_limit(const sedd_graph *g, int64_t rand_token)
{
    return g->type == CONFIG_GRAPH_ABSORB ? g->n : rand_token;
}
