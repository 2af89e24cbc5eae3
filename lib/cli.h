/* cli: what every tool in bin/ shares — exit codes, die(), shared options, input and output files.
 * Ownership: cli_output owns the FILE it opened and the temporary file behind an atomic -o FILE.
 * Errors: die()/die_errno() print "<tool>: message" and exit 1; only bin/ calls them. */
#ifndef DLM_CLI_H
#define DLM_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cli_device.h"
#include "err.h"

/* Exit statuses of every tool (README, "Exit status"). */
enum { EXIT_OK = 0, EXIT_DATA = 1, EXIT_USAGE = 2 };

/* Exit-status paragraph that every usage text ends with. */
#define CLI_EXIT_TEXT "Exit status: 0 success, 1 data or I/O error, 2 usage error.\n"

/* Records the tool name for messages (log_set_tool too). Call first in main. */
void cli_init(const char *tool);

/* Flushes stdout, prints "<tool>: <message>" on stderr, exits 1. */
_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* As die(), with ": strerror(errno)" appended. */
_Noreturn void die_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "<tool>: <message>" and "Try '<tool> --help'." on stderr, exits 2. */
_Noreturn void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Options shared by the tools; cli_common_option() parses them, a tool lists the ones it accepts. */
struct cli_common {
    const char *output;   /* -o FILE; NULL or "-" = stdout */
    uint64_t seed;        /* --seed */
    bool seed_given;      /* --seed was given (seed stays 0 otherwise) */
    int threads;          /* --threads / -j; 0 = all cores */
    bool no_provenance;   /* --no-provenance */
    bool force;           /* --force: write binary output to a terminal */
    bool progress;        /* --progress: progress line even when stderr is not a terminal */
};

/* getopt_long codes of the shared long options without a letter (-o, -j, -h keep 'o', 'j',
 * 'h'). A tool's own long-only codes start at 256 and stay below these; its own letters are
 * none of o, j, h. */
enum {
    CLI_OPT_SEED = 0x1000,
    CLI_OPT_NO_PROVENANCE,
    CLI_OPT_FORCE,
    CLI_OPT_PROGRESS,
    CLI_OPT_DEVICE,
    CLI_OPT_PRECISION,
    CLI_OPT_VERSION,
};

/* getopt_long table entries of the shared options: a tool lists exactly the ones it accepts
 * (and "o:", "j:", "h" in its short-option string for the lettered ones). */
#define CLI_OPTION_OUTPUT {"output", required_argument, NULL, 'o'}
#define CLI_OPTION_SEED {"seed", required_argument, NULL, CLI_OPT_SEED}
#define CLI_OPTION_THREADS {"threads", required_argument, NULL, 'j'}
#define CLI_OPTION_NO_PROVENANCE {"no-provenance", no_argument, NULL, CLI_OPT_NO_PROVENANCE}
#define CLI_OPTION_FORCE {"force", no_argument, NULL, CLI_OPT_FORCE}
#define CLI_OPTION_PROGRESS {"progress", no_argument, NULL, CLI_OPT_PROGRESS}
#define CLI_OPTION_DEVICE {"device", required_argument, NULL, CLI_OPT_DEVICE}
#define CLI_OPTION_PRECISION {"precision", required_argument, NULL, CLI_OPT_PRECISION}
#define CLI_OPTION_HELP {"help", no_argument, NULL, 'h'}
#define CLI_OPTION_VERSION {"version", no_argument, NULL, CLI_OPT_VERSION}

/* Handles c, a code getopt_long returned (arg = its optarg), when it is a shared option: -o,
 * --seed (an integer in [0, INT64_MAX]), -j (in [0, 1024]), --no-provenance, --force
 * and --progress are stored in *common, --device and --precision in *dev; -h prints
 * usage(stdout, EXIT_OK) and exits 0, --version prints cli_print_version() and exits 0. A bad
 * value dies with exit 2 naming the option. common or dev may be NULL for a tool that takes none
 * of their options. Call it first for every code; @return true when c was handled, false for
 * the tool's own options and getopt's '?' (the caller's switch handles those). */
bool cli_common_option(int c, const char *arg, struct cli_common *common, struct cli_device *dev,
                       int (*usage)(FILE *, int));

/* For a usage error (getopt has already named the bad option): prints the usage function's
 * synopsis line and "Try '<tool> --help' for more information." on stderr; returns EXIT_USAGE. */
int cli_short_usage(int (*usage)(FILE *, int));

/* Parses an integer option value in [lo, hi] or dies with exit 2 naming the option. */
long long cli_parse_int(const char *option, const char *value, long long lo, long long hi);
/* Parses a finite double in [lo, hi] or dies with exit 2 naming the option. */
double cli_parse_double(const char *option, const char *value, double lo, double hi);

/* Prints "<tool> <version> (commit …)" and the build (CUDA, compiler, flags) on stdout. */
void cli_print_version(void);

/* Opens the positional input: NULL or "-" is stdin. If stdin is a terminal and no file was
 * named, says so with the short usage on stderr and exits 2. Dies on open failure. */
FILE *cli_open_input(const char *path, int (*usage)(FILE *, int));

struct ts_reader;
/* The input of a tool that reads a token stream: the file (or stdin) and its reader. */
typedef struct cli_stream {
    FILE *fp;
    struct ts_reader *rd;
} cli_stream;

/* Opens path as cli_open_input does and reads its header; dies (exit 1) with the reader's
 * message when it is not a valid stream. Close with cli_stream_close(). */
void cli_stream_open(cli_stream *s, const char *path, int (*usage)(FILE *, int));
/* Frees the reader and closes the file (stdin stays open). */
void cli_stream_close(cli_stream *s);

/* An output that is either stdout or a file written atomically (FILE.tmp, renamed on commit). */
typedef struct cli_output {
    FILE *fp;
    char *path;  /* final name, NULL for stdout */
    char *tmp;   /* temporary name, NULL for stdout */
} cli_output;

/* Opens -o PATH (NULL or "-" = stdout). binary=true refuses a terminal unless force. Dies on error. */
void cli_output_open(cli_output *out, const char *path, bool binary, bool force);
/* Flushes and closes; a file output is renamed into place only now. On a write error prints
 * "<tool>: writing output failed: <strerror>" and exits 1 (removing the temporary file). */
void cli_output_commit(cli_output *out);

/* For the status rc of a write to out's stream (e.g. ts_write): returns when rc >= 0; when the
 * stream itself failed, exits like cli_output_commit ("writing output failed: ..."), else dies
 * with e's message. */
void cli_output_check(cli_output *out, int rc, const err_t *e);

struct ts_header;
/* Appends this run ({tool, version, commit, argv, seed, device}) to h's provenance, unless
 * --no-provenance was given. @return 0 or ERR_FAIL. */
int cli_add_provenance(struct ts_header *h, const struct cli_common *common, int argc, char **argv,
                       uint64_t seed, const char *device, err_t *e);

/* Number of threads to use for a --threads value (0 = online cores). */
int cli_threads(int requested);

#endif
