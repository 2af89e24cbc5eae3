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
    fixturetool rows-to-stream "$GPT2/cases.safetensors" padded.input_ids padded.lengths 1000 10 \
        > "$T/padded.msgpack"
    run -0 mauve-prep -m "$GPT2" -o "$T/f.safetensors" "$T/padded.msgpack"
    run -0 fixturetool show "$T/f.safetensors" ids
    [ "${lines[*]}" = "I64 [4] 10 11 12 13" ]
    run -0 fixturetool show "$T/f.safetensors" features
    [ "${lines[0]}" = "F32 [4,64]" ]
    run -0 fixturetool compare-f32 "$GPT2/cases.safetensors" padded.features "$T/f.safetensors" features 5e-5
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
    # -o naming a pipe writes into it and leaves it a pipe (not renamed over)
    mkfifo "$T/fifo"
    timeout 20 cat "$T/fifo" > "$T/from-fifo" &  # (a fifo renamed over would hang it)
    mauve-prep -m "$GPT2" -o "$T/fifo" "$T/b"
    wait
    [ -p "$T/fifo" ]
    cmp "$T/q.safetensors" "$T/from-fifo"
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
