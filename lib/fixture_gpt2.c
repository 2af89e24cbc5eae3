/* fixture_gpt2: the GPT-2 set — the checkpoint in every stored variant (model*.safetensors beside
 * config.json) loads with the manifest's dimensions and identical parameters; the forward-pass
 * cases of manifest.json "cases" are reported by kind until the GPT-2 model runs them. */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "fixture.h"

/* The dimensions in manifest.json "config" equal the loaded config's. */
static bool dims_match(const json_t *want, const struct config_gpt2 *g)
{
    const struct { const char *key; int64_t have; } dims[] = {
        {"vocab_size", g->vocab_size}, {"n_positions", g->n_positions}, {"n_embd", g->n_embd},
        {"n_head", g->n_head}, {"n_layer", g->n_layer},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        const json_t *v = json_object_get(want, dims[i].key);
        if (v && json_integer_value(v) != dims[i].have) return false;
    }
    return true;
}

/* The tensor the model uses for name: an absent lm_head.weight is the tied wte.weight. */
static const st_tensor *effective(const ckpt_t *c, const char *name)
{
    const st_tensor *t = ckpt_tensor(c, name);
    if (!t && strcmp(name, "lm_head.weight") == 0) t = ckpt_tensor(c, "wte.weight");
    return t;
}

/* Largest |a - b| over every expected parameter of two loadings of one config (as f32). */
static double max_param_diff(const ckpt_t *a, const ckpt_t *b, err_t *e)
{
    size_t n = ckpt_expected(ckpt_config(a), NULL, 0);
    struct ckpt_param *tab = calloc(n, sizeof *tab);
    if (!tab) return err_set(e, "out of memory"), INFINITY;
    ckpt_expected(ckpt_config(a), tab, n);
    double worst = 0;
    for (size_t i = 0; i < n && worst != INFINITY; i++) {
        if (tab[i].role != CKPT_PARAM) continue;
        const st_tensor *ta = effective(a, tab[i].name), *tb = effective(b, tab[i].name);
        if (!ta || !tb) {
            if (ta != tb) worst = INFINITY; /* present in one loading only */
            continue;
        }
        float *fa = malloc(ta->numel * sizeof *fa), *fb = malloc(tb->numel * sizeof *fb);
        if (!fa || !fb || st_tensor_to_f32(ta, fa, e) < 0 || st_tensor_to_f32(tb, fb, e) < 0) {
            worst = INFINITY;
        } else {
            for (size_t k = 0; k < ta->numel; k++) {
                double d = fabs((double)fa[k] - (double)fb[k]);
                if (!(d <= worst)) worst = d; /* NaN counts as the worst */
            }
        }
        free(fa);
        free(fb);
    }
    free(tab);
    return worst;
}

/* The kind of a forward-pass case, from its name in the manifest. */
static const char *case_kind(const char *name)
{
    if (strncmp(name, "kv", 2) == 0) return "gpt2-kvcache";
    if (strcmp(name, "padded") == 0) return "gpt2-features";
    if (strcmp(name, "sliding") == 0) return "gpt2-sliding";
    return "gpt2-forward";
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int fixture_run_gpt2(const char *dir, fixture_report *r, err_t *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    json_error_t jerr;
    json_t *manifest = json_load_file(path, 0, &jerr);
    if (!manifest) return err_set(e, "%s: line %d: %s", path, jerr.line, jerr.text);

    /* model.safetensors, then every other model*.safetensors in name order */
    ckpt_t *base = ckpt_open(dir, e);
    bool ok = base && ckpt_config(base)->kind == CONFIG_GPT2 &&
              dims_match(json_object_get(manifest, "config"), &ckpt_config(base)->gpt2);
    if (!base) fprintf(r->out, "# %s\n", e->msg);
    fixture_case(r, "checkpoint", "model.safetensors", ok ? 0 : INFINITY, 0, ok,
                 "loads, dims as manifest");
    DIR *d = opendir(dir);
    char *variants[64];
    size_t n_variants = 0;
    for (struct dirent *ent; d && (ent = readdir(d)) && n_variants < 64;) {
        size_t len = strlen(ent->d_name);
        if (strncmp(ent->d_name, "model", 5) == 0 && len > 12 &&
            strcmp(ent->d_name + len - 12, ".safetensors") == 0 &&
            strcmp(ent->d_name, "model.safetensors") != 0)
            variants[n_variants++] = strdup(ent->d_name);
    }
    if (d) closedir(d);
    qsort(variants, n_variants, sizeof *variants, compare_strings);
    for (size_t i = 0; i < n_variants; i++) {
        ckpt_t *v = base ? ckpt_open_weights(dir, variants[i], e) : NULL;
        double diff = v ? max_param_diff(base, v, e) : INFINITY;
        if (base && !v) fprintf(r->out, "# %s\n", e->msg);
        fixture_case(r, "checkpoint", variants[i], diff, 0, diff == 0,
                     "same parameters as model.safetensors, exact");
        ckpt_close(v);
        free(variants[i]);
    }
    ckpt_close(base);

    const char *name;
    json_t *value;
    json_object_foreach(json_object_get(manifest, "cases"), name, value)
        fixture_unsupported(r, case_kind(name), name);
    json_decref(manifest);
    return 0;
}
