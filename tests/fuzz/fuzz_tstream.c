/* libFuzzer target for lib/tstream: reads a stream from memory until EOF or error; a stream that
 * reads cleanly is written back, re-read in lockstep with the input (same header facts, records,
 * fields byte for byte) and written again (the second output must equal the first).
 * Built by `make fuzz`. With -DTSTREAM_GEN_CORPUS it is instead a program that writes the seed
 * corpus: `clang -DTSTREAM_GEN_CORPUS -D_GNU_SOURCE -Ilib -Ibuild tests/fuzz/fuzz_tstream.c
 * lib/tstream.c lib/err.c lib/log.c -lmsgpackc -o gen && ./gen tests/fuzz/corpus/fuzz_tstream`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tstream.h"

#define REQUIRE(x)                                                                                 \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "fuzz_tstream: %s:%d: check failed: %s\n", __FILE__, __LINE__, #x);    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct out {
    char *p;
    size_t n;
    FILE *fp;
} out_t;

/* Touches the typed getters on a few likely keys (results only have to be self-consistent). */
static void poke_fields(const ts_record *r)
{
    static const char *const keys[] = {"text", "logp", "score", "a", "n"};
    err_t e;
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        double f, buf[4];
        int64_t i;
        const char *s;
        size_t len;
        const uint8_t *raw;
        int present = ts_record_get_raw(r, keys[k], &raw, &len) == 0;
        REQUIRE(!present || len > 0);
        int rf = ts_record_get_f64(r, keys[k], &f, &e);
        int ri = ts_record_get_i64(r, keys[k], &i, &e);
        int rs = ts_record_get_str(r, keys[k], &s, &len, &e);
        long long ra = ts_record_get_f64_array(r, keys[k], buf, 4, &e);
        REQUIRE((rf == ERR_EOF) == !present && (ri == ERR_EOF) == !present);
        REQUIRE((rs == ERR_EOF) == !present && (ra == ERR_EOF) == !present);
        REQUIRE(!(ri == 0 && rf != 0));
    }
}

/* Writes every record of rd to a fresh output; @return the final ts_read status. */
static int copy_stream(ts_reader_t *rd, out_t *o, FILE *json)
{
    err_t e;
    ts_header h = {0};
    REQUIRE(ts_header_copy(&h, ts_reader_header(rd), &e) == 0);
    o->fp = open_memstream(&o->p, &o->n);
    REQUIRE(o->fp);
    ts_writer_t *w = ts_writer_open(o->fp, &h, &e);
    REQUIRE(w);
    ts_record r = {0};
    int rc;
    while ((rc = ts_read(rd, &r, &e)) >= 0) {
        poke_fields(&r);
        REQUIRE(ts_write(w, &r, &e) == 0);
        REQUIRE(ts_record_write_json(json, &r, &e) == 0);
    }
    REQUIRE(rc == ERR_EOF || (rc == ERR_FAIL && e.msg[0]));
    REQUIRE(ts_writer_close(w, &e) == 0);
    fclose(o->fp);
    ts_record_free(&r);
    ts_header_free(&h);
    return rc;
}

static void same_header(const ts_header *a, const ts_header *b)
{
    REQUIRE(!strcmp(a->tokenizer, b->tokenizer) && a->vocab_size == b->vocab_size &&
            a->eot == b->eot);
    REQUIRE(a->n_provenance == b->n_provenance && a->prov_len == b->prov_len &&
            (!a->prov_len || !memcmp(a->prov, b->prov, a->prov_len)));
    REQUIRE(a->n_extra == b->n_extra && a->extra_len == b->extra_len &&
            (!a->extra_len || !memcmp(a->extra, b->extra, a->extra_len)));
}

/* The FILE reader (chunk-fed) must agree with the memory reader: same status, records, message. */
static void same_as_file(const uint8_t *data, size_t size)
{
    if (size == 0) return;
    FILE *fp = fmemopen((void *)data, size, "rb");
    REQUIRE(fp);
    err_t em, ef;
    ts_record x = {0}, y = {0};
    ts_reader_t *m = ts_reader_open_mem(data, size, "s", &em);
    ts_reader_t *f = ts_reader_open(fp, "s", &ef);
    REQUIRE(!m == !f);
    int rm = ERR_FAIL, rf = ERR_FAIL;
    while (m) {
        rm = ts_read(m, &x, &em);
        rf = ts_read(f, &y, &ef);
        REQUIRE(rm == rf);
        if (rm < 0) break;
        REQUIRE(x.id == y.id && x.n_tokens == y.n_tokens && x.fields_len == y.fields_len);
    }
    REQUIRE(rm == ERR_EOF || !strcmp(em.msg, ef.msg));
    ts_reader_free(m);
    ts_reader_free(f);
    ts_record_free(&x);
    ts_record_free(&y);
    fclose(fp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *json;
    if (!json) json = fopen("/dev/null", "w");
    err_t e;
    same_as_file(data, size);
    ts_reader_t *rd = ts_reader_open_mem(data, size, "fuzz", &e);
    if (!rd) {
        REQUIRE(e.msg[0]);
        return 0;
    }
    out_t o1 = {0}, o2 = {0};
    if (copy_stream(rd, &o1, json) == ERR_EOF) {
        ts_reader_t *a = ts_reader_open_mem(data, size, "input", &e);
        ts_reader_t *b = ts_reader_open_mem(o1.p, o1.n, "output", &e);
        REQUIRE(a && b);
        same_header(ts_reader_header(a), ts_reader_header(b));
        ts_record x = {0}, y = {0};
        int ra, rb;
        do {
            ra = ts_read(a, &x, &e);
            rb = ts_read(b, &y, &e);
            REQUIRE(ra == rb);
            if (ra < 0) break;
            REQUIRE(x.id == y.id && x.n_tokens == y.n_tokens && x.n_fields == y.n_fields);
            REQUIRE(!x.n_tokens || !memcmp(x.tokens, y.tokens, x.n_tokens * sizeof *x.tokens));
            REQUIRE(x.fields_len == y.fields_len &&
                    (!x.fields_len || !memcmp(x.fields, y.fields, x.fields_len)));
        } while (1);
        REQUIRE(ra == ERR_EOF);
        ts_reader_free(a);
        ts_reader_free(b);
        ts_record_free(&x);
        ts_record_free(&y);

        /* Written output is a fixpoint: writing it again gives the same bytes. */
        ts_reader_t *c = ts_reader_open_mem(o1.p, o1.n, "output", &e);
        REQUIRE(c);
        REQUIRE(copy_stream(c, &o2, json) == ERR_EOF);
        REQUIRE(o1.n == o2.n && !memcmp(o1.p, o2.p, o1.n));
        ts_reader_free(c);
    }
    ts_reader_free(rd);
    free(o1.p);
    free(o2.p);
    return 0;
}

#ifdef TSTREAM_GEN_CORPUS
/* Seed corpus: small valid streams written by the writer. */
static void save(const char *dir, const char *name, const char *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    REQUIRE(fp && fwrite(p, 1, n, fp) == n && fclose(fp) == 0);
    printf("%s: %zu bytes\n", path, n);
}

/* A stream of n records; variant picks which fields the records carry. */
static void gen(const char *dir, const char *name, size_t n, int variant)
{
    err_t e;
    char *p;
    size_t len;
    FILE *fp = open_memstream(&p, &len);
    ts_header h = {0};
    REQUIRE(ts_header_init(&h, variant == 2 ? "sedd" : "gpt2", variant == 2 ? 50258 : 50257,
                           variant == 2 ? -1 : 50256, &e) == 0);
    char *argv[] = {"sedd-sample", "--steps", "8", "-n", "3"};
    if (variant)
        REQUIRE(ts_header_add_provenance(&h, "tokenize", "0.1.0", "dev", 1, argv, 0, "cpu", &e) ==
                0);
    if (variant >= 2)
        REQUIRE(ts_header_add_provenance(&h, "sedd-sample", "0.1.0", "dev", 5, argv, 7, "cuda",
                                         &e) == 0);
    ts_writer_t *w = ts_writer_open(fp, &h, &e);
    REQUIRE(w);
    ts_record r = {0};
    for (size_t k = 0; k < n; k++) {
        uint32_t *t = ts_record_resize(&r, 3 + 5 * k, &e);
        for (size_t j = 0; j < r.n_tokens; j++) t[j] = (uint32_t)((j * 7919 + k * 131) % 50257);
        r.id = k;
        if (variant >= 1)
            REQUIRE(ts_record_set_str(&r, "text", "Hello, w\xc3\xb6rld\n", 14, &e) == 0);
        if (variant >= 2) {
            float lp[3] = {-0.5f, -2.25f, -11.0f};
            REQUIRE(ts_record_set_f32_array(&r, "logp", lp, 3, &e) == 0);
            REQUIRE(ts_record_set_f64(&r, "score", -13.75, &e) == 0);
            REQUIRE(ts_record_set_i64(&r, "n", -2, &e) == 0);
            REQUIRE(ts_record_set_bool(&r, "a", k % 2, &e) == 0);
            REQUIRE(ts_record_set_raw(&r, "meta", "\x82\xa5steps\x08\xa3\x62in\xc4\x02\x00\xff", 16,
                                      &e) == 0);
        }
        REQUIRE(ts_write(w, &r, &e) == 0);
    }
    REQUIRE(ts_writer_close(w, &e) == 0);
    fclose(fp);
    save(dir, name, p, len);
    free(p);
    ts_record_free(&r);
    ts_header_free(&h);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    gen(dir, "header-only", 0, 0);
    gen(dir, "plain-3", 3, 0);
    gen(dir, "text-2", 2, 1);
    gen(dir, "fields-3", 3, 2);
    /* cat of two streams */
    char path[512];
    snprintf(path, sizeof path, "%s/plain-3", dir);
    FILE *a = fopen(path, "rb");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, a);
    fclose(a);
    snprintf(path, sizeof path, "%s/text-2", dir);
    a = fopen(path, "rb");
    n += fread(buf + n, 1, sizeof buf - n, a);
    fclose(a);
    save(dir, "cat-plain-text", buf, n);
    return 0;
}
#endif
