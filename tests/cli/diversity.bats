#!/usr/bin/env bats
# diversity: usage, known values of a hand-made stream, conventions as options, bad input.

load helpers

setup() {
    # "x x x x" tokenizes to x, " x", " x", " x"
    printf 'x x x x\n' | tokenize --lines --no-provenance > "$BATS_TEST_TMPDIR/rep"
}

@test "diversity: --help prints usage with defaults and an example, exit 0" {
    run -0 --separate-stderr diversity --help
    [[ "$output" == "Usage: diversity"* && "$output" == *"[100]"* && "$output" == *"Example: "* ]]
}

@test "diversity: an unknown option or a bad --std is a usage error (exit 2)" {
    run -2 --separate-stderr diversity --bogus
    [[ "$stderr" == *"Usage: diversity"* ]]
    run -2 --separate-stderr diversity --std median "$BATS_TEST_TMPDIR/rep"
    [[ "$stderr" == diversity:*"--std"* ]]
}

@test "diversity: no input on a terminal is a usage error" {
    run -2 run_on_tty "$BIN/diversity"
}

@test "diversity: 'x x x x' (x, ' x' x3): 2 unique of 4, 2 repeats, summary and per record" {
    run -0 bash -c "diversity '$BATS_TEST_TMPDIR/rep' | jq -c '[.records, .metrics.unique_unigram_fraction.mean, .metrics.repetition_rate.mean, .conventions.window]'"
    [ "$output" = "[1,0.5,0.5,100]" ]
    run -0 bash -c "diversity --per-record '$BATS_TEST_TMPDIR/rep' | jq -c '[.id, .n_unique, .repeated_tokens]'"
    [ "$output" = "[0,2,2]" ]
}

@test "diversity: --window 1 still counts adjacent repeats; --drop-eos removes EOT" {
    run -0 bash -c "diversity -w 1 '$BATS_TEST_TMPDIR/rep' | jq .metrics.repetition_rate.mean"
    [ "$output" = "0.5" ]
    printf 'x' | tokenize --append-eos --no-provenance > "$BATS_TEST_TMPDIR/eos"
    run -0 bash -c "diversity --drop-eos '$BATS_TEST_TMPDIR/eos' | jq '.metrics.unique_unigram_fraction.mean, .conventions.drop_eos'"
    [ "${lines[0]}" = "1" ] && [ "${lines[1]}" = "true" ]
}

@test "diversity: garbage, truncated and empty streams are errors naming the tool (exit 1)" {
    printf 'not a stream' > "$BATS_TEST_TMPDIR/bad"
    run -1 --separate-stderr diversity "$BATS_TEST_TMPDIR/bad"
    [[ "$stderr" == diversity:* ]] && [ -z "$output" ]
    head -c -2 "$BATS_TEST_TMPDIR/rep" > "$BATS_TEST_TMPDIR/cut"
    run -1 --separate-stderr diversity "$BATS_TEST_TMPDIR/cut"
    [[ "$stderr" == diversity:* ]]
    printf 'x' | tokenize --no-provenance | head -c -14 > "$BATS_TEST_TMPDIR/none"  # header only
    [ "$(stream-info "$BATS_TEST_TMPDIR/none" | jq .records)" = 0 ]
    run -1 --separate-stderr diversity "$BATS_TEST_TMPDIR/none"
    [[ "$stderr" == *"no records with tokens"* ]]
}

@test "diversity: empty records are counted and left out; only empty ones is an error" {
    printf 'x x\n\n' | tokenize --lines --no-provenance > "$BATS_TEST_TMPDIR/some"
    run -0 bash -c "diversity '$BATS_TEST_TMPDIR/some' | jq -c '[.records, .empty_records]'"
    [ "$output" = "[1,1]" ]
    printf '\n' | tokenize --lines --no-provenance > "$BATS_TEST_TMPDIR/empty"
    run -1 --separate-stderr diversity "$BATS_TEST_TMPDIR/empty"
    [[ "$stderr" == "diversity: "*"no records with tokens"* ]]
}

@test "diversity: writing to /dev/full fails with exit 1" {
    run -1 --separate-stderr sh -c "diversity '$BATS_TEST_TMPDIR/rep' > /dev/full"
    [[ "$stderr" == *"writing output failed"* ]]
}
