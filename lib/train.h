/* train: the training loop shared by every model (GPT-2 and SEDD) — batches drawn from a block
 * stream by the counter-based RNG, AdamW with warm-up, gradient clipping, EMA weights, periodic
 * validation loss, atomic checkpoints in the released layouts and a bit-identical --resume.
 * A model plugs in through train_model: a flat parameter vector described by a tensor table,
 * a loss (+ gradients) on a batch of blocks, and its config.json.
 * Ownership: a train_model owns its params/grads (backend memory); train_run borrows it.
 * Errors: ERR_FAIL with the message in err_t. */
#ifndef DLM_TRAIN_H
#define DLM_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "err.h"

/* One parameter tensor inside the flat vector, under its released-checkpoint name. */
struct train_tensor {
    char name[96];      /* e.g. "transformer.h.0.attn.c_attn.weight", "blocks.0.attn_qkv.weight" */
    size_t offset;      /* in floats from params (64-byte aligned) */
    size_t numel;
    int ndim;
    int64_t shape[4];
    bool decay;         /* weight decay applies (matrices and embeddings, not biases or norms) */
};

typedef struct train_model train_model;
struct train_model {
    const char *arch;               /* "gpt2" | "sedd" */
    const backend *be;
    int block_len;                  /* tokens per training block (the model's context) */
    int vocab;                      /* input ids must be < vocab */
    size_t n_params;                /* floats in params/grads */
    float *params, *grads;          /* backend memory, n_params each */
    const struct train_tensor *tensors;
    int n_tensors;

    /* Mean loss of a batch of B blocks (B, block_len) in nats per scored token (GPT-2) or per
     * position (SEDD: the score-entropy loss of losses.py, t and x_t drawn from the RNG keyed by
     * (seed, key, row, position) so a batch's loss depends only on its inputs and key); with
     * backward, grads += d(loss)/d(params). */
    int (*loss)(train_model *m, const int32_t *blocks, int B, uint64_t seed, uint64_t key,
                bool backward, double *loss, err_t *e);
    /* Writes <dir>/config.json for these weights in the released layout. */
    int (*write_config)(const train_model *m, const char *dir, err_t *e);
    void (*free)(train_model *m);
};

/* Settings of a run; train_defaults() fills the documented defaults. */
struct train_opts {
    int steps;              /* optimiser steps in all (a resumed run continues up to it) */
    int batch;              /* blocks per step */
    double lr, beta1, beta2, eps, weight_decay;
    int warmup;             /* linear warm-up steps (lr · min(1, step/warmup)) */
    int cosine;             /* 1: cosine decay to lr_min after warm-up; 0: constant */
    double lr_min;
    double grad_clip;       /* max global L2 norm; 0: off */
    double ema;             /* EMA decay of the weights kept for the checkpoint; 0: no EMA */
    int eval_every, eval_batches;  /* validation loss every N steps over M batches; 0: off */
    int save_every;         /* checkpoint every N steps (and at the end) */
    uint64_t seed;
    const char *dtype;      /* weights in model.safetensors: "f32" | "bf16" | "f16" */
};
void train_defaults(struct train_opts *o);

#endif
