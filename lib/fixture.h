/* fixture: runs a reference fixture set (../shared/fixtures/<set>/ layouts) through the library:
 * detects the set's kind from its files, runs every case, prints one line per case.
 * Ownership: a fixture_report borrows its FILE. Errors: ERR_FAIL when the set cannot be read. */
#ifndef DLM_FIXTURE_H
#define DLM_FIXTURE_H

#include <stdbool.h>
#include <stdio.h>

#include "backend.h"
#include "err.h"

typedef struct fixture_report {
    FILE *out;              /* where the per-case lines go (borrowed) */
    const char *kinds;      /* comma-separated kinds to run; NULL = all */
    const char *vocab;      /* tokenizer directory; NULL = the default vocabulary */
    const backend *be;      /* where the model cases (gpt2, sedd sets) run; NULL = the CPU */
    int n_pass, n_fail, n_unsupported, n_skipped;
} fixture_report;

/* True when kind is selected by r->kinds (always when r->kinds is NULL). */
bool fixture_selected(const fixture_report *r, const char *kind);

/* Prints "PASS|FAIL  kind  name  max_abs A  max_rel R  (tolerance)" and counts it. tolerance is
 * free text, e.g. "exact" or "atol 1e-4". Skips (and counts) unselected kinds. */
void fixture_case(fixture_report *r, const char *kind, const char *name, double max_abs,
                  double max_rel, bool pass, const char *tolerance);

/* Prints "UNSUPPORTED  kind  name" and counts it as a failure when the kind is selected: this
 * build does not know how to run it yet. */
void fixture_unsupported(fixture_report *r, const char *kind, const char *name);

/* Detects the set in dir (tokenizer, gpt2, sedd or eval) and runs every case.
 * @return 0 when the set was read (cases may still have failed: see the counts), ERR_FAIL when
 * dir is not a fixture set this build recognises or cannot be read. */
int fixture_run(const char *dir, fixture_report *r, err_t *e);

/* Per-set runners, called by fixture_run (one .c each). */
int fixture_run_tokenizer(const char *dir, fixture_report *r, err_t *e);
int fixture_run_gpt2(const char *dir, fixture_report *r, err_t *e);
int fixture_run_sedd(const char *dir, fixture_report *r, err_t *e);
int fixture_run_eval(const char *dir, fixture_report *r, err_t *e);

#endif
