#!/usr/bin/env bats
# fixture-check on the evaluation set: every kind this build runs passes case by case.

load helpers

KINDS=eval-mauve,eval-diversity,eval-ppl,eval-lmeval,eval-formats

@test "fixture-check: the eval kinds pass (mauve, diversity, detokenizers+chunking, lm-eval, formats)" {
    run -0 fixture-check "$FIX/eval"   # every kind, the ppl aggregation rules included
    [[ "${lines[-1]}" == *" passed, 0 failed, 0 unsupported, "* ]]
    [[ "$output" == *"PASS  eval-ppl-agg  genppl:sedd_mean_of_batch_mean_of_exp "* ]]
    [[ "$output" == *"PASS  eval-ppl-agg  bound:order_D_mean_of_exp_per_t_sample "* ]]
    run -0 fixture-check --kinds "$KINDS" "$FIX/eval"
    [[ "${lines[-1]}" == *" passed, 0 failed, 0 unsupported, "* ]]
    [[ "$output" == *"PASS  eval-mauve    paper_shape_1000x256:seeds1-5(5/5 counts exact)"* ]]
    [[ "$output" == *"PASS  eval-ppl      detok:lm1b"* ]]
    [[ "$output" == *"PASS  eval-lmeval   winogrande:aggregate"* ]]
}

@test "fixture-check: a changed MAUVE or request string fails" {
    mkdir -p "$BATS_TEST_TMPDIR/e/mauve" "$BATS_TEST_TMPDIR/e/lmeval"
    sed '1s/"mauve": 1.0,/"mauve": 0.75,/' "$FIX/eval/mauve/hist_cases.jsonl" > "$BATS_TEST_TMPDIR/e/mauve/hist_cases.jsonl"
    sed '1s/Answer:/Answer: /' "$FIX/eval/lmeval/piqa_cases.jsonl" > "$BATS_TEST_TMPDIR/e/lmeval/piqa_cases.jsonl"
    cp "$FIX/eval/lmeval/piqa_aggregate.json" "$BATS_TEST_TMPDIR/e/lmeval/"
    run -1 fixture-check --kinds eval-mauve,eval-lmeval "$BATS_TEST_TMPDIR/e"
    [[ "$output" == *"FAIL  eval-mauve    identical_uniform4"* ]]
    [[ "$output" == *"FAIL  eval-lmeval   piqa:doc1"* ]]
}
