/* sedd_model: layout, views and host-side inputs shared by the SEDD runners (see sedd_model.h). */
#include "sedd_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


int sedd_layout_init(sedd_layout *lo, const struct config_sedd *cfg, err_t *e)
{
    memset(lo, 0, sizeof *lo);
    struct config full = {.kind = CONFIG_SEDD, .sedd = *cfg};
    size_t n_all = ckpt_expected(&full, NULL, 0);
    struct ckpt_param *all = calloc(n_all, sizeof *all);
    lo->param = calloc(n_all, sizeof *lo->param);
    lo->offset = calloc(n_all, sizeof *lo->offset);
    lo->numel = calloc(n_all, sizeof *lo->numel);
    if (!all || !lo->param || !lo->offset || !lo->numel) {
        free(all);
        sedd_layout_free(lo);
        return err_set(e, "sedd: out of memory for the parameter table");
    }
    ckpt_expected(&full, all, n_all);
    for (size_t i = 0; i < n_all; i++) {
        if (all[i].role != CKPT_PARAM) continue;
        size_t numel = 1;
        for (int k = 0; k < all[i].ndim; k++) numel *= (size_t)all[i].shape[k];
        lo->param[lo->n] = all[i];
        lo->offset[lo->n] = lo->total;
        lo->numel[lo->n] = numel;
        lo->total += (numel + 15) & ~(size_t)15; /* every tensor 64-byte aligned */
        lo->n++;
    }
    free(all);
    return 0;
}

void sedd_layout_free(sedd_layout *lo)
{
    free(lo->param), free(lo->offset), free(lo->numel);
    memset(lo, 0, sizeof *lo);
}

ckpt_t *sedd_ckpt_open(const char *dir, err_t *e)
{
    ckpt_t *c = ckpt_open(dir, e);
    if (c && ckpt_config(c)->kind != CONFIG_SEDD) {
        err_set(e, "%s: config.json is not a SEDD config (%s)", dir,
                config_kind_name(ckpt_config(c)->kind));
        ckpt_close(c);
        return NULL;
    }
    return c;
}

int sedd_load_params(const ckpt_t *c, const sedd_layout *lo, const backend *be, float *base,
                     err_t *e)
{
    size_t biggest = 0;
    for (size_t i = 0; i < lo->n; i++)
        if (lo->numel[i] > biggest) biggest = lo->numel[i];
    float *host = malloc(biggest * sizeof *host);
    if (!host) return err_set(e, "%s: out of memory for %zu parameters", ckpt_dir(c), biggest);
    int rc = 0;
    for (size_t i = 0; i < lo->n && rc == 0; i++) {
        const st_tensor *t = ckpt_tensor(c, lo->param[i].name);
        if (!t)
            rc = err_set(e, "%s: model.safetensors: missing tensor %s", ckpt_dir(c),
                         lo->param[i].name);
        else if (st_tensor_to_f32(t, host, e) < 0 ||
                 be->to_device(base + lo->offset[i], host, t->numel * sizeof *host, e) < 0)
            rc = ERR_FAIL;
    }
    free(host);
    return rc;
}

int sedd_weights_bind(sedd_weights *w, float *base, const sedd_layout *lo,
                      const struct config_sedd *cfg, err_t *e)
{
    memset(w, 0, sizeof *w);
    w->blocks = calloc((size_t)cfg->n_blocks, sizeof *w->blocks);
    if (!w->blocks) return err_set(e, "sedd: out of memory");
    /* the members in the order of ckpt_expected's table (ckpt.c table_sedd) */
    size_t n_slots = 10 + 10 * (size_t)cfg->n_blocks, k = 0;
    float ***slot = malloc(n_slots * sizeof *slot);
    if (!slot) {
        sedd_weights_unbind(w);
        return err_set(e, "sedd: out of memory");
    }
    slot[k++] = &w->embed, slot[k++] = &w->map0, slot[k++] = &w->map0_b;
    slot[k++] = &w->map2, slot[k++] = &w->map2_b;
    for (int64_t i = 0; i < cfg->n_blocks; i++) {
        struct sedd_block_w *b = &w->blocks[i];
        slot[k++] = &b->norm1, slot[k++] = &b->qkv, slot[k++] = &b->attn_out;
        slot[k++] = &b->norm2, slot[k++] = &b->fc1, slot[k++] = &b->fc1_b;
        slot[k++] = &b->fc2, slot[k++] = &b->fc2_b, slot[k++] = &b->ada, slot[k++] = &b->ada_b;
    }
    slot[k++] = &w->norm_f, slot[k++] = &w->out_w, slot[k++] = &w->out_b;
    slot[k++] = &w->out_ada, slot[k++] = &w->out_ada_b;
    if (k != lo->n) {
        free(slot);
        sedd_weights_unbind(w);
        return err_set(e, "sedd: the parameter table has %zu tensors, the model %zu", lo->n, k);
    }
    for (size_t i = 0; i < k; i++) *slot[i] = base + lo->offset[i];
    free(slot);
    return 0;
}

void sedd_weights_unbind(sedd_weights *w)
{
    free(w->blocks);
    memset(w, 0, sizeof *w);
}

void sedd_sigma_features(const float *sigma, int nb, float *tf)
{
    const float ln_period = (float)-log(10000.0);
    for (int b = 0; b < nb; b++)
        for (int j = 0; j < SEDD_FREQ / 2; j++) {
            float f = (float)exp((double)(ln_period * (float)j / (float)(SEDD_FREQ / 2)));
            float a = sigma[b] * f;
            tf[b * SEDD_FREQ + j] = (float)cos((double)a);
            tf[b * SEDD_FREQ + SEDD_FREQ / 2 + j] = (float)sin((double)a);
        }
}

void sedd_rotary_tables(int L, int d, float *cos_t, float *sin_t)
{
    for (int p = 0; p < L; p++)
        for (int j = 0; j < d; j++) {
            /* 1 / 10000^(2j/d) in fp32, as the original (rotary_emb.inv_freq is recomputed) */
            float inv_freq = 1.0f / powf(10000.0f, (float)(2 * (j % (d / 2))) / (float)d);
            float th = (float)p * inv_freq;
            cos_t[p * d + j] = (float)cos((double)th);
            sin_t[p * d + j] = (float)sin((double)th);
        }
}

void sedd_finish_rows(float *rows, int n, int64_t V, float sigma, bool scale, const int64_t *x)
{
    backend_cpu.sedd_finish(rows, x, n, V, sigma, scale);
}
