/* textin: reading and cutting input text into documents (see textin.h). */
#include "textin.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* Reads the whole stream into a malloc'd buffer with one spare byte. */
static int slurp(FILE *fp, const char *name, char **out, size_t *len, err_t *e)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return err_set(e, "out of memory");
    for (;;) {
        if (n + 1 >= cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                return err_set(e, "%s: out of memory reading the input", name);
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, fp);
        n += got;
        if (got == 0) break;
    }
    if (ferror(fp)) {
        free(buf);
        return err_set_errno(e, "%s: read error", name);
    }
    *out = buf;
    *len = n;
    return 0;
}

/* Applies the UTF-8 policy to the whole input, replacing *buf when it repairs it. */
static int apply_utf8_policy(char **buf, size_t *len, const char *name, textin_utf8 policy,
                             err_t *e)
{
    size_t bad = utf8_validate(*buf, *len);
    if (bad == *len) return 0;
    if (policy == TEXTIN_UTF8_ERROR)
        return err_set(e, "%s: invalid UTF-8 at byte offset %zu (use --invalid-utf8 replace to "
                          "decode it with U+FFFD)", name, bad);
    char *fixed = malloc(UTF8_REPLACE_BOUND(*len) + 1);
    if (!fixed) return err_set(e, "out of memory");
    *len = utf8_replace(*buf, *len, fixed);
    free(*buf);
    *buf = fixed;
    return 0;
}

static int add_doc(textin *t, size_t *cap, const char *text, size_t len, err_t *e)
{
    if (t->n_docs == *cap) {
        size_t bigger = *cap ? *cap * 2 : 1024;
        textin_doc *d = realloc(t->docs, bigger * sizeof *d);
        if (!d) return err_set(e, "out of memory");
        t->docs = d;
        *cap = bigger;
    }
    t->docs[t->n_docs++] = (textin_doc){text, len};
    return 0;
}

/* One document per line; a final '\n' does not open an empty last document. */
static int cut_lines(textin *t, size_t len, err_t *e)
{
    size_t cap = 0;
    const char *p = t->input, *end = t->input + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (add_doc(t, &cap, p, n, e) < 0) return ERR_FAIL;
        p += n + (nl != NULL);
    }
    return 0;
}

/* One JSON object per line; documents are copies of the field's string (escapes decoded). The
 * strings go into one buffer no larger than the input (a decoded string is never longer than its
 * JSON spelling), so pointers into it stay valid. */
static int cut_jsonl(textin *t, size_t len, const char *name, const char *field, err_t *e)
{
    size_t cap = 0, used = 0, line = 0;
    t->strings = malloc(len + 1);
    if (!t->strings) return err_set(e, "out of memory");
    const char *p = t->input, *end = t->input + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line++;
        json_error_t jerr;
        json_t *obj = json_loadb(p, n, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
        if (!obj) return err_set(e, "%s: line %zu: invalid JSON: %s", name, line, jerr.text);
        json_t *val = json_is_object(obj) ? json_object_get(obj, field) : NULL;
        if (!json_is_string(val)) {
            int is_object = json_is_object(obj);
            json_decref(obj);
            if (!is_object) return err_set(e, "%s: line %zu: not a JSON object", name, line);
            return err_set(e, "%s: line %zu: field '%s' is %s", name, line, field,
                           val ? "not a string" : "missing");
        }
        size_t slen = json_string_length(val);
        memcpy(t->strings + used, json_string_value(val), slen);
        json_decref(obj);
        if (add_doc(t, &cap, t->strings + used, slen, e) < 0) return ERR_FAIL;
        used += slen;
        p += n + (nl != NULL);
    }
    return 0;
}

int textin_read(FILE *fp, const char *name, textin_mode mode, const char *field, textin_utf8 utf8,
                textin *t, err_t *e)
{
    memset(t, 0, sizeof *t);
    size_t len = 0;
    if (slurp(fp, name, &t->input, &len, e) < 0) return ERR_FAIL;
    int rc = len == 0 ? err_set(e, "%s: empty input", name)
                      : apply_utf8_policy(&t->input, &len, name, utf8, e);
    if (rc == 0) {
        if (mode == TEXTIN_DOCUMENT) {
            size_t cap = 0;
            rc = add_doc(t, &cap, t->input, len, e);
        } else if (mode == TEXTIN_LINES) {
            rc = cut_lines(t, len, e);
        } else {
            rc = cut_jsonl(t, len, name, field, e);
        }
    }
    if (rc < 0) textin_free(t);
    return rc;
}

void textin_free(textin *t)
{
    free(t->docs);
    free(t->input);
    free(t->strings);
    memset(t, 0, sizeof *t);
}
