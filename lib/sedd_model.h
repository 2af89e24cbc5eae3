/* sedd_model: the pieces of the SEDD transformer (spec sedd.md §1) that inference (sedd.c) and
 * training (sedd_train.c) share: the parameter layout (one flat fp32 vector holding the
 * parameters of spec §1.2 in ckpt_expected order, each 16-float aligned) and views into it, the
 * sigma features, the rotary tables, and the output's scale_by_sigma shift with the zero at the
 * current token.
 * Ownership: a sedd_layout owns its table, sedd_weights its block array (the floats it points at
 * belong to the caller). Errors: ERR_FAIL with the message in err_t (out of memory only). */
#ifndef DLM_SEDD_MODEL_H
#define DLM_SEDD_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "ckpt.h"
#include "config.h"
#include "err.h"

#define SEDD_FREQ 256  /* TimestepEmbedder frequency size (hard-coded in the original) */
#define SEDD_LN_EPS 1e-5f

/* The parameters of a config: n tensors (buffers such as rotary_emb.inv_freq excluded). */
typedef struct sedd_layout {
    size_t n;
    struct ckpt_param *param;  /* (n) released name, shape */
    size_t *offset, *numel;    /* (n) floats from the start of the vector (offset % 16 == 0) */
    size_t total;              /* floats in the vector */
} sedd_layout;

int sedd_layout_init(sedd_layout *lo, const struct config_sedd *cfg, err_t *e);
void sedd_layout_free(sedd_layout *lo);

/* Opens the checkpoint in dir (ckpt_open) and checks that its config is a SEDD config.
 * @return the checkpoint (ckpt_close it) or NULL. */
ckpt_t *sedd_ckpt_open(const char *dir, err_t *e);

/* Copies every parameter of lo from c, converted to fp32, into base (backend memory of be,
 * lo->total floats) at its offset; the padding between tensors is not written.
 * @return 0, or ERR_FAIL naming a missing tensor. */
int sedd_load_params(const ckpt_t *c, const sedd_layout *lo, const backend *be, float *base,
                     err_t *e);

/* Per-block views (nn.Linear weights are (out, in)). */
struct sedd_block_w {
    float *norm1, *qkv, *attn_out, *norm2, *fc1, *fc1_b, *fc2, *fc2_b, *ada, *ada_b;
};

/* Views of every parameter inside one flat vector laid out by a sedd_layout; binding the
 * gradient vector gives the gradient of each parameter under the same name. */
typedef struct sedd_weights {
    float *embed, *map0, *map0_b, *map2, *map2_b;
    struct sedd_block_w *blocks;  /* (n_blocks), owned */
    float *norm_f, *out_w, *out_b, *out_ada, *out_ada_b;
} sedd_weights;

/* Points w's members into base (lo->total floats, backend memory). @return 0 or ERR_FAIL. */
int sedd_weights_bind(sedd_weights *w, float *base, const sedd_layout *lo,
                      const struct config_sedd *cfg, err_t *e);
void sedd_weights_unbind(sedd_weights *w);

/* TimestepEmbedder features of nb noise levels: tf (nb, SEDD_FREQ) = [cos(σ f_j), sin(σ f_j)]
 * with f_j computed in fp32 as the original (spec §1.3 step 2). Host memory. */
void sedd_sigma_features(const float *sigma, int nb, float *tf);

/* Rotary tables cos, sin (L, d) of head dimension d (even) for positions 0..L-1 (spec §1.3
 * step 4: fp32 inverse frequencies and angles). Host memory. */
void sedd_rotary_tables(int L, int d, float *cos_t, float *sin_t);

/* Turns n rows of raw logits (V each, host memory) at noise sigma into log-scores in place:
 * when scale, y ↦ (y − log esigm1(σ)) − log(V − 1) (spec §1.3 step 7), then row i's entry x[i]
 * (the current token) is set to 0 (step 8). The CPU backend's sedd_finish op (backend.h) on
 * host memory, whatever backend the model runs on. */
void sedd_finish_rows(float *rows, int n, int64_t V, float sigma, bool scale, const int64_t *x);

#endif
