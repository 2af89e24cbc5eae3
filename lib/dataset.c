/* dataset: benchmark readers and the perplexity chunking protocol (specs/eval.md §2, §3.2). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "dataset.h"

static const char *const names[DATASET_N] = {"lambada", "webtext", "wikitext", "ptb", "lm1b",
                                             "hellaswag", "piqa", "arc", "winogrande"};

int dataset_parse(const char *name, dataset_kind *out, err_t *e)
{
    for (int i = 0; i < DATASET_N; i++)
        if (strcmp(name, names[i]) == 0) return *out = (dataset_kind)i, 0;
    return err_set(e, "unknown dataset '%s' (lambada, webtext, wikitext, ptb, lm1b, hellaswag, "
                      "piqa, arc, winogrande)", name);
}

const char *dataset_name(dataset_kind k) { return names[k]; }

detok_kind dataset_detokenizer(dataset_kind k)
{
    switch (k) {
    case DATASET_LAMBADA: return DETOK_LAMBADA;
    case DATASET_WIKITEXT: return DETOK_WIKITEXT;
    case DATASET_PTB: return DETOK_PTB;
    case DATASET_LM1B: return DETOK_LM1B;
    default: return DETOK_NONE;
    }
}

struct dataset_reader {
    dataset_kind kind;
    FILE *fp, *labels;
    char *path, *labels_path;
    char *line, *lline;
    size_t cap, lcap, line_no;
    int json; /* -1 unknown, 0 raw text, 1 JSON lines */
    json_t *row;
};

int dataset_open(dataset_reader **out, dataset_kind k, const char *path, const char *labels,
                 err_t *e)
{
    dataset_reader *r = calloc(1, sizeof *r);
    if (!r) return err_set(e, "dataset: out of memory");
    r->kind = k;
    r->json = -1;
    r->path = strdup(path);
    r->fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!r->fp) {
        err_set_errno(e, "cannot open '%s'", path);
        dataset_close(r);
        return ERR_FAIL;
    }
    if (labels) {
        r->labels_path = strdup(labels);
        r->labels = fopen(labels, "r");
        if (!r->labels) {
            err_set_errno(e, "cannot open '%s'", labels);
            dataset_close(r);
            return ERR_FAIL;
        }
    }
    *out = r;
    return 0;
}

void dataset_close(dataset_reader *r)
{
    if (!r) return;
    if (r->fp && r->fp != stdin) fclose(r->fp);
    if (r->labels) fclose(r->labels);
    free(r->path);
    free(r->labels_path);
    free(r->line);
    free(r->lline);
    json_decref(r->row);
    free(r);
}

size_t dataset_line(const dataset_reader *r) { return r->line_no; }

const char *dataset_row_text(dataset_kind k, const json_t *row)
{
    return json_string_value(json_object_get(row, k == DATASET_PTB ? "sentence" : "text"));
}

/* Field checks: each returns false and sets e naming file:line. */
static bool need(dataset_reader *r, const json_t *o, const char *key, json_type t, err_t *e)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        err_set(e, "%s:%zu: missing field '%s'", r->path, r->line_no, key);
        return false;
    }
    if (json_typeof(v) != t && !(t == JSON_REAL && json_is_number(v)) &&
        !(t == JSON_TRUE && json_is_boolean(v))) {
        err_set(e, "%s:%zu: field '%s' has the wrong type", r->path, r->line_no, key);
        return false;
    }
    return true;
}

static bool strings_array(dataset_reader *r, const json_t *a, const char *key, size_t min,
                          err_t *e)
{
    if (!json_is_array(a) || json_array_size(a) < min) {
        err_set(e, "%s:%zu: field '%s' must be an array of at least %zu strings", r->path,
                r->line_no, key, min);
        return false;
    }
    for (size_t i = 0; i < json_array_size(a); i++)
        if (!json_is_string(json_array_get(a, i))) {
            err_set(e, "%s:%zu: field '%s' must hold strings", r->path, r->line_no, key);
            return false;
        }
    return true;
}

/* Validates a JSON row of kind k and converts it to the HF layout. @return the row or NULL. */
static json_t *normalise(dataset_reader *r, json_t *o, err_t *e)
{
    switch (r->kind) {
    case DATASET_LAMBADA:
    case DATASET_LM1B:
        if (!need(r, o, "text", JSON_STRING, e)) return NULL;
        return json_incref(o);
    case DATASET_WIKITEXT:
        if (!need(r, o, "text", JSON_STRING, e)) return NULL;
        return json_incref(o);
    case DATASET_PTB:
        if (!need(r, o, "sentence", JSON_STRING, e)) return NULL;
        return json_incref(o);
    case DATASET_WEBTEXT:
        if (!need(r, o, "id", JSON_INTEGER, e) || !need(r, o, "ended", JSON_TRUE, e) ||
            !need(r, o, "length", JSON_INTEGER, e) || !need(r, o, "text", JSON_STRING, e))
            return NULL;
        return json_incref(o);
    case DATASET_HELLASWAG: {
        static const char *const f[] = {"activity_label", "ctx_a", "ctx_b", "ctx"};
        for (int i = 0; i < 4; i++)
            if (!need(r, o, f[i], JSON_STRING, e)) return NULL;
        if (!strings_array(r, json_object_get(o, "endings"), "endings", 1, e)) return NULL;
        json_t *l = json_object_get(o, "label");
        long label = -1;
        if (json_is_integer(l)) label = (long)json_integer_value(l);
        else if (json_is_string(l)) {
            char *end;
            label = strtol(json_string_value(l), &end, 10);
            if (*end || end == json_string_value(l)) label = -1;
        }
        if (label < 0 || (size_t)label >= json_array_size(json_object_get(o, "endings"))) {
            err_set(e, "%s:%zu: bad label", r->path, r->line_no);
            return NULL;
        }
        json_t *n = json_deep_copy(o);
        char buf[32];
        snprintf(buf, sizeof buf, "%ld", label);
        json_object_set_new(n, "label", json_string(buf));
        return n;
    }
    case DATASET_PIQA: {
        if (!need(r, o, "goal", JSON_STRING, e) || !need(r, o, "sol1", JSON_STRING, e) ||
            !need(r, o, "sol2", JSON_STRING, e))
            return NULL;
        json_t *n = json_deep_copy(o);
        if (r->labels) {
            ssize_t got = getline(&r->lline, &r->lcap, r->labels);
            char *end;
            long v = got > 0 ? strtol(r->lline, &end, 10) : -1;
            if (got <= 0 || (v != 0 && v != 1) || (*end && *end != '\n' && *end != '\r')) {
                json_decref(n);
                err_set(e, "%s:%zu: missing or bad label", r->labels_path, r->line_no);
                return NULL;
            }
            json_object_set_new(n, "label", json_integer(v));
        } else {
            json_t *l = json_object_get(o, "label");
            if (!json_is_integer(l) || (json_integer_value(l) != 0 && json_integer_value(l) != 1)) {
                json_decref(n);
                err_set(e, "%s:%zu: bad or missing label (0 or 1; the original layout needs its "
                           "label file)", r->path, r->line_no);
                return NULL;
            }
        }
        return n;
    }
    case DATASET_ARC: {
        if (!need(r, o, "answerKey", JSON_STRING, e)) return NULL;
        json_t *q = json_object_get(o, "question"), *text, *label;
        const char *stem;
        if (json_is_object(q)) { /* original nested layout */
            stem = json_string_value(json_object_get(q, "stem"));
            json_t *ch = json_object_get(q, "choices");
            if (!stem || !json_is_array(ch) || json_array_size(ch) < 2) {
                err_set(e, "%s:%zu: bad 'question' (needs stem and choices)", r->path, r->line_no);
                return NULL;
            }
            text = json_array();
            label = json_array();
            size_t i;
            json_t *c;
            json_array_foreach(ch, i, c) {
                json_t *t = json_object_get(c, "text"), *l = json_object_get(c, "label");
                if (!json_is_string(t) || !json_is_string(l)) {
                    json_decref(text);
                    json_decref(label);
                    err_set(e, "%s:%zu: choice %zu needs string text and label", r->path,
                            r->line_no, i);
                    return NULL;
                }
                json_array_append(text, t);
                json_array_append(label, l);
            }
        } else {
            if (!need(r, o, "question", JSON_STRING, e) || !need(r, o, "choices", JSON_OBJECT, e))
                return NULL;
            stem = json_string_value(q);
            json_t *ch = json_object_get(o, "choices");
            if (!strings_array(r, json_object_get(ch, "text"), "choices.text", 2, e) ||
                !strings_array(r, json_object_get(ch, "label"), "choices.label", 2, e))
                return NULL;
            if (json_array_size(json_object_get(ch, "text")) !=
                json_array_size(json_object_get(ch, "label"))) {
                err_set(e, "%s:%zu: choices.text and choices.label differ in length", r->path,
                        r->line_no);
                return NULL;
            }
            text = json_incref(json_object_get(ch, "text"));
            label = json_incref(json_object_get(ch, "label"));
        }
        const char *key = json_string_value(json_object_get(o, "answerKey"));
        bool found = false;
        for (size_t i = 0; i < json_array_size(label); i++)
            found |= strcmp(json_string_value(json_array_get(label, i)), key) == 0;
        if (!found) {
            json_decref(text);
            json_decref(label);
            err_set(e, "%s:%zu: bad label: answerKey '%s' is not a choice label", r->path,
                    r->line_no, key);
            return NULL;
        }
        json_t *n = json_pack("{s:O?,s:s,s:{s:o,s:o},s:s}", "id", json_object_get(o, "id"),
                              "question", stem, "choices", "text", text, "label", label,
                              "answerKey", key);
        return n;
    }
    case DATASET_WINOGRANDE: {
        if (!need(r, o, "sentence", JSON_STRING, e) || !need(r, o, "option1", JSON_STRING, e) ||
            !need(r, o, "option2", JSON_STRING, e) || !need(r, o, "answer", JSON_STRING, e))
            return NULL;
        const char *a = json_string_value(json_object_get(o, "answer"));
        if (strcmp(a, "1") != 0 && strcmp(a, "2") != 0) {
            err_set(e, "%s:%zu: bad label: answer must be \"1\" or \"2\"", r->path, r->line_no);
            return NULL;
        }
        if (!strchr(json_string_value(json_object_get(o, "sentence")), '_')) {
            err_set(e, "%s:%zu: sentence has no '_'", r->path, r->line_no);
            return NULL;
        }
        json_t *n = json_deep_copy(o);
        json_object_del(n, "qID");
        return n;
    }
    default: return NULL;
    }
}

int dataset_next(dataset_reader *r, json_t **row, err_t *e)
{
    json_decref(r->row);
    r->row = NULL;
    ssize_t got = getline(&r->line, &r->cap, r->fp);
    if (got < 0) {
        if (ferror(r->fp)) return err_set_errno(e, "%s: read error", r->path);
        if (r->labels && getline(&r->lline, &r->lcap, r->labels) > 0)
            return err_set(e, "%s: more labels than records", r->labels_path);
        return ERR_EOF;
    }
    r->line_no++;
    if (r->json < 0) {
        bool textual = r->kind == DATASET_WIKITEXT || r->kind == DATASET_PTB ||
                       r->kind == DATASET_LM1B;
        r->json = !textual || r->line[0] == '{';
    }
    if (!r->json) {
        /* raw layouts: WikiText keeps each line with its newline (" \n" is an empty row); PTB and
         * LM1B rows are the stripped line, as the Hugging Face rows hold them */
        char *s = r->line;
        size_t n = (size_t)got;
        if (memchr(s, 0, n)) return err_set(e, "%s:%zu: NUL byte in text", r->path, r->line_no);
        if (r->kind == DATASET_WIKITEXT) {
            if (strcmp(s, " \n") == 0) s[0] = 0;
        } else {
            while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) s[--n] = 0;
            while (*s == ' ') s++;
        }
        r->row = json_pack("{s:s}", r->kind == DATASET_PTB ? "sentence" : "text", s);
        if (!r->row) return err_set(e, "%s:%zu: text is not valid UTF-8", r->path, r->line_no);
        *row = r->row;
        return 0;
    }
    json_error_t jerr;
    json_t *o = json_loadb(r->line, (size_t)got, 0, &jerr);
    if (!o) return err_set(e, "%s:%zu: malformed JSON: %s", r->path, r->line_no, jerr.text);
    if (!json_is_object(o)) {
        json_decref(o);
        return err_set(e, "%s:%zu: a record must be a JSON object", r->path, r->line_no);
    }
    r->row = normalise(r, o, e);
    json_decref(o);
    if (!r->row) return ERR_FAIL;
    *row = r->row;
    return 0;
}

/* ---- chunking --------------------------------------------------------------------------- */

typedef struct wrap_ctx {
    const dataset_chunk_opts *o;
    dataset_block_fn emit;
    void *ctx;
    uint32_t *buf;
} wrap_ctx;

static int wrap_emit(const uint32_t *t, size_t n, void *vctx, err_t *e)
{
    wrap_ctx *w = vctx;
    if (w->o->mode == DATASET_CHUNK_SEDD) return w->emit(t, n, w->ctx, e);
    w->buf[0] = w->o->bos;
    memcpy(w->buf + 1, t, n * sizeof *t);
    w->buf[n + 1] = w->o->eos;
    return w->emit(w->buf, n + 2, w->ctx, e);
}

int dataset_chunk(const uint32_t *const *records, const size_t *lens, size_t n_records,
                  const dataset_chunk_opts *o, dataset_block_fn emit, void *ctx, err_t *e)
{
    size_t piece = o->mode == DATASET_CHUNK_SEDD ? o->block : o->block - 2;
    if (o->block < (o->mode == DATASET_CHUNK_SEDD ? 1u : 3u) || o->num_proc == 0 ||
        o->map_batch == 0)
        return err_set(e, "dataset_chunk: bad block size, shard count or batch size");
    wrap_ctx w = {o, emit, ctx, malloc((o->block + 1) * sizeof(uint32_t))};
    if (!w.buf) return err_set(e, "dataset_chunk: out of memory");
    size_t div = n_records / o->num_proc, mod = n_records % o->num_proc;
    int rc = 0;
    for (size_t s = 0; s < o->num_proc && rc == 0; s++) {
        size_t start = div * s + (s < mod ? s : mod), len = div + (s < mod);
        for (size_t b = 0; b < len && rc == 0; b += o->map_batch) {
            size_t end = b + o->map_batch < len ? b + o->map_batch : len;
            chunker c;
            chunk_init(&c, piece, CHUNK_DROP);
            for (size_t i = start + b; i < start + end && rc == 0; i++) {
                rc = chunk_push(&c, records[i], lens[i], wrap_emit, &w, e);
                if (rc == 0) rc = chunk_push(&c, &o->eos, 1, wrap_emit, &w, e);
            }
            if (rc == 0) rc = chunk_finish(&c, wrap_emit, &w, e);
            chunk_free(&c);
        }
    }
    free(w.buf);
    return rc;
}
