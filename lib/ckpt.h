/* ckpt: a model directory (config.json + model.safetensors), checked against its config's table.
 * Ownership: ckpt_t owns the config and the mapped file; tensor views live until ckpt_close().
 * Errors: NULL / ERR_FAIL with "<dir>: <file>: what" (a missing or mis-shaped tensor is named). */
#ifndef DLM_CKPT_H
#define DLM_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "safetensors.h"

enum ckpt_role {
    CKPT_PARAM,   /* a weight the model uses (F32, F16 or BF16) */
    CKPT_BUFFER   /* a stored constant the model does not read (causal masks, rotary inv_freq) */
};

/* One entry of the table of expected tensors. */
struct ckpt_param {
    char name[64];       /* canonical name, e.g. "h.0.attn.c_attn.weight" */
    int ndim;
    int64_t shape[4];
    enum ckpt_role role;
    bool optional;       /* may be absent: lm_head.weight and every buffer */
};

/* How a GPT-2 output projection is stored. */
enum ckpt_lm_head {
    CKPT_LM_HEAD_NONE,     /* not a GPT-2 checkpoint */
    CKPT_LM_HEAD_ABSENT,   /* no lm_head.weight: tied to wte (the hub layout) */
    CKPT_LM_HEAD_TIED,     /* lm_head.weight present and bit-identical to wte.weight */
    CKPT_LM_HEAD_UNTIED    /* present and different: the model must use it; counted separately */
};

struct ckpt_summary {
    enum config_kind kind;
    uint64_t n_params;        /* elements of all parameters; buffers and a tied lm_head excluded */
    uint64_t param_bytes;     /* their stored size */
    size_t n_tensors;         /* tensors in the file */
    size_t n_param_tensors;   /* of which parameters (lm_head.weight included, even if tied) */
    size_t n_buffers;         /* of which buffers */
    size_t n_extra;           /* of which not in the table: ignored */
    enum ckpt_lm_head lm_head;
    unsigned dtypes;          /* bit (1u << dtype) for every dtype stored in the file */
    uint64_t file_bytes;      /* size of model.safetensors */
};

typedef struct ckpt ckpt_t;

/* Reads <dir>/config.json and maps <dir>/model.safetensors; checks every expected tensor
 * (present unless optional, shape as the config implies, dtype) and rejects a name that occurs
 * twice after canonicalisation. Extra tensors are ignored and counted.
 * @return the checkpoint, to be freed with ckpt_close(); NULL on error. */
ckpt_t *ckpt_open(const char *dir, err_t *e);

/* As ckpt_open, with the weights in <dir>/<weights> instead of model.safetensors (fixture sets
 * keep variants of one model side by side). */
ckpt_t *ckpt_open_weights(const char *dir, const char *weights, err_t *e);

/* Frees everything; ckpt_close(NULL) is a no-op. */
void ckpt_close(ckpt_t *c);

const struct config *ckpt_config(const ckpt_t *c);
const struct ckpt_summary *ckpt_summary(const ckpt_t *c);
/* The underlying file, for extra tensors (stored names, not canonical). */
const st_file_t *ckpt_file(const ckpt_t *c);
const char *ckpt_dir(const ckpt_t *c);

/* The tensor with canonical name `name` (e.g. "wte.weight" whether stored with or without the
 * "transformer." prefix), or NULL when the file has none (only possible for optional entries
 * and names outside the table). The view is borrowed; data may be unaligned. */
const st_tensor *ckpt_tensor(const ckpt_t *c, const char *name);

/* Fills out[0..min(n, cap)) with the expected tensors of cfg (parameters, then buffers per block,
 * in model order) and returns n, the full count; ckpt_expected(cfg, NULL, 0) sizes the table. */
size_t ckpt_expected(const struct config *cfg, struct ckpt_param *out, size_t cap);

/* The canonical form of a stored name: past a leading "transformer." for GPT-2, else itself. */
const char *ckpt_canonical(enum config_kind kind, const char *name);

/* "none", "absent", "tied", "untied". */
const char *ckpt_lm_head_name(enum ckpt_lm_head h);

#endif
