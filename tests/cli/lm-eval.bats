#!/usr/bin/env bats
# lm-eval: the CLI contract; the tiny GPT-2 fixture (vocabulary 1000) is refused with a clear
# error, since the GPT-2 tokenizer's ids reach 50256; a copy of it widened to the GPT-2
# vocabulary (wte rows repeated, numbers meaningless) runs `dataset -f requests | lm-eval`.

load helpers

GPT2="$FIX/gpt2"
FMT="$FIX/eval/formats"

setup() {
    T="$BATS_TEST_TMPDIR"
}

error_from() {
    [ -z "$output" ] || { echo "stdout not empty"; return 1; }
    [[ "$stderr" == "$1: "* ]] || { echo "stderr: $stderr"; return 1; }
}

# widen SRC DST: a copy of a tiny model (GPT-2 or absorbing SEDD, vocabulary 1000) widened to the
# GPT-2 vocabulary: embedding/output rows i -> i % 1000 (SEDD's mask row stays last)
widen() {
    fixturetool widen-vocab "$1" "$2" 50257
}

@test "lm-eval: --help, unknown option, missing or bad --task, no input on a tty" {
    run -0 --separate-stderr lm-eval --help
    [[ "$output" == Usage:* ]]
    [[ "$output" == *"Example:"* ]]
    run -2 --separate-stderr lm-eval --bogus
    [[ "$stderr" == *"Usage:"* ]]
    run -2 --separate-stderr lm-eval -m "$GPT2"
    [[ "$stderr" == "lm-eval: --task T is required"* ]]
    run -2 --separate-stderr lm-eval -m "$GPT2" --task nope /dev/null
    run -2 --separate-stderr lm-eval -m "$GPT2" --task piqa --docs - /dev/null
    run -2 run_on_tty "lm-eval -m '$GPT2' --task piqa"
}

@test "lm-eval: a model smaller than the GPT-2 vocabulary is refused (GPT-2 and SEDD)" {
    run -1 --separate-stderr bash -c "dataset -f requests --task piqa piqa '$FMT/piqa/hf_validation_rows.jsonl' |
        lm-eval --model '$GPT2' --task piqa --limit 3"
    error_from lm-eval
    [[ "$stderr" == *"vocabulary (1000 tokens) is smaller than the tokenizer's (50257)"* ]]
    run -1 --separate-stderr lm-eval -m "$FIX/sedd/tiny_absorb_loglinear" --task piqa /dev/null
    [[ "$stderr" == *"vocabulary (1000 tokens) is smaller"* ]]
}

@test "lm-eval: dataset -f requests | lm-eval on a widened tiny model, piqa and lambada" {
    widen "$GPT2" "$T/w"
    run -0 --separate-stderr bash -c "dataset -f requests --task piqa piqa '$FMT/piqa/hf_validation_rows.jsonl' |
        lm-eval --model '$T/w' --task piqa --limit 3 --docs '$T/docs.jsonl'"
    [ "$(echo "$output" | jq -c '[.task, .n, (.acc >= 0 and .acc <= 1), (.acc_norm_stderr != null)]')" = '["piqa",3,true,true]' ]
    [ "$(wc -l < "$T/docs.jsonl")" -eq 3 ]
    [ "$(jq -s -c 'map(.ll | length) | unique' "$T/docs.jsonl")" = '[2]' ]
    [ "$(jq -s 'all(.[]; (.ll | all(. < 0)) and (.pred == (.ll | index(max))))' "$T/docs.jsonl")" = true ]
    # -j 1 gives the same scores up to the summation order of the threaded matmuls
    dataset -f requests --task piqa piqa "$FMT/piqa/hf_validation_rows.jsonl" |
        lm-eval --model "$T/w" --task piqa --limit 3 -j 1 --docs "$T/docs1.jsonl" > /dev/null
    a=$(jq -s -c '[.[].ll[]]' "$T/docs.jsonl")
    b=$(jq -s -c '[.[].ll[]]' "$T/docs1.jsonl")
    [ "$(jq -n "[$a, $b] | transpose | all(.[]; (.[0] - .[1]) | fabs < 1e-3)")" = true ]
    run -0 --separate-stderr bash -c "dataset -f requests --task lambada_openai lambada '$FMT/lambada_openai/lambada_test.jsonl' |
        lm-eval --model '$T/w' --task lambada_openai --limit 2"
    [ "$(echo "$output" | jq -c '[.n, (.perplexity > 1)]')" = '[2,true]' ]
    # --bos changes the scores; a full disk is an error; --t-samples is for SEDD only
    dataset -f requests --task piqa piqa "$FMT/piqa/hf_validation_rows.jsonl" > "$T/r"
    lm-eval --model "$T/w" --task piqa --limit 1 --bos --docs "$T/bos.jsonl" "$T/r" > /dev/null
    [ "$(jq -c .ll "$T/bos.jsonl")" != "$(head -1 "$T/docs.jsonl" | jq -c .ll)" ]
    run -1 --separate-stderr bash -c "lm-eval --model '$T/w' --task piqa --limit 1 '$T/r' > /dev/full"
    [[ "$stderr" == "lm-eval: writing output failed"* ]]
    run -2 --separate-stderr lm-eval --model "$T/w" --task piqa --t-samples 4 "$T/r"
}

@test "lm-eval: SEDD conditional bound on a widened tiny absorbing model, piqa and lambada" {
    widen "$FIX/sedd/tiny_absorb_loglinear" "$T/s"
    dataset -f requests --task piqa piqa "$FMT/piqa/hf_validation_rows.jsonl" > "$T/r"
    run -0 --separate-stderr lm-eval --model "$T/s" --task piqa --limit 2 -K 4 --seed 1 --docs "$T/d1" "$T/r"
    [ "$(echo "$output" | jq -c '[.scoring, .n, .t_samples, .seed]')" = '["sedd-conditional-bound",2,4,1]' ]
    [ "$(jq -s 'all(.[]; (.ll | all(. < 0)) and (.ll_stderr | all(. >= 0)))' "$T/d1")" = true ]
    lm-eval --model "$T/s" --task piqa --limit 2 -K 4 --seed 1 -j 1 --docs "$T/d2" "$T/r" > /dev/null
    cmp "$T/d1" "$T/d2"  # the SEDD forward gives the same bits for any thread count
    lm-eval --model "$T/s" --task piqa --limit 2 -K 4 --seed 2 --docs "$T/d3" "$T/r" > /dev/null
    ! cmp -s "$T/d1" "$T/d3"
    run -0 --separate-stderr bash -c "dataset -f requests --task lambada_openai lambada '$FMT/lambada_openai/lambada_test.jsonl' |
        lm-eval --model '$T/s' --task lambada_openai --limit 2 -K 2"
    [ "$(echo "$output" | jq -c '[.n, (.perplexity > 1), (.greedy | startswith("parallel"))]')" = '[2,true,true]' ]
}

@test "lm-eval: malformed request lines and the wrong task are errors naming the line" {
    widen "$GPT2" "$T/w"
    dataset -f requests --task piqa piqa "$FMT/piqa/hf_validation_rows.jsonl" | head -1 > "$T/r"
    printf 'not json\n' >> "$T/r"
    run -1 --separate-stderr lm-eval -m "$T/w" --task piqa "$T/r"
    error_from lm-eval
    [[ "$stderr" == "lm-eval: $T/r:2: "* ]]
    run -1 --separate-stderr lm-eval -m "$T/w" --task arc_easy "$T/r"
    [[ "$stderr" == *"r:1: not a arc_easy request"* ]]
    printf '{"task":"piqa","index":0,"requests":[["a"]],"choices":["x"],"gold":0}\n' > "$T/bad"
    run -1 --separate-stderr lm-eval -m "$T/w" --task piqa "$T/bad"
    [[ "$stderr" == *"bad:1: request 0 must be [context, continuation]"* ]]
    : > "$T/empty"
    run -1 --separate-stderr lm-eval -m "$T/w" --task piqa "$T/empty"
    [[ "$stderr" == *"no requests"* ]]
}
