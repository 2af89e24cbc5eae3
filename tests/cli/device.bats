#!/usr/bin/env bats
# --device and --precision of the model tools (gpt2-score, gpt2-sample, mauve-prep, lm-eval on
# GPT-2 and SEDD, sedd-score, sedd-sample, fixture-check): on a machine without a GPU, cuda is a
# usage error (exit 2) naming why; bf16 is refused on the CPU; auto and cpu give the same bytes,
# recorded as "cpu" in the provenance. The CUDA results themselves are checked on a GPU
# (tests/kernels/test_gpt2_device.c, fixture-check --device cuda in tests/gpu-check.sh).

load helpers

GPT2="$FIX/gpt2"
ABSORB="$FIX/sedd/tiny_absorb_loglinear"
FMT="$FIX/eval/formats"

setup() {
    T="$BATS_TEST_TMPDIR"
}

# true when this machine has a CUDA device (then cuda is not an error: these tests skip)
gpu_visible() {
    fixture-check --version | grep -q 'cuda: on' &&
        ! fixture-check --version | grep -q ', 0 devices)'
}

# every model tool with a model and an input that it accepts on the CPU: "tool args..." lines
commands() {
    samples="$T/s.mp"
    gpt2-sample -m "$GPT2" -n 2 -l 8 --no-provenance -o "$samples"
    fixturetool widen-vocab "$GPT2" "$T/w" 50257
    fixturetool widen-vocab "$ABSORB" "$T/a" 50257
    dataset -f requests --task piqa piqa "$FMT/piqa/hf_validation_rows.jsonl" > "$T/r"
    cat <<CMDS
gpt2-score -m $GPT2 -o $T/out $samples
gpt2-sample -m $GPT2 -n 1 -l 4 -o $T/out
mauve-prep -m $GPT2 -o $T/out $samples
lm-eval --model $T/w --task piqa --limit 1 $T/r
lm-eval --model $T/a --task piqa --limit 1 -K 1 $T/r
sedd-score -m $ABSORB -K 2 -o $T/out $samples
sedd-sample -m $ABSORB -n 1 --steps 2 -o $T/out
fixture-check $GPT2
CMDS
}

@test "device: --device cuda without a GPU, an unknown device, bf16 on the CPU: exit 2 naming why" {
    gpu_visible && skip "a CUDA device is visible"
    commands > "$T/cmds"
    while read -r tool args; do
        # shellcheck disable=SC2086
        run -2 --separate-stderr "$tool" $args --device cuda
        [[ "$stderr" == "$tool: --device cuda: "*("no CUDA device is visible"|"this build has no CUDA"*)* ]] ||
            { echo "$tool: $stderr"; return 1; }
        [ -z "$output" ]
        run -2 --separate-stderr "$tool" $args --device tpu
        [[ "$stderr" == "$tool: unknown device 'tpu' (expected auto, cpu or cuda)"* ]] ||
            { echo "$tool: $stderr"; return 1; }
        [ "$tool" = fixture-check ] && continue  # its matrix products are the tools'
        run -2 --separate-stderr "$tool" $args --precision bf16
        [[ "$stderr" == "$tool: --precision bf16 needs --device cuda"* ]] ||
            { echo "$tool: $stderr"; return 1; }
        run -2 --separate-stderr "$tool" $args --device auto --precision fp16
        [[ "$stderr" == "$tool: unknown precision 'fp16' (expected fp32 or bf16)"* ]] ||
            { echo "$tool: $stderr"; return 1; }
        run -0 --separate-stderr "$tool" $args --device cpu --precision fp32
    done < "$T/cmds"
}

@test "device: --device auto without a GPU is the CPU: same bytes, provenance device cpu" {
    gpu_visible && skip "a CUDA device is visible"
    gpt2-sample -m "$GPT2" -n 3 -l 9 --seed 5 --no-provenance -o "$T/cpu.mp"
    gpt2-sample -m "$GPT2" -n 3 -l 9 --seed 5 --no-provenance --device auto -o "$T/auto.mp"
    cmp "$T/cpu.mp" "$T/auto.mp"
    cmp <(gpt2-score -m "$GPT2" --no-provenance "$T/cpu.mp") \
        <(gpt2-score -m "$GPT2" --no-provenance --device auto --precision fp32 "$T/auto.mp")
    gpt2-sample -m "$GPT2" -n 1 -l 4 --device auto -o "$T/prov.mp"
    LC_ALL=C grep -aq $'device\xa3cpu' "$T/prov.mp"
    gpt2-score -m "$GPT2" --device auto "$T/cpu.mp" > "$T/scored.mp"
    [ "$(LC_ALL=C grep -ac $'device\xa3cpu' "$T/scored.mp")" -ge 1 ]
    sedd-score -m "$ABSORB" -K 2 --device auto "$T/cpu.mp" > "$T/sedd.mp"
    LC_ALL=C grep -aq $'device\xa3cpu' "$T/sedd.mp"
    mauve-prep -m "$GPT2" --device auto -o "$T/f.safetensors" "$T/cpu.mp"
    grep -aq '"device":"cpu"' "$T/f.safetensors"
    fixturetool widen-vocab "$GPT2" "$T/w" 50257
    dataset -f requests --task piqa piqa "$FMT/piqa/hf_validation_rows.jsonl" > "$T/r"
    run -0 --separate-stderr lm-eval --model "$T/w" --task piqa --limit 1 --device auto "$T/r"
    [ "$(echo "$output" | jq -r .device)" = cpu ]
}

@test "device: fixture-check --device cpu and auto pass the GPT-2 and SEDD sets as before" {
    gpu_visible && skip "a CUDA device is visible"
    for set in gpt2 sedd; do
        run -0 fixture-check --device auto "$FIX/$set"
        [[ "${lines[-1]}" == *" passed, 0 failed, 0 unsupported, 0 skipped" ]]
        cmp <(echo "$output") <(fixture-check --device cpu "$FIX/$set")
    done
}

# true when this build has the CUDA plugin (nvcc was found)
cuda_built() {
    fixture-check --version | grep -q 'cuda: on'
}

@test "device: no tool links cuBLAS or the CUDA runtime (the backend is a plugin loaded on demand)" {
    for t in "$BIN"/*; do
        [ -x "$t" ] && [ ! -d "$t" ] && [[ "$t" != *.c ]] || continue
        run -0 ldd "$t"
        [[ "$output" != *libcublas* && "$output" != *libcudart* ]] || { echo "$t: $output"; return 1; }
    done
}

@test "device: a missing or foreign CUDA plugin is a clear error, not a crash" {
    cuda_built || skip "this build has no CUDA"
    gpu_visible && skip "a CUDA device is visible"
    run -2 --separate-stderr env DLMKIT_CUDA_PLUGIN="$T/none.so" gpt2-score -m "$GPT2" --device cuda /dev/null
    [[ "$stderr" == "gpt2-score: --device cuda: cannot load the CUDA backend: $T/none.so: "* ]]
    # a library with the plugin's table from another build (another ABI number)
    printf 'struct t { int abi; unsigned long size; void *f[4]; };\nconst struct t dlmkit_cuda_plugin = {999, 0, {0}};\n' > "$T/stale.c"
    ${CC:-cc} -shared -fPIC -o "$T/stale.so" "$T/stale.c"
    run -2 --separate-stderr env DLMKIT_CUDA_PLUGIN="$T/stale.so" gpt2-sample -m "$GPT2" --device cuda
    [[ "$stderr" == *"$T/stale.so comes from another dlmkit build (plugin ABI 999, expected "* ]]
    run -0 env DLMKIT_CUDA_PLUGIN="$T/stale.so" tokenize --version
    [[ "$output" == *"cuda: on "*"(plugin not loadable: $T/stale.so comes from another dlmkit build"* ]]
    # the CPU never looks for the plugin
    run -0 env DLMKIT_CUDA_PLUGIN="$T/none.so" gpt2-sample -m "$GPT2" -n 1 -l 4 --no-provenance
}
