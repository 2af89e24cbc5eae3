#!/usr/bin/env bats
# fixture-check: the copied reference sets pass case by case; a wrong expectation fails; kinds
# this build cannot run yet are UNSUPPORTED and fail unless --kinds leaves them out.

load helpers

@test "fixture-check: every tokenizer case passes (150 encode + 12 invalid UTF-8)" {
    run -0 fixture-check "$FIX/tokenizer"
    [ "${lines[-1]}" = "162 passed, 0 failed, 0 unsupported, 0 skipped" ]
    [[ "${lines[0]}" == PASS*tokenizer*s000*"max_abs 0"* ]]
}

@test "fixture-check: a case whose reference ids are changed fails, exit 1" {
    mkdir "$BATS_TEST_TMPDIR/tok"
    cp "$FIX/tokenizer/invalid_utf8.jsonl" "$BATS_TEST_TMPDIR/tok/"
    sed '3s/"ids": \[/"ids": [1, /' "$FIX/tokenizer/cases.jsonl" > "$BATS_TEST_TMPDIR/tok/cases.jsonl"
    run -1 fixture-check "$BATS_TEST_TMPDIR/tok"
    [[ "$output" == *"FAIL  tokenizer     s002"* ]]
    [ "${lines[-1]}" = "161 passed, 1 failed, 0 unsupported, 0 skipped" ]
}

@test "fixture-check: both GPT-2 checkpoint variants load to the same parameters" {
    run -0 fixture-check --kinds checkpoint "$FIX/gpt2"
    [[ "$output" == *"PASS  checkpoint    model.safetensors"* ]]
    [[ "$output" == *"PASS  checkpoint    model_variant.safetensors"* ]]
}

@test "fixture-check: both SEDD checkpoints load with the manifest's graph, noise and sizes" {
    run -0 fixture-check --kinds checkpoint "$FIX/sedd"
    [[ "$output" == *"PASS  checkpoint    tiny_absorb_loglinear"* ]]
    [[ "$output" == *"PASS  checkpoint    tiny_uniform_geometric"* ]]
}

@test "fixture-check: a GPT-2 model that is subtly wrong fails (layer-norm eps 1e-6, README: 8.8e-4)" {
    mkdir "$BATS_TEST_TMPDIR/g"
    cp "$FIX/gpt2"/* "$BATS_TEST_TMPDIR/g/"
    chmod u+w "$BATS_TEST_TMPDIR/g/config.json"
    sed -i 's/"layer_norm_epsilon": 1e-05/"layer_norm_epsilon": 1e-06/' "$BATS_TEST_TMPDIR/g/config.json"
    run -1 fixture-check --kinds gpt2-forward "$BATS_TEST_TMPDIR/g"
    [[ "$output" == *"FAIL  gpt2-forward  full.logits"* ]]
}

@test "fixture-check: a directory that is no fixture set is an error" {
    run -1 --separate-stderr fixture-check "$BATS_TEST_TMPDIR"
    [[ "$stderr" == "fixture-check: $BATS_TEST_TMPDIR: not a fixture set"* ]]
}
