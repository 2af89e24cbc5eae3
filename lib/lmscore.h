/* lmscore: the model side of the evaluations — lm-eval-harness request encoding and GPT-2
 * continuation log-likelihoods (specs/eval.md §7.2), and the MAUVE feature of a sequence (§6.5).
 * Ownership: nothing is kept between calls; outputs are caller-owned (bpe_ids grown in place).
 * Errors: 0 on success, ERR_FAIL with the message in err_t. */
#ifndef DLM_LMSCORE_H
#define DLM_LMSCORE_H

#include <stdbool.h>
#include <stdint.h>

#include "bpe.h"
#include "err.h"
#include "gpt2.h"
#include "sedd_graph.h"
#include "sedd_noise.h"
#include "sedd_sampler.h"

/* The harness's _encode_pair: trailing whitespace of ctx moves to the front of cont; then
 * whole = tok(ctx + cont), ctx_ids = tok(ctx) and cont_ids = whole[len(ctx_ids):] (a split of
 * the joint tokenization). An empty context becomes [eot]. ctx_ids and cont_ids are emptied
 * first. Whitespace here is ASCII (space, \t, \n, \v, \f, \r); Python's rstrip() also strips
 * Unicode spaces, which no task's context ends with. A context that is empty after the move also
 * becomes [eot]. It is an error when the continuation gets no tokens. */
int lmscore_encode_pair(bpe_enc_t *enc, const char *ctx, const char *cont, uint32_t eot,
                        struct bpe_ids *ctx_ids, struct bpe_ids *cont_ids, err_t *e);

/* GPT-2 teacher-forced log-likelihood of cont (n_cont tokens) after ctx (n_ctx tokens), as the
 * harness computes it: input = (ctx + cont)[-(n_positions+1):][:-1] (left truncation), ll = sum
 * of log_softmax at the continuation positions (accumulated in double), *greedy = every
 * continuation token is the argmax (first maximum) of its row. s needs one row, cap and
 * max_tokens >= n_positions. Every id must be < the model's vocabulary (the error names the
 * first that is not); n_cont must be in 1..n_positions. greedy may be NULL. */
int lmscore_gpt2(const gpt2_t *m, gpt2_state *s, const uint32_t *ctx, int n_ctx,
                 const uint32_t *cont, int n_cont, double *ll, bool *greedy, err_t *e);

/* The MAUVE feature of ids[0..n) (1 <= n <= the state's cap): the ln_f output (C floats) at the
 * last position, computed on the sequence alone (no padding, no BOS). s needs one row,
 * cap >= n and max_tokens >= n. */
int lmscore_feature(const gpt2_t *m, gpt2_state *s, const uint32_t *ids, int n, float *feat,
                    err_t *e);

/* SEDD conditional likelihood bound of cont after ctx (specs/eval.md §7.3): x0 = [ctx ; cont]
 * (L = n_ctx + n_cont, no padding); K times t_k = ε + (1−ε)(k + v_k)/K (stratified, ε =
 * SEDD_LOSS_EPS); at each, only continuation positions move (the context is never perturbed),
 * one model call, and loss_k = σ̄'(t_k) Σ_{continuation l} DSE_l. *ll = −mean_k loss_k, *ll_se
 * its standard error (NaN for K = 1). Draws are Philox keyed (seed, id, SEDD_STEP_LOSS + k,
 * position l) as sedd_sampler_bound's, t's uniform at position 0x80000000 + req.
 * greedy (may be NULL; absorbing graph only, else an error): every continuation position masked,
 * one call at t = greedy_t, and the argmax over the data tokens (mask excluded) at every
 * continuation position in parallel equals the target (SDTT eval_lambada's notion, not the
 * autoregressive one). Ids must be < the graph's N. fn takes tokens and writes log-scores in
 * be's memory (sedd_score_device with sedd_backend(model), or a host function with
 * &backend_cpu), where ws holds L·V floats: the score entropies are summed there, and only the
 * greedy call's continuation rows come back. */
int lmscore_sedd(const backend *be, const sedd_graph *g, const sedd_noise *nz, sedd_score_fn fn,
                 void *fn_ctx, const uint32_t *ctx, int n_ctx, const uint32_t *cont, int n_cont,
                 int K, uint64_t seed, uint64_t id, uint32_t req, double greedy_t, float *ws,
                 double *ll, double *ll_se, bool *greedy, err_t *e);

#endif
