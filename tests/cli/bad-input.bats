#!/usr/bin/env bats
# Bad input, one row per case: every tool ends with one line "tool: what is wrong" on stderr,
# the documented exit code (1 data, 2 usage), nothing on stdout, and never a crash.

load helpers

setup() {
    T="$BATS_TEST_TMPDIR"
    # A header-only stream (the 14 bytes of the record {id:0,tokens:[64]} cut off).
    printf 'a' | tokenize --no-provenance > "$T/one.mp"
    head -c -14 "$T/one.mp" > "$T/header.mp"
    cp "$FIX/gpt2/config.json" "$FIX/gpt2/model.safetensors" "$T/" && chmod u+w "$T/model.safetensors"
}

# expect CODE TOOL ARGS... <input: runs the tool and checks the contract; the message must
# contain $want.
expect() {
    local code=$1; shift
    run "-$code" --separate-stderr "$@"
    [ -z "$output" ] || { echo "stdout not empty: $output"; return 1; }
    [ "${#stderr_lines[@]}" -ge 1 ] && [ "${#stderr_lines[@]}" -le 3 ] || { echo "stderr: $stderr"; return 1; }
    [[ "${stderr_lines[0]}" == "$1:"* ]] || { echo "stderr: $stderr"; return 1; }
    [[ "$stderr" == *"$want"* ]] || { echo "stderr lacks '$want': $stderr"; return 1; }
}

stream() { cat "$T/header.mp"; printf "$1"; }

@test "bad input: truncated msgpack record" {
    head -c -3 "$T/one.mp" > "$T/cut.mp"
    want="truncated" expect 1 detokenize "$T/cut.mp"
}

@test "bad input: truncated header" {
    head -c 40 "$T/one.mp" > "$T/cut.mp"
    want="truncated" expect 1 stream-info "$T/cut.mp"
}

@test "bad input: a record without tokens" {
    stream '\x81\xa2id\x00' > "$T/s.mp"
    want="tokens" expect 1 detokenize "$T/s.mp"
}

@test "bad input: a record without id" {
    stream '\x81\xa6tokens\x91\x40' > "$T/s.mp"
    want="id" expect 1 stream-info "$T/s.mp"
}

@test "bad input: a negative token id" {
    stream '\x82\xa2id\x00\xa6tokens\x91\xff' > "$T/s.mp"
    want="token" expect 1 detokenize "$T/s.mp"
}

@test "bad input: a token id beyond the vocabulary" {
    stream '\x82\xa2id\x00\xa6tokens\x91\xce\x00\x01\x11\x70' > "$T/s.mp"   # 70000
    want="out of range" expect 1 detokenize "$T/s.mp"
}

@test "bad input: a record that is not a map" {
    stream '\x93\x01\x02\x03' > "$T/s.mp"
    want="map" expect 1 stream-info "$T/s.mp"
}

@test "bad input: garbage instead of a stream" {
    head -c 300 "$FIX/gpt2/model.safetensors" > "$T/g.mp"
    want="stream" expect 1 detokenize "$T/g.mp"
}

@test "bad input: empty stream" {
    want="empty" expect 1 detokenize /dev/null
}

@test "bad input: empty text" {
    want="empty input" expect 1 tokenize /dev/null
}

@test "bad input: invalid UTF-8 text" {
    printf 'ok \xc3\x28 bad' > "$T/bad.txt"
    want="invalid UTF-8 at byte offset 3" expect 1 tokenize "$T/bad.txt"
}

@test "bad input: a JSON line without the field" {
    printf '{"text":"a"}\n{"other":"b"}\n' > "$T/j"
    want="line 2: field 'text' is missing" expect 1 tokenize --jsonl "$T/j"
}

@test "bad input: a line that is not JSON" {
    printf '{"text":"a"}\nnot json\n' > "$T/j"
    want="line 2: invalid JSON" expect 1 tokenize --jsonl "$T/j"
}

@test "bad input: safetensors header lying about offsets" {
    # grow the first tensor's end offset (h.0.attn.bias: [0, 16384] -> [0, 16388])
    sed -i 's/"data_offsets":\[0,16384\]/"data_offsets":[0,16388]/' "$T/model.safetensors"
    want="h.0.attn.bias" expect 1 ckpt-info "$T"
}

@test "bad input: safetensors header lying about a shape" {
    sed -i 's/"ln_f.bias":{"dtype":"F32","shape":\[64\]/"ln_f.bias":{"dtype":"F32","shape":[65]/' "$T/model.safetensors"
    want="ln_f.bias" expect 1 ckpt-info "$T"
}

@test "bad input: safetensors header lying about a dtype" {
    sed -i 's/"ln_f.bias":{"dtype":"F32"/"ln_f.bias":{"dtype":"F16"/' "$T/model.safetensors"
    want="ln_f.bias" expect 1 ckpt-info "$T"
}

@test "bad input: truncated safetensors file" {
    head -c 5000 "$FIX/gpt2/model.safetensors" > "$T/model.safetensors"
    want="model.safetensors" expect 1 ckpt-info "$T"
}

@test "bad input: a missing file" {
    want="cannot open 'no-such-file': No such file or directory" expect 1 detokenize no-such-file
    want="cannot open 'no-such-file'" expect 1 tokenize no-such-file
    want="No such file or directory" expect 1 ckpt-info "$T/no-such-dir"
}

@test "bad input: an unknown option or an invalid value is a usage error" {
    want="Usage: tokenize" expect 2 tokenize --frobnicate
    want="invalid value '0' for --block" expect 2 tokenize --block 0
    want="invalid value 'maybe' for --invalid-utf8" expect 2 tokenize --invalid-utf8 maybe
    want="--field needs --jsonl" expect 2 tokenize --field text
}

@test "bad input: two streams whose headers disagree do not concatenate" {
    printf 'a' | tokenize --no-provenance > "$T/a.mp"
    # the same stream with another tokenizer name in its header (same length: gpt2 -> gptX)
    sed 's/gpt2/gptX/' "$T/a.mp" > "$T/b.mp"
    cat "$T/a.mp" "$T/b.mp" > "$T/ab.mp"
    want="header" expect 1 stream-info "$T/ab.mp"
}
