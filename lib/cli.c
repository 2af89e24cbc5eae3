/* cli: shared tool plumbing (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "device_plugin.h"
#include "log.h"
#include "tstream.h"
#include "version.h"

static const char *tool_name = "dlmkit";

void cli_init(const char *tool)
{
    tool_name = tool;
    log_set_tool(tool);
}

static void vreport(const char *fmt, va_list ap, int saved_errno)
{
    fflush(stdout);
    fprintf(stderr, "%s: ", tool_name);
    vfprintf(stderr, fmt, ap);
    if (saved_errno) fprintf(stderr, ": %s", strerror(saved_errno));
    fputc('\n', stderr);
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap, 0);
    va_end(ap);
    exit(EXIT_DATA);
}

void die_errno(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap, saved);
    va_end(ap);
    exit(EXIT_DATA);
}

void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap, 0);
    va_end(ap);
    fprintf(stderr, "Try '%s --help' for more information.\n", tool_name);
    exit(EXIT_USAGE);
}

int cli_short_usage(int (*usage)(FILE *, int))
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (mem) {
        usage(mem, EXIT_USAGE);
        fclose(mem);
        fprintf(stderr, "%.*s\n", (int)strcspn(text, "\n"), text);
        free(text);
    }
    fprintf(stderr, "Try '%s --help' for more information.\n", tool_name);
    return EXIT_USAGE;
}

long long cli_parse_int(const char *option, const char *value, long long lo, long long hi)
{
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 0);
    if (errno || end == value || *end || v < lo || v > hi)
        die_usage("invalid value '%s' for %s (expected an integer in [%lld, %lld])", value,
                  option, lo, hi);
    return v;
}

double cli_parse_double(const char *option, const char *value, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || !isfinite(v) || v < lo || v > hi)
        die_usage("invalid value '%s' for %s (expected a number in [%g, %g])", value, option,
                  lo, hi);
    return v;
}

void cli_print_version(void)
{
    printf("%s (dlmkit) %s\n", tool_name, DLM_VERSION);
    printf("commit: %s\ncuda: %s (%s)\ncompiler: %s\ncflags: %s\n", DLM_COMMIT, DLM_CUDA,
           device_build_info(), DLM_CC, DLM_CFLAGS);
}

bool cli_common_option(int c, const char *arg, struct cli_common *common, struct cli_device *dev,
                       int (*usage)(FILE *, int))
{
    switch (c) {
    case 'h': exit(usage(stdout, EXIT_OK));
    case CLI_OPT_VERSION: cli_print_version(); exit(EXIT_OK);
    case CLI_OPT_DEVICE: if (!dev) return false; dev->device = arg; return true;
    case CLI_OPT_PRECISION: if (!dev) return false; dev->precision = arg; return true;
    }
    if (!common) return false;
    switch (c) {
    case 'o': common->output = arg; return true;
    case CLI_OPT_SEED:
        common->seed = (uint64_t)cli_parse_int("--seed", arg, 0, INT64_MAX);
        common->seed_given = true;
        return true;
    case 'j': common->threads = (int)cli_parse_int("--threads", arg, 0, 1024); return true;
    case CLI_OPT_NO_PROVENANCE: common->no_provenance = true; return true;
    case CLI_OPT_FORCE: common->force = true; return true;
    case CLI_OPT_PROGRESS: common->progress = true; return true;
    default: return false;
    }
}

FILE *cli_open_input(const char *path, int (*usage)(FILE *, int))
{
    if (!path || strcmp(path, "-") == 0) {
        if (!path && isatty(STDIN_FILENO)) {
            fprintf(stderr, "%s: no input file given and stdin is a terminal\n", tool_name);
            exit(cli_short_usage(usage));
        }
        return stdin;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) die_errno("cannot open '%s'", path);
    return fp;
}

void cli_stream_open(cli_stream *s, const char *path, int (*usage)(FILE *, int))
{
    err_t e;
    s->fp = cli_open_input(path, usage);
    s->rd = ts_reader_open(s->fp, path, &e);
    if (!s->rd) die("%s", e.msg);
}

void cli_stream_close(cli_stream *s)
{
    ts_reader_free(s->rd);
    if (s->fp != stdin) fclose(s->fp);
    s->rd = NULL;
    s->fp = NULL;
}

/* The file output not yet committed, removed if the tool exits early (die). */
static char *uncommitted_tmp;

static void remove_uncommitted(void)
{
    if (uncommitted_tmp) remove(uncommitted_tmp);
}

void cli_output_open(cli_output *out, const char *path, bool binary, bool force)
{
    memset(out, 0, sizeof *out);
    if (!path || strcmp(path, "-") == 0) {
        if (binary && !force && !path && isatty(STDOUT_FILENO))
            die_usage("refusing to write binary output to a terminal (use -o FILE or --force)");
        out->fp = stdout;
        return;
    }
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        /* a device or a pipe (/dev/null, /dev/full, a fifo): write to it directly; renaming a
         * temporary file over it would replace the device with a regular file */
        out->fp = fopen(path, "wb");
        if (!out->fp) die_errno("cannot open '%s'", path);
        return;
    }
    size_t n = strlen(path);
    out->path = strdup(path);
    out->tmp = malloc(n + 16);
    if (!out->path || !out->tmp) die("out of memory");
    snprintf(out->tmp, n + 16, "%s.tmp.%ld", path, (long)getpid());
    out->fp = fopen(out->tmp, "wb");
    if (!out->fp) die_errno("cannot create '%s'", out->tmp);
    static bool registered;
    if (!registered) atexit(remove_uncommitted);
    registered = true;
    uncommitted_tmp = out->tmp;
}

void cli_output_commit(cli_output *out)
{
    int failed = ferror(out->fp);
    int saved = errno;
    if (fflush(out->fp) != 0) { failed = 1; saved = errno; }
    if (out->fp == stdout) {
        if (fclose(stdout) != 0 && errno != EBADF) { failed = 1; saved = errno; }
    } else if (fclose(out->fp) != 0) {
        failed = 1;
        saved = errno;
    }
    if (failed) {
        errno = saved ? saved : EIO;
        die_errno("writing output failed");
    }
    if (out->tmp && rename(out->tmp, out->path) != 0) die_errno("cannot rename '%s'", out->tmp);
    if (uncommitted_tmp == out->tmp) uncommitted_tmp = NULL;
    free(out->tmp);
    free(out->path);
    memset(out, 0, sizeof *out);
}

void cli_output_check(cli_output *out, int rc, const err_t *e)
{
    if (rc >= 0) return;
    if (ferror(out->fp)) cli_output_commit(out); /* reports the write error and exits */
    die("%s", e->msg);
}

int cli_add_provenance(struct ts_header *h, const struct cli_common *common, int argc, char **argv,
                       uint64_t seed, const char *device, err_t *e)
{
    if (common->no_provenance) return 0;
    return ts_header_add_provenance(h, tool_name, DLM_VERSION, DLM_COMMIT, argc, argv, seed, device, e);
}

int cli_threads(int requested)
{
    if (requested > 0) return requested;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
