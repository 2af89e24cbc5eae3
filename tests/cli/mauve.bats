#!/usr/bin/env bats
# mauve: usage, the reference value for a fixture pair (seed 25 and seeds 1-5), both feature
# formats, bad input.

load helpers

F="$FIX/eval/mauve/features"

@test "mauve: --help documents the feature formats and an example, exit 0" {
    run -0 --separate-stderr mauve --help
    [[ "$output" == "Usage: mauve"* && "$output" == *"float32"* && "$output" == *"safetensors"* ]]
}

@test "mauve: missing -p/-q, unknown options and bad values are usage errors (exit 2)" {
    run -2 --separate-stderr mauve --bogus
    run -2 --separate-stderr mauve -p "$F/tiny_12x12_8_p.f32"
    [[ "$stderr" == mauve:* ]]
    run -2 --separate-stderr mauve -p "$F/tiny_12x12_8_p.f32" -q "$F/tiny_12x12_8_q.f32"
    [[ "$stderr" == *"--dim"* ]]
    run -2 --separate-stderr mauve --seeds 5-1 -p a -q b --dim 8
}

@test "mauve: same_dist_200x32 reproduces the reference (seed 25: counts and MAUVE)" {
    run -0 bash -c "mauve -p '$F/same_dist_200x32_p.f32' -q '$F/same_dist_200x32_q.f32' --dim 32 | jq -c '[.num_buckets, .pca_components, (.mauve * 1e12 | round), .p_counts[0:4]]'"
    # manifest.json: mauve 0.9469632842615918, p_counts [6, 6, 3, 12, ...]
    [ "$output" = "[20,7,946963284262,[6,6,3,12]]" ]
}

@test "mauve: --seeds 1-5 gives the reference mean over seeds 1..5" {
    run -0 bash -c "mauve -p '$F/same_dist_200x32_p.f32' -q '$F/same_dist_200x32_q.f32' --dim 32 --seeds 1-5 | jq -c '[(.mauve_mean * 1e12 | round), (.runs | length)]'"
    [ "$output" = "[975046950583,5]" ]
}

@test "mauve: identical features give 1 and disjoint-clusters features the closed form" {
    run -0 bash -c "mauve -p '$F/identical_200x32_p.f32' -q '$F/identical_200x32_q.f32' --dim 32 | jq '.mauve * 1e9 | round'"
    [ "$output" = "1000000000" ]
    run -0 bash -c "mauve -p '$F/disjoint_200x32_p.f32' -q '$F/disjoint_200x32_q.f32' --dim 32 | jq '.mauve * 1e12 | round'"
    [ "$output" = "4072096262" ]
}

@test "mauve: a raw file that is not whole rows, or unreadable, is an error naming it (exit 1)" {
    head -c 30 "$F/tiny_12x12_8_p.f32" > "$BATS_TEST_TMPDIR/cut.f32"
    run -1 --separate-stderr mauve -p "$BATS_TEST_TMPDIR/cut.f32" -q "$F/tiny_12x12_8_q.f32" --dim 8
    [[ "$stderr" == "mauve: $BATS_TEST_TMPDIR/cut.f32: 30 bytes"* ]]
    run -1 --separate-stderr mauve -p "$BATS_TEST_TMPDIR/none.f32" -q "$F/tiny_12x12_8_q.f32" --dim 8
    [[ "$stderr" == mauve:*"none.f32"* ]]
    printf 'garbage!garbage!' > "$BATS_TEST_TMPDIR/g.safetensors"
    run -1 --separate-stderr mauve -p "$BATS_TEST_TMPDIR/g.safetensors" -q "$F/tiny_12x12_8_q.f32" --dim 8
    [[ "$stderr" == mauve:* ]]
}

@test "mauve: writing to /dev/full fails with exit 1" {
    run -1 --separate-stderr sh -c "mauve -p '$F/tiny_12x12_8_p.f32' -q '$F/tiny_12x12_8_q.f32' --dim 8 > /dev/full"
    [[ "$stderr" == *"writing output failed"* ]]
}

@test "mauve: -j 1 and -j 2 give the same bytes (1000x256 synthetic features)" {
    T="$BATS_TEST_TMPDIR"
    ${CC:-cc} -O2 -o "$T/gen" "$ROOT/tests/bench/mauve_gen.c" -lm
    "$T/gen" 1000 256 0 1 > "$T/p.f32"
    "$T/gen" 1000 256 0.05 2 > "$T/q.f32"
    mauve -j 1 -p "$T/p.f32" -q "$T/q.f32" --dim 256 --seeds 1-2 > "$T/j1.json"
    mauve -j 2 -p "$T/p.f32" -q "$T/q.f32" --dim 256 --seeds 1-2 > "$T/j2.json"
    cmp "$T/j1.json" "$T/j2.json"
}
