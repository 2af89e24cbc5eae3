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
#include "safetensors.h"

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
    const char *device;     /* the model's backend ("cpu", "cuda") and the precision of its */
    const char *precision;  /* matrix products ("fp32", "bf16"): recorded in the checkpoints'
                             * metadata; resuming with other ones is allowed, with a warning
                             * (the result is then not bit-identical) */
    bool progress;          /* a progress line even when stderr is not a terminal */
    int stop_at;            /* > 0: stop after this step as if interrupted (the checkpoint is
                             * written; --resume continues to steps); 0: run to steps */
};
void train_defaults(struct train_opts *o);

/* Trains m on n_train blocks (n_train × m->block_len ids, each < m->vocab) and writes the
 * checkpoint directory out_dir every save_every steps and at the end. Step s (1-based) draws its
 * o->batch blocks with replacement by Philox keyed (seed, s, row), so a run's batches depend
 * only on the seed and the step. Validation (val_blocks may be NULL when n_val is 0): the mean
 * loss of eval_batches fixed batches (val blocks in order, wrapping), at step 0 of a fresh run,
 * every eval_every steps and at the end. Logs on stderr ("step 100/2000 loss ... tok/s") and one
 * JSON line per logged step in out_dir/train.log.jsonl.
 * A checkpoint is written as out_dir.tmp.<pid>/ (config.json; model.safetensors: the EMA weights
 * when o->ema > 0, else the weights, in o->dtype, with provenance metadata; train_state.safetensors:
 * fp32 weights, AdamW moments, EMA, the step and the settings that resuming must match;
 * train.log.jsonl) and then swapped into place; an existing out_dir must be a directory this
 * tool could have written (empty, or holding config.json) and only its known files are removed.
 * resume: continues from out_dir/train_state.safetensors (refused, naming the setting, when the
 * architecture, shapes, seed, batch, data or optimiser settings differ); the result is bit-identical
 * to an uninterrupted run. With steps 0 only the initial checkpoint is written.
 * @return 0 or ERR_FAIL. */
int train_run(train_model *m, const struct train_opts *o, const int32_t *train_blocks,
              size_t n_train, const int32_t *val_blocks, size_t n_val, const char *out_dir,
              bool resume, err_t *e);

/* Writes <dir>/config.json (m->write_config) and <dir>/model.safetensors holding `weights`
 * (n_params floats in backend memory laid out as m->params) under the names of m's tensor table,
 * converted to dtype "f32" | "bf16" | "f16" (round to nearest even), with metadata entries meta
 * (format "pt" is added). dir must exist. @return 0 or ERR_FAIL. */
int train_export(const train_model *m, const float *weights, const char *dir, const char *dtype,
                 const st_meta *meta, size_t n_meta, err_t *e);

#endif
