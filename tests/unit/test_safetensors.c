/* safetensors: the fixture files load with the documented layout; st_write round-trips every
 * dtype; a table of malformed files (built here by hand) each fail with a message naming the
 * file and the tensor; truncation at every byte offset fails; F16/BF16 known values. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../lib/safetensors.h"
#include "tap.h"

#define FIX "tests/fixtures"

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    *len = fread(buf, 1, (size_t)n, fp);
    fclose(fp);
    return buf;
}

/* A file image: u64 header length, the JSON text (or `hlen` when nonzero), data_len zero bytes. */
static unsigned char *image(const char *json, uint64_t hlen, size_t data_len, size_t *len)
{
    size_t jl = strlen(json);
    *len = 8 + jl + data_len;
    unsigned char *buf = calloc(1, *len);
    uint64_t h = hlen ? hlen : jl;
    memcpy(buf, &h, 8);
    memcpy(buf + 8, json, jl);
    return buf;
}

static void test_fixture(void)
{
    err_t e = {{0}};
    st_file_t *f = st_open(FIX "/gpt2/model.safetensors", &e);
    CHECK(f != NULL, "gpt2 model.safetensors opens (%s)", f ? "ok" : e.msg);
    if (!f) return;
    CHECK(st_count(f) == 30, "30 tensors (got %zu)", st_count(f));
    CHECK(st_header_len(f) == 2451, "header length 2451 (unpadded, as in the hub file)");
    CHECK(st_meta_count(f) == 1 && st_meta_find(f, "format") &&
              strcmp(st_meta_find(f, "format"), "pt") == 0,
          "__metadata__ {\"format\":\"pt\"} kept");
    CHECK(st_meta_find(f, "nope") == NULL, "absent metadata key is NULL");
    const st_tensor *t = st_find(f, "wte.weight");
    CHECK(t && t->dtype == ST_F32 && t->ndim == 2 && t->shape[0] == 1000 && t->shape[1] == 64 &&
              t->numel == 64000 && t->nbytes == 256000,
          "wte.weight F32 [1000, 64]");
    const st_tensor *m = st_find(f, "h.1.attn.bias");
    CHECK(m && m->ndim == 4 && m->shape[2] == 64 && m->shape[3] == 64,
          "causal mask buffer h.1.attn.bias [1,1,64,64]");
    if (m) {
        float *v = malloc(m->numel * sizeof *v);
        int ok = st_tensor_to_f32(m, v, &e) == 0;
        for (int i = 0; i < 64 && ok; i++)
            for (int j = 0; j < 64 && ok; j++) ok = v[i * 64 + j] == (j <= i ? 1.0f : 0.0f);
        CHECK(ok, "the mask is lower-triangular ones (data read through the mapping)");
        free(v);
    }
    CHECK(st_find(f, "lm_head.weight") == NULL && st_find(f, "") == NULL,
          "absent names are NULL");
    /* The view points at the bytes the header says (offset 449536 after the header). */
    size_t len;
    unsigned char *raw = slurp(FIX "/gpt2/model.safetensors", &len);
    CHECK(raw && t && memcmp(raw + 8 + 2451 + 449536, t->data, t->nbytes) == 0,
          "wte.weight data = file bytes at 8 + header + begin");
    /* The same bytes parsed from memory give the same table. */
    st_file_t *g = st_parse(raw, len, "mem", &e);
    CHECK(g && st_count(g) == 30 && st_find(g, "wte.weight") &&
              memcmp(st_find(g, "wte.weight")->data, t->data, t->nbytes) == 0,
          "st_parse of the same bytes agrees");
    CHECK(g && strcmp(st_name(g), "mem") == 0, "st_parse keeps the name");
    size_t ordered = 0;
    for (size_t i = 0; g && i < st_count(g); i++)
        ordered += st_find(g, st_get(g, i)->name) == st_get(g, i);
    CHECK(ordered == 30, "st_find finds every st_get entry");
    st_close(g);
    free(raw);
    st_close(f);

    f = st_open(FIX "/gpt2/model_variant.safetensors", &e);
    CHECK(f && st_count(f) == 29 && st_meta_count(f) == 0 && st_header_len(f) % 8 == 0 &&
              st_find(f, "transformer.wte.weight") && st_find(f, "lm_head.weight"),
          "variant: 29 tensors, prefixed names, lm_head, no metadata, padded header");
    st_close(f);

    f = st_open(FIX "/sedd/tiny_absorb_loglinear/model.safetensors", &e);
    t = f ? st_find(f, "vocab_embed.embedding") : NULL;
    CHECK(t && t->shape[0] == 1001 && t->shape[1] == 64, "sedd vocab_embed.embedding [1001, 64]");
    st_close(f);
}

static void test_roundtrip(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/rt.safetensors", dir);
    double f64[3] = {1.5, -2.25, 1e300};
    float f32[4] = {0.1f, -0.0f, INFINITY, 3.0f};
    uint16_t f16[2] = {0x3c00, 0xc000}, bf16[2] = {0x3f80, 0x4049};
    int64_t i64[2] = {-5, 9007199254740993LL};
    int32_t i32[2] = {-7, 2147483647};
    int16_t i16[1] = {-32768};
    int8_t i8[2] = {-128, 127};
    uint8_t u8[2] = {0, 255}, b[3] = {1, 0, 1};
    float scalar = 42.0f;
    st_tensor in[] = {
        {.name = "a.f64", .dtype = ST_F64, .ndim = 1, .shape = {3}, .data = f64},
        {.name = "b.f32", .dtype = ST_F32, .ndim = 2, .shape = {2, 2}, .data = f32},
        {.name = "c.f16", .dtype = ST_F16, .ndim = 1, .shape = {2}, .data = f16},
        {.name = "d.bf16", .dtype = ST_BF16, .ndim = 1, .shape = {2}, .data = bf16},
        {.name = "e.i64", .dtype = ST_I64, .ndim = 1, .shape = {2}, .data = i64},
        {.name = "f.i32", .dtype = ST_I32, .ndim = 1, .shape = {2}, .data = i32},
        {.name = "g.i16", .dtype = ST_I16, .ndim = 1, .shape = {1}, .data = i16},
        {.name = "h.i8", .dtype = ST_I8, .ndim = 1, .shape = {2}, .data = i8},
        {.name = "i.u8", .dtype = ST_U8, .ndim = 1, .shape = {2}, .data = u8},
        {.name = "j.bool", .dtype = ST_BOOL, .ndim = 2, .shape = {1, 3}, .data = b},
        {.name = "k.scalar", .dtype = ST_F32, .ndim = 0, .data = &scalar},
        {.name = "l.empty", .dtype = ST_F32, .ndim = 2, .shape = {0, 5}, .data = NULL},
        {.name = "z \"quoted\" \\ name", .dtype = ST_U8, .ndim = 1, .shape = {1}, .data = u8},
    };
    size_t n = sizeof in / sizeof in[0];
    st_meta meta[] = {{"format", "pt"}, {"note", "dlmkit test"}};
    err_t e = {{0}};
    int rc = st_write(path, in, n, meta, 2, &e);
    CHECK(rc == 0, "st_write of every dtype (%s)", rc ? e.msg : "ok");
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(access(tmp, F_OK) != 0, "no temporary file left behind");
    st_file_t *f = st_open(path, &e);
    CHECK(f != NULL, "written file reopens (%s)", f ? "ok" : e.msg);
    if (!f) return;
    CHECK(st_count(f) == n && (8 + st_header_len(f)) % 8 == 0,
          "%zu tensors, data section 8-aligned", n);
    int same = 1;
    for (size_t i = 0; i < n; i++) {
        const st_tensor *t = st_get(f, i);
        same &= strcmp(t->name, in[i].name) == 0 && t->dtype == in[i].dtype &&
                t->ndim == in[i].ndim &&
                memcmp(t->shape, in[i].shape, (size_t)t->ndim * sizeof t->shape[0]) == 0 &&
                (t->nbytes == 0 || memcmp(t->data, in[i].data, t->nbytes) == 0);
    }
    CHECK(same, "names, header order, dtypes, shapes and bytes round-trip");
    CHECK(st_find(f, "k.scalar")->numel == 1 && st_find(f, "k.scalar")->nbytes == 4,
          "0-d tensor has one element");
    CHECK(st_find(f, "l.empty")->numel == 0, "empty tensor has no elements");
    CHECK(st_meta_count(f) == 2 && strcmp(st_meta_find(f, "note"), "dlmkit test") == 0,
          "metadata round-trips");

    float fv[4];
    CHECK(st_tensor_to_f32(st_find(f, "a.f64"), fv, &e) == 0 && fv[0] == 1.5f &&
              fv[1] == -2.25f && isinf(fv[2]),
          "F64 -> F32 (1e300 overflows to inf)");
    CHECK(st_tensor_to_f32(st_find(f, "b.f32"), fv, &e) == 0 && fv[0] == 0.1f &&
              signbit(fv[1]) && isinf(fv[2]),
          "F32 copied bit-exactly");
    CHECK(st_tensor_to_f32(st_find(f, "c.f16"), fv, &e) == 0 && fv[0] == 1.0f && fv[1] == -2.0f,
          "F16 tensor -> F32");
    CHECK(st_tensor_to_f32(st_find(f, "d.bf16"), fv, &e) == 0 && fv[0] == 1.0f &&
              fv[1] == 3.140625f,
          "BF16 tensor -> F32");
    int64_t iv[3];
    CHECK(st_tensor_to_i64(st_find(f, "e.i64"), iv, &e) == 0 && iv[1] == 9007199254740993LL,
          "I64 exact beyond 2^53");
    CHECK(st_tensor_to_i64(st_find(f, "f.i32"), iv, &e) == 0 && iv[0] == -7 &&
              iv[1] == 2147483647,
          "I32 sign-extended");
    CHECK(st_tensor_to_i64(st_find(f, "g.i16"), iv, &e) == 0 && iv[0] == -32768, "I16");
    CHECK(st_tensor_to_i64(st_find(f, "h.i8"), iv, &e) == 0 && iv[0] == -128 && iv[1] == 127,
          "I8");
    CHECK(st_tensor_to_i64(st_find(f, "i.u8"), iv, &e) == 0 && iv[1] == 255, "U8");
    CHECK(st_tensor_to_i64(st_find(f, "j.bool"), iv, &e) == 0 && iv[0] == 1 && iv[1] == 0,
          "BOOL as 0/1");
    CHECK(st_tensor_to_f32(st_find(f, "e.i64"), fv, &e) < 0 && strstr(e.msg, "e.i64") &&
              strstr(e.msg, "I64"),
          "integer -> f32 is an error naming tensor and dtype: %s", e.msg);
    CHECK(st_tensor_to_i64(st_find(f, "b.f32"), iv, &e) < 0 && strstr(e.msg, "b.f32"),
          "float -> i64 is an error: %s", e.msg);
    st_close(f);

    /* The writer refuses what the reader would refuse. */
    st_tensor dup[] = {in[1], in[1]};
    CHECK(st_write(path, dup, 2, NULL, 0, &e) < 0 && strstr(e.msg, "duplicate"),
          "st_write rejects duplicate names: %s", e.msg);
    st_tensor bad = in[1];
    bad.name = "__metadata__";
    CHECK(st_write(path, &bad, 1, NULL, 0, &e) < 0, "st_write rejects the name __metadata__");
    bad = in[1];
    bad.shape[0] = -1;
    CHECK(st_write(path, &bad, 1, NULL, 0, &e) < 0, "st_write rejects a negative dimension");
    st_file_t *again = st_open(path, &e);
    CHECK(again && st_count(again) == n, "a failed st_write leaves the old file in place");
    st_close(again);

    /* Truncation at every byte offset is an error, never a crash. */
    size_t len;
    unsigned char *raw = slurp(path, &len);
    int all = 1;
    for (size_t cut = 0; cut < len; cut++) {
        st_file_t *g = st_parse(raw, cut, "cut", &e);
        if (g) all = 0, st_close(g);
    }
    CHECK(all, "each of the %zu truncations of the file is rejected", len);
    free(raw);
    unlink(path);
}

static const struct {
    const char *what, *json;
    uint64_t hlen;    /* 0: the JSON's length */
    size_t data;      /* bytes of data after the header */
    const char *expect[2];  /* substrings of the message */
} bad[] = {
    {"header length beyond the file", "{}", 4096, 0, {"header length 4096", "runs past the end"}},
    {"header length 0", "", 0, 16, {"too short", "bad.st"}},
    {"non-JSON header", "{\"a\": nope}", 0, 0, {"not valid JSON", "bad.st"}},
    {"header not an object", "[1, 2]", 0, 0, {"not a JSON object", "bad.st"}},
    {"lying offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,8]}}", 0, 16,
     {"'w'", "hold 8 bytes but shape x F32 needs 16"}},
    {"shape x dtype mismatch",
     "{\"w\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 0, 24,
     {"'w'", "needs 12"}},
    {"unknown dtype", "{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 0, 1,
     {"'w'", "unknown dtype 'F8_E4M3'"}},
    {"overlapping tensors",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 0, 24,
     {"'a' [0, 16] and 'b' [8, 24] overlap", "bad.st"}},
    {"duplicate names",
     "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
     "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 0, 2,
     {"twice", "bad.st"}},
    {"offsets beyond the data section",
     "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}", 0, 20,
     {"'w'", "run past the end of the data section (20 bytes"}},
    {"end before begin", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 0, 8,
     {"'w'", "end before they begin"}},
    {"huge shape overflow",
     "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,0]}}", 0,
     0, {"'w'", "overflows"}},
    {"shape product overflows by the dtype size",
     "{\"w\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,0]}}", 0, 0,
     {"'w'", "overflows"}},
    {"negative dimension", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0,
     0, {"'w'", "shape[0] is not a non-negative integer"}},
    {"fractional dimension", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}",
     0, 4, {"'w'", "shape[0]"}},
    {"rank 9", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
     0, 1, {"'w'", "rank 9"}},
    {"missing dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 0, 1,
     {"'w'", "no \"dtype\""}},
    {"missing shape", "{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 0, 1,
     {"'w'", "no \"shape\""}},
    {"missing offsets", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1]}}", 0, 1,
     {"'w'", "no \"data_offsets\""}},
    {"three offsets", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 0, 2,
     {"'w'", "[begin, end]"}},
    {"negative offset", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 0, 2,
     {"'w'", "non-negative"}},
    {"dtype not a string", "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4,
     {"'w'", "not a string"}},
    {"entry not an object", "{\"w\":[1]}", 0, 0, {"'w'", "not a JSON object"}},
    {"empty tensor name", "{\"\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 0, 1,
     {"empty name", "bad.st"}},
    {"metadata not a string map", "{\"__metadata__\":{\"format\":1}}", 0, 0,
     {"__metadata__", "'format' is not a string"}},
    {"metadata not an object", "{\"__metadata__\":\"pt\"}", 0, 0,
     {"__metadata__", "not a JSON object"}},
    {"NUL in a name", "{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 0,
     1, {"not valid JSON", "bad.st"}},
};

static void test_bad(void)
{
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len;
        unsigned char *buf = image(bad[i].json, bad[i].hlen, bad[i].data, &len);
        err_t e = {{0}};
        st_file_t *f = st_parse(buf, len, "bad.st", &e);
        int named = strncmp(e.msg, "bad.st: ", 8) == 0;
        for (int k = 0; k < 2; k++)
            if (!strstr(e.msg, bad[i].expect[k])) named = 0;
        CHECK(f == NULL && named, "%s: %s", bad[i].what, e.msg);
        st_close(f);
        free(buf);
    }
    err_t e = {{0}};
    CHECK(st_parse("\x02\0\0\0", 4, "tiny", &e) == NULL && strstr(e.msg, "too short"),
          "a 4-byte file: %s", e.msg);
    CHECK(st_parse(NULL, 0, "empty", &e) == NULL, "an empty buffer");
    CHECK(st_open("/nonexistent/x.safetensors", &e) == NULL && strstr(e.msg, "cannot open"),
          "missing file: %s", e.msg);
    CHECK(st_open("tests", &e) == NULL && strstr(e.msg, "not a regular file"),
          "a directory: %s", e.msg);

    /* Gaps between tensors and a padded header are legal; empty tensors overlap nothing. */
    size_t len;
    unsigned char *buf = image("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
                               "\"b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[5,5]}}   ",
                               0, 8, &len);
    st_file_t *f = st_parse(buf, len, "gap", &e);
    CHECK(f && st_count(f) == 2, "gaps, trailing spaces and an empty tensor inside another load");
    st_close(f);
    free(buf);
}

static void test_convert(void)
{
    static const struct {
        uint16_t h;
        float f;
    } f16[] = {
        {0x0000, 0.0f},        {0x3c00, 1.0f},          {0xc000, -2.0f},
        {0x3555, 0x1.554p-2f}, {0x7bff, 65504.0f},      {0x0400, 0x1p-14f},
        {0x0001, 0x1p-24f},    {0x03ff, 0x1.ff8p-15f},  {0x8001, -0x1p-24f},
        {0x3bff, 0x1.ffcp-1f}, {0xfbff, -65504.0f},     {0x4248, 3.140625f},
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof f16 / sizeof f16[0]; i++)
        if (st_f16_to_f32(f16[i].h) != f16[i].f) {
            ok = 0;
            NOTE("f16 %04x -> %a, expected %a", f16[i].h, st_f16_to_f32(f16[i].h), f16[i].f);
        }
    CHECK(ok, "F16 known values (normals, subnormals, extremes)");
    CHECK(isinf(st_f16_to_f32(0x7c00)) && st_f16_to_f32(0x7c00) > 0 &&
              isinf(st_f16_to_f32(0xfc00)) && st_f16_to_f32(0xfc00) < 0,
          "F16 +-inf");
    CHECK(isnan(st_f16_to_f32(0x7e00)) && isnan(st_f16_to_f32(0xfc01)), "F16 nan");
    CHECK(signbit(st_f16_to_f32(0x8000)) && st_f16_to_f32(0x8000) == 0.0f, "F16 -0");
    /* Every finite positive pattern maps strictly increasingly, and the sign bit negates. */
    int mono = 1, sym = 1;
    for (uint32_t h = 0; h < 0x7c00; h++) {
        if (h && !(st_f16_to_f32((uint16_t)h) > st_f16_to_f32((uint16_t)(h - 1)))) mono = 0;
        if (st_f16_to_f32((uint16_t)(h | 0x8000)) != -st_f16_to_f32((uint16_t)h)) sym = 0;
    }
    CHECK(mono && sym, "F16 finite patterns strictly increasing and sign-symmetric");

    static const struct {
        uint16_t b;
        float f;
    } bf[] = {
        {0x0000, 0.0f},      {0x3f80, 1.0f},        {0xc000, -2.0f},         {0x4049, 3.140625f},
        {0x7f7f, 0x1.fep127f}, {0x0080, 0x1p-126f}, {0x0001, 0x1p-133f},     {0xbf00, -0.5f},
    };
    ok = 1;
    for (size_t i = 0; i < sizeof bf / sizeof bf[0]; i++) ok &= st_bf16_to_f32(bf[i].b) == bf[i].f;
    CHECK(ok, "BF16 known values (incl. max finite and a subnormal)");
    CHECK(isinf(st_bf16_to_f32(0x7f80)) && isnan(st_bf16_to_f32(0x7fc0)) &&
              signbit(st_bf16_to_f32(0x8000)),
          "BF16 inf, nan, -0");

    CHECK(strcmp(st_dtype_name(ST_BF16), "BF16") == 0 && st_dtype_size(ST_BF16) == 2 &&
              st_dtype_size(ST_BOOL) == 1 && st_dtype_size(ST_F64) == 8 &&
              st_dtype_parse("I16") == ST_I16 && st_dtype_parse("f32") < 0 &&
              strcmp(st_dtype_name((enum st_dtype)99), "?") == 0,
          "dtype names and sizes");
}

int main(void)
{
    char dir[] = "/tmp/test_safetensors.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_fixture();
    test_roundtrip(dir);
    test_bad();
    test_convert();
    rmdir(dir);
    return tap_done();
}
