#!/usr/bin/env bats
# latency: the sweep's rows on the tiny fixture models (never their times), CSV and JSON, and
# bad input.

load helpers

G="$FIX/gpt2"
M="$FIX/sedd/tiny_absorb_loglinear"

@test "latency: a 2-repeat sweep has one row per (batch, model, steps), in CSV" {
    run -0 latency --gpt2 "$G" --sedd "$M" --steps 1,3 --batch 1,2 -r 2 -w 0 -j 1
    [ "${lines[0]}" = "model,steps,batch,length,median_s,p10,p90,repeats,device,precision" ]
    [ "$(echo "${lines[1]}" | cut -d, -f9,10)" = "cpu,fp32" ]
    [ "${#lines[@]}" -eq 7 ]
    # the default length is the smaller context: SEDD's 32 (GPT-2's is 64); gpt2's steps = L
    run -0 bash -c "latency --gpt2 '$G' --sedd '$M' --steps 1,3 --batch 1,2 -r 2 -w 0 -j 1 | cut -d, -f1-4,8 | tail -n +2 | paste -sd' '"
    [ "$output" = "gpt2,32,1,32,2 sedd,1,1,32,2 sedd,3,1,32,2 gpt2,32,2,32,2 sedd,1,2,32,2 sedd,3,2,32,2" ]
}

@test "latency: JSON rows hold ordered positive times" {
    run -0 bash -c "latency --sedd '$M' --steps 2 -l 16 -r 3 -f json -j 1 | jq -c '[.device, .precision], (.rows[] | [.model,.steps,.batch,.length,.repeats, (.p10 > 0 and .p10 <= .median_s and .median_s <= .p90)])'"
    [ "${lines[0]}" = '["cpu","fp32"]' ]
    [ "${lines[1]}" = '["sedd",2,1,16,3,true]' ]
    run -0 bash -c "latency --gpt2 '$G' -l 8 -r 2 -o '$BATS_TEST_TMPDIR/l.csv' -j 1 && tail -n 1 '$BATS_TEST_TMPDIR/l.csv' | cut -d, -f1-4"
    [ "$output" = "gpt2,8,1,8" ]
}

@test "latency: bad options and models are clear errors" {
    run -2 latency -r 2
    [[ "$output" == *"--gpt2 DIR, --sedd DIR or both"* ]]
    run -2 latency --sedd "$M" --steps 1,,2
    [[ "$output" == *"an empty item"* ]]
    run -2 latency --sedd "$M" --steps 0
    [[ "$output" == *"--steps"* ]]
    run -2 latency --sedd "$M" --format xml
    [[ "$output" == *"csv or json"* ]]
    run -2 latency --sedd "$M" --device tpu
    [[ "$output" == *"cpu or cuda"* ]]
    run -2 latency --sedd "$M" --precision fp16
    [[ "$output" == *"fp32 or bf16"* ]]
    run -2 latency --gpt2 "$G" -l 65
    [[ "$output" == *"longer than GPT-2's context"* ]]
    run -1 latency --gpt2 "$BATS_TEST_TMPDIR/none"
    [[ "$output" == *"none"* ]]
    run -1 latency --sedd "$G"
    [ -n "$output" ]
}

@test "latency: --precision bf16 is refused on the CPU; --device cuda without a GPU is a usage error" {
    run -2 latency --sedd "$M" --precision bf16
    [[ "$output" == *"--precision bf16 needs --device cuda"* ]]
    if nvidia-smi -L >/dev/null 2>&1; then skip "a GPU is visible here"; fi
    # no GPU: "no CUDA device is visible"; a build without CUDA: "this build has no CUDA"
    run -2 latency --sedd "$M" --device cuda -r 1
    [[ "$output" == *"--device cuda: "*"CUDA"* ]]
}
