#!/bin/sh
# bench_sedd: SEDD on the CPU — sedd-sample steps per second (analytic predictor) and sedd-score
# tokens per second (K loss times) — at the sedd-small shape (random BF16 weights written by
# tests/bench/sedd_torch.py) and at a tiny shape, beside PyTorch (Debian's python3-torch) running
# the same shape and the same per-step work (tests/bench/sedd_torch.py), in the same run, at
# batch 1 and 8. Ours is timed end to end through the tools, model loading cancelled out by
# differencing two runs (S+1 vs 1 steps, K+1 vs 1 times). Run from the repository root.
# Environment: BENCH_SEDD_LENGTH (sequence length, default 128; the paper's is 1024),
# BENCH_SEDD_STEPS, BENCH_SEDD_K (steps and loss times measured: default 4 at the small shape,
# 32 at the tiny one, where a step is short), BENCH_SEDD_SHAPES ("tiny small"),
# BENCH_THREADS (default: all cores), PYTHON (default /usr/bin/python3).
set -eu
L=${BENCH_SEDD_LENGTH:-128}
shapes=${BENCH_SEDD_SHAPES:-tiny small}
threads=${BENCH_THREADS:-$(nproc)}
py=${PYTHON:-/usr/bin/python3}
out=build/bench
[ -x bin/sedd-sample ] && [ -x bin/sedd-score ] || { echo "bench_sedd: run make first" >&2; exit 1; }
if ! "$py" -c 'import torch' 2>/dev/null; then
    echo "bench_sedd: PyTorch missing ($py -c 'import torch' failed); apt-get install python3-torch" >&2
    exit 1
fi

now() { date +%s.%N; }
# secs CMD...: wall seconds of the fastest of 3 runs (one run is too noisy on a shared machine:
# the difference of two single runs could even come out negative)
secs() {
    best=
    for _ in 1 2 3; do
        t0=$(now)
        "$@" > /dev/null
        t1=$(now)
        best=$(awk -v a="$t0" -v b="$t1" -v m="$best" 'BEGIN { d = b - a; print (m == "" || d < m) ? d : m }')
    done
    echo "$best"
}

printf '%-6s %5s %3s  %-22s %12s %12s %7s\n' shape L B metric dlmkit pytorch ratio
for shape in $shapes; do
    dir=$out/sedd-$shape
    if [ "$shape" = tiny ]; then S=${BENCH_SEDD_STEPS:-32} K=${BENCH_SEDD_K:-32}
    else S=${BENCH_SEDD_STEPS:-4} K=${BENCH_SEDD_K:-4}; fi
    if [ ! -f "$dir/model.safetensors" ]; then
        mkdir -p "$dir"
        "$py" tests/bench/sedd_torch.py write "$dir" "$shape"
    fi
    # records to score: B random sequences of L tokens (unconditional samples of the model)
    for B in 1 8; do
        common="-m $dir --length $L -j $threads --no-provenance"
        a=$(secs bin/sedd-sample $common --steps 1 -n "$B" --batch "$B")
        b=$(secs bin/sedd-sample $common --steps $((S + 1)) -n "$B" --batch "$B")
        ours_s=$(awk -v a="$a" -v b="$b" -v n="$B" -v s="$S" 'BEGIN { printf "%.4g", n * s / (b - a) }')
        bin/sedd-sample $common --steps 1 -n "$B" --batch "$B" > "$out/sedd-$shape.x"
        a=$(secs bin/sedd-score -m "$dir" -j "$threads" -K 1 "$out/sedd-$shape.x")
        b=$(secs bin/sedd-score -m "$dir" -j "$threads" -K $((K + 1)) "$out/sedd-$shape.x")
        ours_k=$(awk -v a="$a" -v b="$b" -v n="$B" -v l="$L" -v k="$K" \
            'BEGIN { printf "%.4g", n * l / ((b - a) / k * k) }')
        theirs=$("$py" tests/bench/sedd_torch.py time "$shape" "$L" "$B" "$threads" "$S" "$K")
        th_s=$(echo "$theirs" | tr ' ' '\n' | sed -n 's/^sample_steps_per_s=//p')
        th_k=$(echo "$theirs" | tr ' ' '\n' | sed -n 's/^score_tokens_per_s=//p')
        printf '%-6s %5s %3s  %-22s %12s %12s %7s\n' "$shape" "$L" "$B" "sample seq-steps/s" \
            "$ours_s" "$th_s" "$(awk -v a="$ours_s" -v b="$th_s" 'BEGIN { printf "%.2fx", a / b }')"
        printf '%-6s %5s %3s  %-22s %12s %12s %7s\n' "$shape" "$L" "$B" "score tokens/s (K=$K)" \
            "$ours_k" "$th_k" "$(awk -v a="$ours_k" -v b="$th_k" 'BEGIN { printf "%.2fx", a / b }')"
    done
done
echo "(threads $threads; target: dlmkit >= 1.5x PyTorch; timings share the machine with whatever else runs)"
