#!/usr/bin/env bats
# detokenize: exact bytes back, --lines, --jsonl with every field passed through, cat of streams.

load helpers

setup() {
    T="$BATS_TEST_TMPDIR"
    printf 'a' | tokenize --no-provenance > "$T/one.mp"
    head -c -14 "$T/one.mp" > "$T/header.mp"
}

@test "detokenize: the Brown corpus comes back byte for byte (one document and per line)" {
    tokenize -j 2 < "$ROOT/data/brown/brown.txt" | detokenize | cmp - "$ROOT/data/brown/brown.txt"
    tokenize --lines < "$ROOT/data/brown/brown.txt" | detokenize --lines | cmp - "$ROOT/data/brown/brown.txt"
}

@test "detokenize: --jsonl keeps every field of the record and adds text" {
    { cat "$T/header.mp"; printf '\x83\xa2id\x05\xa6tokens\x92\x40\x41\xa5score\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00'; } > "$T/s.mp"
    run -0 detokenize --jsonl "$T/s.mp"
    [ "$output" = '{"id":5,"tokens":[64,65],"score":1.5,"text":"ab"}' ]
}

@test "detokenize: cat of two streams is one stream" {
    printf 'x\n' | tokenize --lines > "$T/a.mp"
    printf 'y\nz\n' | tokenize --lines > "$T/b.mp"
    run -0 bash -c "cat '$T/a.mp' '$T/b.mp' | detokenize --lines"
    [ "$output" = "$(printf 'x\ny\nz')" ]
}

@test "detokenize: a stream of another tokenizer is refused" {
    sed 's/gpt2/gptX/' "$T/one.mp" > "$T/x.mp"
    run -1 --separate-stderr detokenize "$T/x.mp"
    [[ "$stderr" == "detokenize: the stream's tokenizer 'gptX'"* ]]
}
