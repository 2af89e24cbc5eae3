#!/bin/sh
# gpu-check: what a machine with a GPU runs in one call (`make gpu-check`, under 8 minutes):
#   1. build the CUDA backend and the op tests for sm_90 (CUDA=1: no nvcc is an error);
#   2. run tests/kernels/test_ops: every CUDA op against the CPU backend (a missing device is a
#      failure here, not a skip);
#   3. the fixture runner with --device cuda (not available yet: reported, not run);
#   4. the Figure 1 timings (not available yet: reported, not run);
# then one summary table, last. Exit 1 if any step failed; "n/a" steps do not pass or fail.
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build/release}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 4)}
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
rows=""
failed=0
row() { # step, status, detail
    rows="$rows$(printf '%-28s %-6s %s' "$1" "$2" "$3")
"
    [ "$2" = FAIL ] && failed=1
    return 0
}

echo "== gpu-check: $(date -u +%FT%TZ) on $(hostname)"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
else
    echo "nvidia-smi: not found"
fi

# 1. build (sm_90 only: half the nvcc time of the default 80+90)
echo "== build: make CUDA=1 CUDA_ARCH=90 -j$JOBS"
start=$(date +%s)
if timeout 300 make --no-print-directory CUDA=1 CUDA_ARCH=90 -j"$JOBS" tools \
    "$BUILD/tests/kernels/test_ops" > "$log/build" 2>&1; then
    row "build (sm_90)" PASS "$(( $(date +%s) - start )) s"
    built=1
else
    tail -40 "$log/build"
    row "build (sm_90)" FAIL "make failed or timed out after $(( $(date +%s) - start )) s"
    built=0
fi

# 2. every op, CUDA vs CPU
if [ "$built" = 1 ]; then
    echo "== tests/kernels/test_ops"
    start=$(date +%s)
    timeout 180 "$BUILD/tests/kernels/test_ops" > "$log/ops" 2>&1
    rc=$?
    cat "$log/ops"
    n_ok=$(grep -c '^ok ' "$log/ops")
    n_bad=$(grep -c '^not ok' "$log/ops")
    maxd=$(sed -n 's/^# max diff over all cases: //p' "$log/ops")
    took="$(( $(date +%s) - start )) s"
    if [ "$rc" = 0 ] && [ "$n_bad" = 0 ] && [ "$n_ok" -gt 1 ]; then
        row "kernels vs CPU" PASS "$n_ok cases within tolerance, max diff ${maxd:-?}, $took"
    elif [ "$rc" = 77 ]; then
        row "kernels vs CPU" FAIL "no CUDA device visible (test skipped) on a GPU check"
    else
        row "kernels vs CPU" FAIL \
            "$n_bad of $((n_ok + n_bad)) cases out of tolerance, exit $rc, $took"
        grep '^not ok' "$log/ops" | sed 's/^/    /' > "$log/bad"
    fi
else
    row "kernels vs CPU" FAIL "not run: the build failed"
fi

# 3, 4. not written yet (issue 7): say so rather than pass silently
row "fixtures --device cuda" n/a "not available yet: no tool takes --device cuda"
row "Figure 1 timings" n/a "not available yet: latency --device cuda not written"

echo
echo "== gpu-check summary"
printf '%-28s %-6s %s\n' step status detail
printf '%s' "$rows"
[ -s "$log/bad" ] 2>/dev/null && { echo "failing cases:"; cat "$log/bad"; }
if [ "$failed" = 1 ]; then
    echo "gpu-check: FAILED"
    exit 1
fi
echo "gpu-check: all run steps passed"
