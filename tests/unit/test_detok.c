/* detok, dataset chunking, lmeval: hand-written cases of each rule. */
#include <stdlib.h>
#include <string.h>

#include "../../lib/dataset.h"
#include "../../lib/detok.h"
#include "../../lib/lmeval.h"
#include "tap.h"

static int check(detok_kind k, const char *in, const char *want)
{
    err_t e;
    char *got = detok_apply(k, in, strlen(in), NULL, &e);
    int ok = got && strcmp(got, want) == 0;
    if (!ok) NOTE("got '%s' want '%s'", got ? got : e.msg, want);
    free(got);
    return ok;
}

static uint32_t blocks[16][8];
static size_t n_blocks, block_len[16];
static int collect(const uint32_t *t, size_t n, void *ctx, err_t *e)
{
    (void)ctx, (void)e;
    memcpy(blocks[n_blocks], t, n * sizeof *t);
    block_len[n_blocks++] = n;
    return 0;
}

int main(void)
{
    CHECK(check(DETOK_WIKITEXT, "1 @,@ 834 and 3 @.@ 5 ( big )", "1,834 and 3.5 (big)"), "wt @,@ @.@ brackets");
    CHECK(check(DETOK_WIKITEXT, " = = Heading = = \n", " == Heading ==\n"), "wt heading");
    CHECK(check(DETOK_PTB, "mr. brown 's co. did n't pay $ N N N", "mr. brown's co. didn't pay $1 1 N"),
          "ptb rules (last N has no trailing space)");
    CHECK(check(DETOK_LM1B, "see http : / / a.org now ?", "see http://a.org now?"), "lm1b url and ?");
    CHECK(check(DETOK_LAMBADA, "  \xe2\x80\x9chi\xe2\x80\x9d  ", "\n\"hi\""), "lambada quotes and strip");
    char s[] = "\xc2\xa0 x \n";
    CHECK(detok_strip(s) == 1 && strcmp(s, "x") == 0, "Python strip of NBSP");

    uint32_t r0[] = {1, 2, 3}, r1[] = {4}, r2[] = {5, 6};
    const uint32_t *recs[] = {r0, r1, r2};
    size_t lens[] = {3, 1, 2};
    dataset_chunk_opts o = DATASET_CHUNK_DEFAULT;
    o.block = 4, o.eos = 9, o.num_proc = 1;
    err_t e;
    CHECK(dataset_chunk(recs, lens, 3, &o, collect, NULL, &e) == 0 && n_blocks == 2 &&
              blocks[0][3] == 9 && blocks[1][0] == 4 && blocks[1][3] == 6,
          "sedd: [1 2 3 9] [4 9 5 6], remainder [9] dropped");
    n_blocks = 0;
    o.num_proc = 2; /* shards [r0 r1] [r2]: [1 2 3 9] [4 9 | dropped], [5 6 9 | dropped] */
    CHECK(dataset_chunk(recs, lens, 3, &o, collect, NULL, &e) == 0 && n_blocks == 1,
          "two shards drop their own tails");
    n_blocks = 0;
    o.num_proc = 1, o.mode = DATASET_CHUNK_MDLM_WRAP, o.bos = 8;
    CHECK(dataset_chunk(recs, lens, 3, &o, collect, NULL, &e) == 0 && n_blocks == 4 &&
              blocks[0][0] == 8 && blocks[0][1] == 1 && blocks[0][3] == 9 && block_len[0] == 4,
          "mdlm wrap: pieces of 2 -> [8 1 2 9] [8 3 9 9] [8 4 9 9] [8 5 6 9]");

    json_t *row = json_pack("{s:s,s:s,s:s,s:s,s:[s,s]}", "activity_label", "Cooking", "ctx_a",
                            "A man [title] cooks.", "ctx_b", "then the DJ", "label", "1",
                            "endings", "[substeps] Water boils.", "caf\xc3\xa9");
    lmeval_doc d;
    CHECK(lmeval_build(LMEVAL_HELLASWAG, row, &d, &e) == 0, "hellaswag built");
    CHECK(strcmp(d.context[0], "Cooking: A man. cooks. Then the dj") == 0, "ctx '%s'", d.context[0]);
    CHECK(strcmp(d.continuation[0], "  Water boils.") == 0, "two-space continuation");
    CHECK(lmeval_utf8_len(d.choices[1]) == 4, "cafe is 4 code points");
    double ll[2] = {-4.0, -4.0};
    bool g[2] = {false, false};
    lmeval_scores sc;
    lmeval_score(&d, ll, g, &sc);
    CHECK(sc.pred == 0, "a tie keeps the first index");
    ll[1] = -2.0; /* -4/13 > -2/4: acc_norm picks the long choice, acc the short one */
    lmeval_score(&d, ll, g, &sc);
    CHECK(sc.pred == 1 && sc.pred_norm == 0 && sc.acc == 1 && sc.acc_norm == 0,
          "acc_norm divides by code points");
    lmeval_doc_free(&d);
    json_decref(row);
    row = json_pack("{s:s,s:s,s:s,s:s}", "sentence", "The cat hid from _ 's owner.", "option1",
                    "Tom", "option2", "Ann", "answer", "2");
    CHECK(lmeval_build(LMEVAL_WINOGRANDE, row, &d, &e) == 0 && d.gold == 1 &&
              strcmp(d.context[1], "The cat hid from Ann") == 0 &&
              strcmp(d.continuation[1], " 's owner.") == 0,
          "winogrande partial evaluation");
    lmeval_doc_free(&d);
    json_decref(row);
    return tap_done();
}
