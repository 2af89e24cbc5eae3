/* fixture: reporting and set detection for the fixture runner (see fixture.h). */
#include "fixture.h"

#include <jansson.h>
#include <string.h>
#include <unistd.h>

bool fixture_selected(const fixture_report *r, const char *kind)
{
    if (!r->kinds) return true;
    size_t n = strlen(kind);
    for (const char *p = r->kinds; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, kind, n) == 0) return true;
        p += len + (end != NULL);
    }
    return false;
}

void fixture_case(fixture_report *r, const char *kind, const char *name, double max_abs,
                  double max_rel, bool pass, const char *tolerance)
{
    if (!fixture_selected(r, kind)) {
        r->n_skipped++;
        return;
    }
    fprintf(r->out, "%-4s  %-12s  %-36s  max_abs %-10.3g  max_rel %-10.3g  (%s)\n",
            pass ? "PASS" : "FAIL", kind, name, max_abs, max_rel, tolerance);
    if (pass) r->n_pass++;
    else r->n_fail++;
}

void fixture_unsupported(fixture_report *r, const char *kind, const char *name)
{
    if (!fixture_selected(r, kind)) {
        r->n_skipped++;
        return;
    }
    fprintf(r->out, "UNSUPPORTED  %-12s  %s\n", kind, name);
    r->n_unsupported++;
}

static bool has_file(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, R_OK) == 0;
}

int fixture_run(const char *dir, fixture_report *r, err_t *e)
{
    if (has_file(dir, "cases.jsonl") && has_file(dir, "invalid_utf8.jsonl"))
        return fixture_run_tokenizer(dir, r, e);
    if (has_file(dir, "manifest.json")) {
        /* gpt2 sets list "cases" and "tensors"; sedd sets list "models" with case files. */
        char path[4096];
        snprintf(path, sizeof path, "%s/manifest.json", dir);
        json_error_t jerr;
        json_t *m = json_load_file(path, 0, &jerr);
        if (!m) return err_set(e, "%s: line %d: %s", path, jerr.line, jerr.text);
        bool sedd = json_object_get(m, "models") != NULL;
        bool gpt2 = json_object_get(m, "cases") && json_object_get(m, "tensors");
        json_decref(m);
        if (sedd) return fixture_run_sedd(dir, r, e);
        if (gpt2) return fixture_run_gpt2(dir, r, e);
    }
    if (has_file(dir, "mauve/hist_cases.jsonl") || has_file(dir, "diversity/diversity_cases.jsonl"))
        return fixture_run_eval(dir, r, e);
    return err_set(e, "%s: not a fixture set this build recognises (expected the layout of a "
                      "tokenizer, gpt2, sedd or eval set)", dir);
}
