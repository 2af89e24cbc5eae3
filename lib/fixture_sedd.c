/* fixture_sedd: the SEDD set — each model directory of manifest.json "models" loads as a SEDD
 * checkpoint with the manifest's graph, noise and dimensions; its cases (forward, graph, noise,
 * steps, loss, likelihood, trajectories) are reported by kind until the SEDD model runs them. */
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "ckpt.h"
#include "fixture.h"

/* The manifest's description of one model agrees with the loaded config. */
static bool model_matches(const json_t *spec, const json_t *model, const struct config_sedd *s)
{
    const struct { const json_t *src; const char *key; int64_t have; } dims[] = {
        {spec, "tokens", s->tokens},      {spec, "hidden", s->hidden_size},
        {spec, "cond", s->cond_dim},      {spec, "heads", s->n_heads},
        {spec, "blocks", s->n_blocks},    {spec, "length", s->length},
        {model, "vocab_size_model", s->vocab},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        const json_t *v = json_object_get(dims[i].src, dims[i].key);
        if (v && json_integer_value(v) != dims[i].have) return false;
    }
    const char *graph = json_string_value(json_object_get(model, "graph"));
    const char *noise = json_string_value(json_object_get(model, "noise"));
    return (!graph || strcmp(graph, config_graph_name(s->graph)) == 0) &&
           (!noise || strcmp(noise, config_noise_name(s->noise)) == 0);
}

int fixture_run_sedd(const char *dir, fixture_report *r, err_t *e)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    json_error_t jerr;
    json_t *manifest = json_load_file(path, 0, &jerr);
    if (!manifest) return err_set(e, "%s: line %d: %s", path, jerr.line, jerr.text);
    const json_t *spec = json_object_get(manifest, "spec");
    const char *model_name;
    json_t *model;
    json_object_foreach(json_object_get(manifest, "models"), model_name, model) {
        const char *sub = json_string_value(json_object_get(model, "model_dir"));
        snprintf(path, sizeof path, "%s/%s", dir, sub ? sub : model_name);
        ckpt_t *c = ckpt_open(path, e);
        bool ok = c && ckpt_config(c)->kind == CONFIG_SEDD &&
                  model_matches(spec, model, &ckpt_config(c)->sedd);
        if (!c) fprintf(r->out, "# %s\n", e->msg);
        fixture_case(r, "checkpoint", model_name, ok ? 0 : INFINITY, 0, ok,
                     "loads, graph/noise/dims as manifest");
        ckpt_close(c);

        const char *case_name;
        json_t *value;
        json_object_foreach(json_object_get(model, "cases"), case_name, value) {
            char kind[64], label[256];
            snprintf(kind, sizeof kind, "sedd-%.*s", (int)strcspn(case_name, "_"), case_name);
            snprintf(label, sizeof label, "%s/%s", model_name, case_name);
            fixture_unsupported(r, kind, label);
        }
    }
    json_decref(manifest);
    return 0;
}
