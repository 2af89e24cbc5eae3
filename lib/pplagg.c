/* pplagg: perplexity aggregation rules (see pplagg.h). Sums are plain doubles: each term carries
 * 1e-16 relative error, far below the 1e-12 the fixtures ask for at any realistic record count. */
#include "pplagg.h"

#include <math.h>

void pplagg_init(pplagg *a, size_t batch)
{
    *a = (pplagg){0};
    a->batch = batch ? batch : 1;
}

void pplagg_add(pplagg *a, double nll, double n, double nll_stderr)
{
    if (!(n > 0)) {
        a->empty++;
        return;
    }
    double mean = nll / n, p = exp(mean);
    a->nll += nll;
    a->tokens += n;
    a->exp_sum += p;
    a->mean_nll_sum += mean;
    a->seqs++;
    if (isfinite(nll_stderr)) {
        a->var_sum += nll_stderr * nll_stderr;
        a->with_stderr++;
    }
    a->batch_exp_sum += p;
    if (++a->in_batch == a->batch) {
        a->batches_sum += a->batch_exp_sum / (double)a->batch;
        a->batches++;
        a->batch_exp_sum = 0;
        a->in_batch = 0;
    }
}

double pplagg_nll_per_token(const pplagg *a) { return a->tokens > 0 ? a->nll / a->tokens : NAN; }
double pplagg_exp_of_mean(const pplagg *a) { return exp(pplagg_nll_per_token(a)); }
double pplagg_mean_of_exp(const pplagg *a) { return a->seqs ? a->exp_sum / (double)a->seqs : NAN; }
double pplagg_sedd(const pplagg *a) { return a->batches ? a->batches_sum / (double)a->batches : NAN; }
uint64_t pplagg_sedd_dropped(const pplagg *a) { return a->in_batch; }

double pplagg_sdtt(const pplagg *a)
{
    return a->seqs ? exp(a->mean_nll_sum / (double)a->seqs) : NAN;
}

double pplagg_nll_per_token_stderr(const pplagg *a)
{
    if (!a->seqs || a->with_stderr != a->seqs) return NAN;
    return sqrt(a->var_sum) / a->tokens;
}

size_t pplagg_first_eos(const uint32_t *tokens, size_t n, uint32_t eos)
{
    size_t i = 0;
    while (i < n && tokens[i] != eos) i++;
    return i;
}

size_t pplagg_first_eos_mask(const uint32_t *tokens, size_t n, uint32_t eos, unsigned char *mask)
{
    size_t first = pplagg_first_eos(tokens, n, eos), count = 0;
    for (size_t j = 0; j + 1 < n; j++) {
        mask[j] = pplagg_mdlm_counts(tokens, j + 1, first, eos);
        count += mask[j];
    }
    return count;
}

void pplagg_bound_orders(const double *b, size_t blocks, size_t K, double L, size_t batch,
                         double out[4], double *per_block)
{
    double sum_all = 0, sum_exp_block = 0, sum_exp_draw = 0, batch_sum = 0, batches_sum = 0;
    size_t in_batch = 0, batches = 0;
    if (!batch) batch = 1;
    for (size_t j = 0; j < blocks; j++) {
        double s = 0;
        for (size_t k = 0; k < K; k++) {
            s += b[j * K + k];
            sum_exp_draw += exp(b[j * K + k] / L);
        }
        double tok = s / (double)K / L; /* per-token bound of block j */
        if (per_block) per_block[j] = tok;
        sum_all += tok;
        sum_exp_block += exp(tok);
        batch_sum += tok;
        if (++in_batch == batch) {
            batches_sum += exp(batch_sum / (double)batch);
            batches++;
            batch_sum = 0;
            in_batch = 0;
        }
    }
    double nb = (double)blocks;
    out[0] = blocks ? exp(sum_all / nb) : NAN;
    out[1] = blocks ? sum_exp_block / nb : NAN;
    out[2] = batches ? batches_sum / (double)batches : NAN;
    out[3] = blocks && K ? sum_exp_draw / (nb * (double)K) : NAN;
}
