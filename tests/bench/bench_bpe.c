/* bench_bpe: throughput of lib/bpe on one file, single-threaded and split over threads.
 * Usage: bench_bpe FILE [THREADS [REPEATS]]  (vocabulary: $DLMKIT_VOCAB or data/gpt2)
 * Each repeat uses fresh encoder states, so the word cache starts cold as in a real run; the
 * best repeat is reported. Threads get contiguous pieces of the text cut between the two
 * newlines of a "\n\n" that has non-space on both sides: the pre-tokenizer splits
 * "x\n\ny" as "x" "\n" "\n" "y", so such a cut cannot change the tokens (checked: the counts
 * must equal the single-thread count). Prints one line per configuration:
 *   bpe threads=N bytes=B tokens=T seconds=S mbps=M */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bpe.h"
#include "utf8.h"

struct piece {
    const bpe_t *bpe;
    const char *text;
    size_t len, tokens;
    int rc;
    err_t err;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *encode_piece(void *arg)
{
    struct piece *p = arg;
    bpe_enc_t *enc = bpe_enc_new(p->bpe, &p->err);
    struct bpe_ids ids = {0};
    p->rc = enc ? bpe_encode(enc, p->text, p->len, &ids, &p->err) : ERR_FAIL;
    p->tokens = ids.n;
    bpe_ids_free(&ids);
    bpe_enc_free(enc);
    return NULL;
}

static int is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* A cut point near target: just after the first '\n' of a "\n\n" between non-spaces. */
static size_t cut_near(const char *s, size_t n, size_t target)
{
    for (size_t i = target; i + 2 < n; i++)
        if (s[i] == '\n' && s[i + 1] == '\n' && i > 0 && !is_space(s[i - 1]) && !is_space(s[i + 2]))
            return i + 1;
    return n;
}

static int run(const bpe_t *b, const char *text, size_t len, int threads, int repeats,
               size_t *tokens, double *best)
{
    struct piece p[64];
    size_t start = 0;
    for (int t = 0; t < threads; t++) {
        size_t end =
            t == threads - 1 ? len : cut_near(text, len, len / (size_t)threads * (size_t)(t + 1));
        if (end < start) end = start;
        p[t] = (struct piece){.bpe = b, .text = text + start, .len = end - start};
        start = end;
    }
    *best = 1e30;
    for (int r = 0; r < repeats; r++) {
        pthread_t tid[64];
        double t0 = now();
        for (int t = 0; t < threads; t++) pthread_create(&tid[t], NULL, encode_piece, &p[t]);
        *tokens = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            if (p[t].rc < 0) {
                fprintf(stderr, "bench_bpe: %s\n", p[t].err.msg);
                return -1;
            }
            *tokens += p[t].tokens;
        }
        double dt = now() - t0;
        if (dt < *best) *best = dt;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_bpe FILE [THREADS [REPEATS]]\n");
        return 2;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 2, repeats = argc > 3 ? atoi(argv[3]) : 3;
    if (threads < 1 || threads > 64 || repeats < 1) {
        fprintf(stderr, "bench_bpe: THREADS must be 1..64, REPEATS >= 1\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)sz + 1);
    if (sz < 0 || !text || fread(text, 1, (size_t)sz, f) != (size_t)sz) {
        fprintf(stderr, "bench_bpe: cannot read %s\n", argv[1]);
        return 1;
    }
    fclose(f);
    size_t len = (size_t)sz;
    if (utf8_validate(text, len) != len) {
        fprintf(stderr, "bench_bpe: %s is not valid UTF-8\n", argv[1]);
        return 1;
    }
    const char *dir = getenv("DLMKIT_VOCAB");
    err_t e = {{0}};
    bpe_t *b = bpe_load(dir && *dir ? dir : "data/gpt2", &e);
    if (!b) {
        fprintf(stderr, "bench_bpe: %s\n", e.msg);
        return 1;
    }
    size_t tok1 = 0, tokn = 0;
    double t1, tn;
    if (run(b, text, len, 1, repeats, &tok1, &t1) < 0) return 1;
    printf("bpe threads=1 bytes=%zu tokens=%zu seconds=%.4f mbps=%.2f\n", len, tok1, t1,
           len / t1 / 1e6);
    const char *dump = getenv("BPE_IDS");
    if (dump && *dump) {
        bpe_enc_t *enc = bpe_enc_new(b, &e);
        struct bpe_ids ids = {0};
        FILE *o = fopen(dump, "wb");
        if (!enc || !o || bpe_encode(enc, text, len, &ids, &e) < 0 ||
            fwrite(ids.v, sizeof *ids.v, ids.n, o) != ids.n || fclose(o) != 0) {
            fprintf(stderr, "bench_bpe: cannot write the ids to %s\n", dump);
            return 1;
        }
        bpe_ids_free(&ids);
        bpe_enc_free(enc);
    }
    if (threads > 1) {
        if (run(b, text, len, threads, repeats, &tokn, &tn) < 0) return 1;
        printf("bpe threads=%d bytes=%zu tokens=%zu seconds=%.4f mbps=%.2f\n", threads, len, tokn,
               tn, len / tn / 1e6);
        if (tokn != tok1) {
            fprintf(stderr, "bench_bpe: %d threads gave %zu tokens, 1 thread %zu\n", threads, tokn,
                    tok1);
            return 1;
        }
    }
    bpe_free(b);
    free(text);
    return 0;
}
