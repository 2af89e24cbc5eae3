#!/usr/bin/env bats
# tokenize: input modes, EOS, blocks, threads, the UTF-8 policy (fixture ids), round trips.

load helpers

TOK="$FIX/tokenizer"

# ids of a stream as one line "1 2 3" per record
ids() { detokenize --jsonl "$@" | jq -c '.tokens | join(" ")' -r; }

@test "tokenize: the whole input is one record whose ids are the reference's" {
    # s000..s149: every fixture case through the tool (the unit test covers the library)
    while IFS= read -r line; do
        hex=$(jq -r .text_hex <<< "$line")
        want=$(jq -c '.ids | join(" ")' -r <<< "$line")
        [ -n "$hex" ] || continue
        got=$(xxd -r -p <<< "$hex" | tokenize | ids)
        [ "$got" = "$want" ] || { echo "case $(jq -r .id <<< "$line"): got '$got' want '$want'"; false; }
    done < <(head -n 40 "$TOK/cases.jsonl")
}

@test "tokenize: --lines gives one record per line, ids in input order; detokenize --lines inverts it" {
    printf 'one\ntwo two\n\nthree\n' > "$BATS_TEST_TMPDIR/t"
    run -0 bash -c "tokenize --lines < '$BATS_TEST_TMPDIR/t' | detokenize --jsonl | jq -c '[.id, .text]'"
    [ "${lines[0]}" = '[0,"one"]' ]
    [ "${lines[1]}" = '[1,"two two"]' ]
    [ "${lines[2]}" = '[2,""]' ]
    [ "${lines[3]}" = '[3,"three"]' ]
    [ "${#lines[@]}" -eq 4 ]
    tokenize --lines < "$BATS_TEST_TMPDIR/t" | detokenize --lines | cmp - "$BATS_TEST_TMPDIR/t"
}

@test "tokenize: --jsonl --field reads one string per JSON line, escapes decoded" {
    printf '{"q":"a\\u00e9","x":1}\n{"q":"line\\nbreak"}\n' > "$BATS_TEST_TMPDIR/j"
    run -0 bash -c "tokenize --jsonl --field q < '$BATS_TEST_TMPDIR/j' | detokenize --jsonl | jq -c .text"
    [ "${lines[0]}" = '"aé"' ]
    [ "${lines[1]}" = '"line\nbreak"' ]
}

@test "tokenize: --append-eos appends 50256 to every record" {
    run -0 bash -c "printf 'a\nb\n' | tokenize --lines --append-eos | detokenize --jsonl | jq -c .tokens"
    [ "${lines[0]}" = '[64,50256]' ]
    [ "${lines[1]}" = '[65,50256]' ]
}

@test "tokenize: --block cuts the concatenation; the remainder is dropped or kept" {
    printf 'a\nb\nc\n' > "$BATS_TEST_TMPDIR/t"   # with EOS: 64 EOS 65 EOS 66 EOS = 6 tokens
    run -0 bash -c "tokenize --lines --append-eos --block 4 < '$BATS_TEST_TMPDIR/t' | detokenize --jsonl | jq -c '[.id,.tokens]'"
    [ "${#lines[@]}" -eq 1 ]
    [ "${lines[0]}" = '[0,[64,50256,65,50256]]' ]
    run -0 bash -c "tokenize --lines --append-eos --block 4 --remainder keep < '$BATS_TEST_TMPDIR/t' | detokenize --jsonl | jq -c '[.id,.tokens]'"
    [ "${lines[1]}" = '[1,[66,50256]]' ]
}

@test "tokenize: -j 2 gives the byte-identical stream, for lines and for one document" {
    for i in $(seq 1 300); do echo "Line $i: the quick brown fox, isn't it? 12345 — über"; echo; done > "$BATS_TEST_TMPDIR/t"
    cmp <(tokenize --no-provenance --lines < "$BATS_TEST_TMPDIR/t") <(tokenize --no-provenance --lines -j 2 < "$BATS_TEST_TMPDIR/t")
    cmp <(tokenize --no-provenance < "$BATS_TEST_TMPDIR/t") <(tokenize --no-provenance -j 2 < "$BATS_TEST_TMPDIR/t")
    cmp <(tokenize --no-provenance < "$BATS_TEST_TMPDIR/t") <(tokenize --no-provenance -j 7 < "$BATS_TEST_TMPDIR/t")
    tokenize -j 2 < "$BATS_TEST_TMPDIR/t" | detokenize | cmp - "$BATS_TEST_TMPDIR/t"
}

@test "tokenize: invalid UTF-8 is an error naming the byte offset" {
    run -1 --separate-stderr bash -c "printf 'abc\\x80def' | tokenize"
    [ "$stderr" = "tokenize: stdin: invalid UTF-8 at byte offset 3 (use --invalid-utf8 replace to decode it with U+FFFD)" ]
    [ -z "$output" ]
}

@test "tokenize: --invalid-utf8 replace gives the fixture's ids for every case" {
    while IFS= read -r line; do
        want=$(jq -c '.ids | join(" ")' -r <<< "$line")
        got=$(jq -r .bytes_hex <<< "$line" | xxd -r -p | tokenize --invalid-utf8 replace | ids)
        [ "$got" = "$want" ] || { echo "case $(jq -r .id <<< "$line"): got '$got' want '$want'"; false; }
    done < "$TOK/invalid_utf8.jsonl"
}

@test "tokenize: the header carries provenance unless --no-provenance" {
    run -0 bash -c "echo hi | tokenize | stream-info | jq .provenance_entries"
    [ "$output" -eq 1 ]
    run -0 bash -c "echo hi | tokenize --no-provenance | stream-info | jq .provenance_entries"
    [ "$output" -eq 0 ]
    run -0 bash -c "echo hi | tokenize | stream-info | jq -r .tokenizer"
    [ "$output" = gpt2 ]
}

@test "tokenize: refuses to write the binary stream to a terminal" {
    run -2 script -qec "echo hi | $BIN/tokenize" /dev/null
    [[ "$output" == *"refusing to write binary output to a terminal"* ]]
}

@test "tokenize: a Hugging Face vocabulary directory (vocab.json + merges.txt) works too" {
    mkdir "$BATS_TEST_TMPDIR/hf"
    cp "$ROOT/data/gpt2/encoder.json" "$BATS_TEST_TMPDIR/hf/vocab.json"
    cp "$ROOT/data/gpt2/vocab.bpe" "$BATS_TEST_TMPDIR/hf/merges.txt"
    cmp <(echo "Hello there" | tokenize --no-provenance) <(echo "Hello there" | tokenize --no-provenance --vocab "$BATS_TEST_TMPDIR/hf")
}
