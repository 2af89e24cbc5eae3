/* sedd_train: the SEDD transformer (spec sedd.md §1) as a train_model (train.h): parameters in
 * the released state_dict layout (spec §1.2, so a checkpoint written from the tensor table loads
 * with sedd_load), a forward pass that keeps its activations, the backward pass through the
 * backend's training ops, and the denoising score-entropy loss of losses.py (spec §5.1).
 * The loss that train_model.loss returns is the batch mean of the per-sequence loss
 * Σ_l σ'(t) DSE_l divided by L: nats per position (the original minimises the batch mean of the
 * per-sequence loss; dividing by L only rescales it).
 * Differences from the original's training step: no dropout (model.dropout is not applied, and
 * write_config records 0); fp32 throughout (the original runs the blocks under bf16 autocast).
 * Ownership: the returned train_model owns its parameters, gradients and work buffers; free it
 * with m->free(m). Errors: NULL / ERR_FAIL with the message in err_t. */
#ifndef DLM_SEDD_TRAIN_H
#define DLM_SEDD_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "err.h"
#include "train.h"

/* A fresh model of cfg (cfg->vocab must be tokens + 1 for absorb, tokens for uniform) on be,
 * initialised as the original's modules are: nn.Linear weights and biases uniform in
 * ±1/√fan_in (PyTorch's defaults), the embedding kaiming-uniform (a = √5, i.e. ±1/√H), LayerNorm
 * weights 1, every adaLN_modulation and output_layer.linear zero (adaLN-Zero). The uniforms come
 * from Philox: element j of parameter tensor k (table order) is philox_draw(seed, k, 0, j / 4,
 * 0)[j % 4]. Training blocks have cfg->length tokens. */
train_model *sedd_train_new(const struct config_sedd *cfg, const backend *be, uint64_t seed,
                            err_t *e);

/* A model initialised from the checkpoint in dir (config.json + model.safetensors). */
train_model *sedd_train_load(const char *dir, const backend *be, err_t *e);

/* The loss for given times and noised tokens, no randomness: x0, xt (B, block_len) clean and
 * noised tokens (x0 < tokens, xt < vocab), t (B) times; per_seq (B, may be NULL) receives
 * Σ_l σ'(t_b) DSE(b, l) in nats (losses.py's loss for t and perturbed_batch given), *loss (may
 * be NULL) the batch mean of per_seq / block_len. With backward, grads += ∂(*loss)/∂params.
 * train_model.loss draws t = ε + (1 − ε) U (ε = 1e-3) per row and x_t per position with
 * philox_draw(seed, key, row, position, 0x5EDD) (t's U at position 2^31; a position's move
 * uniform from words 0-1, the uniform graph's replacement token from words 2-3 mod N) and calls
 * this. @return 0 or ERR_FAIL. */
int sedd_train_loss_given(train_model *m, const int64_t *x0, const int64_t *xt, const double *t,
                          int B, double *per_seq, double *loss, bool backward, err_t *e);

/* The log-scores out (B, block_len, vocab) of the training forward pass for tokens x at noise
 * sigma (B), as sedd_forward returns them (for tests). @return 0 or ERR_FAIL. */
int sedd_train_log_scores(train_model *m, const int64_t *x, const float *sigma, int B,
                          float *out, err_t *e);

#endif
