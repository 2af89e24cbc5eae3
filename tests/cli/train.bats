#!/usr/bin/env bats
# train: checkpoints that the inference tools load, the fixture's reference loss at step 1,
# bit-identical --resume, and clear errors on bad input.

load helpers

GPT2="$FIX/gpt2"
ROWS="$FIX/train/fixture_rows.safetensors"
TINY=(--layers 2 --width 16 --heads 2 --context 16 -j 1)

setup() {
    T="$BATS_TEST_TMPDIR"
    for i in $(seq 1 40); do echo "The quick brown fox jumps over the lazy dog, number $i of many."; done \
        | tokenize --block 16 > "$T/blocks.msgpack"
}

# |a - b| <= tol
close() {
    awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'
}

@test "train: --help, and usage errors exit 2" {
    run -0 train --help
    [[ "$output" == *"--resume"* && "$output" == *"Exit status"* ]]
    run -2 train --data "$T/blocks.msgpack"
    [[ "$output" == *"-o DIR"* ]]
    run -2 train --arch nope --data "$T/blocks.msgpack" -o "$T/x"
    [[ "$output" == *"unknown"* ]]
    run -2 train --arch sedd --width 18 --heads 2 --data "$T/blocks.msgpack" -o "$T/x"
    [[ "$output" == *"even head size"* ]]
    run -2 train --init "$GPT2" --layers 2 --data "$T/blocks.msgpack" -o "$T/x"
    run -2 train --dtype f8 --data "$T/blocks.msgpack" -o "$T/x"
}

@test "train: 3 steps of a tiny model; gpt2-score and ckpt-info read the checkpoint" {
    run -0 train "${TINY[@]}" --data "$T/blocks.msgpack" --steps 3 --batch 4 --eval-every 1 \
        --eval-batches 2 -o "$T/ck"
    [[ "$output" == *"step 3/3 loss"* ]]
    [ -f "$T/ck/config.json" ] && [ -f "$T/ck/train_state.safetensors" ]
    [ "$(wc -l < "$T/ck/train.log.jsonl")" -eq 4 ]
    ! ls -d "$T"/ck.tmp.* 2>/dev/null
    run -0 bash -c "gpt2-score -m '$T/ck' '$T/blocks.msgpack' | ppl"
    [[ "$output" == *'"nll_per_token"'* ]]
    run -0 ckpt-info "$T/ck"
    # the loss logged at step 3 is the model's loss: gpt2-score agrees on the data's scale
    nll=$(gpt2-score -m "$T/ck" "$T/blocks.msgpack" | ppl | jq .nll_per_token)
    close "$nll" 10.8 0.5
}

@test "train: --steps 0 writes the initial model, in bf16 too; gpt2-score loads it" {
    run -0 train "${TINY[@]}" --vocab 50257 --steps 0 --dtype bf16 -o "$T/init"
    run -0 bash -c "gpt2-score -m '$T/init' '$T/blocks.msgpack' | ppl | jq .nll_per_token"
    # random init (std 0.02): the prediction is nearly uniform, NLL ~ log(50257) = 10.825
    close "$output" 10.825 0.05
}

@test "train: the first-step loss from --init is the fixture's reference NLL" {
    fixturetool rows-to-stream "$ROWS" row0.input_ids row0.lengths 1000 > "$T/row0.msgpack"
    run -0 train --init "$GPT2" --data "$T/row0.msgpack" --steps 1 --batch 2 --eval-every 0 \
        -o "$T/fx"
    loss=$(jq -r 'select(.step == 1) | .loss' "$T/fx/train.log.jsonl")
    close "$loss" 9.660465597803766 1e-4   # manifest.json: cases.full.per_seq_mean_nll[0]
    # all three rows as one validation batch before any step: the HF loss of the batch
    fixturetool rows-to-stream "$ROWS" full.input_ids full.lengths 1000 > "$T/full.msgpack"
    run -0 train --init "$GPT2" --data "$T/full.msgpack" --steps 0 --batch 3 --eval-batches 1 \
        -o "$T/fx0"
    val=$(jq -r 'select(.step == 0) | .val' "$T/fx0/train.log.jsonl")
    close "$val" 9.701195362278439 1e-4    # manifest.json: cases.full.hf_loss
}

@test "train: --arch sedd trains with EMA, sedd-sample and sedd-score read the checkpoint, --resume is bit-identical" {
    local args=(--arch sedd "${TINY[@]}" --cond-dim 8 --batch 2 --ema 0.9 --data "$T/blocks.msgpack")
    run -0 train "${args[@]}" --steps 4 -o "$T/full"
    grep -q '"graph"' "$T/full/config.json"
    run -0 sh -c "sedd-sample --model '$T/full' --steps 4 --length 16 -n 2 | stream-info"
    [[ "$output" == *'"records": 2'* ]]
    run -0 sh -c "sedd-score --model '$T/full' -K 2 '$T/blocks.msgpack' | ppl"
    [[ "$output" == *'"records": '* ]]
    run -0 train "${args[@]}" --steps 4 --stop-at 2 -o "$T/part"
    run -0 train "${args[@]}" --steps 4 --resume -o "$T/part"
    cmp "$T/full/model.safetensors" "$T/part/model.safetensors"
    cmp "$T/full/train_state.safetensors" "$T/part/train_state.safetensors"
}

@test "train: 2 steps + --resume to 4 is bit-identical to 4 steps" {
    args=("${TINY[@]}" --data "$T/blocks.msgpack" --batch 4 --eval-every 1 --eval-batches 1)
    run -0 train "${args[@]}" --steps 4 -o "$T/full"
    run -0 train "${args[@]}" --steps 2 -o "$T/part"
    run -0 train "${args[@]}" --steps 4 -o "$T/part" --resume
    cmp "$T/full/model.safetensors" "$T/part/model.safetensors"
    cmp "$T/full/train_state.safetensors" "$T/part/train_state.safetensors"
    [ "$(wc -l < "$T/part/train.log.jsonl")" -eq 5 ]
    # cosine schedule, EMA and bf16 output, interrupted by --stop-at
    args+=(--warmup 2 --cosine --lr-min 1e-5 --ema 0.9 --dtype bf16 --steps 4)
    run -0 train "${args[@]}" -o "$T/full2"
    run -0 train "${args[@]}" --stop-at 2 -o "$T/part2"
    run -0 train "${args[@]}" --resume -o "$T/part2"
    cmp "$T/full2/model.safetensors" "$T/part2/model.safetensors"
    ! cmp -s "$T/full2/model.safetensors" "$T/full/model.safetensors"
}

@test "train: --resume refuses other settings, naming them" {
    args=("${TINY[@]}" --data "$T/blocks.msgpack" --batch 4 --eval-every 0)
    run -0 train "${args[@]}" --steps 2 -o "$T/ck"
    run -1 train "${args[@]}" --steps 4 --batch 3 --resume -o "$T/ck"
    [[ "$output" == *"'batch' is 4 in the checkpoint but 3 now"* ]]
    run -1 train "${args[@]}" --steps 4 --seed 9 --resume -o "$T/ck"
    [[ "$output" == *"'seed'"* ]]
    run -1 train "${args[@]}" --layers 3 --steps 4 --resume -o "$T/ck"
    [[ "$output" == *"'n_params'"* ]]
    for i in $(seq 1 40); do echo "Other data, line $i of a different corpus."; done \
        | tokenize --block 16 > "$T/other.msgpack"
    run -1 train "${TINY[@]}" --data "$T/other.msgpack" --batch 4 --eval-every 0 --steps 4 \
        --resume -o "$T/ck"
    [[ "$output" == *"'train_blocks'"* || "$output" == *"'train_data_fnv1a'"* ]]
    run -1 train "${args[@]}" --steps 4 --resume -o "$T/none"
    [[ "$output" == *"train_state.safetensors"* ]]
}

@test "train: bad blocks and bad output directories are refused with a message" {
    tokenize --block 15 < /dev/null > "$T/empty.msgpack" || true
    echo "some text that is long enough to make a few blocks of fifteen tokens each, or so" \
        | tokenize --block 15 > "$T/b15.msgpack"
    run -1 train "${TINY[@]}" --data "$T/b15.msgpack" --steps 1 -o "$T/x"
    [[ "$output" == *"record 0"*"exactly the context length (16)"* ]]
    run -1 train "${TINY[@]}" --vocab 100 --data "$T/blocks.msgpack" --steps 1 -o "$T/x"
    [[ "$output" == *"outside the vocabulary (100)"* ]]
    run -1 train "${TINY[@]}" --data "$T/empty.msgpack" --steps 1 -o "$T/x"
    [[ "$output" == *"no records"* || "$output" == *"empty stream"* ]]
    run -1 train --init "$GPT2" --data "$T/blocks.msgpack" --steps 1 -o "$T/x"
    [[ "$output" == *"exactly the context length (64)"* ]]
    mkdir "$T/other" && echo keep > "$T/other/notes.txt"
    run -1 train "${TINY[@]}" --data "$T/blocks.msgpack" --steps 1 -o "$T/other"
    [[ "$output" == *"not replaced"* ]]
    [ -f "$T/other/notes.txt" ]
}

@test "train: -o in directories that do not exist yet creates them; under a file it fails before training" {
    run -0 train "${TINY[@]}" --data "$T/blocks.msgpack" --steps 1 -o "$T/runs/a/ckpt"
    [ -f "$T/runs/a/ckpt/model.safetensors" ]
    touch "$T/plain"
    run -1 --separate-stderr train "${TINY[@]}" --data "$T/blocks.msgpack" --steps 1 -o "$T/plain/ckpt"
    [[ "$stderr" == *"train: cannot access '$T/plain/ckpt': Not a directory"* ]]
    [[ "$stderr" != *"step 1/1"* ]]
}

@test "train: --device cuda without a GPU and --precision bf16 on the CPU exit 2; the device is recorded" {
    if ! train --version | grep -q ' 0 devices\|cuda: off'; then
        skip "a CUDA device is visible here (tests/kernels/test_train_grads checks training on it)"
    fi
    run -2 train "${TINY[@]}" --data "$T/blocks.msgpack" --steps 1 --device cuda -o "$T/x"
    [[ "$output" == *"--device cuda:"* ]]
    [ ! -e "$T/x" ]
    run -2 train "${TINY[@]}" --data "$T/blocks.msgpack" --steps 1 --precision bf16 -o "$T/x"
    [[ "$output" == *"--precision bf16 needs --device cuda"* ]]
    run -2 train "${TINY[@]}" --data "$T/blocks.msgpack" --steps 1 --device tpu -o "$T/x"
    [[ "$output" == *"unknown device 'tpu'"* ]]
    run -2 train "${TINY[@]}" --data "$T/blocks.msgpack" --steps 1 --precision fp8 -o "$T/x"
    [[ "$output" == *"unknown precision 'fp8'"* ]]
    # auto falls back to the CPU, and says so in the log and in both checkpoint files
    run -0 train "${TINY[@]}" --data "$T/blocks.msgpack" --steps 1 --device auto -o "$T/ck"
    [[ "$output" == *"on cpu (fp32)"* ]]
    grep -aq '"device": *"cpu"' "$T/ck/model.safetensors"
    grep -aq '"precision": *"fp32"' "$T/ck/train_state.safetensors"
}

@test "train: a checkpoint directory left by a save that was killed is removed by the next save" {
    sh -c 'exit 0' & dead=$!
    wait "$dead"
    mkdir "$T/ck.tmp.$dead" && echo '{}' > "$T/ck.tmp.$dead/config.json"
    mkdir "$T/ck.tmp.$$" # this shell's: a live process, kept
    run -0 train "${TINY[@]}" --data "$T/blocks.msgpack" --steps 1 --batch 4 -o "$T/ck"
    [[ "$output" == *"left by an interrupted save"* ]]
    [ ! -e "$T/ck.tmp.$dead" ] && [ -d "$T/ck.tmp.$$" ] && [ -f "$T/ck/config.json" ]
}
