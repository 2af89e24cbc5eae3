#!/bin/sh
# bench_gpt2: GPT-2 (124M shape: L 12, H 12, C 768, V 50257, context 1024; random weights) on the
# CPU — scoring at B=1,T=1024 and B=8,T=128 (gpt2-score), sampling 256 tokens at batch 1 and 8
# with the KV cache (gpt2-sample), from the full softmax and, at batch 8, top-p 0.95 (the paper's
# nucleus; PyTorch with Hugging Face's top-p rule) — beside PyTorch (Debian's python3-torch, a
# benchmark-only dependency installed here with apt-get when missing) running the same shapes in
# the same run,
# and our achieved GFLOP/s as a fraction of the sgemm peak measured in the same run.
# Ours runs without OPENBLAS_CORETYPE (the project picks the kernel itself: lib/backend.h);
# PyTorch gets the best setting by hand: OPENBLAS_CORETYPE=SkylakeX on AVX-512 CPUs (its BLAS
# is the same OpenBLAS), OMP_WAIT_POLICY=passive (what ours sets itself) and
# torch.set_num_threads(threads). Its sampling runs once (no warm-up run) to keep the bench short.
# Environment: BENCH_THREADS [2], BENCH_REPEATS [3], BENCH_DIR [build/bench/gpt2]. About 3
# minutes on 2 cores, most of it PyTorch sampling; the checkpoint (500 MB) is kept for reruns.
# Run from the repository root after `make` (make bench does).
set -eu
threads=${BENCH_THREADS:-2}
repeats=${BENCH_REPEATS:-3}
dir=${BENCH_DIR:-build/bench/gpt2}
L=12 H=12 C=768 V=50257 NP=1024
cc=${CC:-cc}
mkdir -p "$dir/ckpt"
util="$dir/gpt2_bench_util"
$cc -std=c11 -Wall -Wextra -Werror -O2 -g -fopenmp -D_GNU_SOURCE -Ilib -Ibuild \
    tests/bench/gpt2_bench_util.c -o "$util" build/release/libcore.a \
    -lmsgpackc -lpcre2-8 -ljansson -lopenblas -lm -lpthread -ldl
[ -f "$dir/ckpt/model.safetensors" ] || "$util" ckpt "$dir/ckpt" $L $H $C $V $NP
"$util" stream 0 1 $V > "$dir/empty.mp"
# scoring is timed in steady state: (1 + repeats) batches minus 1 batch (load, first touch)
"$util" stream 1 1024 $V > "$dir/b1t1024.1.mp"
"$util" stream $((1 + repeats)) 1024 $V > "$dir/b1t1024.mp"
"$util" stream 8 128 $V > "$dir/b8t128.1.mp"
"$util" stream $((8 + 8 * repeats)) 128 $V > "$dir/b8t128.mp"

if ! python3 -c 'import torch' 2>/dev/null && ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    echo "bench_gpt2: installing python3-torch (benchmark only)" >&2
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-torch >&2 || true
    else
        sudo -n apt-get install -y -q python3-torch >&2 || true
    fi
fi
py=python3
python3 -c 'import torch' 2>/dev/null || py=/usr/bin/python3

now() { date +%s.%N; }
# seconds of the command, minus nothing: callers subtract the load time
timed() { t0=$(now); "$@" > /dev/null; t1=$(now); echo "$t1 - $t0" | bc -l; }

run_ours() { env -u OPENBLAS_CORETYPE "$@"; }
peak=$(run_ours "$util" peak 2048)
core=${peak#* }
peak=${peak%% *}
load=$(timed run_ours bin/gpt2-score -j "$threads" -m "$dir/ckpt" "$dir/empty.mp")
s1=$(timed run_ours bin/gpt2-score -j "$threads" -b 1 -m "$dir/ckpt" "$dir/b1t1024.mp")
s1_0=$(timed run_ours bin/gpt2-score -j "$threads" -b 1 -m "$dir/ckpt" "$dir/b1t1024.1.mp")
s8=$(timed run_ours bin/gpt2-score -j "$threads" -b 8 -m "$dir/ckpt" "$dir/b8t128.mp")
s8_0=$(timed run_ours bin/gpt2-score -j "$threads" -b 8 -m "$dir/ckpt" "$dir/b8t128.1.mp")
g1=$(timed run_ours bin/gpt2-sample -j "$threads" -b 1 -n 1 -l 256 -m "$dir/ckpt")
g8=$(timed run_ours bin/gpt2-sample -j "$threads" -b 8 -n 8 -l 256 -m "$dir/ckpt")
g8p=$(timed run_ours bin/gpt2-sample -j "$threads" -b 8 -n 8 -l 256 -p 0.95 -m "$dir/ckpt")

pyout=""
if $py -c 'import torch' 2>/dev/null; then
    best=""
    grep -q avx512f /proc/cpuinfo && best=SkylakeX
    pyout=$(OPENBLAS_CORETYPE=${best:-${OPENBLAS_CORETYPE:-}} OMP_NUM_THREADS=$threads \
        OMP_WAIT_POLICY=passive \
        $py tests/bench/gpt2_torch.py $L $H $C $V $NP "$threads" "$repeats") || pyout=""
else
    echo "bench_gpt2: python3-torch unavailable; PyTorch column left empty" >&2
fi
torch_of() { echo "$pyout" | awk -v k="$1" '$1 == k { print $2 }'; }

# FLOPs per token: the matrices (24 L C^2 + 2 C V) plus attention (4 L C x mean keys seen)
awk -v load="$load" -v s1="$s1" -v s8="$s8" -v s1_0="$s1_0" -v s8_0="$s8_0" -v g1="$g1" -v g8="$g8" \
    -v g8p="$g8p" -v t_g8p="$(torch_of sample_B8_topp)" -v r="$repeats" \
    -v L=$L -v C=$C -v V=$V -v peak="$peak" -v core="$core" -v thr="$threads" \
    -v t_s1="$(torch_of score_B1_T1024)" -v t_s8="$(torch_of score_B8_T128)" \
    -v t_g1="$(torch_of sample_B1)" -v t_g8="$(torch_of sample_B8)" '
function row(job, tokens, secs, keys, theirs,   tps, gf, ratio, th) {
    tps = tokens / secs
    gf = tps * (24 * L * C * C + 2 * C * V + 4 * L * C * keys) / 1e9
    ratio = theirs > 0 ? sprintf("%.2fx", tps / theirs) : "-"
    th = (theirs > 0) ? sprintf("%.1f", theirs) : "-"
    printf "| %-22s | %10.1f | %11s | %6s | %8.1f | %5.1f%% |\n", job, tps, th, ratio, gf, 100 * gf / peak
}
BEGIN {
    printf "sgemm peak (2048^3, OpenBLAS %s, %d threads): %.1f GFLOP/s; scoring in steady state (runs of 1+%d minus 1 batch), sampling minus the %.2f s load\n", core, thr, peak, r, load
    printf "| %-22s | %10s | %11s | %6s | %8s | %6s |\n", "job", "ours tok/s", "torch tok/s", "ratio", "GFLOP/s", "peak"
    printf "|%s|%s|%s|%s|%s|%s|\n", "------------------------", "------------", "------------", "--------", "----------", "--------"
    row("score B=1 T=1024", 1024 * r, s1 - s1_0, 512.5, t_s1)
    row("score B=8 T=128", 8 * 128 * r, s8 - s8_0, 64.5, t_s8)
    row("sample B=1 256 tokens", 256, g1 - load, 128.5, t_g1)
    row("sample B=8 256 tokens", 8 * 256, g8 - load, 128.5, t_g8)
    row("sample B=8 top-p 0.95", 8 * 256, g8p - load, 128.5, t_g8p)
}'
