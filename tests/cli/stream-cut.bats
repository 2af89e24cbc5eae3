#!/usr/bin/env bats
# stream-cut: record selection (skip, every, at most N), token ranges, fields kept, bad input.

load helpers

setup() {
    S="$BATS_TEST_TMPDIR/s.mp"
    # seven records "a" .. "g" (ids 0..6), each one token: a=64 .. g=70
    printf 'a\nb\nc\nd\ne\nf\ng\n' | tokenize --lines --no-provenance > "$S"
}

@test "stream-cut: --skip I --every K for I = 0..K-1 splits into interleaved shards" {
    for i in 0 1 2; do
        stream-cut --skip $i --every 3 "$S" | detokenize --lines | paste -sd' '
    done > "$BATS_TEST_TMPDIR/out"
    [ "$(cat "$BATS_TEST_TMPDIR/out")" = "$(printf 'a d g\nb e\nc f')" ]
}

@test "stream-cut: -n keeps at most N records, with their ids" {
    run -0 bash -c "stream-cut --skip 2 -n 2 '$S' | detokenize --jsonl | jq -c '[.id,.tokens]' | paste -sd' '"
    [ "$output" = "[2,[66]] [3,[67]]" ]
}

@test "stream-cut: --tokens A:B cuts every record and keeps its other fields" {
    printf 'one two three four five\n' | tokenize --lines > "$BATS_TEST_TMPDIR/w.mp"
    run -0 bash -c "stream-cut --tokens 1:3 '$BATS_TEST_TMPDIR/w.mp' | detokenize"
    [ "$output" = " two three" ]
    run -0 bash -c "stream-cut --tokens 3: '$BATS_TEST_TMPDIR/w.mp' | detokenize"
    [ "$output" = " four five" ]
    run -0 bash -c "stream-cut --tokens :9 '$BATS_TEST_TMPDIR/w.mp' | detokenize"
    [ "$output" = "one two three four five" ]
    run -0 bash -c "stream-cut --tokens 1:2 '$BATS_TEST_TMPDIR/w.mp' | stream-cut --tokens 7: | stream-info | jq -c '[.records,.tokens]'"
    [ "$output" = "[1,0]" ]
}

@test "stream-cut: bad ranges, counts and input are errors" {
    run -2 stream-cut --tokens 3:3 "$S"
    [[ "$output" == *"the end must exceed the start"* ]]
    run -2 stream-cut --tokens 5 "$S"
    [[ "$output" == *"expected A:B"* ]]
    run -2 stream-cut --every 0 "$S"
    [[ "$output" == *"--every"* ]]
    run -1 bash -c "printf 'not a stream' | stream-cut"
    [ -n "$output" ]
}
