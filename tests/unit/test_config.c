/* config: the fixture configs give their documented dimensions; GPT-2 defaults follow
 * Hugging Face GPT2Config; kind detection; a table of invalid configs each naming the key. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../../lib/config.h"
#include "tap.h"

#define FIX "tests/fixtures"

static int parse(const char *json, struct config *cfg, err_t *e)
{
    return config_parse(json, strlen(json), "c.json", cfg, e);
}

static void test_fixtures(void)
{
    struct config c;
    err_t e = {{0}};
    int rc = config_read_dir(FIX "/gpt2", &c, &e);
    CHECK(rc == 0 && c.kind == CONFIG_GPT2, "gpt2 fixture config is GPT-2 (%s)",
          rc ? e.msg : "ok");
    const struct config_gpt2 *g = &c.gpt2;
    CHECK(g->vocab_size == 1000 && g->n_positions == 64 && g->n_embd == 64 && g->n_head == 4 &&
              g->n_layer == 2 && g->n_inner == 256 && config_head_dim(&c) == 16,
          "gpt2 dims V 1000, P 64, C 64, H 4, L 2, head_dim 16");
    CHECK(g->layer_norm_epsilon == 1e-5 && g->act == CONFIG_ACT_GELU_TANH &&
              strcmp(g->activation_function, "gelu_new") == 0 && g->bos_token_id == 999 &&
              g->eos_token_id == 999,
          "gpt2 eps 1e-5, gelu_new, bos/eos 999");

    rc = config_read_dir(FIX "/sedd/tiny_absorb_loglinear", &c, &e);
    const struct config_sedd *s = &c.sedd;
    CHECK(rc == 0 && c.kind == CONFIG_SEDD, "absorb fixture config is SEDD (%s)",
          rc ? e.msg : "ok");
    CHECK(s->tokens == 1000 && s->vocab == 1001 && s->hidden_size == 64 && s->cond_dim == 32 &&
              s->n_blocks == 2 && s->n_heads == 4 && s->length == 32 && s->scale_by_sigma &&
              s->graph == CONFIG_GRAPH_ABSORB && s->noise == CONFIG_NOISE_LOGLINEAR,
          "absorb/loglinear: N 1000, V 1001, H 64, cond 32, 2 blocks, 4 heads, scale_by_sigma");
    rc = config_read_dir(FIX "/sedd/tiny_uniform_geometric", &c, &e);
    CHECK(rc == 0 && c.kind == CONFIG_SEDD && s->vocab == 1000 && !s->scale_by_sigma &&
              s->graph == CONFIG_GRAPH_UNIFORM && s->noise == CONFIG_NOISE_GEOMETRIC &&
              s->sigma_min == 1e-4 && s->sigma_max == 20.0,
          "uniform/geometric: V 1000, sigma in [1e-4, 20] (sigma_max stored as an integer)");
    CHECK(strcmp(config_graph_name(s->graph), "uniform") == 0 &&
              strcmp(config_noise_name(s->noise), "geometric") == 0 &&
              strcmp(config_kind_name(c.kind), "sedd") == 0,
          "enum names");

    rc = config_read_dir("/nonexistent", &c, &e);
    CHECK(rc < 0 && strstr(e.msg, "/nonexistent: cannot open 'config.json'") &&
              c.kind == CONFIG_NONE,
          "missing config.json: %s", e.msg);
    rc = config_read_file(FIX "/gpt2/config.json", &c, &e);
    CHECK(rc == 0 && c.kind == CONFIG_GPT2, "config_read_file");
}

static void test_defaults(void)
{
    struct config c;
    err_t e = {{0}};
    int rc = parse("{\"model_type\": \"gpt2\"}", &c, &e);
    const struct config_gpt2 *g = &c.gpt2;
    CHECK(rc == 0 && c.kind == CONFIG_GPT2 && g->vocab_size == 50257 && g->n_positions == 1024 &&
              g->n_embd == 768 && g->n_head == 12 && g->n_layer == 12 && g->n_inner == 3072 &&
              g->layer_norm_epsilon == 1e-5 && g->act == CONFIG_ACT_GELU_TANH &&
              g->bos_token_id == 50256,
          "absent keys take the GPT2Config defaults (gpt2 small)");
    /* An early gpt2-medium config: no model_type, no activation_function. */
    rc = parse("{\"n_embd\": 1024, \"n_head\": 16, \"n_layer\": 24, \"n_inner\": null, "
               "\"scale_attn_weights\": true, \"reorder_and_upcast_attn\": true}", &c, &e);
    CHECK(rc == 0 && c.kind == CONFIG_GPT2 && g->n_embd == 1024 && g->n_inner == 4096 &&
              config_head_dim(&c) == 64,
          "n_embd alone marks GPT-2; n_inner null = 4*n_embd");
    rc = parse("{\"architectures\": [\"Foo\", \"GPT2Model\"], \"activation_function\": \"gelu\", "
               "\"eos_token_id\": null}", &c, &e);
    CHECK(rc == 0 && c.kind == CONFIG_GPT2 && g->act == CONFIG_ACT_GELU_ERF &&
              g->eos_token_id == -1,
          "architectures GPT2Model marks GPT-2; erf gelu; null eos");
    rc = parse("{\"tokens\": 50257, \"graph\": {\"type\": \"absorb\"}, \"noise\": {\"type\": "
               "\"loglinear\"}, \"model\": {\"hidden_size\": 768, \"cond_dim\": 128, \"n_blocks\": "
               "12, \"n_heads\": 12, \"scale_by_sigma\": true}}", &c, &e);
    CHECK(rc == 0 && c.kind == CONFIG_SEDD && c.sedd.vocab == 50258 && c.sedd.length == 1024 &&
              c.sedd.sigma_min == 1e-4 && c.sedd.sigma_max == 20.0,
          "sedd-small: V = N+1, length and loglinear sigmas default (%s)", rc ? e.msg : "ok");
}

#define SEDD_OK_MODEL "\"hidden_size\": 64, \"cond_dim\": 32, \"n_blocks\": 2, \"n_heads\": 4"
#define SEDD(graph, noise, model)                                                          \
    "{\"tokens\": 100, \"graph\": " graph ", \"noise\": " noise ", \"model\": " model "}"
#define G_ABS "{\"type\": \"absorb\"}"
#define N_LL "{\"type\": \"loglinear\"}"
#define M_OK "{" SEDD_OK_MODEL ", \"scale_by_sigma\": true}"

static const struct {
    const char *json, *expect;
} bad[] = {
    {"{\"n_embd\": \"64\"}", "c.json: n_embd: expected an integer, got a string"},
    {"{\"n_embd\": 64.0}", "n_embd: expected an integer, got a number"},
    {"{\"n_embd\": 0}", "n_embd: 0 is out of range"},
    {"{\"n_embd\": 65, \"n_head\": 4}", "n_head: n_embd 65 is not a multiple of n_head 4"},
    {"{\"n_embd\": 64, \"n_head\": -4}", "n_head: -4 is out of range"},
    {"{\"n_embd\": 64, \"n_layer\": 99999999}", "n_layer: 99999999 is out of range"},
    {"{\"n_embd\": 64, \"n_head\": 4, \"vocab_size\": 1e9}", "vocab_size: expected an integer"},
    {"{\"n_embd\": 64, \"n_head\": 4, \"n_positions\": 99999999999}", "n_positions:"},
    {"{\"model_type\": \"gpt2\", \"layer_norm_epsilon\": -1}", "layer_norm_epsilon: -1"},
    {"{\"model_type\": \"gpt2\", \"layer_norm_epsilon\": \"1e-5\"}",
     "layer_norm_epsilon: expected a number"},
    {"{\"model_type\": \"gpt2\", \"activation_function\": \"mish\"}",
     "activation_function: 'mish' is not supported"},
    {"{\"model_type\": \"gpt2\", \"activation_function\": 1}",
     "activation_function: expected a string"},
    {"{\"model_type\": \"gpt2\", \"n_inner\": 100}", "n_inner: 100 is not supported"},
    {"{\"model_type\": \"gpt2\", \"scale_attn_weights\": false}", "scale_attn_weights: false"},
    {"{\"model_type\": \"gpt2\", \"scale_attn_by_inverse_layer_idx\": true}",
     "scale_attn_by_inverse_layer_idx: true"},
    {"{\"model_type\": \"gpt2\", \"add_cross_attention\": 1}",
     "add_cross_attention: expected true"},
    {"{\"model_type\": \"gpt2\", \"bos_token_id\": -3}", "bos_token_id: -3"},
    {"{\"model_type\": \"llama\"}", "model_type: 'llama' is not supported"},
    {"{\"model_type\": 2}", "model_type: expected a string"},
    {"{}", "neither a GPT-2 config"},
    {"[1]", "expected a JSON object, got an array"},
    {"{\"n_embd\": 64", "not valid JSON"},
    {"{\"n_embd\": 64, \"n_embd\": 32}", "duplicate object key"},
    {"", "not valid JSON"},
    {"{\"graph\": {\"type\": \"absorb\"}}", "tokens: missing"},
    {SEDD(G_ABS, N_LL, "3"), "model: expected an object, got an integer"},
    {"{\"tokens\": 100, \"noise\": {}, \"model\": {}}", "graph: missing"},
    {SEDD("{\"type\": \"masked\"}", N_LL, M_OK), "graph.type: 'masked' is not absorb or uniform"},
    {SEDD("{}", N_LL, M_OK), "graph.type: missing"},
    {SEDD(G_ABS, "{\"type\": \"cosine\"}", M_OK), "noise.type: 'cosine'"},
    {SEDD(G_ABS, "{\"type\": \"geometric\", \"sigma_max\": 20}", M_OK), "noise.sigma_min: missing"},
    {SEDD(G_ABS, "{\"type\": \"geometric\", \"sigma_min\": 1, \"sigma_max\": 0.5}", M_OK),
     "noise.sigma_max: 0.5 is not above sigma_min 1"},
    {SEDD(G_ABS, "{\"type\": \"geometric\", \"sigma_min\": 0, \"sigma_max\": 1}", M_OK),
     "noise.sigma_min: 0 is out of range"},
    {SEDD(G_ABS, N_LL, "{\"hidden_size\": \"64\"}"), "model.hidden_size: expected an integer"},
    {SEDD(G_ABS, N_LL, "{\"cond_dim\": 32}"), "model.hidden_size: missing"},
    {SEDD(G_ABS, N_LL, "{\"hidden_size\": 64, \"cond_dim\": 32, \"n_blocks\": 2, \"n_heads\": 5, "
                       "\"scale_by_sigma\": true}"),
     "model.n_heads: hidden_size 64 / n_heads 5"},
    {SEDD(G_ABS, N_LL, "{\"hidden_size\": 60, \"cond_dim\": 32, \"n_blocks\": 2, \"n_heads\": 4, "
                       "\"scale_by_sigma\": true}"),
     "not an even head dimension"},
    {SEDD(G_ABS, N_LL, "{" SEDD_OK_MODEL "}"), "model.scale_by_sigma: missing"},
    {SEDD(G_ABS, N_LL, "{" SEDD_OK_MODEL ", \"scale_by_sigma\": \"True\"}"),
     "model.scale_by_sigma: expected true or false"},
    {SEDD("{\"type\": \"uniform\"}", N_LL, M_OK),
     "model.scale_by_sigma: true requires graph.type absorb"},
    {SEDD(G_ABS, N_LL, "{" SEDD_OK_MODEL ", \"scale_by_sigma\": true, \"length\": 0}"),
     "model.length: 0 is out of range"},
};

static void test_bad(void)
{
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct config c;
        err_t e = {{0}};
        int rc = parse(bad[i].json, &c, &e);
        CHECK(rc < 0 && strstr(e.msg, bad[i].expect) && strncmp(e.msg, "c.json: ", 8) == 0 &&
                  c.kind == CONFIG_NONE,
              "rejected: %s -> %s", bad[i].json, e.msg);
    }
    struct config c;
    err_t e = {{0}};
    CHECK(parse(SEDD(G_ABS, N_LL, M_OK), &c, &e) == 0 && c.kind == CONFIG_SEDD,
          "the table's base SEDD config itself is valid (%s)", e.msg);
}

int main(void)
{
    test_fixtures();
    test_defaults();
    test_bad();
    return tap_done();
}
