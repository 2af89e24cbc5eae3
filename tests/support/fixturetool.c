/* fixturetool: test support for the bats tests — builds inputs from the fixtures and checks
 * outputs against them, so the tests need no Python. Not installed; built by `make unit-tests`.
 *
 *   fixturetool rows-to-stream FILE IDS LENGTHS VOCAB [FIRST_ID] > out.msgpack
 *   fixturetool show FILE TENSOR
 *   fixturetool compare-f32 A TENSOR_A B TENSOR_B ATOL
 *   fixturetool widen-vocab SRC_DIR DST_DIR NEW_VOCAB
 *
 * Exit status: 0 success, 1 failure (a check that does not hold, bad data), 2 usage. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "config.h"
#include "err.h"
#include "safetensors.h"
#include "tstream.h"

static const char *prog = "fixturetool";

static const char usage_text[] =
    "Usage: fixturetool COMMAND ARGS...\n"
    "Test support for the bats tests: fixture inputs and output checks without Python.\n"
    "\n"
    "  rows-to-stream FILE IDS LENGTHS VOCAB [FIRST_ID]\n"
    "      Writes to stdout a token stream (tokenizer gpt2, vocab_size VOCAB, eot VOCAB-1) with one\n"
    "      record per row of the 2-D integer tensor IDS of FILE, cut to the length given by the\n"
    "      1-D integer tensor LENGTHS; record ids count from FIRST_ID (default 0).\n"
    "  show FILE TENSOR\n"
    "      Prints the tensor's dtype and shape (\"F32 [4,64]\") on one line, its values on the next.\n"
    "  compare-f32 A TENSOR_A B TENSOR_B ATOL\n"
    "      Prints \"max abs diff D over N values\"; exit 0 when the shapes agree and D <= ATOL.\n"
    "  widen-vocab SRC_DIR DST_DIR NEW_VOCAB\n"
    "      Copies a GPT-2 or SEDD model directory (config.json, model.safetensors) with the\n"
    "      vocabulary widened to NEW_VOCAB: embedding/output rows i -> i % old (an absorbing\n"
    "      SEDD model's mask row stays last); GPT-2's bos/eos become NEW_VOCAB-1.\n"
    "\n"
    "Exit status: 0 success, 1 failed check or bad data, 2 usage error.\n"
    "Example: fixturetool compare-f32 want.safetensors f got.safetensors features 5e-5\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage_text);
    return 2;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* Parses a whole decimal integer in [lo, hi]. */
static int parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Opens `path` and finds tensor `name` in it; prints the error and returns NULL on failure. */
static const st_tensor *find_tensor(st_file_t **f, const char *path, const char *name)
{
    err_t e;
    *f = st_open(path, &e);
    if (!*f) {
        fail("%s", e.msg);
        return NULL;
    }
    const st_tensor *t = st_find(*f, name);
    if (!t)
        fail("%s: no tensor '%s'", path, name);
    return t;
}

static void print_shape(FILE *fp, const st_tensor *t)
{
    fputc('[', fp);
    for (int d = 0; d < t->ndim; d++)
        fprintf(fp, "%s%" PRId64, d ? "," : "", t->shape[d]);
    fputc(']', fp);
}

static int same_shape(const st_tensor *a, const st_tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return 0;
    return 1;
}

/* ---- rows-to-stream ------------------------------------------------------------------------ */

static int cmd_rows_to_stream(int argc, char **argv)
{
    if (argc != 5 && argc != 6)
        return usage_error("rows-to-stream takes FILE IDS LENGTHS VOCAB [FIRST_ID]");
    int64_t vocab, first = 0;
    if (parse_int(argv[4], 1, (int64_t)1 << 32, &vocab))
        return usage_error("VOCAB must be an integer in 1..2^32, not '%s'", argv[4]);
    if (argc == 6 && parse_int(argv[5], 0, INT64_MAX, &first))
        return usage_error("FIRST_ID must be a non-negative integer, not '%s'", argv[5]);

    int rc = 1;
    err_t e;
    st_file_t *f = NULL;
    int64_t *ids = NULL, *lens = NULL;
    uint32_t *row = NULL;
    ts_header h = {0};
    ts_record r = {0};
    ts_writer_t *w = NULL;

    const st_tensor *ti = find_tensor(&f, argv[1], argv[2]);
    const st_tensor *tl = ti ? st_find(f, argv[3]) : NULL;
    if (!ti)
        goto out;
    if (!tl) {
        fail("%s: no tensor '%s'", argv[1], argv[3]);
        goto out;
    }
    if (ti->ndim != 2 || tl->ndim != 1 || tl->shape[0] != ti->shape[0]) {
        fail("%s: '%s' must be 2-D and '%s' 1-D with one length per row", argv[1], argv[2],
             argv[3]);
        goto out;
    }
    size_t rows = (size_t)ti->shape[0], cols = (size_t)ti->shape[1];
    ids = malloc((ti->numel ? ti->numel : 1) * sizeof *ids);
    lens = malloc((rows ? rows : 1) * sizeof *lens);
    row = malloc((cols ? cols : 1) * sizeof *row);
    if (!ids || !lens || !row) {
        fail("out of memory");
        goto out;
    }
    if (st_tensor_to_i64(ti, ids, &e) || st_tensor_to_i64(tl, lens, &e)) {
        fail("%s: %s", argv[1], e.msg);
        goto out;
    }
    if (ts_header_init(&h, "gpt2", (uint64_t)vocab, vocab - 1, &e) ||
        !(w = ts_writer_open(stdout, &h, &e))) {
        fail("%s", e.msg);
        goto out;
    }
    for (size_t b = 0; b < rows; b++) {
        if (lens[b] < 0 || (uint64_t)lens[b] > cols) {
            fail("%s: row %zu: length %" PRId64 " outside 0..%zu", argv[1], b, lens[b], cols);
            goto out;
        }
        for (size_t i = 0; i < (size_t)lens[b]; i++) {
            int64_t v = ids[b * cols + i];
            if (v < 0 || v >= vocab) {
                fail("%s: row %zu: token %" PRId64 " outside the vocabulary of %" PRId64,
                     argv[1], b, v, vocab);
                goto out;
            }
            row[i] = (uint32_t)v;
        }
        r.id = (uint64_t)first + b;
        if (ts_record_set_tokens(&r, row, (size_t)lens[b], &e) || ts_write(w, &r, &e)) {
            fail("%s", e.msg);
            goto out;
        }
    }
    rc = 0;
out:
    if (w && ts_writer_close(w, &e) && rc == 0)
        rc = fail("%s", e.msg);
    if (rc == 0 && fflush(stdout) == EOF)
        rc = fail("writing output failed: %s", strerror(errno));
    ts_record_free(&r);
    ts_header_free(&h);
    free(row);
    free(lens);
    free(ids);
    st_close(f);
    return rc;
}

/* ---- show ---------------------------------------------------------------------------------- */

static int cmd_show(int argc, char **argv)
{
    if (argc != 3)
        return usage_error("show takes FILE TENSOR");
    st_file_t *f;
    err_t e;
    int rc = 1;
    const st_tensor *t = find_tensor(&f, argv[1], argv[2]);
    if (!t)
        goto out;
    size_t n = t->numel ? t->numel : 1;
    printf("%s ", st_dtype_name(t->dtype));
    print_shape(stdout, t);
    putchar('\n');
    if (st_dtype_is_float(t->dtype)) {
        float *v = malloc(n * sizeof *v);
        if (!v || st_tensor_to_f32(t, v, &e)) {
            fail("%s", v ? e.msg : "out of memory");
            free(v);
            goto out;
        }
        for (size_t i = 0; i < t->numel; i++)
            printf("%s%.9g", i ? " " : "", (double)v[i]);
        free(v);
    } else {
        int64_t *v = malloc(n * sizeof *v);
        if (!v || st_tensor_to_i64(t, v, &e)) {
            fail("%s", v ? e.msg : "out of memory");
            free(v);
            goto out;
        }
        for (size_t i = 0; i < t->numel; i++)
            printf("%s%" PRId64, i ? " " : "", v[i]);
        free(v);
    }
    putchar('\n');
    rc = 0;
out:
    st_close(f);
    if (rc == 0 && fflush(stdout) == EOF)
        rc = fail("writing output failed: %s", strerror(errno));
    return rc;
}

/* ---- compare-f32 --------------------------------------------------------------------------- */

static float *to_f32(const st_tensor *t, const char *path)
{
    err_t e;
    float *v = malloc((t->numel ? t->numel : 1) * sizeof *v);
    if (!v) {
        fail("out of memory");
        return NULL;
    }
    if (st_tensor_to_f32(t, v, &e)) {
        fail("%s: %s", path, e.msg);
        free(v);
        return NULL;
    }
    return v;
}

static int cmd_compare_f32(int argc, char **argv)
{
    if (argc != 6)
        return usage_error("compare-f32 takes A TENSOR_A B TENSOR_B ATOL");
    char *end;
    errno = 0;
    double atol = strtod(argv[5], &end);
    if (errno || end == argv[5] || *end || !(atol >= 0))
        return usage_error("ATOL must be a non-negative number, not '%s'", argv[5]);

    int rc = 1;
    st_file_t *fa = NULL, *fb = NULL;
    float *a = NULL, *b = NULL;
    const st_tensor *ta = find_tensor(&fa, argv[1], argv[2]);
    const st_tensor *tb = ta ? find_tensor(&fb, argv[3], argv[4]) : NULL;
    if (!ta || !tb)
        goto out;
    if (!same_shape(ta, tb)) {
        fprintf(stderr, "%s: shapes differ: %s '%s' ", prog, argv[1], argv[2]);
        print_shape(stderr, ta);
        fprintf(stderr, ", %s '%s' ", argv[3], argv[4]);
        print_shape(stderr, tb);
        fputc('\n', stderr);
        goto out;
    }
    if (!(a = to_f32(ta, argv[1])) || !(b = to_f32(tb, argv[3])))
        goto out;
    double max = 0;
    size_t worst = 0;
    for (size_t i = 0; i < ta->numel; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= max) && !(isnan(max))) { /* a NaN difference sticks */
            max = d;
            worst = i;
        }
    }
    printf("max abs diff %.9g over %zu values (at %zu)\n", max, ta->numel, worst);
    if (!(max <= atol))
        fail("max abs diff %.9g exceeds %g", max, atol);
    else
        rc = 0;
out:
    free(a);
    free(b);
    st_close(fa);
    st_close(fb);
    return rc;
}

/* ---- widen-vocab --------------------------------------------------------------------------- */

/* Tensors whose rows are the vocabulary (GPT-2 and SEDD names). */
static const char *const vocab_tensors[] = {
    "wte.weight", "transformer.wte.weight", "lm_head.weight",
    "vocab_embed.embedding", "output_layer.linear.weight", "output_layer.linear.bias",
};

static int is_vocab_tensor(const char *name)
{
    for (size_t i = 0; i < sizeof vocab_tensors / sizeof *vocab_tensors; i++)
        if (!strcmp(name, vocab_tensors[i]))
            return 1;
    return 0;
}

static int write_config(const char *src, const char *dst, const struct config *cfg,
                        int64_t new_vocab)
{
    char in[4096], out[4096];
    snprintf(in, sizeof in, "%s/config.json", src);
    snprintf(out, sizeof out, "%s/config.json", dst);
    json_error_t je;
    json_t *j = json_load_file(in, 0, &je);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return fail("%s: %s", in, j ? "not a JSON object" : je.text);
    }
    int bad;
    if (cfg->kind == CONFIG_SEDD) {
        bad = json_object_set_new(j, "tokens", json_integer(new_vocab));
    } else {
        bad = json_object_set_new(j, "vocab_size", json_integer(new_vocab)) ||
              json_object_set_new(j, "bos_token_id", json_integer(new_vocab - 1)) ||
              json_object_set_new(j, "eos_token_id", json_integer(new_vocab - 1));
    }
    if (bad || json_dump_file(j, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
        json_decref(j);
        return fail("%s: cannot write: %s", out, strerror(errno));
    }
    json_decref(j);
    return 0;
}

static int cmd_widen_vocab(int argc, char **argv)
{
    if (argc != 4)
        return usage_error("widen-vocab takes SRC_DIR DST_DIR NEW_VOCAB");
    const char *src = argv[1], *dst = argv[2];
    int64_t new_vocab;
    if (parse_int(argv[3], 1, INT32_MAX, &new_vocab))
        return usage_error("NEW_VOCAB must be a positive integer, not '%s'", argv[3]);

    err_t e;
    struct config cfg;
    if (config_read_dir(src, &cfg, &e))
        return fail("%s", e.msg);
    int64_t old, rows_old, extra; /* extra: trailing rows kept as they are (the absorbing mask) */
    if (cfg.kind == CONFIG_GPT2) {
        old = rows_old = cfg.gpt2.vocab_size;
    } else if (cfg.kind == CONFIG_SEDD) {
        old = cfg.sedd.tokens;
        rows_old = cfg.sedd.vocab;
    } else {
        return fail("%s: neither a GPT-2 nor a SEDD config", src);
    }
    extra = rows_old - old;
    if (new_vocab < old)
        return fail("NEW_VOCAB %" PRId64 " is smaller than the model's %" PRId64, new_vocab, old);
    if (mkdir(dst, 0777) && errno != EEXIST)
        return fail("%s: cannot create: %s", dst, strerror(errno));

    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", src);
    st_file_t *f = st_open(path, &e);
    if (!f)
        return fail("%s", e.msg);
    int rc = 1;
    size_t n = st_count(f), n_meta = st_meta_count(f), widened = 0;
    st_tensor *ts = calloc(n ? n : 1, sizeof *ts);
    void **bufs = calloc(n ? n : 1, sizeof *bufs);
    st_meta *meta = calloc(n_meta ? n_meta : 1, sizeof *meta);
    if (!ts || !bufs || !meta) {
        fail("out of memory");
        goto out;
    }
    for (size_t i = 0; i < n_meta; i++)
        meta[i] = *st_meta_get(f, i);
    for (size_t i = 0; i < n; i++) {
        const st_tensor *t = st_get(f, i);
        ts[i] = *t;
        if (!is_vocab_tensor(t->name))
            continue;
        if (t->ndim < 1 || t->shape[0] != rows_old) {
            fail("%s: tensor '%s' has %" PRId64 " rows, not the model's %" PRId64, path,
                 t->name, t->ndim ? t->shape[0] : 0, rows_old);
            goto out;
        }
        size_t row = t->nbytes / (size_t)rows_old;
        int64_t rows_new = new_vocab + extra;
        unsigned char *d = malloc((size_t)rows_new * row + 1);
        if (!d) {
            fail("out of memory");
            goto out;
        }
        bufs[i] = d;
        const unsigned char *s = t->data;
        for (int64_t r = 0; r < new_vocab; r++)
            memcpy(d + (size_t)r * row, s + (size_t)(r % old) * row, row);
        for (int64_t r = 0; r < extra; r++)
            memcpy(d + (size_t)(new_vocab + r) * row, s + (size_t)(old + r) * row, row);
        ts[i].shape[0] = rows_new;
        ts[i].data = d;
        widened++;
    }
    if (!widened) {
        fail("%s: no embedding or output tensor to widen", path);
        goto out;
    }
    if (write_config(src, dst, &cfg, new_vocab))
        goto out;
    snprintf(path, sizeof path, "%s/model.safetensors", dst);
    if (st_write(path, ts, n, meta, n_meta, &e)) {
        fail("%s", e.msg);
        goto out;
    }
    rc = 0;
out:
    for (size_t i = 0; bufs && i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(ts);
    free(meta);
    st_close(f);
    return rc;
}

/* ---- main ---------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("a COMMAND is required");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (!strcmp(cmd, "rows-to-stream"))
        return cmd_rows_to_stream(argc - 1, argv + 1);
    if (!strcmp(cmd, "show"))
        return cmd_show(argc - 1, argv + 1);
    if (!strcmp(cmd, "compare-f32"))
        return cmd_compare_f32(argc - 1, argv + 1);
    if (!strcmp(cmd, "widen-vocab"))
        return cmd_widen_vocab(argc - 1, argv + 1);
    return usage_error("unknown command '%s'", cmd);
}
