/* gpt2: GPT-2 inference in fp32 through the op interface, on any backend — full-sequence forward
 * (optional key mask), incremental decoding with a KV cache, logits, log-probabilities, hidden
 * states. The caller's buffers (inputs and outputs) are host memory.
 * Ownership: gpt2_t owns its weights (and the mapped checkpoint while used in place); a
 * gpt2_state owns a KV cache and workspace. Errors: NULL / ERR_FAIL with a message in err_t. */
#ifndef DLM_GPT2_H
#define DLM_GPT2_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "err.h"

typedef struct gpt2 gpt2_t;
typedef struct gpt2_state gpt2_state;

/* Loads <dir>/config.json + <dir>/<weights> (NULL: model.safetensors) through ckpt (a missing
 * or mis-shaped tensor is an error naming it). F32 tensors that are 4-byte aligned in the
 * mapping are used in place; others (unaligned F32 as in the hub files, F16, BF16) are
 * converted into one f32 copy, so the weights are never held twice. On another backend every
 * tensor is converted to f32 on the host and copied into the backend's memory (the mapping is
 * released after loading). An untied lm_head.weight is used; a tied or absent one is wte. */
gpt2_t *gpt2_load(const char *dir, const char *weights, const backend *be, err_t *e);
void gpt2_free(gpt2_t *m);  /* NULL: no-op */
const struct config_gpt2 *gpt2_config(const gpt2_t *m);

/* A KV cache of `rows` sequences of up to `cap` positions (cap <= n_positions), with workspace
 * for up to max_tokens tokens per gpt2_forward call (rows*T summed over the call). */
gpt2_state *gpt2_state_new(const gpt2_t *m, int rows, int cap, int max_tokens, err_t *e);
void gpt2_state_free(gpt2_state *s);  /* NULL: no-op */
/* The cache of `layer`, kv 0 = K, 1 = V: (rows, n_head, cap, head_dim), K before scaling; in the
 * backend's memory (read it with to_host). */
const float *gpt2_state_cache(const gpt2_state *s, int layer, int kv);

/* What a forward call writes; every pointer may be NULL (not computed). */
struct gpt2_out {
    float *logits;        /* (B, logits_rows ? 1 : T, V) */
    int logits_last;      /* 1: logits of each row's last position only */
    float *last_hidden;   /* (B,T,C) ln_f output (HF last_hidden_state, the MAUVE feature) */
    float *pre_ln_f;      /* (B,T,C) residual stream after the last block */
    float *hidden_states; /* (L+1,B,T,C): [0] embeddings, [i] block i-1 output, [L] ln_f out */
};

/* Runs rows row0..row0+B-1 of the cache on ids (B,T) at positions past..past+T-1 (those rows'
 * caches must hold `past` positions; they are extended by T). key_mask (B,past+T) may be NULL;
 * 0 hides a key (padding). Checks ids < vocab, past+T <= cap and B*T <= max_tokens. */
int gpt2_forward(const gpt2_t *m, gpt2_state *s, int row0, int B, int T, const int32_t *ids,
                 int past, const uint8_t *key_mask, struct gpt2_out *out, err_t *e);

/* One decoding step: rows 0..B-1 of the cache each take one token, ids[b] at position pos[b]
 * (row b's cache holds pos[b] positions). logits (B,V). Uses batch-invariant kernels only
 * (matmul_rows, single-query attention): row b's logits do not depend on B or the other rows.
 * One run_step (a CUDA graph on a GPU, with the logits when B <= 512), then the download. */
int gpt2_step(const gpt2_t *m, gpt2_state *s, int B, const int32_t *ids, const int *pos,
              float *logits, err_t *e);
/* n_steps decoding steps from the tokens tok (B) at positions pos (B): step k feeds row b's
 * token at position pos[b] + k (tok for k = 0, then the token step k − 1 drew) and draws the
 * next, out[k·B + b], from its softmax at temperature 1/inv_t by the inverse CDF at
 * u[k·B + b] (the backend's draw_rows). The tokens stay where the model runs between steps,
 * each step one run_step (a CUDA graph on a GPU), and come to the host at the end. u (n_steps,
 * B), out (n_steps, B), tok, pos: host. pos[b] + n_steps − 1 must be inside the cache. */
int gpt2_decode(const gpt2_t *m, gpt2_state *s, int B, const int32_t *tok, const int *pos,
                int n_steps, const double *u, double inv_t, int32_t *out, err_t *e);
/* The uniform of record `id`'s draw at sequence position pos: Philox(seed, id, 0, pos), lane 0,
 * from 64 bits (bits = 64) or 32; so a sample does not depend on the batch or the sharding. */
double gpt2_draw_uniform(uint64_t seed, uint64_t id, uint32_t pos, int bits);

/* Per-token negative log-likelihoods of a right-padded batch ids (B,T) (padding: any valid id):
 * nll (B,T) with nll[b][t] = -log p(ids[b][t] | ids[b][0..t-1]) for t >= 1 and nll[b][0] = 0.
 * Positions after a row's real length are computed too and are the caller's to ignore (causal
 * attention keeps them from touching the real ones). Uses cache rows 0..B-1 from position 0;
 * the logits are produced and consumed in chunks of rows, never all (B,T,V) at once. */
int gpt2_nll(const gpt2_t *m, gpt2_state *s, int B, int T, const int32_t *ids, double *nll,
             err_t *e);

/* Sliding-window scoring of one long sequence ids[0..n), as the Hugging Face perplexity loop
 * windows it: begin = 0, stride, 2*stride, ...; end = min(begin + window, n); each window scores
 * the targets that the previous one did not (the first from position 1), so every token is
 * scored once, in the earliest window that holds it, i.e. with the longest context the windows
 * offer (>= window - stride). Only targets in [lo, hi) are scored (1 <= lo, hi <= n); windows
 * with none are skipped. nll[t] is set for those targets. s needs cap >= window, one row. */
struct gpt2_sliding {
    double nll_sum;  /* sum of the scored targets' NLL */
    long n;          /* targets scored */
    double hf_sum;   /* the HF docs' weighting: sum over windows of mean NLL * (scored - 1), the
                        first window * scored (its "- batch_size" drops the shifted label) */
    long hf_n;       /* sum of those weights */
    int windows;     /* windows run */
};
int gpt2_nll_sliding(const gpt2_t *m, gpt2_state *s, const int32_t *ids, int n, int window,
                     int stride, int lo, int hi, double *nll, struct gpt2_sliding *sum,
                     err_t *e);


#endif
