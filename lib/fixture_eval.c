/* fixture_eval: the evaluation set (mauve, diversity, ppl, lmeval, formats) — every case file is
 * listed by kind; the evaluation suite teaches the runner to run them. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int fixture_run_eval(const char *dir, fixture_report *r, err_t *e)
{
    static const char *const kinds[] = {"mauve", "diversity", "ppl", "lmeval", "formats"};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, kinds[k]);
        DIR *d = opendir(path);
        if (!d) continue;
        char *names[256];
        size_t n = 0;
        for (struct dirent *ent; (ent = readdir(d)) && n < 256;)
            if (ent->d_name[0] != '.') names[n++] = strdup(ent->d_name);
        closedir(d);
        qsort(names, n, sizeof *names, compare_strings);
        for (size_t i = 0; i < n; i++) {
            char kind[64];
            snprintf(kind, sizeof kind, "eval-%s", kinds[k]);
            fixture_unsupported(r, kind, names[i]);
            free(names[i]);
        }
    }
    (void)e;
    return 0;
}
