#!/usr/bin/env bats
# mauve-prep on the tiny GPT-2 fixture: the fixture's padded rows give padded.features, the output
# feeds mauve, stdout and -o agree, and the CLI contract (usage, exit codes, broken input).

load helpers

GPT2="$FIX/gpt2"

setup() {
    T="$BATS_TEST_TMPDIR"
}

error_from() {
    [ -z "$output" ] || { echo "stdout not empty"; return 1; }
    [[ "$stderr" == "$1: "* ]] || { echo "stderr: $stderr"; return 1; }
}

samples() {  # samples FILE SEED: 30 unconditional samples of 20 tokens from the tiny model
    gpt2-sample -m "$GPT2" -n 30 -l 20 --seed "$2" -o "$1"
}

@test "mauve-prep: --help, unknown option, missing --model, no input on a tty" {
    run -0 --separate-stderr mauve-prep --help
    [[ "$output" == Usage:* ]]
    [[ "$output" == *"Example:"* ]]
    run -2 --separate-stderr mauve-prep --bogus
    [[ "$stderr" == *"Usage:"* ]]
    run -2 --separate-stderr mauve-prep
    [[ "$stderr" == "mauve-prep: --model DIR is required"* ]]
    run -2 --separate-stderr mauve-prep -m "$GPT2" --max-tokens 65 /dev/null
    [[ "$stderr" == *"longer than the model's context (64)"* ]]
    run -2 run_on_tty "mauve-prep -m '$GPT2' -o '$T/x'"
}

@test "mauve-prep: the fixture's padded rows (real lengths) give padded.features within 5e-5" {
    command -v python3 >/dev/null || skip "python3 needed to write the stream and read the features"
    python3 - "$GPT2/cases.safetensors" "$T/padded.msgpack" <<'PY'
import json, struct, sys
def tensors(path):
    b = open(path, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: (v, b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in h.items() if k != "__metadata__"}
t = tensors(sys.argv[1])
ids = struct.unpack("<%dq" % (len(t["padded.input_ids"][1]) // 8), t["padded.input_ids"][1])
lens = struct.unpack("<4q", t["padded.lengths"][1])
def s(x): b = x.encode(); return bytes([0xa0 | len(b)]) + b
def u16(v): return b"\xcd" + struct.pack(">H", v)
out = bytes([0x87]) + s("magic") + s("dlmkit-tokens") + s("format_version") + b"\x01" \
    + s("kind") + s("tokens") + s("tokenizer") + s("gpt2") + s("vocab_size") + u16(1000) \
    + s("eot") + u16(999) + s("provenance") + b"\x90"
for b, L in enumerate(lens):
    row = ids[b * 64:b * 64 + L]
    out += bytes([0x82]) + s("id") + bytes([10 + b]) + s("tokens") + bytes([0xdc]) \
        + struct.pack(">H", L) + b"".join(u16(v) for v in row)
open(sys.argv[2], "wb").write(out)
PY
    run -0 mauve-prep -m "$GPT2" -o "$T/f.safetensors" "$T/padded.msgpack"
    run -0 python3 - "$GPT2/cases.safetensors" "$T/f.safetensors" <<'PY'
import json, struct, sys
def tensors(path):
    b = open(path, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: (v, b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in h.items() if k != "__metadata__"}
want = tensors(sys.argv[1])["padded.features"][1]
got = tensors(sys.argv[2])
assert got["features"][0]["shape"] == [4, 64] and got["features"][0]["dtype"] == "F32"
assert struct.unpack("<4q", got["ids"][1]) == (10, 11, 12, 13)
w = struct.unpack("<256f", want); g = struct.unpack("<256f", got["features"][1])
d = max(abs(a - b) for a, b in zip(w, g))
print("max diff", d)
assert d <= 5e-5
PY
}

@test "mauve-prep: two sample sets through mauve; stdout and -o give the same bytes" {
    samples "$T/a" 1
    samples "$T/b" 2
    run -0 mauve-prep -m "$GPT2" -o "$T/p.safetensors" "$T/a"
    mauve-prep -m "$GPT2" < "$T/b" > "$T/q.safetensors"
    mauve-prep -m "$GPT2" -j 1 -o "$T/b.safetensors" "$T/b"
    cmp "$T/q.safetensors" "$T/b.safetensors"
    run -0 --separate-stderr mauve -p "$T/p.safetensors" -q "$T/q.safetensors"
    [ "$(echo "$output" | jq '.n_p, .n_q, .dim' | tr '\n' ' ')" = "30 30 64 " ]
    [ "$(echo "$output" | jq '.mauve > 0 and .mauve <= 1.0000001')" = true ]
    # --max-tokens keeps the first N tokens: the feature changes
    run -0 mauve-prep -m "$GPT2" --max-tokens 5 -o "$T/p5.safetensors" "$T/a"
    ! cmp -s "$T/p.safetensors" "$T/p5.safetensors"
}

@test "mauve-prep: empty, truncated and garbage input exit 1; /dev/full" {
    samples "$T/a" 1
    : > "$T/empty"
    head -c 150 "$T/a" > "$T/cut"
    printf 'garbage\n' > "$T/junk"
    for f in empty cut junk; do
        run -1 --separate-stderr mauve-prep -m "$GPT2" -o "$T/out" "$T/$f"
        error_from mauve-prep
        [ ! -e "$T/out" ]
    done
    # a stream with a header and no records has no features: an error, not an empty file
    gpt2-sample -m "$GPT2" -n 0 -o "$T/none"
    run -1 --separate-stderr mauve-prep -m "$GPT2" -o "$T/out" "$T/none"
    [[ "$stderr" == *"no records"* ]]
    run -1 --separate-stderr bash -c "mauve-prep -m '$GPT2' --force '$T/a' > /dev/full"
    [[ "$stderr" == "mauve-prep: writing output failed"* ]]
}
