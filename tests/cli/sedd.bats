#!/usr/bin/env bats
# sedd-sample and sedd-score on the tiny fixture models: every fixture case passes; samples are
# byte-identical across threads, batch sizes and shards merged with cat; conditioning keeps the
# given tokens; the bound carries nll / n_scored / nll_stderr; the CLI contract.

load helpers

ABSORB="$FIX/sedd/tiny_absorb_loglinear"
UNIFORM="$FIX/sedd/tiny_uniform_geometric"

@test "fixture-check: every SEDD case passes (forward, graph, noise, steps, loss, likelihood, traj)" {
    run -0 fixture-check "$FIX/sedd"
    [[ "${lines[-1]}" == *" passed, 0 failed, 0 unsupported, 0 skipped" ]]
    for kind in sedd-forward sedd-graph sedd-noise sedd-steps sedd-loss sedd-likelihood sedd-traj; do
        [[ "$output" == *"PASS  $kind"* ]] || { echo "no $kind"; false; }
    done
    [[ "$output" != *FAIL* ]]
}

# Records of a stream without its header (with --no-provenance every run below writes the same
# header bytes, so a merged stream is the concatenation of these plus one header per shard).
records() {
    local hl
    hl=$(sedd-sample -m "$1" --length 24 --no-provenance -n 0 | wc -c)
    tail -c +$((hl + 1))
}

@test "sedd-sample: the same bytes for 1 and 2 threads, --batch 1 and 8, -n 8 and two shards" {
    for m in "$ABSORB" "$UNIFORM"; do
        for s in euler analytic; do
            a="-m $m --steps 6 --length 24 --seed 3 --sampler $s --no-provenance"
            sedd-sample $a -n 8 -j 1 --batch 1 > "$BATS_TEST_TMPDIR/one"
            sedd-sample $a -n 8 -j 2 --batch 8 > "$BATS_TEST_TMPDIR/two"
            cmp "$BATS_TEST_TMPDIR/one" "$BATS_TEST_TMPDIR/two"
            sedd-sample $a -n 4 > "$BATS_TEST_TMPDIR/s1"
            sedd-sample $a -n 4 --first-id 4 --batch 3 > "$BATS_TEST_TMPDIR/s2"
            cat "$BATS_TEST_TMPDIR/s1" "$BATS_TEST_TMPDIR/s2" > "$BATS_TEST_TMPDIR/merged"
            run -0 stream-info "$BATS_TEST_TMPDIR/merged"
            [[ "$output" == *'"records": 8'* ]]
            { records "$m" < "$BATS_TEST_TMPDIR/s1"; records "$m" < "$BATS_TEST_TMPDIR/s2"; } \
                > "$BATS_TEST_TMPDIR/shards"
            records "$m" < "$BATS_TEST_TMPDIR/one" > "$BATS_TEST_TMPDIR/whole"
            cmp "$BATS_TEST_TMPDIR/whole" "$BATS_TEST_TMPDIR/shards"
        done
    done
}

@test "sedd-sample: another seed or --sampling-precision 32 gives other samples" {
    a="-m $ABSORB --steps 6 --length 24 --no-provenance -n 4"
    sedd-sample $a --seed 1 > "$BATS_TEST_TMPDIR/a"
    sedd-sample $a --seed 2 > "$BATS_TEST_TMPDIR/b"
    sedd-sample $a --seed 1 --sampling-precision 32 > "$BATS_TEST_TMPDIR/c"
    ! cmp -s "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b"
    ! cmp -s "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/c"
    run -0 stream-info "$BATS_TEST_TMPDIR/a"
    [[ "$output" == *'"records": 4'* && "$output" == *'"tokens": 96'* ]]
}

@test "sedd-sample: a prefix, a suffix and scattered positions are kept" {
    for m in "$ABSORB" "$UNIFORM"; do
        printf '{"text":"a b c"}\n{"text":"d e"}\n' | tokenize --jsonl > "$BATS_TEST_TMPDIR/p"
        run -0 bash -c "sedd-sample -m $m --steps 4 --length 16 '$BATS_TEST_TMPDIR/p' | detokenize --jsonl"
        [ "${#lines[@]}" -eq 2 ]
        [[ "${lines[0]}" == '{"id":0,"tokens":[64,275,269,'* ]]
        [[ "${lines[1]}" == '{"id":1,"tokens":[67,304,'* ]]
        [ "$(echo "${lines[0]}" | jq '.tokens | length')" -eq 16 ]
    done
}

@test "sedd-sample: --keep-prefix and --keep-suffix infill between a record's ends" {
    printf '{"text":"a b c d e f g h"}\n' | tokenize --jsonl > "$BATS_TEST_TMPDIR/p"
    for m in "$ABSORB" "$UNIFORM"; do
        run -0 bash -c "sedd-sample -m $m --steps 4 --length 14 --keep-prefix 2 --keep-suffix 3 '$BATS_TEST_TMPDIR/p' | detokenize --jsonl"
        [ "$(echo "$output" | jq -c '[(.tokens | length), .tokens[0:2], .tokens[11:14]]')" = '[14,[64,275],[277,308,289]]' ]
    done
    run -2 --separate-stderr sedd-sample -m "$ABSORB" --keep-suffix 3
    run -1 --separate-stderr sedd-sample -m "$ABSORB" --length 4 --keep-suffix 3 "$BATS_TEST_TMPDIR/p"
    [[ "$stderr" == *"record 0: 8 kept tokens do not fit in --length 4"* ]]
}

@test "sedd-sample: positions and suffix fields place the kept tokens" {
    # one record {"id":5,"tokens":[11,12],"positions":[3,9],"suffix":[7,8]} after a gpt2 header,
    # written byte by byte (msgpack)
    { printf '\x87\xa5magic\xaddlmkit-tokens\xaeformat_version\x01\xa4kind\xa6tokens'
      printf '\xa9tokenizer\xa4gpt2\xaavocab_size\xcd\xc4\x51\xa3eot\xcd\xc4\x50\xaaprovenance\x90'
      printf '\x84\xa2id\x05\xa6tokens\x92\x0b\x0c\xa9positions\x92\x03\x09\xa6suffix\x92\x07\x08'
    } > "$BATS_TEST_TMPDIR/cond"
    for m in "$ABSORB" "$UNIFORM"; do
        run -0 bash -c "sedd-sample -m $m --steps 4 --length 12 '$BATS_TEST_TMPDIR/cond' | detokenize --jsonl"
        [ "$(echo "$output" | jq -c '[.id, (.tokens | length), .tokens[3], .tokens[9], .tokens[10], .tokens[11], .positions, .suffix]')" = '[5,12,11,12,7,8,[3,9],[7,8]]' ]
    done
}

@test "sedd-sample --no-denoise: the header is widened to the mask id, with or without an input" {
    sedd-sample -m "$ABSORB" --steps 2 --length 16 -n 2 --no-provenance > "$BATS_TEST_TMPDIR/p"
    run -0 stream-info "$BATS_TEST_TMPDIR/p"
    [[ "$output" == *'"vocab_size": 1000,'* ]]
    # one coarse step ending at t = 0.5 leaves masks; stream-info checks every id < vocab_size
    for input in "-n 2" "$BATS_TEST_TMPDIR/p"; do
        sedd-sample -m "$ABSORB" --steps 1 --eps 0.5 --length 24 --no-denoise $input \
            > "$BATS_TEST_TMPDIR/nd"
        run -0 stream-info "$BATS_TEST_TMPDIR/nd"
        [[ "$output" == *'"vocab_size": 1001,'* ]]
    done
}

@test "sedd-score: nll, n_scored, nll_stderr, t_samples; the error bar shrinks with K" {
    printf '{"text":"a b c d e f g h"}\n' | tokenize --jsonl > "$BATS_TEST_TMPDIR/x"
    run -0 bash -c "sedd-score -m $ABSORB -K 4 '$BATS_TEST_TMPDIR/x' | detokenize --jsonl"
    se4=$(echo "$output" | jq '.nll_stderr')
    [ "$(echo "$output" | jq '.n_scored')" -eq 8 ]
    [ "$(echo "$output" | jq '.t_samples')" -eq 4 ]
    [ "$(echo "$output" | jq '.nll > 0')" = true ]
    run -0 bash -c "sedd-score -m $ABSORB -K 64 '$BATS_TEST_TMPDIR/x' | detokenize --jsonl"
    se64=$(echo "$output" | jq '.nll_stderr')
    [ "$(jq -n "$se64 < $se4")" = true ]
}

@test "sedd-score: a record longer than --block is scored in blocks; same result for any -j" {
    printf '{"text":"a b c d e f g h a b c d"}\n' | tokenize --jsonl > "$BATS_TEST_TMPDIR/x"
    sedd-score -m "$UNIFORM" -K 3 --block 5 --no-provenance -j 1 "$BATS_TEST_TMPDIR/x" > "$BATS_TEST_TMPDIR/a"
    sedd-score -m "$UNIFORM" -K 3 --block 5 --no-provenance -j 2 "$BATS_TEST_TMPDIR/x" > "$BATS_TEST_TMPDIR/b"
    cmp "$BATS_TEST_TMPDIR/a" "$BATS_TEST_TMPDIR/b"
    run -0 bash -c "detokenize --jsonl < '$BATS_TEST_TMPDIR/a' | jq '.n_scored'"
    [ "$output" -eq 12 ]
}

@test "sedd tools: a token outside the model's vocabulary is an error naming the record" {
    printf '{"text":"hello world"}\n' | tokenize --jsonl > "$BATS_TEST_TMPDIR/x"
    run -1 --separate-stderr sedd-score -m "$ABSORB" "$BATS_TEST_TMPDIR/x"
    [[ "$stderr" == *"record 0: token "*"outside the model's 1000 tokens"* ]]
    run -1 --separate-stderr sedd-sample -m "$ABSORB" --steps 2 "$BATS_TEST_TMPDIR/x"
    [[ "$stderr" == *"record 0: token "*"outside the model's 1000 tokens"* ]]
}

@test "sedd tools: --help, --version, usage errors (exit 2), a missing model (exit 1)" {
    for t in sedd-sample sedd-score; do
        run -0 --separate-stderr "$t" --help
        [[ "$output" == Usage:\ $t* && "$output" == *"Example: "* ]]
        run -0 "$t" --version
        [[ "$output" == "$t (dlmkit) "* ]]
        run -2 --separate-stderr "$t" --no-such-option
        [[ "$stderr" == *"Usage: $t"* ]]
        run -2 --separate-stderr "$t"
        [[ "$stderr" == *"--model DIR is required"* ]]
        run -1 --separate-stderr "$t" -m "$BATS_TEST_TMPDIR/none" < /dev/null
        [[ "$stderr" == "$t: "*none* ]]
    done
    run -2 --separate-stderr sedd-sample -m "$ABSORB" --sampler heun
    run -2 --separate-stderr sedd-sample -m "$ABSORB" --sampling-precision 48
    run -2 --separate-stderr sedd-score -m "$ABSORB" --t-sampling sobol
}

@test "fixture-check: a SEDD model that is subtly wrong fails (no scale_by_sigma shift)" {
    cp -r "$FIX/sedd" "$BATS_TEST_TMPDIR/s"
    chmod -R u+w "$BATS_TEST_TMPDIR/s"
    sed -i 's/"scale_by_sigma": true/"scale_by_sigma": false/' \
        "$BATS_TEST_TMPDIR/s/tiny_absorb_loglinear/config.json"
    run -1 fixture-check --kinds sedd-forward,sedd-graph "$BATS_TEST_TMPDIR/s"
    [[ "$output" == *"FAIL  sedd-forward  tiny_absorb_loglinear/forward_a:out.log_score"* ]]
    [[ "$output" == *"PASS  sedd-forward  tiny_uniform_geometric/forward_a:out.log_score"* ]]
    [[ "$output" == *"PASS  sedd-graph    tiny_absorb_loglinear/graph:out.rate"* ]]
}
