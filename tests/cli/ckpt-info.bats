#!/usr/bin/env bats
# ckpt-info: the CLI contract, the fixture checkpoints' dimensions (text and --json), and
# broken model directories (exit 1, "ckpt-info: <dir>: ..." on stderr, nothing on stdout).

load helpers

GPT2="$FIX/gpt2"
ABSORB="$FIX/sedd/tiny_absorb_loglinear"
UNIFORM="$FIX/sedd/tiny_uniform_geometric"

# A copy of the GPT-2 fixture directory whose model.safetensors the test then damages.
copy_gpt2() {
    mkdir -p "$BATS_TEST_TMPDIR/ck"
    cp "$GPT2/config.json" "$GPT2/model.safetensors" "$BATS_TEST_TMPDIR/ck/"
    chmod u+w "$BATS_TEST_TMPDIR/ck/model.safetensors"
}

@test "ckpt-info: --help prints usage on stdout and exits 0" {
    run -0 --separate-stderr ckpt-info --help
    [[ "$output" == Usage:* ]]
    [[ "$output" == *"--json"* ]]
    [[ "$output" == *"Exit status"* ]]
    [[ "$output" == *"Example:"* ]]
    [ -z "$stderr" ]
}

@test "ckpt-info: unknown option exits 2 with usage on stderr" {
    run -2 --separate-stderr ckpt-info --bogus "$GPT2"
    [[ "$stderr" == *"Usage: ckpt-info"* ]]
    [ -z "$output" ]
}

@test "ckpt-info: no directory, or two, is a usage error" {
    run -2 --separate-stderr ckpt-info
    [[ "$stderr" == "ckpt-info: expected a model directory"* ]]
    run -2 --separate-stderr ckpt-info "$GPT2" "$ABSORB"
    [[ "$stderr" == ckpt-info:* ]]
}

@test "ckpt-info: --version" {
    run -0 --separate-stderr ckpt-info --version
    [[ "$output" == "ckpt-info (dlmkit) "* ]]
}

@test "ckpt-info: gpt2 fixture dimensions (text)" {
    run -0 --separate-stderr ckpt-info "$GPT2"
    [[ "$output" == *$'kind: gpt2\n'* ]]
    [[ "$output" == *$'vocab_size: 1000\n'* ]]
    [[ "$output" == *$'n_positions: 64\n'* ]]
    [[ "$output" == *$'n_embd: 64\n'* ]]
    [[ "$output" == *$'n_head: 4\n'* ]]
    [[ "$output" == *$'n_layer: 2\n'* ]]
    [[ "$output" == *$'parameters: 168192\n'* ]]
    [[ "$output" == *"lm_head: absent"* ]]
    [[ "$output" == *$'tensors: 30 (28 parameters, 2 buffers, 0 ignored)\n'* ]]
    [[ "$output" == *$'dtypes: F32\n'* ]]
    [[ "$output" == *"file_bytes: 707995"* ]]
    [ -z "$stderr" ]
}

@test "ckpt-info: sedd fixtures dimensions (text)" {
    run -0 --separate-stderr ckpt-info "$ABSORB"
    [[ "$output" == *$'kind: sedd\n'* ]]
    [[ "$output" == *$'vocab: 1001\n'* ]]
    [[ "$output" == *$'hidden_size: 64\n'* ]]
    [[ "$output" == *$'cond_dim: 32\n'* ]]
    [[ "$output" == *$'n_blocks: 2\n'* ]]
    [[ "$output" == *$'graph: absorb\n'* ]]
    [[ "$output" == *$'noise: loglinear\n'* ]]
    [[ "$output" == *$'parameters: 267241\n'* ]]
    run -0 --separate-stderr ckpt-info "$UNIFORM"
    [[ "$output" == *$'vocab: 1000\n'* ]]
    [[ "$output" == *$'scale_by_sigma: false\n'* ]]
    [[ "$output" == *$'graph: uniform\n'* ]]
    [[ "$output" == *$'noise: geometric\n'* ]]
    [[ "$output" == *$'parameters: 267112\n'* ]]
}

# One JSON object per fixture: kind, a dimension and the parameter count, checked with node.
@test "ckpt-info: --json (table of fixtures)" {
    while read -r dir kind key value params; do
        run -0 --separate-stderr ckpt-info --json "$FIX/$dir"
        [ "$(printf '%s\n' "$output" | wc -l)" -eq 1 ]
        run -0 node -e '
            const r = JSON.parse(process.argv[1]);
            const ok = r.kind === process.argv[2] && r.config[process.argv[3]] == process.argv[4] &&
                       r.parameters === Number(process.argv[5]) && r.dtypes[0] === "F32";
            process.exit(ok ? 0 : 1);' "$output" "$kind" "$key" "$value" "$params"
    done <<'EOF'
gpt2                        gpt2 n_layer     2    168192
gpt2                        gpt2 n_embd      64   168192
sedd/tiny_absorb_loglinear  sedd vocab       1001 267241
sedd/tiny_absorb_loglinear  sedd graph       absorb 267241
sedd/tiny_uniform_geometric sedd noise       geometric 267112
sedd/tiny_uniform_geometric sedd hidden_size 64   267112
EOF
}

@test "ckpt-info: the gpt2 variant file reports a tied lm_head and the same count" {
    copy_gpt2
    cp "$GPT2/model_variant.safetensors" "$BATS_TEST_TMPDIR/ck/model.safetensors"
    run -0 --separate-stderr ckpt-info --json "$BATS_TEST_TMPDIR/ck"
    [[ "$output" == *'"lm_head":"tied"'* ]]
    [[ "$output" == *'"parameters":168192,'* ]]
}

@test "ckpt-info: missing directory exits 1" {
    run -1 --separate-stderr ckpt-info "$BATS_TEST_TMPDIR/nope"
    [[ "$stderr" == "ckpt-info: $BATS_TEST_TMPDIR/nope: "* ]]
    [ -z "$output" ]
}

@test "ckpt-info: truncated model.safetensors exits 1 (several cut points)" {
    copy_gpt2
    for n in 0 5 8 100 2459 5000 707994; do
        head -c "$n" "$GPT2/model.safetensors" > "$BATS_TEST_TMPDIR/ck/model.safetensors"
        run -1 --separate-stderr ckpt-info "$BATS_TEST_TMPDIR/ck"
        [[ "$stderr" == "ckpt-info: $BATS_TEST_TMPDIR/ck: model.safetensors: "* ]]
        [ -z "$output" ]
    done
}

@test "ckpt-info: a lying header exits 1" {
    copy_gpt2
    # header length field claims 1 MB
    printf '\x00\x00\x10\x00\x00\x00\x00\x00' |
        dd of="$BATS_TEST_TMPDIR/ck/model.safetensors" bs=1 seek=0 conv=notrunc status=none
    run -1 --separate-stderr ckpt-info "$BATS_TEST_TMPDIR/ck"
    [[ "$stderr" == "ckpt-info: $BATS_TEST_TMPDIR/ck: model.safetensors: header length"* ]]
    # a data offset pointing past the end: 705536 (the end of wte) -> 905536
    copy_gpt2
    sed -i 's/449536,705536/449536,905536/' "$BATS_TEST_TMPDIR/ck/model.safetensors"
    run -1 --separate-stderr ckpt-info "$BATS_TEST_TMPDIR/ck"
    [[ "$stderr" == "ckpt-info: "*"tensor 'wte.weight'"*"run past the end"* ]]
}

@test "ckpt-info: a config that does not match the weights names the tensor" {
    copy_gpt2
    sed -i 's/"n_embd": 64/"n_embd": 32/' "$BATS_TEST_TMPDIR/ck/config.json"
    run -1 --separate-stderr ckpt-info "$BATS_TEST_TMPDIR/ck"
    [[ "$stderr" == "ckpt-info: $BATS_TEST_TMPDIR/ck: model.safetensors: tensor 'wte.weight' has shape [1000, 64], expected [1000, 32]" ]]
    echo '{"n_embd": "x"}' > "$BATS_TEST_TMPDIR/ck/config.json"
    run -1 --separate-stderr ckpt-info "$BATS_TEST_TMPDIR/ck"
    [[ "$stderr" == "ckpt-info: $BATS_TEST_TMPDIR/ck: config.json: n_embd: expected an integer"* ]]
}

@test "ckpt-info: writing to /dev/full exits 1" {
    run -1 --separate-stderr bash -c "ckpt-info '$GPT2' > /dev/full"
    [[ "$stderr" == *"writing output failed"* ]]
}
