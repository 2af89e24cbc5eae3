/* mauve: MAUVE between two feature files (human p, model q) — L2 normalisation, PCA to 90%
 * variance, faiss-compatible k-means, divergence frontier; one seed or a range of seeds. */
#include <cblas.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cli.h"
#include "mauve.h"
#include "safetensors.h"

static int usage(FILE *fp, int status)
{
    fprintf(fp,
            "Usage: mauve [options] -p P_FEATURES -q Q_FEATURES\n"
            "Computes MAUVE (mauve-text 0.4.0 compute_mauve) between p (human references) and q\n"
            "(model samples): rows stacked q then p, L2-normalised, PCA to the explained-variance\n"
            "cut, k-means as faiss 1.7.3 does it (seed+2, random-subset init, redos, empty-cluster\n"
            "splits: the reference histograms are reproduced for a given seed), the divergence\n"
            "curve and its area, the frontier integral, and MAUVE*/FI* on (counts+0.5) smoothed\n"
            "histograms. Prints one JSON object.\n"
            "\n"
            "Feature files: FILE.safetensors holding one 2-D F32/F16/BF16/F64 tensor [n, dim]\n"
            "(the tensor 'features' when there are several), or raw little-endian float32,\n"
            "row-major [n, dim] with no header (give --dim).\n"
            "\n"
            "Options:\n"
            "  -p, --p FILE              human/reference features\n"
            "  -q, --q FILE              model features\n"
            "      --dim N               feature dimension of raw .f32 files\n"
            "      --seed N              MAUVE seed (k-means uses seed+2) [25]\n"
            "      --seeds A-B|A,B,...   several seeds, reusing the PCA: mean and spread\n"
            "      --buckets N|auto      clusters; auto = max(2, round_half_even(min(n)/10)) [auto]\n"
            "      --explained-var X     PCA cut on the cumulative variance ratio [0.9]\n"
            "      --redo N              k-means restarts [5]\n"
            "      --iter N              k-means iterations [500]\n"
            "      --scaling C           mauve_scaling_factor [5]\n"
            "      --curve-size M        divergence_curve_discretization_size [25]\n"
            "  -j, --threads N           OpenMP threads, 0 = all cores [0]\n"
            "  -o, --output FILE         write here, atomically [stdout]\n"
            "  -h, --help                print this help and exit\n"
            "      --version             print the version and build and exit\n"
            "\n" CLI_EXIT_TEXT "\n"
            "Example: mauve -p human.safetensors -q sedd.safetensors --seeds 1-5\n");
    return status;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Loads a feature matrix; dies naming the file on any problem. */
static float *load_features(const char *path, size_t dim_opt, size_t *n, size_t *dim)
{
    err_t e;
    if (ends_with(path, ".safetensors")) {
        st_file_t *f = st_open(path, &e);
        if (!f) die("%s", e.msg);
        const st_tensor *t = st_find(f, "features");
        if (!t && st_count(f) == 1) t = st_get(f, 0);
        if (!t) die("%s: no tensor 'features' (and more than one tensor)", path);
        if (t->ndim != 2 || t->shape[0] < 1 || t->shape[1] < 1)
            die("%s: tensor '%s' must be 2-D [n, dim]", path, t->name);
        *n = (size_t)t->shape[0];
        *dim = (size_t)t->shape[1];
        float *x = malloc(t->numel * sizeof *x);
        if (!x) die("out of memory");
        if (st_tensor_to_f32(t, x, &e)) die("%s", e.msg);
        st_close(f);
        return x;
    }
    if (dim_opt == 0) die_usage("%s: raw float32 features need --dim", path);
    FILE *fp = fopen(path, "rb");
    if (!fp) die_errno("cannot open '%s'", path);
    struct stat st;
    if (fstat(fileno(fp), &st) != 0) die_errno("%s", path);
    size_t row = dim_opt * sizeof(float);
    if (st.st_size <= 0 || (size_t)st.st_size % row != 0)
        die("%s: %lld bytes is not a whole number of %zu-float rows", path,
            (long long)st.st_size, dim_opt);
    *n = (size_t)st.st_size / row;
    *dim = dim_opt;
    float *x = malloc((size_t)st.st_size);
    if (!x) die("out of memory");
    if (fread(x, row, *n, fp) != *n) die_errno("%s: read failed", path);
    fclose(fp);
    for (size_t i = 0; i < *n * *dim; i++)
        if (!isfinite(x[i])) die("%s: row %zu holds a non-finite value", path, i / *dim);
    return x;
}

/* Parses "A-B" or "A,B,C" into seeds (at most cap). @return the count. */
static size_t parse_seeds(const char *s, long long *seeds, size_t cap)
{
    size_t n = 0;
    const char *dash = strchr(s, '-');
    if (dash && dash != s && !strchr(s, ',')) {
        char a[32];
        snprintf(a, sizeof a, "%.*s", (int)(dash - s), s);
        long long lo = cli_parse_int("--seeds", a, 0, 1LL << 31);
        long long hi = cli_parse_int("--seeds", dash + 1, lo, lo + (long long)cap - 1);
        for (long long v = lo; v <= hi; v++) seeds[n++] = v;
        return n;
    }
    char *copy = strdup(s), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == cap) die_usage("--seeds: at most %zu seeds", cap);
        seeds[n++] = cli_parse_int("--seeds", tok, 0, 1LL << 31);
    }
    free(copy);
    if (n == 0) die_usage("--seeds: no seed given");
    return n;
}

static json_t *counts_json(const double *c, size_t k)
{
    json_t *a = json_array();
    for (size_t i = 0; i < k; i++) json_array_append_new(a, json_integer((json_int_t)c[i]));
    return a;
}

int main(int argc, char **argv)
{
    cli_init("mauve");
    enum { OPT_DIM = 256, OPT_SEED, OPT_SEEDS, OPT_BUCKETS, OPT_EV, OPT_REDO, OPT_ITER,
           OPT_SCALING, OPT_CURVE };
    static const struct option longopts[] = {
        {"p", required_argument, NULL, 'p'}, {"q", required_argument, NULL, 'q'},
        {"dim", required_argument, NULL, OPT_DIM}, {"seed", required_argument, NULL, OPT_SEED},
        {"seeds", required_argument, NULL, OPT_SEEDS},
        {"buckets", required_argument, NULL, OPT_BUCKETS},
        {"explained-var", required_argument, NULL, OPT_EV},
        {"redo", required_argument, NULL, OPT_REDO}, {"iter", required_argument, NULL, OPT_ITER},
        {"scaling", required_argument, NULL, OPT_SCALING},
        {"curve-size", required_argument, NULL, OPT_CURVE},
        CLI_OPTION_THREADS, CLI_OPTION_OUTPUT, CLI_OPTION_HELP, CLI_OPTION_VERSION,
        {NULL, 0, NULL, 0},
    };
    mauve_opts o = MAUVE_OPTS_DEFAULT;
    const char *pf = NULL, *qf = NULL;
    struct cli_common common = {0};
    size_t dim = 0, buckets = 0, n_seeds = 1;
    long long seeds[1024] = {25};
    bool many = false;
    int c;
    while ((c = getopt_long(argc, argv, "p:q:j:o:h", longopts, NULL)) != -1) {
        if (cli_common_option(c, optarg, &common, NULL, usage)) continue;
        switch (c) {
        case 'p': pf = optarg; break;
        case 'q': qf = optarg; break;
        case OPT_DIM: dim = (size_t)cli_parse_int("--dim", optarg, 1, 1 << 20); break;
        case OPT_SEED: seeds[0] = cli_parse_int("--seed", optarg, 0, 1LL << 31); break;
        case OPT_SEEDS:
            n_seeds = parse_seeds(optarg, seeds, 1024);
            many = true;
            break;
        case OPT_BUCKETS:
            buckets = strcmp(optarg, "auto") == 0
                          ? 0 : (size_t)cli_parse_int("--buckets", optarg, 2, 1 << 24);
            break;
        case OPT_EV:
            o.explained_var = cli_parse_double("--explained-var", optarg, 1e-9, 1 - 1e-9);
            break;
        case OPT_REDO: o.kmeans_redo = (int)cli_parse_int("--redo", optarg, 1, 1000); break;
        case OPT_ITER: o.kmeans_iter = (int)cli_parse_int("--iter", optarg, 1, 1000000); break;
        case OPT_SCALING: o.scaling = cli_parse_double("--scaling", optarg, 1e-9, 1e9); break;
        case OPT_CURVE: o.curve_size = (int)cli_parse_int("--curve-size", optarg, 1, 1000000); break;
        default: return cli_short_usage(usage);
        }
    }
    o.threads = common.threads;
    if (optind < argc) die_usage("unexpected argument '%s'", argv[optind]);
    if (!pf || !qf) die_usage("both -p and -q are required");
#ifdef _OPENMP
    omp_set_num_threads(cli_threads(o.threads));
#endif
    /* BLAS single-threaded, as in every tool: a threaded dsyrk changes the PCA's last bits with
     * the thread count (measured: pca_cumulative_at_kept ...444 vs ...4439 at -j 1 vs -j 2) */
    openblas_set_num_threads(1);
    size_t n_p, n_q, d_p, d_q;
    float *p = load_features(pf, dim, &n_p, &d_p), *q = load_features(qf, dim, &n_q, &d_q);
    if (d_p != d_q) die("feature dimensions differ: %s has %zu, %s has %zu", pf, d_p, qf, d_q);
    size_t k = buckets ? buckets : mauve_num_buckets(n_p, n_q);
    if (k > n_p + n_q) die("%zu buckets but only %zu feature rows", k, n_p + n_q);
    err_t e;
    mauve_prep z;
    if (mauve_prepare(q, n_q, p, n_p, d_p, o.explained_var, &z, &e)) die("%s", e.msg);
    double *pc = malloc(k * sizeof *pc), *qc = malloc(k * sizeof *qc);
    if (!pc || !qc) die("out of memory");
    json_t *runs = json_array();
    double *mv = malloc(n_seeds * sizeof *mv), *sv = malloc(n_seeds * sizeof *sv);
    if (!mv || !sv) die("out of memory");
    for (size_t s = 0; s < n_seeds; s++) {
        mauve_result r;
        if (mauve_cluster(&z, k, seeds[s], &o, qc, pc, &e) ||
            mauve_from_counts(pc, qc, k, &o, &r, &e))
            die("%s", e.msg);
        json_array_append_new(
            runs, json_pack("{s:I,s:f,s:f,s:f,s:f,s:o,s:o}", "seed", (json_int_t)seeds[s],
                            "mauve", r.mauve, "frontier_integral", r.frontier_integral,
                            "mauve_star", r.mauve_star, "frontier_integral_star",
                            r.frontier_integral_star, "p_counts", counts_json(pc, k), "q_counts",
                            counts_json(qc, k)));
        mv[s] = r.mauve;
        sv[s] = r.mauve_star;
        mauve_result_free(&r);
    }
    json_t *res = json_pack("{s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:f}", "n_p", (json_int_t)n_p, "n_q",
                            (json_int_t)n_q, "dim", (json_int_t)d_p, "num_buckets", (json_int_t)k,
                            "pca_components", (json_int_t)z.kept, "pca_cumulative_at_kept",
                            z.cum_at, "explained_var", o.explained_var, "scaling", o.scaling);
    if (!many) {
        json_t *r0 = json_array_get(runs, 0);
        const char *key;
        json_t *v;
        json_object_foreach(r0, key, v) json_object_set(res, key, v);
        json_decref(runs);
    } else {
        /* two passes, as numpy's mean and std */
        double n = (double)n_seeds, mean = 0, smean = 0, var = 0, svar = 0;
        for (size_t s = 0; s < n_seeds; s++) mean += mv[s], smean += sv[s];
        mean /= n, smean /= n;
        for (size_t s = 0; s < n_seeds; s++)
            var += (mv[s] - mean) * (mv[s] - mean), svar += (sv[s] - smean) * (sv[s] - smean);
        var /= n, svar /= n;
        json_object_set_new(res, "mauve_mean", json_real(mean));
        json_object_set_new(res, "mauve_std_population", json_real(sqrt(var)));
        json_object_set_new(res, "mauve_std_sample",
                            json_real(n_seeds > 1 ? sqrt(var * n / (n - 1)) : 0.0));
        json_object_set_new(res, "mauve_star_mean", json_real(smean));
        json_object_set_new(res, "mauve_star_std_population", json_real(sqrt(svar)));
        json_object_set_new(res, "runs", runs);
    }
    cli_output out;
    cli_output_open(&out, common.output, false, false);
    json_dumpf(res, out.fp, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    fputc('\n', out.fp);
    cli_output_commit(&out);
    json_decref(res);
    mauve_prep_free(&z);
    free(pc), free(qc), free(p), free(q), free(mv), free(sv);
    return EXIT_OK;
}
