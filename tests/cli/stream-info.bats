#!/usr/bin/env bats
# stream-info: counts of a known stream, the fields records carry, and -o.

load helpers

@test "stream-info: records, tokens, lengths and distinct ids of a known stream" {
    # "a" -> [64], "b b" -> [65, 275], "" -> []
    run -0 bash -c "printf 'a\nb b\n\n' | tokenize --lines | stream-info | jq -c '[.records,.tokens,.min_length,.max_length,.distinct_tokens,.eot,.vocab_size]'"
    [ "$output" = "[3,3,0,2,3,50256,50257]" ]
}

@test "stream-info: lists the extra fields records carry" {
    printf 'a' | tokenize --no-provenance | head -c -14 > "$BATS_TEST_TMPDIR/s.mp"
    printf '\x84\xa2id\x00\xa6tokens\x91\x40\xa3nll\x01\xa4meta\x80' >> "$BATS_TEST_TMPDIR/s.mp"
    run -0 bash -c "stream-info '$BATS_TEST_TMPDIR/s.mp' | jq -c .fields"
    [ "$output" = '["nll","meta"]' ]
}

@test "stream-info: -o writes the summary to a file" {
    printf 'a\n' | tokenize --lines > "$BATS_TEST_TMPDIR/s.mp"
    run -0 stream-info -o "$BATS_TEST_TMPDIR/out.json" "$BATS_TEST_TMPDIR/s.mp"
    [ -z "$output" ]
    [ "$(jq .records "$BATS_TEST_TMPDIR/out.json")" = 1 ]
}
