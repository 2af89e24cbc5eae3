/* config: detection and validation of GPT-2 and SEDD config.json files (see config.h). */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Limits that keep every derived size (V*C, L*12*C*C, P*P) far inside int64. */
#define MAX_VOCAB ((int64_t)INT32_MAX - 1)
#define MAX_WIDTH ((int64_t)1 << 20)
#define MAX_DEPTH ((int64_t)1 << 16)
#define MAX_POSITIONS ((int64_t)1 << 24)
#define MAX_CONFIG_BYTES ((long)16 << 20)

/* Where messages go: "<file>: <prefix><key>: what". */
struct ctx {
    const char *file;
    const char *prefix;  /* "" or "model." etc. */
    err_t *e;
};

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Integer obj[key] in [lo, hi]; `def` when absent (required keys pass required=1). */
static int get_int(const struct ctx *c, const json_t *obj, const char *key, int required,
                   int64_t def, int64_t lo, int64_t hi, int64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required) return err_set(c->e, "%s: %s%s: missing", c->file, c->prefix, key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return err_set(c->e, "%s: %s%s: expected an integer, got %s", c->file, c->prefix, key,
                       type_name(v));
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return err_set(c->e, "%s: %s%s: %lld is out of range [%lld, %lld]", c->file, c->prefix,
                       key, (long long)x, (long long)lo, (long long)hi);
    *out = x;
    return 0;
}

/* Finite number obj[key] with lo < value < hi (integers accepted); `def` when absent. */
static int get_real(const struct ctx *c, const json_t *obj, const char *key, int required,
                    double def, double lo, double hi, double *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required) return err_set(c->e, "%s: %s%s: missing", c->file, c->prefix, key);
        *out = def;
        return 0;
    }
    if (!json_is_number(v))
        return err_set(c->e, "%s: %s%s: expected a number, got %s", c->file, c->prefix, key,
                       type_name(v));
    double x = json_number_value(v);
    if (!isfinite(x) || !(x > lo) || !(x < hi))
        return err_set(c->e, "%s: %s%s: %g is out of range (%g, %g)", c->file, c->prefix, key,
                       x, lo, hi);
    *out = x;
    return 0;
}

static int get_bool(const struct ctx *c, const json_t *obj, const char *key, int required,
                    bool def, bool *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required) return err_set(c->e, "%s: %s%s: missing", c->file, c->prefix, key);
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v))
        return err_set(c->e, "%s: %s%s: expected true or false, got %s", c->file, c->prefix,
                       key, type_name(v));
    *out = json_is_true(v);
    return 0;
}

/* String obj[key] (NULL when absent and not required). */
static int get_str(const struct ctx *c, const json_t *obj, const char *key, int required,
                   const char **out)
{
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v) return required ? err_set(c->e, "%s: %s%s: missing", c->file, c->prefix, key) : 0;
    if (!json_is_string(v))
        return err_set(c->e, "%s: %s%s: expected a string, got %s", c->file, c->prefix, key,
                       type_name(v));
    *out = json_string_value(v);
    return 0;
}

/* A token id or null (-1). */
static int get_token_id(const struct ctx *c, const json_t *obj, const char *key, int64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (v && json_is_null(v)) {
        *out = -1;
        return 0;
    }
    return get_int(c, obj, key, 0, 50256, 0, MAX_VOCAB, out);
}

/* A boolean switch whose only implemented value is `want`. */
static int check_default_bool(const struct ctx *c, const json_t *obj, const char *key, bool want)
{
    bool v = want;
    if (get_bool(c, obj, key, 0, want, &v) < 0) return ERR_FAIL;
    if (v != want)
        return err_set(c->e, "%s: %s: %s is not supported (only %s)", c->file, key,
                       v ? "true" : "false", want ? "true" : "false");
    return 0;
}

static const struct {
    const char *name;
    enum config_act act;
} acts[] = {
    {"gelu_new", CONFIG_ACT_GELU_TANH}, {"gelu_pytorch_tanh", CONFIG_ACT_GELU_TANH},
    {"gelu", CONFIG_ACT_GELU_ERF},      {"relu", CONFIG_ACT_RELU},
    {"silu", CONFIG_ACT_SILU},          {"swish", CONFIG_ACT_SILU},
};

static int parse_gpt2(const struct ctx *c, const json_t *root, struct config_gpt2 *g)
{
    memset(g, 0, sizeof *g);
    if (get_int(c, root, "vocab_size", 0, 50257, 1, MAX_VOCAB, &g->vocab_size) < 0 ||
        get_int(c, root, "n_positions", 0, 1024, 1, MAX_POSITIONS, &g->n_positions) < 0 ||
        get_int(c, root, "n_embd", 0, 768, 1, MAX_WIDTH, &g->n_embd) < 0 ||
        get_int(c, root, "n_head", 0, 12, 1, MAX_WIDTH, &g->n_head) < 0 ||
        get_int(c, root, "n_layer", 0, 12, 1, MAX_DEPTH, &g->n_layer) < 0 ||
        get_real(c, root, "layer_norm_epsilon", 0, 1e-5, 0.0, 1.0, &g->layer_norm_epsilon) < 0 ||
        get_token_id(c, root, "bos_token_id", &g->bos_token_id) < 0 ||
        get_token_id(c, root, "eos_token_id", &g->eos_token_id) < 0)
        return ERR_FAIL;
    if (g->n_embd % g->n_head)
        return err_set(c->e, "%s: n_head: n_embd %lld is not a multiple of n_head %lld", c->file,
                       (long long)g->n_embd, (long long)g->n_head);

    g->n_inner = 4 * g->n_embd;
    const json_t *inner = json_object_get(root, "n_inner");
    if (inner && !json_is_null(inner)) {
        int64_t v;
        if (get_int(c, root, "n_inner", 1, 0, 1, 4 * MAX_WIDTH, &v) < 0) return ERR_FAIL;
        if (v != g->n_inner)
            return err_set(c->e, "%s: n_inner: %lld is not supported (only null or 4*n_embd = "
                           "%lld)", c->file, (long long)v, (long long)g->n_inner);
    }

    const char *act;
    if (get_str(c, root, "activation_function", 0, &act) < 0) return ERR_FAIL;
    if (!act) act = "gelu_new";
    size_t i = 0, n = sizeof acts / sizeof acts[0];
    while (i < n && strcmp(act, acts[i].name) != 0) i++;
    if (i == n)
        return err_set(c->e, "%s: activation_function: '%.40s' is not supported (gelu_new, "
                       "gelu_pytorch_tanh, gelu, relu, silu)", c->file, act);
    g->act = acts[i].act;
    snprintf(g->activation_function, sizeof g->activation_function, "%s", acts[i].name);

    /* Switches whose non-default values would change the math (spec gpt2.md 1.2). */
    if (check_default_bool(c, root, "scale_attn_weights", true) < 0 ||
        check_default_bool(c, root, "scale_attn_by_inverse_layer_idx", false) < 0 ||
        check_default_bool(c, root, "add_cross_attention", false) < 0)
        return ERR_FAIL;
    return 0;
}

/* The object root[key], required. */
static int get_obj(const struct ctx *c, const json_t *root, const char *key, const json_t **out)
{
    *out = json_object_get(root, key);
    if (!*out) return err_set(c->e, "%s: %s: missing", c->file, key);
    if (!json_is_object(*out))
        return err_set(c->e, "%s: %s: expected an object, got %s", c->file, key,
                       type_name(*out));
    return 0;
}

static int parse_sedd(const struct ctx *top, const json_t *root, struct config_sedd *s)
{
    memset(s, 0, sizeof *s);
    const json_t *model, *graph, *noise;
    const char *gtype, *ntype;
    if (get_int(top, root, "tokens", 1, 0, 1, MAX_VOCAB - 1, &s->tokens) < 0 ||
        get_obj(top, root, "model", &model) < 0 || get_obj(top, root, "graph", &graph) < 0 ||
        get_obj(top, root, "noise", &noise) < 0)
        return ERR_FAIL;

    struct ctx c = {top->file, "graph.", top->e};
    if (get_str(&c, graph, "type", 1, &gtype) < 0) return ERR_FAIL;
    if (strcmp(gtype, "absorb") == 0)
        s->graph = CONFIG_GRAPH_ABSORB;
    else if (strcmp(gtype, "uniform") == 0)
        s->graph = CONFIG_GRAPH_UNIFORM;
    else
        return err_set(c.e, "%s: graph.type: '%.40s' is not absorb or uniform", c.file, gtype);
    s->vocab = s->tokens + (s->graph == CONFIG_GRAPH_ABSORB);

    c.prefix = "noise.";
    if (get_str(&c, noise, "type", 1, &ntype) < 0) return ERR_FAIL;
    if (strcmp(ntype, "loglinear") == 0)
        s->noise = CONFIG_NOISE_LOGLINEAR;
    else if (strcmp(ntype, "geometric") == 0)
        s->noise = CONFIG_NOISE_GEOMETRIC;
    else
        return err_set(c.e, "%s: noise.type: '%.40s' is not loglinear or geometric", c.file,
                       ntype);
    int need = s->noise == CONFIG_NOISE_GEOMETRIC;
    if (get_real(&c, noise, "sigma_min", need, 1e-4, 0.0, HUGE_VAL, &s->sigma_min) < 0 ||
        get_real(&c, noise, "sigma_max", need, 20.0, 0.0, HUGE_VAL, &s->sigma_max) < 0)
        return ERR_FAIL;
    if (!(s->sigma_min < s->sigma_max))
        return err_set(c.e, "%s: noise.sigma_max: %g is not above sigma_min %g", c.file,
                       s->sigma_max, s->sigma_min);

    c.prefix = "model.";
    if (get_int(&c, model, "hidden_size", 1, 0, 1, MAX_WIDTH, &s->hidden_size) < 0 ||
        get_int(&c, model, "cond_dim", 1, 0, 1, MAX_WIDTH, &s->cond_dim) < 0 ||
        get_int(&c, model, "n_blocks", 1, 0, 1, MAX_DEPTH, &s->n_blocks) < 0 ||
        get_int(&c, model, "n_heads", 1, 0, 1, MAX_WIDTH, &s->n_heads) < 0 ||
        get_int(&c, model, "length", 0, 1024, 1, MAX_POSITIONS, &s->length) < 0 ||
        get_bool(&c, model, "scale_by_sigma", 1, false, &s->scale_by_sigma) < 0)
        return ERR_FAIL;
    if (s->hidden_size % s->n_heads || (s->hidden_size / s->n_heads) % 2)
        return err_set(c.e, "%s: model.n_heads: hidden_size %lld / n_heads %lld is not an even "
                       "head dimension", c.file, (long long)s->hidden_size,
                       (long long)s->n_heads);
    if (s->scale_by_sigma && s->graph != CONFIG_GRAPH_ABSORB)
        return err_set(c.e, "%s: model.scale_by_sigma: true requires graph.type absorb", c.file);
    return 0;
}

static bool has_gpt2_arch(const json_t *archs)
{
    size_t i;
    const json_t *a;
    if (!json_is_array(archs)) return false;
    json_array_foreach(archs, i, a) {
        const char *s = json_string_value(a);
        if (s && (strcmp(s, "GPT2LMHeadModel") == 0 || strcmp(s, "GPT2Model") == 0)) return true;
    }
    return false;
}

int config_parse(const char *json, size_t len, const char *name, struct config *cfg, err_t *e)
{
    struct ctx c = {name ? name : "config", "", e};
    memset(cfg, 0, sizeof *cfg);
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return err_set(e, "%s: not valid JSON: %s (line %d, column %d)", c.file, jerr.text,
                       jerr.line, jerr.column);
    int rc;
    if (!json_is_object(root)) {
        rc = err_set(e, "%s: expected a JSON object, got %s", c.file, type_name(root));
        goto out;
    }
    const char *mt;
    if ((rc = get_str(&c, root, "model_type", 0, &mt)) < 0) goto out;
    const json_t *model = json_object_get(root, "model");
    bool gpt2 = (mt && strcmp(mt, "gpt2") == 0) ||
                has_gpt2_arch(json_object_get(root, "architectures")) ||
                json_object_get(root, "n_embd");
    bool sedd = (json_is_object(model) && json_object_get(model, "hidden_size")) ||
                json_object_get(root, "graph") || json_object_get(root, "noise");
    if (gpt2) {
        cfg->kind = CONFIG_GPT2;
        rc = parse_gpt2(&c, root, &cfg->gpt2);
    } else if (sedd && !mt) {
        cfg->kind = CONFIG_SEDD;
        rc = parse_sedd(&c, root, &cfg->sedd);
    } else if (mt) {
        rc = err_set(e, "%s: model_type: '%.40s' is not supported (gpt2, or a SEDD config)",
                     c.file, mt);
    } else {
        rc = err_set(e, "%s: neither a GPT-2 config (model_type, architectures, n_embd) nor a "
                     "SEDD config (model.hidden_size, graph, noise)", c.file);
    }
out:
    if (rc < 0) cfg->kind = CONFIG_NONE;
    json_decref(root);
    return rc < 0 ? ERR_FAIL : 0;
}

/* Reads the file at path; messages name it `name`. */
static int read_parse(const char *path, const char *name, struct config *cfg, err_t *e)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return err_set_errno(e, "cannot open '%s'", name);
    struct stat sb;
    if (fstat(fileno(fp), &sb) < 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        return err_set(e, "%s: not a regular file", name);
    }
    if (sb.st_size > MAX_CONFIG_BYTES) {
        fclose(fp);
        return err_set(e, "%s: %lld bytes is too large for a config", name,
                       (long long)sb.st_size);
    }
    size_t cap = (size_t)sb.st_size + 1, n;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(fp);
        return err_set(e, "%s: out of memory", name);
    }
    n = fread(buf, 1, cap, fp);
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        free(buf);
        return err_set(e, "%s: read error", name);
    }
    int rc = config_parse(buf, n, name, cfg, e);
    free(buf);
    return rc;
}

int config_read_file(const char *path, struct config *cfg, err_t *e)
{
    memset(cfg, 0, sizeof *cfg);
    return read_parse(path, path, cfg, e);
}

int config_read_dir(const char *dir, struct config *cfg, err_t *e)
{
    memset(cfg, 0, sizeof *cfg);
    char path[4096];
    int k = snprintf(path, sizeof path, "%s/config.json", dir);
    if (k < 0 || (size_t)k >= sizeof path) return err_set(e, "%s: path too long", dir);
    if (read_parse(path, "config.json", cfg, e) < 0) return err_prefix(e, "%s", dir);
    return 0;
}

const char *config_kind_name(enum config_kind k)
{
    return k == CONFIG_GPT2 ? "gpt2" : k == CONFIG_SEDD ? "sedd" : "none";
}

const char *config_graph_name(enum config_graph g)
{
    return g == CONFIG_GRAPH_ABSORB ? "absorb" : "uniform";
}

const char *config_noise_name(enum config_noise n)
{
    return n == CONFIG_NOISE_LOGLINEAR ? "loglinear" : "geometric";
}

int64_t config_head_dim(const struct config *cfg)
{
    if (cfg->kind == CONFIG_GPT2) return cfg->gpt2.n_embd / cfg->gpt2.n_head;
    if (cfg->kind == CONFIG_SEDD) return cfg->sedd.hidden_size / cfg->sedd.n_heads;
    return 0;
}
