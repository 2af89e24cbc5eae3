#!/usr/bin/env bats
# gpt2-score, gpt2-sample, ppl on the tiny GPT-2 fixture: the reference cases, determinism
# (threads, batch size, shards merged with cat), scoring options, and broken inputs (exit 1 with
# "tool: ..." on stderr and nothing on stdout).

load helpers

GPT2="$FIX/gpt2"

setup() {
    T="$BATS_TEST_TMPDIR"
}

copy_gpt2() {
    mkdir -p "$T/ck"
    cp "$GPT2/config.json" "$GPT2/model.safetensors" "$T/ck/"
    chmod u+w "$T/ck/model.safetensors" "$T/ck/config.json"
}

# fails with the message when stdout is not empty or stderr does not start with "$1:"
error_from() {
    [ -z "$output" ] || { echo "stdout not empty"; return 1; }
    [[ "$stderr" == "$1: "* ]] || { echo "stderr: $stderr"; return 1; }
}

@test "gpt2: fixture-check passes every case of the GPT-2 set" {
    run -0 fixture-check "$GPT2"
    [[ "${lines[-1]}" == *" passed, 0 failed, 0 unsupported, 0 skipped" ]]
    for c in full.logits full.hidden_states short.logprobs_next kv0.step_logits kv1.prefill_cache \
             padded.features sliding.token_nll sliding.ppl_hf_doc_current sliding.ppl_exact_token_mean \
             full@model_variant.safetensors.logits; do
        [[ "$output" == *"PASS  gpt2-"*" $c "* ]] || { echo "missing $c"; return 1; }
    done
}

@test "gpt2: --help, unknown options, missing --model" {
    for t in gpt2-score gpt2-sample ppl; do
        run -0 --separate-stderr "$t" --help
        [[ "$output" == Usage:* ]]
        run -2 --separate-stderr "$t" --bogus
        [[ "$stderr" == *"Usage:"* || "$stderr" == *"Try"* ]]
    done
    run -2 --separate-stderr gpt2-score /dev/null
    [[ "$stderr" == "gpt2-score: --model DIR is required"* ]]
    run -2 --separate-stderr gpt2-sample -m "$GPT2" --top-p 0
    run -2 --separate-stderr gpt2-sample -m "$GPT2" --rng-bits 16
}

@test "gpt2-sample: byte-identical for 1 vs 2 threads and --batch 1, 3, 8" {
    gpt2-sample -m "$GPT2" -n 8 -l 40 --seed 7 --no-provenance -j 1 -b 8 > "$T/a"
    for args in "-j 2 -b 8" "-j 2 -b 1" "-j 1 -b 3"; do
        gpt2-sample -m "$GPT2" -n 8 -l 40 --seed 7 --no-provenance $args > "$T/b"
        cmp "$T/a" "$T/b"
    done
    gpt2-sample -m "$GPT2" -n 8 -l 40 --seed 8 --no-provenance > "$T/c"
    ! cmp -s "$T/a" "$T/c"
}

@test "gpt2-sample: -n 8 equals two shards of 4 merged with cat (same records, same bytes)" {
    gpt2-sample -m "$GPT2" -n 8 -l 30 --seed 3 --top-k 50 --no-provenance > "$T/all"
    gpt2-sample -m "$GPT2" -n 4 -l 30 --seed 3 --top-k 50 --no-provenance > "$T/s0"
    gpt2-sample -m "$GPT2" -n 4 --first-id 4 -l 30 --seed 3 --top-k 50 --no-provenance > "$T/s1"
    # the second shard's header repeats the first; without it the bytes are the single run's
    gpt2-sample -m "$GPT2" -n 0 --no-provenance > "$T/h"
    { cat "$T/s0"; tail -c +"$(($(stat -c %s "$T/h") + 1))" "$T/s1"; } | cmp - "$T/all"
    cat "$T/s0" "$T/s1" | detokenize --jsonl > "$T/j1"
    detokenize --jsonl "$T/all" | cmp - "$T/j1"
}

@test "gpt2-sample: prompts keep id and fields and get prompt_length; greedy is deterministic" {
    gpt2-sample -m "$GPT2" -n 2 -l 10 --seed 1 --no-provenance > "$T/p"
    gpt2-sample -m "$GPT2" --prompts "$T/p" -l 5 -t 0 --no-provenance > "$T/q"
    gpt2-sample -m "$GPT2" --prompts "$T/p" -l 5 -t 0 --no-provenance -b 1 -j 1 | cmp - "$T/q"
    run -0 detokenize --jsonl "$T/q"
    [[ "${lines[0]}" == '{"id":0,"tokens":['* ]]
    [[ "${lines[0]}" == *'"prompt_length":10'* ]]
    run -0 stream-info "$T/q"
    [[ "$output" == *'"records": 2'* ]]
}

@test "gpt2-score + ppl: counts, --bos, --first, --from, sliding window, --logprobs" {
    gpt2-sample -m "$GPT2" -n 3 -l 64 --seed 2 --no-provenance > "$T/s"
    run -0 sh -c "gpt2-score -m '$GPT2' '$T/s' | ppl"
    [[ "$output" == *'"records": 3, "tokens": 189,'* ]]   # 3 x 63 predictions
    run -0 sh -c "gpt2-score -m '$GPT2' --bos --window 64 --stride 32 '$T/s' | ppl"
    [[ "$output" == *'"tokens": 192,'* ]]                 # 65 tokens: the sliding path
    run -0 sh -c "gpt2-score -m '$GPT2' --first 50 --from 10 '$T/s' | ppl"
    [[ "$output" == *'"tokens": 120,'* ]]                 # positions 10..49
    run -0 sh -c "gpt2-score -m '$GPT2' --logprobs --from 60 '$T/s' | detokenize --jsonl"
    [[ "${lines[0]}" == *'"n_scored":4,"score_from":60,"logprobs":[-'*,*,*,*'],"text"'* ]]
    run -0 sh -c "gpt2-score -m '$GPT2' --hf-weighting --window 32 --stride 8 '$T/s' | ppl"
    [[ "$output" == *'"ppl_hf": '* && "$output" == *'"tokens": 189,'* ]]
}

@test "gpt2-score: the score of a record does not depend on the batch it is in" {
    gpt2-sample -m "$GPT2" -n 5 -l 40 --seed 4 --no-provenance > "$T/s"
    gpt2-score -m "$GPT2" -b 1 --no-provenance "$T/s" | ppl > "$T/1"
    gpt2-score -m "$GPT2" -b 5 --no-provenance "$T/s" | ppl > "$T/5"
    # equal to 1e-5 relative: sgemm rounds differently with another M (measured 1e-7), while
    # scoring a wrong row or position changes the perplexity by O(1)
    run -0 jq -n --slurpfile a "$T/1" --slurpfile b "$T/5" \
        '($a[0].ppl - $b[0].ppl) | fabs < 1e-5 * $a[0].ppl'
    [ "$output" = true ]
}

@test "gpt2 bad input: missing tensor, wrong shape, truncated file" {
    gpt2-sample -m "$GPT2" -n 1 -l 5 > "$T/s"
    copy_gpt2
    sed -i 's/"ln_f.bias"/"ln_f.bixs"/' "$T/ck/model.safetensors"
    run -1 --separate-stderr gpt2-score -m "$T/ck" "$T/s"
    error_from gpt2-score
    [[ "$stderr" == *"ln_f.bias"* ]]
    copy_gpt2
    sed -i 's/"n_embd": 64/"n_embd": 32/' "$T/ck/config.json"
    run -1 --separate-stderr gpt2-sample -m "$T/ck"
    error_from gpt2-sample
    [[ "$stderr" == *"tensor 'wte.weight' has shape [1000, 64], expected [1000, 32]"* ]]
    copy_gpt2
    for n in 0 9 3000 500000; do
        head -c "$n" "$GPT2/model.safetensors" > "$T/ck/model.safetensors"
        run -1 --separate-stderr gpt2-score -m "$T/ck" "$T/s"
        error_from gpt2-score
        [[ "$stderr" == *"model.safetensors"* ]]
    done
}

@test "gpt2 bad input: token id >= vocabulary, prompt longer than the context, bad streams" {
    printf 'hello world' | tokenize --no-provenance > "$T/big"   # ids 31373, 995 > 1000
    run -1 --separate-stderr gpt2-score -m "$GPT2" "$T/big"
    error_from gpt2-score
    [[ "$stderr" == *"token id 31373"*"outside the vocabulary (1000)"* ]]
    run -1 --separate-stderr gpt2-sample -m "$GPT2" --prompts "$T/big" -l 3
    error_from gpt2-sample
    yes a | head -n 100 | tr '\n' ' ' | tokenize --no-provenance > "$T/long"   # 101 tokens, ids < 1000
    run -1 --separate-stderr gpt2-sample -m "$GPT2" --prompts "$T/long" -l 3
    error_from gpt2-sample
    [[ "$stderr" == *"longer than the context (64)"* ]]
    run -1 --separate-stderr gpt2-sample -m "$GPT2" -l 65
    error_from gpt2-sample
    run -2 --separate-stderr gpt2-score -m "$GPT2" --window 65 "$T/long"
    run -0 sh -c "gpt2-score -m '$GPT2' '$T/long' | ppl"     # longer than the context: sliding
    [[ "$output" == *'"tokens": 100,'* ]]
    head -c 20 "$T/long" > "$T/cut"
    run -1 --separate-stderr gpt2-score -m "$GPT2" "$T/cut"
    error_from gpt2-score
    run -1 --separate-stderr ppl "$T/long"
    error_from ppl
    [[ "$stderr" == *"needs the fields nll and n_scored"* ]]
    run -1 --separate-stderr ppl < /dev/null
    error_from ppl
}

@test "gpt2: writing to /dev/full exits 1" {
    run -1 --separate-stderr sh -c "gpt2-sample -m '$GPT2' -n 2 -l 5 > /dev/full"
    [[ "$stderr" == "gpt2-sample: writing output failed"* ]]
    gpt2-sample -m "$GPT2" -n 2 -l 5 > "$T/s"
    run -1 --separate-stderr sh -c "gpt2-score -m '$GPT2' '$T/s' > /dev/full"
    [[ "$stderr" == "gpt2-score: writing output failed"* ]]
}
