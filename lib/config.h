/* config: a model directory's config.json — GPT-2 (Hugging Face GPT2Config) or SEDD (hydra dump).
 * Ownership: struct config is caller-owned, plain data (strings copied into fixed arrays).
 * Errors: return ERR_FAIL with "<file>: <key>: what is wrong" in the caller's err_t. */
#ifndef DLM_CONFIG_H
#define DLM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum config_kind { CONFIG_NONE = 0, CONFIG_GPT2, CONFIG_SEDD };

/* GPT-2 MLP activations that config.json may name. */
enum config_act {
    CONFIG_ACT_GELU_TANH,  /* "gelu_new", "gelu_pytorch_tanh": the tanh approximation */
    CONFIG_ACT_GELU_ERF,   /* "gelu": 0.5x(1+erf(x/√2)) */
    CONFIG_ACT_RELU,       /* "relu" */
    CONFIG_ACT_SILU        /* "silu", "swish" */
};

enum config_graph { CONFIG_GRAPH_ABSORB, CONFIG_GRAPH_UNIFORM };
enum config_noise { CONFIG_NOISE_LOGLINEAR, CONFIG_NOISE_GEOMETRIC };

/* Absent keys take the Hugging Face GPT2Config defaults (noted per field). */
struct config_gpt2 {
    int64_t vocab_size;         /* V [50257] */
    int64_t n_positions;        /* P, context length [1024] */
    int64_t n_embd;             /* C [768] */
    int64_t n_head;             /* [12]; n_embd % n_head == 0 */
    int64_t n_layer;            /* [12] */
    int64_t n_inner;            /* MLP width; null/absent = 4*n_embd (other values are rejected) */
    double layer_norm_epsilon;  /* [1e-5] */
    enum config_act act;
    char activation_function[32];  /* as written ["gelu_new"] */
    int64_t bos_token_id, eos_token_id;  /* [50256]; -1 when null */
};

struct config_sedd {
    int64_t tokens;         /* N, the data vocabulary (top-level "tokens") */
    int64_t vocab;          /* V = N + 1 for absorb (the mask token is N), N for uniform */
    int64_t hidden_size;    /* H (model.hidden_size) */
    int64_t cond_dim;       /* model.cond_dim */
    int64_t length;         /* model.length, the training sequence length [1024] */
    int64_t n_blocks;       /* model.n_blocks */
    int64_t n_heads;        /* model.n_heads; H % n_heads == 0, head_dim even (rotary) */
    bool scale_by_sigma;    /* model.scale_by_sigma (only valid with absorb) */
    enum config_graph graph;  /* graph.type */
    enum config_noise noise;  /* noise.type */
    double sigma_min, sigma_max;  /* noise.sigma_min/max [1e-4, 20]; required for geometric */
};

struct config {
    enum config_kind kind;
    struct config_gpt2 gpt2;  /* valid when kind == CONFIG_GPT2 */
    struct config_sedd sedd;  /* valid when kind == CONFIG_SEDD */
};

/* Parses and validates len bytes of JSON; `name` (e.g. the path) prefixes error messages.
 * @return 0 with *cfg filled, or ERR_FAIL. */
int config_parse(const char *json, size_t len, const char *name, struct config *cfg, err_t *e);

/* Reads and parses the file at path (at most 16 MiB). */
int config_read_file(const char *path, struct config *cfg, err_t *e);

/* Reads <dir>/config.json. */
int config_read_dir(const char *dir, struct config *cfg, err_t *e);

/* "gpt2", "sedd" or "none"; and the names of the enums ("absorb", "geometric", ...). */
const char *config_kind_name(enum config_kind k);
const char *config_graph_name(enum config_graph g);
const char *config_noise_name(enum config_noise n);

/* Head dimension: n_embd / n_head or hidden_size / n_heads; 0 for CONFIG_NONE. */
int64_t config_head_dim(const struct config *cfg);

#endif
