/* sedd: the SEDD transformer (spec sedd.md §1.3) on the op interface, loaded from a released-layout
 * checkpoint directory (config.json + model.safetensors; F32/F16/BF16 weights, converted to fp32).
 * Ownership: sedd_model_t owns its weights and work buffers; free with sedd_free().
 * Errors: NULL / ERR_FAIL with the message in e (a missing or mis-shaped tensor is named). */
#ifndef DLM_SEDD_H
#define DLM_SEDD_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "err.h"

typedef struct sedd_model sedd_model_t;

/* Loads the checkpoint in dir onto backend be (NULL: the CPU backend). */
sedd_model_t *sedd_load(const char *dir, const backend *be, err_t *e);
void sedd_free(sedd_model_t *m);
const struct config_sedd *sedd_config(const sedd_model_t *m);

/* Receives each intermediate of a forward pass by the fixture names of forward_trace
 * ("x_embed", "blocks.0.qkv", "final.logits_raw", ...), n floats in host memory. */
typedef void (*sedd_trace_fn)(void *ctx, const char *name, const float *data, size_t n);

/* Log-scores out (B,L,V) of tokens x (B,L) (ids < V) at total noise sigma (B): the model output
 * with the scale_by_sigma shift and the zero at the current token. Each sequence is computed on
 * its own (the same bits whatever B). trace may be NULL. @return 0 or ERR_FAIL. */
int sedd_forward(sedd_model_t *m, const int64_t *x, const float *sigma, int B, int L,
                 float *out, sedd_trace_fn trace, void *trace_ctx, err_t *e);

/* Uses n threads (OpenMP) on the CPU backend, with single-threaded BLAS calls: the model cuts
 * its products into fixed tiles, so results are the same bits for any n. Tools call it first. */
void sedd_set_threads(int n);

/* sedd_score_fn adapter (sedd_sampler.h): ctx is the sedd_model_t. */
int sedd_score(void *ctx, const int64_t *x, const float *sigma, int B, int L, float *log_score,
               err_t *e);

/* sedd_score for the sampler and the loss: with an absorbing graph only the rows at masked
 * positions are computed (the only ones sedd_sample and the score-entropy loss read; the final
 * product is a third of a small model's work or more) and the other rows are left as scratch;
 * with a uniform graph, sedd_score. A masked row's bits do not depend on B either. */
int sedd_score_masked(void *ctx, const int64_t *x, const float *sigma, int B, int L,
                    float *log_score, err_t *e);

/* The backend the model runs on. */
const backend *sedd_backend(const sedd_model_t *m);

/* sedd_score and sedd_score_masked for sedd_sample on the model's backend: x (B,L) and
 * log_score (B,L,V) are in that backend's memory (sigma (B) on the host). On the CPU they are
 * the functions above; on another backend the whole pass runs there, nothing comes to the host
 * (so run_step can capture a sampling step), and the tokens are not checked: they must be in
 * the vocabulary, as sedd_sample's state always is. Every row is computed there: the
 * masked-rows-only product is a CPU saving. */
int sedd_score_device(void *ctx, const int64_t *x, const float *sigma, int B, int L,
                      float *log_score, err_t *e);
int sedd_score_device_masked(void *ctx, const int64_t *x, const float *sigma, int B, int L,
                             float *log_score, err_t *e);

#endif
