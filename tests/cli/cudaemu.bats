#!/usr/bin/env bats
# The tools with --device cuda on the CUDA emulator (tests/cudaemu): the real kernels/, compiled
# by g++ against an emulated runtime, loaded as the CUDA plugin through DLMKIT_CUDA_PLUGIN. Every
# fixture case, the samplers' token streams, the scores and training against the CPU, on a
# machine without a GPU. Test names say [cuda-emu]: none of this is a GPU's result (that is
# tests/gpu-check.sh's job); it shows the kernels' logic and the device code paths of lib/.

load helpers

GPT2="$FIX/gpt2"
ABSORB="$FIX/sedd/tiny_absorb_loglinear"
UNIFORM="$FIX/sedd/tiny_uniform_geometric"

setup() {
    T="$BATS_TEST_TMPDIR"
    export DLMKIT_CUDA_PLUGIN="$ROOT/${BUILD:-build/release}/cudaemu/libdlmkit-cuda.so"
    export DLM_CUDA_GRAPHS=require  # a step that cannot be captured fails the test
    [ -f "$DLMKIT_CUDA_PLUGIN" ] || skip "no emulated CUDA plugin (x86-64 with a CUDA build only)"
}

# |a - b| <= tol * max(1, |b|)
close() {
    awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b;
        if (m < 1) m = 1; exit !(d <= t * m) }'
}

@test "[cuda-emu] --version names the emulator; fixture-check --device cuda passes every gpt2 and sedd case" {
    run -0 fixture-check --version
    [[ "$output" == *"CUDA emulated on the CPU"*"1 devices"* ]]
    for set in "$GPT2" "$FIX/sedd"; do
        run -0 fixture-check --device cuda "$set"
        [[ "${lines[-1]}" =~ ^[1-9][0-9]*\ passed,\ 0\ failed,\ 0\ unsupported,\ 0\ skipped$ ]] ||
            { echo "$set: ${lines[-1]}"; return 1; }
    done
}

@test "[cuda-emu] gpt2-sample (tokens drawn on the device, or top-p on the host) and sedd-sample: the CPU's token streams" {
    for dev in cpu cuda; do
        gpt2-sample -m "$GPT2" -n 3 -l 24 --seed 5 --no-provenance --device $dev -o "$T/g.$dev"
        gpt2-sample -m "$GPT2" -n 2 -l 12 --seed 9 -p 0.9 --no-provenance --device $dev \
            -o "$T/gp.$dev"
        gpt2-sample -m "$GPT2" -n 5 -l 40 -b 2 -t 0.8 --rng-bits 32 --no-provenance \
            --device $dev -o "$T/gt.$dev"
        sedd-sample -m "$ABSORB" -n 2 --steps 16 --seed 5 --no-provenance --device $dev \
            -o "$T/s.$dev"
        sedd-sample -m "$UNIFORM" -n 2 --steps 8 --seed 3 --no-provenance --device $dev \
            -o "$T/u.$dev"
    done
    for f in g gp gt s u; do
        [ -s "$T/$f.cpu" ] && cmp "$T/$f.cpu" "$T/$f.cuda"
    done
}

@test "[cuda-emu] sampling steps replayed as CUDA graphs: the same token streams as op by op" {
    # 3 records in batches of 2 and 1: GPT-2 draws 8 tokens, the first from the prompt's forward
    # pass and 7 by decoding steps (drawn on the device, or, top-p, from logits brought back);
    # SEDD takes 16 steps and the denoiser. Every step is a graph launch but SEDD's first (it
    # allocates the model's work buffers, so it runs op by op).
    for mode in 0 require; do
        DLM_CUDA_GRAPHS=$mode EMU_STATS=1 gpt2-sample -m "$GPT2" -n 3 -b 2 -l 8 --seed 5 \
            --no-provenance --device cuda -o "$T/g.$mode" 2> "$T/g.$mode.err"
        DLM_CUDA_GRAPHS=$mode EMU_STATS=1 gpt2-sample -m "$GPT2" -n 3 -b 2 -l 8 -p 0.9 \
            --seed 5 --no-provenance --device cuda -o "$T/p.$mode" 2> "$T/p.$mode.err"
        DLM_CUDA_GRAPHS=$mode EMU_STATS=1 sedd-sample -m "$ABSORB" -n 3 -b 2 --steps 16 \
            --seed 5 --no-provenance --device cuda -o "$T/s.$mode" 2> "$T/s.$mode.err"
    done
    cmp "$T/g.0" "$T/g.require"
    cmp "$T/p.0" "$T/p.require"
    cmp "$T/s.0" "$T/s.require"
    # and one sequence a forward pass on the device: the same bytes for any --batch
    sedd-sample -m "$ABSORB" -n 3 -b 1 --steps 16 --seed 5 --no-provenance --device cuda |
        cmp - "$T/s.require"
    ! grep -q "graph launches" "$T/g.0.err" "$T/p.0.err" "$T/s.0.err"
    grep -qx "cuda-emu: $((2 * 7)) graph launches" "$T/g.require.err"
    grep -qx "cuda-emu: $((2 * 7)) graph launches" "$T/p.require.err"
    grep -qx "cuda-emu: $((2 * 17 - 1)) graph launches" "$T/s.require.err"
}

@test "[cuda-emu] gpt2-score and sedd-score: the CPU's NLL per token to 1e-5" {
    gpt2-sample -m "$GPT2" -n 4 -l 20 --seed 1 --no-provenance -o "$T/in"
    for dev in cpu cuda; do
        gpt2-score -m "$GPT2" --device $dev "$T/in" | ppl | jq .nll_per_token > "$T/g.$dev"
        sedd-score -m "$ABSORB" -K 4 --seed 2 --device $dev "$T/in" | ppl | jq .nll_per_token \
            > "$T/s.$dev"
    done
    for f in g s; do
        close "$(cat "$T/$f.cuda")" "$(cat "$T/$f.cpu")" 1e-5 ||
            { echo "$f: cuda $(cat "$T/$f.cuda") cpu $(cat "$T/$f.cpu")"; return 1; }
    done
}

@test "[cuda-emu] lm-eval on GPT-2 and SEDD: the CPU's accuracies" {
    fixturetool widen-vocab "$GPT2" "$T/w" 50257
    fixturetool widen-vocab "$ABSORB" "$T/a" 50257
    dataset -f requests --task piqa piqa "$FIX/eval/formats/piqa/hf_validation_rows.jsonl" > "$T/r"
    for dev in cpu cuda; do
        lm-eval --model "$T/w" --task piqa --device $dev "$T/r" | jq -S 'del(.device)' > "$T/g.$dev"
        lm-eval --model "$T/a" --task piqa -K 2 --device $dev "$T/r" | jq -S 'del(.device)' \
            > "$T/s.$dev"
    done
    grep -q '"acc"' "$T/g.cpu" && cmp "$T/g.cpu" "$T/g.cuda" && cmp "$T/s.cpu" "$T/s.cuda"
}

@test "[cuda-emu] train --device cuda: GPT-2 and SEDD losses and gradient norms follow the CPU's" {
    for i in $(seq 1 40); do echo "The quick brown fox jumps over the lazy dog, number $i of many."; done \
        | tokenize --block 16 > "$T/blocks"
    for arch in gpt2 sedd; do
        for dev in cpu cuda; do
            train --arch $arch --layers 2 --width 16 --heads 2 --context 16 --cond-dim 8 -j 1 \
                --batch 2 --steps 4 --eval-every 2 --data "$T/blocks" --device $dev \
                -o "$T/$arch.$dev" 2> /dev/null
            jq -r '[.loss, .gnorm, .val] | map(select(. != null)) | .[]' \
                "$T/$arch.$dev/train.log.jsonl" > "$T/$arch.$dev.txt"
        done
        [ "$(wc -l < "$T/$arch.cpu.txt")" -ge 6 ]
        # gradients summed in other orders: 4 steps of AdamW from the same start stay within 1e-4
        paste "$T/$arch.cpu.txt" "$T/$arch.cuda.txt" | while read -r c g; do
            close "$g" "$c" 1e-4 || { echo "$arch: cuda $g cpu $c"; exit 1; }
        done
    done
}

@test "[cuda-emu] latency --device cuda: GPT-2 and SEDD rows, fp32 and bf16, recorded as cuda" {
    for prec in fp32 bf16; do
        run -0 --separate-stderr latency --gpt2 "$GPT2" --sedd "$ABSORB" --steps 2,4 -l 16 -r 1 \
            -w 0 --device cuda --precision $prec
        [ "${#lines[@]}" -eq 4 ]
        for row in "${lines[@]:1}"; do
            [[ "$row" =~ ^(gpt2,16|sedd,[24]),1,16,[0-9.e-]+,.*,1,cuda,$prec$ ]] ||
                { echo "bad row: $row"; return 1; }
        done
    done
}
