/* gpt2_train: GPT-2 (Hugging Face GPT2LMHeadModel: pre-LN, gelu_new, lm_head tied to wte) as a
 * train_model — the forward pass with every activation kept, the mean next-token cross-entropy
 * of a batch of blocks, and its backward pass through the backend's training ops. Parameters are
 * named as in the released checkpoints ("transformer.h.0.attn.c_attn.weight", Conv1D weights
 * (in,out)), so what the trainer writes loads with gpt2_load().
 * Ownership: the returned model owns its parameters, gradients and activations; free it with
 * m->free(m). Errors: NULL with the message in err_t. */
#ifndef DLM_GPT2_TRAIN_H
#define DLM_GPT2_TRAIN_H

#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "err.h"
#include "train.h"

/* A model of shape cfg with GPT-2's initialisation, drawn by Philox from seed: weights and
 * embeddings N(0, 0.02), the residual projections (attn.c_proj, mlp.c_proj) N(0, 0.02 /
 * sqrt(2 n_layer)), biases 0, LayerNorm weight 1 and bias 0. block_len = n_positions. The
 * activation must be gelu_new (tanh) and n_inner 4 n_embd. */
train_model *gpt2_train_new(const struct config_gpt2 *cfg, const backend *be, uint64_t seed,
                            err_t *e);

/* A model initialised from the checkpoint directory dir (config.json + model.safetensors, F32,
 * F16 or BF16). An untied lm_head.weight is refused (training ties it to wte). */
train_model *gpt2_train_load(const char *dir, const backend *be, err_t *e);

/* The configuration of a model made by gpt2_train_new/load (m->arch is "gpt2"). */
const struct config_gpt2 *gpt2_train_config(const train_model *m);

/* Logits (B*block_len, vocab) of the training forward pass on blocks (B, block_len), for tests
 * that compare it with the inference path. logits is caller-owned host memory. */
int gpt2_train_logits(train_model *m, const int32_t *blocks, int B, float *logits, err_t *e);

#endif
