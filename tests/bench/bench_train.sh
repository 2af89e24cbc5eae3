#!/bin/sh
# bench_train: `train` steps per second on the CPU at the embedded models' shapes (GPT-2 and SEDD,
# 4 layers, width 128, 4 heads, vocabulary 50257, 16 blocks of 128 tokens per step; SEDD
# conditioning 64), beside PyTorch (Debian's python3-torch, tests/bench/train_torch.py: the same
# model, loss, clipping and AdamW) in the same run. Ours is timed end to end through the tool,
# start-up, initialisation and the final save cancelled out by differencing two runs (1 + S vs 1
# steps, best of R each); PyTorch gets OPENBLAS_CORETYPE=SkylakeX on AVX-512 CPUs and passive
# OpenMP waits, as in bench_gpt2.sh. Ours trains on Brown blocks, PyTorch on random ones (the
# work per step does not depend on the tokens). Environment: BENCH_TRAIN_STEPS (S, default 4),
# BENCH_REPEATS (R, default 2), BENCH_THREADS (default 2). Run from the repository root.
set -eu
steps=${BENCH_TRAIN_STEPS:-4}
repeats=${BENCH_REPEATS:-2}
threads=${BENCH_THREADS:-2}
py=${PYTHON:-/usr/bin/python3}
L=4 H=4 C=128 COND=64 V=50257 T=128 B=16
dir=build/bench/train
mkdir -p "$dir"
[ -x bin/train ] || { echo "bench_train: run make first" >&2; exit 1; }
[ -f data/brown/brown.txt ] || { echo "bench_train: data/brown/brown.txt is missing; run make" >&2; exit 1; }
# training blocks: the first ~50k tokens of the Brown corpus
head -c 250000 data/brown/brown.txt | bin/tokenize --block $T > "$dir/blocks.mp"

# best_secs N ARGS...: the shortest of $repeats wall times of train --steps N ARGS
best_secs() {
    n=$1
    shift
    best=""
    for _ in $(seq "$repeats"); do
        t0=$(date +%s.%N)
        bin/train -j "$threads" "$@" --layers $L --heads $H --width $C --context $T --batch $B \
            --lr 1e-3 --steps "$n" --eval-every 0 --data "$dir/blocks.mp" -o "$dir/ckpt" \
            > /dev/null 2>&1
        t=$(echo "$(date +%s.%N) - $t0" | bc -l)
        best=$(echo "$t $best" | awk '{ print ($2 == "" || $1 < $2) ? $1 : $2 }')
    done
    echo "$best"
}

torch_rate() { # torch_rate ARCH: steps per second, or empty
    "$py" -c 'import torch' 2>/dev/null || return 0
    avx=""
    grep -q avx512f /proc/cpuinfo && avx=SkylakeX
    (cd tests/bench && OPENBLAS_CORETYPE=${avx:-${OPENBLAS_CORETYPE:-}} OMP_NUM_THREADS=$threads \
        OMP_WAIT_POLICY=passive "$py" train_torch.py "$1" $L $H $C $COND $V $T $B "$steps" \
        "$threads" "$repeats") | awk '$1 == "train_steps_per_s" { print $2 }'
}

printf '| %-34s | %11s | %11s | %6s |\n' "train (CPU, $threads threads)" "ours step/s" "torch step/s" "ratio"
printf '|%s|%s|%s|%s|\n' "------------------------------------" "-------------" "--------------" "--------"
for arch in gpt2 sedd; do
    extra=""
    [ "$arch" = sedd ] && extra="--cond-dim $COND"
    # shellcheck disable=SC2086 # extra is words
    one=$(best_secs 1 --arch $arch $extra)
    # shellcheck disable=SC2086
    many=$(best_secs $((1 + steps)) --arch $arch $extra)
    theirs=$(torch_rate $arch)
    awk -v a="$arch" -v s="$steps" -v one="$one" -v many="$many" -v th="$theirs" \
        -v shape="L$L C$C H$H V$V B$B T$T" 'BEGIN {
        ours = s / (many - one)
        printf "| %-34s | %11.3f | %12s | %6s |\n", a " " shape, ours,
               th == "" ? "-" : sprintf("%.3f", th), th == "" ? "-" : sprintf("%.2fx", ours / th)
    }'
done
